"""MLP heads for radiance fields and the truncated-exponential density activation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _TruncExp(torch.autograd.Function):
    # exp(x) forward; the backward clamps x at 15 so one large pre-activation cannot blow up
    # the gradient (Instant-NGP / torch-ngp "trunc_exp").
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.exp(x)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out * torch.exp(x.clamp(max=15.0))


def trunc_exp(x: torch.Tensor) -> torch.Tensor:
    """``exp(x)`` whose gradient uses ``exp(min(x, 15))``: the Instant-NGP density activation."""
    return _TruncExp.apply(x)


class MLP(nn.Module):
    """Fully connected network: ``n_hidden`` ReLU layers of ``width`` then a linear output.

    ``skips`` lists hidden-layer indices whose input is concatenated with the network input
    (the vanilla-NeRF skip connection). ``bias=False`` gives the tiny Instant-NGP heads.
    """

    def __init__(self, in_dim: int, out_dim: int, *, width: int = 64, n_hidden: int = 1, skips=(),
                 bias: bool = True):
        super().__init__()
        self.in_dim, self.out_dim, self.skips = in_dim, out_dim, tuple(skips)
        layers, dim = [], in_dim
        for index in range(n_hidden):
            if index in self.skips:
                dim += in_dim
            layers.append(nn.Linear(dim, width, bias=bias))
            dim = width
        self.hidden = nn.ModuleList(layers)
        self.output = nn.Linear(dim, out_dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, in_dim] -> [N, out_dim]
        h = x
        for index, layer in enumerate(self.hidden):
            if index in self.skips:
                h = torch.cat([h, x], dim=-1)
            # In place: the matmul's backward needs its inputs, not its output.
            h = torch.relu_(_linear(h, layer))
        return _linear(h, self.output)


# CPU matmuls with an input width that is not a multiple of this run at half speed or worse
# (measured, 16384 rows, 1 thread: 31 -> 64 forward+backward 2.2x slower than 32 -> 64), so on
# the CPU such inputs get zero columns (and the weight zero columns) up to the next multiple.
_CPU_WIDTH_MULTIPLE = 8


def _linear(h: torch.Tensor, layer: nn.Linear) -> torch.Tensor:  # [N, in] -> [N, out]
    missing = -layer.in_features % _CPU_WIDTH_MULTIPLE
    if missing == 0 or h.device.type != "cpu":
        return layer(h)
    return F.linear(F.pad(h, (0, missing)), F.pad(layer.weight, (0, missing)), layer.bias)


class ResidualBlock(nn.Module):
    """``h + W2 relu(W1 relu(h))`` (pixelNeRF's ResnetBlockFC, R2L's block); W2 starts at zero, so
    a deep stack starts as the identity. Used by PixelNeRF and the light-field student."""

    def __init__(self, width: int):
        super().__init__()
        self.inner = nn.Linear(width, width)
        self.outer = nn.Linear(width, width)
        nn.init.zeros_(self.outer.weight)
        nn.init.zeros_(self.outer.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # [N, width] -> [N, width]
        return h + self.outer(torch.relu(self.inner(torch.relu(h))))
