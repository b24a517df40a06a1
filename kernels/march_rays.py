"""Triton ray marching through an occupancy grid: one lane per ray, a tile of rays marching in
lockstep until the last of them passes t_far. Count pass, then fill pass, exactly as
csrc/march_rays/march_rays.h, with the same float32 operations in the same order (launched with
enable_fp_fusion=False so no multiply-add is fused; see fastnerf/reference/march_rays.py)."""

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
def _march_kernel(
    rays_o_ptr, rays_d_ptr, t_near_ptr, t_far_ptr, offsets_ptr, aabb_ptr, occupied_ptr,
    counts_ptr, packed_info_ptr, t_starts_ptr, t_ends_ptr,
    n_rays, res_x, res_y, res_z, step,
    HAS_OFFSETS: tl.constexpr, FILL: tl.constexpr, BLOCK: tl.constexpr, MAX_M: tl.constexpr,
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
    scale_x = tl.math.div_rn(res_x.to(tl.float32), tl.load(aabb_ptr + 3) - lo_x)
    scale_y = tl.math.div_rn(res_y.to(tl.float32), tl.load(aabb_ptr + 4) - lo_y)
    scale_z = tl.math.div_rn(res_z.to(tl.float32), tl.load(aabb_ptr + 5) - lo_z)
    t_near = tl.load(t_near_ptr + rays, mask=mask, other=0.0)
    t_far = tl.load(t_far_ptr + rays, mask=mask, other=0.0)
    t0 = t_near
    if HAS_OFFSETS:
        t0 = t_near + tl.load(offsets_ptr + rays, mask=mask, other=0.0) * step
    if FILL:
        base = tl.load(packed_info_ptr + 2 * rays, mask=mask, other=0)
        count = tl.load(packed_info_ptr + 2 * rays + 1, mask=mask, other=0)

    kept = tl.zeros([BLOCK], dtype=tl.int64)
    m = tl.zeros([BLOCK], dtype=tl.int32)
    start = t0 + m.to(tl.float32) * step
    active = mask & is_finite(t_near) & is_finite(t_far) & (start < t_far)
    while tl.max(active.to(tl.int32), axis=0) > 0:
        following = t0 + (m + 1).to(tl.float32) * step
        end = tl.minimum(following, t_far)
        mid = (start + end) * 0.5
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
               cone_angle=0.0, max_step=None):
    """Launcher; inputs validated by fastnerf.ops.march_rays.
    Returns (packed_info [N, 2] int64, t_starts [S], t_ends [S])."""
    if contraction is not None or cone_angle != 0.0:
        raise NotImplementedError("the Triton march_rays' contracted mode is not written yet")
    rays_o, rays_d, t_near, t_far, aabb = (x.contiguous() for x in (rays_o, rays_d, t_near, t_far, aabb))
    occupied = occupied.contiguous().view(torch.uint8)
    offsets = None if offsets is None else offsets.contiguous()
    n_rays, device = rays_o.shape[0], rays_o.device
    counts = torch.zeros(n_rays, dtype=torch.int64, device=device)
    block = 64
    grid = (triton.cdiv(n_rays, block),)
    res = occupied.shape

    def launch(fill, packed_info, t_starts, t_ends):
        with on_device_of(rays_o):
            _march_kernel[grid](
                rays_o, rays_d, t_near, t_far, offsets if offsets is not None else t_near, aabb, occupied,
                counts, packed_info, t_starts, t_ends, n_rays, res[0], res[1], res[2], float(step_size),
                HAS_OFFSETS=offsets is not None, FILL=fill, BLOCK=block, MAX_M=MAX_INTERVALS,
                enable_fp_fusion=False,
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
