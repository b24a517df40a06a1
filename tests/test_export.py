"""fastnerf.export and `fastnerf export`: pt2 and ONNX files that render like fastnerf.render."""

import json

import pytest
import torch

import fastnerf
from fastnerf.cameras import Camera, orbit_path
from fastnerf.cli import main
from fastnerf.errors import UserError
from fastnerf.export import (camera_inputs, example_inputs, export_model, native_size, onnx_latency_ms, renderer_for,
                             run_onnx, run_pt2)
from fastnerf.models import build_model
from fastnerf.models.students.lightfield import camera_intrinsics
from fastnerf.train import save_checkpoint

TINY = dict(hidden=16, n_blocks=1, n_freqs=2, n_points=4, channels=8, image_width=12, image_height=8)
HASH = dict(encoding="hash", hash_levels=4, hash_log2_size=10, hash_min_res=4, hash_max_res=32)


def lightfield(bundle=2, **overrides):
    torch.manual_seed(0)
    model = build_model("lightfield", bundle=bundle, **{"encoding": "points", **TINY, **overrides})
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # zero-initialised residual branches would hide a mis-exported block
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return model.eval()


def cameras_of(width, height, batch=3):
    cameras = orbit_path(batch, 4.0, 25.0, width, height, 0.9)
    return Camera(cameras.c2w, fx=torch.linspace(9, 15, batch), fy=torch.linspace(9, 13, batch), cx=width / 2,
                  cy=height / 2 - 0.5, width=width, height=height)


@pytest.fixture(scope="module")
def student_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("srun")
    save_checkpoint(run, model=lightfield())
    return run


def test_pt2_program_matches_render_with_a_dynamic_batch(tmp_path):
    model = lightfield()
    info = export_model(model, tmp_path / "lf.pt2", format="pt2", size=(10, 6))
    assert (info["width"], info["height"], info["kind"]) == (10, 6, "lightfield")
    for batch in (1, 4):  # exported with 2 example cameras
        cameras = cameras_of(10, 6, batch)
        c2w, intrinsics = camera_intrinsics(cameras)
        expected = fastnerf.render(model, cameras)["rgb"]
        assert torch.allclose(run_pt2(tmp_path / "lf.pt2", c2w, intrinsics), expected, atol=1e-5)


@pytest.fixture(scope="module")
def trained_student(tmp_path_factory):
    """A tiny scene, a 3-step teacher and a 5-step lightfield student, all through the CLI."""
    from tiny_runs import tiny_teacher_run

    root = tmp_path_factory.mktemp("lf")
    data, _ = tiny_teacher_run(root)
    assert main(["train", "student", "--kind", "lightfield", "--teacher", str(root / "teacher"), "--out",
                 str(root / "student"), "--steps", "4", "--quiet", "--initial-views", "3", "--pool-size", "3",
                 "--option", "hidden=16", "--option", "bundle=2", "--option", "n_blocks=1",
                 "--setting", "finetune=0.5"]) == 0
    return data, root / "student"


def test_cli_trained_student_exports_to_onnx_that_matches_render(trained_student, tmp_path, capsys):
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    from fastnerf.data import load
    from fastnerf.train import load_run

    data, run = trained_student
    model, checkpoint = load_run(run)
    assert checkpoint["model_kind"] == "lightfield" and model.config()["image_width"] == 16
    assert main(["export", str(run), "--format", "onnx", "--out", str(tmp_path / "lf.onnx")]) == 0
    assert "onnx" in capsys.readouterr().out
    test = load(data, "test")
    for cameras in (test.cameras[:1], test.cameras):  # batch 1 and 2 through the dynamic batch
        produced = run_onnx(tmp_path / "lf.onnx", *camera_inputs(cameras))
        expected = fastnerf.render(model, cameras)["rgb"]
        assert produced.shape == expected.shape and (produced - expected).abs().max() < 1e-3
    with pytest.raises(UserError, match="intrinsics"):
        run_onnx(tmp_path / "lf.onnx", test.cameras.c2w)
    assert onnx_latency_ms(tmp_path / "lf.onnx", *camera_inputs(test.cameras[:1]), warmup=1, repeats=2) > 0
    assert main(["eval", str(run), "--onnx", str(tmp_path / "lf.onnx"), "--latency-renders", "2", "--threads", "1",
                 "--json", str(tmp_path / "eval.json")]) == 0
    figures = json.loads((tmp_path / "eval.json").read_text())
    assert figures["onnx_latency_ms"] > 0 and figures["kind"] == "lightfield" and "psnr_vs_teacher" in figures


def test_hash_light_field_exports_to_onnx_that_matches_render(tmp_path):
    # The hash grid's lookups (integer hashing, gathers) go into the graph as plain PyTorch ops
    # (ONNX goes through torch.export, so this covers the pt2 program's graph too); 3 cameras
    # against a graph exported with 2: the batch stays dynamic.
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    model = lightfield(**HASH)
    export_model(model, tmp_path / "lf.onnx", format="onnx", size=(10, 6))
    cameras = cameras_of(10, 6, 3)
    produced = run_onnx(tmp_path / "lf.onnx", *camera_intrinsics(cameras))
    expected = fastnerf.render(model, cameras)["rgb"]
    assert produced.shape == expected.shape and (produced - expected).abs().max() < 1e-4
    assert expected.std() > 0.01  # an image that tells a wrong lookup apart


