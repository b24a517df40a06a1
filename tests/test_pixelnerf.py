"""PixelNeRF: encoder, field, the three samplers, the task on the engine end to end, and the doors."""

import math

import pytest
import torch

from fastnerf.cameras import Camera, look_at
from fastnerf.fields.image_encoder import ResNetEncoder
from fastnerf.models import build_model
from fastnerf.ops import project_features

TINY = dict(encoder_widths=(8, 8, 8, 8), hidden=16, aabb=(-1, -1, -1, 1, 1, 1), near=1.0, far=5.0,
            train_samples=8, dense_coarse=8, dense_fine=4, grid_resolution=8, march_steps=32)


def cameras(n, size=16, radius=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    azimuth = torch.rand(n, generator=g, dtype=torch.float64) * 2 * math.pi
    eyes = torch.stack([radius * torch.cos(azimuth), radius * torch.sin(azimuth), torch.full((n,), 1.0, dtype=torch.float64)], -1)
    return Camera.from_fov(look_at(eyes, (0.0, 0.0, 0.0)), size, size, math.radians(45))


def test_encoder_shapes_and_resnet34_names(tmp_path):
    encoder = ResNetEncoder(widths=(8, 8, 16, 16), blocks=(1, 1, 1))
    assert encoder(torch.rand(2, 3, 20, 14)).shape == (2, 48, 10, 7)
    full = ResNetEncoder.resnet34()
    assert full.out_channels == 512
    keys = set(full.state_dict())
    for name in ("conv1.weight", "bn1.running_var", "layer1.2.conv2.weight", "layer2.0.downsample.0.weight",
                 "layer2.3.bn2.bias", "layer3.0.downsample.1.running_mean", "layer3.5.conv1.weight"):
        assert name in keys, name
    assert "layer1.0.downsample.0.weight" not in keys and "layer3.6.conv1.weight" not in keys
    # a torchvision-style file (with layer4 and fc, which are skipped) loads
    state = {k: torch.randn_like(v.float()).to(v.dtype) for k, v in full.state_dict().items()}
    state["layer4.0.conv1.weight"], state["fc.weight"] = torch.zeros(512, 256, 3, 3), torch.zeros(1000, 512)
    torch.save(state, tmp_path / "resnet34.pth")
    full.load_torchvision(tmp_path / "resnet34.pth")
    torch.testing.assert_close(full.conv1.weight, state["conv1.weight"])
    from fastnerf.errors import UserError

    with pytest.raises(UserError, match="full ResNet-34"):
        encoder.load_torchvision(tmp_path / "resnet34.pth")


def test_projected_latent_equals_pixelnerf_latent_layers():
    """The 1x1 convolution before sampling equals pixelNeRF's linear layers after sampling."""
    g = torch.Generator().manual_seed(0)
    features = torch.randn(2, 6, 5, 7, generator=g, dtype=torch.float64)
    weight = torch.randn(4, 6, generator=g, dtype=torch.float64)
    cams = cameras(2, size=7)
    points = torch.rand(30, 3, generator=g, dtype=torch.float64) - 0.5
    intrinsics = torch.stack([cams.fx, cams.fy, cams.cx, cams.cy], -1).double() * torch.tensor([1, 5 / 7, 1, 5 / 7])
    c2w = cams.c2w.double()
    after = project_features(points, c2w, intrinsics, features, backend="torch") @ weight.T
    before = project_features(points, c2w, intrinsics, torch.einsum("oc,vchw->vohw", weight, features), backend="torch")
    torch.testing.assert_close(before, after)


def test_render_modes_shapes_and_dense_matches_fine_stratified():
    torch.manual_seed(0)
    model = build_model("pixelnerf", **TINY)
    cams = cameras(3)
    views = model.encode_views(torch.rand(3, 16, 16, 3), cams)
    origins, directions = cams[0].rays()
    origins, directions = origins.reshape(-1, 3), directions.reshape(-1, 3)
    model.train()
    out = model.render_rays(origins, directions, views=views, generator=torch.Generator().manual_seed(1))
    out["rgb"].sum().backward()
    assert out["rgb"].shape == (256, 3) and model.input_layer.weight.grad is not None
    model.eval()
    dense = model.render_rays(origins, directions, views=views, mode="dense")
    fine = model.render_rays(origins, directions, views=views, dense_samples=512)
    assert dense["n_samples"] <= 256 * 12 and fine["n_samples"] > dense["n_samples"]
    torch.testing.assert_close(dense["rgb"], fine["rgb"], atol=0.03, rtol=0)  # importance sampling converges


def test_occupancy_keeps_dense_cells_and_fast_matches_dense():
    """A field whose density is known: fast rendering (occupancy + early stop) agrees with dense."""
    torch.manual_seed(0)
    model = build_model("pixelnerf", **{**TINY, "grid_resolution": 16, "march_steps": 256, "early_stop_eps": 1e-4})
    model.eval()

    def ball(points, directions, views, backend=None):  # a red ball of radius 0.5
        inside = (points.norm(dim=-1) < 0.5).float()
        return 50.0 * inside, torch.tensor([1.0, 0.0, 0.0]).expand(points.shape[0], 3)

    model.field = ball
    cams = cameras(1)
    views = {"c2w": cams.c2w, "latent": None, "intrinsics": None}
    origins, directions = cams[0].rays()
    origins, directions = origins.reshape(-1, 3), directions.reshape(-1, 3)
    fast = model.render_rays(origins, directions, views=views, mode="fast")
    occupied = views["occupied"]
    assert 0.01 < occupied.float().mean() < 0.5  # empty space is skipped
    dense = model.render_rays(origins, directions, views=views, dense_samples=1024)
    assert (fast["rgb"] - dense["rgb"]).abs().max() < 0.05
    assert fast["n_samples"] < dense["n_samples"] / 20


def make_scene_folder(root, n_scenes=2, size=16):
    from fastnerf.data.writers import write_blender

    for s in range(n_scenes):
        for split, count, seed in (("train", 4, s), ("test", 2, 10 + s)):
            cams = cameras(count, size, seed=seed)
            rgba = torch.rand(count, size, size, 4, generator=torch.Generator().manual_seed(seed))
            rgba[..., 3] = (rgba[..., 3] > 0.3).float()
            write_blender(root / f"scene_{s:04d}", split, rgba, cams, aabb=(-1, -1, -1, 1, 1, 1), near=1.0, far=5.0)
    return root


def test_task_trains_checkpoints_and_evaluates(tmp_path):
    from fastnerf.rendering import render
    from fastnerf.train import load_run
    from fastnerf.train.engine import train
    from fastnerf.train.multi_scene_eval import evaluate_scenes
    from fastnerf.train.tasks.pixelnerf import PixelNeRFTask
    from fastnerf.data import load_scenes

    data = make_scene_folder(tmp_path / "scenes")
    model_config = {k: v for k, v in TINY.items() if k not in ("aabb", "near", "far")}
    task = PixelNeRFTask(data=data, scenes_per_step=2, rays_per_scene=32, model_config=model_config)
    summary = train(task, tmp_path / "run", steps=3, progress=False, log=None, eval_every=0)
    assert summary["steps"] == 3
    model, checkpoint = load_run(tmp_path / "run")
    assert checkpoint["model_kind"] == "pixelnerf" and checkpoint["dataset"]["multi_scene"]
    test = load_scenes(data, "test")
    result = evaluate_scenes(model, test, n_views=2, latency_renders=2)
    assert result["n_targets"] == 4 and result["psnr"] > 0 and result["baseline_psnr"] > 0
    assert result["latency_renders"] == 2 and result["latency_ms"] > 0  # fastnerf.timing's protocol
    assert result["evals_per_pixel"] >= result["grid_evals_per_pixel"] > 0
    scene = test[0]
    image = render(model, scene.cameras[4], views=(scene.images[:2], scene.cameras[:2]))["rgb"]
    assert image.shape == (16, 16, 3)
    from fastnerf.errors import UserError

    with pytest.raises(UserError, match="source views"):
        render(model, scene.cameras[4])


def test_cli_train_eval_render(tmp_path, capsys):
    import json

    from fastnerf.cli import main

    data = make_scene_folder(tmp_path / "scenes")
    run = tmp_path / "run"
    assert main(["train", "pixelnerf", "--data", str(data), "--out", str(run), "--steps", "2", "--quiet",
                 "--hidden", "16", "--scenes-per-step", "1", "--rays-per-scene", "16", "--threads", "1"]) == 0
    assert main(["eval", str(run), "--split", "test", "--views", "2", "--json", str(tmp_path / "e.json")]) == 0
    figures = json.loads((tmp_path / "e.json").read_text())
    assert figures["views"] == 2 and figures["n_targets"] == 4 and "latency_ms" in figures
    assert main(["eval", str(run), "--split", "test", "--source-views", "3,1", "--json", str(tmp_path / "s.json")]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["views"] == [3, 1]
    assert main(["render", str(run), "--scene", str(data / "scene_0001"), "--source-views", "0,2", "--frames", "2",
                 "--out", str(tmp_path / "orbit.gif")]) == 0
    assert (tmp_path / "orbit.gif").is_file()
    assert main(["render", str(run), "--frames", "2", "--out", str(tmp_path / "x.gif")]) == 2
    assert "--scene" in capsys.readouterr().err
    # the viewer shows the first scene, conditioned on its first view
    from fastnerf.rendering import render
    from fastnerf.viewer import load_viewed_run

    source = load_viewed_run(run)
    camera = source.camera_for(source.cameras.c2w[1].numpy(), 0.8, 12, 8)
    expected = render(source.model, camera, views=(source.images[:1], source.cameras[:1]))["rgb"]
    assert (source.render(camera).image == (expected.clamp(0, 1) * 255 + 0.5).byte().numpy()).all()
    source = load_viewed_run(run, scene=data / "scene_0001", source_views=[2, 0])
    expected = render(source.model, camera, views=(source.images[[2, 0]], source.cameras[[2, 0]]))["rgb"]
    assert (source.render(camera).image == (expected.clamp(0, 1) * 255 + 0.5).byte().numpy()).all()
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["view", str(run), "--source-views", "9", "--port", str(port)]) == 2
    assert "--source-views [9] out of range" in capsys.readouterr().err
    assert main(["eval", str(run), "--split", "test", "--source-views", "9"]) == 2
