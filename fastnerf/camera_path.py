"""Camera paths: the named ones ``fastnerf render --path orbit|spiral|test`` renders
(``path_cameras``), and the files on disk that the viewer records and ``--path FILE`` renders.

The file is nerfstudio's ``camera_path.json`` layout, so a path recorded in either viewer reads in
the other's renderer as far as the worlds agree (fastnerf's world is the dataset's own, unscaled):

    {"camera_type": "perspective", "render_width": W, "render_height": H, "fps": F, "seconds": S,
     "camera_path": [{"camera_to_world": [16 floats, row-major 4x4, OpenGL convention],
                      "fov": vertical field of view in degrees, "aspect": W / H}, ...]}

Every frame renders at ``render_width x render_height`` with square pixels and the principal point
at the centre; the frame's ``fov`` sets its focal length (``aspect`` is written for nerfstudio and
ignored on reading: the render size already fixes it).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from .cameras import Camera, orbit_path, spiral_path
from .errors import UserError


def save_camera_path(path, c2w: torch.Tensor, fov_y: list[float], width: int, height: int, fps: float) -> Path:
    """Write ``c2w [N,4,4]`` (OpenGL camera-to-world) with vertical fields of view ``fov_y`` (radians)."""
    c2w = torch.as_tensor(c2w, dtype=torch.float64).reshape(-1, 4, 4)
    if len(fov_y) != c2w.shape[0]:
        raise ValueError(f"save_camera_path: {c2w.shape[0]} poses but {len(fov_y)} fields of view")
    frames = [{"camera_to_world": [float(v) for v in matrix.flatten()], "fov": math.degrees(float(fov)),
               "aspect": width / height} for matrix, fov in zip(c2w, fov_y)]
    document = {"camera_type": "perspective", "render_width": int(width), "render_height": int(height),
                "fps": float(fps), "seconds": len(frames) / float(fps), "camera_path": frames}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1))
    return path


def load_camera_path(path) -> tuple[Camera, float]:
    """``(cameras, fps)`` from a camera-path file; a ``UserError`` that names what is wrong otherwise."""
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"camera path {path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"camera path {path}: not a JSON camera path ({error})") from None
    if not isinstance(document, dict) or not isinstance(document.get("camera_path"), list):
        raise UserError(f"camera path {path}: expected an object with a 'camera_path' list of frames")
    frames = document["camera_path"]
    if not frames:
        raise UserError(f"camera path {path}: 'camera_path' has no frames")
    try:
        width, height = int(document["render_width"]), int(document["render_height"])
        fps = float(document.get("fps", 12.0))
        c2w = torch.tensor([frame["camera_to_world"] for frame in frames], dtype=torch.float32)
        fov_y = torch.tensor([float(frame["fov"]) for frame in frames])
    except (KeyError, TypeError, ValueError) as error:
        raise UserError(f"camera path {path}: a frame or the render size is malformed ({error!r}); each frame needs "
                        "'camera_to_world' (16 numbers) and 'fov' (degrees), the file 'render_width' and "
                        "'render_height'") from None
    if c2w.ndim != 2 or c2w.shape[1] != 16:
        raise UserError(f"camera path {path}: each 'camera_to_world' must hold 16 numbers (a row-major 4x4)")
    if width < 1 or height < 1 or not fps > 0:
        raise UserError(f"camera path {path}: render size {width}x{height} and fps {fps} must be positive")
    if not ((fov_y > 0) & (fov_y < 180)).all():
        raise UserError(f"camera path {path}: every 'fov' must be in (0, 180) degrees")
    focal = 0.5 * height / torch.tan(torch.deg2rad(fov_y) / 2)
    try:
        cameras = Camera(c2w.reshape(-1, 4, 4), focal, focal, width / 2, height / 2, width, height)
    except ValueError as error:
        raise UserError(f"camera path {path}: {error}") from None
    return cameras, fps


NAMED_PATHS = ("orbit", "spiral", "test")


def is_path_file(path: str) -> bool:
    """Whether ``--path`` names a camera path file (a recorded ``.json``) rather than a named path."""
    return path not in NAMED_PATHS and (path.lower().endswith(".json") or Path(path).is_file())


def path_cameras(dataset, path: str, frames: int, aabb=None):
    """Cameras along ``path`` for ``dataset`` (its training split): an orbit around the scene,
    an LLFF spiral, or the dataset's own cameras for ``"test"``."""
    if frames < 1:
        raise UserError(f"--frames must be positive, got {frames}")
    if path not in NAMED_PATHS:
        raise UserError(f"--path {path}: use one of {', '.join(NAMED_PATHS)} or a camera path .json file")
    cameras = dataset.cameras
    if path == "test":
        return cameras
    if path == "spiral" or dataset.forward_facing:
        near = dataset.near or 1.0
        far = dataset.far or 10.0 * near
        return spiral_path(cameras, frames, near=near, far=far)
    origins = cameras.c2w[:, :3, 3]
    centre = (aabb[:3] + aabb[3:]) / 2 if aabb is not None else torch.zeros(3)
    up = cameras.c2w[:, :3, 1].mean(0)
    up = up / up.norm()
    offsets = origins - centre
    radius = float(offsets.norm(dim=-1).mean())
    elevation = float(torch.rad2deg(torch.asin((offsets @ up / offsets.norm(dim=-1)).clamp(-1, 1))).mean())
    first = cameras[0]
    fov_x = 2 * math.atan(first.width / (2 * float(first.fx)))
    return orbit_path(frames, radius, max(elevation, 5.0), first.width, first.height, fov_x,
                      target=centre.tolist(), up=up.tolist())
