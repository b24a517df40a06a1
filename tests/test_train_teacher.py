"""train_teacher on tiny procedural scenes: it learns, resume is exact, NaN stops cleanly, formats."""

import json
import sys

import pytest
import torch

from fastnerf.cameras import Camera
from fastnerf.data import DatasetError, load
from fastnerf.data.procedural import SCENES, make_scene
from fastnerf.data.writers import write_llff
from fastnerf.models import build_model
from fastnerf.models.nerf import NeRF
from fastnerf.train import TrainingDiverged, evaluate, load_checkpoint, train_teacher
from fastnerf.train.tasks import teacher as teacher_module
from fastnerf.train.tasks.teacher import teacher_config_for
from tiny import train_killed_in_step

SMALL = dict(hash_levels=8, hash_log2_size=14, hash_min_res=4, hash_max_res=64, hidden=32, grid_resolution=16,
             steps_per_diagonal=96, grid_warmup=16)
FAST = dict(target_samples=4096, max_rays=512, grid_every=4, eval_every=0, progress=False, model_config=SMALL)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_scene(SCENES[0], tmp_path_factory.mktemp("scene"), n_train=10, n_val=1, n_test=2, res=16, seed=0,
                      samples_per_axis=1)


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_training_learns_and_writes_the_run(scene, tmp_path):
    torch.manual_seed(0)
    untrained = build_model("nerf", **teacher_config_for(load(scene, "train"), **SMALL))
    before = evaluate(untrained, load(scene, "val"))["psnr"]
    summary = train_teacher(scene, tmp_path / "run", steps=80, **FAST)
    assert summary["steps"] == 80 and summary["samples_per_second"] > 0
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
    written = json.loads((tmp_path / "run" / "train.json").read_text())
    assert written["steps"] == 80
    assert summary["held_out_psnr"] > before + 3.0, (before, summary["held_out_psnr"])
    checkpoint = load_checkpoint(tmp_path / "run")
    assert checkpoint["dataset"]["path"] == str(scene.resolve()) and checkpoint["step"] == 80


def test_resume_is_exact(scene, tmp_path, monkeypatch):
    straight = train_teacher(scene, tmp_path / "straight", steps=14, seed=5, checkpoint_every=0, **FAST)
    # The same run killed during step 8 (its checkpoint of step 7 kept), then resumed.
    train_killed_in_step(monkeypatch, 8, lambda: train_teacher(scene, tmp_path / "split", steps=14, seed=5,
                                                               checkpoint_every=7, **FAST))
    halfway = load_checkpoint(tmp_path / "split")
    assert halfway["step"] == 7
    resumed = train_teacher(scene, tmp_path / "split", steps=14, resume=True, **FAST)
    assert resumed["steps"] == 14
    a, b = state(straight["model"]), state(resumed["model"])
    assert not torch.equal(a["position_encoding.table"], halfway["model"]["position_encoding.table"])  # the second half did train
    for key in a:  # averaged weights, occupancy grid and its step counter: bitwise equal
        assert torch.equal(a[key], b[key]), key
    raw = load_checkpoint(tmp_path / "straight")["model"]["position_encoding.table"]
    assert torch.equal(raw, load_checkpoint(tmp_path / "split")["model"]["position_encoding.table"])  # and the raw weights


def test_resume_with_a_larger_budget_goes_on(scene, tmp_path):
    train_teacher(scene, tmp_path / "run", steps=5, **FAST)
    assert train_teacher(scene, tmp_path / "run", steps=9, resume=True, **FAST)["steps"] == 9


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(scene, tmp_path, monkeypatch):
    real = teacher_module._photometric_loss
    calls = {"n": 0}

    def poisoned(rgb, target):
        calls["n"] += 1
        loss = real(rgb, target)
        return loss * float("nan") if calls["n"] == 7 else loss

    monkeypatch.setattr(teacher_module, "_photometric_loss", poisoned)
    with pytest.raises(TrainingDiverged, match="loss became nan at step 6.*step 4"):
        train_teacher(scene, tmp_path / "run", steps=20, checkpoint_every=4, **FAST)
    assert load_checkpoint(tmp_path / "run")["step"] == 4


