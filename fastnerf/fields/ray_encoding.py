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
- ``"hash"``: the ``"points"`` points, each looked up in a learned multiresolution hash grid
  over the box (``fastnerf.fields.HashEncoding``, the teacher's kind of grid, read at
  ``(p + 1) / 2`` in ``[0, 1]^3``: the teacher's own normalisation, so a teacher's table can be
  copied in), their features concatenated, then the frequency-encoded direction (the features
  alone do not say which way the ray runs). Learned features give the network capacity where it
  is cheap: a lookup per point instead of wider layers.

Everything is plain differentiable PyTorch plus ``fastnerf.ops.freq_encode`` and
``fastnerf.ops.hash_encode`` (whose ``"torch"`` backend is plain PyTorch too), so
``torch.export`` / ONNX can trace it (with ``backend="torch"``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..ops.freq_encode import freq_encode
from .hash_grid import HashEncoding

RAY_ENCODINGS = ("points", "pluecker", "hash")
# The "hash" grid's sizes by default: the teacher's (16 levels x 2 features, 2^15 rows each, finest
# level 192 cells at 100x100 images); students of a hash teacher take its own (LightField.config_for).
HASH_DEFAULTS = dict(hash_levels=16, hash_features=2, hash_log2_size=15, hash_min_res=16, hash_max_res=192)
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


def encoded_width(kind: str, n_points: int, n_freqs: int, hash_width: int = 0, dir_freqs: int = 0) -> int:
    """Width of ``RayEncoding(kind, ...)``'s output (``hash_width``: the grid's features per point)."""
    per_value = 1 + 2 * n_freqs
    if kind == "hash":
        return n_points * hash_width + 3 * (1 + 2 * dir_freqs)
    return 3 * n_points * per_value if kind == "points" else 6 * per_value


class RayEncoding(nn.Module):
    """A ray ``(rays_o [N,3], rays_d [N,3])`` to ``[N, out_dim]`` (see the module docstring).

    Args:
        kind: ``"points"``, ``"pluecker"`` or ``"hash"``.
        aabb: ``(xmin, ymin, zmin, xmax, ymax, zmax)`` of the scene (an NDC box for NDC rays).
        n_points: points per ray (``"points"`` and ``"hash"``).
        n_freqs: frequencies of the encoding of each coordinate (``"points"``, ``"pluecker"``).
        hash_levels, hash_features, hash_log2_size, hash_min_res, hash_max_res: the ``"hash"``
            grid (``HashEncoding``'s levels, features per level, log2 rows per level, coarsest and
            finest resolution); dir_freqs: frequencies of its direction encoding.
    """

    def __init__(self, kind: str, aabb, *, n_points: int = 16, n_freqs: int = 8, dir_freqs: int = 4, **hash_grid):
        super().__init__()
        if kind not in RAY_ENCODINGS:
            raise ValueError(f"RayEncoding: kind must be one of {RAY_ENCODINGS}, got {kind!r}")
        if int(n_points) != n_points or n_points < 1:
            raise ValueError(f"RayEncoding: n_points must be a positive integer, got {n_points!r}")
        for name, value in (("n_freqs", n_freqs), ("dir_freqs", dir_freqs)):
            if int(value) != value or value < 0:
                raise ValueError(f"RayEncoding: {name} must be a non-negative integer, got {value!r}")
        unknown = sorted(set(hash_grid) - set(HASH_DEFAULTS))
        if unknown:
            raise TypeError(f"RayEncoding: unexpected argument(s) {', '.join(unknown)}")
        aabb = torch.as_tensor(aabb, dtype=torch.float32)
        if aabb.shape != (6,) or not bool((aabb[:3] < aabb[3:]).all()):
            raise ValueError(f"RayEncoding: aabb must be (xmin, ymin, zmin, xmax, ymax, zmax), min < max; got {aabb.tolist()}")
        self.kind, self.n_points, self.n_freqs, self.dir_freqs = kind, int(n_points), int(n_freqs), int(dir_freqs)
        self.register_buffer("aabb", aabb)
        self.grid = None
        if kind == "hash":
            sizes = {**HASH_DEFAULTS, **hash_grid}
            self.grid = HashEncoding(int(sizes["hash_levels"]), int(sizes["hash_features"]),
                                     int(sizes["hash_log2_size"]), sizes["hash_min_res"], sizes["hash_max_res"])
        self.out_dim = encoded_width(kind, self.n_points, self.n_freqs, self.grid.out_dim if self.grid else 0,
                                     self.dir_freqs)
        self.backend = None  # op backend for freq_encode / hash_encode (None: fastest; "torch" to export)

    def forward(self, rays_o: torch.Tensor, rays_d: torch.Tensor) -> torch.Tensor:  # [N,3], [N,3] -> [N, out_dim]
        origins, directions = to_unit_box(rays_o, rays_d, self.aabb)
        if self.kind == "hash":
            points = ray_points(origins, directions, self.n_points).reshape(-1, 3)  # [N*K,3] in the unit frame
            features = self.grid((points + 1.0) * 0.5, backend=self.backend)  # [N*K, L*F]
            view = freq_encode(directions, self.dir_freqs, backend=self.backend)  # [N, 3 (1 + 2 dir_freqs)]
            return torch.cat([features.reshape(rays_o.shape[0], -1), view], dim=-1)
        if self.kind == "points":
            values = ray_points(origins, directions, self.n_points).reshape(-1, 3)  # [N*K,3]
        else:
            values = pluecker(origins, directions)  # [N,6]
        encoded = freq_encode(values, self.n_freqs, backend=self.backend)
        return encoded.reshape(rays_o.shape[0], self.out_dim)

    def extra_repr(self) -> str:
        if self.kind == "hash":
            return f"kind='hash', n_points={self.n_points}, dir_freqs={self.dir_freqs}, out_dim={self.out_dim}"
        return f"kind={self.kind!r}, n_points={self.n_points}, n_freqs={self.n_freqs}, out_dim={self.out_dim}"