def test_cli_exports_and_checks_parity(student_run, tmp_path, capsys):
    assert main(["export", str(student_run), "--format", "pt2", "--out", str(tmp_path / "s.pt2"), "--size", "6x4"]) == 0
    out = capsys.readouterr().out
    assert "rgb [B,4,6,3]" in out and "max |exported - PyTorch|" in out
    assert float(out.rsplit("= ", 1)[1].split()[0]) < 1e-4
    assert run_pt2(tmp_path / "s.pt2", *example_inputs(6, 4)).shape == (2, 4, 6, 3)


def test_cli_bad_size_and_format_are_user_errors(student_run, tmp_path, capsys):
    assert main(["export", str(student_run), "--out", str(tmp_path / "x.onnx"), "--size", "twelve"]) == 2
    assert "--size" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", str(student_run), "--format", "torchscript", "--out", str(tmp_path / "x")])


def test_teacher_and_hybrid_are_refused_with_the_reason(tmp_path):
    teacher = build_model("nerf", hash_levels=2, hash_log2_size=8, hidden=8, grid_resolution=4)
    with pytest.raises(UserError, match="custom ops"):
        export_model(teacher, tmp_path / "t.onnx")
    assert not (tmp_path / "t.onnx").exists()

    class Hybrid(torch.nn.Module):
        kind = "hybrid"

        def export_forward(self, c2w, intrinsics):
            raise AssertionError("must not be traced")

    with pytest.raises(UserError, match="march_rays"):
        export_model(Hybrid(), tmp_path / "h.pt2", format="pt2", size=(4, 4))


def test_a_fixed_size_student_refuses_another_size():
    class FixedSize(torch.nn.Module):  # stands for pose / shared: one image size, intrinsics ignored
        kind = "pose"

        def config(self):
            return {"width": 5, "height": 3}

        def export_forward(self, c2w, intrinsics):
            return c2w[:, :1, :1, None].expand(-1, 3, 5, 3).clamp(0, 1)

    assert native_size(FixedSize()) == (5, 3)
    assert renderer_for(FixedSize()).takes_intrinsics is False
    with pytest.raises(UserError, match="5x3 images only"):
        renderer_for(FixedSize(), (10, 6))


def test_unknown_format_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="format"):
        export_model(lightfield(), tmp_path / "x.bin", format="torchscript")


@pytest.mark.parametrize("kind", ["pose", "shared"])
def test_fixed_camera_students_export_their_one_size(kind, tmp_path):
    torch.manual_seed(0)
    extra = {"aabb": [-1.0] * 3 + [1.0] * 3} if kind == "shared" else {}
    model = build_model(kind, width=8, height=6, fx=9.0, fy=9.0, cx=4.0, cy=3.0, centre=[0.0, 0.0, 0.0], scale=4.0,
                        hidden=8, code_dim=8, channels=8, n_hidden=1, **extra).eval()
    info = export_model(model, tmp_path / "s.pt2", format="pt2")
    assert info["inputs"] == ["c2w [B,4,4]"] and (info["width"], info["height"]) == (8, 6)
    cameras = Camera(orbit_path(3, 4.0, 25.0, 8, 6, 0.9).c2w, 9.0, 9.0, 4.0, 3.0, 8, 6)
    assert torch.allclose(run_pt2(tmp_path / "s.pt2", cameras.c2w), fastnerf.render(model, cameras)["rgb"], atol=1e-5)
    with pytest.raises(UserError, match="8x6 images only"):
        export_model(model, tmp_path / "t.pt2", format="pt2", size=(16, 12))


@pytest.mark.parametrize("format", ["pt2", "onnx"])
def test_a_fixed_camera_file_checks_the_intrinsics_it_is_given(format, tmp_path):
    if format == "onnx":
        pytest.importorskip("onnxscript")
        pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = build_model("pose", width=8, height=6, fx=9.0, fy=9.5, cx=4.0, cy=3.0, centre=[0.0, 0.0, 0.0], scale=4.0,
                        hidden=8, code_dim=8, channels=8, n_hidden=1).eval()
    path = tmp_path / f"s.{format}"
    info = export_model(model, path, format=format)
    assert not info["takes_intrinsics"]
    run = run_pt2 if format == "pt2" else run_onnx
    cameras = Camera(orbit_path(2, 4.0, 25.0, 8, 6, 0.9).c2w, 9.0, 9.5, 4.0, 3.0, 8, 6)
    c2w, intrinsics = camera_inputs(cameras)
    expected = fastnerf.render(model, cameras)["rgb"]
    assert torch.allclose(run(path, c2w, intrinsics), expected, atol=1e-5)  # its own camera: checked, accepted
    assert torch.allclose(run(path, c2w), expected, atol=1e-5)
    other = intrinsics.clone()
    other[1, 0] = 12.0  # a wider focal length on the second camera
    with pytest.raises(UserError, match=r"intrinsics: .* fx, fy, cx, cy = 9, 9.5, 4, 3; got 12, 9.5, 4, 3"):
        run(path, c2w, other)
    with pytest.raises(UserError, match=r"intrinsics: .* fx, fy, cx, cy = 9, 9.5, 4, 3; got 12"):
        model.export_forward(c2w, other)  # the PyTorch model says the same
    if format == "onnx":
        with pytest.raises(UserError, match="intrinsics"):
            onnx_latency_ms(path, c2w[:1], other[1:], warmup=0, repeats=1)