def test_bad_inputs(scene, tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        train_teacher(tmp_path / "missing", tmp_path / "run", steps=2, **FAST)
    with pytest.raises(ValueError, match="budget"):
        train_teacher(scene, tmp_path / "run", **FAST)
    with pytest.raises(ValueError, match="no checkpoint"):
        train_teacher(scene, tmp_path / "never", steps=2, resume=True, **FAST)


def test_rgba_data_trains_on_random_backgrounds(scene, tmp_path, monkeypatch):
    seen = []
    real = teacher_module._photometric_loss

    def spy(rgb, target):
        seen.append(target.detach().clone())
        return real(rgb, target)

    monkeypatch.setattr(teacher_module, "_photometric_loss", spy)
    train_teacher(scene, tmp_path / "run", steps=2, **FAST)
    dataset = load(scene, "train")
    assert dataset.alphas is not None and (dataset.alphas < 1).any()
    # Transparent pixels' targets take the random background, not the dataset's white.
    assert (torch.cat(seen) < 0.9).float().mean() > 0.2


@pytest.mark.parametrize("supersample", [1, 2])
def test_each_pixel_is_fit_by_the_mean_of_its_subrays_after_the_centre_rays(scene, tmp_path, monkeypatch, supersample):
    rays, pixels, backgrounds = [], [], []
    real_render = NeRF.render_rays

    def spy_render(self, rays_o, rays_d, **kwargs):
        rays.append(rays_o.shape[0])
        backgrounds.append(kwargs["background"])
        return real_render(self, rays_o, rays_d, **kwargs)

    def spy_loss(rgb, target):
        pixels.append((rgb.shape[0], target.shape[0]))
        return torch.mean((rgb - target) ** 2)

    monkeypatch.setattr(NeRF, "render_rays", spy_render)
    monkeypatch.setattr(teacher_module, "_photometric_loss", spy_loss)
    summary = train_teacher(scene, tmp_path / "run", steps=4, centre_fraction=0.5,
                            **{**FAST, "model_config": {**SMALL, "supersample": supersample}})
    assert summary["model"].supersample == supersample
    train_rays = [n for n, b in zip(rays, backgrounds) if b.dim() == 2]  # training calls carry [n,3] backgrounds
    assert len(train_rays) == len(pixels) == 4
    rays_per_pixel = [n_rays // n_target for n_rays, (_, n_target) in zip(train_rays, pixels)]
    assert rays_per_pixel == [1, 1, supersample**2, supersample**2]  # half the budget on centre rays
    for n_rays, (n_rgb, n_target) in zip(train_rays, pixels):
        assert n_rgb == n_target and n_rays % n_target == 0
    # one random background per pixel, shared by its sub-rays
    background = [b for b in backgrounds if b.dim() == 2][-1].reshape(-1, supersample**2, 3)
    assert torch.equal(background, background[:, :1].expand_as(background))


def test_forward_facing_llff_trains_in_ndc(tmp_path):
    from fastnerf.cameras import look_at

    eyes = torch.stack([torch.tensor([0.3 * (i % 3) - 0.3, 0.2 * (i // 3) - 0.2, 0.0]) for i in range(9)])
    c2w = look_at(eyes, eyes + torch.tensor([0.0, 0.0, -1.0]), up=(0.0, 1.0, 0.0))
    cameras = Camera(c2w, 14.0, 14.0, 8.0, 6.0, 16, 12)
    images = torch.rand(9, 12, 16, 3, generator=torch.Generator().manual_seed(0))
    write_llff(tmp_path / "llff", images, cameras, torch.tensor([[2.0, 8.0]] * 9))
    dataset = load(tmp_path / "llff", "train")
    config = teacher_config_for(dataset)
    assert config["ndc"] is not None and config["aabb"][2] == -1.0
    summary = train_teacher(tmp_path / "llff", tmp_path / "run", steps=4, **FAST)
    assert summary["model"].config()["ndc"]["near"] == pytest.approx(1.0)
    assert summary["held_out_psnr"] is not None


def test_denormal_flushing_is_restored():
    from fastnerf.train.denormals import _flushing, flushed_denormals

    assert not _flushing()
    with flushed_denormals():
        assert _flushing()
    assert not _flushing()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning")
def test_freed_training_buffers_are_reused_not_faulted_in_again():
    import resource

    from fastnerf.train.allocator import keep_freed_memory

    net = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
                              torch.nn.Linear(64, 3))
    x = torch.randn(1 << 15, 32)

    def faults_per_round():  # a training step's pattern: buffers of several sizes, freed out of order
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(4):
            net(x).square().mean().backward()
        return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 4

    if not keep_freed_memory():
        pytest.skip("not glibc")
    faults_per_round(), faults_per_round()  # the heap grows to its peak
    assert faults_per_round() < 100, "freed buffers are page-faulted in again every step"  # ~3000 without


def test_resolution_defaults_follow_the_image_size():
    from fastnerf.train.tasks.teacher import resolution_defaults

    assert resolution_defaults(800, 800) == {"hash_max_res": 1536, "steps_per_diagonal": 1024}
    assert resolution_defaults(100, 100) == {"hash_max_res": 192, "steps_per_diagonal": 128}
    assert resolution_defaults(8, 6) == {"hash_max_res": 64, "steps_per_diagonal": 128}
