"""Triton frequency encoding: each program takes a block of (point, dim) elements and writes
their include_input and 2 * n_freqs slots. Same math as csrc/freq_encode/freq_encode.h."""

import torch
import triton
import triton.language as tl

from ._common import on_device_of

BLOCK = 256


@triton.jit
def _freq_forward_kernel(x_ptr, out_ptr, n_elements, dims, n_freqs, INCLUDE_INPUT: tl.constexpr, BLOCK: tl.constexpr):
    elements = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = elements < n_elements
    point, d = elements // dims, elements % dims
    v = tl.load(x_ptr + elements, mask=mask, other=0.0)
    width = dims * (INCLUDE_INPUT + 2 * n_freqs)
    row = out_ptr + point * width
    if INCLUDE_INPUT:
        tl.store(row + d, v, mask=mask)
    waves = row + INCLUDE_INPUT * dims + d
    scale = 1.0
    for k in range(0, n_freqs):
        scaled = v * scale  # 2^k exactly
        tl.store(waves + 2 * k * dims, tl.sin(scaled), mask=mask)
        tl.store(waves + (2 * k + 1) * dims, tl.cos(scaled), mask=mask)
        scale = scale * 2.0


@triton.jit
def _freq_backward_kernel(x_ptr, grad_out_ptr, grad_x_ptr, n_elements, dims, n_freqs,
                          INCLUDE_INPUT: tl.constexpr, BLOCK: tl.constexpr):
    elements = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = elements < n_elements
    point, d = elements // dims, elements % dims
    v = tl.load(x_ptr + elements, mask=mask, other=0.0)
    width = dims * (INCLUDE_INPUT + 2 * n_freqs)
    row = grad_out_ptr + point * width
    grad = tl.zeros_like(v)
    if INCLUDE_INPUT:
        grad += tl.load(row + d, mask=mask, other=0.0)
    waves = row + INCLUDE_INPUT * dims + d
    scale = 1.0
    for k in range(0, n_freqs):
        scaled = v * scale
        g_sin = tl.load(waves + 2 * k * dims, mask=mask, other=0.0)
        g_cos = tl.load(waves + (2 * k + 1) * dims, mask=mask, other=0.0)
        grad += scale * (g_sin * tl.cos(scaled) - g_cos * tl.sin(scaled))
        scale = scale * 2.0
    tl.store(grad_x_ptr + elements, grad, mask=mask)


def freq_encode_forward(x, n_freqs, include_input):
    """Launcher; inputs validated by fastnerf.ops.freq_encode. x [N, D] -> [N, D * (inc + 2 n)]."""
    x = x.contiguous()
    n_points, dims = x.shape
    out = x.new_empty(n_points, dims * (int(include_input) + 2 * n_freqs))
    if out.numel():
        n = n_points * dims
        with on_device_of(x):
            _freq_forward_kernel[(triton.cdiv(n, BLOCK),)](x, out, n, dims, n_freqs,
                                                           INCLUDE_INPUT=int(include_input), BLOCK=BLOCK)
    return out


def freq_encode_backward(grad_out, x, n_freqs, include_input):
    """Launcher; returns grad_x [N, D]."""
    x, grad_out = x.contiguous(), grad_out.contiguous()
    grad_x = torch.empty_like(x)
    if grad_x.numel():
        n = grad_x.numel()
        with on_device_of(x):
            _freq_backward_kernel[(triton.cdiv(n, BLOCK),)](x, grad_out, grad_x, n, x.shape[1], n_freqs,
                                                            INCLUDE_INPUT=int(include_input), BLOCK=BLOCK)
    return grad_x
