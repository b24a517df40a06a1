"""Training: the teacher loop, checkpoints, evaluation (distillation data for students comes later)."""

from .checkpoint import (FORMAT_VERSION, CheckpointError, load_checkpoint, model_from_checkpoint,
                         save_checkpoint)
from .loop import TrainingDiverged, evaluate
from .teacher import load_run, teacher_config_for, train_teacher

__all__ = ["FORMAT_VERSION", "CheckpointError", "TrainingDiverged", "evaluate", "load_checkpoint", "load_run",
           "model_from_checkpoint", "save_checkpoint", "teacher_config_for", "train_teacher"]
