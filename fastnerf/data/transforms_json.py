"""What the Blender and Instant-NGP / nerfstudio ``transforms*.json`` formats share:
the frame list, per-frame intrinsics and lens distortion, the optional scene bounds, and the
load pipeline (``load_transforms``) that turns them into a ``Dataset``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import distortion as lens
from ..cameras import Camera
from .dataset import Dataset
from .errors import DatasetError
from .json_fields import check_rigid, finite_number, pose_matrix, positive_number, where
from .images import ImageHeader, ImageStack, check_same_size, read_header, report_skipped, resolve_image

_DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")
# The keys each camera_model reads (nerfstudio's names; COLMAP's models and parameter order).
_LENS_KEYS = {"PINHOLE": (), "SIMPLE_PINHOLE": (), **lens.PARAMETERS}
_LENS_KEYS["OPENCV"] = ("k1", "k2", "p1", "p2")
DEFAULT_CAMERA_MODEL = "OPENCV"  # nerfstudio's default; Instant-NGP reads k1 k2 p1 p2 the same way


@dataclass
class Frame:
    index: int  # position in the JSON frame list
    entry: dict  # the frame's JSON object
    c2w: np.ndarray  # [4,4] float64
    header: ImageHeader


def frame_list(json_path: Path, meta: dict) -> list:
    frames = meta.get("frames")
    if frames is None:
        raise DatasetError(f"{where(json_path, field='frames')}: missing; the file lists no frames")
    if not isinstance(frames, list):
        raise DatasetError(f"{where(json_path, field='frames')}: expected a list, got {type(frames).__name__}")
    if not frames:
        raise DatasetError(f"{where(json_path, field='frames')}: the list is empty; no frames to load")
    return frames


# What a user can type, on the command line and in Python.
SKIP_MISSING_HINT = "`--skip-missing` on the command line, skip_missing=True in fastnerf.data.load"


def read_frames(json_path: Path, frames: list, indices: list[int], *, skip_missing: bool) -> list[Frame]:
    """Check frames ``indices`` of the list: file path, pose, image present and readable."""
    kept, skipped = [], []
    for index in indices:
        entry = frames[index]
        if not isinstance(entry, dict):
            raise DatasetError(f"{where(json_path, index)}: expected an object, got {type(entry).__name__}")
        file_path = entry.get("file_path")
        if not isinstance(file_path, str) or not file_path:
            raise DatasetError(f"{where(json_path, index, 'file_path')}: missing or not a string ({file_path!r})")
        if "transform_matrix" not in entry:
            raise DatasetError(f"{where(json_path, index, 'transform_matrix')}: missing")
        c2w = pose_matrix(entry["transform_matrix"], where(json_path, index, "transform_matrix"))
        image_path = resolve_image(json_path.parent, file_path)
        if image_path is None:
            message = f"{where(json_path, index, 'file_path')}: image {file_path!r} not found under {json_path.parent}"
            if not skip_missing:
                raise DatasetError(message + f"; to skip such frames with a warning: {SKIP_MISSING_HINT}")
            skipped.append(f"frame {index} ({file_path})")
            continue
        kept.append(Frame(index, entry, c2w, read_header(image_path, where(json_path, index, "file_path"))))
    report_skipped(json_path, skipped)
    if not kept:
        raise DatasetError(f"{json_path}: no frames left to load (all {len(skipped)} images are missing)")
    check_rigid(np.stack([f.c2w for f in kept]), [where(json_path, f.index, "transform_matrix") for f in kept])
    return kept


def _field(meta: dict, frame: Frame, key: str, json_path: Path):
    """``(value, location)``: a per-frame value overrides the top-level one."""
    if key in frame.entry:
        return frame.entry[key], where(json_path, frame.index, key)
    return meta.get(key), where(json_path, field=key)


def frame_intrinsics(meta: dict, frame: Frame, json_path: Path) -> tuple[float, float, float, float]:
    """``(fx, fy, cx, cy)`` in pixels of the image on disk, from ``fl_x/fl_y`` or ``camera_angle_x/_y``."""
    width, height = frame.header.width, frame.header.height
    for key, actual in (("w", width), ("h", height)):
        value, location = _field(meta, frame, key, json_path)
        if value is not None and positive_number(value, location) != actual:
            raise DatasetError(f"{location}: says {value} but image {frame.header.path.name} is {width}x{height}")
    focal = {}
    for axis, size in (("x", width), ("y", height)):
        value, location = _field(meta, frame, f"fl_{axis}", json_path)
        if value is not None:
            focal[axis] = positive_number(value, location)
            continue
        angle, location = _field(meta, frame, f"camera_angle_{axis}", json_path)
        if angle is not None:
            angle = positive_number(angle, location)
            if angle >= math.pi:
                raise DatasetError(f"{location}: a field of view must be below pi radians, got {angle}")
            focal[axis] = 0.5 * size / math.tan(0.5 * angle)
    if not focal:
        raise DatasetError(
            f"{where(json_path, frame.index)}: no focal length; give 'camera_angle_x' or 'fl_x' "
            "(at the top level or in the frame)"
        )
    fx = focal.get("x", focal.get("y"))
    fy = focal.get("y", fx)
    principal = []
    for key, size in (("cx", width), ("cy", height)):
        value, location = _field(meta, frame, key, json_path)
        principal.append(size / 2 if value is None else finite_number(value, location))
    return fx, fy, principal[0], principal[1]


def frame_lens(meta: dict, frame: Frame, json_path: Path) -> tuple[str | None, list[float]]:
    """``(camera_model, parameters)`` of a frame (per-frame keys override the top-level ones);
    ``(None, [])`` for a pinhole camera. A distortion key the model does not take must be 0."""
    model, location = _field(meta, frame, "camera_model", json_path)
    model = DEFAULT_CAMERA_MODEL if model is None else model
    if model not in _LENS_KEYS:
        raise DatasetError(
            f"{location}: {model!r} is not supported; fastnerf reads {', '.join(_LENS_KEYS)} "
            "(COLMAP's definitions); undistort the images to a pinhole camera first"
        )
    takes = _LENS_KEYS[model]
    values = {}
    for key in _DISTORTION_KEYS:
        value, key_location = _field(meta, frame, key, json_path)
        values[key] = 0.0 if value is None else finite_number(value, key_location)
        if key not in takes and values[key] != 0:
            raise DatasetError(f"{key_location}: camera_model {model} has no '{key}' "
                               f"(it takes {', '.join(takes) or 'no distortion'}); fastnerf cannot apply it")
    return (model, [values[key] for key in takes]) if takes else (None, [])


def _lens(meta: dict, frames: list[Frame], json_path: Path) -> dict:
    """``Camera`` keyword arguments for the frames' lenses."""
    try:
        return lens.batch_lens([frame_lens(meta, f, json_path) for f in frames])
    except ValueError as error:
        raise DatasetError(f"{json_path}: {error}") from None


