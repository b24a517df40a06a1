"""Tiny runs through the CLI, for tests that need a trained run folder (fast, not good)."""

from fastnerf.cli import main
from tiny import make_tiny_scene


def tiny_teacher_run(root, *, n_test: int = 2, steps: int = 3):
    """A 16x16 scene of 6 training views in ``root/data`` and a ``steps``-step teacher on it in
    ``root/teacher``: ``(data, run)``."""
    data = make_tiny_scene(root / "data", n_train=6, n_test=n_test)
    assert main(["train", "teacher", "--data", str(data), "--out", str(root / "teacher"), "--steps", str(steps),
                 "--quiet", "--eval-every", "0"]) == 0
    return data, root / "teacher"
