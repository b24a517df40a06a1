"""Upsampling decoders: a low-resolution feature image to a full-resolution RGB image.

Each block doubles the resolution, either by bilinear interpolation followed by a 3x3
convolution (``"bilinear"``; no checkerboard) or by a transposed convolution with kernel 2 and
stride 2 (``"transposed"``, the UNet up-convolution the report tried first: each output pixel's
2x2 phase gets its own weights, which shows as a period-2 checkerboard in the errors).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

UPSAMPLERS = ("bilinear", "transposed")


def check_upsampler(mode: str) -> str:
    if mode not in UPSAMPLERS:
        raise ValueError(f"upsampler must be one of {UPSAMPLERS}, got {mode!r}")
    return mode


class UpBlock(nn.Module):
    """``[B, in_ch, h, w]`` -> ``[B, out_ch, 2h, 2w]``: upsample, then a 3x3 conv + ReLU."""

    def __init__(self, in_ch: int, out_ch: int, mode: str = "bilinear"):
        super().__init__()
        self.mode = check_upsampler(mode)
        if self.mode == "transposed":
            self.up = nn.ConvTranspose2d(in_ch, out_ch, kernel_size=2, stride=2)
            self.conv = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        else:
            self.up = None
            self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B,C,h,w] -> [B,out_ch,2h,2w]
        if self.up is not None:
            x = torch.relu(self.up(x))
        else:
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return torch.relu(self.conv(x))


class UpsamplingDecoder(nn.Module):
    """``n_up`` doubling blocks from ``in_ch`` channels, then a 1x1 conv to 3 channels.

    Channels halve per block from ``in_ch`` down to at least ``min_channels``. With ``n_up = 0``
    it is a per-pixel MLP (two 1x1 convs). ``forward`` returns ``[B, 3, h * 2^n_up, w * 2^n_up]``:
    in [0, 1] through a sigmoid (``residual=False``), or a residual starting at exactly 0 (the last
    conv zero-initialised, no activation; ``residual=True``) for a caller that adds it to an image.
    """

    def __init__(self, in_ch: int, n_up: int, *, mode: str = "bilinear", min_channels: int = 16,
                 max_channels: int | None = None, residual: bool = False):
        super().__init__()
        self.residual = bool(residual)
        if n_up < 0:
            raise ValueError(f"UpsamplingDecoder: n_up must be >= 0, got {n_up}")
        self.n_up, self.mode = int(n_up), check_upsampler(mode)
        channels = min(in_ch, max_channels) if max_channels else in_ch
        self.stem = nn.Conv2d(in_ch, channels, 1)
        blocks = []
        for _ in range(self.n_up):
            out_ch = max(min_channels, channels // 2)
            blocks.append(UpBlock(channels, out_ch, mode))
            channels = out_ch
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(channels, 3, 1)
        if self.residual:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    @property
    def factor(self) -> int:
        return 2 ** self.n_up

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # [B,C,h,w] -> [B,3,h*f,w*f]
        x = torch.relu(self.stem(features))
        for block in self.blocks:
            x = block(x)
        out = self.head(x)
        return out if self.residual else torch.sigmoid(out)
