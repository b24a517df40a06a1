"""A ResNet-style image encoder whose first four stages are upsampled to the first one's size and
concatenated: pixelNeRF's ``SpatialEncoder`` (a ResNet-34 cut after ``layer3``: 64 + 64 + 128 +
256 = 512 channels at half the image size).

``ResNetEncoder()`` defaults to a much smaller network sized for a CPU (stem 32, one basic block
per stage of 32, 64, 128 channels: 256 channels, group norm because a scene gives one to three
images, so batch statistics would be noisy). ``ResNetEncoder.resnet34()`` is pixelNeRF's size,
with batch norm and torchvision's module names, so ``load_torchvision(path)`` loads a torchvision
ResNet-34 ``state_dict`` file (``layer4`` and ``fc`` are not used and skipped).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("group", "batch")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.GroupNorm(max(1, min(8, channels // 4)), channels)  # groups of >= 4 channels


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (torchvision's names: conv1, bn1, conv2, bn2, downsample)."""

    def __init__(self, in_channels: int, channels: int, stride: int, norm: str):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = _norm(norm, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = _norm(norm, channels)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride, bias=False), _norm(norm, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, in, h, w] -> [B, channels, h/stride, w/stride]
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNetEncoder(nn.Module):
    """Images ``[B,3,H,W]`` in [0, 1] -> features ``[B, out_channels, ceil(H/2), ceil(W/2)]``.

    Args:
        widths: channels of the stem and of stages 1 to 3 (pixelNeRF: 64, 64, 128, 256).
        blocks: basic blocks in stages 1 to 3 (ResNet-34: 3, 4, 6).
        norm: ``"group"`` or ``"batch"`` (batch for torchvision weights).
    """

    def __init__(self, widths=(32, 32, 64, 128), blocks=(1, 1, 1), norm: str = "group"):
        super().__init__()
        widths, blocks = tuple(int(w) for w in widths), tuple(int(b) for b in blocks)
        if len(widths) != 4 or len(blocks) != 3 or min(widths) < 1 or min(blocks) < 1:
            raise ValueError(f"ResNetEncoder: widths must be 4 and blocks 3 positive ints, got {widths}, {blocks}")
        if norm not in NORMS:
            raise ValueError(f"ResNetEncoder: norm must be one of {NORMS}, got {norm!r}")
        self.widths, self.blocks, self.norm = widths, blocks, norm
        self.conv1 = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
        self.bn1 = _norm(norm, widths[0])
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        in_channels = widths[0]
        for stage in range(3):
            layers = []
            for index in range(blocks[stage]):
                stride = 2 if stage > 0 and index == 0 else 1
                layers.append(BasicBlock(in_channels, widths[stage + 1], stride, norm))
                in_channels = widths[stage + 1]
            setattr(self, f"layer{stage + 1}", nn.Sequential(*layers))
        self.out_channels = sum(widths)
        # ImageNet normalisation, as torchvision's weights expect (harmless from scratch).
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def resnet34(cls) -> "ResNetEncoder":
        """pixelNeRF's encoder: ResNet-34 to layer3, 512 channels, batch norm."""
        return cls(widths=(64, 64, 128, 256), blocks=(3, 4, 6), norm="batch")

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # [B,3,H,W] -> [B, out_channels, h, w]
        x = (images - self.mean) / self.std
        stem = torch.relu(self.bn1(self.conv1(x)))
        stage1 = self.layer1(self.maxpool(stem))
        stage2 = self.layer2(stage1)
        stage3 = self.layer3(stage2)
        size = stem.shape[-2:]
        upsampled = [stem] + [F.interpolate(s, size=size, mode="bilinear", align_corners=False)
                              for s in (stage1, stage2, stage3)]
        return torch.cat(upsampled, 1)

    def load_torchvision(self, path) -> None:
        """Load a torchvision ResNet-34 ``state_dict`` file (needs ``resnet34()``'s shape)."""
        from ..errors import UserError

        if self.norm != "batch" or self.widths != (64, 64, 128, 256) or self.blocks != (3, 4, 6):
            raise UserError("encoder weights need the full ResNet-34 encoder: encoder='resnet34'")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError) as error:
            raise UserError(f"{path}: cannot read a ResNet-34 state dict ({error})") from None
        if not isinstance(state, dict):
            raise UserError(f"{path}: expected a state_dict (a dict of tensors), got {type(state).__name__}")
        wanted = {k: v for k, v in state.items() if not k.startswith(("layer4.", "fc."))}
        own = self.state_dict()
        missing = sorted(set(own) - set(wanted))
        if missing:
            raise UserError(f"{path}: not a torchvision ResNet-34 state dict; missing {missing[:3]}")
        bad = [k for k in wanted if k in own and tuple(wanted[k].shape) != tuple(own[k].shape)]
        if bad:
            raise UserError(f"{path}: {bad[0]} has shape {tuple(wanted[bad[0]].shape)}, expected {tuple(own[bad[0]].shape)}")
        self.load_state_dict({k: v for k, v in wanted.items() if k in own})
