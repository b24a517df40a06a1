"""Commands check what they were given before any long work (issue 23, item 6): `fastnerf eval
--onnx`, `fastnerf train student` and `fastnerf export` fail at once, with the argument named.
Each test replaces the long work with a function that fails the test if it is reached."""

import sys

import pytest

from fastnerf.cli import main
from fastnerf.models import build_model
from fastnerf.train import save_checkpoint

TINY_TEACHER = dict(hash_levels=2, hash_log2_size=8, hash_max_res=32, hidden=8, grid_resolution=4)
TINY_POSE = dict(width=8, height=6, fx=8.0, fy=8.0, cx=4.0, cy=3.0, hidden=8, code_dim=8, channels=8)


def never(*args, **kwargs):
    raise AssertionError("the long work started before the arguments were checked")


@pytest.fixture
def teacher_run(tmp_path):
    (tmp_path / "data").mkdir()
    save_checkpoint(tmp_path / "teacher", model=build_model("nerf", **TINY_TEACHER), task="teacher",
                    dataset={"path": str(tmp_path / "data")})
    return tmp_path / "teacher"


@pytest.fixture
def student_run(tmp_path):
    save_checkpoint(tmp_path / "student", model=build_model("pose", **TINY_POSE), task="student",
                    dataset={"path": str(tmp_path / "data"), "teacher": str(tmp_path / "teacher")})
    return tmp_path / "student"


# ------------------------------------------------------------------------------ fastnerf eval --onnx
@pytest.fixture
def no_evaluation(monkeypatch):
    import fastnerf.cli._multi_scene
    import fastnerf.cli.eval

    monkeypatch.setattr(fastnerf.cli.eval, "load_run_and_data", never)
    monkeypatch.setattr(fastnerf.cli._multi_scene, "is_multi_scene_run", never)


def test_eval_onnx_of_a_missing_file_fails_before_evaluating(student_run, tmp_path, no_evaluation, capsys):
    pytest.importorskip("onnxruntime")
    assert main(["eval", str(student_run), "--onnx", str(tmp_path / "none.onnx")]) == 2
    assert f"ONNX file {str(tmp_path / 'none.onnx')!r} does not exist" in capsys.readouterr().err


def test_eval_onnx_without_onnxruntime_fails_before_evaluating(student_run, tmp_path, no_evaluation, monkeypatch,
                                                               capsys):
    (tmp_path / "s.onnx").write_bytes(b"onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    assert main(["eval", str(student_run), "--onnx", str(tmp_path / "s.onnx")]) == 2
    assert "onnxruntime is not installed" in capsys.readouterr().err


# ------------------------------------------------------------------------------ fastnerf train student
@pytest.fixture
def no_training(monkeypatch):
    import fastnerf.train.engine

    monkeypatch.setattr(fastnerf.train.engine, "train", never)


def student(teacher, *extra):
    return ["train", "student", "--teacher", str(teacher), "--out", str(teacher.parent / "s"), "--steps", "1",
            "--quiet", *extra]


def test_train_student_refuses_a_missing_teacher_or_a_run_that_is_not_a_teacher(teacher_run, student_run, tmp_path,
                                                                              no_training, capsys):
    assert main(student(tmp_path / "nowhere", "--kind", "pose")) == 2
    err = capsys.readouterr().err
    assert "--teacher" in err and "no checkpoint found" in err
    assert main(student(student_run, "--kind", "pose")) == 2
    assert "is a 'student' run (a 'pose' model); give a run of `fastnerf train teacher`" in capsys.readouterr().err
    (tmp_path / "data").rename(tmp_path / "moved")
    assert main(student(teacher_run, "--kind", "pose")) == 2
    assert "its dataset" in capsys.readouterr().err


def test_train_student_refuses_an_unknown_kind_and_options_of_other_kinds(teacher_run, no_training, capsys):
    assert main(student(teacher_run, "--kind", "teapot")) == 2
    assert "unknown student kind 'teapot'; known kinds: " in capsys.readouterr().err
    assert main(student(teacher_run, "--kind", "pose", "--factor", "2")) == 2
    assert "--factor is an option of hybrid, not of 'pose'" in capsys.readouterr().err
    assert main(student(teacher_run, "--kind", "hybrid", "--option", "factor=two")) == 2
    assert "--factor must be an integer, got 'two'" in capsys.readouterr().err
    assert main(student(teacher_run, "--kind", "pose", "--option", "wings=2")) == 2
    assert "bad model option 'wings' for kind 'pose'" in capsys.readouterr().err
    assert main(student(teacher_run, "--kind", "pose", "--setting", "wings=2")) == 2
    assert "student 'pose' has no setting wings" in capsys.readouterr().err
    assert main(student(teacher_run, "--kind", "pose", "--pool-file", "nowhere.pt")) == 2
    assert "--pool-file nowhere.pt is not a file" in capsys.readouterr().err
    assert main(student(teacher_run, "--kind", "pose", "--real-fraction", "2")) == 2
    assert "--real-fraction must be a number in [0, 1], got 2.0" in capsys.readouterr().err


# ------------------------------------------------------------------------------ fastnerf export
@pytest.fixture
def nothing_built(monkeypatch):
    import fastnerf.runs

    monkeypatch.setattr(fastnerf.runs, "model_from_checkpoint", never)


def test_export_refuses_a_kind_that_does_not_export_before_building_it(teacher_run, tmp_path, nothing_built, capsys):
    assert main(["export", str(teacher_run), "--format", "pt2", "--out", str(tmp_path / "t.pt2")]) == 2
    err = capsys.readouterr().err
    assert "a 'nerf' model cannot be exported: it is a volume-rendering teacher" in err
    assert "kinds that export: " in err and "pose" in err.rsplit("kinds that export: ", 1)[1]
    assert not (tmp_path / "t.pt2").exists()


def test_export_to_onnx_without_the_exporter_fails_before_loading(tmp_path, monkeypatch, nothing_built, capsys):
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    assert main(["export", str(tmp_path / "nowhere"), "--format", "onnx", "--out", str(tmp_path / "s.onnx")]) == 2
    assert "ONNX export needs onnx and onnxscript" in capsys.readouterr().err


def test_export_of_a_bad_size_fails_before_loading(tmp_path, nothing_built, capsys):
    assert main(["export", str(tmp_path / "nowhere"), "--out", str(tmp_path / "s.onnx"), "--size", "12"]) == 2
    assert "--size must look like 200x150" in capsys.readouterr().err
