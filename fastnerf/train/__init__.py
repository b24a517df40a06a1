"""Training: one engine for every model kind (``engine.train``), a task per kind (``tasks/``),
checkpoints, evaluation. ``fastnerf.train.load_run(RUN)`` loads any kind from its run folder."""

from ..runs import (FORMAT_VERSION, CheckpointError, load_checkpoint, load_run, model_from_checkpoint,
                         save_checkpoint)
from .engine import Context, Task, TrainingDiverged, register_task, train
from .evaluation import evaluate
from .tasks.teacher import TeacherTask, teacher_config_for, train_teacher

__all__ = ["FORMAT_VERSION", "CheckpointError", "Context", "Task", "TeacherTask", "TrainingDiverged", "evaluate",
           "load_checkpoint", "load_run", "model_from_checkpoint", "register_task", "save_checkpoint",
           "teacher_config_for", "train", "train_teacher"]
