"""Reference ray marching through an occupancy grid (the spec of fastnerf.ops.march_rays).

Every quantity is one float32 operation after another, in this order; the C++, CUDA and
Triton backends evaluate the same operations (no fused multiply-add, correctly rounded
division), so sample counts agree exactly and t values bitwise.

Intervals. With cone_angle == 0 (fixed steps), the closed form

    t0      = t_near + offset * step                         (offset = 0 without offsets)
    start_m = t0 + float(m) * step                           m = 0, 1, ... while start_m < t_far
    end_m   = min(t0 + float(m + 1) * step, t_far)

float(m) is exact while m < 2**24 = MAX_INTERVALS, the most intervals a ray may have
(fastnerf.ops.march_rays checks it). With cone_angle > 0 (Instant-NGP's cone stepping), steps
grow with distance and are accumulated:

    dt(t)       = min(max(t * max(cone_angle, t * disparity_step), step), max_step)   (max_step None: +inf)
    start_0     = t_near + offset * dt(t_near)
    end_m       = min(start_m + dt(start_m), t_far)
    start_{m+1} = start_m + dt(start_m)                      while start_m < t_far (m < 2**24)

disparity_step > 0 (it needs cone_angle > 0) makes the steps past t = cone_angle / disparity_step
grow as disparity_step * t**2: consecutive samples about disparity_step apart in disparity 1/t
(mip-NeRF 360's far-field spacing), so a ray to any far plane costs at most about 1 / cone_angle
intervals past that distance. disparity_step = 0 is plain cone stepping, bitwise (t * 0 is 0).

Kept rule, at mid = (start_m + end_m) * 0.5 and p_a = o_a + d_a * mid (a = x, y, z):

    contraction None:        c_a = (p_a - lo_a) * scale_a,  scale_a = float(R_a) / (hi_a - lo_a)
    contraction "mipnerf360": u = contract(p) (below), c_a = (u_a + 2) * (float(R_a) / 4)
    kept iff 0 <= c_a < R_a for every axis and occupied[int(c_x), int(c_y), int(c_z)]

So a midpoint exactly on a cell face belongs to the cell above it (floor), a midpoint on the
grid's upper face is outside (empty), and NaN or infinite coordinates are never kept. In the
contracted mode the grid covers the contracted cube [-2, 2]^3, whose middle half is `aabb`.
No per-ray cap: every kept interval is returned.
"""

import torch

MAX_INTERVALS = 2**24
CONTRACTIONS = (None, "mipnerf360")
# Candidate intervals materialised at once; rays are marched in chunks below this.
_CHUNK_CANDIDATES = 1 << 22


# ---- mip-NeRF 360's contraction (infinity norm), in the aabb's normalised coordinates ----------


def contract(points: torch.Tensor, aabb: torch.Tensor) -> torch.Tensor:
    """u [M, 3] in [-2, 2]^3 of points [M, 3] (float32, differentiable), in this order:

        u_a = ((p_a - lo_a) * 2) / (hi_a - lo_a) - 1;  n = max_a |u_a|
        if n > 1: u_a = u_a * ((2 - 1 / n) / n)

    The aabb maps to [-1, 1]^3 unchanged; outside it, distance is compressed so that infinity
    lands on |u| = 2 (nerfstudio's SceneContraction(order=inf)). Infinite points give NaN."""
    lo, hi = aabb[:3], aabb[3:]
    u = ((points - lo) * 2) / (hi - lo) - 1
    n = u.abs().amax(dim=-1, keepdim=True)
    n = torch.where(n > 1, n, torch.ones_like(n))  # s = 1 exactly inside (and no NaN gradient)
    return u * ((2 - 1 / n) / n)


def uncontract(u: torch.Tensor, aabb: torch.Tensor) -> torch.Tensor:
    """points [M, 3]: the inverse of ``contract`` for u [M, 3] with max_a |u_a| < 2 (e.g. the
    occupancy grid's cell centres). For n = max |u| > 1 the point's own norm was 1 / (2 - n)."""
    lo, hi = aabb[:3], aabb[3:]
    n = u.abs().amax(dim=-1, keepdim=True)
    n = torch.where(n > 1, n, torch.ones_like(n))
    unit = u / (n * (2 - n))  # n (2 - n) = 1 inside
    return (unit + 1) * (hi - lo) / 2 + lo


# ---- the kept rule --------------------------------------------------------------------------


def grid_scale(aabb: torch.Tensor, resolution) -> torch.Tensor:
    """scale [3] float32: cells per unit length on each axis, float(R_a) / (hi_a - lo_a)."""
    res = torch.tensor([float(r) for r in resolution], dtype=torch.float32, device=aabb.device)
    return res / (aabb[3:] - aabb[:3])


def grid_cells(points: torch.Tensor, aabb: torch.Tensor, resolution, contraction=None) -> torch.Tensor:
    """c [M, 3] float32: each point's continuous cell coordinates (cell = floor(c) where 0 <= c < R)."""
    if contraction is None:
        return (points - aabb[:3]) * grid_scale(aabb, resolution)
    res = torch.tensor([float(r) for r in resolution], dtype=torch.float32, device=points.device)
    return (contract(points, aabb) + 2) * (res / 4)


def occupied_at(points: torch.Tensor, aabb: torch.Tensor, occupied: torch.Tensor, contraction=None) -> torch.Tensor:
    """Whether each point [M, 3] lies in an occupied cell of `occupied` [Rx, Ry, Rz] (outside: False)."""
    res = occupied.shape
    cells = grid_cells(points, aabb, res, contraction)
    limits = torch.tensor([float(r) for r in res], dtype=torch.float32, device=points.device)
    inside = ((cells >= 0) & (cells < limits)).all(1)  # NaN fails both
    index = torch.where(inside[:, None], cells, torch.zeros_like(cells)).long()
    return inside & occupied[index[:, 0], index[:, 1], index[:, 2]]


