"""Camera poses as network inputs: the centre frequency-encoded, the orientation as the 6D
rotation representation (Zhou et al., CVPR 2019: the first two columns of the rotation matrix,
continuous, unlike Euler angles or quaternions).

Pure tensor code (``backend="torch"`` keeps the encoding traceable by torch.export / ONNX).
"""

from __future__ import annotations

import torch
from torch import nn

from ..ops import freq_encode


def rotation_6d(c2w: torch.Tensor) -> torch.Tensor:  # [B,4,4] -> [B,6]
    """The camera's right and up axes (the first two rotation columns), 6 numbers per camera."""
    return c2w[:, :3, :2].transpose(1, 2).reshape(c2w.shape[0], 6)


class PoseEncoding(nn.Module):
    """``c2w [B,4,4]`` -> ``[B, out_dim]``: ``freq(position)`` and ``freq(rotation 6D)``.

    Args:
        centre: ``[3]`` scene centre; positions are encoded relative to it.
        scale: length that maps the cameras' distances to about 1 (positions / scale).
        position_freqs, rotation_freqs: frequencies of each encoding (``include_input`` on).
    """

    def __init__(self, centre, scale: float, *, position_freqs: int = 6, rotation_freqs: int = 4):
        super().__init__()
        if not scale > 0:
            raise ValueError(f"PoseEncoding: scale must be positive, got {scale}")
        self.register_buffer("centre", torch.as_tensor(centre, dtype=torch.float32).reshape(3).clone())
        self.scale = float(scale)
        self.position_freqs, self.rotation_freqs = int(position_freqs), int(rotation_freqs)
        self.out_dim = 3 * (1 + 2 * self.position_freqs) + 6 * (1 + 2 * self.rotation_freqs)

    def forward(self, c2w: torch.Tensor, *, backend=None) -> torch.Tensor:  # [B,4,4] -> [B,out_dim]
        if c2w.ndim != 3 or tuple(c2w.shape[1:]) != (4, 4):
            raise ValueError(f"PoseEncoding: c2w must be [B,4,4], got {list(c2w.shape)}")
        position = (c2w[:, :3, 3] - self.centre) / self.scale  # [B,3]
        return torch.cat([freq_encode(position.contiguous(), self.position_freqs, backend=backend),
                          freq_encode(rotation_6d(c2w).contiguous(), self.rotation_freqs, backend=backend)], dim=1)
