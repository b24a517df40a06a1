"""`fastnerf bench`: runs, prints the table, writes results; bad arguments exit 2."""

import json
import os

from fastnerf.cli import main


def test_bench_quick_prints_table_and_writes_results(tmp_path, capsys):
    assert main(["bench", "--quick", "--ops", "composite", "--device", "cpu", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "composite" in printed and "% copy" in printed and "cpp" in printed and "torch" in printed
    records = json.load(open(os.path.join(tmp_path, "bench-cpu.json")))
    assert {r["backend"] for r in records} >= {"torch", "cpp"}
    assert all(r["seconds"] > 0 and r["device"] and r["commit"] for r in records)


def test_bench_unknown_op_is_a_user_error(capsys):
    assert main(["bench", "--ops", "nosuchop"]) == 2
    assert "unknown ['nosuchop']" in capsys.readouterr().err
