"""The hybrid keeps its teacher's geometry (issue 19, item 1): the copied occupancy grid stays the
teacher's through training, checked after every step, with the copied geometry frozen (the
default) and trained; a checkpoint's grid is the one its averaged weights give, for the teacher too."""

import pytest
import torch

from fastnerf.data.procedural import make_scene
from fastnerf.models import build_model
from fastnerf.train import TeacherTask, load_run, train
from fastnerf.train.tasks.student import StudentTask

STUDENT_STEPS, GRID_EVERY = 16, 4


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A teacher past its grid's warm-up whose grid holds part of the box (not every cell)."""
    root = tmp_path_factory.mktemp("hybrid_geometry")
    data = make_scene("tabletop", root / "data", n_train=6, n_val=1, n_test=1, res=16, seed=0, samples_per_axis=1)
    config = {"hash_log2_size": 12, "grid_resolution": 16, "grid_warmup": 8, "steps_per_diagonal": 64}
    train(TeacherTask(data=data, grid_every=4, target_samples=2048, eval_images=1, model_config=config),
          root / "teacher", steps=24, progress=False, eval_every=0)
    return root / "teacher"


def train_hybrid(teacher, out, monkeypatch, **model):
    """Train a tiny hybrid; returns (trained model, the grid's occupancy after every step)."""
    seen = []
    after_step = StudentTask.after_step

    def recording(self, student, step, ctx):
        after_step(self, student, step, ctx)
        seen.append(student.grid.occupied.clone())

    monkeypatch.setattr(StudentTask, "after_step", recording)
    task = StudentTask(teacher=str(teacher), kind="hybrid", model={"features": 8, "decoder_channels": 8, **model},
                       settings={"batch_views": 2, "grid_every": GRID_EVERY}, pool_size=2, initial_views=2,
                       fresh_ratio=0.0, eval_views=0)
    summary = train(task, out, steps=STUDENT_STEPS, progress=False, eval_every=0)
    assert len(seen) == STUDENT_STEPS
    return summary["model"], seen


def small_pair(**hybrid):
    """A small hash teacher whose grid is past warm-up and holds part of the box, and a hybrid of its layout."""
    torch.manual_seed(0)
    layout = dict(aabb=[-1.0] * 3 + [1.0] * 3, grid_resolution=8, hash_levels=2, hash_log2_size=10, hash_min_res=4,
                  hash_max_res=8, hidden=16, geo_features=7)
    teacher = build_model("nerf", steps_per_diagonal=64, grid_warmup=16, **layout)
    with torch.no_grad():  # densities from far below the threshold (exp(-large)) to about 1
        teacher.position_encoding.table.normal_(0, 3)
        teacher.geometry_mlp.output.weight[0] = -teacher.geometry_mlp.output.weight[0].abs() * 16
    for step in range(16, 16 * 20, 16):
        teacher.update_grid(step=step, generator=torch.Generator().manual_seed(step))
    assert 0.05 < teacher.occupancy() < 0.95
    student = build_model("hybrid", features=8, decoder_channels=8, min_channels=4, samples=16, **layout, **hybrid)
    return teacher, student


