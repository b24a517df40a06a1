"""Tiny runs through the CLI, for tests that need a trained run folder (fast, not good)."""

from fastnerf.cli import main
from fastnerf.data.procedural import SCENES, make_scene


def tiny_teacher_run(root, *, n_test: int = 2, steps: int = 3):
    """A 16x16 scene of 6 training views in ``root/data`` and a ``steps``-step teacher on it in
    ``root/teacher``: ``(data, run)``."""
    data = make_scene(SCENES[0], root / "data", n_train=6, n_val=1, n_test=n_test, res=16, seed=0, samples_per_axis=1)
    assert main(["train", "teacher", "--data", str(data), "--out", str(root / "teacher"), "--steps", str(steps),
                 "--quiet", "--eval-every", "0"]) == 0
    return data, root / "teacher"
