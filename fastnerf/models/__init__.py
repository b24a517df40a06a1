"""Models compose fields and ops. ``build_model(kind, **config)`` builds any registered kind; the
registry of kinds (what each declares: options, task, export) is ``fastnerf.models.registry``; the
rendering protocol every model follows is documented in ``fastnerf.models.base``."""

from __future__ import annotations

from .registry import KINDS, Kind, KindView, discover, get_kind, kinds, register_kind

MODEL_KINDS = KindView(lambda kind: kind.model_class)  # {kind: model class}, read-only (register_model writes)


def register_model(kind: str, *, task: str | None = None, options=(), no_export: str | None = None):
    """Class decorator: register this class as model kind ``kind`` (``build_model(kind, ...)`` builds it);
    ``task``, ``options`` and ``no_export`` are the kind's declaration (``fastnerf.models.registry``)."""
    return register_kind(kind, task=task, options=options, no_export=no_export)


def discover_models():
    """Import every module of this package and its sub-packages (``students/``), so each model
    kind registers itself; a new kind is one new file, with no edit here. Returns ``MODEL_KINDS``."""
    discover()
    return MODEL_KINDS


def build_model(kind: str, **config):
    """A fresh model of registered ``kind`` (``"nerf"``, ...), built from plain-value ``config``."""
    return get_kind(kind).model_class(**config)


from .base import ImageModel, RayModel  # noqa: E402
from .nerf import NeRF  # noqa: E402  (registers "nerf")

__all__ = ["KINDS", "MODEL_KINDS", "ImageModel", "Kind", "NeRF", "RayModel", "build_model", "discover_models",
           "get_kind", "kinds", "register_model"]
