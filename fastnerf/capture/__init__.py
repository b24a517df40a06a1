"""Your own photos to a posed dataset: ``process_images(PHOTOS, DATA)`` recovers the cameras with
pycolmap (SIFT, matching, incremental mapping, in a child process) and writes
``DATA/transforms.json`` beside ``DATA/images``, which every command reads as an Instant-NGP /
nerfstudio dataset. pycolmap is the ``fastnerf[capture]`` extra; importing this package does
not need it."""

from .alignment import camera_centre_error, umeyama
from .pipeline import Capture, process_images

__all__ = ["Capture", "camera_centre_error", "process_images", "umeyama"]
