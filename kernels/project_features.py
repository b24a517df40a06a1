"""Triton projection of points into source views with bilinear feature sampling: the per-point
math of csrc/project_features/project_features.h. A program owns a block of points of one view
and loops over channel blocks; the four taps of a point are read as channel vectors (one
contiguous read each for a channels-last map). The backward scatters with atomic adds."""

import torch
import triton
import triton.language as tl

from ._common import is_finite

MIN_DEPTH = tl.constexpr(1e-6)


@triton.jit
def _taps(points_ptr, c2w_ptr, intrinsics_ptr, view, point, mask, height, width, stride_v, stride_y, stride_x):
    """Element offsets (channel 0) and weights of the four taps of `point` in `view` (weight 0: skip)."""
    m = c2w_ptr + view * 16
    k = intrinsics_ptr + view * 4
    row = point.to(tl.int64) * 3
    px = tl.load(points_ptr + row, mask=mask, other=0.0)
    py = tl.load(points_ptr + row + 1, mask=mask, other=0.0)
    pz = tl.load(points_ptr + row + 2, mask=mask, other=0.0)
    finite = is_finite(px) & is_finite(py) & is_finite(pz)  # non-finite points sample nothing
    mask = mask & finite
    dx = tl.where(finite, px, 0.0) - tl.load(m + 3)
    dy = tl.where(finite, py, 0.0) - tl.load(m + 7)
    dz = tl.where(finite, pz, 0.0) - tl.load(m + 11)
    qx = tl.load(m + 0) * dx + tl.load(m + 4) * dy + tl.load(m + 8) * dz
    qy = tl.load(m + 1) * dx + tl.load(m + 5) * dy + tl.load(m + 9) * dz
    depth = -(tl.load(m + 2) * dx + tl.load(m + 6) * dy + tl.load(m + 10) * dz)
    front = mask & (depth > MIN_DEPTH)
    safe = tl.where(front, depth, 1.0)
    x = tl.load(k + 0) * qx / safe + tl.load(k + 2) - 0.5
    y = tl.load(k + 3) - tl.load(k + 1) * qy / safe - 0.5
    ok = front & (x > -1.0) & (x < width) & (y > -1.0) & (y < height)
    x = tl.where(ok, x, 0.0)
    y = tl.where(ok, y, 0.0)
    x0f, y0f = tl.floor(x), tl.floor(y)
    ax, ay = x - x0f, y - y0f
    x0, y0 = x0f.to(tl.int64), y0f.to(tl.int64)
    base = view.to(tl.int64) * stride_v
    in00 = ok & (x0 >= 0) & (y0 >= 0)
    in10 = ok & (x0 + 1 < width) & (y0 >= 0)
    in01 = ok & (x0 >= 0) & (y0 + 1 < height)
    in11 = ok & (x0 + 1 < width) & (y0 + 1 < height)
    o00 = base + y0 * stride_y + x0 * stride_x
    return (o00, tl.where(in00, (1 - ax) * (1 - ay), 0.0), o00 + stride_x, tl.where(in10, ax * (1 - ay), 0.0),
            o00 + stride_y, tl.where(in01, (1 - ax) * ay, 0.0), o00 + stride_y + stride_x, tl.where(in11, ax * ay, 0.0))


@triton.jit
def _tap(features_ptr, offset, weight, c_off, cm):
    """weight * the tap's channel block, [BLOCK_P, BLOCK_C] (nothing read where the weight is 0)."""
    use = (weight != 0.0)[:, None] & cm[None, :]
    return weight[:, None] * tl.load(features_ptr + offset[:, None] + c_off, mask=use, other=0.0)


@triton.jit
def _scatter(grad_features_ptr, offset, weight, c_off, cm, grad):
    use = (weight != 0.0)[:, None] & cm[None, :]
    tl.atomic_add(grad_features_ptr + offset[:, None] + c_off, weight[:, None] * grad, mask=use)


