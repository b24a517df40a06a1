"""Train / test split for formats without a split of their own (Instant-NGP without
``*_filenames``, LLFF, COLMAP models, a DTU scan): one rule, by image name, so two datasets of
the same photos (a COLMAP model and the ``transforms.json`` made from it) hold out the same photos."""

from __future__ import annotations

from .errors import DatasetError

HOLDOUT_EVERY = 8  # the LLFF convention: images 0, 8, 16, ... (in sorted name order) are held out for val/test
SPLITS = ("train", "val", "test", "all")


def holdout_indices(n_frames: int, split: str, source: str) -> list[int]:
    """Frame indices of ``split``: ``test``/``val`` every 8th frame from 0, ``train`` the rest, ``all`` every frame."""
    if split not in SPLITS:
        raise DatasetError(f"{source}: unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if split == "all":
        return list(range(n_frames))
    held_out = [i for i in range(n_frames) if i % HOLDOUT_EVERY == 0]
    if split in ("val", "test"):
        return held_out
    train = [i for i in range(n_frames) if i % HOLDOUT_EVERY != 0]
    return train or held_out  # a single frame is both


def holdout_by_name(names: list[str], split: str, source: str) -> list[int]:
    """Indices into ``names`` of ``split``, the rule of ``holdout_indices`` applied to the names in
    sorted order (ties kept in list order); returned in list order."""
    order = sorted(range(len(names)), key=lambda index: names[index])
    return sorted(order[k] for k in holdout_indices(len(names), split, source))
