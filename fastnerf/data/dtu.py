"""DTU scans, in pixelNeRF's layout (``cameras.npz``, ``image/``, ``mask/``; its ``DVRDataset``
with ``sub_format="dtu"``) or IDR / NeuS's (``cameras_sphere.npz`` beside ``image/`` or
``images/`` and ``mask/``).

Each scan is a scene; its views are the sorted ``.png`` / ``.jpg`` files of the image folder,
view ``i`` having ``world_mat_i`` (``P = K [R | t]``, 3x4 or 4x4, world to pixels) and, when
present, ``scale_mat_i`` (maps the normalised world, where the object lies in the unit sphere,
to the calibrated one). As in IDR / NeuS we decompose ``P @ scale_mat`` into ``K`` and a
camera-to-world pose in the normalised world (pixelNeRF does the same in two steps and then
turns the whole world 180 degrees about X, which changes no image), then flip the camera's Y
and Z axes from OpenCV to OpenGL. ``K``'s pixel centres are at integers (OpenCV), so ``cx, cy``
gain half a pixel here. Ray bounds are pixelNeRF's DTU ones (near 0.1, far 5.0).

``load_scan_dataset`` reads one scan as a posed single-scene ``Dataset`` (``fastnerf.data.load``
on a scan folder, to train a teacher): the box is the normalised world's ``[-1, 1]^3``, and
every 8th view by name is held out (``fastnerf.data.splits``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..cameras import Camera
from .dataset import Dataset
from .errors import DatasetError
from .images import ImageStack, check_same_size, read_header
from .scenes import MultiSceneDataset, Scene
from .splits import holdout_by_name

CAMERA_FILES = ("cameras.npz", "cameras_sphere.npz")
IMAGE_FOLDERS = ("image", "images")
OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])
NEAR, FAR = 0.1, 5.0
AABB = (-1.0, -1.0, -1.0, 1.0, 1.0, 1.0)


def camera_file(folder: Path) -> Path | None:
    for name in CAMERA_FILES:
        if (folder / name).is_file():
            return folder / name
    return None


def decompose_projection(projection: np.ndarray, location: str) -> tuple[np.ndarray, np.ndarray]:
    """``P [3,4] = K [R | t]`` -> ``(K [3,3] with K[2,2] = 1, OpenCV camera-to-world [4,4])``."""
    if not np.isfinite(projection).all():
        raise DatasetError(f"{location}: has non-finite entries")
    left = projection[:, :3]
    if abs(np.linalg.det(left)) < 1e-12:
        raise DatasetError(f"{location}: the left 3x3 of the projection matrix is singular")
    if np.linalg.det(left) < 0:  # P is defined up to scale: pick the sign that gives a rotation
        projection, left = -projection, -left
    # RQ decomposition of left = K R through QR of its row- and column-reversed transpose.
    flip = np.eye(3)[::-1]
    q, r = np.linalg.qr((flip @ left).T)
    intrinsics = flip @ r.T @ flip
    rotation = flip @ q.T
    signs = np.diag(np.sign(np.diag(intrinsics)))  # K with a positive diagonal
    intrinsics, rotation = intrinsics @ signs, signs @ rotation
    centre = -np.linalg.solve(left, projection[:, 3])
    c2w = np.eye(4)
    c2w[:3, :3] = rotation.T
    c2w[:3, 3] = centre
    return intrinsics / intrinsics[2, 2], c2w


def _matrix(cameras: dict, key: str, path: Path, required: bool) -> np.ndarray | None:
    if key not in cameras:
        if required:
            raise DatasetError(f"{path}, field '{key}': missing (one world_mat_i per image, i = image index)")
        return None
    matrix = np.asarray(cameras[key], dtype=np.float64)
    if matrix.shape not in ((3, 4), (4, 4)):
        raise DatasetError(f"{path}, field '{key}': expected a 3x4 or 4x4 matrix, got shape {list(matrix.shape)}")
    if key.startswith("scale_mat") and matrix.shape != (4, 4):
        raise DatasetError(f"{path}, field '{key}': expected a 4x4 matrix, got shape {list(matrix.shape)}")
    return matrix


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (".png", ".jpg", ".jpeg"))


def load_scan(folder: Path, *, downscale: int) -> Scene:
    """One scan as a ``Scene`` (every view both a source and a target)."""
    cameras_path = camera_file(folder)
    image_folder = next((folder / name for name in IMAGE_FOLDERS if (folder / name).is_dir()), None)
    if image_folder is None:
        raise DatasetError(f"{folder}: no image/ or images/ folder beside {cameras_path.name}")
    image_files = _image_files(image_folder)
    if not image_files:
        raise DatasetError(f"{image_folder}: no .png or .jpg images")
    try:
        with np.load(cameras_path) as archive:
            stored = {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as error:
        raise DatasetError(f"{cameras_path}: not a readable .npz file ({error})") from None
    c2ws, intrinsics = [], []
    for index in range(len(image_files)):
        world = _matrix(stored, f"world_mat_{index}", cameras_path, True)
        scale = _matrix(stored, f"scale_mat_{index}", cameras_path, False)
        if scale is not None:
            world = (world if world.shape == (4, 4) else np.vstack([world, [0.0, 0.0, 0.0, 1.0]])) @ scale
        k, c2w = decompose_projection(world[:3], f"{cameras_path}, field 'world_mat_{index}'")
        c2ws.append(c2w @ OPENCV_TO_OPENGL)
        intrinsics.append((k[0, 0], k[1, 1], k[0, 2] + 0.5, k[1, 2] + 0.5))
    locations = [f"{image_folder}, view {k}" for k in range(len(image_files))]
    headers = [read_header(p, loc) for p, loc in zip(image_files, locations)]
    width, height = check_same_size(headers, locations)
    fx, fy, cx, cy = (torch.tensor(v, dtype=torch.float32) for v in zip(*intrinsics))
    cameras = Camera(torch.tensor(np.stack(c2ws), dtype=torch.float32), fx, fy, cx, cy, width, height)
    if downscale > 1:
        cameras = cameras.downscale(downscale)
    images, _ = ImageStack(headers, locations, cameras.width, cameras.height, torch.zeros(3)).load()
    masks = None
    if (folder / "mask").is_dir():
        mask_files = _image_files(folder / "mask")
        if len(mask_files) != len(image_files):
            raise DatasetError(f"{folder / 'mask'}: {len(mask_files)} masks for {len(image_files)} images")
        mask_locations = [f"{folder / 'mask'}, view {k}" for k in range(len(mask_files))]
        mask_headers = [read_header(p, loc) for p, loc in zip(mask_files, mask_locations)]
        if check_same_size(mask_headers, mask_locations) != (width, height):
            raise DatasetError(f"{folder / 'mask'}: masks are not {width}x{height} like the images")
        mask_images, _ = ImageStack(mask_headers, mask_locations, cameras.width, cameras.height, torch.zeros(3)).load()
        masks = mask_images[..., 0]
    views = list(range(len(image_files)))
    return Scene(folder.name, images, cameras, masks, views, views, folder)


def split_list(folder: Path, split: str) -> Path | None:
    """pixelNeRF's scan list for ``split`` (``new_test.lst``, or ``test.lst``) in ``folder``."""
    for name in (f"new_{split}.lst", f"{split}.lst"):
        if (folder / name).is_file():
            return folder / name
    return None


