"""The light field's training data: fresh teacher patches of sampled cameras, the hard-patch
buffer (R2L's hard-ray mining), short runs that learn and resume exactly (points and hash
encodings), the hash grid started from the teacher's, and the real-images phase that stays on."""

import pytest
import torch
from test_students_train import teacher_run

import fastnerf
from fastnerf.cameras import orbit_path
from fastnerf.data import load
from fastnerf.distill import ViewPool, sampler_for
from fastnerf.distill.patches import HardPatches, TeacherPatches, crop_cameras
from fastnerf.errors import UserError
from fastnerf.models import build_model
from fastnerf.cli import main
from fastnerf.fields.ray_encoding import ray_points, to_unit_box
from fastnerf.models.students.lightfield import LightField, bundle_margin, camera_intrinsics
from fastnerf.train import load_checkpoint, load_run, train
from fastnerf.train.tasks.student import StudentTask

TINY = dict(hidden=16, n_blocks=1, n_freqs=2, n_points=4, channels=8)
GRID = dict(hash_levels=4, hash_log2_size=10, hash_min_res=4, hash_max_res=32)  # a small "hash" grid


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return teacher_run(tmp_path_factory.mktemp("lightfield-data"), "blender")


def _pool(teacher_path, **options):
    teacher, checkpoint = load_run(teacher_path)
    dataset = load(checkpoint["dataset"]["path"], "train")
    return ViewPool(teacher.eval(), sampler_for(dataset), dataset, **options), teacher, dataset


def test_fresh_patches_are_the_teachers_render_of_those_pixels_of_the_sampled_views(teacher):
    pool, model, _ = _pool(teacher, real_fraction=0.0)
    cameras, rgb = pool.draw_patches(3, 8, torch.Generator().manual_seed(5), align=4)
    views = pool.sampler.sample(3, torch.Generator().manual_seed(5))  # the draw samples its cameras first
    whole = fastnerf.render(model, views, background=pool.background)["rgb"]  # [3,16,16,3]
    x0, y0 = (views.cx - cameras.cx).round().long(), (views.cy - cameras.cy).round().long()
    assert rgb.shape == (3, 8, 8, 3) and (x0 % 4 == 0).all() and (y0 % 4 == 0).all()
    assert ((x0 >= 0) & (x0 <= 8) & (y0 >= 0) & (y0 <= 8)).all()
    for i in range(3):
        crop = whole[i, y0[i]:y0[i] + 8, x0[i]:x0[i] + 8]
        assert torch.allclose(rgb[i], crop, atol=1e-4), (rgb[i] - crop).abs().max()
    assert rgb.std() > 0.01  # a teacher that renders something, so the comparison can fail
    assert pool.patches.rendered == 3 and len(pool) == 0  # no pool view was rendered for them


def test_real_patches_are_crops_of_the_training_images(teacher):
    pool, _, dataset = _pool(teacher, real_fraction=0.0)
    cameras, rgb = pool.draw_patches(4, 4, torch.Generator().manual_seed(1), real_fraction=1.0)
    assert pool.patches.rendered == 0
    for i in range(4):
        matches = [j for j in range(len(dataset)) if torch.equal(dataset.cameras.c2w[j], cameras.c2w[i])]
        j = matches[0]
        x0 = int(round(float(dataset.cameras.cx[j] - cameras.cx[i])))
        y0 = int(round(float(dataset.cameras.cy[j] - cameras.cy[i])))
        assert torch.equal(rgb[i], dataset.images[j, y0:y0 + 4, x0:x0 + 4])


def test_patch_size_must_hold_whole_bundles_and_fit_the_views(teacher):
    pool, _, _ = _pool(teacher)
    assert pool.patches.patch_size(64, 4) == 16  # shrunk to the 16x16 views
    with pytest.raises(UserError, match="multiple of the bundle"):
        pool.draw_patches(1, 6, align=4)
    with pytest.raises(UserError, match="patch=12 must be a multiple of the bundle"):
        StudentTask(teacher=str(teacher), kind="lightfield", model={"bundle": 8}, settings={"patch": 12})
    with pytest.raises(UserError, match="hard_fraction"):
        StudentTask(teacher=str(teacher), kind="lightfield", settings={"hard_fraction": 1.5})


def _cameras(n, size=4):
    return crop_cameras(orbit_path(n, 4.0, 30.0, 16, 16, 0.9), torch.zeros(n), torch.zeros(n), size)


