"""Where a field lives: one box (bounded), or all of space contracted around it (unbounded).

Shared by the models that march an occupancy grid (the teacher, the hybrid student), so the
field's input, its grid and its march agree on where a point is:

- ``encoding_input``: a position to the encoding's ``[0, 1]^3``: the box normalised (clamped), or
  mip-NeRF 360's contraction ``(contract(p) + 2) / 4`` (``fastnerf.reference.march_rays``);
- ``ray_range``: unbounded rays run from ``near`` to ``far`` (world distances);
- ``step_at``: the marching step near a point (cone stepping grows it with distance, and
  ``disparity_step`` further in the far field), which the occupancy grid's threshold (the opacity
  of one step) needs.
"""

from __future__ import annotations

import math

import torch

from ..reference.march_rays import CONTRACTIONS, contract

# The config keys of a model's scene space (a config without disparity_step: 0, plain cone steps).
SCENE_KEYS = ("contraction", "cone_angle", "near", "far", "disparity_step")


def scene_config(contraction=None, cone_angle=0.0, near=0.0, far=None, disparity_step=0.0, *, ndc=None,
                 who: str = "model") -> dict:
    """The checked plain values of a scene space (``SCENE_KEYS``); errors name the argument."""
    if contraction not in CONTRACTIONS:
        raise ValueError(f"{who}: contraction must be one of {CONTRACTIONS}, got {contraction!r}")
    for name, value in (("cone_angle", cone_angle), ("disparity_step", disparity_step)):
        if isinstance(value, bool) or not (math.isfinite(float(value)) and float(value) >= 0.0):
            raise ValueError(f"{who}: {name} must be a finite number >= 0, got {value!r}")
    if float(disparity_step) > 0 and float(cone_angle) == 0:
        raise ValueError(f"{who}: disparity_step ({disparity_step}) needs cone stepping: give cone_angle > 0 too")
    if contraction is not None and ndc is not None:
        raise ValueError(f"{who}: contraction and ndc exclude each other (NDC already maps a forward-facing "
                         "capture's infinite frustum into a box)")
    if contraction is not None and far is None:
        raise ValueError(f"{who}: a contracted (unbounded) model needs far, where its rays end")
    if far is not None and not (0.0 <= float(near) < float(far) and math.isfinite(float(far))):
        raise ValueError(f"{who}: near and far must satisfy 0 <= near < far < inf, got near={near!r}, far={far!r}")
    return {"contraction": contraction, "cone_angle": float(cone_angle), "near": float(near),
            "far": None if far is None else float(far), "disparity_step": float(disparity_step)}


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


def step_at(positions: torch.Tensor, aabb: torch.Tensor, step_size: float, cone_angle: float,
            disparity_step: float = 0.0):
    """The marching step near ``positions [S,3]``: ``step_size`` (a Python float) without cone
    stepping, else ``[S]`` ``max(distance * max(cone_angle, distance * disparity_step), step_size)``
    (``march_rays``' step) at the distance from the box centre (cameras sit near the box, so it
    stands for the distance from them)."""
    if cone_angle == 0.0:
        return step_size
    centre = (aabb[:3] + aabb[3:]) * 0.5
    distance = (positions - centre).norm(dim=-1)
    return (distance * (distance * disparity_step).clamp_min(cone_angle)).clamp_min(step_size)


def intervals_per_ray(near: float, far: float, step_size: float, cone_angle: float,
                      disparity_step: float = 0.0) -> float:
    """About how many intervals a ray from ``near`` to ``far`` marches: the integral of
    ``dt / step(t)`` with ``march_rays``' step ``max(step_size, cone_angle t, disparity_step t^2)``
    (fixed steps, then geometric ones from ``step_size / cone_angle``, then evenly spaced in
    disparity from ``cone_angle / disparity_step``)."""
    if cone_angle == 0.0:
        return (far - near) / step_size
    t_cone = step_size / cone_angle  # where cone steps take over from fixed ones
    t_disparity = cone_angle / disparity_step if disparity_step else math.inf  # and disparity steps from them
    if t_disparity < t_cone:  # the cone never leads: fixed steps until disparity_step t^2 = step_size
        t_cone = t_disparity = math.sqrt(step_size / disparity_step)

    def part(lo, hi):  # [near, far] within [lo, hi]
        return max(lo, near), min(hi, far)

    lo, hi = part(0.0, t_cone)
    count = max(0.0, hi - lo) / step_size
    lo, hi = part(t_cone, t_disparity)
    count += math.log(hi / lo) / cone_angle if hi > lo else 0.0
    lo, hi = part(t_disparity, math.inf)
    count += (1.0 / lo - 1.0 / hi) / disparity_step if hi > lo else 0.0
    return count
