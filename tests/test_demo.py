"""`fastnerf demo`: the students demo end to end at a tiny size, and the WHICH dispatcher."""

import json

from fastnerf.cli import build_parser, main
from fastnerf.cli.demo import available_demos
from fastnerf.data.procedural import SCENES


def test_students_demo_writes_the_table_gif_and_pictures(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--steps", "3", "--student-steps", "2", "--res", "16", "--frames", "2",
                 "--quiet", "--threads", "1"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "PSNR" in printed and SCENES[0] in printed and "nearest view" in printed
    report = json.loads((out / "demo.json").read_text())
    rows = report["rows"]
    assert {"teacher", "pose", "hybrid", "shared", "nearest view"} <= set(rows)
    assert rows["teacher"]["steps"] == 3 and rows["hybrid"]["latency_ms"] > 0 and rows["pose"]["speedup"] > 0
    assert "flicker" in rows["teacher"] and "psnr_vs_teacher" in rows["shared"] and report["truth_flicker"] > 0
    assert (out / "orbit.gif").stat().st_size > 0 and (out / "test_view.png").stat().st_size > 0
    assert len(list((out / "test").glob("*.png"))) == 10


def test_demo_which_defaults_to_students():
    assert "students" in available_demos()
    args = build_parser().parse_args(["demo"])
    assert args.which == "students" and args.quick is False


def test_unknown_kind_is_a_user_error(capsys):
    assert main(["demo", "--out", "x", "--kinds", "teapot"]) == 2
    assert "unknown student kind" in capsys.readouterr().err


def test_pixelnerf_demo_runs_through_the_shared_options(tmp_path, capsys):
    from fastnerf.cli import main

    code = main(["demo", "pixelnerf", "--out", str(tmp_path / "px"), "--steps", "2", "--res", "16",
                 "--train-scenes", "2", "--test-scenes", "1", "--frames", "2", "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "PixelNeRF on 1 unseen scenes (16x16), 2 steps" in out
    metrics = json.loads((tmp_path / "px" / "metrics.json").read_text())
    assert set(metrics["views"]) == {"1", "2", "3"} and metrics["steps"] == 2
    assert (tmp_path / "px" / "orbit_3_views.gif").stat().st_size > 0
