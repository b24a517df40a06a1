"""Camera path files (what `fastnerf view` records) and `fastnerf render --path FILE`, MP4 included."""

import json
import math

import pytest
import torch

from fastnerf.camera_path import load_camera_path, save_camera_path
from fastnerf.cameras import orbit_path
from fastnerf.cli import main
from fastnerf.errors import UserError
from fastnerf.models import build_model
from fastnerf.rendering import render
from fastnerf.train import load_run, save_checkpoint

TINY_TEACHER = dict(hash_levels=2, hash_log2_size=8, hash_max_res=32, hidden=8, grid_resolution=4)


def test_a_saved_path_loads_as_the_same_cameras(tmp_path):
    orbit = orbit_path(5, 4.0, 20.0, 24, 16, math.radians(50))
    fov_y = 2 * math.atan(0.5 * 16 / float(orbit.fy[0]))
    path = save_camera_path(tmp_path / "path.json", orbit.c2w, [fov_y] * 5, 24, 16, fps=10.0)
    cameras, fps = load_camera_path(path)
    assert fps == 10.0 and len(cameras) == 5 and (cameras.width, cameras.height) == (24, 16)
    assert torch.allclose(cameras.c2w, orbit.c2w, atol=1e-6)
    assert torch.allclose(cameras.fy, orbit.fy, rtol=1e-5) and torch.allclose(cameras.fx, orbit.fy, rtol=1e-5)
    document = json.loads(path.read_text())  # nerfstudio's camera_path.json layout
    assert document["camera_path"][0]["fov"] == pytest.approx(math.degrees(fov_y))
    assert len(document["camera_path"][0]["camera_to_world"]) == 16


@pytest.mark.parametrize("document, message", [
    ("not json", "not a JSON camera path"),
    ({"frames": []}, "'camera_path' list"),
    ({"camera_path": []}, "has no frames"),
    ({"camera_path": [{"fov": 50}], "render_width": 8, "render_height": 8}, "malformed"),
    ({"camera_path": [{"camera_to_world": [1] * 12, "fov": 50}], "render_width": 8, "render_height": 8}, "16 numbers"),
    ({"camera_path": [{"camera_to_world": [2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1], "fov": 50}],
      "render_width": 8, "render_height": 8}, "not a rigid"),
    ({"camera_path": [{"camera_to_world": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1], "fov": 190}],
      "render_width": 8, "render_height": 8}, "(0, 180) degrees"),
])
def test_bad_path_files_are_user_errors_that_say_what_is_wrong(tmp_path, document, message):
    path = tmp_path / "bad.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_camera_path(path)


@pytest.fixture
def run(tmp_path):
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "run", model=build_model("nerf", **TINY_TEACHER), task="teacher",
                    dataset={"path": str(tmp_path / "no-data-needed")})
    return tmp_path / "run"


def test_render_path_file_to_mp4_renders_its_frames(run, tmp_path):
    import imageio.v2 as imageio

    orbit = orbit_path(3, 2.5, 20.0, 15, 9, math.radians(50))  # odd sizes: H.264 wants even ones
    fov_y = 2 * math.atan(0.5 * 9 / float(orbit.fy[0]))
    path = save_camera_path(tmp_path / "path.json", orbit.c2w, [fov_y] * 3, 15, 9, fps=6.0)
    out = tmp_path / "orbit.mp4"
    assert main(["render", str(run), "--path", str(path), "--out", str(out), "--threads", "1"]) == 0
    reader = imageio.get_reader(out)
    frames = [torch.from_numpy(frame).float() / 255 for frame in reader]
    assert reader.get_meta_data()["fps"] == pytest.approx(6.0)
    assert len(frames) == 3 and frames[0].shape == (10, 16, 3)  # the last row and column repeated, not resampled
    model, _ = load_run(run)
    expected = render(model, load_camera_path(path)[0])["rgb"].clamp(0, 1)
    assert (torch.stack(frames)[:, :9, :15] - expected).abs().mean() < 0.05  # H.264 is lossy, but it is these frames


def test_render_path_names_what_it_takes(run, capsys):
    assert main(["render", str(run), "--path", "circle", "--out", "x.gif"]) == 2
    assert "--path circle: use one of orbit, spiral, test or a camera path .json file" in capsys.readouterr().err


def test_mp4_holds_the_frames_given(tmp_path):
    import imageio.v2 as imageio

    from fastnerf.frames import write_frames

    rows, cols = torch.meshgrid(torch.linspace(0, 1, 9), torch.linspace(0, 1, 15), indexing="ij")
    frames = torch.stack([torch.stack([rows, cols, torch.full_like(rows, shade)], -1) for shade in (0.1, 0.5, 0.9)])
    write_frames(frames, tmp_path / "f.mp4", fps=5.0)
    read = torch.stack([torch.from_numpy(f).float() / 255 for f in imageio.get_reader(tmp_path / "f.mp4")])
    assert read.shape == (3, 10, 16, 3)
    errors = (read[:, :9, :15] - frames).abs().mean(dim=(1, 2, 3))
    assert (errors < 0.03).all(), errors  # each frame is its own (they differ by 0.4 in blue)
