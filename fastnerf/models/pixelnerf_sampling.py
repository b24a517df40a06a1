"""Where PixelNeRF evaluates its field along rays: stratified bins (training and the dense
coarse pass; ``volume.dense_intervals`` with a point in each) and inverse-CDF importance samples
(the dense fine pass). The occupancy grid of a conditioned scene (accelerated rendering) is
``fields.occupancy.occupancy_from_corners``.

Packed layout throughout (docs/architecture.md, public contracts): ray r owns samples
``packed_info[r, 0] .. + packed_info[r, 1]``, sorted by t.
"""

from __future__ import annotations

import torch

from ..ops import ray_aabb
from ..volume import dense_intervals


def ray_segments(rays_o, rays_d, aabb, near: float, far: float, backend=None):
    """``(t_near [N], t_far [N])``: each ray inside the box and within [near, far]; misses have t_far <= t_near."""
    t_near, t_far, hit = ray_aabb(rays_o.float().contiguous(), rays_d.float().contiguous(), aabb, backend=backend)
    t_near = t_near.clamp_min(near)
    t_far = torch.where(hit, t_far.clamp_max(far), t_near)
    return t_near, torch.maximum(t_far, t_near)


def stratified_bins(t_near, t_far, n_bins: int, generator=None, jitter: bool = True):
    """``n_bins`` equal bins per ray with a hit: ``(packed_info [N,2], t_starts [S], t_ends [S], t_points [S])``.

    ``t_points`` is uniform within each bin when ``jitter`` (training), else the bin's midpoint.
    """
    device = t_near.device
    packed_info, t_starts, t_ends = dense_intervals(t_near, t_far, n_bins)  # the layout march_rays returns
    if jitter:
        u = torch.rand(t_starts.shape, generator=generator, device=generator.device if generator else device).to(device)
    else:
        u = torch.full_like(t_starts, 0.5)
    return packed_info, t_starts, t_ends, t_starts + (t_ends - t_starts) * u


def importance_points(t_starts, t_ends, weights, n_rays_hit: int, n_bins: int, n_fine: int):
    """Deterministic inverse-CDF samples ``[R, n_fine]`` from each ray's bin weights (the dense
    fine pass; rays with a hit only, each owning ``n_bins`` consecutive bins)."""
    starts = t_starts.view(n_rays_hit, n_bins)
    ends = t_ends.view(n_rays_hit, n_bins)
    pdf = weights.view(n_rays_hit, n_bins) + 1e-5
    pdf = pdf / pdf.sum(-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, -1)], -1)  # [R, n_bins + 1]
    u = (torch.arange(n_fine, device=pdf.device, dtype=pdf.dtype) + 0.5) / n_fine
    u = u.expand(n_rays_hit, n_fine).contiguous()
    index = torch.searchsorted(cdf, u, right=True).clamp(1, n_bins)  # bin index + 1
    below, above = cdf.gather(1, index - 1), cdf.gather(1, index)
    fraction = (u - below) / (above - below).clamp_min(1e-8)
    bin_start, bin_end = starts.gather(1, index - 1), ends.gather(1, index - 1)
    return bin_start + fraction * (bin_end - bin_start)


def merged_intervals(coarse_points, fine_points, t_near, t_far):
    """Sorted union of coarse and fine points ``[R, n]`` as intervals between midpoints:
    ``(t_starts [R, n], t_ends [R, n], t_points [R, n], order [R, n])``."""
    points, order = torch.sort(torch.cat([coarse_points, fine_points], -1), -1)
    mids = (points[:, 1:] + points[:, :-1]) * 0.5
    t_starts = torch.cat([t_near[:, None], mids], -1)
    t_ends = torch.cat([mids, t_far[:, None]], -1)
    return t_starts, t_ends, points, order
