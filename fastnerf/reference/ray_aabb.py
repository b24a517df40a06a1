"""Reference ray / axis-aligned box intersection (the spec of fastnerf.ops.ray_aabb).

Slab method in float32, per axis a = x, y, z:
    d_a != 0:  t = (lo_a - o_a) / d_a and (hi_a - o_a) / d_a, entering at the smaller, leaving at the larger
    d_a == 0:  the ray never crosses the slab: (-inf, +inf) if lo_a <= o_a <= hi_a, else a miss
t_near = max(0, entries), t_far = min(exits); hit iff every input component is finite, t_far is
finite and t_far > t_near (a ray that only touches an edge or a face misses). A missed ray has
t_near = t_far = 0. No division by zero is ever evaluated, so NaN never appears; every backend
computes the same float32 operations, so their outputs are bitwise equal.
"""

import torch


def ray_aabb(
    rays_o: torch.Tensor,  # [N, 3] float32 origins
    rays_d: torch.Tensor,  # [N, 3] float32 directions (need not be unit length; zeros allowed)
    aabb: torch.Tensor,  # [6] float32 (xmin, ymin, zmin, xmax, ymax, zmax)
):
    """Returns (t_near [N], t_far [N], hit [N] bool)."""
    lo, hi = aabb[:3], aabb[3:]
    parallel = rays_d == 0
    safe_d = torch.where(parallel, torch.ones_like(rays_d), rays_d)
    t_lo = (lo - rays_o) / safe_d
    t_hi = (hi - rays_o) / safe_d
    inf = torch.full_like(t_lo, float("inf"))
    inside_slab = (rays_o >= lo) & (rays_o <= hi)
    t_enter = torch.where(parallel, torch.where(inside_slab, -inf, inf), torch.minimum(t_lo, t_hi))
    t_exit = torch.where(parallel, torch.where(inside_slab, inf, -inf), torch.maximum(t_lo, t_hi))
    t_near = t_enter.amax(1).clamp_min(0.0)
    t_far = t_exit.amin(1)
    finite = torch.isfinite(rays_o).all(1) & torch.isfinite(rays_d).all(1) & torch.isfinite(t_far)
    hit = finite & (t_far > t_near)
    zero = torch.zeros_like(t_near)
    return torch.where(hit, t_near, zero), torch.where(hit, t_far, zero), hit
