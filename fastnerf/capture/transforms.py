"""Write a capture as an Instant-NGP / nerfstudio ``transforms.json`` beside ``images/``.

Intrinsics in nerfstudio's keys: ``camera_model`` (``PINHOLE``, ``OPENCV`` with ``k1 k2 p1 p2``,
or ``OPENCV_FISHEYE`` with ``k1..k4``), ``fl_x fl_y cx cy w h``; COLMAP's ``SIMPLE_RADIAL`` and
``RADIAL`` are the ``OPENCV`` polynomial with the missing terms 0, so they are written as
``OPENCV``; a lens whose coefficients are all 0 (not fitted) is written ``PINHOLE``. One camera writes its intrinsics at the top level, several per frame. Frames are in
name order (so the every-8th held-out rule picks the same photos as for any dataset of them),
with ``file_path`` and an OpenGL ``transform_matrix``. ``aabb`` is the scene's box;
``colmap_to_world`` the similarity from COLMAP's frame (``colmap/sparse``) to this one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..data.colmap import pinhole_and_lens
from .photos import natural_key

FILE_NAME = "transforms.json"


def intrinsics_keys(model: str, params: list[float], width: int, height: int) -> dict:
    """A COLMAP camera (``model``, its ``params``) in nerfstudio's keys."""
    (fx, fy, cx, cy), coefficients = pinhole_and_lens(model, np.asarray(params, dtype=np.float64))
    keys = {"fl_x": float(fx), "fl_y": float(fy), "cx": float(cx), "cy": float(cy), "w": width, "h": height}
    coefficients = [float(v) for v in coefficients]
    if model in ("SIMPLE_PINHOLE", "PINHOLE") or not any(coefficients):  # no distortion: nothing to undo
        return {"camera_model": "PINHOLE", **keys}
    if model == "OPENCV_FISHEYE":
        return {"camera_model": model, **keys, **dict(zip(("k1", "k2", "k3", "k4"), coefficients))}
    if model != "OPENCV":  # SIMPLE_RADIAL (k1), RADIAL (k1, k2): OPENCV's polynomial, the rest 0
        coefficients = (coefficients + [0.0, 0.0])[:2] + [0.0, 0.0]
    return {"camera_model": "OPENCV", **keys, **dict(zip(("k1", "k2", "p1", "p2"), coefficients))}


def write_transforms(folder: Path, names: list[str], camera_ids: list[int], cameras: dict[int, dict],
                     c2w: np.ndarray, aabb: np.ndarray, colmap_to_world: np.ndarray | None = None) -> Path:
    """``folder/transforms.json`` for images ``images/<name>`` with poses ``c2w [N,4,4]``; written
    to a temporary file and renamed, so a reader never sees half of it."""
    order = sorted(range(len(names)), key=lambda k: natural_key(names[k]))
    intrinsics = {cid: intrinsics_keys(cam["model"], list(cam["params"]), cam["width"], cam["height"])
                  for cid, cam in cameras.items()}
    shared = len(set(camera_ids)) == 1
    meta: dict = dict(intrinsics[camera_ids[0]]) if shared else {}
    frames = []
    for k in order:
        frame = {"file_path": f"images/{names[k]}",
                 "transform_matrix": [[float(v) for v in row] for row in c2w[k]]}
        if not shared:
            frame.update(intrinsics[camera_ids[k]])
        frames.append(frame)
    meta["aabb"] = [float(v) for v in aabb]
    if colmap_to_world is not None:
        meta["colmap_to_world"] = [[float(v) for v in row] for row in colmap_to_world]
    meta["frames"] = frames
    path = Path(folder) / FILE_NAME
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(meta, indent=1))
    os.replace(partial, path)
    return path
