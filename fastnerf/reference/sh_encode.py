"""Reference real spherical harmonics of view directions: the spec of fastnerf.ops.sh_encode.

The real SH basis with the constants of Instant-NGP / tiny-cuda-nn (Ramamoorthi & Hanrahan;
Sloan, "Stupid Spherical Harmonics Tricks"), orthonormal on the unit sphere: the integral of
Y_i Y_j over the sphere is delta_ij. Signs and order are tiny-cuda-nn's (its SphericalHarmonics
encoding), so weights carry over. Band l has 2l+1 functions, ordered m = -l..l, so degree d
(bands 0..d-1) gives d^2 outputs (16 for degree 4). Unlike tiny-cuda-nn, the input is the
direction itself (not remapped from [0, 1]); it is not normalised here (callers pass unit vectors).
The native and Triton kernels evaluate the same products in the same order
(csrc/sh_encode/sh_encode.h).
"""

import torch

MAX_DEGREE = 4


def sh_encode(
    directions: torch.Tensor,  # [..., 3] unit vectors
    degree: int = 4,
) -> torch.Tensor:  # [..., degree^2]
    """The degree^2 real SH of each direction, bands 0..degree-1; differentiable (any order)."""
    if not 1 <= degree <= MAX_DEGREE:
        raise ValueError(f"degree must be in 1..{MAX_DEGREE}, got {degree}")
    x, y, z = directions.unbind(-1)
    out = [torch.full_like(x, 0.28209479177387814)]
    if degree > 1:
        out += [-0.48860251190291987 * y, 0.48860251190291987 * z, -0.48860251190291987 * x]
    if degree > 2:
        xy, yz, xz, x2, y2, z2 = x * y, y * z, x * z, x * x, y * y, z * z
        out += [
            1.0925484305920792 * xy,
            -1.0925484305920792 * yz,
            0.94617469575755997 * z2 - 0.31539156525251999,
            -1.0925484305920792 * xz,
            0.54627421529603959 * (x2 - y2),
        ]
    if degree > 3:
        out += [
            0.59004358992664352 * y * (y2 - 3.0 * x2),
            2.8906114426405538 * xy * z,
            0.45704579946446572 * y * (1.0 - 5.0 * z2),
            0.3731763325901154 * z * (5.0 * z2 - 3.0),
            0.45704579946446572 * x * (1.0 - 5.0 * z2),
            1.4453057213202769 * z * (x2 - y2),
            0.59004358992664352 * x * (3.0 * y2 - x2),
        ]
    return torch.stack(out, dim=-1)


def out_dim(degree: int) -> int:
    return degree * degree
