"""The teacher CLI end to end through fastnerf.cli.main: train, eval, render, demo, bad input (exit 2)."""

import json

import pytest
import torch

from fastnerf.cli import main
from fastnerf.data import load
from fastnerf.metrics import psnr
from fastnerf.rendering import render
from fastnerf.train import load_run
from tiny import make_tiny_scene
from fastnerf.runs import FORMAT_VERSION


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data = make_tiny_scene(root / "data")
    code = main(["train", "teacher", "--data", str(data), "--out", str(root / "run"), "--steps", "3", "--quiet",
                 "--eval-every", "0"])
    assert code == 0
    return data, root / "run"


def test_train_eval_render(trained, tmp_path, capsys):
    data, run = trained
    assert main(["eval", str(run), "--json", str(tmp_path / "eval.json"), "--threads", "1",
                 "--latency-renders", "3"]) == 0
    figures = json.loads((tmp_path / "eval.json").read_text())
    assert figures["n_images"] == 2 and figures["width"] == 16 and figures["kind"] == "nerf"
    model, _ = load_run(run)
    test = load(data, "test")
    expected = sum(psnr(render(model, test.cameras[i], background=test.background)["rgb"].clamp(0, 1), test.images[i])
                   for i in range(2)) / 2
    assert figures["psnr"] == pytest.approx(expected, abs=1e-4)  # the figure is the rendered test views' PSNR
    assert figures["latency_ms"] > 0 and figures["latency_renders"] == 3 and figures["device"] == "cpu"
    assert "PSNR" in capsys.readouterr().out
    assert main(["render", str(run), "--path", "orbit", "--frames", "3", "--size", "12x10",
                 "--out", str(tmp_path / "orbit.gif")]) == 0
    assert (tmp_path / "orbit.gif").stat().st_size > 0
    assert main(["render", str(run), "--path", "test", "--out", str(tmp_path / "frames"), "--threads", "1"]) == 0
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["0000.png", "0001.png"]
    import imageio.v2 as imageio

    for index in range(2):  # the frames are the test views as fastnerf.render renders them, in 8 bits
        written = torch.from_numpy(imageio.imread(tmp_path / "frames" / f"{index:04d}.png")).int()
        rendered = (render(model, test.cameras[index])["rgb"].clamp(0, 1) * 255 + 0.5).to(torch.uint8).int()
        assert (written - rendered).abs().max() <= 1


def test_supersample_option(trained, tmp_path, capsys):
    _, run = trained
    assert figures_with(run, tmp_path, [])["supersample"] == 2  # the hash teacher's own factor
    assert figures_with(run, tmp_path, ["--supersample", "1"])["supersample"] == 1
    assert main(["render", str(run), "--frames", "2", "--supersample", "3", "--out", str(tmp_path / "o.gif")]) == 0
    capsys.readouterr()
    assert main(["eval", str(run), "--supersample", "0"]) == 2
    err = capsys.readouterr().err
    assert "supersample must be an integer in [1, 8]" in err and "Traceback" not in err


def figures_with(run, tmp_path, options):
    assert main(["eval", str(run), "--json", str(tmp_path / "eval.json"), "--latency-renders", "1", *options]) == 0
    return json.loads((tmp_path / "eval.json").read_text())


def test_resume_continues_the_run_with_its_own_settings(trained, tmp_path, capsys):
    data, _ = trained
    # frequency encoding: no switch to sub-rays, which a larger budget on resume would move
    common = ["train", "teacher", "--data", str(data), "--quiet", "--eval-every", "0", "--encoding", "frequency"]
    assert main(common + ["--out", str(tmp_path / "straight"), "--steps", "4"]) == 0
    assert main(common + ["--out", str(tmp_path / "split"), "--steps", "2"]) == 0
    # --seed 9 would change every draw if --resume were ignored; the run keeps its own seed 0
    resume = ["train", "teacher", "--quiet", "--out", str(tmp_path / "split"), "--resume"]  # no --data: the run's own
    assert main(resume + ["--steps", "4", "--seed", "9"]) == 0
    assert "trained 4 steps" in capsys.readouterr().out
    straight = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    resumed = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)
    assert resumed["step"] == 4 and resumed["extra"]["engine"]["seed"] == 0
    for key, value in straight["model"].items():
        assert torch.equal(value, resumed["model"][key]), key


