"""Reference frequency (positional) encoding: the spec of fastnerf.ops.freq_encode."""

import torch


def freq_encode(
    x: torch.Tensor,  # [N, D]
    n_freqs: int,
    *,
    include_input: bool = True,
) -> torch.Tensor:  # [N, D * (include_input + 2 * n_freqs)]
    """[x, sin(2^0 x), cos(2^0 x), ..., sin(2^(n-1) x), cos(2^(n-1) x)], each block D wide.

    The scales 2^k are exact powers of two, so 2^k * x rounds identically on every backend.
    """
    n_points, dims = x.shape
    scales = 2.0 ** torch.arange(n_freqs, dtype=x.dtype, device=x.device)  # [n_freqs]
    scaled = x[:, None, :] * scales[:, None]  # [N, n_freqs, D]
    waves = torch.stack([torch.sin(scaled), torch.cos(scaled)], dim=2)  # [N, n_freqs, 2, D]
    waves = waves.reshape(n_points, 2 * n_freqs * dims)
    return torch.cat([x, waves], dim=1) if include_input else waves


def out_dim(dims: int, n_freqs: int, include_input: bool = True) -> int:
    return dims * (int(include_input) + 2 * n_freqs)
