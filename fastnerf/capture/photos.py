"""Photos in, the images SfM and training will share out: EXIF rotation applied, the EXIF focal
length read, then shrunk to ``max_size`` on the long side and written under ``DATA/images``.

The focal length is read before any rotation or shrinking (it is measured on the photo as
stored) and scaled with the image. A photo that needs neither rotating nor shrinking is copied
byte for byte.
"""

from __future__ import annotations

import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import UserError
from .exif import ORIENTATION, focal_length_pixels

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")


@dataclass(frozen=True)
class Photo:
    name: str  # file name under DATA/images
    width: int
    height: int
    focal_px: float | None  # from EXIF, in pixels of the written image; None when unknown


def natural_key(name: str) -> list:
    """Sort key that puts ``img2`` before ``img10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_photos(folder: Path) -> list[Path]:
    """The photos of ``folder`` (not its sub-folders), in natural name order."""
    if not folder.is_dir():
        raise UserError(f"PHOTOS: {folder} is not a folder (nor a video file)")
    photos = sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES),
                    key=lambda p: natural_key(p.name))
    if not photos:
        raise UserError(f"PHOTOS: {folder} holds no photos (files ending in {', '.join(PHOTO_SUFFIXES)})")
    return photos


def shrunk_size(width: int, height: int, max_size: int | None) -> tuple[int, int]:
    """``(width, height)`` with the long side at most ``max_size`` (aspect kept, never enlarged)."""
    if not max_size or max(width, height) <= max_size:
        return width, height
    scale = max_size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def save_image(image: Image.Image, path: Path, max_size: int | None, focal_px: float | None = None) -> Photo:
    """Shrink ``image`` (already upright) to ``max_size`` and write it; the focal length scales with it."""
    width, height = shrunk_size(image.width, image.height, max_size)
    if focal_px is not None:
        focal_px *= max(width, height) / max(image.width, image.height)
    if (width, height) != image.size:
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    image.save(path, **({"quality": 95} if path.suffix.lower() in (".jpg", ".jpeg") else {}))
    return Photo(path.name, width, height, focal_px)


def prepare_photos(sources: list[Path], images_dir: Path, max_size: int | None, *, progress: bool = True) -> list[Photo]:
    """Read every photo, rotate it upright, shrink it, write it to ``images_dir``. All unreadable
    photos are reported together, by name."""
    from tqdm import tqdm

    stems: dict[str, str] = {}
    for source in sources:
        if source.stem.lower() in stems:
            raise UserError(f"PHOTOS: {stems[source.stem.lower()]} and {source.name} would both be written as "
                            f"{source.stem}; rename one")
        stems[source.stem.lower()] = source.name
    images_dir.mkdir(parents=True, exist_ok=True)
    photos, unreadable = [], []
    for source in tqdm(sources, desc="reading photos", unit="photo", disable=not progress):
        try:
            photos.append(_prepare_one(source, images_dir, max_size))
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as error:
            unreadable.append(f"{source.name} ({error})")
    if unreadable:
        raise UserError(f"PHOTOS: {len(unreadable)} file(s) are not readable images: " + "; ".join(unreadable[:10])
                        + ("; ..." if len(unreadable) > 10 else "") + " (remove them from the folder or fix them)")
    return photos


def _prepare_one(source: Path, images_dir: Path, max_size: int | None) -> Photo:
    target = images_dir / (source.stem + (".jpg" if source.suffix.lower() in (".jpg", ".jpeg") else ".png"))
    with Image.open(source) as image:
        image.load()  # decode now: a truncated file fails here, naming its photo
        focal_px = focal_length_pixels(image)
        upright = image.getexif().get(ORIENTATION, 1) == 1
        if upright and shrunk_size(image.width, image.height, max_size) == image.size \
                and target.suffix == source.suffix.lower():
            shutil.copyfile(source, target)
            return Photo(target.name, image.width, image.height, focal_px)
        return save_image(ImageOps.exif_transpose(image).convert("RGB"), target, max_size, focal_px)


def check_one_size(photos: list[Photo]) -> tuple[int, int]:
    """Every photo must end up the same size (one camera; the datasets' rule too)."""
    sizes: dict[tuple[int, int], list[str]] = {}
    for photo in photos:
        sizes.setdefault((photo.width, photo.height), []).append(photo.name)
    if len(sizes) > 1:
        listed = "; ".join(f"{w}x{h}: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
                           for (w, h), names in sizes.items())
        raise UserError(f"PHOTOS: the photos have {len(sizes)} sizes after EXIF rotation ({listed}); "
                        "fastnerf takes photos of one camera at one size and orientation")
    return next(iter(sizes))


def shared_focal(photos: list[Photo]) -> float | None:
    """The median EXIF focal length over the photos that record one (one camera)."""
    known = sorted(p.focal_px for p in photos if p.focal_px is not None and math.isfinite(p.focal_px))
    return known[len(known) // 2] if known else None
