"""The students: fast renderers distilled from a NeRF teacher (``fastnerf train student``).

A student kind is a model class registered twice, as a model (``build_model(kind, ...)``) and as
a student (``STUDENT_KINDS[kind]``, with its default training settings), by
``@register_student(kind, **settings)``. The training task (``fastnerf.train.tasks.student``)
knows no kind by name; it asks the class for:

- ``config_for(teacher, dataset, sampler) -> dict`` (classmethod): the model config for this
  teacher, its training ``Dataset`` and the distillation camera ``sampler`` (size, intrinsics);
- ``init_from_teacher(teacher)`` (optional): copy what it can from the teacher after building;
- ``distill_loss(pool, generator, *, step, **settings) -> (loss, stats)``: one training step's
  loss on draws from the ``fastnerf.distill.ViewPool`` (``draw_views`` or ``draw_rays``);
- ``after_distill_step(step, generator)`` (optional): own state, e.g. an occupancy grid;
- ``render_camera(camera, *, backend=None, background=None, chunk=8192)`` (the rendering protocol).

Settings every kind has (the task's options override them): ``lr``, ``batch_views``,
``ema_decay``, ``lr_half_life``; a kind may add its own (passed to ``distill_loss``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import register_model

COMMON_SETTINGS = {"lr": 1e-3, "batch_views": 4, "ema_decay": 0.99, "lr_half_life": 500}


@dataclass(frozen=True)
class StudentKind:
    model_class: type
    settings: dict = field(default_factory=dict)  # defaults: COMMON_SETTINGS, then the kind's own


STUDENT_KINDS: dict[str, StudentKind] = {}


def register_student(kind: str, **settings):
    """Class decorator: register a student model class as ``kind`` (model registry and ``STUDENT_KINDS``)."""

    def decorate(cls):
        register_model(kind)(cls)
        STUDENT_KINDS[kind] = StudentKind(cls, {**COMMON_SETTINGS, **settings})
        return cls

    return decorate


def _discover() -> None:
    """Import every module of this package, so each registers its kind (``lightfield.py`` included)."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


_discover()

__all__ = ["COMMON_SETTINGS", "STUDENT_KINDS", "StudentKind", "register_student"]
