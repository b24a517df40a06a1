"""Triton multiresolution hash encoding: program (block of points, level) computes the 8 corners
of each point's cell and blends a [points, features] tile. Table and x gradients by atomic adds.
Same math as csrc/hash_encode/hash_encode.h (spec: fastnerf/reference/hash_encode.py)."""

import torch
import triton
import triton.language as tl

from ._common import on_device_of

BLOCK = 128


@triton.jit
def _cell(x, res):
    """Lower corner, fraction and inside-[0,1] flag of one coordinate at resolution res."""
    inside = (x >= 0.0) & (x <= 1.0)
    clamped = tl.where(inside, x, tl.where(x > 1.0, 1.0, 0.0)).to(x.dtype)
    pos = clamped * res.to(x.dtype)
    lower = tl.minimum(tl.floor(pos).to(tl.int64), res - 1)
    lower = tl.maximum(lower, 0)
    return lower, pos - lower.to(x.dtype), inside


@triton.jit
def _row(vx, vy, vz, res, table_size):
    """Dense row while (res+1)^3 <= T, else the XOR-of-primes hash (low bits of the uint32 value)."""
    side = res + 1
    dense = side * side * side <= table_size
    dense_row = vx + vy * side + vz * side * side
    hashed_row = (vx ^ (vy * 2654435761) ^ (vz * 805459861)) & (table_size - 1)
    return tl.where(dense, dense_row, hashed_row)


@triton.jit
def _hash_kernel(
    x_ptr, table_ptr, res_ptr, grad_out_ptr, out_ptr, grad_table_ptr, grad_x_ptr,
    n_points, n_levels, table_size, features,
    BACKWARD: tl.constexpr, X_GRAD: tl.constexpr, BLOCK: tl.constexpr, BLOCK_F: tl.constexpr,
):
    points = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    level = tl.program_id(1)
    mask = points < n_points
    res = tl.load(res_ptr + level).to(tl.int64)
    lx, fx, in_x = _cell(tl.load(x_ptr + 3 * points, mask=mask, other=0.0), res)
    ly, fy, in_y = _cell(tl.load(x_ptr + 3 * points + 1, mask=mask, other=0.0), res)
    lz, fz, in_z = _cell(tl.load(x_ptr + 3 * points + 2, mask=mask, other=0.0), res)

    feats = tl.arange(0, BLOCK_F)
    tile_mask = mask[:, None] & (feats < features)[None, :]
    cols = points[:, None] * n_levels * features + level * features + feats[None, :]
    level_base = level.to(tl.int64) * table_size
    if BACKWARD:
        g = tl.load(grad_out_ptr + cols, mask=tile_mask, other=0.0)
        dwx = tl.zeros_like(fx)
        dwy = tl.zeros_like(fx)
        dwz = tl.zeros_like(fx)
    else:
        acc = tl.zeros([BLOCK, BLOCK_F], dtype=out_ptr.dtype.element_ty)
    for corner in tl.static_range(8):
        bx: tl.constexpr = corner & 1
        by: tl.constexpr = (corner >> 1) & 1
        bz: tl.constexpr = (corner >> 2) & 1
        wx = fx if bx else 1.0 - fx
        wy = fy if by else 1.0 - fy
        wz = fz if bz else 1.0 - fz
        w = wx * wy * wz
        row = level_base + _row(lx + bx, ly + by, lz + bz, res, table_size)
        ptrs = row[:, None] * features + feats[None, :]
        if BACKWARD:
            tl.atomic_add(grad_table_ptr + ptrs, w[:, None] * g, mask=tile_mask)
            if X_GRAD:
                dot = tl.sum(g * tl.load(table_ptr + ptrs, mask=tile_mask, other=0.0), axis=1)
                dwx += (1.0 if bx else -1.0) * wy * wz * dot
                dwy += (1.0 if by else -1.0) * wx * wz * dot
                dwz += (1.0 if bz else -1.0) * wx * wy * dot
        else:
            acc += w[:, None] * tl.load(table_ptr + ptrs, mask=tile_mask, other=0.0)
    if BACKWARD:
        if X_GRAD:
            scale = res.to(fx.dtype)
            tl.atomic_add(grad_x_ptr + 3 * points, tl.where(in_x, scale * dwx, 0.0), mask=mask)
            tl.atomic_add(grad_x_ptr + 3 * points + 1, tl.where(in_y, scale * dwy, 0.0), mask=mask)
            tl.atomic_add(grad_x_ptr + 3 * points + 2, tl.where(in_z, scale * dwz, 0.0), mask=mask)
    else:
        tl.store(out_ptr + cols, acc, mask=tile_mask)


def _launch(x, table, resolutions, grad_out, out, grad_table, grad_x, *, backward, x_grad):
    n_points = x.shape[0]
    n_levels, table_size, features = table.shape
    res = torch.tensor(resolutions, dtype=torch.int32, device=x.device)
    with on_device_of(x):
        _hash_kernel[(triton.cdiv(n_points, BLOCK), n_levels)](
            x, table, res, grad_out, out, grad_table, grad_x, n_points, n_levels, table_size, features,
            BACKWARD=backward, X_GRAD=x_grad, BLOCK=BLOCK, BLOCK_F=triton.next_power_of_2(features),
        )


def hash_encode_forward(x, table, resolutions):
    """Launcher; inputs validated by fastnerf.ops.hash_encode. Returns out [N, L * F]."""
    x, table = x.contiguous(), table.contiguous()
    out = table.new_empty(x.shape[0], table.shape[0] * table.shape[2])
    if x.shape[0]:
        _launch(x, table, resolutions, out, out, out, out, backward=False, x_grad=False)
    return out


def hash_encode_backward(grad_out, x, table, resolutions, x_requires_grad):
    """Launcher; returns (grad_x [N, 3] (zeros unless x_requires_grad), grad_table [L, T, F])."""
    x, table, grad_out = x.contiguous(), table.contiguous(), grad_out.contiguous()
    grad_table = torch.zeros_like(table)
    grad_x = torch.zeros_like(x)
    if x.shape[0]:
        _launch(x, table, resolutions, grad_out, grad_out, grad_table, grad_x, backward=True,
                x_grad=bool(x_requires_grad))
    return grad_x, grad_table
