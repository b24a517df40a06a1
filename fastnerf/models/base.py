"""What a model must offer to be rendered by ``fastnerf.render``, trained, and checkpointed.

Every model is an ``nn.Module`` with:

- ``kind``: the registry name (``fastnerf.models.MODEL_KINDS``);
- ``config() -> dict``: plain Python values such that ``build_model(kind, **config)`` rebuilds
  the same architecture (checkpoints store it next to the ``state_dict``, which holds every
  tensor, occupancy-grid buffers included).

and one of two rendering entry points, which ``fastnerf.render`` dispatches on (a model with both
is rendered through ``render_camera``, its own whole-image path):

- **image-based** models (the students, which skip volume rendering) implement
  ``render_camera(camera, *, backend=None, background=None, chunk=8192) -> dict`` with
  ``rgb [H,W,3]`` (``[B,H,W,3]`` for a batch camera) and optionally ``depth`` / ``opacity``. A
  camera the model cannot render (another size, say) is a ``UserError`` saying what it can.
- **ray-based** models (the NeRF teacher, PixelNeRF) implement
  ``render_rays(rays_o [N,3], rays_d [N,3], *, backend=None, background=None, **options) -> dict``
  with ``rgb [N,3]`` and, where they have them, ``depth [N]`` and ``opacity [N]``.
  ``fastnerf.render`` calls it on ``chunk``-sized batches of rays, so memory is bounded whatever
  the image size. Options: ``dense_samples`` (vanilla NeRF sampling) where the model takes it;
  ``views`` (the result of ``encode_views(images [V,H,W,3], cameras)``) for image-conditioned
  models, which set ``needs_views = True`` (``ConditionedModel``). A kind's own options (PixelNeRF's
  ``mode``) are keywords of its entry point; ``fastnerf.render(..., **options)`` passes them on.

The protocols below are these contracts as ``typing.Protocol`` classes; ``fastnerf.render``
dispatches on them and ``tests/test_protocol.py`` checks every registered kind against them.

``fastnerf.render`` puts the model in eval mode under no_grad for the call and moves the camera
to the model's device.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Checkpointable(Protocol):
    """What checkpoints need of every model: its registry name and a config that rebuilds it."""

    kind: str

    def config(self) -> dict: ...


@runtime_checkable
class ImageModel(Protocol):
    """Renders whole cameras itself (the students); ``fastnerf.render`` passes kind options through."""

    def render_camera(self, camera, *, backend=None, background=None, chunk: int = 8192) -> dict: ...


@runtime_checkable
class RayModel(Protocol):
    """Renders rays (the teacher, PixelNeRF); ``fastnerf.render`` batches the rays and passes
    kind options (``dense_samples``, PixelNeRF's ``mode``, ...) through to every call."""

    def render_rays(self, rays_o: torch.Tensor, rays_d: torch.Tensor, *, backend=None, background=None,
                    **options) -> dict: ...


@runtime_checkable
class ConditionedModel(RayModel, Protocol):
    """A ray model conditioned on source images (PixelNeRF): ``encode_views`` runs once per set
    of views; its result goes to every ``render_rays`` call as ``views=``."""

    needs_views: bool

    def encode_views(self, images: torch.Tensor, cameras) -> dict: ...


def rendering_protocol(model) -> type | None:
    """``ImageModel`` or ``RayModel`` (a model with both renders whole images), or None."""
    if isinstance(model, ImageModel):
        return ImageModel
    if isinstance(model, RayModel):
        return RayModel
    return None
