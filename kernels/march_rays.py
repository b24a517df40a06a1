"""Triton ray marching through an occupancy grid: one lane per ray, a tile of rays marching in
lockstep until the last of them passes t_far. Count pass, then fill pass, exactly as
csrc/march_rays/march_rays.h, with the same float32 operations in the same order (launched with
enable_fp_fusion=False so no multiply-add is fused, divisions correctly rounded with div_rn; see
fastnerf/reference/march_rays.py): fixed or cone steps, a box grid or a contracted one."""

import torch
import triton
import triton.language as tl

from ._common import is_finite, on_device_of

MAX_INTERVALS = 1 << 24  # as fastnerf.reference.march_rays.MAX_INTERVALS


@triton.jit
def _cell(o, d, mid, lo, scale, res):
    """(inside, index) of one axis of the point o + d * mid."""
    c = (o + d * mid - lo) * scale
    inside = (c >= 0.0) & (c < res.to(tl.float32))
    return inside, tl.where(inside, c, 0.0).to(tl.int64)


@triton.jit
def _normalised(o, d, mid, lo, size):
    """u = ((p - lo) * 2) / (hi - lo) - 1 of one axis of the point p = o + d * mid."""
    return tl.math.div_rn((o + d * mid - lo) * 2.0, size) - 1.0


@triton.jit
def _contracted_cell(u, s, res):
    """(inside, index) of one axis: c = (u * s + 2) * (R / 4)."""
    c = (u * s + 2.0) * tl.math.div_rn(res.to(tl.float32), 4.0)
    inside = (c >= 0.0) & (c < res.to(tl.float32))
    return inside, tl.where(inside, c, 0.0).to(tl.int64)


@triton.jit
def _cone_step(t, step, cone_angle, max_step, disparity_step):
    """min(max(t * max(cone_angle, t * disparity_step), step), max_step)."""
    return tl.minimum(tl.maximum(t * tl.maximum(cone_angle, t * disparity_step), step), max_step)


@triton.jit
def _march_kernel(
    rays_o_ptr, rays_d_ptr, t_near_ptr, t_far_ptr, offsets_ptr, aabb_ptr, occupied_ptr,
    counts_ptr, packed_info_ptr, t_starts_ptr, t_ends_ptr,
    n_rays, res_x, res_y, res_z, step, cone_angle, max_step, disparity_step,
    HAS_OFFSETS: tl.constexpr, FILL: tl.constexpr, BLOCK: tl.constexpr, MAX_M: tl.constexpr,
    CONTRACTED: tl.constexpr, CONE: tl.constexpr,
):
    rays = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = rays < n_rays
    row = rays.to(tl.int64) * 3
    ox = tl.load(rays_o_ptr + row, mask=mask, other=0.0)
    oy = tl.load(rays_o_ptr + row + 1, mask=mask, other=0.0)
    oz = tl.load(rays_o_ptr + row + 2, mask=mask, other=0.0)
    dx = tl.load(rays_d_ptr + row, mask=mask, other=0.0)
    dy = tl.load(rays_d_ptr + row + 1, mask=mask, other=0.0)
    dz = tl.load(rays_d_ptr + row + 2, mask=mask, other=0.0)
    lo_x, lo_y, lo_z = tl.load(aabb_ptr + 0), tl.load(aabb_ptr + 1), tl.load(aabb_ptr + 2)
    size_x, size_y, size_z = tl.load(aabb_ptr + 3) - lo_x, tl.load(aabb_ptr + 4) - lo_y, tl.load(aabb_ptr + 5) - lo_z
    scale_x = tl.math.div_rn(res_x.to(tl.float32), size_x)
    scale_y = tl.math.div_rn(res_y.to(tl.float32), size_y)
    scale_z = tl.math.div_rn(res_z.to(tl.float32), size_z)
    t_near = tl.load(t_near_ptr + rays, mask=mask, other=0.0)
    t_far = tl.load(t_far_ptr + rays, mask=mask, other=0.0)
    t0 = t_near
    if HAS_OFFSETS:
        offsets = tl.load(offsets_ptr + rays, mask=mask, other=0.0)
        if CONE:
            t0 = t_near + offsets * _cone_step(t_near, step, cone_angle, max_step, disparity_step)
        else:
            t0 = t_near + offsets * step
    if FILL:
        base = tl.load(packed_info_ptr + 2 * rays, mask=mask, other=0)
        count = tl.load(packed_info_ptr + 2 * rays + 1, mask=mask, other=0)

    kept = tl.zeros([BLOCK], dtype=tl.int64)
    m = tl.zeros([BLOCK], dtype=tl.int32)
    if CONE:
        start = t0
    else:
        start = t0 + m.to(tl.float32) * step
    active = mask & is_finite(t_near) & is_finite(t_far) & (start < t_far)
    while tl.max(active.to(tl.int32), axis=0) > 0:
        if CONE:
            following = start + _cone_step(start, step, cone_angle, max_step, disparity_step)
        else:
            following = t0 + (m + 1).to(tl.float32) * step
        end = tl.minimum(following, t_far)
        mid = (start + end) * 0.5
        if CONTRACTED:
            ux = _normalised(ox, dx, mid, lo_x, size_x)
            uy = _normalised(oy, dy, mid, lo_y, size_y)
            uz = _normalised(oz, dz, mid, lo_z, size_z)
            n = tl.maximum(tl.maximum(tl.abs(ux), tl.abs(uy)), tl.abs(uz))
            s = tl.where(n > 1.0, tl.math.div_rn(2.0 - tl.math.div_rn(1.0, n), n), 1.0)  # u * 1 = u
            in_x, ix = _contracted_cell(ux, s, res_x)
            in_y, iy = _contracted_cell(uy, s, res_y)
            in_z, iz = _contracted_cell(uz, s, res_z)
        else:
            in_x, ix = _cell(ox, dx, mid, lo_x, scale_x, res_x)
            in_y, iy = _cell(oy, dy, mid, lo_y, scale_y, res_y)
            in_z, iz = _cell(oz, dz, mid, lo_z, scale_z, res_z)
        inside = active & in_x & in_y & in_z
        occupied = tl.load(occupied_ptr + (ix * res_y + iy) * res_z + iz, mask=inside, other=0)
        keep = inside & (occupied != 0)
        if FILL:
            ok = keep & (kept < count)
            tl.store(t_starts_ptr + base + kept, start, mask=ok)
            tl.store(t_ends_ptr + base + kept, end, mask=ok)
        kept += keep.to(tl.int64)
        m += 1
        start = following
        active = active & (start < t_far) & (m < MAX_M)
    if not FILL:
        tl.store(counts_ptr + rays, kept, mask=mask)


