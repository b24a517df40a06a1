"""Camera poses from geometry: ``look_at``, an orbit around a target, the LLFF mean pose and its
forward-facing spiral (OpenGL axes, as ``Camera``)."""

from __future__ import annotations

import math

import torch

from .camera import Camera


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> torch.Tensor:
    """Camera-to-world ``[..., 4, 4]`` for cameras at ``eye [..., 3]`` looking at ``target`` (OpenGL axes)."""
    eye = torch.as_tensor(eye, dtype=torch.float64)
    target = torch.as_tensor(target, dtype=torch.float64).expand_as(eye)
    up = torch.as_tensor(up, dtype=torch.float64).expand_as(eye)
    back = eye - target
    if (back.norm(dim=-1) < 1e-9).any():
        raise ValueError("look_at: eye and target coincide")
    back = back / back.norm(dim=-1, keepdim=True)
    right = torch.linalg.cross(up, back, dim=-1)
    if (right.norm(dim=-1) < 1e-9).any():
        raise ValueError("look_at: viewing direction is parallel to up; pick another up vector")
    right = right / right.norm(dim=-1, keepdim=True)
    true_up = torch.linalg.cross(back, right, dim=-1)
    c2w = torch.zeros(eye.shape[:-1] + (4, 4), dtype=torch.float64)
    c2w[..., :3, 0], c2w[..., :3, 1], c2w[..., :3, 2], c2w[..., :3, 3] = right, true_up, back, eye
    c2w[..., 3, 3] = 1.0
    return c2w.float()


def orbit_path(
    n_frames: int,
    radius: float,
    elevation_deg: float,
    width: int,
    height: int,
    fov_x: float,
    target=(0.0, 0.0, 0.0),
    up=(0.0, 0.0, 1.0),
) -> Camera:
    """``n_frames`` cameras evenly spaced on a circle at ``elevation_deg`` above the plane normal
    to ``up``, at distance ``radius`` from ``target``, all looking at ``target``."""
    if n_frames < 1 or radius <= 0:
        raise ValueError(f"orbit_path: need n_frames >= 1 and radius > 0, got {n_frames}, {radius}")
    up_vec = torch.as_tensor(up, dtype=torch.float64)
    up_vec = up_vec / up_vec.norm()
    helper = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    if abs(float(up_vec @ helper)) > 0.9:
        helper = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    axis_a = helper - (helper @ up_vec) * up_vec  # azimuth 0 (+X for up = +Z)
    axis_a = axis_a / axis_a.norm()
    axis_b = torch.linalg.cross(up_vec, axis_a)  # azimuth 90 degrees (+Y for up = +Z)
    azimuth = torch.arange(n_frames, dtype=torch.float64) * (2 * math.pi / n_frames)  # [n]
    elevation = math.radians(elevation_deg)
    offsets = radius * (
        math.cos(elevation) * (torch.cos(azimuth)[:, None] * axis_a + torch.sin(azimuth)[:, None] * axis_b)
        + math.sin(elevation) * up_vec
    )
    target_vec = torch.as_tensor(target, dtype=torch.float64)
    return Camera.from_fov(look_at(target_vec + offsets, target_vec, up_vec), width, height, fov_x)


def mean_pose(c2w: torch.Tensor) -> torch.Tensor:
    """The LLFF "average pose" of ``c2w [B,4,4]``: mean centre, mean back axis, mean up axis -> ``[4,4]``."""
    c2w = c2w.to(torch.float64)
    centre = c2w[:, :3, 3].mean(0)
    back = c2w[:, :3, 2].sum(0)
    back = back / back.norm()
    up = c2w[:, :3, 1].sum(0)
    right = torch.linalg.cross(up, back)
    right = right / right.norm()
    true_up = torch.linalg.cross(back, right)
    pose = torch.eye(4, dtype=torch.float64)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, true_up, back, centre
    return pose.float()


def spiral_path(
    cameras: Camera,
    n_frames: int,
    *,
    near: float,
    far: float,
    n_rotations: float = 2.0,
    z_rate: float = 0.5,
    radius_percentile: float = 90.0,
) -> Camera:
    """LLFF-style forward-facing spiral around the mean pose of ``cameras`` (a batch).

    The spiral radius per axis is the ``radius_percentile`` of the cameras' offsets from their
    mean pose; every frame looks at the focus point at depth ``1 / (0.25 / near + 0.75 / far)``
    in front of the mean pose (the original LLFF choice). Intrinsics are those of ``cameras[0]``.
    """
    if not cameras.is_batch:
        raise ValueError("spiral_path: cameras must be a batch")
    if not 0 < near < far:
        raise ValueError(f"spiral_path: need 0 < near < far, got near={near}, far={far}")
    centre_pose = mean_pose(cameras.c2w.cpu()).to(torch.float64)
    local = torch.linalg.inv(centre_pose) @ cameras.c2w.cpu().to(torch.float64)  # [B,4,4]
    radii = torch.quantile(local[:, :3, 3].abs(), radius_percentile / 100.0, dim=0)  # [3]
    focus_depth = 1.0 / (0.25 / near + 0.75 / far)
    theta = torch.linspace(0, 2 * math.pi * n_rotations, n_frames + 1, dtype=torch.float64)[:-1]  # [n]
    local_eye = torch.stack([torch.cos(theta), -torch.sin(theta), -torch.sin(theta * z_rate)], -1) * radii
    local_target = torch.tensor([0.0, 0.0, -focus_depth], dtype=torch.float64)
    local_c2w = look_at(local_eye, local_target, up=(0.0, 1.0, 0.0)).to(torch.float64)  # [n,4,4]
    c2w = (centre_pose @ local_c2w).float()
    first = cameras[0]
    return Camera(c2w, first.fx.item(), first.fy.item(), first.cx.item(), first.cy.item(), first.width, first.height)
