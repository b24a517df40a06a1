"""`fastnerf view` in a real browser: headless Chromium drags the camera, and the frame the page
shows must be what `fastnerf.render` gives at the camera the page reports (PSNR >= 25 dB).

Needs /usr/bin/chromium and Playwright's Python package; without them the browser tests skip,
except under CI=true, where they fail (.ci/run installs Chromium).
"""

import json
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fastnerf.camera_path import load_camera_path
from fastnerf.cameras import Camera
from fastnerf.cli import main
from fastnerf.rendering import render
from fastnerf.train import load_run
from tiny_runs import tiny_teacher_run

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--use-gl=swiftshader", "--enable-unsafe-swiftshader"]
ROOT = Path(__file__).resolve().parents[1]
DOCS_SCREENSHOT = ROOT / "docs" / "viewer.png"


def browser_or_skip():
    """Playwright's sync API, or a skip (a failure under CI=true) when the browser is missing."""
    problem = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        problem = "playwright is not installed (pip install playwright)"
    if problem is None and not Path(CHROMIUM).is_file():
        problem = f"{CHROMIUM} is missing (apt-get install -y chromium)"
    try:
        import viser  # noqa: F401
    except ImportError:
        problem = problem or "viser is not installed (pip install 'fastnerf[viewer]')"
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser test under CI: {problem}")
        pytest.skip(problem)
    return sync_playwright


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return tiny_teacher_run(tmp_path_factory.mktemp("viewer"), n_test=1)[1]


def start(command: list[str], pattern: str, timeout: float = 90.0):
    """Start ``command``; return ``(process, url)`` once it prints ``pattern`` followed by the URL."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                               cwd=ROOT)
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if pattern in line:
            url = line.split(pattern, 1)[1].split()[0]
            return process, url
    process.kill()
    raise AssertionError("viewer did not start:\n" + "".join(lines))


def stop(process) -> str:
    process.send_signal(2)  # Ctrl-C
    try:
        output, _ = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError("the viewer did not stop on Ctrl-C")
    return output


# The "last frame" text box of the panel (viser does not tie its labels to inputs).
FRAME_RECORD_JS = """() => Array.from(document.querySelectorAll('textarea')).map(t => t.value)
                                 .find(v => v.includes('"c2w"')) || ''"""
CLICK_CHECKBOX_JS = """(label) => {
    const text = Array.from(document.querySelectorAll('body *')).find(
        e => e.children.length === 0 && e.textContent.trim() === label);
    let node = text;
    while (node && !node.querySelector('input[type=checkbox]')) node = node.parentElement;
    node.querySelector('input[type=checkbox]').click();
}"""


def settled_frame(page, after: str | None, timeout: float = 60.0) -> dict:
    """The camera record of the full-resolution frame shown, once a new one for the canvas as it is
    now has rested for a second."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        value = page.evaluate(FRAME_RECORD_JS)
        if value != last:
            last, since = value, time.monotonic()
        elif value and value != after and time.monotonic() - since > 1.0:
            record = json.loads(value)
            box = page.locator("canvas").first.bounding_box()
            if abs(record["canvas"][0] / record["canvas"][1] - box["width"] / box["height"]) < 0.02:
                return record
        time.sleep(0.2)
    raise AssertionError(f"no settled frame within {timeout} s (last record: {last!r})")


def canvas_image(page) -> torch.Tensor:
    """The 3D canvas as ``[H,W,3]`` in [0, 1]."""
    import imageio.v2 as imageio

    canvas = page.locator("canvas").first
    pixels = imageio.imread(canvas.screenshot(type="png"))[..., :3]
    return torch.from_numpy(pixels).float() / 255