def test_hard_buffer_keeps_the_highest_errors_and_hands_them_out_once():
    buffer = HardPatches(3, 4)
    cameras = _cameras(5)
    rgb = torch.arange(5.0)[:, None, None, None].expand(5, 4, 4, 3)  # patch i is all i
    buffer.offer(cameras[:3], rgb[:3], torch.tensor([0.1, 0.5, 0.3]))
    buffer.offer(cameras[3:], rgb[3:], torch.tensor([0.05, 0.4]))
    assert sorted(buffer.errors.tolist()) == pytest.approx([0.3, 0.4, 0.5])
    assert sorted(buffer.rgb[:, 0, 0, 0].tolist()) == [1.0, 2.0, 4.0]  # each target stays with its patch
    for kept, patch in zip(buffer.rgb[:, 0, 0, 0].long().tolist(), buffer.rows):
        assert torch.equal(patch[:16].reshape(4, 4), cameras.c2w[kept])
    state = buffer.state_dict()
    taken_cameras, taken = buffer.take(2, torch.Generator().manual_seed(0))
    assert len(buffer) == 1 and taken.shape == (2, 4, 4, 3) and taken_cameras.width == 4
    left = set(buffer.rgb[:, 0, 0, 0].tolist())
    assert left.isdisjoint(taken[:, 0, 0, 0].tolist()) and left | set(taken[:, 0, 0, 0].tolist()) == {1.0, 2.0, 4.0}
    remaining = float(buffer.errors[0])
    buffer.offer(taken_cameras, taken, torch.tensor([0.0, 0.0]))  # replayed, and now easy
    buffer.offer(cameras[:1], rgb[:1], torch.tensor([0.2]))  # pushes one of them out
    assert sorted(buffer.errors.tolist()) == pytest.approx(sorted([remaining, 0.2, 0.0]))
    restored = HardPatches(3, 4)
    restored.load_state_dict(state)
    assert torch.equal(restored.rgb, state["rgb"]) and torch.equal(restored.errors, state["errors"])


@pytest.mark.parametrize("bundle, encoding", [(2, "points"), (4, "points"), (8, "points"), (4, "hash")])
def test_a_patch_renders_as_those_pixels_of_the_whole_view(bundle, encoding):
    torch.manual_seed(0)
    model = build_model("lightfield", bundle=bundle, encoding=encoding, aabb=(-1, -1, -1, 1, 1, 1), **TINY, **GRID)
    with torch.no_grad():  # random weights everywhere (the upsampler's convs start at zero)
        for parameter in model.parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.3)
    size = 12 * bundle
    view = orbit_path(1, 4.0, 30.0, size, size, 0.9)
    whole = model.images(*camera_intrinsics(view), size, size)
    x0, y0 = torch.tensor([5 * bundle]), torch.tensor([4 * bundle])
    patch = model.patch_images(crop_cameras(view, x0, y0, 2 * bundle))
    assert torch.allclose(patch[0], whole[0, 4 * bundle:6 * bundle, 5 * bundle:7 * bundle], atol=1e-5)
    assert bundle_margin(bundle) > 0


def _task(teacher, encoding="points", **settings):
    return StudentTask(teacher=str(teacher), kind="lightfield", model={**TINY, "bundle": 2, "encoding": encoding},
                       settings={"lr": 1e-2, "patch": 2, "patches": 4, "hard_buffer": 8, "finetune": 0.0, **settings},
                       pool_size=2, initial_views=1, eval_views=0, teacher_supersample=1)


def _recording(task, history):
    loss = task.loss

    def recorded(model, step, ctx):
        out = loss(model, step, ctx)
        history.append((float(out[0].detach()), out[1]))
        return out

    task.loss = recorded
    return task


@pytest.mark.parametrize("encoding", ["points", "hash"])
def test_training_on_fresh_and_hard_patches_learns_and_resumes_exactly(teacher, tmp_path, encoding):
    history = []
    settings = {"table_lr": 3e-2} if encoding == "hash" else {}
    straight = train(_recording(_task(teacher, encoding, **settings), history), tmp_path / "straight", steps=20,
                     progress=False, eval_every=0)
    assert straight["teacher_patches_rendered"] > 30 and straight["teacher_views_rendered"] == 1
    assert [stats["hard"] for _, stats in history] == [0.0] + [1.0] * 19  # a quarter of 4 patches, once there are any
    first, last = sum(l for l, _ in history[:4]) / 4, sum(l for l, _ in history[-4:]) / 4
    assert last < 0.7 * first, (first, last)
    train(_task(teacher, encoding, **settings), tmp_path / "split", steps=11, progress=False, eval_every=0)
    resumed = train(None, tmp_path / "split", steps=20, resume=True, progress=False, eval_every=0)
    for (name, a), b in zip(straight["model"].state_dict().items(), resumed["model"].state_dict().values()):
        assert torch.equal(a, b), f"{name} differs after resume"
    groups = load_checkpoint(tmp_path / "straight")["optimizer"]["param_groups"]
    if encoding == "hash":  # the table in a group of its own, at its own rate, without weight decay (the teacher's way)
        assert [g["base_lr"] for g in groups] == [3e-2, 1e-2] and groups[0]["weight_decay"] == 0.0
        assert len(groups[0]["params"]) == 1
    else:
        assert [g["base_lr"] for g in groups] == [1e-2]


