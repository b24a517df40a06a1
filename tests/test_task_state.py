"""Every training task keeps the state it promises over a few dozen steps (issue 23, item 5): the
teacher's occupancy grid and sub-ray switch, each student kind's learning-rate schedule and parameter
groups, the shared student's copied grid, the baked student's row-sparse grid, the light field's
switch to real images, PixelNeRF's schedule, trained encoder and averaged weights.

Each task trains once per module (the ``teacher`` and ``students`` fixtures), with the learning
rates, the loss's stats and what a kind's probes read from the model recorded at every step; the
tests read those records.
(The hybrid's grid is watched step by step in test_hybrid_geometry.py.)
"""

from __future__ import annotations

import math

import pytest
import torch

from fastnerf.distill import ViewPool
from fastnerf.models.students import STUDENT_KINDS
from fastnerf.train import TeacherTask, engine, load_checkpoint, load_run, train
from fastnerf.train.tasks import teacher as teacher_task
from fastnerf.train.tasks.pixelnerf import PixelNeRFTask
from fastnerf.train.tasks.student import StudentTask
from tiny import TINY_TEACHER

STEPS = 24
TEACHER_STEPS, GRID_EVERY, GRID_WARMUP = 32, 2, 8
# Fine steps (small opacities per cell) and frequent refreshes (the running estimate decays per
# refresh) let the grid tell cells apart within TEACHER_STEPS; at 64 steps per diagonal and a
# refresh every 4 steps every cell was still occupied at step 32.
TEACHER = {**TINY_TEACHER, "grid_resolution": 16, "grid_warmup": GRID_WARMUP, "steps_per_diagonal": 256,
           "supersample": 1}
TEACHER_LR = 2e-2
HALF_LIFE = 6  # the students' lr_half_life: the decay and its floor both show within STEPS
MODEL = {"pose": {"hidden": 16, "code_dim": 16, "channels": 8},
         "shared": {"hidden": 16, "code_dim": 16, "channels": 8, "nerf_hidden": 16, "nerf_samples": 16},
         "hybrid": {"features": 8, "decoder_channels": 8},
         "lightfield": {"hidden": 16, "n_blocks": 1, "n_freqs": 2, "n_points": 4, "channels": 8, "bundle": 2},
         "baked": {"max_resolution": 16}}
SETTINGS = {"pose": {"batch_views": 2}, "shared": {"batch_views": 2, "nerf_rays": 32}, "hybrid": {"batch_views": 2},
            "lightfield": {"batch_views": 1, "patches": 4, "patch": 2, "hard_buffer": 8, "finetune": 0.25},
            "baked": {"rays": 256}}
REAL_FRACTION = 0.3


def schedule(step: int, *, half_life: int, warmup: int = 20, floor: float = 0.1) -> float:
    """The promised multiplier of a group's base lr at ``step`` (written out here, not imported:
    the schedule is the promise): linear warm-up, then halving every ``half_life`` steps to ``floor``."""
    return min(1.0, (step + 1) / warmup) * max(floor, 0.5 ** (step / half_life))


def assert_schedule(lrs: list, *, half_life: int, base_lrs: set) -> None:
    """Every step's every group at its base lr times ``schedule``; the groups' base lrs are ``base_lrs``."""
    for step, groups in enumerate(lrs):
        assert {base for _, base in groups} == base_lrs, step
        for lr, base in groups:
            assert lr == pytest.approx(base * schedule(step, half_life=half_life), rel=1e-9), step


class Record:
    """What one training run did: per step the groups' ``(lr, base_lr)``, the loss's stats, and
    the ``before(model)`` / ``after(model)`` probes (before the step's loss, after its update)."""

    def __init__(self):
        self.lrs, self.stats, self.before, self.after = [], [], [], []
        self.summary = self.task = self.out = None


def record_training(task, out, monkeypatch, *, steps: int, before=None, after=None) -> Record:
    record = Record()
    real_set_lr = engine.set_lr

    def set_lr(optimizer, factor):
        real_set_lr(optimizer, factor)
        record.lrs.append([(group["lr"], group["base_lr"]) for group in optimizer.param_groups])

    monkeypatch.setattr(engine, "set_lr", set_lr)
    loss = task.loss

    def recorded_loss(model, step, ctx):
        if before is not None:
            record.before.append(before(model))
        result = loss(model, step, ctx)
        record.stats.append(dict(result[1]))
        return result

    task.loss = recorded_loss

    def on_step(report):  # after the optimizer's step and the task's after_step; the grads are still there
        if after is not None:
            record.after.append(after(report.model))

    record.summary = train(task, out, steps=steps, progress=False, eval_every=0, log=None, on_step=on_step)
    record.task, record.out = task, out
    assert len(record.lrs) == len(record.stats) == steps
    return record


def grid_probe(model) -> dict:
    return {"step": int(model.grid.step), "occupied": model.grid.occupied.clone()}


