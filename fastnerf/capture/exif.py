"""The focal length a photo's EXIF records, in pixels of the photo as stored.

Two records give it: the 35 mm equivalent (``FocalLengthIn35mmFilm``, most phones), taken over
the 36 mm long side of a 35 mm frame, and the focal length in millimetres with the sensor's
pixel density (``FocalLength`` with ``FocalPlaneXResolution`` and its unit). Neither depends on
the EXIF orientation: the first is measured on the long side, the second on the sensor's own x.
"""

from __future__ import annotations

from PIL import Image

EXIF_IFD = 0x8769
FOCAL_LENGTH = 0x920A
FOCAL_LENGTH_35MM = 0xA405
FOCAL_PLANE_X_RESOLUTION = 0xA20E
FOCAL_PLANE_RESOLUTION_UNIT = 0xA210
ORIENTATION = 0x0112
FILM_LONG_SIDE_MM = 36.0
UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 1e-3}  # EXIF resolution units: inch, cm, mm, micrometre


def _positive(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if number > 0 else None


def focal_length_pixels(image: Image.Image) -> float | None:
    """Focal length in pixels of ``image`` as stored (before any EXIF rotation), or None when its
    EXIF does not say."""
    try:
        tags = image.getexif().get_ifd(EXIF_IFD)
    except Exception:  # a malformed EXIF block is no reason to refuse the photo
        return None
    long_side = max(image.width, image.height)
    equivalent = _positive(tags.get(FOCAL_LENGTH_35MM))
    if equivalent is not None:
        return equivalent / FILM_LONG_SIDE_MM * long_side
    focal_mm = _positive(tags.get(FOCAL_LENGTH))
    density = _positive(tags.get(FOCAL_PLANE_X_RESOLUTION))
    unit_mm = UNIT_MM.get(tags.get(FOCAL_PLANE_RESOLUTION_UNIT, 2))
    if focal_mm is not None and density is not None and unit_mm is not None:
        return focal_mm * density / unit_mm
    return None


def with_focal_length(focal_35mm: float, orientation: int = 1) -> Image.Exif:
    """An EXIF block that records a 35 mm equivalent focal length (and an orientation): what a
    camera writes; the built-in capture demo gives its photos one."""
    exif = Image.Exif()
    exif[ORIENTATION] = int(orientation)
    exif.get_ifd(EXIF_IFD)[FOCAL_LENGTH_35MM] = int(round(focal_35mm))
    return exif
