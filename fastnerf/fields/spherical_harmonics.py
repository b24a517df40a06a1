"""SphericalHarmonicsEncoding: real spherical harmonics of unit view directions (fastnerf.ops.sh_encode).

The basis, its constants (tiny-cuda-nn's) and its order are those of fastnerf.reference.sh_encode:
band l has 2l+1 functions, ordered m = -l..l, so degree d (bands 0..d-1) gives d^2 outputs.
"""

import torch
from torch import nn

from ..ops.sh_encode import sh_encode
from ..reference.sh_encode import MAX_DEGREE
from ..reference.sh_encode import sh_encode as spherical_harmonics  # [..., 3] -> [..., degree^2], pure torch

__all__ = ["MAX_DEGREE", "SphericalHarmonicsEncoding", "spherical_harmonics"]


class SphericalHarmonicsEncoding(nn.Module):
    """Real SH of unit directions `[..., 3]` -> `[..., degree^2]` (out_dim 16 for degree 4)."""

    def __init__(self, degree: int = 4):
        super().__init__()
        if not 1 <= degree <= MAX_DEGREE:
            raise ValueError(f"degree must be in 1..{MAX_DEGREE}, got {degree}")
        self.degree = degree
        self.out_dim = degree * degree

    def forward(self, directions: torch.Tensor, *, backend: str = None) -> torch.Tensor:  # [..., 3] -> [..., degree^2]
        """``backend``: op backend for this call (None: the fastest for the tensors' device)."""
        if directions.shape[-1] != 3:
            raise ValueError(f"directions must end in 3, got shape {tuple(directions.shape)}")
        out = sh_encode(directions.reshape(-1, 3), self.degree, backend=backend)
        return out.reshape(*directions.shape[:-1], self.out_dim)

    def extra_repr(self) -> str:
        return f"degree={self.degree}"
