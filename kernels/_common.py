"""Small helpers shared by the Triton kernels."""

import torch
import triton
import triton.language as tl


@triton.jit
def expm1(x):
    """exp(x) - 1 without cancellation near 0 (Triton has no expm1)."""
    small = tl.abs(x) < 1e-2
    taylor = x * (1.0 + x * (0.5 + x * (1.0 / 6.0 + x * (1.0 / 24.0))))
    return tl.where(small, taylor, tl.exp(x) - 1.0)


def channel_tile(channels: int, elements: int = 4096):
    """(rays per program, padded channels) for a [rays, channels] tile of about `elements`."""
    block_c = triton.next_power_of_2(max(channels, 1))
    block_r = max(1, min(128, elements // block_c))
    return block_r, block_c


@triton.jit
def is_finite(x):
    """Neither inf nor NaN (NaN fails both comparisons)."""
    return (x == x) & (tl.abs(x) < float("inf"))


def on_device_of(tensor: torch.Tensor):
    """`with on_device_of(x): kernel[grid](...)` launches on x's GPU: Triton launches on the
    current CUDA device, so without this a tensor on cuda:1 would be handed to a kernel running
    on cuda:0. A no-op for CPU tensors (the interpreter): index -1 touches no CUDA state."""
    return torch.cuda.device(tensor.device.index if tensor.device.type == "cuda" else -1)
