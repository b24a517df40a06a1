"""Models compose fields and ops. ``build_model(kind, **config)`` builds any registered kind;
the rendering protocol every model follows is documented in ``fastnerf.models.base``."""

from __future__ import annotations

from ..errors import UserError

MODEL_KINDS: dict = {}


def register_model(kind: str):
    """Class decorator: make ``build_model(kind, ...)`` build this class."""

    def decorate(cls):
        cls.kind = kind
        MODEL_KINDS[kind] = cls
        return cls

    return decorate


def discover_models() -> dict:
    """Import every module of this package and its sub-packages (``students/``), so each model
    kind registers itself; a new kind is one new file, with no edit here. Returns ``MODEL_KINDS``."""
    import importlib
    import pkgutil

    for module in pkgutil.walk_packages(__path__, prefix=f"{__name__}."):
        importlib.import_module(module.name)
    return MODEL_KINDS


def build_model(kind: str, **config):
    """A fresh model of registered ``kind`` (``"nerf"``, ...), built from plain-value ``config``."""
    if kind not in MODEL_KINDS:
        discover_models()
    if kind not in MODEL_KINDS:
        raise UserError(f"unknown model kind {kind!r}; known kinds: {', '.join(sorted(MODEL_KINDS))}")
    return MODEL_KINDS[kind](**config)


from .base import ImageModel, RayModel  # noqa: E402
from .nerf import NeRF  # noqa: E402  (registers "nerf")

__all__ = ["MODEL_KINDS", "ImageModel", "NeRF", "RayModel", "build_model", "discover_models", "register_model"]
