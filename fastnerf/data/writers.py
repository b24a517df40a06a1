"""Write posed images in the formats ``load`` reads (procedural scenes, tests, conversions).

Images are ``[N,H,W,3]`` or ``[N,H,W,4]`` (RGBA, straight alpha) float in [0, 1] or uint8,
stored as 8-bit PNG. Poses are written exactly as the cameras hold them (float32 values).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..cameras import Camera
from ..distortion import FISHEYE
from .llff import FILE_NAME as LLFF_FILE, llff_poses


def to_uint8(images) -> np.ndarray:
    """``[N,H,W,C]`` float in [0, 1] (rounded) or uint8 -> uint8 array."""
    array = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if array.dtype == np.uint8:
        return array
    return np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8)


def _check(images: np.ndarray, cameras: Camera) -> None:
    if images.ndim != 4 or images.shape[-1] not in (3, 4):
        raise ValueError(f"images must be [N,H,W,3] or [N,H,W,4], got {list(images.shape)}")
    if images.shape[0] != len(cameras) or images.shape[1:3] != (cameras.height, cameras.width):
        raise ValueError(
            f"{images.shape[0]} images of {images.shape[2]}x{images.shape[1]} do not match "
            f"{len(cameras)} cameras of {cameras.width}x{cameras.height}"
        )


def _save_png(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, "RGBA" if pixels.shape[-1] == 4 else "RGB").save(path)


def _matrix(c2w: torch.Tensor) -> list:
    return [[float(v) for v in row] for row in c2w.tolist()]


def write_blender(folder, split: str, images, cameras: Camera, *, aabb=None, near=None, far=None, extra: dict | None = None) -> Path:
    """``folder/transforms_{split}.json`` and ``folder/{split}/r_{k}.png``; returns the JSON path.

    ``camera_angle_x`` is always written; ``fl_x, fl_y, cx, cy`` too, so non-square pixels or an
    off-centre principal point survive (the first frame's intrinsics: the batch must share them).
    """
    folder = Path(folder)
    pixels = to_uint8(images)
    _check(pixels, cameras)
    cameras.require_pinhole("write_blender (NeRF-synthetic has no lens model; use write_ngp)")
    intrinsics = torch.stack([cameras.fx, cameras.fy, cameras.cx, cameras.cy], -1).cpu()  # [N,4]
    if not torch.allclose(intrinsics, intrinsics[:1].expand_as(intrinsics)):
        raise ValueError("write_blender: the Blender format has one set of intrinsics per split; cameras differ")
    fx, fy, cx, cy = intrinsics[0].tolist()
    meta = {
        "camera_angle_x": 2.0 * math.atan(0.5 * cameras.width / fx),
        "fl_x": fx, "fl_y": fy, "cx": cx, "cy": cy, "w": cameras.width, "h": cameras.height,
    }
    if aabb is not None:
        meta["aabb"] = [float(v) for v in torch.as_tensor(aabb).reshape(-1).tolist()]
    if near is not None:
        meta["near"], meta["far"] = float(near), float(far)
    meta.update(extra or {})
    frames = []
    for k in range(len(cameras)):
        _save_png(folder / split / f"r_{k}.png", pixels[k])
        frames.append({"file_path": f"./{split}/r_{k}", "transform_matrix": _matrix(cameras.c2w[k])})
    meta["frames"] = frames
    json_path = folder / f"transforms_{split}.json"
    json_path.write_text(json.dumps(meta, indent=1))
    return json_path


def write_ngp(folder, images, cameras: Camera, *, aabb_scale: float | None = None, per_frame_intrinsics: bool = False) -> Path:
    """``folder/transforms.json`` and ``folder/images/frame_{k:05d}.png``; returns the JSON path.

    A distorted camera writes ``camera_model`` and its keys (nerfstudio's names: ``k1 k2 p1 p2``,
    the fisheye's ``k1..k4``) beside the intrinsics."""
    folder = Path(folder)
    pixels = to_uint8(images)
    _check(pixels, cameras)
    meta: dict = {"w": cameras.width, "h": cameras.height}
    if aabb_scale is not None:
        meta["aabb_scale"] = aabb_scale
    frames = []
    for k in range(len(cameras)):
        name = f"images/frame_{k:05d}.png"
        _save_png(folder / name, pixels[k])
        frame = {"file_path": name, "transform_matrix": _matrix(cameras.c2w[k])}
        target = frame if per_frame_intrinsics else meta
        target.update(fl_x=cameras.fx[k].item(), fl_y=cameras.fy[k].item(), cx=cameras.cx[k].item(), cy=cameras.cy[k].item())
        if cameras.has_distortion:
            keys = ("k1", "k2", "k3", "k4") if cameras.distortion_model == FISHEYE else ("k1", "k2", "p1", "p2")
            target.update(camera_model=cameras.distortion_model if cameras.distortion_model == FISHEYE else "OPENCV",
                          **dict(zip(keys, cameras.distortion[k].tolist())))
        frames.append(frame)
    meta["frames"] = frames
    json_path = folder / "transforms.json"
    json_path.write_text(json.dumps(meta, indent=1))
    return json_path


def write_llff(folder, images, cameras: Camera, bounds) -> Path:
    """``folder/poses_bounds.npy`` and ``folder/images/image_{k:04d}.png``; ``bounds [N,2]`` near/far depths.

    LLFF stores one focal length per frame and a centred principal point; other cameras raise.
    """
    folder = Path(folder)
    pixels = to_uint8(images)
    _check(pixels, cameras)
    cameras.require_pinhole("write_llff (LLFF has no lens model; use write_ngp)")
    if not torch.allclose(cameras.fx, cameras.fy) or not (
        torch.allclose(cameras.cx, torch.full_like(cameras.cx, cameras.width / 2))
        and torch.allclose(cameras.cy, torch.full_like(cameras.cy, cameras.height / 2))
    ):
        raise ValueError("write_llff: LLFF needs fx == fy and the principal point at the image centre")
    for k in range(len(cameras)):
        _save_png(folder / "images" / f"image_{k:04d}.png", pixels[k])
    poses = llff_poses(cameras.c2w.double().cpu().numpy(), cameras.height, cameras.width, cameras.fx.double().cpu().numpy())
    bounds = np.asarray(bounds, dtype=np.float64).reshape(len(cameras), 2)
    npy_path = folder / LLFF_FILE
    np.save(npy_path, np.concatenate([poses.reshape(len(cameras), 15), bounds], axis=1))
    return npy_path
