"""``load_scenes``: detect a multi-scene dataset's format on disk and read one split (PixelNeRF).

``load_scenes(path, split)`` reads:

- a folder of Blender-format scenes (what ``fastnerf make-scene random --count N`` writes): split
  ``train`` gives every scene's train views (any may be a source or a target); any other split
  gives every scene's train views as the source pool and its ``split`` views as the targets;
- the SRN / ShapeNet layout ``<root>/<category>_<split>/<instance>/{rgb,pose,intrinsics.txt}``
  (``srn.py``): an instance's views sorted by name, all in both pools;
- DTU scans (``dtu.py``): pixelNeRF's ``cameras.npz`` or IDR/NeuS ``cameras_sphere.npz``.

The scenes themselves are ``Scene`` and ``MultiSceneDataset`` (``scenes.py``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..cameras import Camera
from . import dtu, srn
from .errors import DatasetError
from .loading import load
from .scenes import MultiSceneDataset, Scene


SCENE_FORMATS = ("blender", "srn", "dtu")


def detect_scene_format(path: Path, split: str) -> str:
    """``blender``, ``srn`` or ``dtu`` for a multi-scene folder (see the module docstring)."""
    if not path.is_dir() and not srn.split_folders(path, split):
        raise DatasetError(f"{path}: no such folder")
    if srn.split_folders(path, split):
        return "srn"
    if path.is_dir():
        children = sorted(p for p in path.iterdir() if p.is_dir())
        if any((child / "transforms_train.json").is_file() for child in children):
            return "blender"
        if dtu.camera_file(path) is not None or any(dtu.camera_file(child) for child in children):
            return "dtu"
        if len(children) == 1 and any(dtu.camera_file(p) for p in children[0].iterdir() if p.is_dir()):
            return "dtu"
    raise DatasetError(
        f"{path}: no multi-scene dataset found; expected sub-folders holding transforms_train.json "
        f"(Blender scenes), <category>_{split}/<instance>/intrinsics.txt (SRN / ShapeNet), or scans with "
        f"cameras.npz / cameras_sphere.npz (DTU)"
    )


def parse_source_views(text) -> list[int] | None:
    """``"0,3"`` -> ``[0, 3]`` (``None`` and ``[]`` stay ``None``), for ``--source-views``."""
    if text is None or text == "" or text == []:
        return None
    if isinstance(text, (list, tuple)):
        return [int(v) for v in text]
    try:
        return [int(part) for part in str(text).split(",") if part.strip() != ""]
    except ValueError:
        raise DatasetError(f"--source-views must be comma-separated view indices like 0,3, got {text!r}") from None


def _check_downscale(path: Path, downscale) -> int:
    if isinstance(downscale, bool) or not isinstance(downscale, int) or downscale < 1:
        raise DatasetError(f"{path}: downscale must be a positive integer, got {downscale!r}")
    return downscale


def load_scenes(path, split: str = "train", *, downscale: int = 1, background=(1.0, 1.0, 1.0),
                max_scenes: int | None = None) -> MultiSceneDataset:
    """Read the scenes of one split of a multi-scene dataset (format detected).

    Args:
        path: a folder of Blender scenes, an SRN root (or ``<root>/<category>`` prefix, or one
            ``<category>_<split>`` folder), or a DTU folder of scans (or one scan).
        split: ``train``, ``val`` or ``test``.
        downscale: integer factor to shrink images by (intrinsics follow).
        background: RGB that transparent pixels are composited onto (Blender scenes).
        max_scenes: read at most this many scenes (sorted by name).
    Raises:
        DatasetError: naming the file and field when data is missing or malformed.
    """
    path = Path(path)
    downscale = _check_downscale(path, downscale)
    kind = detect_scene_format(path, split)
    reader = {"blender": load_blender_scenes, "srn": srn.load_srn, "dtu": dtu.load_dtu}[kind]
    dataset = reader(path, split, downscale=downscale, background=tuple(float(v) for v in background),
                     max_scenes=max_scenes)
    if not dataset.scenes:
        raise DatasetError(f"{path}: no scenes found for split {split!r}")
    return dataset


# ---- a folder of Blender-format scenes ---------------------------------------------------------


def load_blender_scenes(path: Path, split: str, *, downscale: int, background, max_scenes=None) -> MultiSceneDataset:
    """Every sub-folder with ``transforms_train.json`` is a scene (sorted by name)."""
    folders = sorted(p for p in path.iterdir() if p.is_dir() and (p / "transforms_train.json").is_file())
    if max_scenes is not None:
        folders = folders[:max_scenes]
    scenes, aabbs, nears, fars = [], [], [], []
    for folder in folders:
        train = load(folder, "train", downscale=downscale, background=background)
        parts = [train]
        if split != "train":
            parts.append(load(folder, split, downscale=downscale, background=background))
        if len({(p.width, p.height) for p in parts}) != 1:
            raise DatasetError(f"{folder}: the train and {split} images differ in size")
        images = torch.cat([p.images for p in parts])
        masks = None
        if all(p.alphas is not None for p in parts):
            masks = torch.cat([p.alphas for p in parts])
        cameras = Camera.cat([p.cameras for p in parts])
        n_train = len(train)
        targets = list(range(len(images))) if split == "train" else list(range(n_train, len(images)))
        scenes.append(Scene(folder.name, images, cameras, masks, list(range(n_train)), targets, folder))
        if train.aabb is not None:
            aabbs.append(train.aabb)
        nears.append(train.near)
        fars.append(train.far)
    aabb = (-1.5, -1.5, -1.5, 1.5, 1.5, 1.5)
    if aabbs:
        stacked = torch.stack(aabbs)
        aabb = tuple(stacked[:, :3].amin(0).tolist() + stacked[:, 3:].amax(0).tolist())
    near = min((n for n in nears if n is not None), default=None)
    far = max((f for f in fars if f is not None), default=None)
    if near is None or far is None:  # no near/far in the JSONs: from camera distances and the box
        centres = torch.cat([s.cameras.c2w[:, :3, 3] for s in scenes]) if scenes else torch.zeros(1, 3)
        radius = float(torch.tensor(aabb).abs().max()) * 3**0.5
        distance = centres.norm(dim=-1)
        near = max(float(distance.min()) - radius, 0.05) if near is None else near
        far = float(distance.max()) + radius if far is None else far
    return MultiSceneDataset(scenes, "blender", path, split, float(near), float(far), aabb, background)
