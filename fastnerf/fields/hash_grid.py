"""HashEncoding: the Instant-NGP multiresolution hash grid as a module (fastnerf.ops.hash_encode)."""

import torch
from torch import nn

from ..ops.hash_encode import hash_encode, level_resolutions


class HashEncoding(nn.Module):
    """L levels of F features in a table of T = 2^log2_table_size rows each.

    Parameter `table [L, T, F]`, initialised uniformly in [-1e-4, 1e-4] (Instant-NGP). Level
    resolutions run geometrically from n_min to n_max (`resolutions`). forward takes positions
    already normalised to [0, 1]^3 (the model normalises by its aabb), `[..., 3]`, and returns
    `[..., L * F]` (level-major). Positions outside [0, 1] are clamped (gradient 0 there).
    """

    def __init__(
        self,
        n_levels: int = 16,
        n_features: int = 2,
        log2_table_size: int = 19,
        n_min: float = 16,
        n_max: float = 2048,
        *,
        backend: str = None,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        self.n_levels, self.n_features, self.log2_table_size = n_levels, n_features, log2_table_size
        self.n_min, self.n_max = n_min, n_max
        self.backend = backend
        self.out_dim = n_levels * n_features
        self.resolutions = level_resolutions(n_levels, n_min, n_max)
        table = torch.empty(n_levels, 2**log2_table_size, n_features, dtype=dtype)
        self.table = nn.Parameter(table.uniform_(-1e-4, 1e-4))

    def forward(self, x: torch.Tensor, *, backend: str = None) -> torch.Tensor:  # [..., 3] in [0, 1] -> [..., L * F]
        """``backend``: op backend for this call (default: the one given at construction)."""
        if x.shape[-1] != 3:
            raise ValueError(f"x must end in 3 (positions in [0, 1]^3), got shape {tuple(x.shape)}")
        flat = x.reshape(-1, 3)
        if flat.dtype != self.table.dtype:
            flat = flat.to(self.table.dtype)
        out = hash_encode(flat, self.table, n_min=self.n_min, n_max=self.n_max, backend=backend or self.backend)
        return out.reshape(*x.shape[:-1], self.out_dim)

    def extra_repr(self) -> str:
        return (f"n_levels={self.n_levels}, n_features={self.n_features}, log2_table_size={self.log2_table_size}, "
                f"n_min={self.n_min}, n_max={self.n_max}, resolutions={self.resolutions}")
