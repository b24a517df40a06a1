"""Reference projection of world points into source views with bilinear feature sampling (the
spec of fastnerf.ops.project_features; PixelNeRF's per-point image features).

For view v with OpenGL camera-to-world ``[R | t]`` (looking along -Z, +Y up) and intrinsics
``(fx, fy, cx, cy)`` in feature-map pixels, point p has camera coordinates q = R^T (p - t),
depth = -q_z, and feature-map pixel coordinates

    u = fx * q_x / depth + cx,    w = cy - fy * q_y / depth

(the texel of column i and row j covers [i, i+1) x [j, j+1), its centre at (i + 0.5, j + 0.5),
as ``grid_sample(align_corners=False)``). The feature is the bilinear blend of the four texels
around (u - 0.5, w - 0.5); texels outside the map count as zero (``padding_mode="zeros"``).
Points with depth <= MIN_DEPTH (behind or at the camera), or non-finite coordinates, get zero
features. Differentiable in ``features`` and, through u and w, in ``points``.
"""

import torch
import torch.nn.functional as F

MIN_DEPTH = 1e-6


def project_points(
    points: torch.Tensor,  # [S, 3] world
    c2w: torch.Tensor,  # [V, 4, 4] camera-to-world (OpenGL)
    intrinsics: torch.Tensor,  # [V, 4] (fx, fy, cx, cy)
):
    """``(uv [V,S,2] pixel coordinates, depth [V,S], camera_points [V,S,3])``."""
    rotation, origin = c2w[:, :3, :3], c2w[:, :3, 3]
    camera_points = torch.einsum("vji,vsj->vsi", rotation, points[None] - origin[:, None])  # R^T (p - t)
    depth = -camera_points[..., 2]
    safe = torch.where(depth > MIN_DEPTH, depth, torch.ones_like(depth))
    fx, fy, cx, cy = (intrinsics[:, i, None] for i in range(4))
    u = fx * camera_points[..., 0] / safe + cx
    w = cy - fy * camera_points[..., 1] / safe
    return torch.stack([u, w], -1), depth, camera_points


def project_features(
    points: torch.Tensor,  # [S, 3] world
    c2w: torch.Tensor,  # [V, 4, 4]
    intrinsics: torch.Tensor,  # [V, 4] (fx, fy, cx, cy) in feature-map pixels
    features: torch.Tensor,  # [V, C, h, w]
) -> torch.Tensor:
    """Returns features ``[V, S, C]``."""
    height, width = features.shape[-2:]
    if points.shape[0] == 0 or features.numel() == 0:  # zeros that stay in the autograd graph
        return (features.sum((2, 3)) * 0)[:, None, :].expand(-1, points.shape[0], -1)
    uv, depth, _ = project_points(points, c2w, intrinsics)
    valid = (depth > MIN_DEPTH) & torch.isfinite(uv).all(-1)  # [V, S]
    scale = torch.tensor([2.0 / width, 2.0 / height], dtype=uv.dtype, device=uv.device)
    grid = torch.where(valid[..., None], uv * scale - 1.0, torch.full_like(uv, -3.0))  # -3: far outside, zero
    sampled = F.grid_sample(features, grid[:, :, None, :], mode="bilinear", padding_mode="zeros", align_corners=False)
    return sampled[..., 0].transpose(1, 2) * valid[..., None].to(sampled.dtype)  # [V, S, C]
