"""A built-in scene seen forward-facing, written in the LLFF format (``poses_bounds.npy`` +
``images/``): the capture style of the report's approach 1 ("a constrained scene"), beside the
360-degree orbits ``make_scene`` writes. Cameras sit on a small patch of the sphere at distance 4
(``spread`` wide and ``spread / 2`` high), all looking at the origin; the LLFF loader holds out
every 8th view.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ...cameras import Camera, look_at
from ...errors import UserError
from ..writers import write_llff
from . import CAMERA_RADIUS, FOV_X, NEAR, FAR
from .scenes import BUILDERS
from .tracer import render

ELEVATION_DEG = 20.0


def forward_facing_cameras(n: int, res: int, generator: torch.Generator, *, spread: float = 1.2) -> Camera:
    """``n`` cameras on a ``spread x spread/2`` patch around azimuth -90 degrees, elevation 20, looking at the origin."""
    elevation = math.radians(ELEVATION_DEG)
    centre = torch.tensor([0.0, -math.cos(elevation), math.sin(elevation)], dtype=torch.float64) * CAMERA_RADIUS
    right = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    up = torch.tensor([0.0, math.sin(elevation), math.cos(elevation)], dtype=torch.float64)
    u = (torch.rand(n, generator=generator, dtype=torch.float64) - 0.5) * spread
    v = (torch.rand(n, generator=generator, dtype=torch.float64) - 0.5) * spread / 2
    eye = centre + u[:, None] * right + v[:, None] * up
    return Camera.from_fov(look_at(eye, (0.0, 0.0, 0.0)), res, res, FOV_X)


def make_forward_facing_scene(name: str, out_dir, *, n_views: int = 40, res: int = 100, seed: int = 0,
                              samples_per_axis: int = 3) -> Path:
    """Write built-in scene ``name`` seen forward-facing to ``out_dir`` in the LLFF format; returns the folder."""
    if name not in BUILDERS:
        raise UserError(f"unknown scene {name!r}; built-in scenes are: {', '.join(BUILDERS)}")
    if isinstance(n_views, bool) or not isinstance(n_views, int) or n_views < 2:
        raise UserError(f"n_views must be an integer >= 2, got {n_views!r}")
    scene = BUILDERS[name]()
    cameras = forward_facing_cameras(n_views, res, torch.Generator().manual_seed(seed))
    rgba = render(scene, cameras, samples_per_axis=samples_per_axis)  # [N,H,W,4]
    rgb = rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:]) if rgba.shape[-1] == 4 else rgba
    out_dir = Path(out_dir)
    write_llff(out_dir, rgb, cameras, torch.tensor([[NEAR, FAR]] * n_views))
    return out_dir