# ------------------------------------------------------------------------------ the teacher
@pytest.fixture(scope="module")
def teacher(tiny_scene, tmp_path_factory) -> Record:
    """A teacher past its grid's warm-up (the students below distil it), its training recorded."""
    task = TeacherTask(data=tiny_scene, lr=TEACHER_LR, grid_every=GRID_EVERY, target_samples=2048, eval_images=0,
                       model_config=TEACHER)
    with pytest.MonkeyPatch.context() as monkeypatch:
        # 64 rays a step, not a real run's 256 (a quarter of the time): this watches the grid, not the fit
        monkeypatch.setitem(teacher_task.MIN_RAYS, "bounded", 64)
        return record_training(task, tmp_path_factory.mktemp("teacher") / "teacher", monkeypatch,
                               steps=TEACHER_STEPS, after=grid_probe)


def test_the_teachers_grid_warms_up_then_tells_cells_apart_refreshed_on_its_cadence(teacher):
    grids = teacher.after
    # refreshed at every GRID_EVERY-th step, with that step's number, and left alone in between
    assert [g["step"] for g in grids] == [s - s % GRID_EVERY for s in range(1, TEACHER_STEPS + 1)]
    for step, (previous, grid) in enumerate(zip(grids, grids[1:]), 2):
        if step % GRID_EVERY:
            assert torch.equal(previous["occupied"], grid["occupied"]), step
    warm = [g for g in grids if g["step"] < GRID_WARMUP]
    assert warm and all(g["occupied"].all() for g in warm)  # warm-up: every cell stays occupied
    last = grids[-1]["occupied"].float().mean()
    assert 0.02 < last < 0.9, float(last)  # past it: neither everything (no skipping) nor nothing (no image)
    # the run's grid is the one its averaged weights give (what load_run marches)
    model, _ = load_run(teacher.out)
    assert torch.equal(model.grid.occupied, teacher.summary["model"].grid.occupied)
    assert 0.02 < model.occupancy() < 0.9


def test_the_teachers_lr_follows_its_schedule_and_sub_rays_start_at_their_share(teacher):
    assert_schedule(teacher.lrs, half_life=1500, base_lrs={TEACHER_LR})  # both groups (hash tables, MLPs) at lr
    assert len(teacher.lrs[0]) == 2
    assert teacher.task.sub_rays_from == TEACHER_STEPS // 2  # centre_fraction 0.5, and it stays there
    assert load_checkpoint(teacher.out)["extra"]["task_state"]["sub_rays_from"] == TEACHER_STEPS // 2


# ------------------------------------------------------------------------------ the students
def baked_probe_before(model):
    return model.values.detach().clone() if model.kind == "baked" else None


def baked_probe_after(model):
    if model.kind != "baked":
        return None
    grad = model.values.grad
    touched = grad.reshape(grad.shape[0], -1).ne(0).any(1)
    return {"values": model.values.detach().clone(), "touched": touched,
            "mlp": [p.detach().clone() for p in model.color_mlp.parameters()]}


@pytest.fixture(scope="module")
def students(teacher, tmp_path_factory):
    """``students(kind)``: a ``STEPS``-step run of that kind from the teacher above (trained once;
    the pool is its first two teacher views: teacher renders are most of a student step's time)."""
    runs = {}

    def run(kind: str) -> Record:
        if kind not in runs:
            task = StudentTask(teacher=str(teacher.out), kind=kind, model=MODEL[kind],
                               settings={**SETTINGS[kind], "lr_half_life": HALF_LIFE}, pool_size=2, initial_views=2,
                               fresh_ratio=0.0, real_fraction=REAL_FRACTION, eval_views=0, teacher_supersample=1)
            with pytest.MonkeyPatch.context() as monkeypatch:
                if kind == "lightfield":
                    draws = watch_real_draws(monkeypatch)
                runs[kind] = record_training(task, tmp_path_factory.mktemp(kind) / kind, monkeypatch, steps=STEPS,
                                             before=baked_probe_before, after=baked_probe_after)
                if kind == "lightfield":
                    runs[kind].draws = draws
        return runs[kind]

    return run


def test_every_student_kind_is_covered_here():
    assert set(MODEL) == set(STUDENT_KINDS)  # a new kind needs its tiny config here, and its promises below


@pytest.mark.parametrize("kind", sorted(MODEL))
def test_a_students_lr_follows_its_kinds_schedule_in_each_of_its_groups(students, kind):
    # Catches a schedule that ignores the kind's lr_half_life, loses the warm-up or the floor, or a
    # group (the hybrid's field, the baked grid) trained at the wrong setting's lr.
    settings = {**STUDENT_KINDS[kind].settings, **SETTINGS[kind]}
    unused = {"table_lr"} if MODEL[kind].get("encoding") != "hash" else set()  # the light field's hash grid
    base_lrs = {float(value) for name, value in settings.items()
                if (name == "lr" or name.endswith("_lr")) and name not in unused}
    record = students(kind)
    assert_schedule(record.lrs, half_life=HALF_LIFE, base_lrs=base_lrs)
    assert schedule(STEPS - 1, half_life=HALF_LIFE) == pytest.approx(0.1)  # the floor was reached
    averaged = load_checkpoint(record.out).get("averaged")  # the kind's ema_decay: None is no averaging
    assert (averaged is None) == (settings["ema_decay"] is None)
    if averaged is not None:
        assert averaged["updates"] == STEPS


