"""Interim pure-PyTorch stand-ins for pieces other branches own, used ONLY while those pieces
are placeholders in this checkout (``NotImplementedError`` or an ``ImportError``):

- ``ray_aabb``, ``march_rays`` and ``fastnerf.volume.render_rays`` and ``OccupancyGrid`` (branch ``march``);
- ``hash_encode``, ``freq_encode`` and the spherical-harmonics encoding (branch ``enc``).

They follow ARCHITECTURE.md section 3 so the real ops drop in unchanged; ``resolve()`` picks
the real one as soon as it exists. Delete this file once ``march`` and ``enc`` are merged.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..ops import composite


# ------------------------------------------------------------------------------- encodings
def hash_encode(x: torch.Tensor, table: torch.Tensor, *, n_min: int, n_max: int, backend=None) -> torch.Tensor:
    """Multiresolution hash encoding, ``x [N,3]`` in [0,1], ``table [L,T,F]`` -> ``[N, L*F]``.

    Index arithmetic in int32 (wrapping multiplication gives the uint32 hash's low bits; T is a
    power of two), corners and weights built per axis and broadcast to the 2x2x2 cell.
    """
    n_levels, table_size, n_features = table.shape
    n = x.shape[0]
    growth = math.exp((math.log(n_max) - math.log(n_min)) / (n_levels - 1)) if n_levels > 1 else 1.0
    resolutions = [math.floor(n_min * growth**level) for level in range(n_levels)]
    res = torch.tensor(resolutions, dtype=x.dtype, device=x.device)  # [L]
    stride = torch.tensor([r + 1 for r in resolutions], dtype=torch.int32, device=x.device)[None, :, None]  # [1,L,1]
    dense = torch.tensor([(r + 1) ** 3 <= table_size for r in resolutions], device=x.device)  # [L]
    scaled = x[:, None, :] * res[:, None]  # [N,L,3]
    base = scaled.floor()
    frac = scaled - base
    base = base.int()
    vx, vy, vz = (torch.stack([base[..., k], base[..., k] + 1], -1) for k in range(3))  # [N,L,2] each
    w = torch.stack([1 - frac, frac], -1)  # [N,L,3,2]
    weights = w[:, :, 0, :, None, None] * w[:, :, 1, None, :, None] * w[:, :, 2, None, None, :]  # [N,L,2,2,2]
    dense_index = vx[..., :, None, None] + (vy * stride)[..., None, :, None] + (vz * stride * stride)[..., None, None, :]
    # 2654435761 as a wrapping int32 is -1640531535.
    hashed = vx[..., :, None, None] ^ (vy * -1640531535)[..., None, :, None] ^ (vz * 805459861)[..., None, None, :]
    index = torch.where(dense[None, :, None, None, None], dense_index, hashed) & (table_size - 1)
    index = index.long() + (torch.arange(n_levels, device=x.device) * table_size)[None, :, None, None, None]
    values = table.reshape(-1, n_features).index_select(0, index.reshape(-1)).view(n, n_levels, 8, n_features)
    return (weights.reshape(n, n_levels, 8, 1) * values).sum(2).reshape(n, n_levels * n_features)


def freq_encode(x: torch.Tensor, n_freqs: int, *, include_input: bool = True, backend=None) -> torch.Tensor:
    """``[x, sin(2^0 x), cos(2^0 x), ...]``, each block D wide: ``[N,D] -> [N, D*(include_input+2*n_freqs)]``."""
    blocks = [x] if include_input else []
    for k in range(n_freqs):
        blocks += [torch.sin(x * 2.0**k), torch.cos(x * 2.0**k)]
    return torch.cat(blocks, dim=-1)


def sh_encode(d: torch.Tensor, degree: int = 4) -> torch.Tensor:
    """Real spherical harmonics of unit directions ``d [N,3]`` up to ``degree`` (1..4) -> ``[N, degree**2]``."""
    x, y, z = d.unbind(-1)
    xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
    out = [torch.full_like(x, 0.28209479177387814)]
    if degree > 1:
        out += [-0.48860251190291987 * y, 0.48860251190291987 * z, -0.48860251190291987 * x]
    if degree > 2:
        out += [1.0925484305920792 * xy, -1.0925484305920792 * yz, 0.94617469575755997 * zz - 0.31539156525251999,
                -1.0925484305920792 * xz, 0.54627421529603959 * (xx - yy)]
    if degree > 3:
        out += [0.59004358992664352 * y * (-3.0 * xx + yy), 2.8906114426405538 * xy * z,
                0.45704579946446572 * y * (1.0 - 5.0 * zz), 0.3731763325901154 * z * (5.0 * zz - 3.0),
                0.45704579946446572 * x * (1.0 - 5.0 * zz), 1.4453057213202769 * z * (xx - yy),
                0.59004358992664352 * x * (-xx + 3.0 * yy)]
    return torch.stack(out, dim=-1)


# ------------------------------------------------------------------------------- marching
def ray_aabb(rays_o, rays_d, aabb, *, backend=None):
    """``(t_near [N], t_far [N], hit [N])`` of rays against ``aabb [6]``; t_near >= 0."""
    inv = 1.0 / torch.where(rays_d.abs() < 1e-12, torch.full_like(rays_d, 1e-12), rays_d)
    t0 = (aabb[:3] - rays_o) * inv
    t1 = (aabb[3:] - rays_o) * inv
    t_near = torch.minimum(t0, t1).amax(-1).clamp(min=0.0)
    t_far = torch.maximum(t0, t1).amin(-1)
    hit = t_far > t_near
    return t_near, torch.where(hit, t_far, t_near), hit


class OccupancyGrid(nn.Module):
    """Occupancy over ``aabb`` at ``resolution**3`` cells: an EMA of sampled density per cell
    (``-1`` = never sampled, counts as occupied) and the bool ``occupied [R,R,R]`` it implies."""

    def __init__(self, aabb, resolution: int = 64):
        super().__init__()
        self.resolution = int(resolution)
        self.register_buffer("aabb", torch.as_tensor(aabb, dtype=torch.float32).clone())
        self.register_buffer("density", torch.full((self.resolution**3,), -1.0))
        self.register_buffer("occupied", torch.ones((self.resolution,) * 3, dtype=torch.bool))

    @torch.no_grad()
    def update(self, density_fn, *, step_size: float, generator=None, n_cells: int | None = None,
               decay: float = 0.95, alpha_threshold: float = 0.01, chunk: int = 65536) -> None:
        r = self.resolution
        total = r**3
        device = self.density.device
        if n_cells is None or n_cells >= total:
            cells = torch.arange(total, device=device)
        else:
            cells = torch.randperm(total, generator=generator, device=device)[:n_cells]
        ijk = torch.stack([cells // (r * r), (cells // r) % r, cells % r], -1).float()
        jitter = torch.rand(ijk.shape, generator=generator, device=device)
        lo, hi = self.aabb[:3], self.aabb[3:]
        points = lo + (ijk + jitter) / r * (hi - lo)
        sigmas = torch.cat([density_fn(points[i:i + chunk]) for i in range(0, len(points), chunk)])
        old = self.density[cells]
        self.density[cells] = torch.where(old < 0, sigmas, torch.maximum(old * decay, sigmas))
        known = self.density[self.density >= 0]
        threshold = min(alpha_threshold / step_size, float(known.mean())) if known.numel() else 0.0
        self.occupied.copy_(((self.density > threshold) | (self.density < 0)).view(r, r, r))

    def lookup(self, points: torch.Tensor) -> torch.Tensor:  # [S,3] -> [S] bool
        lo, hi = self.aabb[:3], self.aabb[3:]
        cell = ((points - lo) / (hi - lo) * self.resolution).floor().long()
        inside = ((cell >= 0) & (cell < self.resolution)).all(-1)
        cell = cell.clamp(0, self.resolution - 1)
        return inside & self.occupied[cell[:, 0], cell[:, 1], cell[:, 2]]


def march_rays(rays_o, rays_d, t_near, t_far, grid, step_size, *, offsets=None, backend=None):
    """Packed intervals of length ``step_size`` whose midpoint is in an occupied cell."""
    n_rays = rays_o.shape[0]
    device = rays_o.device
    start = t_near if offsets is None else t_near + offsets * step_size
    n_steps = torch.ceil((t_far - start) / step_size).clamp(min=0).long()
    ray_index = torch.repeat_interleave(torch.arange(n_rays, device=device), n_steps)
    first = torch.cumsum(n_steps, 0) - n_steps
    local = torch.arange(ray_index.numel(), device=device) - first[ray_index]
    t_starts = start[ray_index] + local.to(start.dtype) * step_size
    t_ends = torch.minimum(t_starts + step_size, t_far[ray_index])
    mids = 0.5 * (t_starts + t_ends)
    keep = grid.lookup(rays_o[ray_index] + rays_d[ray_index] * mids[:, None]) & (t_ends > t_starts)
    counts = torch.bincount(ray_index[keep], minlength=n_rays)
    packed_info = torch.stack([torch.cumsum(counts, 0) - counts, counts], -1)
    return packed_info, t_starts[keep].contiguous(), t_ends[keep].contiguous()


def _ray_indices(packed_info: torch.Tensor) -> torch.Tensor:
    return torch.repeat_interleave(torch.arange(packed_info.shape[0], device=packed_info.device), packed_info[:, 1])


def render_rays(field_fn, rays_o, rays_d, grid, *, step_size, background, train, generator=None,
                early_stop_eps: float = 1e-4, t_min: float = 0.0, backend=None, round_steps: int = 32):
    """Volume-render rays through ``field_fn(positions [S,3], directions [S,3]) -> (sigmas [S], rgb [S,3])``.

    Training: one jittered march, one field call, one composite. Inference: marches in rounds
    of growing length and stops rays whose transmittance fell below ``early_stop_eps``.
    Returns ``dict(rgb [N,3], opacity [N], depth [N], n_samples, n_marched)``.
    """
    n_rays = rays_o.shape[0]
    background = torch.as_tensor(background, dtype=rays_o.dtype, device=rays_o.device).expand(n_rays, 3)
    t_near, t_far, hit = ray_aabb(rays_o, rays_d, grid.aabb)
    t_near = t_near.clamp(min=t_min)
    t_far = torch.where(hit & (t_far > t_near), t_far, t_near)
    if train:
        offsets = torch.rand(n_rays, generator=generator, device=rays_o.device)
        packed_info, t_starts, t_ends = march_rays(rays_o, rays_d, t_near, t_far, grid, step_size, offsets=offsets)
        ray_index = _ray_indices(packed_info)
        mids = (0.5 * (t_starts + t_ends))[:, None]
        sigmas, rgbs = field_fn(rays_o[ray_index] + rays_d[ray_index] * mids, rays_d[ray_index])
        result = composite(sigmas, rgbs, t_starts, t_ends, packed_info, backend=backend)
        rgb = result.out + (1 - result.opacity)[:, None] * background
        return {"rgb": rgb, "opacity": result.opacity, "depth": result.depth,
                "n_samples": int(t_starts.numel()), "n_marched": int(t_starts.numel())}
    rgb = torch.zeros(n_rays, 3, dtype=rays_o.dtype, device=rays_o.device)
    depth = torch.zeros(n_rays, dtype=rays_o.dtype, device=rays_o.device)
    transmittance = torch.ones(n_rays, dtype=rays_o.dtype, device=rays_o.device)
    t_current = t_near.clone()
    alive = torch.nonzero(t_far > t_near).squeeze(-1)
    n_samples, steps = 0, round_steps
    while alive.numel():
        t0 = t_current[alive]
        t1 = torch.minimum(t0 + steps * step_size, t_far[alive])
        packed_info, t_starts, t_ends = march_rays(rays_o[alive], rays_d[alive], t0, t1, grid, step_size)
        if t_starts.numel():
            ray_index = _ray_indices(packed_info)
            origins, directions = rays_o[alive][ray_index], rays_d[alive][ray_index]
            mids = (0.5 * (t_starts + t_ends))[:, None]
            sigmas, rgbs = field_fn(origins + directions * mids, directions)
            result = composite(sigmas, rgbs, t_starts, t_ends, packed_info, backend=backend)
            rgb[alive] += transmittance[alive, None] * result.out
            depth[alive] += transmittance[alive] * result.depth
            transmittance[alive] *= 1 - result.opacity
            n_samples += int(t_starts.numel())
        t_current[alive] = t1
        alive = alive[(t1 < t_far[alive]) & (transmittance[alive] > early_stop_eps)]
        steps *= 2
    opacity = 1 - transmittance
    return {"rgb": rgb + transmittance[:, None] * background, "opacity": opacity, "depth": depth,
            "n_samples": n_samples}


# ------------------------------------------------------------------------------- resolution
def _works(call) -> bool:
    try:
        call()
        return True
    except NotImplementedError:
        return False


_RESOLVED: dict = {}


def resolve() -> dict:
    """The pieces to use: the real ones where they exist in this checkout, these stand-ins otherwise.

    Keys: ``hash_encode``, ``freq_encode``, ``sh_encode``, ``OccupancyGrid``, ``render_rays``
    and ``interim`` (names of the stand-ins in use, for logs and reports).
    """
    if _RESOLVED:
        return _RESOLVED
    from .. import ops

    x = torch.rand(2, 3)
    interim = []
    pieces = {"sh_encode": sh_encode}
    if _works(lambda: ops.hash_encode(x, torch.zeros(2, 16, 2), n_min=2, n_max=4)):
        pieces["hash_encode"] = ops.hash_encode
    else:
        pieces["hash_encode"] = hash_encode
        interim.append("hash_encode")
    if _works(lambda: ops.freq_encode(x, 2)):
        pieces["freq_encode"] = ops.freq_encode
    else:
        pieces["freq_encode"] = freq_encode
        interim.append("freq_encode")
    try:
        from ..fields.occupancy import OccupancyGrid as RealGrid
        from ..volume import render_rays as real_render_rays

        if not _works(lambda: ops.march_rays(x, x, x[:, 0], x[:, 0] + 1, None, 0.1)):
            raise ImportError
        pieces["OccupancyGrid"], pieces["render_rays"] = RealGrid, real_render_rays
    except (ImportError, TypeError, AttributeError):
        pieces["OccupancyGrid"], pieces["render_rays"] = OccupancyGrid, render_rays
        interim += ["OccupancyGrid", "march_rays", "ray_aabb", "render_rays"]
    try:
        from ..fields.encodings import SphericalHarmonicsEncoding  # noqa: F401
    except ImportError:
        interim.append("sh_encode")
    pieces["interim"] = tuple(interim)
    _RESOLVED.update(pieces)
    return _RESOLVED
