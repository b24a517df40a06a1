"""Checks of camera poses and intrinsics: is a camera-to-world matrix rigid, do given intrinsics
match the one camera a model renders."""

from __future__ import annotations

import math

import torch

from ..errors import UserError

# Rotation part must satisfy |R^T R - I| <= this (float32 poses written to JSON keep ~1e-6).
RIGID_TOLERANCE = 1e-3
INTRINSICS_TOLERANCE = 1e-3  # relative: intrinsics that agree this well are the same camera


def check_fixed_intrinsics(fixed, intrinsics, who: str) -> None:
    """``UserError`` unless every row of ``intrinsics [B,4]`` (fx, fy, cx, cy) is ``fixed [4]``
    (within ``INTRINSICS_TOLERANCE``): ``who`` renders that one camera and cannot honour others."""
    wanted = torch.as_tensor(fixed, dtype=torch.float32).flatten()
    got = torch.as_tensor(intrinsics, dtype=torch.float32).detach().cpu()
    if got.ndim != 2 or got.shape[1] != 4:
        raise UserError(f"intrinsics must be [B,4] (fx, fy, cx, cy), got shape {tuple(got.shape)}")
    differ = ((got - wanted).abs() > INTRINSICS_TOLERANCE * wanted.abs().clamp(min=1.0)).any(1)
    if bool(differ.any()):
        shown = ", ".join(f"{v:.6g}" for v in got[differ][0].tolist())
        raise UserError(f"intrinsics: {who} renders only the camera it was trained for, fx, fy, cx, cy = "
                        f"{', '.join(f'{v:.6g}' for v in wanted.tolist())}; got {shown}")


def rigid_transform_problems(c2w: torch.Tensor) -> list[tuple[int, str]]:
    """Why each matrix of ``c2w [B,4,4]`` is not a rigid camera-to-world transform.

    Returns ``(index, reason)`` for each bad matrix (empty when all are fine), so loaders can
    name the frame. Checks: finite, last row (0, 0, 0, 1), rotation orthonormal with det +1.
    """
    matrices = c2w.detach().to(torch.float64).cpu()
    if matrices.ndim == 3 and matrices.shape[1:] == (4, 4):  # the usual case: all fine, found in one pass
        if _all_rigid_few(matrices) if matrices.shape[0] <= FEW_MATRICES else _all_rigid(matrices):
            return []
    problems = []
    for index, matrix in enumerate(matrices):
        if not torch.isfinite(matrix).all():
            problems.append((index, "has non-finite entries (nan or inf)"))
            continue
        if not torch.allclose(matrix[3], torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64), atol=1e-6):
            problems.append((index, f"last row is {matrix[3].tolist()}, expected [0, 0, 0, 1]"))
            continue
        rotation = matrix[:3, :3]
        error = (rotation.T @ rotation - torch.eye(3, dtype=torch.float64)).abs().max().item()
        determinant = torch.linalg.det(rotation).item()
        if error > RIGID_TOLERANCE or determinant < 0:
            kind = "singular" if abs(determinant) < 1e-6 else "not a rotation (scaled, sheared or mirrored)"
            problems.append((index, f"rotation part is {kind}: |R^T R - I| = {error:.3g}, det = {determinant:.3g}"))
    return problems


FEW_MATRICES = 4  # up to this many, the checks run on Python floats (a render checks its one camera every call)


def _all_rigid_few(matrices: torch.Tensor) -> bool:
    """``_all_rigid`` on Python floats: for a few matrices, tens of microseconds less than tensor ops."""
    for m in matrices.tolist():
        if not all(math.isfinite(v) for row in m for v in row):
            return False
        if max(abs(a - b) for a, b in zip(m[3], (0.0, 0.0, 0.0, 1.0))) > 1e-6:
            return False
        r = [row[:3] for row in m[:3]]
        for i in range(3):  # (R^T R)_ij = column i . column j
            for j in range(3):
                if abs(sum(r[k][i] * r[k][j] for k in range(3)) - (i == j)) > RIGID_TOLERANCE:
                    return False
        determinant = (r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1]) - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
                       + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]))
        if determinant < 0:
            return False
    return True


def _all_rigid(matrices: torch.Tensor) -> bool:
    """Whether every matrix of ``[B,4,4]`` float64 passes ``rigid_transform_problems``' checks
    (batched: a render checks its camera every call, and the per-matrix loop's small tensor ops
    cost a quarter of a millisecond there)."""
    rotation = matrices[:, :3, :3]
    error = (rotation.transpose(1, 2) @ rotation - torch.eye(3, dtype=torch.float64)).abs().amax(dim=(1, 2))
    last_row = (matrices[:, 3] - torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)).abs().amax(dim=1)
    ok = torch.isfinite(matrices).all() & (last_row <= 1e-6).all() & (error <= RIGID_TOLERANCE).all() \
        & (torch.linalg.det(rotation) >= 0).all()
    return bool(ok)