def _hash_student(teacher_path, **overrides):
    from fastnerf.distill import sampler_for

    teacher, checkpoint = load_run(teacher_path)
    dataset = load(checkpoint["dataset"]["path"], "train")
    config = LightField.config_for(teacher, dataset, sampler_for(dataset), **{**TINY, "encoding": "hash", **overrides})
    return build_model("lightfield", **config), teacher


def test_hash_student_starts_from_the_teachers_table_and_reads_it_where_the_teacher_does(teacher):
    student, model = _hash_student(teacher)
    assert {k: student.config()[k] for k in GRID} == {k: model.config()[k] for k in GRID}  # the teacher's sizes
    assert "hash table (16 levels x 2 features" in student.init_from_teacher(model)
    assert torch.equal(student.encoder.grid.table, model.position_encoding.table)
    generator = torch.Generator().manual_seed(0)
    origins = torch.randn(32, 3, generator=generator) * 3
    directions = torch.nn.functional.normalize(-origins + torch.randn(32, 3, generator=generator), dim=-1)
    encoded = student.encoder(origins, directions)
    aabb = student.encoder.aabb
    unit_o, unit_d = to_unit_box(origins, directions, aabb)
    world = (aabb[:3] + aabb[3:]) / 2 + ray_points(unit_o, unit_d, TINY["n_points"]) * (aabb[3:] - aabb[:3]) / 2
    width = model.position_encoding.out_dim
    for k in range(TINY["n_points"]):  # point k's features are the teacher's own at that world point
        expected = model.position_encoding(model.unit_positions(world[:, k]))
        assert torch.allclose(encoded[:, k * width:(k + 1) * width], expected, atol=1e-5)
    assert encoded[:, :width * TINY["n_points"]].abs().max() > 1e-3  # trained features, not the +-1e-4 start
    with pytest.raises(ValueError, match="hash_levels 16 \\(here 3\\)"):
        _hash_student(teacher, hash_levels=3)[0].init_from_teacher(model)
    with pytest.raises(ValueError, match="encoding=points learns no grid"):
        _hash_student(teacher, encoding="points")[0].init_from_teacher(model)


def test_teacher_init_on_is_refused_for_a_light_field_without_a_grid(teacher, tmp_path, capsys):
    base = ["train", "student", "--kind", "lightfield", "--teacher", str(teacher), "--steps", "1", "--quiet",
            "--teacher-init", "on", "--initial-views", "1", "--pool-size", "1", "--eval-every", "0",
            "--setting", "patch=4", "--setting", "patches=2", "--option", "bundle=2", "--option", "hidden=8"]
    assert main(base + ["--out", str(tmp_path / "points")]) == 2
    assert "--teacher-init on, but encoding=points learns no grid" in capsys.readouterr().err
    assert main(base + ["--out", str(tmp_path / "hash"), "--option", "encoding=hash"]) == 0
    student, _ = load_run(tmp_path / "hash")
    assert student.config()["encoding"] == "hash" and student.encoder.grid is not None


def test_the_real_images_phase_stays_on_after_a_resume_with_a_larger_budget(teacher, tmp_path, monkeypatch):
    # finetune 0.5 of 4 steps: real images from step 2. Resumed to 10 steps, 0.5 of 10 would begin
    # at step 5: the phase that began at step 2 must stay on (recorded in the task's state).
    seen = {}
    distill_loss = LightField.distill_loss

    def recording(self, pool, generator, *, step, **kwargs):
        loss, stats = distill_loss(self, pool, generator, step=step, **kwargs)
        seen[step] = stats["real_only"]
        return loss, stats

    monkeypatch.setattr(LightField, "distill_loss", recording)
    train(_task(teacher, finetune=0.5), tmp_path / "run", steps=4, progress=False, eval_every=0)
    assert [seen[step] for step in range(4)] == [0.0] * 2 + [1.0] * 2
    assert load_checkpoint(tmp_path / "run")["extra"]["task_state"]["schedule"] == {"finetune_from": 2}
    train(None, tmp_path / "run", steps=10, resume=True, progress=False, eval_every=0)
    assert [seen[step] for step in range(4, 10)] == [1.0] * 6
