"""Instant-NGP / nerfstudio format: one ``transforms.json`` for every frame.

Intrinsics: ``fl_x``, ``fl_y``, ``cx``, ``cy``, ``w``, ``h`` or ``camera_angle_x``/``_y``, at the
top level or overridden per frame (a missing ``fl_y`` equals ``fl_x``; a missing ``cx``/``cy``
is the image centre). Poses are OpenGL camera-to-world, used as they are (no re-orientation).

Splits: nerfstudio's ``train_filenames`` / ``val_filenames`` / ``test_filenames`` when present;
otherwise every 8th frame by ``file_path`` in sorted order (the 0th, 8th, 16th, ...; the rule
every format without its own split follows, ``fastnerf.data.splits``) is ``val``/``test`` and
the rest ``train``; ``split="all"`` gives every frame.

Lens distortion: ``camera_model`` (``OPENCV``, ``OPENCV_FISHEYE``, ``SIMPLE_RADIAL``, ``RADIAL`` or a
pinhole model) with ``k1 k2 p1 p2`` (``k1..k4`` for the fisheye), at the top level or per frame,
as nerfstudio writes them, is applied to the rays (``fastnerf.distortion``).

Bounds: an explicit ``"aabb"`` key wins. Otherwise ``aabb_scale`` gives the box that
Instant-NGP marches, mapped back to the JSON's world units: Instant-NGP maps a world point p
to ``p * scale + offset`` (defaults 0.33 and (0.5, 0.5, 0.5), with its axes cycled so that its
x, y, z are the world's y, z, x) and marches the cube of side ``aabb_scale`` centred at 0.5,
so in world units the box is ``(0.5 - offset + [-aabb_scale / 2, aabb_scale / 2]) / scale``
per axis (``[-1.515, 1.515]^3`` for ``aabb_scale`` 1). With neither key, ``aabb`` is ``None``.

``aabb_scale`` means what it means to Instant-NGP: the scene's content reaches ``aabb_scale``
times past the unit cube, whose detail matters most (its finest cascade); the dataset keeps it
(``Dataset.aabb_scale``). A bounded teacher marches the whole cube, as today; an ``aabb_scale``
above 1 makes the teacher suggest ``--scene unbounded``, which contracts space around the unit
cube (the inner box, at full resolution) and ends rays where they leave the whole cube (see
docs/unbounded.md).
"""

from __future__ import annotations

from pathlib import Path

import torch

from .dataset import Dataset
from .errors import DatasetError
from .json_fields import finite_number, positive_number, read_json, where
from .splits import holdout_by_name
from .transforms_json import explicit_aabb, frame_list, load_transforms

FILE_NAME = "transforms.json"
NGP_DEFAULT_SCALE = 0.33
NGP_DEFAULT_OFFSET = (0.5, 0.5, 0.5)


def load_ngp(json_path: Path, split: str, *, downscale: int, background: torch.Tensor, skip_missing: bool) -> Dataset:
    meta = read_json(json_path)
    indices = _split_indices(meta, frame_list(json_path, meta), split, json_path)
    scale_box = aabb_from_scale(meta, json_path) if explicit_aabb(meta, json_path) is None else None
    return load_transforms(json_path, meta, split, format="ngp", indices=indices, default_aabb=lambda: scale_box,
                           aabb_scale=None if scale_box is None else float(meta["aabb_scale"]), downscale=downscale,
                           background=background, skip_missing=skip_missing)


def _split_indices(meta: dict, frames: list, split: str, json_path: Path) -> list[int]:
    key = f"{split}_filenames"
    if key not in meta:
        names = [_frame_name(f) for f in frames]
        return holdout_by_name(names, split, str(json_path))
    names = meta[key]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise DatasetError(f"{where(json_path, field=key)}: expected a list of file names")
    wanted = {Path(n).as_posix().lstrip("./") for n in names}
    indices = [i for i, f in enumerate(frames) if _frame_name(f) in wanted]
    if not indices:
        raise DatasetError(f"{where(json_path, field=key)}: names no frame of the 'frames' list")
    return indices


def _frame_name(frame) -> str:
    return Path(str(frame.get("file_path", ""))).as_posix().lstrip("./") if isinstance(frame, dict) else ""


def aabb_from_scale(meta: dict, json_path: Path) -> torch.Tensor | None:
    """World-unit box that Instant-NGP marches for ``aabb_scale`` (see the module docstring)."""
    if "aabb_scale" not in meta:
        return None
    aabb_scale = positive_number(meta["aabb_scale"], where(json_path, field="aabb_scale"))
    scale = positive_number(meta.get("scale", NGP_DEFAULT_SCALE), where(json_path, field="scale"))
    offset = meta.get("offset", list(NGP_DEFAULT_OFFSET))
    if not isinstance(offset, list) or len(offset) != 3:
        raise DatasetError(f"{where(json_path, field='offset')}: expected 3 numbers, got {offset!r}")
    offset = [finite_number(v, where(json_path, field="offset")) for v in offset]
    world_offset = torch.tensor([offset[2], offset[0], offset[1]], dtype=torch.float64)  # NGP (x,y,z) = world (y,z,x)
    low = (0.5 - aabb_scale / 2 - world_offset) / scale
    high = (0.5 + aabb_scale / 2 - world_offset) / scale
    return torch.cat([low, high]).float()