def scan_folders(path: Path, split: str) -> list[Path]:
    """The scans of ``split``: ``path`` itself when it is one scan; else its sub-folders with a
    camera file, restricted to pixelNeRF's ``new_<split>.lst`` when ``path`` (or its one
    category folder, pixelNeRF's ``DTU/``) has one."""
    if camera_file(path) is not None:
        return [path]
    children = sorted(p for p in path.iterdir() if p.is_dir())
    if not any(camera_file(p) for p in children) and len(children) == 1:
        path, children = children[0], sorted(p for p in children[0].iterdir() if p.is_dir())
    listed = split_list(path, split)
    if listed is not None:
        names = [line.strip() for line in listed.read_text().splitlines() if line.strip()]
        missing = [name for name in names if camera_file(path / name) is None]
        if missing:
            raise DatasetError(f"{listed}: scan(s) {missing[:3]} have no folder with {' or '.join(CAMERA_FILES)}")
        return [path / name for name in names]
    return [p for p in children if camera_file(p) is not None]


def load_dtu(path: Path, split: str, *, downscale: int, background, max_scenes=None) -> MultiSceneDataset:
    scans = scan_folders(path, split)
    if max_scenes is not None:
        scans = scans[:max_scenes]
    scenes = [load_scan(folder, downscale=downscale) for folder in scans]
    return MultiSceneDataset(scenes, "dtu", path, split, NEAR, FAR, AABB, (0.0, 0.0, 0.0))


def load_scan_dataset(folder: Path, split: str, *, downscale: int, background: torch.Tensor,
                      skip_missing: bool) -> Dataset:
    """One DTU scan as a posed single-scene ``Dataset`` of ``split`` (images without alpha: the
    background is only what renders fill empty space with)."""
    if isinstance(downscale, bool) or not isinstance(downscale, int) or downscale < 1:
        raise DatasetError(f"{folder}: downscale must be a positive integer, got {downscale!r}")
    scene = load_scan(folder, downscale=downscale)
    image_folder = next(folder / name for name in IMAGE_FOLDERS if (folder / name).is_dir())
    names = [path.name for path in _image_files(image_folder)]  # the scene's views, in this order
    indices = torch.tensor(holdout_by_name(names, split, str(camera_file(folder))))
    return Dataset(scene.images[indices], scene.cameras[indices], background=background, aabb=AABB, near=NEAR,
                   far=FAR, forward_facing=False, format="dtu", path=folder, split=split)
