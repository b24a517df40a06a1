"""The students: fast renderers distilled from a NeRF teacher (``fastnerf train student``).

A student kind is a model class registered once, by ``@register_student(kind, **settings)``, in
the registry of kinds (``fastnerf.models.registry``): ``build_model(kind, ...)`` builds it and
``STUDENT_KINDS[kind]`` gives its class, default training settings and options. The training
task (``fastnerf.train.tasks.student``) knows no kind by name; it asks the class for:

- ``config_for(teacher, dataset, sampler) -> dict`` (classmethod): the model config for this
  teacher, its training ``Dataset`` and the distillation camera ``sampler`` (size, intrinsics);
- ``init_from_teacher(teacher)`` (optional): copy what it can from the teacher after building
  (returns what it copied; ``ValueError`` saying why when nothing can be);
- ``param_groups(lr, **settings)`` (optional): the optimizer's groups (e.g. a hash table at its own lr);
- ``distill_loss(pool, generator, *, step, **settings) -> (loss, stats)``: one training step's
  loss on draws from the ``fastnerf.distill.ViewPool`` (``draw_views`` or ``draw_rays``, or
  ``draw_patches``: fresh teacher patches of sampled cameras, with ``hard_patches``, a buffer of
  the hardest ones, which the pool's state carries); it is also given ``total_steps`` (None while
  a minutes budget calibrates; it may change every step) and ``schedule``, a dict in the task's
  state where it records the step a phase began at, so the phase stays on (sticky) and resumes;
- ``check_settings(settings, model) -> settings`` (optional classmethod): the kind's settings
  checked (and completed) before any work, for the model config overrides ``model``;
- ``after_distill_step(step, generator)`` (optional): own state, e.g. an occupancy grid;
- ``render_camera(camera, *, backend=None, background=None, chunk=8192)`` (the rendering protocol).

Settings every kind has (the task's options override them): ``lr``, ``batch_views``,
``ema_decay``, ``lr_half_life``; a kind may add its own (passed to ``distill_loss``).

Model options and command-line flags: ``register_student(kind, options=(Option(...), ...), **settings)``
declares the options a user may set (``fastnerf.options.Option``: name, default, help; the
constructor takes its defaults from there). ``flag=True`` gives one a flag of
``fastnerf train student`` (``Option("factor", 4, "upsampling factor", flag=True)`` is
``--factor F``, listed under the kind in ``--help``); every other constructor parameter is set
with ``--option KEY=VALUE``. ``no_export="why"`` says why ``fastnerf export`` refuses the kind
(without it, a class with ``export_forward`` exports). See ``fastnerf.models.registry``.
"""

from __future__ import annotations

from ..registry import Kind, KindView, register_kind

COMMON_SETTINGS = {"lr": 1e-3, "batch_views": 4, "ema_decay": 0.99, "lr_half_life": 500}
TASK = "student"  # the fastnerf train task every student kind is trained by

StudentKind = Kind  # a student kind: ``model_class``, ``settings`` (COMMON_SETTINGS, then the kind's own), ``options``
STUDENT_KINDS = KindView(task=TASK)  # {kind: Kind}, read-only (register_student writes)


def register_student(kind: str, *, options=(), no_export: str | None = None, **settings):
    """Class decorator: register a student model class as ``kind`` (see the module docstring)."""
    return register_kind(kind, task=TASK, options=options, settings={**COMMON_SETTINGS, **settings},
                         no_export=no_export)


def _discover() -> None:
    """Import every module of this package, so each registers its kind (``lightfield.py`` included)."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


_discover()

__all__ = ["COMMON_SETTINGS", "STUDENT_KINDS", "StudentKind", "register_student"]