def shrink(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Area-resample ``image [H,W,3]`` to ``width x height``."""
    resized = torch.nn.functional.interpolate(image.permute(2, 0, 1)[None], size=(height, width), mode="area")
    return resized[0].permute(1, 2, 0)


def expected_frame(run, record: dict) -> torch.Tensor:
    model, _ = load_run(run)
    return render(model, expected_camera(record))["rgb"].clamp(0, 1)


def drag_and_compare(url: str, run, *, wait_for_text: str | None = None, screenshot=None) -> None:
    """Open ``url``, drag the camera, and check that the frame the page shows is what
    ``fastnerf.render`` gives for ``run`` at the camera the page reports (PSNR >= 25 dB)."""
    sync_playwright = browser_or_skip()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 720, "height": 480})
        page.goto(url)
        if wait_for_text is not None:
            page.get_by_text(wait_for_text).first.wait_for(timeout=60_000)
        first = settled_frame(page, None)
        page.evaluate(CLICK_CHECKBOX_JS, "training cameras")  # frustums would cover parts of the image
        for close in page.locator(".mantine-Notification-closeButton").all():
            close.click()
        box = page.locator("canvas").first.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + 90, y + 25, steps=12)
        page.mouse.up()
        record = settled_frame(page, json.dumps(first))
        time.sleep(1.0)  # the image message precedes the record; give the texture a moment
        shown = canvas_image(page)
        if screenshot is not None:
            page.screenshot(path=str(screenshot))
        browser.close()
    assert record["c2w"] != first["c2w"], "the drag did not move the camera"
    expected = expected_frame(run, record)
    height, width = expected.shape[:2]
    assert abs(shown.shape[1] / shown.shape[0] - width / height) < 0.05  # the render has the canvas's shape
    seen = shrink(shown, width, height)
    # The image region: all of it but the corner where viser draws its axes gizmo (bottom left).
    mask = torch.ones(height, width, dtype=torch.bool)
    mask[int(height * 0.8):, : int(width * 0.15)] = False
    score = -10 * math.log10(float(((seen - expected)[mask] ** 2).mean()))
    assert score >= 25.0, f"the page shows another image than fastnerf.render: PSNR {score:.1f} dB"


def test_view_shows_what_fastnerf_render_gives_after_a_drag(tiny_run):
    browser_or_skip()
    port = free_port()
    process, url = start([sys.executable, "-m", "fastnerf", "view", str(tiny_run), "--port", str(port),
                          "--resolution", "64", "--threads", "1"], "fastnerf view: ")
    try:
        assert url == f"http://127.0.0.1:{port}"
        screenshot = DOCS_SCREENSHOT if os.environ.get("FASTNERF_VIEWER_SCREENSHOT") else None
        drag_and_compare(url, tiny_run, screenshot=screenshot)
    finally:
        output = stop(process)
    assert "stopping" in output and "Traceback" not in output


def test_train_viewer_shows_the_model_in_training(tiny_run, tmp_path):
    browser_or_skip()
    data = load_run(tiny_run)[1]["dataset"]["path"]
    port = free_port()
    run = tmp_path / "live"
    process, url = start([sys.executable, "-m", "fastnerf", "train", "teacher", "--data", str(data), "--out",
                          str(run), "--steps", "3", "--quiet", "--eval-every", "0", "--threads", "1", "--viewer",
                          "--port", str(port), "--viewer-resolution", "64"], "viewer: ")
    try:
        # the final frame: the averaged weights the checkpoint holds, with the step it reached
        drag_and_compare(url, run, wait_for_text="trained: step 3 / 3")
    finally:
        output = stop(process)
    assert "training finished; the viewer stays" in output and "Traceback" not in output


def test_port_in_use_is_an_error_that_names_it(tiny_run, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["view", str(tiny_run), "--port", str(port)]) == 2
    assert f"port {port} on 127.0.0.1 is in use" in capsys.readouterr().err


def test_the_engine_reports_every_step_with_the_averaged_weights(tiny_run, tmp_path):
    from fastnerf.train import TeacherTask, load_checkpoint, train

    data = load_run(tiny_run)[1]["dataset"]["path"]
    reports = []

    def on_step(report):
        reports.append((report.step, report.loss, report.averaged_state() if report.step == 3 else None))

    train(TeacherTask(data=data, model_config={"hash_log2_size": 10, "grid_resolution": 8}), tmp_path / "run",
          steps=3, progress=False, eval_every=0, on_step=on_step)
    assert [step for step, _, _ in reports] == [1, 2, 3] and all(math.isfinite(loss) for _, loss, _ in reports)
    checkpoint = load_checkpoint(tmp_path / "run")
    for name, value in checkpoint["averaged"]["params"].items():  # what the viewer gets is what the checkpoint holds
        assert torch.equal(reports[-1][2][name], value), name


def test_the_live_view_copies_no_weights_while_no_browser_is_connected(tiny_run):
    pytest.importorskip("viser")
    from fastnerf.train.engine import StepReport
    from fastnerf.viewer.live import LiveView

    model, checkpoint = load_run(tiny_run)
    copies = []

    def averaged_state():
        copies.append(1)
        return model.state_dict()

    live = LiveView("tiny", host="127.0.0.1", port=free_port(), log=lambda message: None)
    try:
        for step in range(1, 6):
            live.on_step(StepReport(step, 5, 0.25, {"psnr": 12.5}, model, averaged_state,
                                    lambda: checkpoint["dataset"]))
        assert len(copies) == 1  # the viewer's own copy of the model, made once
        assert live.source.status == "training: step 5 / 5, loss 0.25, held-out PSNR 12.50 dB"
    finally:
        live.stop()


def test_a_browser_render_runs_on_the_training_thread_with_the_weights_of_that_step(tiny_run, monkeypatch):
    pytest.importorskip("viser")
    import threading

    from fastnerf.train.engine import StepReport
    from fastnerf.viewer import sources
    from fastnerf.viewer.live import LiveView
    from fastnerf.viewer.server import Viewer

    model, checkpoint = load_run(tiny_run)
    copies, rendered_on = [], []

    def averaged_state():
        copies.append(1)
        return {name: value.clone() for name, value in model.state_dict().items()}

    def spied_render(*args, **kwargs):
        rendered_on.append(threading.current_thread())
        return render(*args, **kwargs)

    monkeypatch.setattr(sources, "render", spied_render)
    monkeypatch.setattr(Viewer, "connected", property(lambda self: 1))  # a browser is there
    live = LiveView("tiny", host="127.0.0.1", port=free_port(), log=lambda message: None)
    try:
        def step(number):
            live.on_step(StepReport(number, 100, 0.25, None, model, averaged_state, lambda: checkpoint["dataset"]))

        for number in range(1, 4):
            step(number)
        assert len(copies) == 1  # the viewer's own model, made at the start; nothing drawn, nothing copied
        with torch.no_grad():  # training moves the weights on
            for parameter in model.parameters():
                parameter.mul_(1.5)
        camera, frames = live.source.cameras[0], []
        asker = threading.Thread(target=lambda: frames.append(live.source.render(camera)))
        rendered_on.clear()
        asker.start()
        number = 4
        while asker.is_alive() and number < 2000:
            step(number)
            number += 1
            asker.join(0.01)
        assert frames and rendered_on == [threading.current_thread()]  # drawn between steps, by training's thread
        assert len(copies) == 2  # the weights were copied for it
        expected = sources.to_display(render(model, camera), "rgb")
        assert abs(frames[0].image.astype(int) - expected.astype(int)).max() <= 1  # the weights as they were when it was drawn
        assert live.renders.jobs_run == 1 and live.renders.busy_seconds > 0
    finally:
        live.stop()


def test_renders_between_steps_take_their_share_of_the_time_and_no_more():
    import threading

    from fastnerf.viewer.between_steps import BetweenSteps

    now = [0.0]
    renders = BetweenSteps(share=0.2, burst=0.5, clock=lambda: now[0])
    ran_on, stop = [], threading.Event()

    def one_second_render():
        ran_on.append(threading.current_thread())
        now[0] += 1.0
        return "frame"

    def browser():  # a camera that never rests: it asks again as soon as a frame comes
        while not stop.is_set() and renders.run(one_second_render) == "frame":
            pass

    asker = threading.Thread(target=browser)
    asker.start()
    try:
        for _ in range(600):  # 60 s of 0.1 s steps
            deadline = time.monotonic() + 5.0
            while not renders.waiting and asker.is_alive() and time.monotonic() < deadline:
                time.sleep(0.0005)
            now[0] += 0.1
            renders.serve()
    finally:
        stop.set()
        renders.stop_serving()  # the waiting render now runs on the asking thread
        asker.join(10)
    assert not asker.is_alive()
    assert 0.2 * 60 - 1.5 <= renders.busy_seconds <= 0.2 * (60 + renders.busy_seconds) + 0.5 + 1.0
    assert set(ran_on[:renders.jobs_run]) == {threading.current_thread()} and len(ran_on) >= renders.jobs_run


def test_a_render_failing_between_steps_fails_the_asking_thread_not_training():
    import threading

    from fastnerf.viewer.between_steps import BetweenSteps

    renders, errors = BetweenSteps(), []

    def fails():
        raise RuntimeError("out of memory, say")

    def ask():
        try:
            renders.run(fails)
        except RuntimeError as error:
            errors.append(str(error))

    asker = threading.Thread(target=ask)
    asker.start()
    while not renders.waiting:
        time.sleep(0.001)
    renders.serve()  # on the training thread: no exception here
    asker.join(10)
    assert errors == ["out of memory, say"]


# ------------------------------------------------------------------------------ without a browser
def test_browser_and_fastnerf_cameras_convert_both_ways():
    from fastnerf.cameras import orbit_path
    from fastnerf.viewer.poses import c2w_from_viser, viser_from_c2w

    for c2w in orbit_path(4, 3.0, 25.0, 8, 8, 0.9).c2w.double().numpy():
        wxyz, position = viser_from_c2w(c2w)
        assert torch.allclose(torch.from_numpy(c2w_from_viser(wxyz, position)), torch.from_numpy(c2w), atol=1e-9)
    # viser's camera looks along its +Z (OpenCV); fastnerf's along -Z (OpenGL): the same direction
    c2w = c2w_from_viser((1.0, 0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
    assert c2w[:3, 2].tolist() == [0.0, 0.0, -1.0] and c2w[:3, 1].tolist() == [0.0, -1.0, 0.0]


def test_fixed_camera_kinds_render_their_own_camera_letterboxed_to_the_canvas():
    import numpy as np

    from fastnerf.cameras import orbit_path
    from fastnerf.models import build_model
    from fastnerf.viewer.session import letterbox
    from fastnerf.viewer.sources import ViewedModel

    model = build_model("pose", width=8, height=6, fx=8.0, fy=8.0, cx=4.0, cy=3.0, hidden=8, code_dim=8, channels=8)
    cameras = orbit_path(3, 3.0, 20.0, 8, 6, 2 * math.atan(0.5))
    source = ViewedModel("pose", model, cameras, torch.zeros(3, 6, 8, 3))
    assert source.fixed_camera is not None and source.outputs == ["rgb"]
    view = source.camera_for(cameras.c2w[1].numpy(), 1.2, 300, 100)  # the browser's field of view and size...
    assert (view.width, view.height, float(view.fx), float(view.cx)) == (8, 6, 8.0, 4.0)  # ...give way to its own
    frame = source.render(view)
    assert frame.image.shape == (6, 8, 3) and frame.image.dtype == np.uint8
    assert letterbox(frame.image, 2.0).shape == (6, 12, 3) and letterbox(frame.image, 1.0).shape == (6, 6, 3)
    assert (letterbox(frame.image, 2.0)[:, 2:10] == frame.image).all()


def stub_session(run, tmp_path):
    """A ``Session`` on a stand-in browser tab (a 40x30 canvas), its render thread stopped."""
    from types import SimpleNamespace
    from unittest.mock import MagicMock

    from fastnerf.viewer.server import Viewer
    from fastnerf.viewer.session import Session
    from fastnerf.viewer.sources import load_viewed_run

    source = load_viewed_run(run)
    client = MagicMock()
    client.camera.configure_mock(wxyz=(1.0, 0.0, 0.0, 0.0), position=(0.0, 0.0, 4.0), fov=0.8, image_width=40,
                                 image_height=30, aspect=40 / 30)
    viewer = SimpleNamespace(sources=[source], resolution=32, verbose=False, path_dir=tmp_path)
    viewer.next_path_file = lambda: Viewer.next_path_file(viewer)
    session = Session(viewer, client)
    session.stop()
    session.thread.join()
    session.resolution.value, session.output_choice.value = 32, "depth"
    return session, source, client


def test_a_render_error_is_shown_and_the_viewer_carries_on(tiny_run, tmp_path, monkeypatch):
    from fastnerf.viewer.sources import FAR, ViewedModel, to_display

    session, source, client = stub_session(tiny_run, tmp_path)
    assert source.outputs == ["rgb", "depth", "opacity"]

    def fails(self, camera, output="rgb"):
        raise RuntimeError("out of memory, say")

    monkeypatch.setattr(ViewedModel, "render", fails)
    session._draw(moving=False)  # no exception escapes
    assert "render error" in session.timing.content and "out of memory, say" in session.timing.content
    assert "out of memory, say" in client.add_notification.call_args.args[1]
    monkeypatch.undo()
    session._draw(moving=False)
    image = client.scene.set_background_image.call_args.args[0]
    assert image.shape == (24, 32, 3)  # the canvas's shape at the resolution asked
    record = json.loads(session.frame_info.value)
    assert (record["width"], record["height"], record["output"]) == (32, 24, "depth")
    result = render(load_run(tiny_run)[0], expected_camera(record))
    assert (image == to_display(result, "depth")).all()  # the depth of that camera, drawn grey
    near = result["depth"][result["opacity"] > 0.5]
    assert near.numel() == 0 or image[..., 0].std() > 0  # not a blank
    # the depth handed to the browser (so the frustums hide behind the scene): along the optical axis, far where empty
    depth_z = torch.from_numpy(client.scene.set_background_image.call_args.kwargs["depth"])
    hit = result["opacity"] > 0.5
    assert depth_z.shape == (24, 32) and bool((depth_z[~hit] == FAR).all())
    assert bool((depth_z[hit] <= result["depth"][hit] / result["opacity"][hit] + 1e-4).all())


def test_while_training_a_frame_is_sized_to_hold_a_step_up_at_most_the_longest_frame(tiny_run, tmp_path):
    session, source, client = stub_session(tiny_run, tmp_path)
    client.camera.configure_mock(image_width=200, image_height=150, aspect=4 / 3)
    session.resolution.value, session.output_choice.value = 2048, "colour"

    def shown():
        return client.scene.set_background_image.call_args.args[0].shape[:2]

    source.longest_frame = 1.0  # as train --viewer sets it
    session._draw(moving=False)
    assert shown() == (24, 32)  # nothing timed yet: a small first frame, to time
    session.seconds_per_pixel = 1.0 / 7600  # 7600 pixels a second: 100x75 fit in the second
    session._draw(moving=False)
    assert shown() == (75, 100)
    source.longest_frame = None  # training over: the canvas's resolution
    session._draw(moving=False)
    assert shown() == (150, 200)


def expected_camera(record: dict) -> Camera:
    return Camera(torch.tensor(record["c2w"]), record["fx"], record["fy"], record["cx"], record["cy"],
                  record["width"], record["height"])


def test_a_recorded_camera_path_renders_with_fastnerf_render(tiny_run, tmp_path):
    import imageio.v2 as imageio

    from fastnerf.cameras import orbit_path
    from fastnerf.viewer.poses import viser_from_c2w

    session, _, client = stub_session(tiny_run, tmp_path)
    session.record.value = True
    poses = orbit_path(3, 4.0, 20.0, 8, 8, 0.8).c2w.double().numpy()
    for c2w in poses:  # the browser's camera moves; the render loop samples it
        wxyz, position = viser_from_c2w(c2w)
        client.camera.configure_mock(wxyz=wxyz, position=position)
        session.last_sample = 0.0
        session._sample_camera()
    session._save_path()
    [path] = list(tmp_path.glob("camera_path-*.json"))
    assert client.send_file_download.call_args.args[0] == path.name
    document = json.loads(path.read_text())
    assert (document["render_width"], document["render_height"], len(document["camera_path"])) == (32, 24, 3)
    assert main(["render", str(tiny_run), "--path", str(path), "--out", str(tmp_path / "frames")]) == 0
    frames = sorted((tmp_path / "frames").iterdir())
    cameras = load_camera_path(path)[0]
    assert torch.allclose(cameras.c2w.double(), torch.from_numpy(poses), atol=1e-5)
    expected = render(load_run(tiny_run)[0], cameras[2])["rgb"].clamp(0, 1)
    last = torch.from_numpy(imageio.imread(frames[-1])).float() / 255
    assert len(frames) == 3 and (last - expected).abs().max() < 1 / 255 + 1e-6
