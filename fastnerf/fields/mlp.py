"""MLP heads for radiance fields and the truncated-exponential density activation."""

from __future__ import annotations

import torch
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
            h = torch.relu(layer(h))
        return self.output(h)
