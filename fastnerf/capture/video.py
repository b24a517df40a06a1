"""Frames from a video: ``fps`` frames a second, each the sharpest of its slice of the video.

The video is split into slices of ``1 / fps`` seconds; of each slice's frames the sharpest
(``sharpness.sharpness``) is kept, so a blurred frame is taken only when its whole slice is
blurred, and such slices (best frame below ``BLURRED_RATIO`` of the median slice's) are dropped.
Frames are decoded by imageio-ffmpeg (its own ffmpeg binary) one at a time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import UserError
from .photos import Photo, save_image
from .sharpness import sharpness

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
BLURRED_RATIO = 0.35


def is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES


def sharpest_frames(path: Path, fps: float, *, progress: bool = True) -> tuple[list[tuple[int, np.ndarray]], int, int]:
    """``([(frame index, pixels [H,W,3] uint8)], frames read, blurred slices dropped)``."""
    import imageio_ffmpeg
    from tqdm import tqdm

    if not fps or fps <= 0:
        raise UserError(f"--fps must be a positive number of frames per second, got {fps!r}")
    try:
        reader = imageio_ffmpeg.read_frames(str(path))
        meta = next(reader)
    except (OSError, RuntimeError, StopIteration) as error:
        raise UserError(f"PHOTOS: cannot read video {path} ({str(error).strip().splitlines()[-1:]})") from None
    width, height = meta["size"]
    source_fps = float(meta.get("fps") or 0) or 30.0
    total = int(float(meta.get("duration") or 0) * source_fps) or None
    best: dict[int, tuple[float, int, np.ndarray]] = {}  # slice -> (score, frame index, pixels)
    count = 0
    try:
        for count, raw in enumerate(tqdm(reader, desc="reading video", unit="frame", total=total, disable=not progress), 1):
            pixels = np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3)
            index = count - 1
            slice_index = int(index * fps / source_fps)
            score = sharpness(pixels)
            if slice_index not in best or score > best[slice_index][0]:
                best[slice_index] = (score, index, pixels.copy())
    except RuntimeError as error:
        raise UserError(f"PHOTOS: video {path} stopped decoding after {count} frames ({error})") from None
    finally:
        reader.close()
    if not best:
        raise UserError(f"PHOTOS: video {path} has no frames")
    median = float(np.median([score for score, _, _ in best.values()]))
    kept = [(index, pixels) for score, index, pixels in best.values() if score >= BLURRED_RATIO * median]
    return sorted(kept, key=lambda item: item[0]), count, len(best) - len(kept)


def extract_frames(path: Path, images_dir: Path, fps: float, max_size: int | None, *, progress: bool = True) -> list[Photo]:
    """Write the kept frames of video ``path`` as ``images_dir/frame_NNNNN.jpg`` (numbered by frame)."""
    frames, read, dropped = sharpest_frames(path, fps, progress=progress)
    images_dir.mkdir(parents=True, exist_ok=True)
    photos = [save_image(Image.fromarray(pixels), images_dir / f"frame_{index:05d}.jpg", max_size)
              for index, pixels in frames]
    print(f"video: kept {len(photos)} of {read} frames (the sharpest of each 1/{fps:g} s"
          + (f"; {dropped} slice(s) all blurred, dropped" if dropped else "") + ")")
    return photos
