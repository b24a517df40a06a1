"""Posed-image datasets: ``load(path)`` reads Blender, Instant-NGP / nerfstudio and LLFF data
into one ``Dataset``; ``procedural`` writes built-in scenes in the Blender format."""

from .dataset import Dataset
from .scenes import MultiSceneDataset, Scene, load_scenes
from .errors import DatasetError
from .loading import FORMATS, detect_format, load

__all__ = ["Dataset", "DatasetError", "FORMATS", "MultiSceneDataset", "Scene", "detect_format", "load", "load_scenes"]
