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


def test_demos_share_option_names_with_their_own_defaults(monkeypatch):
    from fastnerf.cli import demo

    parser = build_parser()  # every demo module declares its options; --out and --res are in both
    monkeypatch.setattr(demo, "_module", lambda which: type("M", (), {"run": staticmethod(lambda args: 0)})())
    args = parser.parse_args(["demo", "pixelnerf", "--res", "32"])
    demo.run(args)
    assert (args.out, args.res) == ("fastnerf-demo-pixelnerf", 32)
    args = parser.parse_args(["demo", "--quick"])
    demo.run(args)
    assert (args.which, args.out, args.res, args.frames, args.quick) == ("students", "fastnerf-demo", 100, 30, True)


def test_unknown_kind_is_a_user_error(capsys):
    assert main(["demo", "--out", "x", "--kinds", "teapot"]) == 2
    assert "unknown student kind" in capsys.readouterr().err
