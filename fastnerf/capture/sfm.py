"""Structure from motion through pycolmap, run in a child process (``_sfm_worker``).

The parent writes a job file, starts ``python .../fastnerf/capture/_sfm_worker.py JOB`` (the file,
not ``-m``: that would import the ``fastnerf`` package, and torch with it, for nothing), relays its
progress lines, and reads ``result.json`` back. COLMAP's log goes to ``colmap.log`` in the work
folder; when the worker dies (a crash inside COLMAP is an abort, not an exception) the error
names the stage and quotes the end of that log.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError

WORKER = Path(__file__).with_name("_sfm_worker.py")
MATCHING = ("exhaustive", "sequential")
# COLMAP camera models and their parameter lists (COLMAP's src/colmap/sensor/models.h).
CAMERA_PARAMS = {
    "SIMPLE_PINHOLE": ("f", "cx", "cy"),
    "PINHOLE": ("fx", "fy", "cx", "cy"),
    "SIMPLE_RADIAL": ("f", "cx", "cy", "k1"),
    "RADIAL": ("f", "cx", "cy", "k1", "k2"),
    "OPENCV": ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2"),
    "OPENCV_FISHEYE": ("fx", "fy", "cx", "cy", "k1", "k2", "k3", "k4"),
}
MIN_MATCHES = 15  # COLMAP's min_num_matches: a pair with fewer verified matches is no link
LOG_TAIL_LINES = 12


@dataclass
class SfmResult:
    cameras: dict[int, dict]  # camera id -> {"model", "width", "height", "params"}
    images: dict[str, tuple[int, np.ndarray]]  # name -> (camera id, cam_from_world [3,4] float64, OpenCV axes)
    points: np.ndarray  # [P,3] float64 sparse points of the model
    keypoints: dict[str, int]  # every photo's SIFT features
    verified_partners: dict[str, int]  # every photo's photos sharing >= MIN_MATCHES verified matches
    model_sizes: list[int] = field(default_factory=list)  # photos registered in every model found


def prior_params(camera_model: str, width: int, height: int, focal_px: float | None) -> str:
    """COLMAP's ``camera_params`` string for a known focal length (no distortion; principal point
    at the centre), or "" to let COLMAP guess it."""
    if focal_px is None:
        return ""
    values = {"f": focal_px, "fx": focal_px, "fy": focal_px, "cx": width / 2, "cy": height / 2}
    return ",".join(f"{values.get(name, 0.0):.6g}" for name in CAMERA_PARAMS[camera_model])


def run_sfm(images_dir: Path, work_dir: Path, *, n_photos: int, max_side: int, camera_model: str, focal_px: float | None,
            width: int, height: int, matching: str, num_threads: int = -1, seed: int = 0,
            progress: bool = True) -> SfmResult:
    """Extract, match and map the photos of ``images_dir``; COLMAP's files go to ``work_dir``."""
    if matching not in MATCHING:
        raise UserError(f"--matching must be one of {', '.join(MATCHING)}, got {matching!r}")
    if camera_model not in CAMERA_PARAMS:
        raise UserError(f"--camera-model must be one of {', '.join(CAMERA_PARAMS)}, got {camera_model!r}")
    if importlib.util.find_spec("pycolmap") is None:
        raise UserError("process-images needs pycolmap: pip install 'fastnerf[capture]' (or pip install pycolmap)")
    if work_dir.exists():
        shutil.rmtree(work_dir)  # a stale database or model of an earlier run must not mix in
    work_dir.mkdir(parents=True)
    database = work_dir / "database.db"
    job = {"database": str(database), "images": str(images_dir), "sparse": str(work_dir / "sparse"),
           "result": str(work_dir / "result.json"), "n_photos": n_photos, "max_side": max_side,
           "camera_model": camera_model, "camera_params": prior_params(camera_model, width, height, focal_px),
           "matching": matching, "num_threads": num_threads, "seed": seed, "min_matches": MIN_MATCHES}
    job_path = work_dir / "job.json"
    job_path.write_text(json.dumps(job, indent=1))
    _run_worker(job_path, work_dir / "colmap.log", progress)
    return _read_result(work_dir)


def _run_worker(job_path: Path, log_path: Path, progress: bool) -> None:
    stage = "start"
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, str(WORKER), str(job_path)], stdout=subprocess.PIPE,
                                   stderr=log, text=True)
        try:
            for line in process.stdout:
                line = line.rstrip()
                if line.startswith("stage: "):
                    stage = line[len("stage: "):].split(":")[0]
                if progress and line:
                    print(f"  colmap {line}", flush=True)
            code = process.wait()
        except BaseException:
            process.kill()
            process.wait()
            raise
    if code != 0:
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals() \
            else f"exited with status {code}"
        tail = log_path.read_text(errors="replace").strip().splitlines()[-LOG_TAIL_LINES:]
        raise UserError(f"COLMAP (pycolmap) {how} during the '{stage}' stage; the end of its log "
                        f"({log_path}):\n    " + "\n    ".join(tail or ["(empty)"]))


def _read_result(work_dir: Path) -> SfmResult:
    result = json.loads((work_dir / "result.json").read_text())
    sizes = sorted(result["model_sizes"].values(), reverse=True)
    if result["chosen"] is None:
        return SfmResult({}, {}, np.zeros((0, 3)), result["keypoints"], result["verified_partners"], sizes)
    cameras = {int(k): v for k, v in result["cameras"].items()}
    images = {item["name"]: (int(item["camera_id"]), np.array(item["cam_from_world"], dtype=np.float64))
              for item in result["images"]}
    return SfmResult(cameras, images, np.load(work_dir / "points.npy"), result["keypoints"],
                     result["verified_partners"], sizes)
