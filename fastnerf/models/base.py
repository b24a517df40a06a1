"""What a model must offer to be rendered by ``fastnerf.render``, trained, and checkpointed.

Every model is an ``nn.Module`` with:

- ``kind``: the registry name (``fastnerf.models.MODEL_KINDS``);
- ``config() -> dict``: plain Python values such that ``build_model(kind, **config)`` rebuilds
  the same architecture (checkpoints store it next to the ``state_dict``, which holds every
  tensor, occupancy-grid buffers included).

and ONE of two rendering entry points, which ``fastnerf.render`` dispatches on:

- **ray-based** models (the NeRF teacher; PixelNeRF later) implement
  ``render_rays(rays_o [N,3], rays_d [N,3], *, backend=None, background=None) -> dict`` with
  ``rgb [N,3]`` and, where they have them, ``depth [N]`` and ``opacity [N]``. ``fastnerf.render``
  calls it on ``chunk``-sized batches of rays, so memory is bounded whatever the image size.
- **image-based** models (the students, which skip volume rendering) implement
  ``render_camera(camera, *, backend=None) -> dict`` with ``rgb [H,W,3]`` (``[B,H,W,3]`` for a
  batch camera) and optionally ``depth`` / ``opacity``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class RayModel(Protocol):
    kind: str

    def config(self) -> dict: ...

    def render_rays(self, rays_o: torch.Tensor, rays_d: torch.Tensor, *, backend=None, background=None) -> dict: ...


@runtime_checkable
class ImageModel(Protocol):
    kind: str

    def config(self) -> dict: ...

    def render_camera(self, camera, *, backend=None) -> dict: ...
