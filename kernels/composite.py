"""Triton volume compositing: each program takes a tile of rays x all channels and walks the
rays' samples in lockstep up to the longest ray of the tile. Same math as csrc/composite/composite.h."""

import torch
import triton
import triton.language as tl

from ._common import channel_tile, expm1, on_device_of


@triton.jit
def _composite_forward_kernel(
    packed_info_ptr, sigmas_ptr, values_ptr, t_starts_ptr, t_ends_ptr,
    out_ptr, opacity_ptr, depth_ptr, weights_ptr,
    n_rays, channels,
    BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    rays = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    ray_mask = rays < n_rays
    start = tl.load(packed_info_ptr + 2 * rays, mask=ray_mask, other=0).to(tl.int64)
    count = tl.load(packed_info_ptr + 2 * rays + 1, mask=ray_mask, other=0).to(tl.int64)
    chans = tl.arange(0, BLOCK_C)
    chan_mask = chans < channels

    dtype = out_ptr.dtype.element_ty
    acc = tl.zeros([BLOCK_R, BLOCK_C], dtype=dtype)
    transmittance = tl.full([BLOCK_R], 1.0, dtype=dtype)
    opacity = tl.zeros([BLOCK_R], dtype=dtype)
    depth = tl.zeros([BLOCK_R], dtype=dtype)
    for step in range(0, tl.max(count, axis=0)):
        active = step < count
        idx = start + step
        sigma = tl.load(sigmas_ptr + idx, mask=active, other=0.0)
        t0 = tl.load(t_starts_ptr + idx, mask=active, other=0.0)
        t1 = tl.load(t_ends_ptr + idx, mask=active, other=0.0)
        neg_alpha = expm1(-sigma * (t1 - t0))  # inactive lanes: 0, so w = 0 and T is unchanged
        w = -transmittance * neg_alpha
        tl.store(weights_ptr + idx, w, mask=active)
        v = tl.load(
            values_ptr + idx[:, None] * channels + chans[None, :],
            mask=active[:, None] & chan_mask[None, :], other=0.0,
        )
        acc += w[:, None] * v
        opacity += w
        depth += w * 0.5 * (t0 + t1)
        transmittance *= 1.0 + neg_alpha

    rows = rays.to(tl.int64)[:, None] * channels + chans[None, :]
    tl.store(out_ptr + rows, acc, mask=ray_mask[:, None] & chan_mask[None, :])
    tl.store(opacity_ptr + rays, opacity, mask=ray_mask)
    tl.store(depth_ptr + rays, depth, mask=ray_mask)


@triton.jit
def _composite_backward_kernel(
    packed_info_ptr, sigmas_ptr, values_ptr, t_starts_ptr, t_ends_ptr,
    out_ptr, opacity_ptr, depth_ptr, weights_ptr,
    grad_out_ptr, grad_opacity_ptr, grad_depth_ptr, grad_weights_ptr,
    grad_sigmas_ptr, grad_values_ptr,
    n_rays, channels,
    BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    rays = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    ray_mask = rays < n_rays
    start = tl.load(packed_info_ptr + 2 * rays, mask=ray_mask, other=0).to(tl.int64)
    count = tl.load(packed_info_ptr + 2 * rays + 1, mask=ray_mask, other=0).to(tl.int64)
    chans = tl.arange(0, BLOCK_C)
    row_mask = ray_mask[:, None] & (chans < channels)[None, :]
    rows = rays.to(tl.int64)[:, None] * channels + chans[None, :]

    grad_out = tl.load(grad_out_ptr + rows, mask=row_mask, other=0.0)
    grad_opacity = tl.load(grad_opacity_ptr + rays, mask=ray_mask, other=0.0)
    grad_depth = tl.load(grad_depth_ptr + rays, mask=ray_mask, other=0.0)
    # total = sum_i w_i g_i, from the forward outputs plus a scalar pass over the weights.
    total = tl.sum(grad_out * tl.load(out_ptr + rows, mask=row_mask, other=0.0), axis=1)
    total += grad_opacity * tl.load(opacity_ptr + rays, mask=ray_mask, other=0.0)
    total += grad_depth * tl.load(depth_ptr + rays, mask=ray_mask, other=0.0)
    max_count = tl.max(count, axis=0)
    for step in range(0, max_count):
        active = step < count
        idx = start + step
        w = tl.load(weights_ptr + idx, mask=active, other=0.0)
        total += w * tl.load(grad_weights_ptr + idx, mask=active, other=0.0)

    transmittance = tl.full([BLOCK_R], 1.0, dtype=total.dtype)
    prefix = tl.zeros([BLOCK_R], dtype=total.dtype)
    for step in range(0, max_count):
        active = step < count
        idx = start + step
        sigma = tl.load(sigmas_ptr + idx, mask=active, other=0.0)
        t0 = tl.load(t_starts_ptr + idx, mask=active, other=0.0)
        t1 = tl.load(t_ends_ptr + idx, mask=active, other=0.0)
        dt = t1 - t0
        neg_alpha = expm1(-sigma * dt)
        w = -transmittance * neg_alpha
        sample_rows = idx[:, None] * channels + chans[None, :]
        sample_mask = active[:, None] & (chans < channels)[None, :]
        v = tl.load(values_ptr + sample_rows, mask=sample_mask, other=0.0)
        tl.store(grad_values_ptr + sample_rows, w[:, None] * grad_out, mask=sample_mask)
        g = tl.load(grad_weights_ptr + idx, mask=active, other=0.0)
        g += tl.sum(grad_out * v, axis=1) + grad_opacity + grad_depth * 0.5 * (t0 + t1)
        prefix += w * g
        transmittance *= 1.0 + neg_alpha
        tl.store(grad_sigmas_ptr + idx, dt * (transmittance * g - (total - prefix)), mask=active)


def composite_forward(sigmas, values, t_starts, t_ends, packed_info):
    """Launcher; inputs validated by fastnerf.ops.composite. Returns (out, opacity, depth, weights)."""
    sigmas, values, t_starts, t_ends, packed_info = (
        t.contiguous() for t in (sigmas, values, t_starts, t_ends, packed_info)
    )
    n_rays, channels = packed_info.shape[0], values.shape[1]
    out = values.new_empty(n_rays, channels)
    opacity = sigmas.new_empty(n_rays)
    depth = sigmas.new_empty(n_rays)
    weights = torch.zeros_like(sigmas)
    if n_rays:
        block_r, block_c = channel_tile(channels)
        with on_device_of(sigmas):
            _composite_forward_kernel[(triton.cdiv(n_rays, block_r),)](
                packed_info, sigmas, values, t_starts, t_ends, out, opacity, depth, weights,
                n_rays, channels, BLOCK_R=block_r, BLOCK_C=block_c,
            )
    return out, opacity, depth, weights


def composite_backward(grad_out, grad_opacity, grad_depth, grad_weights, sigmas, values, t_starts, t_ends,
                       packed_info, out, opacity, depth, weights):
    """Launcher; returns (grad_sigmas [S], grad_values [S, C])."""
    tensors = [t.contiguous() for t in (grad_out, grad_opacity, grad_depth, grad_weights, sigmas, values,
                                         t_starts, t_ends, packed_info, out, opacity, depth, weights)]
    (grad_out, grad_opacity, grad_depth, grad_weights, sigmas, values, t_starts, t_ends, packed_info,
     out, opacity, depth, weights) = tensors
    n_rays, channels = packed_info.shape[0], values.shape[1]
    grad_sigmas = torch.zeros_like(sigmas)
    grad_values = torch.zeros_like(values)
    if n_rays:
        block_r, block_c = channel_tile(channels)
        with on_device_of(sigmas):
            _composite_backward_kernel[(triton.cdiv(n_rays, block_r),)](
                packed_info, sigmas, values, t_starts, t_ends, out, opacity, depth, weights,
                grad_out, grad_opacity, grad_depth, grad_weights, grad_sigmas, grad_values,
                n_rays, channels, BLOCK_R=block_r, BLOCK_C=block_c,
            )
    return grad_sigmas, grad_values
