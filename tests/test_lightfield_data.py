"""The light field's training data: fresh teacher patches of sampled cameras, the hard-patch
buffer (R2L's hard-ray mining), and a short run that learns and resumes exactly."""

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
from fastnerf.models.students.lightfield import bundle_margin, camera_intrinsics
from fastnerf.train import load_run, train
from fastnerf.train.tasks.student import StudentTask

TINY = dict(hidden=16, n_blocks=1, n_freqs=2, n_points=4, channels=8)


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


@pytest.mark.parametrize("bundle", [2, 4, 8])
def test_a_patch_renders_as_those_pixels_of_the_whole_view(bundle):
    torch.manual_seed(0)
    model = build_model("lightfield", bundle=bundle, aabb=(-1, -1, -1, 1, 1, 1), **TINY)
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


def _task(teacher, **settings):
    return StudentTask(teacher=str(teacher), kind="lightfield", model={**TINY, "bundle": 2},
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


def test_training_on_fresh_and_hard_patches_learns_and_resumes_exactly(teacher, tmp_path):
    history = []
    straight = train(_recording(_task(teacher), history), tmp_path / "straight", steps=20, progress=False,
                     eval_every=0)
    assert straight["teacher_patches_rendered"] > 30 and straight["teacher_views_rendered"] == 1
    assert [stats["hard"] for _, stats in history] == [0.0] + [1.0] * 19  # a quarter of 4 patches, once there are any
    first, last = sum(l for l, _ in history[:4]) / 4, sum(l for l, _ in history[-4:]) / 4
    assert last < 0.7 * first, (first, last)
    train(_task(teacher), tmp_path / "split", steps=11, progress=False, eval_every=0)
    resumed = train(None, tmp_path / "split", steps=20, resume=True, progress=False, eval_every=0)
    for (name, a), b in zip(straight["model"].state_dict().items(), resumed["model"].state_dict().values()):
        assert torch.equal(a, b), f"{name} differs after resume"
