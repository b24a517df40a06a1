"""Reference baked rendering (the spec of fastnerf.ops.baked_render).

A baked scene is a sparse vertex grid over an aabb: ``index [Gx,Gy,Gz]`` int32 gives each
vertex's row of ``values [V, 1+F]`` (density, then F features), or -1 where nothing is stored;
``occupied [Rx,Ry,Rz]`` bool says where samples are taken (any resolution over the same aabb).
Each ray is marched exactly as ``march_rays`` marches it (same samples, bitwise), and at each
kept sample midpoint p the vertex grid is interpolated trilinearly:

    u_a    = clamp((p_a - lo_a) * vscale_a, 0, G_a - 1),  vscale_a = float(G_a - 1) / (hi_a - lo_a)
    i_a    = min(int(u_a), G_a - 2),  f_a = u_a - float(i_a)                   (float32)
    b      = ((wx * wy) * wz) with w_a = f_a at the upper vertex, 1 - f_a at the lower (float32)
    v      = sum over the 8 corners of b * values[row]   (a corner whose row is -1 or >= V adds 0)
    sigma  = max(v[0], 0),  feature = v[1:]

then composited front to back as ``composite`` does (alpha = 1 - exp(-sigma dt), w = T alpha;
features = sum w feature, opacity = sum w, depth = sum w mid), with early termination: sample i
is composited iff the transmittance in front of it, T_i = exp(-sum_{j<i} sigma_j dt_j), is at
least ``early_stop_eps`` (so ``early_stop_eps = 0`` composites every sample). Backends compute
T as a running product, so a sample whose T lies within rounding of the threshold may go either
way: the result differs by at most ``early_stop_eps`` times the largest feature.

Differentiable in ``values`` (gradients reach the 8 corner rows of every composited sample;
the density's through ``max(., 0)`` where v[0] >= 0, as clamp_min passes it). Positions, the march and the
interpolation weights are float32 whatever ``values``' dtype; the weights are cast to it.
"""

import torch

from .march_rays import march_rays
from .packing import exclusive_segment_cumsum


def vertex_scale(aabb: torch.Tensor, vertices) -> torch.Tensor:
    """vscale [3] float32: vertex steps per unit length, float(G_a - 1) / (hi_a - lo_a)."""
    res = torch.tensor([float(g - 1) for g in vertices], dtype=torch.float32, device=aabb.device)
    return res / (aabb[3:] - aabb[:3])


def trilinear_corners(points: torch.Tensor, aabb: torch.Tensor, index: torch.Tensor):
    """``(rows [M,8] int64, weights [M,8] float32)`` of points ``[M,3]`` in the vertex grid ``index``;
    corner k = 4 dx + 2 dy + dz. A missing corner has row -1."""
    shape = index.shape
    upper = torch.tensor([float(g - 1) for g in shape], dtype=torch.float32, device=points.device)
    u = torch.minimum(((points - aabb[:3]) * vertex_scale(aabb, shape)).clamp_min(0.0), upper)
    u = torch.where(torch.isnan(u), torch.zeros_like(u), u)
    i0 = torch.minimum(u.long(), torch.tensor([g - 2 for g in shape], device=points.device))
    f = u - i0.to(torch.float32)
    rows, weights = [], []
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                d = torch.tensor([dx, dy, dz], device=points.device)
                w = torch.where(d.bool(), f, 1.0 - f)
                weights.append((w[:, 0] * w[:, 1]) * w[:, 2])
                corner = i0 + d
                rows.append(index[corner[:, 0], corner[:, 1], corner[:, 2]].long())
    return torch.stack(rows, 1), torch.stack(weights, 1)


def interpolate(points: torch.Tensor, aabb: torch.Tensor, index: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``[M, 1+F]``: the vertex grid's values interpolated at ``points [M,3]`` (missing corners add 0)."""
    rows, weights = trilinear_corners(points, aabb, index)
    n_rows = values.shape[0]
    present = (rows >= 0) & (rows < n_rows)
    padded = torch.cat([values, values.new_zeros(1, values.shape[1])])  # row V: zeros, for missing corners
    gathered = padded[torch.where(present, rows, torch.full_like(rows, n_rows))]  # [M, 8, 1+F]
    weights = torch.where(present, weights, torch.zeros_like(weights)).to(values.dtype)
    return (weights[:, :, None] * gathered).sum(1)


def baked_render(rays_o, rays_d, t_near, t_far, offsets, aabb, occupied, index, values, step_size: float,
                 early_stop_eps: float):
    """Returns ``(features [N,F], opacity [N], depth [N])`` in ``values``' dtype (module docstring)."""
    n_rays, channels = rays_o.shape[0], values.shape[1]
    packed_info, t_starts, t_ends = march_rays(rays_o, rays_d, t_near, t_far, aabb, occupied, step_size, offsets)
    counts = packed_info[:, 1]
    ray_ids = torch.repeat_interleave(torch.arange(n_rays, device=rays_o.device), counts)
    mids = (t_starts + t_ends) * 0.5
    points = rays_o[ray_ids] + rays_d[ray_ids] * mids[:, None]
    v = interpolate(points, aabb, index, values)
    sigma = v[:, 0].clamp_min(0.0)
    dt = (t_ends - t_starts).to(values.dtype)
    sigma_dt = sigma * dt
    first = torch.cumsum(counts, 0) - counts  # march_rays packs ray-major, rays back to back
    transmittance = torch.exp(-exclusive_segment_cumsum(sigma_dt, ray_ids, first))
    composited = (transmittance >= early_stop_eps).to(values.dtype)
    w = transmittance * -torch.expm1(-sigma_dt) * composited
    features = values.new_zeros(n_rays, channels - 1).index_add(0, ray_ids, w[:, None] * v[:, 1:])
    opacity = values.new_zeros(n_rays).index_add(0, ray_ids, w)
    depth = values.new_zeros(n_rays).index_add(0, ray_ids, w * mids.to(values.dtype))
    return features, opacity, depth