def test_a_copied_grid_goes_on_from_the_teachers_step_in_the_teachers_unit():
    teacher, student = small_pair(train_geometry=True)  # marching 4x coarser than the teacher
    student.init_from_teacher(teacher)
    cells = teacher.grid.occupied.numel()
    for step in range(16, 16 * 5, 16):  # the student's grid updates, as training makes them
        student.after_distill_step(step, torch.Generator().manual_seed(step), grid_every=16)
        teacher.update_grid(step=int(teacher.grid.step) + 16, generator=torch.Generator().manual_seed(step),
                            n_samples=cells // 8)
        assert not student.grid.occupied.all(), f"step {step}: a warm-up after the copy"
        assert int(student.grid.step) == int(teacher.grid.step)
        assert torch.equal(student.grid.density_ema, teacher.grid.density_ema)  # one unit: sigma x the teacher's step
        assert torch.equal(student.grid.occupied, teacher.grid.occupied)


def test_frozen_geometry_gets_no_gradient_and_its_grid_no_update():
    teacher, student = small_pair(train_geometry=False)
    assert "frozen" in student.init_from_teacher(teacher) and student.geometry_frozen
    occupied = student.grid.occupied.clone()
    rays_o = torch.tensor([[-3.0, 0.0, 0.1], [-3.0, 0.2, 0.0]])
    rays_d = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    student.render_features(rays_o, rays_d, train=True, generator=torch.Generator().manual_seed(0)).sum().backward()
    assert student.position_encoding.table.grad is None and student.geometry_mlp.output.weight.grad is None
    assert student.feature_mlp.output.weight.grad is not None
    student.after_distill_step(16, torch.Generator().manual_seed(0), grid_every=16)
    assert torch.equal(student.grid.occupied, occupied) and int(student.grid.step) == int(teacher.grid.step)


def overlap(a, b) -> float:
    return float((a & b).sum()) / max(1, int((a | b).sum()))


def test_the_teachers_checkpoint_holds_the_grid_of_its_averaged_weights(teacher):
    model, checkpoint = load_run(teacher)
    assert int(model.grid.step) >= model.grid.warmup_steps
    assert 0.02 < model.occupancy() < 0.9  # a grid that tells cells apart, or the checks below prove nothing
    rebuilt = model.rebuilt_buffers()  # from the averaged weights load_run put in, with the same seed
    assert torch.equal(rebuilt["grid.occupied"], model.grid.occupied)
    assert torch.allclose(model.grid.unit_step, torch.tensor(model.step_size))


@pytest.mark.parametrize("train_geometry", [False, True])
def test_hybrid_occupancy_stays_the_teachers_after_every_grid_update(teacher, tmp_path, monkeypatch, train_geometry):
    reference, _ = load_run(teacher)
    teacher_cells = reference.grid.occupied
    options = {"train_geometry": train_geometry}
    model, seen = train_hybrid(teacher, tmp_path / "student", monkeypatch, **options)
    fraction = reference.occupancy()
    for step, occupied in enumerate(seen, 1):
        assert not occupied.all(), f"step {step}: every cell occupied (a warm-up after the copy)"
        assert abs(float(occupied.float().mean()) - fraction) <= 0.1 * fraction, f"step {step}"
        assert overlap(occupied, teacher_cells) >= 0.85, f"step {step}"
    geometry = model.position_encoding.table
    if not train_geometry:  # frozen: the teacher's field and grid, untouched
        assert torch.equal(geometry, reference.position_encoding.table)
        assert all(torch.equal(occupied, teacher_cells) for occupied in seen)
        assert int(model.grid.step) == int(reference.grid.step)
    else:  # trained: the field moved and the grid followed it, its step counter going on from the teacher's
        assert not torch.equal(geometry, reference.position_encoding.table)
        assert int(model.grid.step) == int(reference.grid.step) + STUDENT_STEPS
        loaded, _ = load_run(tmp_path / "student")
        assert torch.equal(loaded.grid.occupied, loaded.rebuilt_buffers()["grid.occupied"])
        assert torch.equal(loaded.grid.occupied, model.grid.occupied)  # the returned model is the loaded one


def test_frozen_geometry_stays_frozen_when_a_run_resumes(teacher, tmp_path):
    def task():
        return StudentTask(teacher=str(teacher), kind="hybrid",
                           model={"features": 8, "decoder_channels": 8, "train_geometry": False},
                           settings={"batch_views": 2}, pool_size=2, initial_views=2, fresh_ratio=0.0, eval_views=0)

    train(task(), tmp_path / "student", steps=2, progress=False, eval_every=0)
    summary = train(None, tmp_path / "student", steps=4, resume=True, progress=False, eval_every=0)
    reference, _ = load_run(teacher)
    assert summary["model"].geometry_frozen
    assert torch.equal(summary["model"].position_encoding.table, reference.position_encoding.table)