def test_the_shared_student_marches_the_teachers_grid_untouched(students, teacher):
    teacher_grid = load_run(teacher.out)[0].grid
    assert not teacher_grid.occupied.all()  # a grid that tells cells apart, or this proves nothing
    student = students("shared").summary["model"]
    for name, value in teacher_grid.state_dict().items():
        assert torch.equal(student.grid.state_dict()[name], value), name


def test_the_baked_grid_changes_only_in_the_rows_a_step_touched(students):
    # Row-sparse Adam (fastnerf.train.sparse_adam): a row no ray of a step touched keeps its exact
    # value in that step (plain Adam would move it by its momentum), a touched row moves.
    record = students("baked")
    for step, (before, after) in enumerate(zip(record.before, record.after)):
        touched = after["touched"]
        assert 0 < int(touched.sum()) < touched.numel(), step
        assert torch.equal(after["values"][~touched], before[~touched]), step
        assert (after["values"][touched] != before[touched]).any(1).all(), step
    assert not torch.equal(record.after[0]["mlp"][0], record.after[-1]["mlp"][0])  # the colour MLP trained


def watch_real_draws(monkeypatch) -> list:
    """Records, per draw, whether the light field asked the pool for real images only."""
    draws = []
    draw_views, draw_patches = ViewPool.draw_views, ViewPool.draw_patches

    def views(self, *args, **kwargs):
        draws.append(("views", self.real_fraction == 1.0))
        return draw_views(self, *args, **kwargs)

    def patches(self, n, size, generator=None, *, real_fraction=None, **kwargs):
        draws.append(("patches", real_fraction == 1.0))
        return draw_patches(self, n, size, generator, real_fraction=real_fraction, **kwargs)

    monkeypatch.setattr(ViewPool, "draw_views", views)
    monkeypatch.setattr(ViewPool, "draw_patches", patches)
    return draws


def test_the_light_field_fine_tunes_on_real_images_from_its_share_of_the_steps_on(students):
    record = students("lightfield")
    first_real = math.ceil((1 - SETTINGS["lightfield"]["finetune"]) * STEPS)
    assert [s["real_only"] for s in record.stats] == [0.0] * first_real + [1.0] * (STEPS - first_real)
    # each step draws whole views and patches: real ones only, from that step on (and nothing replayed)
    assert len(record.draws) == 2 * STEPS
    step_draws = [record.draws[i:i + 2] for i in range(0, len(record.draws), 2)]
    assert [[real for _, real in draws] for draws in step_draws] == \
        [[False, False]] * first_real + [[True, True]] * (STEPS - first_real)
    assert all(s["hard"] == 0 for s in record.stats[first_real:])
    assert record.task.pool.real_fraction == REAL_FRACTION  # the pool's own mix is left as it was


# ------------------------------------------------------------------------------ PixelNeRF
def test_pixelnerf_trains_every_part_on_its_schedule_and_averages_its_weights(tmp_path, monkeypatch):
    # Catches a part left out of the optimizer or cut from the graph (the encoder trains with the
    # field: nothing is frozen), a schedule other than the engine's default, and averaging off.
    from test_pixelnerf import TINY, make_scene_folder

    data = make_scene_folder(tmp_path / "scenes")
    model_config = {k: v for k, v in TINY.items() if k not in ("aabb", "near", "far")}
    task = PixelNeRFTask(data=data, scenes_per_step=1, rays_per_scene=16, lr=2e-3, model_config=model_config)
    first = {}

    def initial(model):
        if not first:
            first.update({name: p.detach().clone() for name, p in model.named_parameters()})

    record = record_training(task, tmp_path / "run", monkeypatch, steps=STEPS, before=initial)
    assert_schedule(record.lrs, half_life=1500, base_lrs={2e-3})
    checkpoint = load_checkpoint(tmp_path / "run")
    raw = checkpoint["model"]
    unmoved = [name for name, value in first.items() if torch.equal(raw[name], value)]
    assert not unmoved, f"not trained: {unmoved}"
    assert any(name.startswith("encoder.") for name in first)
    assert checkpoint["averaged"]["updates"] == STEPS
    model = record.summary["model"]  # the averaged weights, as load_run gives them
    averaged = checkpoint["averaged"]["params"]
    for name, parameter in model.named_parameters():
        assert torch.equal(parameter.detach(), averaged[name]), name
    assert any(not torch.equal(averaged[name], raw[name]) for name in averaged)
