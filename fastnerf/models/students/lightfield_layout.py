"""The light field's layout: rays through the centres of pixel blocks (bundles), the upsampler that
turns a bundle's feature image into colours, and a camera's pose and pinhole intrinsics as the
network (and its exported graph) takes them. Used by ``lightfield.py``."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...cameras import Camera


class ResidualUpsampler(nn.Module):
    """``[B,C,h,w]`` features -> ``[B,3,h*factor,w*factor]`` colours in [0, 1].

    Per x2: bilinear upsampling, then ``h + conv3x3(relu(h))`` (the conv starts at zero, so the
    upsampler starts as plain bilinear interpolation); then a 1x1 convolution and a sigmoid.
    """

    def __init__(self, channels: int, factor: int):
        super().__init__()
        self.stages = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in range(int(math.log2(factor))))
        for conv in self.stages:
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
        self.head = nn.Conv2d(channels, 3, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        h = features
        for conv in self.stages:
            h = F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False)
            h = h + conv(torch.relu(h))
        return torch.sigmoid(self.head(h))


def bundle_rays(c2w: torch.Tensor, intrinsics: torch.Tensor, height: int, width: int, stride: int = 1):
    """Rays through the centres of ``stride x stride`` pixel blocks of ``height x width`` images.

    Args:
        c2w: ``[B,4,4]`` camera-to-world (OpenGL axes: looking along -Z, +Y up).
        intrinsics: ``[B,4]`` = fx, fy, cx, cy in pixels.
    Returns:
        ``(origins, directions)``, each ``[B, ceil(height/stride), ceil(width/stride), 3]``; with
        ``stride = 1`` exactly ``Camera.rays()`` (pixel centres).
    """
    rows = math.ceil(height / stride)
    cols = math.ceil(width / stride)
    dtype, device = c2w.dtype, c2w.device
    u = torch.arange(cols, dtype=dtype, device=device) * stride + 0.5 * stride  # [w] pixel x
    v = torch.arange(rows, dtype=dtype, device=device) * stride + 0.5 * stride  # [h] pixel y
    fx, fy, cx, cy = (intrinsics[:, i, None, None] for i in range(4))  # [B,1,1] each
    x = ((u[None, None, :] - cx) / fx).expand(-1, rows, -1)  # [B,h,w]
    y = (-(v[None, :, None] - cy) / fy).expand(-1, -1, cols)  # [B,h,w]
    camera_dirs = torch.stack([x, y, -torch.ones_like(x)], dim=-1)  # [B,h,w,3]
    directions = torch.einsum("bij,bhwj->bhwi", c2w[:, :3, :3], camera_dirs)
    directions = directions / directions.norm(dim=-1, keepdim=True)
    origins = c2w[:, None, None, :3, 3].expand_as(directions)
    return origins, directions


def camera_intrinsics(camera: Camera) -> tuple[torch.Tensor, torch.Tensor]:
    """``(c2w [B,4,4], intrinsics [B,4])`` of a single or batch ``camera`` (a pinhole one: the
    network's rays, and the exported graph's input, have no lens)."""
    camera.require_pinhole("the lightfield student (its rays, like its exported graph's intrinsics [B,4])")
    batch = camera.batch()
    return batch.c2w, torch.stack([batch.fx, batch.fy, batch.cx, batch.cy], dim=-1)
