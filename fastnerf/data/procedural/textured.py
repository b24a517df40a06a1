"""A built-in scene for structure from motion, and the photo rig that films it.

SIFT finds corners and blobs at many scales; the named scenes' stripes and checkers give few
distinct ones (a checker corner looks like every other) and the white background none. Here
every surface is high-frequency value noise in contrasting colours (distinct blobs down to a few
pixels) and the cameras sit close (``RIG_RADIUS``), so the objects fill the frame.
"""

from __future__ import annotations

import math

import torch

from ...cameras import Camera, look_at
from .materials import Material
from .shapes import Box, Sphere, cup, cylinder
from .tracer import Scene, SceneObject

UP = (0.0, 0.0, 1.0)
RIG_RADIUS = 2.8
RIG_ELEVATIONS_DEG = (25.0, 45.0)  # the rig alternates between these heights
RIG_FOV_X = math.radians(42.0)


def textured_tabletop() -> Scene:
    """The tabletop's layout (plinth, ball, cup, crate, plus a tall block) with every surface in
    value noise of 15-17 cells per unit."""
    top = -0.45

    def noise(dark, light, frequency, seed):
        return Material(dark, light, "noise", frequency=frequency, seed=seed)

    return Scene([
        SceneObject(cylinder((0, 0, top - 0.15), UP, 1.0, 0.15), noise((0.1, 0.1, 0.12), (0.95, 0.9, 0.8), 16.0, 1)),
        SceneObject(Sphere((0.38, -0.3, top + 0.4), 0.4), noise((0.8, 0.1, 0.1), (0.95, 0.9, 0.5), 15.0, 2)),
        SceneObject(cup((-0.38, 0.32, top), 0.32, 0.7, 0.045), noise((0.1, 0.3, 0.7), (0.9, 0.95, 0.95), 16.0, 3)),
        SceneObject(Box((-0.38, -0.42, top + 0.2), (0.2, 0.2, 0.2), yaw_deg=30.0),
                    noise((0.95, 0.7, 0.1), (0.15, 0.1, 0.05), 17.0, 4)),
        SceneObject(Box((0.35, 0.4, top + 0.3), (0.15, 0.15, 0.3), yaw_deg=10.0),
                    noise((0.2, 0.7, 0.3), (0.05, 0.1, 0.05), 17.0, 5)),
    ])


def rig_cameras(n: int, res: int, *, arc_deg: float = 360.0, start_deg: float = 0.0) -> Camera:
    """``n`` cameras walking around the scene over ``arc_deg`` degrees of azimuth (evenly, as a
    person filming would), alternating between ``RIG_ELEVATIONS_DEG``, all looking at the origin."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"rig_cameras: n must be a positive integer, got {n!r}")
    closed = arc_deg >= 360.0  # a full circle: the last step does not come back to the first camera
    steps = torch.arange(n, dtype=torch.float64) / (n if closed else max(n - 1, 1))
    azimuth = torch.deg2rad(start_deg + steps * arc_deg)
    elevation = torch.deg2rad(torch.tensor([RIG_ELEVATIONS_DEG[k % len(RIG_ELEVATIONS_DEG)] for k in range(n)],
                                           dtype=torch.float64))
    eye = RIG_RADIUS * torch.stack([elevation.cos() * azimuth.cos(), elevation.cos() * azimuth.sin(), elevation.sin()], -1)
    return Camera.from_fov(look_at(eye, (0.0, 0.0, 0.0)), res, res, RIG_FOV_X)
