"""Triton real spherical harmonics: each program takes a block of directions and writes their
degree^2 outputs (or their 3 gradients). Same math as csrc/sh_encode/sh_encode.h."""

import torch
import triton
import triton.language as tl

from ._common import on_device_of

BLOCK = 256

# The basis' constants (csrc/sh_encode/sh_encode.h). Globals a kernel reads must be constexpr;
# each multiplies a tensor on its left, so a Python float takes the tensor's dtype (full precision
# in float64) and the interpreter never sees a constexpr on the left of a tensor.
C0 = tl.constexpr(0.28209479177387814)
C1 = tl.constexpr(0.48860251190291987)
C2 = tl.constexpr(1.0925484305920792)
C3 = tl.constexpr(0.94617469575755997)
C4 = tl.constexpr(0.31539156525251999)
C5 = tl.constexpr(0.54627421529603959)
C6 = tl.constexpr(0.59004358992664352)
C7 = tl.constexpr(2.8906114426405538)
C8 = tl.constexpr(0.45704579946446572)
C9 = tl.constexpr(0.3731763325901154)
C10 = tl.constexpr(1.4453057213202769)


@triton.jit
def _load_directions(d_ptr, points, mask):
    x = tl.load(d_ptr + points * 3, mask=mask, other=0.0)
    y = tl.load(d_ptr + points * 3 + 1, mask=mask, other=0.0)
    z = tl.load(d_ptr + points * 3 + 2, mask=mask, other=0.0)
    return x, y, z


@triton.jit
def _sh_forward_kernel(d_ptr, out_ptr, n_points, DEGREE: tl.constexpr, BLOCK: tl.constexpr):
    points = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = points < n_points
    x, y, z = _load_directions(d_ptr, points, mask)
    row = out_ptr + points * (DEGREE * DEGREE)
    tl.store(row, tl.full(x.shape, C0, x.dtype), mask=mask)
    if DEGREE > 1:
        tl.store(row + 1, y * -C1, mask=mask)
        tl.store(row + 2, z * C1, mask=mask)
        tl.store(row + 3, x * -C1, mask=mask)
    if DEGREE > 2:
        xy, yz, xz, x2, y2, z2 = x * y, y * z, x * z, x * x, y * y, z * z
        tl.store(row + 4, xy * C2, mask=mask)
        tl.store(row + 5, yz * -C2, mask=mask)
        tl.store(row + 6, z2 * C3 - C4, mask=mask)
        tl.store(row + 7, xz * -C2, mask=mask)
        tl.store(row + 8, (x2 - y2) * C5, mask=mask)
        if DEGREE > 3:
            tl.store(row + 9, y * C6 * (y2 - 3.0 * x2), mask=mask)
            tl.store(row + 10, xy * C7 * z, mask=mask)
            tl.store(row + 11, y * C8 * (1.0 - 5.0 * z2), mask=mask)
            tl.store(row + 12, z * C9 * (5.0 * z2 - 3.0), mask=mask)
            tl.store(row + 13, x * C8 * (1.0 - 5.0 * z2), mask=mask)
            tl.store(row + 14, z * C10 * (x2 - y2), mask=mask)
            tl.store(row + 15, x * C6 * (3.0 * y2 - x2), mask=mask)


@triton.jit
def _sh_backward_kernel(d_ptr, grad_out_ptr, grad_d_ptr, n_points, DEGREE: tl.constexpr, BLOCK: tl.constexpr):
    points = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = points < n_points
    x, y, z = _load_directions(d_ptr, points, mask)
    row = grad_out_ptr + points * (DEGREE * DEGREE)
    gx = tl.zeros_like(x)  # band 0 is constant
    gy = tl.zeros_like(x)
    gz = tl.zeros_like(x)
    if DEGREE > 1:
        gx -= tl.load(row + 3, mask=mask, other=0.0) * C1
        gy -= tl.load(row + 1, mask=mask, other=0.0) * C1
        gz += tl.load(row + 2, mask=mask, other=0.0) * C1
    if DEGREE > 2:
        g4 = tl.load(row + 4, mask=mask, other=0.0)
        g5 = tl.load(row + 5, mask=mask, other=0.0)
        g6 = tl.load(row + 6, mask=mask, other=0.0)
        g7 = tl.load(row + 7, mask=mask, other=0.0)
        g8 = tl.load(row + 8, mask=mask, other=0.0)
        gx += (y * g4 - z * g7) * C2 + x * g8 * (2 * C5)
        gy += (x * g4 - z * g5) * C2 - y * g8 * (2 * C5)
        gz += z * g6 * (2 * C3) - (y * g5 + x * g7) * C2
        if DEGREE > 3:
            g9 = tl.load(row + 9, mask=mask, other=0.0)
            g10 = tl.load(row + 10, mask=mask, other=0.0)
            g11 = tl.load(row + 11, mask=mask, other=0.0)
            g12 = tl.load(row + 12, mask=mask, other=0.0)
            g13 = tl.load(row + 13, mask=mask, other=0.0)
            g14 = tl.load(row + 14, mask=mask, other=0.0)
            g15 = tl.load(row + 15, mask=mask, other=0.0)
            xy, yz, xz, x2, y2, z2 = x * y, y * z, x * z, x * x, y * y, z * z
            one_minus_5z2 = 1.0 - 5.0 * z2
            y2_minus_x2 = y2 - x2
            gx += (xy * g9 * (-6 * C6) + yz * g10 * C7 + one_minus_5z2 * g13 * C8 + xz * g14 * (2 * C10)
                   + y2_minus_x2 * g15 * (3 * C6))
            gy += (y2_minus_x2 * g9 * (3 * C6) + xz * g10 * C7 + one_minus_5z2 * g11 * C8 - yz * g14 * (2 * C10)
                   + xy * g15 * (6 * C6))
            gz += (xy * g10 * C7 - yz * g11 * (10 * C8) + (15.0 * z2 - 3.0) * g12 * C9 - xz * g13 * (10 * C8)
                   - y2_minus_x2 * g14 * C10)
    tl.store(grad_d_ptr + points * 3, gx, mask=mask)
    tl.store(grad_d_ptr + points * 3 + 1, gy, mask=mask)
    tl.store(grad_d_ptr + points * 3 + 2, gz, mask=mask)


def sh_encode_forward(directions, degree):
    """Launcher; inputs validated by fastnerf.ops.sh_encode. directions [N, 3] -> [N, degree^2]."""
    directions = directions.contiguous()
    n_points = directions.shape[0]
    out = directions.new_empty(n_points, degree * degree)
    if n_points:
        with on_device_of(directions):
            _sh_forward_kernel[(triton.cdiv(n_points, BLOCK),)](directions, out, n_points, DEGREE=degree, BLOCK=BLOCK)
    return out


def sh_encode_backward(grad_out, directions, degree):
    """Launcher; returns grad_directions [N, 3]."""
    directions, grad_out = directions.contiguous(), grad_out.contiguous()
    grad_directions = torch.empty_like(directions)
    n_points = directions.shape[0]
    if n_points:
        with on_device_of(directions):
            _sh_backward_kernel[(triton.cdiv(n_points, BLOCK),)](directions, grad_out, grad_directions, n_points,
                                                                 DEGREE=degree, BLOCK=BLOCK)
    return grad_directions
