"""``load``: detect a dataset's format on disk and read one split."""

from __future__ import annotations

from pathlib import Path

import torch

from . import blender, colmap, dtu, llff, ngp
from .dataset import Dataset
from .errors import DatasetError

FORMATS = ("blender", "ngp", "llff", "colmap", "dtu")


def detect_format(path: Path) -> tuple[str, Path]:
    """``(format, file or folder to read)`` for a dataset folder or one of its index files."""
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    if path.is_file():
        if path.name == llff.FILE_NAME:
            return "llff", path.parent
        if path.name == ngp.FILE_NAME:
            return "ngp", path
        if path.name.startswith("transforms_") and path.suffix == ".json":
            return "blender", path.parent
        raise DatasetError(f"{path}: not a dataset index file (expected transforms*.json or {llff.FILE_NAME})")
    if any(blender.split_file(path, split).is_file() for split in blender.SPLITS):
        return "blender", path
    if (path / ngp.FILE_NAME).is_file():
        return "ngp", path / ngp.FILE_NAME
    if (path / llff.FILE_NAME).is_file():
        return "llff", path
    if colmap.is_colmap_folder(path):
        return "colmap", path
    if dtu.camera_file(path) is not None:
        return "dtu", path
    raise DatasetError(
        f"{path}: no dataset found; expected transforms_{{train,val,test}}.json (Blender), "
        f"{ngp.FILE_NAME} (Instant-NGP / nerfstudio), {llff.FILE_NAME} (LLFF), a COLMAP model in "
        f"{colmap.SPARSE_FOLDER}/0/ beside {colmap.IMAGE_FOLDER}/, or a DTU scan ({' or '.join(dtu.CAMERA_FILES)} "
        "beside image/)"
    )


def _background(value, source: Path) -> torch.Tensor:
    try:
        background = torch.as_tensor(value, dtype=torch.float32).reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        background = None
    if background is None or background.shape != (3,) or not ((background >= 0) & (background <= 1)).all():
        raise DatasetError(f"{source}: background must be 3 numbers in [0, 1], got {value!r}")
    return background


def load(
    path,
    split: str = "train",
    *,
    downscale: int = 1,
    background=(1.0, 1.0, 1.0),
    skip_missing: bool = False,
    **format_options,
) -> Dataset:
    """Read one split of a dataset: Blender, Instant-NGP / nerfstudio, LLFF, a COLMAP model or a DTU scan.

    Args:
        path: the dataset folder (or its ``transforms*.json`` / ``poses_bounds.npy``).
        split: ``"train"``, ``"val"`` or ``"test"`` (``"all"`` too for the single-list formats).
        downscale: integer factor to shrink images by (intrinsics follow).
        background: RGB in [0, 1] that transparent pixels are composited onto.
        skip_missing: skip frames whose image is absent, with a warning (default: error).
        format_options: passed to the format's loader, e.g. ``recenter=False, bd_factor=None`` for LLFF.
    Raises:
        DatasetError: naming the file (and frame and field) when the data is missing or malformed.
    """
    path = Path(path)
    kind, target = detect_format(path)
    if isinstance(downscale, bool) or not isinstance(downscale, int) or downscale < 1:
        raise DatasetError(f"{path}: downscale must be a positive integer, got {downscale!r}")
    readers = {"blender": blender.load_blender, "ngp": ngp.load_ngp, "llff": llff.load_llff,
               "colmap": colmap.load_colmap, "dtu": dtu.load_scan_dataset}
    return readers[kind](
        target,
        split,
        downscale=downscale,
        background=_background(background, path),
        skip_missing=skip_missing,
        **format_options,
    )
