"""Students through the same doors as the teacher: `fastnerf train student` on the engine from a
teacher run of each data format (Blender, Instant-NGP, LLFF/NDC), exact resume, `fastnerf eval`
(with psnr_vs_teacher) and `fastnerf render`, load_run, and bad input."""

import json

import pytest
import torch

import fastnerf
from fastnerf.cli import main
from fastnerf.data import load
from fastnerf.data.procedural import make_scene
from fastnerf.data.procedural.forward_facing import make_forward_facing_scene
from fastnerf.data.writers import write_ngp
from fastnerf.train import TeacherTask, load_run, train
from fastnerf.train.tasks.student import StudentTask

KINDS = ("pose", "hybrid", "shared")
TINY = {"pose": {"hidden": 32, "code_dim": 32, "channels": 16},
        "shared": {"hidden": 32, "code_dim": 32, "channels": 16, "nerf_hidden": 32, "nerf_samples": 16},
        "hybrid": {"features": 16, "decoder_channels": 16}}
SETTINGS = {"pose": {"batch_views": 2}, "hybrid": {"batch_views": 2}, "shared": {"batch_views": 2, "nerf_rays": 32}}


def teacher_run(root, fmt):
    if fmt == "llff":
        data = make_forward_facing_scene("tabletop", root / "data", n_views=10, res=16, samples_per_axis=1)
    else:
        data = make_scene("tabletop", root / "blender", n_train=6, n_val=1, n_test=2, res=16, seed=0,
                          samples_per_axis=1)
        if fmt == "ngp":
            train_split = load(data, "train")
            write_ngp(root / "data", train_split.images, train_split.cameras)
            data = root / "data"
    train(TeacherTask(data=data, model_config={"hash_log2_size": 12, "grid_resolution": 16}), root / "teacher",
          steps=3, progress=False, eval_every=0)
    return root / "teacher"


@pytest.fixture(scope="module", params=["blender", "ngp", "llff"])
def teacher(request, tmp_path_factory):
    return teacher_run(tmp_path_factory.mktemp(request.param), request.param)


def student_task(teacher, kind, **options):
    pool = {"pool_size": 4, "initial_views": 2, "fresh_ratio": 0.5, "eval_views": 1, **options}
    return StudentTask(teacher=str(teacher), kind=kind, model=TINY[kind], settings=SETTINGS[kind], **pool)


@pytest.mark.parametrize("kind", KINDS)
def test_every_student_trains_from_every_format_and_renders(teacher, kind, tmp_path):
    summary = train(student_task(teacher, kind), tmp_path / kind, steps=3, progress=False, eval_every=0)
    assert summary["steps"] == 3 and summary["teacher_views_rendered"] >= 2 and summary["kind"] == kind
    model, checkpoint = load_run(tmp_path / kind)
    assert checkpoint["model_kind"] == kind and checkpoint["dataset"]["teacher"] == str(teacher.resolve())
    dataset = load(checkpoint["dataset"]["path"], "train")
    out = fastnerf.render(model, dataset.cameras[:2])["rgb"]
    assert out.shape == (2, dataset.height, dataset.width, 3) and torch.isfinite(out).all()


def test_resume_continues_exactly(tmp_path_factory):
    teacher = teacher_run(tmp_path_factory.mktemp("resume"), "blender")
    root = tmp_path_factory.mktemp("runs")
    for kind in ("hybrid", "shared"):
        straight = train(student_task(teacher, kind), root / f"{kind}-straight", steps=4, progress=False, eval_every=0)
        train(student_task(teacher, kind), root / f"{kind}-split", steps=2, progress=False, eval_every=0)
        resumed = train(None, root / f"{kind}-split", steps=4, resume=True, progress=False, eval_every=0)
        for (name, a), b in zip(straight["model"].state_dict().items(), resumed["model"].state_dict().values()):
            assert torch.equal(a, b), f"{kind}: {name} differs after resume"


