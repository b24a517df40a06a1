"""Ray encodings for light-field networks: a whole ray to one feature vector.

Both encodings first move the ray into the scene box's unit frame (box centre at the origin,
each half-extent scaled to 1), so a network sees the same numbers whatever the scene's units:

- ``"points"`` (R2L): ``n_points`` points on the ray's segment through the ball of radius
  sqrt(3) around the box centre (the ball holds the unit box), evenly spaced about the ray's
  closest approach to the centre, each frequency-encoded and concatenated. The segment depends
  on the ray's line only (not where along it the origin sits) and varies smoothly with the ray,
  even for rays that miss the box (a clipped box chord has kinks where a ray crosses an edge).
- ``"pluecker"``: the Pluecker coordinates of the line, ``(d, o x d)`` with unit ``d``: 6
  numbers that name the line whatever point ``o`` on it is given, frequency-encoded.

Everything is plain differentiable PyTorch plus ``fastnerf.ops.freq_encode``, so
``torch.export`` / ONNX can trace it (with ``backend="torch"``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..ops.freq_encode import freq_encode

RAY_ENCODINGS = ("points", "pluecker")
BALL_RADIUS = math.sqrt(3.0)  # the ball around the unit box [-1, 1]^3


def to_unit_box(rays_o: torch.Tensor, rays_d: torch.Tensor, aabb: torch.Tensor):
    """Rays ``[N,3]`` in the frame where ``aabb [6]`` is ``[-1,1]^3``: ``(origins [N,3], unit directions [N,3])``."""
    centre = (aabb[:3] + aabb[3:]) * 0.5
    half = (aabb[3:] - aabb[:3]) * 0.5
    origins = (rays_o - centre) / half
    directions = rays_d / half
    directions = directions / directions.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    return origins, directions


def ray_points(origins: torch.Tensor, directions: torch.Tensor, n_points: int) -> torch.Tensor:
    """``[N, n_points, 3]``: points evenly spaced on the chord of the radius-sqrt(3) ball along
    each unit-frame ray (``origins [N,3]``, unit ``directions [N,3]``), about its closest approach
    to the centre (stratum midpoints of ``[-sqrt(3), sqrt(3)]``)."""
    t_closest = -(origins * directions).sum(-1, keepdim=True)  # [N,1]
    fractions = (torch.arange(n_points, dtype=origins.dtype, device=origins.device) + 0.5) / n_points
    offsets = (2.0 * fractions - 1.0) * BALL_RADIUS  # [K]
    t = t_closest + offsets  # [N,K]
    return origins[:, None, :] + t[..., None] * directions[:, None, :]


def pluecker(origins: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """``[N,6]`` Pluecker coordinates ``(d, o x d)`` of lines through ``origins [N,3]`` along unit ``directions [N,3]``."""
    return torch.cat([directions, torch.linalg.cross(origins, directions, dim=-1)], dim=-1)


def encoded_width(kind: str, n_points: int, n_freqs: int) -> int:
    """Width of ``RayEncoding(kind, ...)``'s output."""
    per_value = 1 + 2 * n_freqs
    return 3 * n_points * per_value if kind == "points" else 6 * per_value


class RayEncoding(nn.Module):
    """A ray ``(rays_o [N,3], rays_d [N,3])`` to ``[N, out_dim]`` (see the module docstring).

    Args:
        kind: ``"points"`` or ``"pluecker"``.
        aabb: ``(xmin, ymin, zmin, xmax, ymax, zmax)`` of the scene (an NDC box for NDC rays).
        n_points: points per ray (``"points"`` only).
        n_freqs: frequencies of the encoding of each coordinate.
    """

    def __init__(self, kind: str, aabb, *, n_points: int = 16, n_freqs: int = 8):
        super().__init__()
        if kind not in RAY_ENCODINGS:
            raise ValueError(f"RayEncoding: kind must be one of {RAY_ENCODINGS}, got {kind!r}")
        if int(n_points) != n_points or n_points < 1:
            raise ValueError(f"RayEncoding: n_points must be a positive integer, got {n_points!r}")
        if int(n_freqs) != n_freqs or n_freqs < 0:
            raise ValueError(f"RayEncoding: n_freqs must be a non-negative integer, got {n_freqs!r}")
        aabb = torch.as_tensor(aabb, dtype=torch.float32)
        if aabb.shape != (6,) or not bool((aabb[:3] < aabb[3:]).all()):
            raise ValueError(f"RayEncoding: aabb must be (xmin, ymin, zmin, xmax, ymax, zmax), min < max; got {aabb.tolist()}")
        self.kind, self.n_points, self.n_freqs = kind, int(n_points), int(n_freqs)
        self.register_buffer("aabb", aabb)
        self.out_dim = encoded_width(kind, self.n_points, self.n_freqs)
        self.backend = None  # op backend for freq_encode (None: fastest; "torch" to export)

    def forward(self, rays_o: torch.Tensor, rays_d: torch.Tensor) -> torch.Tensor:  # [N,3], [N,3] -> [N, out_dim]
        origins, directions = to_unit_box(rays_o, rays_d, self.aabb)
        if self.kind == "points":
            values = ray_points(origins, directions, self.n_points).reshape(-1, 3)  # [N*K,3]
        else:
            values = pluecker(origins, directions)  # [N,6]
        encoded = freq_encode(values, self.n_freqs, backend=self.backend)
        return encoded.reshape(rays_o.shape[0], self.out_dim)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, n_points={self.n_points}, n_freqs={self.n_freqs}, out_dim={self.out_dim}"
