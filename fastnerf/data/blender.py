"""NeRF-synthetic / Blender format: ``transforms_{train,val,test}.json`` beside the images.

Each file has ``camera_angle_x`` (horizontal field of view, radians; ``fl_x``/``fl_y`` are also
accepted) and ``frames`` of ``{"file_path": "./train/r_0", "transform_matrix": 4x4}``, the
path with or without its extension, the matrix OpenGL camera-to-world. ``aabb`` is the
NeRF-synthetic cube ``[-1.5, 1.5]^3`` unless the file has an explicit ``"aabb"`` key.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .dataset import Dataset
from .errors import DatasetError, SplitMissing
from .fields import read_json
from .transforms_json import (
    build_cameras,
    explicit_aabb,
    frame_list,
    image_stack,
    near_far,
    read_frames,
)

SPLITS = ("train", "val", "test")
DEFAULT_AABB = (-1.5, -1.5, -1.5, 1.5, 1.5, 1.5)


def split_file(folder: Path, split: str) -> Path:
    return folder / f"transforms_{split}.json"


def load_blender(folder: Path, split: str, *, downscale: int, background: torch.Tensor, skip_missing: bool) -> Dataset:
    if split not in SPLITS:
        raise DatasetError(f"{folder}: unknown split {split!r} for a Blender dataset; use one of {', '.join(SPLITS)}")
    json_path = split_file(folder, split)
    if not json_path.is_file():
        present = [s for s in SPLITS if split_file(folder, s).is_file()]
        raise SplitMissing(f"{json_path}: not found (this dataset has splits: {', '.join(present) or 'none'})")
    meta = read_json(json_path)
    frames_json = frame_list(json_path, meta)
    frames = read_frames(json_path, frames_json, list(range(len(frames_json))), skip_missing=skip_missing)
    cameras = build_cameras(meta, frames, json_path, downscale)
    aabb = explicit_aabb(meta, json_path)
    near, far = near_far(meta, json_path)
    return Dataset(
        image_stack(frames, json_path, cameras, background),
        cameras,
        background=background,
        aabb=torch.tensor(DEFAULT_AABB) if aabb is None else aabb,
        near=near,
        far=far,
        forward_facing=False,
        format="blender",
        path=folder,
        split=split,
    )
