"""Posed-image datasets: ``load(path)`` reads Blender, Instant-NGP / nerfstudio, LLFF, COLMAP and DTU-scan data
into one ``Dataset``; ``procedural`` writes built-in scenes in the Blender format."""

from .dataset import Dataset
from .errors import DatasetError, SplitMissing
from .loading import FORMATS, detect_format, load
from .scenes import MultiSceneDataset, Scene, load_scenes

__all__ = ["Dataset", "DatasetError", "FORMATS", "MultiSceneDataset", "Scene", "SplitMissing", "detect_format", "load",
           "load_scenes"]
