"""Triton baked rendering: march, trilinear lookup in the sparse vertex grid and compositing fused.

One lane per ray; a tile of rays marches in lockstep until the last of them stops (past t_far,
or its transmittance below early_stop_eps). The march is kernels/march_rays.py's, operation for
operation (its `_cell`, launched with enable_fp_fusion=False), so the samples are bitwise
march_rays'; the lookup and compositing follow fastnerf/reference/baked_render.py and
kernels/composite.py. Nothing is stored per sample: the backward marches again, recomputes each
sample and scatters the value gradients into the 8 corner rows with atomic adds. The
compositing's gradient is a suffix sum, and the total it needs comes from the forward's outputs.
"""

import torch
import triton
import triton.language as tl

from ._common import expm1, is_finite, on_device_of
from .march_rays import MAX_INTERVALS, _cell


@triton.jit
def _load_ray(rays_o_ptr, rays_d_ptr, t_near_ptr, t_far_ptr, offsets_ptr, rays, mask, step,
              HAS_OFFSETS: tl.constexpr):
    """(origin xyz, direction xyz, t0, t_far, marching) of each lane, as march_rays starts a ray."""
    row = rays.to(tl.int64) * 3
    ox = tl.load(rays_o_ptr + row, mask=mask, other=0.0)
    oy = tl.load(rays_o_ptr + row + 1, mask=mask, other=0.0)
    oz = tl.load(rays_o_ptr + row + 2, mask=mask, other=0.0)
    dx = tl.load(rays_d_ptr + row, mask=mask, other=0.0)
    dy = tl.load(rays_d_ptr + row + 1, mask=mask, other=0.0)
    dz = tl.load(rays_d_ptr + row + 2, mask=mask, other=0.0)
    t_near = tl.load(t_near_ptr + rays, mask=mask, other=0.0)
    t_far = tl.load(t_far_ptr + rays, mask=mask, other=0.0)
    t0 = t_near
    if HAS_OFFSETS:
        t0 = t_near + tl.load(offsets_ptr + rays, mask=mask, other=0.0) * step
    marching = mask & is_finite(t_near) & is_finite(t_far) & (t0 < t_far)  # start_0 = t0 + 0.0 * step = t0
    return ox, oy, oz, dx, dy, dz, t0, t_far, marching


@triton.jit
def _scale(aabb_ptr, axis: tl.constexpr, steps):
    """(lo, steps / (hi - lo)) of one axis, correctly rounded: cells or vertex steps per unit length."""
    lo = tl.load(aabb_ptr + axis)
    return lo, tl.math.div_rn(steps.to(tl.float32), tl.load(aabb_ptr + 3 + axis) - lo)


@triton.jit
def _vertex_cell(p, lo, vscale, g):
    """(lower vertex index int64, fraction float32) of one axis: u = clamp((p - lo) vscale, 0, G - 1),
    i = min(int(u), G - 2), f = u - float(i)."""
    u = tl.minimum(tl.maximum((p - lo) * vscale, 0.0), (g - 1).to(tl.float32))
    i = tl.minimum(u.to(tl.int64), (g - 2).to(tl.int64))
    return i, u - i.to(tl.float32)


@triton.jit
def _corner(index_ptr, n_rows, ix, iy, iz, fx, fy, fz, gy, gz, mask,
            DX: tl.constexpr, DY: tl.constexpr, DZ: tl.constexpr):
    """(row int64, present, weight float32) of corner (DX, DY, DZ) of each lane's vertex cell;
    weight = (wx * wy) * wz with w = f at the upper vertex, 1 - f at the lower."""
    if DX:
        wx = fx
    else:
        wx = 1.0 - fx
    if DY:
        wy = fy
    else:
        wy = 1.0 - fy
    if DZ:
        wz = fz
    else:
        wz = 1.0 - fz
    row = tl.load(index_ptr + ((ix + DX) * gy + (iy + DY)) * gz + (iz + DZ), mask=mask, other=-1).to(tl.int64)
    present = mask & (row >= 0) & (row < n_rows)
    return row, present, (wx * wy) * wz


