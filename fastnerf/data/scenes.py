"""Multi-scene datasets (PixelNeRF): ``Scene`` (one scene's posed images and its source and target
views) and ``MultiSceneDataset`` (the scenes of one split). ``load_scenes`` (``scene_loading.py``)
reads them from disk in any of the formats (``srn.py``, ``dtu.py``, Blender scenes).

Source views: by default the first K views of a scene's source pool; ``source_views=[i, j]``
picks others (indices into the scene's views; for Blender scenes, the train views come first).
Every view in the target pool that is not a source is a target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..cameras import Camera
from .errors import DatasetError


@dataclass
class Scene:
    """One scene: ``images [V,H,W,3]`` in [0, 1], ``cameras`` (batch of V), ``masks [V,H,W]``
    (object coverage in [0, 1]) or ``None``; ``source_pool`` / ``target_pool``: view indices."""

    name: str
    images: torch.Tensor
    cameras: Camera
    masks: torch.Tensor | None
    source_pool: list[int]
    target_pool: list[int]
    path: Path | None = None

    def __post_init__(self):
        if self.images.ndim != 4 or self.images.shape[-1] != 3:
            raise ValueError(f"Scene {self.name}: images must be [V,H,W,3], got {list(self.images.shape)}")
        if len(self.cameras) != self.images.shape[0]:
            raise ValueError(f"Scene {self.name}: {self.images.shape[0]} images but {len(self.cameras)} cameras")

    def __len__(self) -> int:
        return self.images.shape[0]

    def choose_views(self, n_sources: int | None = None, source_views=None) -> tuple[list[int], list[int]]:
        """``(sources, targets)``: ``source_views`` if given, else the first ``n_sources`` of the pool."""
        if source_views is not None:
            sources = [int(v) for v in source_views]
            bad = [v for v in sources if not 0 <= v < len(self)]
            if bad:
                raise DatasetError(f"{self.path or self.name}: source view(s) {bad} out of range; "
                                   f"this scene has views 0..{len(self) - 1}")
            if len(set(sources)) != len(sources):
                raise DatasetError(f"{self.path or self.name}: source views {sources} repeat a view")
        else:
            count = 1 if n_sources is None else int(n_sources)
            if not 1 <= count <= len(self.source_pool):
                raise DatasetError(f"{self.path or self.name}: asked for {count} source view(s) but the scene "
                                   f"offers {len(self.source_pool)}")
            sources = self.source_pool[:count]
        targets = [v for v in self.target_pool if v not in sources]
        return sources, targets


@dataclass
class MultiSceneDataset:
    """Scenes of one split. ``near``/``far``: ray bounds in world units; ``aabb [6]``: the box
    objects lie in (shared by the scenes of a format); ``format``: ``blender``, ``srn`` or ``dtu``."""

    scenes: list[Scene]
    format: str
    path: Path
    split: str
    near: float
    far: float
    aabb: tuple[float, ...]
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, index: int) -> Scene:
        return self.scenes[index]

    def __repr__(self) -> str:
        return (f"MultiSceneDataset(format={self.format!r}, split={self.split!r}, {len(self)} scenes, "
                f"path={str(self.path)!r})")
