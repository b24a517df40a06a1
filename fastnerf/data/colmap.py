"""COLMAP models: ``DIR/sparse/N/{cameras,images,points3D}.{bin,txt}`` beside ``DIR/images/``.

The model with the most registered images is read when ``sparse/`` holds several (``sparse/0``,
``sparse/1``, ...; a model written straight into ``sparse/`` counts too). Image ``name`` is the
path of the photo under ``DIR/images/``; an image on disk at another size than its camera is
taken as a uniform rescaling of it (intrinsics scaled), as ``images`` resized after mapping are.

Poses: COLMAP stores world-to-camera ``(qvec, tvec)`` with OpenCV camera axes (x right, y down,
z forward), so camera-to-world is ``[R^T | -R^T t]``, then its Y and Z axes flip to fastnerf's
OpenGL convention. The world is COLMAP's, not rescaled. Cameras: ``SIMPLE_PINHOLE``,
``PINHOLE``, and the lenses ``SIMPLE_RADIAL``, ``RADIAL``, ``OPENCV``, ``OPENCV_FISHEYE``, whose
distortion the rays follow (``fastnerf.distortion``); COLMAP's principal point is already in
fastnerf's pixel convention (the top-left pixel's centre is (0.5, 0.5)). Other models are an
error that says to undistort first.

Scene box: per axis, the 1st to 99th percentile of the sparse points (stray points fall out),
or the box of the camera centres when the model has fewer than ``MIN_POINTS`` points. Splits:
every 8th image by name is ``val``/``test`` (``fastnerf.data.splits``), the rest ``train``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .. import distortion as lens
from ..cameras import Camera
from .colmap_files import ColmapModel, count_images, model_extension, read_model
from .dataset import Dataset
from .errors import DatasetError
from .json_fields import check_rigid
from .images import ImageStack, check_same_size, read_header, report_skipped, resolve_image
from .splits import holdout_by_name
from .transforms_json import SKIP_MISSING_HINT, downscaled

SPARSE_FOLDER = "sparse"
IMAGE_FOLDER = "images"
BOX_PERCENTILES = (1.0, 99.0)
MIN_POINTS = 16
OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])
PINHOLE_MODELS = ("SIMPLE_PINHOLE", "PINHOLE")


def model_folders(folder: Path) -> list[Path]:
    """The model folders under ``folder/sparse`` (``sparse`` itself when it holds a model)."""
    sparse = folder / SPARSE_FOLDER
    if not sparse.is_dir():
        return []
    candidates = [sparse] + sorted(p for p in sparse.iterdir() if p.is_dir())
    return [p for p in candidates if model_extension(p) is not None]


def is_colmap_folder(folder: Path) -> bool:
    return bool(model_folders(folder))


def largest_model(folder: Path) -> Path:
    models = model_folders(folder)
    if not models:
        raise DatasetError(f"{folder / SPARSE_FOLDER}: no COLMAP model (expected sparse/0/cameras.bin or .txt)")
    return max(models, key=count_images)  # the first of equal ones: sparse/0 before sparse/1


def world_to_camera_rotation(qvec: np.ndarray) -> np.ndarray:
    """COLMAP's unit quaternion ``(w, x, y, z)`` -> rotation matrix ``[3,3]``."""
    w, x, y, z = qvec
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def opengl_c2w(cam_from_world: np.ndarray) -> np.ndarray:
    """World-to-camera ``cam_from_world [N,3,4]`` (OpenCV axes, COLMAP) -> OpenGL camera-to-world ``[N,4,4]``."""
    rotation, translation = cam_from_world[:, :, :3], cam_from_world[:, :, 3]
    c2w = np.tile(np.eye(4), (len(cam_from_world), 1, 1))
    c2w[:, :3, :3] = rotation.transpose(0, 2, 1)
    c2w[:, :3, 3] = -np.einsum("nji,nj->ni", rotation, translation)  # -R^T t
    return c2w @ OPENCV_TO_OPENGL


def pinhole_and_lens(model: str, params: np.ndarray) -> tuple[tuple[float, float, float, float], np.ndarray]:
    """``((fx, fy, cx, cy), lens parameters)`` of a COLMAP camera of a supported model."""
    if model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"):  # one focal length
        return (params[0], params[0], params[1], params[2]), params[3:]
    return tuple(params[:4]), params[4:]


