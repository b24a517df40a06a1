"""Triton ray / axis-aligned box intersection: one lane per ray, the slab method of
csrc/ray_aabb/ray_aabb.h with the same float32 operations (correctly rounded division)."""

import torch
import triton
import triton.language as tl

from ._common import is_finite, on_device_of


@triton.jit
def _slab(o, d, lo, hi):
    """(entry, exit, ok) of one axis; d == 0 never divides: inside (-inf, inf), outside a miss."""
    parallel = d == 0.0
    safe_d = tl.where(parallel, 1.0, d)
    t_lo = tl.math.div_rn(lo - o, safe_d)
    t_hi = tl.math.div_rn(hi - o, safe_d)
    inside = (o >= lo) & (o <= hi)
    entry = tl.where(parallel, float("-inf"), tl.minimum(t_lo, t_hi))
    exit = tl.where(parallel, float("inf"), tl.maximum(t_lo, t_hi))
    return entry, exit, (~parallel | inside) & is_finite(o) & is_finite(d)


@triton.jit
def _ray_aabb_kernel(rays_o_ptr, rays_d_ptr, aabb_ptr, t_near_ptr, t_far_ptr, hit_ptr, n_rays, BLOCK: tl.constexpr):
    rays = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = rays < n_rays
    row = rays.to(tl.int64) * 3
    e0, x0, ok0 = _slab(tl.load(rays_o_ptr + row, mask=mask, other=0.0), tl.load(rays_d_ptr + row, mask=mask, other=0.0),
                        tl.load(aabb_ptr + 0), tl.load(aabb_ptr + 3))
    e1, x1, ok1 = _slab(tl.load(rays_o_ptr + row + 1, mask=mask, other=0.0),
                        tl.load(rays_d_ptr + row + 1, mask=mask, other=0.0), tl.load(aabb_ptr + 1), tl.load(aabb_ptr + 4))
    e2, x2, ok2 = _slab(tl.load(rays_o_ptr + row + 2, mask=mask, other=0.0),
                        tl.load(rays_d_ptr + row + 2, mask=mask, other=0.0), tl.load(aabb_ptr + 2), tl.load(aabb_ptr + 5))
    t_near = tl.maximum(tl.maximum(tl.maximum(e0, e1), e2), 0.0)
    t_far = tl.minimum(tl.minimum(x0, x1), x2)
    hit = ok0 & ok1 & ok2 & is_finite(t_far) & (t_far > t_near)
    tl.store(t_near_ptr + rays, tl.where(hit, t_near, 0.0), mask=mask)
    tl.store(t_far_ptr + rays, tl.where(hit, t_far, 0.0), mask=mask)
    tl.store(hit_ptr + rays, hit.to(tl.int8), mask=mask)


def ray_aabb(rays_o, rays_d, aabb):
    """Launcher; inputs validated by fastnerf.ops.ray_aabb. Returns (t_near [N], t_far [N], hit [N] bool)."""
    rays_o, rays_d, aabb = rays_o.contiguous(), rays_d.contiguous(), aabb.contiguous()
    n_rays = rays_o.shape[0]
    t_near = rays_o.new_empty(n_rays)
    t_far = rays_o.new_empty(n_rays)
    hit = torch.empty(n_rays, dtype=torch.bool, device=rays_o.device)
    if n_rays:
        block = 256
        with on_device_of(rays_o):
            _ray_aabb_kernel[(triton.cdiv(n_rays, block),)](
                rays_o, rays_d, aabb, t_near, t_far, hit.view(torch.int8), n_rays, BLOCK=block
            )
    return t_near, t_far, hit
