"""Photos of a built-in scene as a camera would leave them: ray-traced from a walking rig
(``procedural.textured``), on a white background, as PNGs whose EXIF records the 35 mm
equivalent focal length (nothing else: the poses are forgotten). The capture demo and its test
feed them to ``process_images`` and compare what it recovers with the cameras returned here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..cameras import Camera
from ..data.procedural.textured import rig_cameras, textured_tabletop
from ..data.procedural.tracer import render
from ..data.writers import to_uint8
from .exif import FILM_LONG_SIDE_MM, with_focal_length


def white_background(rgba) -> np.ndarray:
    """``[N,H,W,4]`` straight-alpha images in [0, 1] -> ``[N,H,W,3]`` over white."""
    return rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])


def write_rig_photos(folder, n: int, res: int, *, arc_deg: float = 360.0, samples_per_axis: int = 2) -> Camera:
    """Render ``n`` photos of ``res x res`` into ``folder/photo_NNN.png``; returns their cameras
    (photo k is camera k)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cameras = rig_cameras(n, res, arc_deg=arc_deg)
    pixels = to_uint8(white_background(render(textured_tabletop(), cameras, samples_per_axis=samples_per_axis)))
    exif = with_focal_length(float(cameras.fx[0]) * FILM_LONG_SIDE_MM / res)
    for k in range(n):
        Image.fromarray(pixels[k]).save(folder / f"photo_{k:03d}.png", exif=exif)
    return cameras
