"""FrequencyEncoding: the NeRF positional encoding as a module (fastnerf.ops.freq_encode)."""

import torch
from torch import nn

from ..ops.freq_encode import freq_encode


class FrequencyEncoding(nn.Module):
    """[x, sin(2^0 x), cos(2^0 x), ..., sin(2^(n-1) x), cos(2^(n-1) x)] of `[..., in_dim]` inputs.

    out_dim = in_dim * (include_input + 2 * n_freqs). No parameters; differentiable in x.
    """

    def __init__(self, in_dim: int, n_freqs: int, include_input: bool = True, *, backend: str = None):
        super().__init__()
        if in_dim < 1 or n_freqs < 0:
            raise ValueError(f"in_dim must be >= 1 and n_freqs >= 0, got in_dim={in_dim}, n_freqs={n_freqs}")
        self.in_dim, self.n_freqs, self.include_input = in_dim, n_freqs, include_input
        self.backend = backend
        self.out_dim = in_dim * (int(include_input) + 2 * n_freqs)

    def forward(self, x: torch.Tensor, *, backend: str = None) -> torch.Tensor:  # [..., in_dim] -> [..., out_dim]
        """``backend``: op backend for this call (default: the one given at construction)."""
        if x.shape[-1] != self.in_dim:
            raise ValueError(f"x must end in {self.in_dim} (in_dim), got shape {tuple(x.shape)}")
        flat = x.reshape(-1, self.in_dim)
        out = freq_encode(flat, self.n_freqs, include_input=self.include_input, backend=backend or self.backend)
        return out.reshape(*x.shape[:-1], self.out_dim)

    def extra_repr(self) -> str:
        return f"in_dim={self.in_dim}, n_freqs={self.n_freqs}, include_input={self.include_input}"