def build_cameras(meta: dict, frames: list[Frame], json_path: Path, downscale: int) -> Camera:
    """Batch camera of the frames, resized for ``downscale``."""
    width, height = check_same_size([f.header for f in frames], [where(json_path, f.index, "file_path") for f in frames])
    intrinsics = torch.tensor([frame_intrinsics(meta, f, json_path) for f in frames], dtype=torch.float32)  # [N,4]
    c2w = torch.from_numpy(np.stack([f.c2w for f in frames])).float()
    camera = Camera(c2w, *intrinsics.unbind(-1), width, height, check=False,  # rigidity checked per frame
                    **_lens(meta, frames, json_path))
    return downscaled(camera, downscale, json_path)


def downscaled(camera: Camera, downscale: int, source: Path) -> Camera:
    if isinstance(downscale, bool) or int(downscale) != downscale or downscale < 1:
        raise DatasetError(f"{source}: downscale must be a positive integer, got {downscale!r}")
    if camera.width // downscale < 1 or camera.height // downscale < 1:
        raise DatasetError(f"{source}: downscale {downscale} leaves no pixels of {camera.width}x{camera.height} images")
    return camera.downscale(int(downscale))


def image_stack(frames: list[Frame], json_path: Path, camera: Camera, background: torch.Tensor) -> ImageStack:
    locations = [where(json_path, f.index, "file_path") for f in frames]
    return ImageStack([f.header for f in frames], locations, camera.width, camera.height, background)


def explicit_aabb(meta: dict, json_path: Path) -> torch.Tensor | None:
    """The ``"aabb"`` key: ``[xmin, ymin, zmin, xmax, ymax, zmax]`` or ``[[xmin, ymin, zmin], [xmax, ymax, zmax]]``."""
    if "aabb" not in meta:
        return None
    location = where(json_path, field="aabb")
    try:
        box = np.array(meta["aabb"], dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise DatasetError(f"{location}: expected 6 numbers, got {meta['aabb']!r}") from None
    if box.shape != (6,) or not np.isfinite(box).all() or not (box[:3] < box[3:]).all():
        raise DatasetError(f"{location}: expected finite (xmin, ymin, zmin, xmax, ymax, zmax) with min < max, got {meta['aabb']!r}")
    return torch.from_numpy(box).float()


def near_far(meta: dict, json_path: Path) -> tuple[float | None, float | None]:
    """Optional top-level ``"near"`` / ``"far"`` keys (written by fastnerf's procedural scenes)."""
    near = meta.get("near")
    far = meta.get("far")
    near = None if near is None else positive_number(near, where(json_path, field="near"), allow_zero=True)
    far = None if far is None else positive_number(far, where(json_path, field="far"))
    if near is not None and far is not None and near >= far:
        raise DatasetError(f"{json_path}: 'near' ({near}) must be less than 'far' ({far})")
    return near, far


def load_transforms(json_path: Path, meta: dict, split: str, *, format: str, indices: list[int] | None = None,
                    default_aabb=None, downscale: int, background: torch.Tensor, skip_missing: bool,
                    **dataset_fields):
    """The ``Dataset`` of the frames ``indices`` (None: every frame) of a parsed transforms JSON:
    the one pipeline of the Blender and Instant-NGP formats. ``default_aabb()`` gives the box when
    the file has no explicit ``"aabb"``; ``dataset_fields`` go to the ``Dataset`` as they are."""
    frames_json = frame_list(json_path, meta)
    indices = list(range(len(frames_json))) if indices is None else indices
    frames = read_frames(json_path, frames_json, indices, skip_missing=skip_missing)
    cameras = build_cameras(meta, frames, json_path, downscale)
    aabb = explicit_aabb(meta, json_path)
    if aabb is None and default_aabb is not None:
        aabb = default_aabb()
    near, far = near_far(meta, json_path)
    return Dataset(image_stack(frames, json_path, cameras, background), cameras, background=background, aabb=aabb,
                   near=near, far=far, forward_facing=False, format=format, path=json_path.parent, split=split,
                   **dataset_fields)
