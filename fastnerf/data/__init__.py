"""Posed-image datasets: ``load(path)`` reads Blender, Instant-NGP / nerfstudio and LLFF data
into one ``Dataset``; ``procedural`` writes built-in scenes in the Blender format."""

from .dataset import Dataset
from .errors import DatasetError, SplitMissing
from .loading import FORMATS, detect_format, load

__all__ = ["Dataset", "DatasetError", "FORMATS", "SplitMissing", "detect_format", "load"]
