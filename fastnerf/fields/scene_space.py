"""Where a field lives: one box (bounded), or all of space contracted around it (unbounded).

Shared by the models that march an occupancy grid (the teacher, the hybrid student), so the
field's input, its grid and its march agree on where a point is:

- ``encoding_input``: a position to the encoding's ``[0, 1]^3``: the box normalised (clamped), or
  mip-NeRF 360's contraction ``(contract(p) + 2) / 4`` (``fastnerf.reference.march_rays``);
- ``ray_range``: unbounded rays run from ``near`` to ``far`` (world distances);
- ``step_at``: the marching step near a point (cone stepping grows it with distance), which the
  occupancy grid's threshold (the opacity of one step) needs.
"""

from __future__ import annotations

import math

import torch

from ..reference.march_rays import CONTRACTIONS, contract

SCENE_KEYS = ("contraction", "cone_angle", "near", "far")  # the config keys of a model's scene space


def scene_config(contraction=None, cone_angle=0.0, near=0.0, far=None, *, ndc=None, who: str = "model") -> dict:
    """The checked plain values of a scene space (``SCENE_KEYS``); errors name the argument."""
    if contraction not in CONTRACTIONS:
        raise ValueError(f"{who}: contraction must be one of {CONTRACTIONS}, got {contraction!r}")
    if isinstance(cone_angle, bool) or not (math.isfinite(float(cone_angle)) and float(cone_angle) >= 0.0):
        raise ValueError(f"{who}: cone_angle must be a finite number >= 0, got {cone_angle!r}")
    if contraction is not None and ndc is not None:
        raise ValueError(f"{who}: contraction and ndc exclude each other (NDC already maps a forward-facing "
                         "capture's infinite frustum into a box)")
    if contraction is not None and far is None:
        raise ValueError(f"{who}: a contracted (unbounded) model needs far, where its rays end")
    if far is not None and not (0.0 <= float(near) < float(far) and math.isfinite(float(far))):
        raise ValueError(f"{who}: near and far must satisfy 0 <= near < far < inf, got near={near!r}, far={far!r}")
    return {"contraction": contraction, "cone_angle": float(cone_angle), "near": float(near),
            "far": None if far is None else float(far)}


def encoding_input(positions: torch.Tensor, aabb: torch.Tensor, contraction=None) -> torch.Tensor:
    """``positions [S,3]`` -> ``[S,3]`` in ``[0, 1]``: normalised in ``aabb [6]`` (clamped), or
    contracted around it, ``(u + 2) / 4``."""
    if contraction is not None:
        return (contract(positions, aabb) + 2.0) * 0.25
    return ((positions - aabb[:3]) / (aabb[3:] - aabb[:3])).clamp(0.0, 1.0)


def ray_range(rays_d: torch.Tensor, near: float, far: float | None):
    """``(t_near [N], t_far [N])`` from ``near`` to ``far`` whatever the directions' lengths, or
    ``(None, None)`` without ``far`` (bounded rays span the box: ``ray_aabb``)."""
    if far is None:
        return None, None
    length = rays_d.norm(dim=-1).clamp_min(1e-12)
    return near / length, far / length


def step_at(positions: torch.Tensor, aabb: torch.Tensor, step_size: float, cone_angle: float):
    """The marching step near ``positions [S,3]``: ``step_size`` (a Python float) without cone
    stepping, else ``[S]`` ``max(cone_angle * distance, step_size)`` at the distance from the box
    centre (cameras sit near the box, so it stands for the distance from them)."""
    if cone_angle == 0.0:
        return step_size
    centre = (aabb[:3] + aabb[3:]) * 0.5
    return ((positions - centre).norm(dim=-1) * cone_angle).clamp_min(step_size)


def intervals_per_ray(near: float, far: float, step_size: float, cone_angle: float) -> float:
    """About how many intervals a ray from ``near`` to ``far`` marches (cone stepping: linear up to
    ``step_size / cone_angle``, geometric after)."""
    if cone_angle == 0.0:
        return (far - near) / step_size
    t_linear = max(near, step_size / cone_angle)  # where the steps start to grow
    return max(0.0, min(far, t_linear) - near) / step_size + max(0.0, math.log(far / t_linear)) / cone_angle
