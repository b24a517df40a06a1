"""Camera paths through a scene, for videos: an orbit around it, an LLFF spiral, or its own cameras."""

from __future__ import annotations

import math

import torch

from .cameras import orbit_path, spiral_path
from .errors import UserError


def path_cameras(dataset, path: str, frames: int, aabb=None):
    """Cameras along ``path`` for ``dataset`` (its training split): an orbit around the scene,
    an LLFF spiral, or the dataset's own cameras for ``"test"``."""
    if frames < 1:
        raise UserError(f"--frames must be positive, got {frames}")
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
