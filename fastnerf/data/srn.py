"""SRN / ShapeNet multi-scene layout, as pixelNeRF reads it (``src/data/SRNDataset.py``).

``<root>/<category>_<split>/<instance>/`` holds ``rgb/*.png``, ``pose/*.txt`` and ``intrinsics.txt``:

- ``pose/NNNNNN.txt``: 16 numbers, the camera-to-world 4x4 in the OpenCV convention (camera looks
  along +Z, +Y down); we flip the camera's Y and Z axes (``c2w @ diag(1, -1, -1, 1)``) to get the
  OpenGL convention used everywhere here.
- ``intrinsics.txt``: first line ``f cx cy 0.``; last line ``height width`` (the size ``f, cx, cy``
  refer to; images of another size scale them). Pixel coordinates are OpenCV's, pixel centres at
  integers, so ``cx, cy`` gain half a pixel here (our pixel centres are at ``i + 0.5``).
- views are the sorted ``rgb`` files paired with the sorted ``pose`` files; the object mask is
  every pixel that is not pure white (the background).

``path`` may be the root (every ``*_<split>`` category), the ``<root>/<category>`` prefix
pixelNeRF takes (``+ "_" + split``), or one ``<category>_<split>`` folder. The SRN chairs
training set's extra ``chairs_2.0_train`` level is followed, as pixelNeRF does. Ray bounds are
pixelNeRF's: near 1.25, far 2.75 for chairs, near 0.8, far 1.8 otherwise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..cameras import Camera, rigid_transform_problems
from .errors import DatasetError
from .images import IMAGE_SUFFIXES, ImageStack, check_same_size, read_header
from .scenes import MultiSceneDataset, Scene

OPENCV_TO_OPENGL = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))
INTRINSICS_FILE = "intrinsics.txt"
AABB = (-1.0, -1.0, -1.0, 1.0, 1.0, 1.0)


def _is_split_folder(folder: Path) -> bool:
    return folder.is_dir() and any((child / INTRINSICS_FILE).is_file() for child in folder.iterdir() if child.is_dir())


def _follow_chairs(folder: Path) -> Path:
    nested = folder / "chairs_2.0_train"
    return nested if nested.is_dir() else folder


def split_folders(path: Path, split: str) -> list[Path]:
    """The ``<category>_<split>`` folders ``path`` names (empty when it is not an SRN layout)."""
    path = Path(path)
    prefixed = Path(f"{path}_{split}")
    if prefixed.is_dir():
        return [_follow_chairs(prefixed)]
    if not path.is_dir():
        return []
    if path.name.endswith(f"_{split}") and _is_split_folder(_follow_chairs(path)):
        return [_follow_chairs(path)]
    return sorted(_follow_chairs(child) for child in path.iterdir()
                  if child.is_dir() and child.name.endswith(f"_{split}"))


def read_intrinsics(path: Path) -> tuple[float, float, float, int, int]:
    """``(f, cx, cy, height, width)`` from an SRN ``intrinsics.txt``."""
    try:
        lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: cannot read file ({error})") from None
    if len(lines) < 2:
        raise DatasetError(f"{path}: expected a first line 'f cx cy 0.' and a last line 'height width', "
                           f"got {len(lines)} line(s)")
    try:
        first = [float(v) for v in lines[0]]
    except ValueError:
        raise DatasetError(f"{path}, line 1 ('f cx cy 0.'): not numbers: {' '.join(lines[0])!r}") from None
    if len(first) != 4:
        raise DatasetError(f"{path}, line 1: expected 4 numbers 'f cx cy 0.', got {len(first)}")
    focal, cx, cy, _ = first
    if not (np.isfinite(first).all() and focal > 0):
        raise DatasetError(f"{path}, line 1, field 'f': focal length must be a finite positive number, got {focal}")
    try:
        height, width = (int(float(v)) for v in lines[-1])
    except ValueError:
        raise DatasetError(f"{path}, last line ('height width'): expected two integers, got {' '.join(lines[-1])!r}") from None
    if height < 1 or width < 1:
        raise DatasetError(f"{path}, last line ('height width'): must be positive, got {height} {width}")
    return focal, cx, cy, height, width


def read_pose(path: Path) -> torch.Tensor:
    """OpenGL camera-to-world ``[4,4]`` float64 from an SRN (OpenCV) pose file."""
    try:
        values = np.loadtxt(path, dtype=np.float64).reshape(-1)
    except (OSError, ValueError) as error:
        raise DatasetError(f"{path}: cannot read a 4x4 pose ({error})") from None
    if values.size != 16:
        raise DatasetError(f"{path}: expected 16 numbers (a 4x4 camera-to-world matrix), got {values.size}")
    c2w = torch.from_numpy(values.reshape(4, 4))
    problems = rigid_transform_problems(c2w[None])
    if problems:
        raise DatasetError(f"{path}: not a rigid camera-to-world matrix: {problems[0][1]}")
    return c2w @ OPENCV_TO_OPENGL


def _files(folder: Path, suffixes) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in suffixes) if folder.is_dir() else []


def load_instance(folder: Path, *, downscale: int) -> Scene:
    """One SRN instance as a ``Scene`` (all views both sources and targets)."""
    rgb_files = _files(folder / "rgb", IMAGE_SUFFIXES)
    pose_files = _files(folder / "pose", (".txt",))
    if not rgb_files:
        raise DatasetError(f"{folder / 'rgb'}: no images found")
    if len(rgb_files) != len(pose_files):
        raise DatasetError(f"{folder}: {len(rgb_files)} images in rgb/ but {len(pose_files)} poses in pose/; "
                           "each view needs both")
    focal, cx, cy, height, width = read_intrinsics(folder / INTRINSICS_FILE)
    locations = [f"{folder}, view {k}" for k in range(len(rgb_files))]
    headers = [read_header(p, loc) for p, loc in zip(rgb_files, locations)]
    image_width, image_height = check_same_size(headers, locations)
    scale_x, scale_y = image_width / width, image_height / height
    c2w = torch.stack([read_pose(p) for p in pose_files]).float()
    cameras = Camera(c2w, focal * scale_x, focal * scale_y, (cx + 0.5) * scale_x, (cy + 0.5) * scale_y,
                     image_width, image_height)
    if downscale > 1:
        cameras = cameras.downscale(downscale)
    white = torch.ones(3)
    images, alphas = ImageStack(headers, locations, cameras.width, cameras.height, white).load()
    masks = (images < 1.0 - 1.0 / 512).any(-1).float() if alphas is None else alphas
    views = list(range(len(rgb_files)))
    return Scene(folder.name, images, cameras, masks, views, views, folder)


def load_srn(path: Path, split: str, *, downscale: int, background, max_scenes=None) -> MultiSceneDataset:
    folders = split_folders(path, split)
    instances = sorted((child for folder in folders for child in folder.iterdir()
                        if child.is_dir() and (child / INTRINSICS_FILE).is_file()), key=lambda p: (p.parent.name, p.name))
    if max_scenes is not None:
        instances = instances[:max_scenes]
    scenes = [load_instance(folder, downscale=downscale) for folder in instances]
    chairs = any("chair" in folder.name for folder in folders)
    near, far = (1.25, 2.75) if chairs else (0.8, 1.8)
    return MultiSceneDataset(scenes, "srn", path, split, near, far, AABB, (1.0, 1.0, 1.0))
