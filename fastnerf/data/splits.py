"""Train / test split for formats that store every frame in one list (Instant-NGP, LLFF)."""

from __future__ import annotations

from .errors import DatasetError

HOLDOUT_EVERY = 8  # the LLFF convention: frames 0, 8, 16, ... are held out for val/test
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