def scene_box(model: ColmapModel, centres: np.ndarray) -> torch.Tensor:
    """``[6]``: the sparse points' robust box, or the camera centres' box (see the module docstring)."""
    if len(model.points) >= MIN_POINTS:
        points = model.points[np.isfinite(model.points).all(axis=1)]
        low, high = np.percentile(points, BOX_PERCENTILES, axis=0)
    else:
        low, high = centres.min(0), centres.max(0)
    extent = max(float((high - low).max()), 1e-6)
    margin = np.maximum(0.0, 1e-3 * extent - (high - low))  # never a flat box
    return torch.tensor(np.concatenate([low - margin, high + margin]), dtype=torch.float32)


def load_colmap(folder: Path, split: str, *, downscale: int, background: torch.Tensor, skip_missing: bool) -> Dataset:
    model = read_model(largest_model(folder))
    images_file = model.folder / f"images{model.extension}"
    if not model.images:
        raise DatasetError(f"{images_file}: the model registers no images")
    image_dir = folder / IMAGE_FOLDER
    if not image_dir.is_dir():
        raise DatasetError(f"{folder}: no {IMAGE_FOLDER}/ folder beside {SPARSE_FOLDER}/ (COLMAP's image names are relative to it)")
    for camera_id, camera in model.cameras.items():
        if camera.model not in PINHOLE_MODELS and camera.model not in lens.PARAMETERS:
            raise DatasetError(
                f"{model.folder / ('cameras' + model.extension)}, camera {camera_id}: fastnerf does not apply the "
                f"{camera.model} lens ({', '.join(PINHOLE_MODELS + lens.MODELS)} it does); undistort the images with "
                "COLMAP's image_undistorter (or pycolmap.undistort_images) and read its output"
            )
    images = sorted(model.images, key=lambda image: image.name)
    indices = holdout_by_name([image.name for image in images], split, str(images_file))
    kept, headers, locations, skipped = [], [], [], []
    for index in indices:
        image = images[index]
        location = f"{images_file}, image {image.name!r}"
        path = resolve_image(image_dir, image.name)
        if path is None:
            if not skip_missing:
                raise DatasetError(f"{location}: not found in {image_dir}; to skip such images with a warning: "
                                   f"{SKIP_MISSING_HINT}")
            skipped.append(image.name)
            continue
        kept.append(image)
        headers.append(read_header(path, location))
        locations.append(location)
    report_skipped(images_file, skipped)
    if not kept:
        raise DatasetError(f"{images_file}: no images left to load (all {len(skipped)} are missing from {image_dir})")
    width, height = check_same_size(headers, locations)
    cameras = _cameras(model, kept, locations, width, height)
    box = scene_box(model, cameras.c2w[:, :3, 3].double().numpy())
    cameras = downscaled(cameras, downscale, images_file)
    return Dataset(ImageStack(headers, locations, cameras.width, cameras.height, background), cameras,
                   background=background, aabb=box, forward_facing=False, format="colmap", path=folder, split=split)


def _cameras(model: ColmapModel, images: list, locations: list[str], width: int, height: int) -> Camera:
    """The batch camera of ``images`` for pictures of ``width x height`` on disk."""
    c2w = opengl_c2w(np.stack([np.column_stack([world_to_camera_rotation(image.qvec), image.tvec])
                               for image in images]))
    check_rigid(c2w, locations)
    intrinsics, lenses = [], []
    for image, location in zip(images, locations):
        camera = model.cameras[image.camera_id]
        scale_x, scale_y = width / camera.width, height / camera.height
        if abs(scale_x - scale_y) > 0.01 * max(scale_x, scale_y):
            raise DatasetError(f"{location}: the image is {width}x{height}, not a uniform scaling of its camera's "
                               f"{camera.width}x{camera.height}")
        (fx, fy, cx, cy), params = pinhole_and_lens(camera.model, camera.params)
        intrinsics.append((fx * scale_x, fy * scale_y, cx * scale_x, cy * scale_y))
        lenses.append((None if camera.model in PINHOLE_MODELS else camera.model, params))
    fx, fy, cx, cy = torch.tensor(intrinsics, dtype=torch.float32).unbind(-1)
    try:
        lens_arguments = lens.batch_lens(lenses)
    except ValueError as error:
        raise DatasetError(f"{model.folder / ('cameras' + model.extension)}: {error}") from None
    return Camera(torch.from_numpy(c2w).float(), fx, fy, cx, cy, width, height, check=False, **lens_arguments)
