"""Models compose fields and ops. ``build_model(kind, **config)`` builds any registered kind; the
registry of kinds (what each declares: options, task, export) is ``fastnerf.models.registry``; the
rendering protocol every model follows is documented in ``fastnerf.models.base``."""

from __future__ import annotations

from .registry import KINDS, Kind, KindView, build_model, discover, get_kind, kinds, register_model

MODEL_KINDS = KindView(lambda kind: kind.model_class)  # {kind: model class}, read-only (register_model writes)


def discover_models():
    """Import every module of this package and its sub-packages (``students/``), so each model
    kind registers itself; a new kind is one new file, with no edit here. Returns ``MODEL_KINDS``."""
    discover()
    return MODEL_KINDS


from .base import Checkpointable, ConditionedModel, ImageModel, RayModel  # noqa: E402
from .nerf import NeRF  # noqa: E402  (registers "nerf")

__all__ = ["KINDS", "MODEL_KINDS", "Checkpointable", "ConditionedModel", "ImageModel", "Kind", "NeRF", "RayModel",
           "build_model", "discover_models", "get_kind", "kinds", "register_model"]
