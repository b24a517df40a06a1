"""Reference ray marching through an occupancy grid (the spec of fastnerf.ops.march_rays).

Every quantity is one float32 operation after another, in this order; the C++, CUDA and
Triton backends evaluate the same operations (no fused multiply-add, correctly rounded
division), so sample counts agree exactly and t values bitwise:

    t0      = t_near + offset * step                         (offset = 0 without offsets)
    start_m = t0 + float(m) * step                           m = 0, 1, ... while start_m < t_far
    end_m   = min(t0 + float(m + 1) * step, t_far)
    mid     = (start_m + end_m) * 0.5
    p_a     = o_a + d_a * mid                                a = x, y, z
    c_a     = (p_a - lo_a) * scale_a,  scale_a = float(R_a) / (hi_a - lo_a)
    kept    iff 0 <= c_a < R_a for every axis and occupied[int(c_a)...]

So a midpoint exactly on a cell face belongs to the cell above it (floor), and a midpoint on the
aabb's upper face is outside (empty). float(m) is exact while m < 2**24 = MAX_INTERVALS, the
most intervals a ray may have (fastnerf.ops.march_rays checks it). No per-ray cap: every kept
interval is returned.
"""

import torch

MAX_INTERVALS = 2**24
# Candidate intervals materialised at once; rays are marched in chunks below this.
_CHUNK_CANDIDATES = 1 << 22


def grid_scale(aabb: torch.Tensor, resolution) -> torch.Tensor:
    """scale [3] float32: cells per unit length on each axis, float(R_a) / (hi_a - lo_a)."""
    res = torch.tensor([float(r) for r in resolution], dtype=torch.float32, device=aabb.device)
    return res / (aabb[3:] - aabb[:3])


def occupied_at(points: torch.Tensor, aabb: torch.Tensor, occupied: torch.Tensor) -> torch.Tensor:
    """Whether each point [M, 3] lies in an occupied cell of `occupied` [Rx, Ry, Rz] (outside: False)."""
    res = occupied.shape
    cells = (points - aabb[:3]) * grid_scale(aabb, res)
    limits = torch.tensor([float(r) for r in res], dtype=torch.float32, device=points.device)
    inside = ((cells >= 0) & (cells < limits)).all(1)
    index = torch.where(inside[:, None], cells, torch.zeros_like(cells)).long()
    return inside & occupied[index[:, 0], index[:, 1], index[:, 2]]


def interval_starts(t0: torch.Tensor, m: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """start_m = t0 + float(m) * step (float32; m int64)."""
    return t0 + m.to(torch.float32) * step


def interval_counts(t0: torch.Tensor, t_far: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """[N] int64: the number of m with start_m < t_far (a prefix, as start_m grows with m)."""
    estimate = torch.ceil((t_far.double() - t0.double()) / step.double())
    count = estimate.nan_to_num(0.0).clamp(0, MAX_INTERVALS).long()
    while True:  # the estimate is off by a rounding or two; settle it with the exact rule
        up = (count < MAX_INTERVALS) & (interval_starts(t0, count, step) < t_far)
        down = (count > 0) & ~(interval_starts(t0, count - 1, step) < t_far)
        if not bool((up | down).any()):
            return count
        count = count + up.long() - down.long()


def _march_chunk(rays_o, rays_d, t0, t_far, step, aabb, occupied, counts):
    n_rays = t0.shape[0]
    ray_ids = torch.repeat_interleave(torch.arange(n_rays, device=t0.device), counts)
    first = torch.cumsum(counts, 0) - counts
    m = torch.arange(ray_ids.shape[0], device=t0.device) - first[ray_ids]
    t0_s, t_far_s = t0[ray_ids], t_far[ray_ids]
    starts = interval_starts(t0_s, m, step)
    ends = torch.minimum(interval_starts(t0_s, m + 1, step), t_far_s)
    mids = (starts + ends) * 0.5
    points = rays_o[ray_ids] + rays_d[ray_ids] * mids[:, None]
    keep = occupied_at(points, aabb, occupied)
    kept_counts = torch.bincount(ray_ids[keep], minlength=n_rays)
    return kept_counts, starts[keep], ends[keep]


def march_rays(
    rays_o: torch.Tensor,  # [N, 3] float32
    rays_d: torch.Tensor,  # [N, 3] float32
    t_near: torch.Tensor,  # [N] float32
    t_far: torch.Tensor,  # [N] float32
    aabb: torch.Tensor,  # [6] float32 grid bounds
    occupied: torch.Tensor,  # [Rx, Ry, Rz] bool, occupied[i, j, k]: x index i, y index j, z index k
    step_size: float,
    offsets: torch.Tensor = None,  # [N] float32 in [0, 1), or None
):
    """Returns (packed_info [N, 2] int64, t_starts [S] float32, t_ends [S] float32), ray-major."""
    n_rays, device = t_near.shape[0], t_near.device
    step = torch.tensor(step_size, dtype=torch.float32, device=device)
    t0 = t_near if offsets is None else t_near + offsets * step
    counts = interval_counts(t0, t_far, step)
    kept, starts, ends = [], [], []
    cumulative = torch.cumsum(counts, 0)
    begin = 0
    while begin < n_rays:  # chunks of rays, each with at most _CHUNK_CANDIDATES candidates (or one ray)
        before = int(cumulative[begin - 1]) if begin else 0
        end = int(torch.searchsorted(cumulative, before + _CHUNK_CANDIDATES, right=True))
        end = min(max(end, begin + 1), n_rays)
        part = slice(begin, end)
        k, s, e = _march_chunk(rays_o[part], rays_d[part], t0[part], t_far[part], step, aabb, occupied, counts[part])
        kept.append(k), starts.append(s), ends.append(e)
        begin = end
    kept = torch.cat(kept) if kept else torch.zeros(0, dtype=torch.int64, device=device)
    packed_info = torch.stack([torch.cumsum(kept, 0) - kept, kept], 1)
    empty = torch.zeros(0, dtype=torch.float32, device=device)
    t_starts = torch.cat(starts) if starts else empty
    t_ends = torch.cat(ends) if ends else empty
    return packed_info, t_starts, t_ends
