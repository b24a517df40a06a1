"""Training tasks: what one model kind tells the engine (``fastnerf.train.engine``).

A task builds its model, draws a batch and computes the loss, updates its own state and says
what to checkpoint; the engine does everything else. ``@register_task("name")`` makes a task
``fastnerf train name``; every module in this package is discovered, so a new kind is one new
file here (plus its model in ``fastnerf.models``), with no edit elsewhere.
"""

from __future__ import annotations

import importlib
import pkgutil

import torch

from ...errors import UserError

TASKS: dict = {}


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


def task_from_checkpoint(checkpoint: dict):
    """The task a checkpoint was trained with, rebuilt from its recorded arguments."""
    name = checkpoint.get("task", "teacher")  # checkpoints from before the engine were all teachers
    tasks = discover_tasks()
    if name not in tasks:
        raise UserError(f"checkpoint was trained by task {name!r}, which this fastnerf does not have "
                        f"(known: {', '.join(sorted(tasks))})")
    return tasks[name].from_train_args(dict(checkpoint.get("train_args") or {}))


class Task:
    """One model kind's part of training (see the module docstring). Override what applies.

    Construction takes plain keyword values only: ``type(task)(**task.train_args())`` must
    rebuild the same task, which is how a run resumes with its own settings.
    """

    name = "task"
    ema_decay: float | None = 0.998  # averaged weights for evaluation and the returned model; None: off

    # ----------------------------------------------------------------------- construction and CLI
    def train_args(self) -> dict:
        """Plain values that rebuild this task (stored in checkpoints)."""
        raise NotImplementedError

    @classmethod
    def from_train_args(cls, args: dict) -> "Task":
        return cls(**args)

    @classmethod
    def add_arguments(cls, parser) -> None:
        """Add this task's own options to its ``fastnerf train NAME`` parser."""

    @classmethod
    def from_args(cls, args) -> "Task":
        """The task from parsed ``fastnerf train NAME`` arguments."""
        raise NotImplementedError

    # ----------------------------------------------------------------------- training
    def build_model(self, ctx) -> torch.nn.Module:
        """A fresh model (the engine moves it to ``ctx.device`` and, on resume, loads its weights)."""
        raise NotImplementedError

    def param_groups(self, model) -> list:
        """Optimizer parameter groups, each with ``base_lr`` (the engine scales it by ``lr_factor``)."""
        raise NotImplementedError

    def make_optimizer(self, model) -> torch.optim.Optimizer:
        from ..loop import make_adam

        groups = self.param_groups(model)
        return make_adam(groups, lr=groups[0]["base_lr"])

    def lr_factor(self, step: int, total_steps: int | None) -> float:
        from ..loop import lr_factor

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