def test_cli_train_eval_render(tmp_path, capsys):
    teacher = teacher_run(tmp_path, "blender")
    run = tmp_path / "hybrid"
    code = main(["train", "student", "--teacher", str(teacher), "--kind", "hybrid", "--out", str(run), "--steps", "2",
                 "--quiet", "--eval-every", "1", "--pool-size", "4", "--initial-views", "2", "--factor", "2",
                 "--upsampler", "transposed", "--option", "features=8", "--batch-views", "1", "--threads", "1"])
    assert code == 0
    model, _ = load_run(run)
    assert model.config()["factor"] == 2 and model.config()["upsampler"] == "transposed"
    assert model.config()["features"] == 8
    assert main(["eval", str(run), "--json", str(tmp_path / "eval.json"), "--latency-renders", "2"]) == 0
    figures = json.loads((tmp_path / "eval.json").read_text())
    assert figures["kind"] == "hybrid" and figures["latency_ms"] > 0 and figures["psnr_vs_teacher"] > 0
    assert main(["render", str(run), "--frames", "2", "--size", "20x12", "--out", str(tmp_path / "o.gif")]) == 0
    assert (tmp_path / "o.gif").stat().st_size > 0
    capsys.readouterr()
    assert main(["train", "student", "--teacher", str(teacher), "--kind", "pose", "--out", str(tmp_path / "p"),
                 "--steps", "1", "--quiet", "--size", "24x20", "--pool-size", "2", "--initial-views", "1",
                 "--eval-every", "0"]) == 0
    assert main(["render", str(tmp_path / "p"), "--frames", "1", "--out", str(tmp_path / "p.gif")]) == 2
    assert "renders only the camera it was trained for: 24x20" in capsys.readouterr().err


def test_bad_student_options_are_user_errors(tmp_path, capsys):
    teacher = teacher_run(tmp_path, "blender")
    base = ["train", "student", "--teacher", str(teacher), "--out", str(tmp_path / "s"), "--steps", "1", "--quiet"]
    assert main(base + ["--kind", "teapot"]) == 2
    assert "unknown student kind 'teapot'; known kinds: " in capsys.readouterr().err
    assert main(base + ["--kind", "pose", "--option", "wings=2"]) == 2
    assert "bad model option" in capsys.readouterr().err
    assert main(["train", "student", "--teacher", str(tmp_path / "none"), "--kind", "pose", "--out",
                 str(tmp_path / "s"), "--steps", "1", "--quiet"]) == 2
    assert "no checkpoint found" in capsys.readouterr().err


def test_a_saved_pool_starts_a_run_and_a_resume_needs_it_no_more(tmp_path):
    from fastnerf.distill import ViewPool, sampler_for

    teacher = teacher_run(tmp_path, "blender")
    model, checkpoint = load_run(teacher, device="cpu")
    data = load(checkpoint["dataset"]["path"], "train")
    pool = ViewPool(model, sampler_for(data), data, capacity=3)
    pool.fill(torch.Generator().manual_seed(0))
    path = pool.save(tmp_path / "pool.pt")
    summary = train(student_task(teacher, "pose", pool_file=str(path), fresh_ratio=0.0), tmp_path / "pose", steps=2, progress=False, eval_every=0)
    assert summary["teacher_views_rendered"] == 3 and summary["pool_views"] == 3  # the file's views, none new
    path.unlink()
    resumed = train(None, tmp_path / "pose", steps=3, resume=True, progress=False, eval_every=0)
    assert resumed["steps"] == 3 and resumed["pool_views"] == 3


def test_teacher_init_auto_logs_what_was_copied_and_on_refuses_what_cannot_be(tmp_path, capsys):
    teacher = teacher_run(tmp_path, "blender")
    lines = []
    train(student_task(teacher, "hybrid"), tmp_path / "auto", steps=1, progress=False, eval_every=0, log=lines.append)
    assert any("teacher init: the 'hybrid' student copied the teacher's hash grid, geometry MLP (trained), "
               "occupancy grid, colour MLP" in line for line in lines), lines
    lines.clear()
    train(student_task(teacher, "pose"), tmp_path / "pose", steps=1, progress=False, eval_every=0, log=lines.append)
    assert any("teacher init: nothing copied (a 'pose' student has nothing it could copy" in line for line in lines)
    base = ["train", "student", "--teacher", str(teacher), "--out", str(tmp_path / "s"), "--steps", "1", "--quiet",
            "--teacher-init", "on"]
    assert main(base + ["--kind", "pose"]) == 2
    assert "--teacher-init on, but a 'pose' student has nothing it could copy from a teacher" in capsys.readouterr().err
    assert main(base + ["--kind", "hybrid", "--option", "hash_levels=3"]) == 2
    assert "--teacher-init on, but the teacher's field layout differs from the hybrid's" in capsys.readouterr().err
    assert main(base[:-2] + ["--no-teacher-init", "--kind", "hybrid", "--steps", "1", "--pool-size", "2",
                             "--initial-views", "1", "--option", "features=8", "--eval-every", "0"]) == 0
    model, checkpoint = load_run(tmp_path / "s")
    assert checkpoint["train_args"]["teacher_init"] == "off" and not model.geometry_frozen