def march_rays(rays_o, rays_d, t_near, t_far, aabb, occupied, step_size, offsets=None, contraction=None,
               cone_angle=0.0, max_step=None, disparity_step=0.0):
    """Launcher; inputs validated by fastnerf.ops.march_rays.
    Returns (packed_info [N, 2] int64, t_starts [S], t_ends [S])."""
    rays_o, rays_d, t_near, t_far, aabb = (x.contiguous() for x in (rays_o, rays_d, t_near, t_far, aabb))
    occupied = occupied.contiguous().view(torch.uint8)
    offsets = None if offsets is None else offsets.contiguous()
    n_rays, device = rays_o.shape[0], rays_o.device
    counts = torch.zeros(n_rays, dtype=torch.int64, device=device)
    block = 64
    grid = (triton.cdiv(n_rays, block),)
    res = occupied.shape
    cap = float("inf") if max_step is None else float(max_step)

    def launch(fill, packed_info, t_starts, t_ends):
        with on_device_of(rays_o):
            _march_kernel[grid](
                rays_o, rays_d, t_near, t_far, offsets if offsets is not None else t_near, aabb, occupied,
                counts, packed_info, t_starts, t_ends, n_rays, res[0], res[1], res[2], float(step_size),
                float(cone_angle), cap, float(disparity_step),
                HAS_OFFSETS=offsets is not None, FILL=fill, BLOCK=block, MAX_M=MAX_INTERVALS,
                CONTRACTED=contraction is not None, CONE=cone_angle > 0, enable_fp_fusion=False,
            )

    if n_rays:
        launch(False, counts, t_near, t_near)  # count pass: packed_info and t pointers unused
    packed_info = torch.stack([torch.cumsum(counts, 0) - counts, counts], 1)
    n_samples = int(counts.sum())
    t_starts = rays_o.new_empty(n_samples)
    t_ends = rays_o.new_empty(n_samples)
    if n_samples:
        launch(True, packed_info, t_starts, t_ends)
    return packed_info, t_starts, t_ends