# ---- fixed steps (cone_angle == 0): closed form ------------------------------------------------


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


def _march_chunk(rays_o, rays_d, t0, t_far, step, kept_at, counts):
    n_rays = t0.shape[0]
    ray_ids = torch.repeat_interleave(torch.arange(n_rays, device=t0.device), counts)
    first = torch.cumsum(counts, 0) - counts
    m = torch.arange(ray_ids.shape[0], device=t0.device) - first[ray_ids]
    t0_s, t_far_s = t0[ray_ids], t_far[ray_ids]
    starts = interval_starts(t0_s, m, step)
    ends = torch.minimum(interval_starts(t0_s, m + 1, step), t_far_s)
    keep = kept_at(rays_o[ray_ids], rays_d[ray_ids], starts, ends)
    kept_counts = torch.bincount(ray_ids[keep], minlength=n_rays)
    return kept_counts, starts[keep], ends[keep]


def _march_fixed(rays_o, rays_d, t_near, t_far, step, offsets, kept_at):
    n_rays, device = t_near.shape[0], t_near.device
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
        k, s, e = _march_chunk(rays_o[part], rays_d[part], t0[part], t_far[part], step, kept_at, counts[part])
        kept.append(k), starts.append(s), ends.append(e)
        begin = end
    return _pack(kept, starts, ends, device)


# ---- cone stepping (cone_angle > 0): accumulated, all rays in lockstep ---------------------------


def cone_step(t: torch.Tensor, step, cone_angle, max_step, disparity_step) -> torch.Tensor:
    """dt(t) = min(max(t * max(cone_angle, t * disparity_step), step), max_step) (float32; the
    four are 0-d float32)."""
    return torch.minimum(torch.maximum(t * torch.maximum(cone_angle, t * disparity_step), step), max_step)


def _march_cone(rays_o, rays_d, t_near, t_far, step, offsets, cone_angle, max_step, disparity_step, kept_at):
    """Step m of every still-marching ray at once, m = 0, 1, ...: one loop over steps, not rays."""
    n_rays, device = t_near.shape[0], t_near.device

    def dt(t):
        return cone_step(t, step, cone_angle, max_step, disparity_step)

    start = t_near if offsets is None else t_near + offsets * dt(t_near)
    rays = torch.arange(n_rays, device=device)
    rays, start = rays[start < t_far], start[start < t_far]
    kept_rays, starts, ends = [], [], []
    for _ in range(MAX_INTERVALS):
        if rays.numel() == 0:
            break
        following = start + dt(start)
        end = torch.minimum(following, t_far[rays])
        keep = kept_at(rays_o[rays], rays_d[rays], start, end)
        kept_rays.append(rays[keep]), starts.append(start[keep]), ends.append(end[keep])
        going = following < t_far[rays]
        rays, start = rays[going], following[going]
    ray_ids = torch.cat(kept_rays) if kept_rays else torch.zeros(0, dtype=torch.int64, device=device)
    order = torch.sort(ray_ids, stable=True).indices  # step order within each ray
    kept = [torch.bincount(ray_ids, minlength=n_rays)]
    return _pack(kept, [torch.cat(starts)[order]] if starts else [], [torch.cat(ends)[order]] if ends else [], device)


def _pack(kept, starts, ends, device):
    kept = torch.cat(kept) if kept else torch.zeros(0, dtype=torch.int64, device=device)
    packed_info = torch.stack([torch.cumsum(kept, 0) - kept, kept], 1)
    empty = torch.zeros(0, dtype=torch.float32, device=device)
    t_starts = torch.cat(starts) if starts else empty
    t_ends = torch.cat(ends) if ends else empty
    return packed_info, t_starts, t_ends


def march_rays(
    rays_o: torch.Tensor,  # [N, 3] float32
    rays_d: torch.Tensor,  # [N, 3] float32
    t_near: torch.Tensor,  # [N] float32
    t_far: torch.Tensor,  # [N] float32
    aabb: torch.Tensor,  # [6] float32 grid bounds (contracted: the inner box, the grid's middle half)
    occupied: torch.Tensor,  # [Rx, Ry, Rz] bool, occupied[i, j, k]: x index i, y index j, z index k
    step_size: float,
    offsets: torch.Tensor = None,  # [N] float32 in [0, 1), or None
    contraction: str = None,  # None or "mipnerf360"
    cone_angle: float = 0.0,  # >= 0; 0: fixed steps
    max_step: float = None,  # >= step_size, or None (no cap)
    disparity_step: float = 0.0,  # >= 0; > 0 (with cone_angle > 0): steps of at least disparity_step * t**2
):
    """Returns (packed_info [N, 2] int64, t_starts [S] float32, t_ends [S] float32), ray-major."""
    device = t_near.device
    step = torch.tensor(step_size, dtype=torch.float32, device=device)

    def kept_at(o, d, starts, ends):
        mids = (starts + ends) * 0.5
        return occupied_at(o + d * mids[:, None], aabb, occupied, contraction)

    if cone_angle == 0:
        return _march_fixed(rays_o, rays_d, t_near, t_far, step, offsets, kept_at)
    cone = torch.tensor(cone_angle, dtype=torch.float32, device=device)
    cap = torch.tensor(float("inf") if max_step is None else max_step, dtype=torch.float32, device=device)
    disparity = torch.tensor(disparity_step, dtype=torch.float32, device=device)
    return _march_cone(rays_o, rays_d, t_near, t_far, step, offsets, cone, cap, disparity, kept_at)