@triton.jit
def _lookup(index_ptr, values_ptr, n_rows, n_features, ix, iy, iz, fx, fy, fz, gy, gz, keep, feats, feat_mask,
            BLOCK: tl.constexpr, BLOCK_F: tl.constexpr):
    """(density [BLOCK], features [BLOCK, BLOCK_F]) interpolated in values' dtype; lanes not kept: 0."""
    dtype = values_ptr.dtype.element_ty
    density = tl.zeros([BLOCK], dtype=dtype)
    features = tl.zeros([BLOCK, BLOCK_F], dtype=dtype)
    for k in tl.static_range(8):
        row, present, weight = _corner(index_ptr, n_rows, ix, iy, iz, fx, fy, fz, gy, gz, keep,
                                       k // 4, (k // 2) % 2, k % 2)
        b = tl.where(present, weight, 0.0).to(dtype)
        base = row * (n_features + 1)
        density += b * tl.load(values_ptr + base, mask=present, other=0.0)
        v = tl.load(values_ptr + base[:, None] + 1 + feats[None, :], mask=present[:, None] & feat_mask[None, :],
                    other=0.0)
        features += b[:, None] * v
    return density, features


@triton.jit
def _absorb(density, start, end, transmittance):
    """(sigma, dt, 1 - alpha = exp(-sigma dt) as expm1, w = T alpha) of one sample, in density's dtype."""
    sigma = tl.maximum(density, 0.0)
    dt = (end - start).to(density.dtype)
    neg_alpha = expm1(-sigma * dt)  # lanes not kept: density 0, so w = 0 and T is unchanged
    return dt, neg_alpha, -transmittance * neg_alpha


@triton.jit
def _forward_kernel(
    rays_o_ptr, rays_d_ptr, t_near_ptr, t_far_ptr, offsets_ptr, aabb_ptr, occupied_ptr, index_ptr, values_ptr,
    features_ptr, opacity_ptr, depth_ptr,
    n_rays, res_x, res_y, res_z, gx, gy, gz, n_rows, n_features, step, early_stop_eps,
    HAS_OFFSETS: tl.constexpr, BLOCK: tl.constexpr, BLOCK_F: tl.constexpr, MAX_M: tl.constexpr,
):
    rays = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = rays < n_rays
    ox, oy, oz, dx, dy, dz, t0, t_far, active = _load_ray(
        rays_o_ptr, rays_d_ptr, t_near_ptr, t_far_ptr, offsets_ptr, rays, mask, step, HAS_OFFSETS)
    lo_x, scale_x = _scale(aabb_ptr, 0, res_x)
    lo_y, scale_y = _scale(aabb_ptr, 1, res_y)
    lo_z, scale_z = _scale(aabb_ptr, 2, res_z)
    _, vscale_x = _scale(aabb_ptr, 0, gx - 1)
    _, vscale_y = _scale(aabb_ptr, 1, gy - 1)
    _, vscale_z = _scale(aabb_ptr, 2, gz - 1)
    feats = tl.arange(0, BLOCK_F)
    feat_mask = feats < n_features

    dtype = values_ptr.dtype.element_ty
    acc = tl.zeros([BLOCK, BLOCK_F], dtype=dtype)
    opacity = tl.zeros([BLOCK], dtype=dtype)
    depth = tl.zeros([BLOCK], dtype=dtype)
    transmittance = tl.full([BLOCK], 1.0, dtype=dtype)
    m = tl.zeros([BLOCK], dtype=tl.int32)
    start = t0 + m.to(tl.float32) * step
    while tl.max(active.to(tl.int32), axis=0) > 0:
        following = t0 + (m + 1).to(tl.float32) * step
        end = tl.minimum(following, t_far)
        mid = (start + end) * 0.5
        in_x, cx = _cell(ox, dx, mid, lo_x, scale_x, res_x)
        in_y, cy = _cell(oy, dy, mid, lo_y, scale_y, res_y)
        in_z, cz = _cell(oz, dz, mid, lo_z, scale_z, res_z)
        inside = active & in_x & in_y & in_z
        keep = inside & (tl.load(occupied_ptr + (cx * res_y + cy) * res_z + cz, mask=inside, other=0) != 0)
        if tl.max(keep.to(tl.int32), axis=0) > 0:
            ix, fx = _vertex_cell(ox + dx * mid, lo_x, vscale_x, gx)
            iy, fy = _vertex_cell(oy + dy * mid, lo_y, vscale_y, gy)
            iz, fz = _vertex_cell(oz + dz * mid, lo_z, vscale_z, gz)
            density, features = _lookup(index_ptr, values_ptr, n_rows, n_features, ix, iy, iz, fx, fy, fz, gy, gz,
                                        keep, feats, feat_mask, BLOCK, BLOCK_F)
            dt, neg_alpha, w = _absorb(density, start, end, transmittance)
            acc += w[:, None] * features
            opacity += w
            depth += w * mid.to(dtype)
            transmittance *= 1.0 + neg_alpha
        m += 1
        start = following
        active = active & (start < t_far) & (m < MAX_M) & (transmittance >= early_stop_eps)

    tl.store(features_ptr + rays.to(tl.int64)[:, None] * n_features + feats[None, :], acc,
             mask=mask[:, None] & feat_mask[None, :])
    tl.store(opacity_ptr + rays, opacity, mask=mask)
    tl.store(depth_ptr + rays, depth, mask=mask)


@triton.jit
def _backward_kernel(
    rays_o_ptr, rays_d_ptr, t_near_ptr, t_far_ptr, offsets_ptr, aabb_ptr, occupied_ptr, index_ptr, values_ptr,
    features_ptr, opacity_ptr, depth_ptr, grad_features_ptr, grad_opacity_ptr, grad_depth_ptr, grad_values_ptr,
    n_rays, res_x, res_y, res_z, gx, gy, gz, n_rows, n_features, step, early_stop_eps,
    HAS_OFFSETS: tl.constexpr, BLOCK: tl.constexpr, BLOCK_F: tl.constexpr, MAX_M: tl.constexpr,
):
    rays = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = rays < n_rays
    ox, oy, oz, dx, dy, dz, t0, t_far, active = _load_ray(
        rays_o_ptr, rays_d_ptr, t_near_ptr, t_far_ptr, offsets_ptr, rays, mask, step, HAS_OFFSETS)
    lo_x, scale_x = _scale(aabb_ptr, 0, res_x)
    lo_y, scale_y = _scale(aabb_ptr, 1, res_y)
    lo_z, scale_z = _scale(aabb_ptr, 2, res_z)
    _, vscale_x = _scale(aabb_ptr, 0, gx - 1)
    _, vscale_y = _scale(aabb_ptr, 1, gy - 1)
    _, vscale_z = _scale(aabb_ptr, 2, gz - 1)
    feats = tl.arange(0, BLOCK_F)
    feat_mask = feats < n_features

    # g_i = dL/dw_i = <grad_features, feature_i> + grad_opacity + grad_depth mid_i, and
    # total = sum_i w_i g_i = <grad_features, features> + grad_opacity opacity + grad_depth depth.
    out_rows = rays.to(tl.int64)[:, None] * n_features + feats[None, :]
    out_mask = mask[:, None] & feat_mask[None, :]
    grad_features = tl.load(grad_features_ptr + out_rows, mask=out_mask, other=0.0)
    grad_opacity = tl.load(grad_opacity_ptr + rays, mask=mask, other=0.0)
    grad_depth = tl.load(grad_depth_ptr + rays, mask=mask, other=0.0)
    total = tl.sum(grad_features * tl.load(features_ptr + out_rows, mask=out_mask, other=0.0), axis=1)
    total += grad_opacity * tl.load(opacity_ptr + rays, mask=mask, other=0.0)
    total += grad_depth * tl.load(depth_ptr + rays, mask=mask, other=0.0)

    dtype = values_ptr.dtype.element_ty
    transmittance = tl.full([BLOCK], 1.0, dtype=dtype)
    prefix = tl.zeros([BLOCK], dtype=dtype)  # sum_{j <= i} w_j g_j
    m = tl.zeros([BLOCK], dtype=tl.int32)
    start = t0 + m.to(tl.float32) * step
    while tl.max(active.to(tl.int32), axis=0) > 0:
        following = t0 + (m + 1).to(tl.float32) * step
        end = tl.minimum(following, t_far)
        mid = (start + end) * 0.5
        in_x, cx = _cell(ox, dx, mid, lo_x, scale_x, res_x)
        in_y, cy = _cell(oy, dy, mid, lo_y, scale_y, res_y)
        in_z, cz = _cell(oz, dz, mid, lo_z, scale_z, res_z)
        inside = active & in_x & in_y & in_z
        keep = inside & (tl.load(occupied_ptr + (cx * res_y + cy) * res_z + cz, mask=inside, other=0) != 0)
        if tl.max(keep.to(tl.int32), axis=0) > 0:
            ix, fx = _vertex_cell(ox + dx * mid, lo_x, vscale_x, gx)
            iy, fy = _vertex_cell(oy + dy * mid, lo_y, vscale_y, gy)
            iz, fz = _vertex_cell(oz + dz * mid, lo_z, vscale_z, gz)
            density, features = _lookup(index_ptr, values_ptr, n_rows, n_features, ix, iy, iz, fx, fy, fz, gy, gz,
                                        keep, feats, feat_mask, BLOCK, BLOCK_F)
            dt, neg_alpha, w = _absorb(density, start, end, transmittance)
            g = tl.sum(grad_features * features, axis=1) + grad_opacity + grad_depth * mid.to(dtype)
            prefix += w * g
            transmittance *= 1.0 + neg_alpha
            # dL/dsigma_i = dt_i (T_{i+1} g_i - sum_{j > i} w_j g_j), through max(v0, 0) where v0 >= 0
            # (as torch's clamp_min passes it in the reference, and the C++ and CUDA kernels)
            grad_density = tl.where(density >= 0.0, dt * (transmittance * g - (total - prefix)), 0.0)
            grad_feature = w[:, None] * grad_features
            for k in tl.static_range(8):
                row, present, weight = _corner(index_ptr, n_rows, ix, iy, iz, fx, fy, fz, gy, gz, keep,
                                               k // 4, (k // 2) % 2, k % 2)
                b = weight.to(dtype)
                base = row * (n_features + 1)
                tl.atomic_add(grad_values_ptr + base, b * grad_density, mask=present)
                tl.atomic_add(grad_values_ptr + base[:, None] + 1 + feats[None, :], b[:, None] * grad_feature,
                              mask=present[:, None] & feat_mask[None, :])
        m += 1
        start = following
        active = active & (start < t_far) & (m < MAX_M) & (transmittance >= early_stop_eps)


def _tile(n_features: int):
    """(rays per program, padded features): about 2048 feature lanes a tile, 16 to 64 rays."""
    block_f = triton.next_power_of_2(max(n_features, 1))
    return max(16, min(64, 2048 // block_f)), block_f


def _launch(kernel, tensors, rays_o, offsets, occupied, index, values, step_size, early_stop_eps):
    n_rays, n_features = rays_o.shape[0], values.shape[1] - 1
    block, block_f = _tile(n_features)
    res, vertices = occupied.shape, index.shape
    with on_device_of(rays_o):
        kernel[(triton.cdiv(n_rays, block),)](
            *tensors, n_rays, res[0], res[1], res[2], vertices[0], vertices[1], vertices[2], values.shape[0],
            n_features, float(step_size), float(early_stop_eps),
            HAS_OFFSETS=offsets is not None, BLOCK=block, BLOCK_F=block_f, MAX_M=MAX_INTERVALS,
            enable_fp_fusion=False,
        )


def _prepare(rays_o, rays_d, t_near, t_far, offsets, aabb, occupied, index, values):
    rays_o, rays_d, t_near, t_far, aabb, index, values = (
        x.contiguous() for x in (rays_o, rays_d, t_near, t_far, aabb, index, values))
    occupied = occupied.contiguous().view(torch.uint8)
    offsets = None if offsets is None else offsets.contiguous()
    return rays_o, rays_d, t_near, t_far, offsets, aabb, occupied, index, values


def baked_render_forward(rays_o, rays_d, t_near, t_far, offsets, aabb, occupied, index, values, step_size,
                         early_stop_eps):
    """Launcher; inputs validated by fastnerf.ops.baked_render.
    Returns (features [N, F], opacity [N], depth [N]) in values' dtype."""
    rays_o, rays_d, t_near, t_far, offsets, aabb, occupied, index, values = _prepare(
        rays_o, rays_d, t_near, t_far, offsets, aabb, occupied, index, values)
    n_rays = rays_o.shape[0]
    features = values.new_zeros(n_rays, values.shape[1] - 1)
    opacity = values.new_zeros(n_rays)
    depth = values.new_zeros(n_rays)
    if n_rays and values.shape[0]:  # no stored vertex: nothing to composite
        tensors = (rays_o, rays_d, t_near, t_far, offsets if offsets is not None else t_near, aabb, occupied,
                   index, values, features, opacity, depth)
        _launch(_forward_kernel, tensors, rays_o, offsets, occupied, index, values, step_size, early_stop_eps)
    return features, opacity, depth


def baked_render_backward(grad_features, grad_opacity, grad_depth, rays_o, rays_d, t_near, t_far, offsets, aabb,
                          occupied, index, values, step_size, early_stop_eps, features, opacity, depth):
    """Launcher; returns grad_values [V, 1+F] (values' dtype)."""
    rays_o, rays_d, t_near, t_far, offsets, aabb, occupied, index, values = _prepare(
        rays_o, rays_d, t_near, t_far, offsets, aabb, occupied, index, values)
    grad_features, grad_opacity, grad_depth, features, opacity, depth = (
        x.to(values.dtype).contiguous() for x in (grad_features, grad_opacity, grad_depth, features, opacity, depth))
    grad_values = torch.zeros_like(values)
    if rays_o.shape[0] and values.shape[0]:
        tensors = (rays_o, rays_d, t_near, t_far, offsets if offsets is not None else t_near, aabb, occupied,
                   index, values, features, opacity, depth, grad_features, grad_opacity, grad_depth, grad_values)
        _launch(_backward_kernel, tensors, rays_o, offsets, occupied, index, values, step_size, early_stop_eps)
    return grad_values
