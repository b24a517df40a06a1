"""Training tasks: what the engine (``fastnerf.train.engine``) is told about training a model kind.

A task builds its model, draws a batch and computes the loss, updates its own state and says
what to checkpoint; the engine does everything else. ``@register_task("name")`` makes a task
``fastnerf train name``; every module in this package is discovered, so a new task is one new
file here (plus its model kinds in ``fastnerf.models``, registered with ``task="name"``), with no
edit elsewhere.

A task declares its options once (``Task.options``, ``fastnerf.options``): its constructor's
defaults and checks, the ``train_args`` a checkpoint saves and its ``fastnerf train name`` flags
all come from that declaration. The flagged options of the kinds it trains (the registry,
``fastnerf.models.registry``) are added to its command line too and land in its
``model_option`` (the overrides of the model's config).
"""

from __future__ import annotations

import importlib
import pkgutil

import torch

from ...errors import UserError
from ...options import Options, add_shared_flags, shared_flags_given

TASKS: dict = {}
MODEL_FLAG_DEST = "model_option_"  # argparse dest prefix of the kinds' flags (apart from the task's own)


def register_task(name: str):
    """Class decorator: ``fastnerf train NAME`` (and resuming a NAME checkpoint) uses this task."""

    def decorate(cls):
        cls.name = name
        TASKS[name] = cls
        return cls

    return decorate


def discover_tasks() -> dict:
    """Import every task module of this package; returns ``{name: Task subclass}``."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return TASKS


def task_class_of(checkpoint: dict):
    """The ``Task`` subclass a checkpoint was trained with, or None when this fastnerf has no such task."""
    name = checkpoint.get("task", "teacher")  # checkpoints from before the engine were all teachers
    return discover_tasks().get(name)


def task_from_checkpoint(checkpoint: dict):
    """The task a checkpoint was trained with, rebuilt from its recorded arguments."""
    task = task_class_of(checkpoint)
    if task is None:
        raise UserError(f"checkpoint was trained by task {checkpoint.get('task', 'teacher')!r}, which this "
                        f"fastnerf does not have (known: {', '.join(sorted(TASKS))})")
    return task.from_train_args(dict(checkpoint.get("train_args") or {}))


class Task:
    """What training one model kind takes (see the module docstring). Override what applies.

    Construction takes plain keyword values only, checked against ``options`` (defaults filled
    in) into ``self.args``: ``type(task)(**task.train_args())`` rebuilds the same task, which is
    how a run resumes with its own settings.
    """

    name = "task"
    ema_decay: float | None = 0.998  # averaged weights for evaluation and the returned model; None: off
    options = Options()  # the task's own options (fastnerf.options)
    model_option: str | None = None  # the option holding overrides of the model config (the kinds' flags go there)
    unflagged_model_options: str | None = None  # how --help says a kind's other options are set, e.g. "--option"
    # True: the task trains on several scenes, and `fastnerf eval`, `render` and `view` take its runs
    # scene by scene, conditioned on source views (fastnerf/cli/_multi_scene.py dispatches on this)
    multi_scene = False

    def __init__(self, **values):
        self.args = self.options.resolve(values, self.name)

    # ----------------------------------------------------------------------- construction and CLI
    def train_args(self) -> dict:
        """Plain values that rebuild this task (stored in checkpoints)."""
        return {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v)
                for k, v in self.args.items()}

    @classmethod
    def from_train_args(cls, args: dict) -> "Task":
        """The task a checkpoint's ``train_args`` describe; names this release does not declare
        (older runs also stored their seed there) are dropped, missing ones take their defaults."""
        return cls(**{k: v for k, v in args.items() if k in cls.options})

    @classmethod
    def model_kinds(cls) -> dict:
        """``{kind name: its options}`` of the model kinds this task trains (the registry)."""
        from ...models import kinds

        return {kind.name: kind.options for kind in kinds(task=cls.name)}

    @classmethod
    def add_arguments(cls, parser) -> None:
        """Add this task's flags to its ``fastnerf train NAME`` parser: its own options', then those
        of the kinds it trains (one group, each kind's options listed)."""
        cls.options.add_arguments(parser)
        if cls.model_option is not None:
            add_shared_flags(parser, cls.model_kinds(), title="options of the model kinds", dest_prefix=MODEL_FLAG_DEST,
                             others=cls.unflagged_model_options)

    @classmethod
    def from_args(cls, args) -> "Task":
        """The task from parsed ``fastnerf train NAME`` arguments."""
        return cls(**cls.values_from_args(args))

    @classmethod
    def values_from_args(cls, args) -> dict:
        """Constructor values from parsed arguments: the task's flags given, and the kinds' flags
        given in ``model_option``."""
        values = cls.options.given(args)
        if cls.model_option is not None:
            model = shared_flags_given(args, cls.model_kinds(), dest_prefix=MODEL_FLAG_DEST)
            if model:
                values[cls.model_option] = {**values.get(cls.model_option, {}), **model}
        return values

    # ----------------------------------------------------------------------- training
    def build_model(self, ctx) -> torch.nn.Module:
        """A fresh model (the engine moves it to ``ctx.device`` and, on resume, loads its weights)."""
        raise NotImplementedError

    def param_groups(self, model) -> list:
        """Optimizer parameter groups, each with ``base_lr`` (the engine scales it by ``lr_factor``)."""
        raise NotImplementedError

    def make_optimizer(self, model) -> torch.optim.Optimizer:
        from ..optim import make_adam

        groups = self.param_groups(model)
        return make_adam(groups, lr=groups[0]["base_lr"])

    def lr_factor(self, step: int, total_steps: int | None) -> float:
        from ..optim import lr_factor

        return lr_factor(step)

    def loss(self, model, step: int, ctx) -> tuple:
        """Draw this rank's batch with ``ctx.generator`` and return ``(loss, stats)``: a scalar
        tensor and a dict of floats (``n_samples`` / ``n_rays`` count towards throughput; the rest
        show on the progress bar)."""
        raise NotImplementedError

    def after_step(self, model, step: int, ctx) -> None:
        """Update state beyond the optimizer's (``step`` steps are done); reduce it over the ranks
        with ``ctx.all_reduce_`` so every replica stays the same."""

    def evaluate(self, model, ctx) -> dict | None:
        """A cheap held-out check with the averaged weights, on rank 0: ``{"psnr": ...}`` or None."""
        return None

    def state_dict(self) -> dict:
        """Task state beyond the model and optimizer (plain values), restored on resume."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def dataset_info(self) -> dict:
        """What evaluation and rendering read back from the checkpoint (``path``, ``downscale``, ...)."""
        return {}

    def summary(self, model) -> dict:
        """Extra figures for ``train.json`` at the end."""
        return {}