def test_cuda_on_a_machine_without_it_is_a_user_error(trained, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    data, run = trained
    assert main(["train", "teacher", "--data", str(data), "--out", str(tmp_path / "r"), "--steps", "1",
                 "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "asked for CUDA" in err and "devices here: cpu" in err and "Traceback" not in err
    assert main(["eval", str(run), "--device", "cuda:3"]) == 2
    assert main(["render", str(run), "--device", "tpu", "--out", str(tmp_path / "x.gif")]) == 2


def test_a_new_run_needs_its_data(tmp_path, capsys):
    assert main(["train", "teacher", "--out", str(tmp_path / "run"), "--steps", "1"]) == 2
    assert "--data required (unless --resume" in capsys.readouterr().err


def test_missing_dataset_exits_2_without_traceback(tmp_path, capsys):
    code = main(["train", "teacher", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "run"), "--steps", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "no such file or folder" in err and "Traceback" not in err


def test_bad_checkpoints_exit_2(trained, tmp_path, capsys):
    _, run = trained
    payload = torch.load(run / "checkpoint.pt", weights_only=True)
    payload["format_version"] = FORMAT_VERSION + 1
    torch.save(payload, tmp_path / "future.pt")
    assert main(["eval", str(tmp_path / "future.pt")]) == 2
    assert f"format version {FORMAT_VERSION + 1}" in capsys.readouterr().err
    data = (run / "checkpoint.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 3])
    assert main(["render", str(tmp_path / "cut.pt"), "--out", str(tmp_path / "x.gif")]) == 2
    assert "truncated or corrupt" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "nothing")]) == 2
    assert main(["render", str(run), "--size", "big", "--out", str(tmp_path / "x.gif")]) == 2
    assert main(["render", str(run), "--frames", "2", "--out", str(tmp_path / "x.webm")]) == 2


@pytest.mark.parametrize("fmt", ["llff", "ngp"])
def test_every_format_trains_evaluates_and_renders(fmt, tmp_path):
    from fastnerf.cameras import look_at, Camera
    from fastnerf.data.writers import write_llff, write_ngp

    images = torch.rand(9, 12, 16, 3, generator=torch.Generator().manual_seed(0))
    if fmt == "llff":
        eyes = torch.stack([torch.tensor([0.3 * (i % 3) - 0.3, 0.2 * (i // 3) - 0.2, 0.0]) for i in range(9)])
        c2w = look_at(eyes, eyes + torch.tensor([0.0, 0.0, -1.0]), up=(0.0, 1.0, 0.0))
        write_llff(tmp_path / "data", images, Camera(c2w, 14.0, 14.0, 8.0, 6.0, 16, 12), torch.tensor([[2.0, 8.0]] * 9))
    else:
        angles = torch.linspace(0, 6.0, 9)
        eyes = torch.stack([4 * torch.cos(angles), 4 * torch.sin(angles), torch.full((9,), 1.5)], -1)
        write_ngp(tmp_path / "data", images, Camera(look_at(eyes, (0.0, 0.0, 0.0)), 14.0, 14.0, 8.0, 6.0, 16, 12))
    run = str(tmp_path / "run")
    assert main(["train", "teacher", "--data", str(tmp_path / "data"), "--out", run, "--steps", "2", "--quiet"]) == 0
    split = "test" if fmt == "llff" else "train"
    assert main(["eval", run, "--split", split]) == 0
    assert main(["render", run, "--frames", "2", "--out", str(tmp_path / "path.gif")]) == 0
