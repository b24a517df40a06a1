"""What ``fastnerf train --viewer`` costs training (issue 22: at most 10% slower with no browser
connected, at most 30% with one): the same teacher run, trained one way after another:

    none            no viewer
    viewer          --viewer, no browser
    browser         --viewer, headless Chromium on the page, the camera resting
    browser-moving  --viewer, headless Chromium dragging the camera for a second every few seconds

    python -m benchmarks.viewer_overhead [--steps 1500] [--threads 2] [--repeat 1] [--json FILE]
    python -m benchmarks.viewer_overhead --quick        # a smoke test (a tiny scene, a few steps): no figures

Each run is ``fastnerf train teacher`` in a process of its own with ``--eval-every 0
--checkpoint-every 0``, so that its loop holds the steps and the viewer's work and nothing else.
Training speed is ``loop_steps / loop_seconds`` of its train.json: the loop after the first step,
everything the viewer does between steps included, start-up (model, data, the viewer starting)
excluded; ``steps / wall_seconds``, everything included, is beside it. Slowdowns are against the run
without a viewer. Chromium (software WebGL) runs on the same machine, launched before training
starts and connected as soon as the viewer prints its address; its own CPU time (and its driver's)
is reported beside, as is the training process's: what a browser on that machine costs is not the
viewer's work. Results go to benchmarks/results/viewer_overhead-cpu.json unless ``--json`` says.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = ("none", "viewer", "browser", "browser-moving")
LIMITS = {"viewer": 10.0, "browser": 30.0, "browser-moving": 30.0}  # issue 22, slowdown in percent
SCENE = "tabletop"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--use-gl=swiftshader", "--enable-unsafe-swiftshader"]
MOVE_EVERY = 5.0  # seconds between the starts of two drags (browser-moving)
DRAG_MOVES, DRAG_PAUSE_MS = 20, 50  # a drag: 20 mouse moves 50 ms apart, about a second
FINISHED = "training finished; the viewer stays"
VIEWER_LINE = re.compile(r"viewer: (\d+) frames drawn while training, ([\d.]+) s on the training thread")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------ processes
def _default_sigint() -> None:
    # A process started in the background by a non-interactive shell (nohup, `cmd &` in a script)
    # ignores SIGINT, and its children inherit that: the benchmark's Ctrl-C would never arrive.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Training:
    """``fastnerf train ...`` in a process of its own; its output collected line by line."""

    def __init__(self, command: list[str]):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        env=env, cwd=ROOT, preexec_fn=_default_sigint)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def line_with(self, text: str) -> str | None:
        return next((line for line in list(self.lines) if text in line), None)

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.line_with(text)
            if line is not None:
                return line
            if self.process.poll() is not None:
                self.reader.join(5)
                break
            time.sleep(0.05)
        self.process.kill()
        raise RuntimeError(f"no {text!r} from {' '.join(self.process.args)}:\n{self.output()}")

    def finish_alone(self) -> float:
        """Wait for the process to end by itself; its CPU seconds (``wait4``)."""
        _, status, usage = os.wait4(self.process.pid, 0)
        self.process.returncode = os.waitstatus_to_exitcode(status)
        self.reader.join(5)
        self._check()
        return usage.ru_utime + usage.ru_stime

    def interrupt(self) -> None:
        """Ctrl-C (a viewer stays up after training until then)."""
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise RuntimeError("the training process did not stop on Ctrl-C") from None
        self.reader.join(5)
        self._check()

    def _check(self) -> None:
        if self.process.returncode != 0 or "Traceback" in self.output():
            raise RuntimeError(f"training failed (exit {self.process.returncode}):\n{self.output()}")

    def output(self) -> str:
        return "".join(self.lines)


def process_table() -> dict[int, tuple[int, float]]:
    """{pid: (parent pid, CPU seconds)} of every process readable in /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        table[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    return table


def tree_cpu_seconds(root: int, *, leave_out: int | None = None) -> float:
    """CPU seconds of ``root``'s descendants (not ``root`` itself), less ``leave_out``'s subtree."""
    table = process_table()
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    total, stack = 0.0, [pid for pid in children.get(root, []) if pid != leave_out]
    while stack:
        pid = stack.pop()
        total += table[pid][1]
        stack += [child for child in children.get(pid, []) if child != leave_out]
    return total


def process_cpu_seconds(pid: int) -> float:
    return process_table()[pid][1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ------------------------------------------------------------------------------ the browser
class Browser:
    """Headless Chromium through Playwright (as tests/test_viewer.py drives it)."""

    def __init__(self):
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            raise SystemExit("the browser runs need playwright (pip install playwright)") from None
        if not Path(CHROMIUM).is_file():
            raise SystemExit(f"the browser runs need {CHROMIUM} (apt-get install -y chromium)")
        self.playwright = sync_playwright().start()
        self.browser = self.playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        self.page = self.browser.new_page(viewport={"width": 720, "height": 480})
        self.direction = 1

    def open(self, url: str) -> None:
        self.page.goto(url)
        self.page.locator("canvas").first.wait_for(timeout=60_000)

    def drag(self) -> None:
        """Drag the camera for about a second (to and fro on alternate calls)."""
        box = self.page.locator("canvas").first.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        self.page.mouse.move(x, y)
        self.page.mouse.down()
        for move in range(1, DRAG_MOVES + 1):
            self.page.mouse.move(x + self.direction * 6 * move, y + self.direction * move)
            self.page.wait_for_timeout(DRAG_PAUSE_MS)
        self.page.mouse.up()
        self.direction = -self.direction

    def idle(self, seconds: float) -> None:
        self.page.wait_for_timeout(seconds * 1e3)  # lets Playwright handle the page's events meanwhile

    def close(self) -> None:
        self.browser.close()
        self.playwright.stop()


# ------------------------------------------------------------------------------ one run
def train_command(data: Path, out: Path, args, mode: str) -> list[str]:
    command = [sys.executable, "-m", "fastnerf", "train", "teacher", "--data", str(data), "--out", str(out),
               "--steps", str(args.steps), "--threads", str(args.threads), "--seed", "0", "--eval-every", "0",
               "--checkpoint-every", "0", "--quiet"]
    if mode != "none":
        command += ["--viewer", "--port", str(free_port()), "--viewer-resolution", str(args.resolution)]
    return command


def run_once(mode: str, data: Path, out: Path, args) -> dict:
    """One training run in ``mode``: its train.json figures, the viewer's and the CPU times."""
    shutil.rmtree(out, ignore_errors=True)
    browser = Browser() if mode.startswith("browser") else None  # ready before training starts
    startup = 300.0 + 10.0 * args.steps  # seconds allowed for anything to happen: generous, it is no figure
    browser_cpu, training = None, None
    try:
        training = Training(train_command(data, out, args, mode))
        if mode == "none":
            training_cpu = training.finish_alone()
        else:
            url = training.wait_for("viewer: http", startup).split("viewer: ", 1)[1].split()[0]
            if browser is not None:
                browser.open(url)
                browser_cpu = -tree_cpu_seconds(os.getpid(), leave_out=training.process.pid)
            next_move = time.monotonic()
            while training.line_with(FINISHED) is None:
                if training.process.poll() is not None and training.line_with(FINISHED) is None:
                    training.reader.join(5)
                    raise RuntimeError(f"training ended before {FINISHED!r}:\n{training.output()}")
                if mode == "browser-moving" and time.monotonic() >= next_move:
                    next_move += MOVE_EVERY
                    browser.drag()
                elif browser is not None:
                    browser.idle(0.2)
                else:
                    time.sleep(0.2)
            training_cpu = process_cpu_seconds(training.process.pid)
            if browser is not None:
                browser_cpu += tree_cpu_seconds(os.getpid(), leave_out=training.process.pid)
            training.interrupt()
    finally:
        if browser is not None:
            browser.close()
        if training is not None and training.process.poll() is None:
            training.process.kill()
    summary = json.loads((out / "train.json").read_text())
    viewer = VIEWER_LINE.search(training.output())
    return {"mode": mode, "steps": summary["steps"], "loop_steps": summary["loop_steps"],
            "loop_seconds": summary["loop_seconds"], "wall_seconds": summary["wall_seconds"],
            "train_seconds": summary["train_seconds"],
            "steps_per_second": summary["loop_steps"] / summary["loop_seconds"],
            "steps_per_second_all": summary["steps"] / summary["wall_seconds"],
            "viewer_frames": int(viewer.group(1)) if viewer else None,
            "viewer_seconds": float(viewer.group(2)) if viewer else None,
            "training_cpu_seconds": training_cpu, "browser_cpu_seconds": browser_cpu}


# ------------------------------------------------------------------------------ all runs
def summarise(runs: list[dict]) -> list[dict]:
    """Per mode: the medians over its runs and the slowdowns against ``none``."""
    rows = []
    for mode in MODES:
        mine = [run for run in runs if run["mode"] == mode]
        if not mine:
            continue
        row = {"mode": mode, "runs": len(mine)}
        for key in ("steps_per_second", "steps_per_second_all", "viewer_frames", "viewer_seconds",
                    "training_cpu_seconds", "browser_cpu_seconds"):
            values = [run[key] for run in mine if run[key] is not None]
            row[key] = statistics.median(values) if values else None
        rows.append(row)
    base = next((row for row in rows if row["mode"] == "none"), None)
    for row in rows:
        for key, slowdown in (("steps_per_second", "slowdown_percent"), ("steps_per_second_all", "slowdown_all_percent")):
            row[slowdown] = None if base is None or row is base else 100.0 * (1.0 - row[key] / base[key])
        row["limit_percent"] = LIMITS.get(row["mode"])
    return rows


def format_table(rows: list[dict], meta: dict) -> str:
    def number(value, spec, suffix=""):  # right-aligned in the spec's width, "-" for none
        width = int(spec.split(".")[0])
        return f"{'-':>{width}}" if value is None else f"{value:{spec}}{suffix}"

    header = (f"{'mode':<15} {'steps/s':>8} {'slowdown':>9} {'limit':>6} {'steps/s all':>12} {'slowdown all':>13} "
              f"{'frames':>7} {'render s':>9} {'train CPU s':>12} {'browser CPU s':>14}")
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(f"{row['mode']:<15} {number(row['steps_per_second'], '8.2f')} "
                     f"{number(row['slowdown_percent'], '8.1f', '%'):>9} {number(row['limit_percent'], '5.0f', '%'):>6} "
                     f"{number(row['steps_per_second_all'], '12.2f')} {number(row['slowdown_all_percent'], '12.1f', '%'):>13} "
                     f"{number(row['viewer_frames'], '7.0f')} {number(row['viewer_seconds'], '9.1f')} "
                     f"{number(row['training_cpu_seconds'], '12.1f')} {number(row['browser_cpu_seconds'], '14.1f')}")
    lines.append("steps/s: the training loop after its first step (train.json loop_steps / loop_seconds); "
                 "steps/s all: steps / wall_seconds, start-up included; slowdowns against 'none'; frames and "
                 "render s: what the viewer drew on the training thread; browser CPU s: Chromium and its driver, "
                 "from the page's opening to the end of training; medians of "
                 f"{max(row['runs'] for row in rows)} run(s)")
    lines.append(f"{meta['steps']} steps of a {meta['scene']} teacher, --threads {meta['threads']}, viewer "
                 f"resolution {meta['resolution']}; {meta['machine']}; torch {meta['torch']}; commit {meta['commit']}")
    return "\n".join(lines)


def scene_folder(args, work: Path) -> Path:
    if args.data is not None:
        return Path(args.data)
    from fastnerf.data.procedural import make_scene

    options = dict(n_train=8, n_val=1, n_test=2, res=16, samples_per_axis=1) if args.quick else {}
    folder = work / (f"{SCENE}-quick" if args.quick else SCENE)
    if not (folder / "transforms_train.json").is_file():
        print(f"writing the {SCENE} scene to {folder} ...", flush=True)
        make_scene(SCENE, folder, **options)
    return folder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="What fastnerf train --viewer costs training (issue 22).")
    parser.add_argument("--steps", type=int, default=None, help="teacher steps per run (default 1500; 8 with --quick)")
    parser.add_argument("--threads", type=int, default=2, help="--threads of every run (default 2)")
    parser.add_argument("--resolution", type=int, default=256, help="--viewer-resolution (default 256, train's default)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per mode, interleaved; medians reported")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--data", default=None, help=f"dataset folder (default: the built-in {SCENE} scene, "
                        "written once into the work folder)")
    parser.add_argument("--work", default=str(ROOT / "benchmarks" / "results" / "viewer_overhead"),
                        help="folder for the scene and the runs")
    parser.add_argument("--json", default=None, help="results file (default benchmarks/results/viewer_overhead-cpu.json)")
    parser.add_argument("--quick", action="store_true", help="a tiny scene (and 8 steps): a smoke test, not a measurement")
    args = parser.parse_args(argv)
    if args.steps is None:
        args.steps = 8 if args.quick else 1500
    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    unknown = [mode for mode in modes if mode not in MODES]
    if unknown or args.steps < 2 or args.threads < 1 or args.repeat < 1:
        parser.error(f"--modes: unknown {unknown}" if unknown else "--steps >= 2, --threads >= 1, --repeat >= 1")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    data = scene_folder(args, work)

    runs = []
    for repeat in range(args.repeat):
        for mode in modes:
            print(f"[{repeat + 1}/{args.repeat}] {mode}: {args.steps} steps ...", flush=True)
            runs.append(run_once(mode, data, work / f"run-{mode}", args))
            print(f"    {runs[-1]['steps_per_second']:.2f} steps/s after the first step, "
                  f"{runs[-1]['steps_per_second_all']:.2f} overall", flush=True)
    import torch

    from . import harness

    meta = {"benchmark": "viewer_overhead", "steps": args.steps, "threads": args.threads, "scene": str(data.name),
            "resolution": args.resolution, "repeat": args.repeat, "quick": args.quick,
            "machine": f"{platform.machine()} x{os.cpu_count()} cores", "torch": torch.__version__,
            "commit": harness.commit(),
            "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    rows = summarise(runs)
    print()
    print(format_table(rows, meta))
    unseen = [row["mode"] for row in rows if row["mode"].startswith("browser") and not row["viewer_frames"]]
    if unseen:
        print(f"warning: {', '.join(unseen)}: the viewer drew nothing while training; those runs measured no rendering")
    path = Path(args.json) if args.json else ROOT / "benchmarks" / "results" / "viewer_overhead-cpu.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**meta, "limits_percent": LIMITS, "modes": rows, "runs": runs}, indent=1))
    print("wrote", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
