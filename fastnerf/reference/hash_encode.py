"""Reference multiresolution hash encoding (Instant-NGP): the spec of fastnerf.ops.hash_encode.

For level l with resolution N_l (see `level_resolutions`) and a point x in [0, 1]^3:

* x is first clamped to [0, 1]^3; the gradient with respect to x is 0 in a coordinate that lay
  outside [0, 1] (it passes where 0 <= x <= 1, like torch.clamp).
* pos = x * N_l (in x's dtype); the cell's lower corner is i = min(floor(pos), N_l - 1) and its
  upper corner i + 1, with fraction w = pos - i in [0, 1]. So at an interior integer pos the
  point sits on the lower corner of the cell above it (weight exactly 1 on that vertex), and at
  x = 1 it sits on the upper corner N_l of the last cell: corner indices stay in 0..N_l. The
  x-gradient at an integer pos is the one-sided derivative of that cell.
* Vertex v = (v_x, v_y, v_z) has table row v_x + v_y (N_l+1) + v_z (N_l+1)^2 when
  (N_l+1)^3 <= T (dense level), else (v_x * 1 ^ v_y * 2654435761 ^ v_z * 805459861) mod T in
  uint32 arithmetic (T a power of two, so "mod T" keeps the low bits).
* The 8 corners are blended trilinearly, weight prod_d (w_d if the corner is upper in d else
  1 - w_d), and level l fills output columns l*F .. l*F + F - 1.
"""

import math
from typing import List

import torch

PRIMES = (1, 2654435761, 805459861)
_ROUNDING_SLACK = 1e-9
# corner c = 0..7 is upper in dimension d iff bit d of c is set
_CORNER_BITS = [[(c >> d) & 1 for d in range(3)] for c in range(8)]


def level_resolutions(n_levels: int, n_min: float, n_max: float) -> List[int]:
    """N_l = floor(n_min * b^l), b = exp((ln n_max - ln n_min) / (L - 1)); L = 1: [floor(n_min)].

    Computed once, here, in float64 Python arithmetic; every backend receives these integers.
    The floor is taken of the value plus 1e-9: float64 rounding would otherwise turn an exact
    integer into floor(5.9999999999999996) = 5 (n_min=2, n_max=6, L=3), so that the last level
    is exactly n_max whenever n_max is an integer.
    """
    if n_levels == 1:
        return [int(math.floor(n_min + _ROUNDING_SLACK))]
    growth = math.exp((math.log(n_max) - math.log(n_min)) / (n_levels - 1))
    return [int(math.floor(n_min * growth**level + _ROUNDING_SLACK)) for level in range(n_levels)]


def is_dense(resolution: int, table_size: int) -> bool:
    return (resolution + 1) ** 3 <= table_size


def hash_encode(
    x: torch.Tensor,  # [N, 3] in [0, 1]
    table: torch.Tensor,  # [L, T, F]
    *,
    n_min: float,
    n_max: float,
) -> torch.Tensor:  # [N, L * F]
    return encode_levels(x, table, level_resolutions(table.shape[0], n_min, n_max))


def encode_levels(
    x: torch.Tensor,  # [N, 3]
    table: torch.Tensor,  # [L, T, F]
    resolutions: List[int],  # [L] N_l per level
) -> torch.Tensor:  # [N, L * F]
    """The encoding for given integer resolutions; differentiable in x and table (autograd)."""
    n_points = x.shape[0]
    n_levels, table_size, features = table.shape
    device = x.device
    res = torch.tensor(resolutions, dtype=torch.int64, device=device)  # [L]
    pos = x.clamp(0, 1)[:, None, :] * res.to(x.dtype)[None, :, None]  # [N, L, 3]
    lower = torch.minimum(torch.floor(pos).long(), (res - 1)[None, :, None])  # [N, L, 3]
    frac = pos - lower.to(x.dtype)  # [N, L, 3]

    bits = torch.tensor(_CORNER_BITS, dtype=torch.int64, device=device)  # [8, 3]
    vertex = lower[:, :, None, :] + bits  # [N, L, 8, 3]
    upper = bits.bool()
    w = torch.where(upper, frac[:, :, None, :], 1 - frac[:, :, None, :])  # [N, L, 8, 3]
    weights = w[..., 0] * w[..., 1] * w[..., 2]  # [N, L, 8]

    side = (res + 1)[None, :, None]  # [1, L, 1]
    vx, vy, vz = vertex.unbind(-1)  # [N, L, 8] each
    dense_row = vx + vy * side + vz * side * side
    hashed_row = (vx * PRIMES[0] ^ vy * PRIMES[1] ^ vz * PRIMES[2]) & (table_size - 1)
    dense = torch.tensor([is_dense(r, table_size) for r in resolutions], device=device)  # [L]
    row = torch.where(dense[None, :, None], dense_row, hashed_row)
    row = row + torch.arange(n_levels, device=device)[None, :, None] * table_size  # rows of [L*T, F]

    values = table.reshape(n_levels * table_size, features)[row]  # [N, L, 8, F]
    out = (weights[..., None].to(table.dtype) * values).sum(dim=2)  # [N, L, F]
    return out.reshape(n_points, n_levels * features)
