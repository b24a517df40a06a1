"""Finding, checking and decoding the images of a dataset.

Headers are read when a dataset is loaded (so a missing, unreadable or wrongly sized image is
reported at once, naming its file); pixels are decoded on first use, in parallel threads.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from .errors import DatasetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG")
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I")


def resolve_image(base_dir: Path, file_path: str) -> Path | None:
    """The image ``file_path`` names, relative to ``base_dir``; an extension-less name
    (Blender's ``./train/r_0``) is tried with the usual suffixes. ``None`` when absent."""
    candidate = (base_dir / file_path).resolve()
    if candidate.is_file():
        return candidate
    if candidate.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        for suffix in IMAGE_SUFFIXES:
            with_suffix = candidate.with_name(candidate.name + suffix)
            if with_suffix.is_file():
                return with_suffix
    return None


def report_skipped(source: Path, skipped: list[str]) -> None:
    """Warn once about frames dropped by ``skip_missing=True``."""
    if skipped:
        shown = "; ".join(skipped[:3]) + ("; ..." if len(skipped) > 3 else "")
        warnings.warn(f"{source}: skipped {len(skipped)} frame(s) whose image is missing: {shown}", stacklevel=3)


@dataclass(frozen=True)
class ImageHeader:
    path: Path
    width: int
    height: int
    has_alpha: bool


def read_header(path: Path, location: str) -> ImageHeader:
    """Size and alpha of an image, without decoding its pixels."""
    try:
        with Image.open(path) as image:
            has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
                image.mode == "P" and "transparency" in image.info
            )
            return ImageHeader(path, image.width, image.height, has_alpha)
    except (UnidentifiedImageError, OSError) as error:
        raise DatasetError(f"{location}: {path} is not a readable image ({error})") from None


def check_same_size(headers: list[ImageHeader], locations: list[str]) -> tuple[int, int]:
    """All images must share one size; returns ``(width, height)``."""
    first = headers[0]
    for header, location in zip(headers, locations):
        if (header.width, header.height) != (first.width, first.height):
            raise DatasetError(
                f"{location}: image {header.path.name} is {header.width}x{header.height} but "
                f"{first.path.name} is {first.width}x{first.height}; all images of a dataset must have one size"
            )
    return first.width, first.height


def decode_image(header: ImageHeader, location: str) -> np.ndarray:
    """Pixels as ``[H,W,C]`` float32 in [0, 1], C = 4 when the image has alpha, else 3."""
    try:
        with Image.open(header.path) as image:
            if image.mode in _SIXTEEN_BIT_MODES:
                gray = np.asarray(image, dtype=np.float32) / 65535.0
                return np.repeat(gray[..., None], 3, axis=-1)
            pixels = np.asarray(image.convert("RGBA" if header.has_alpha else "RGB"), dtype=np.float32)
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise DatasetError(f"{location}: cannot decode image {header.path} ({error})") from None
    if pixels.shape[:2] != (header.height, header.width):
        raise DatasetError(f"{location}: image {header.path} changed size while loading")
    return pixels / 255.0


def area_downscale(pixels: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Box-filter ``pixels [H,W,C]`` to ``[height,width,C]`` (exact block means when the factor divides)."""
    if pixels.shape[:2] == (height, width):
        return pixels
    resized = F.interpolate(pixels.permute(2, 0, 1)[None], size=(height, width), mode="area")
    return resized[0].permute(1, 2, 0)


class ImageStack:
    """The images of one dataset split: checked headers now, decoded pixels on ``load()``.

    Args:
        headers: one per frame, all of the same size.
        locations: ``file, frame k`` strings for error messages, one per frame.
        width, height: output size (smaller than the files' size when downscaling).
        background: ``[3]`` colour that transparent pixels are composited onto.
    """

    def __init__(self, headers: list[ImageHeader], locations: list[str], width: int, height: int, background: torch.Tensor):
        self.headers = headers
        self.locations = locations
        self.width = width
        self.height = height
        self.background = background
        self.has_alpha = any(header.has_alpha for header in headers)

    def __len__(self) -> int:
        return len(self.headers)

    def load(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(images [N,H,W,3], alphas [N,H,W] or None)``; colours composited onto the background."""
        n = len(self.headers)
        images = torch.empty(n, self.height, self.width, 3, dtype=torch.float32)
        alphas = torch.ones(n, self.height, self.width, dtype=torch.float32) if self.has_alpha else None
        background = self.background.to(torch.float32)

        def load_one(index: int) -> None:
            pixels = torch.from_numpy(decode_image(self.headers[index], self.locations[index]))
            if pixels.shape[-1] == 4:
                alpha = pixels[..., 3:]
                pixels = torch.cat([pixels[..., :3] * alpha + background * (1 - alpha), alpha], dim=-1)
            pixels = area_downscale(pixels, self.width, self.height)
            images[index] = pixels[..., :3]
            if pixels.shape[-1] == 4:
                alphas[index] = pixels[..., 3]

        workers = max(1, min(8, os.cpu_count() or 1, n))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(load_one, range(n)))  # list() re-raises the first DatasetError
        return images, alphas