@triton.jit
def _forward_kernel(points_ptr, c2w_ptr, intrinsics_ptr, features_ptr, out_ptr, n_points, channels, height, width,
                    stride_v, stride_c, stride_y, stride_x, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    view = tl.program_id(1)
    point = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    mask = point < n_points
    o0, w0, o1, w1, o2, w2, o3, w3 = _taps(points_ptr, c2w_ptr, intrinsics_ptr, view, point, mask, height, width,
                                           stride_v, stride_y, stride_x)
    out_row = (view.to(tl.int64) * n_points + point.to(tl.int64)) * channels
    for c_start in range(0, channels, BLOCK_C):
        c = c_start + tl.arange(0, BLOCK_C)
        cm = c < channels
        c_off = c.to(tl.int64)[None, :] * stride_c
        acc = _tap(features_ptr, o0, w0, c_off, cm) + _tap(features_ptr, o1, w1, c_off, cm)
        acc += _tap(features_ptr, o2, w2, c_off, cm) + _tap(features_ptr, o3, w3, c_off, cm)
        tl.store(out_ptr + out_row[:, None] + c[None, :], acc, mask=mask[:, None] & cm[None, :])


@triton.jit
def _backward_kernel(points_ptr, c2w_ptr, intrinsics_ptr, grad_out_ptr, grad_features_ptr, n_points, channels, height,
                     width, stride_v, stride_c, stride_y, stride_x, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    view = tl.program_id(1)
    point = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    mask = point < n_points
    o0, w0, o1, w1, o2, w2, o3, w3 = _taps(points_ptr, c2w_ptr, intrinsics_ptr, view, point, mask, height, width,
                                           stride_v, stride_y, stride_x)
    out_row = (view.to(tl.int64) * n_points + point.to(tl.int64)) * channels
    for c_start in range(0, channels, BLOCK_C):
        c = c_start + tl.arange(0, BLOCK_C)
        cm = c < channels
        grad = tl.load(grad_out_ptr + out_row[:, None] + c[None, :], mask=mask[:, None] & cm[None, :], other=0.0)
        c_off = c.to(tl.int64)[None, :] * stride_c
        _scatter(grad_features_ptr, o0, w0, c_off, cm, grad)
        _scatter(grad_features_ptr, o1, w1, c_off, cm, grad)
        _scatter(grad_features_ptr, o2, w2, c_off, cm, grad)
        _scatter(grad_features_ptr, o3, w3, c_off, cm, grad)


def _launch(kernel, points, c2w, intrinsics, maps, target, out, n_views):
    n_points, channels, height, width = points.shape[0], maps.shape[1], maps.shape[2], maps.shape[3]
    block_c = min(64, triton.next_power_of_2(max(channels, 1)))
    block_p = 32
    grid = (triton.cdiv(n_points, block_p), n_views)
    kernel[grid](points, c2w, intrinsics, target, out, n_points, channels, height, width, *maps.stride(),
                 BLOCK_P=block_p, BLOCK_C=block_c)


def project_features_forward(points, c2w, intrinsics, features):
    """Launcher; inputs validated by fastnerf.ops.project_features. Returns features [V, S, C] (float32)."""
    points, c2w, intrinsics = points.contiguous(), c2w.contiguous(), intrinsics.contiguous()
    n_views, n_points, channels = features.shape[0], points.shape[0], features.shape[1]
    out = features.new_zeros(n_views, n_points, channels)
    if out.numel() and features.numel():
        _launch(_forward_kernel, points, c2w, intrinsics, features, features, out, n_views)
    return out


def project_features_backward(grad_out, points, c2w, intrinsics, features):
    """grad_features, laid out like ``features`` (atomic adds in float32)."""
    points, c2w, intrinsics, grad_out = points.contiguous(), c2w.contiguous(), intrinsics.contiguous(), grad_out.contiguous()
    grad_features = torch.zeros_like(features, memory_format=torch.preserve_format)
    if grad_out.numel() and features.numel():
        _launch(_backward_kernel, points, c2w, intrinsics, grad_features, grad_out, grad_features, features.shape[0])
    return grad_features
