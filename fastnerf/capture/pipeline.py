"""``process_images``: photos (or a video) -> ``DATA/images`` + ``DATA/transforms.json``.

Stages: read the photos (EXIF rotation and focal length, shrink) -> SIFT, matching and
incremental mapping in a pycolmap child process -> the largest model, turned upright and centred
-> ``transforms.json``. ``DATA/images`` and ``DATA/colmap`` (COLMAP's database, model and log)
are rewritten on every run.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from .orient import orient
from .photos import Photo, check_one_size, list_photos, prepare_photos, shared_focal
from .sfm import CAMERA_PARAMS, MATCHING, MIN_MATCHES, SfmResult, run_sfm
from .transforms import FILE_NAME, write_transforms
from .video import VIDEO_SUFFIXES, extract_frames, is_video

MIN_REGISTERED = 3
DEFAULT_MAX_SIZE = 1600
DEFAULT_FPS = 2.0
MARKER = ".process-images"  # in DATA: its images/ and colmap/ are ours to rewrite


@dataclass
class Capture:
    transforms: Path  # DATA/transforms.json
    registered: list[str]  # image names under DATA/images, name order
    unregistered: list[str]
    c2w: dict[str, np.ndarray]  # name -> OpenGL camera-to-world [4,4] in the written frame
    seconds: float


def _check_arguments(photos: Path, out: Path, matching: str, max_size, camera_model: str, fps) -> None:
    if matching not in MATCHING:
        raise UserError(f"--matching must be one of {', '.join(MATCHING)}, got {matching!r}")
    if camera_model not in CAMERA_PARAMS:
        raise UserError(f"--camera-model must be one of {', '.join(CAMERA_PARAMS)}, got {camera_model!r}")
    if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 16):
        raise UserError(f"--max-size must be an integer of at least 16 pixels, got {max_size!r}")
    if fps is not None and not fps > 0:
        raise UserError(f"--fps must be a positive number, got {fps!r}")
    if not photos.exists():
        raise UserError(f"PHOTOS: {photos} does not exist")
    if photos.resolve() == (out / "images").resolve():
        raise UserError(f"--out: {out}/images is rewritten by process-images; it cannot be the PHOTOS folder")
    if photos.is_file() and not is_video(photos):
        raise UserError(f"PHOTOS: {photos} is neither a folder of photos nor a video ({', '.join(VIDEO_SUFFIXES)})")
    if fps is not None and not is_video(photos):
        raise UserError(f"--fps applies to a video; PHOTOS ({photos}) is a folder")
    ours = (out / MARKER).is_file()  # what an earlier run wrote may be rewritten; nothing else
    for folder in (out / "images", out / "colmap"):
        if folder.exists() and any(folder.iterdir()) and not ours:
            raise UserError(f"--out: {folder} already holds files that process-images did not write; "
                            "choose another --out (process-images rewrites DATA/images and DATA/colmap)")
    if (out / FILE_NAME).exists() and not ours:
        raise UserError(f"--out: {out / FILE_NAME} was not written by process-images; choose another --out")


def _read_input(photos: Path, images_dir: Path, max_size, fps, progress: bool) -> list[Photo]:
    images_dir.parent.mkdir(parents=True, exist_ok=True)
    (images_dir.parent / MARKER).write_text("DATA/images and DATA/colmap here were written by fastnerf process-images\n")
    (images_dir.parent / FILE_NAME).unlink(missing_ok=True)  # a failed run must not leave the last run's poses
    if images_dir.exists():
        shutil.rmtree(images_dir)
    if is_video(photos):
        return extract_frames(photos, images_dir, fps or DEFAULT_FPS, max_size, progress=progress)
    return prepare_photos(list_photos(photos), images_dir, max_size, progress=progress)


def _too_few_registered(result: SfmResult, names: list[str], matching: str) -> UserError:
    """Say why mapping failed: photos without features, photos that match no other photo."""
    featureless = [n for n in names if result.keypoints.get(n, 0) < MIN_MATCHES]
    alone = [n for n in names if result.verified_partners.get(n, 0) == 0]
    found = f"the largest model has {max(result.model_sizes)} photos" if result.model_sizes else "no model was started"
    reasons = []
    if len(alone) == len(names):
        reasons.append(f"no two photos share {MIN_MATCHES} or more verified feature matches: they do not overlap, "
                       "or show too little texture")
    elif alone:
        reasons.append(f"{len(alone)} photo(s) share no features with any other: {_names(alone, 8)}")
    if featureless:
        reasons.append(f"{len(featureless)} photo(s) have almost no SIFT features (blank, blurred or tiny): "
                       + _names(featureless, 8))
    return UserError(f"structure from motion registered fewer than {MIN_REGISTERED} of {len(names)} photos "
                     f"({found}); " + "; ".join(reasons or ["the matches did not give a consistent geometry"])
                     + ". Take overlapping photos (each scene point in three or more)"
                     + (", or try --matching exhaustive" if matching != "exhaustive" else ""))


def process_images(photos, out, *, matching: str = "exhaustive", max_size: int | None = DEFAULT_MAX_SIZE,
                   camera_model: str = "OPENCV", fps: float | None = None, num_threads: int = -1, seed: int = 0,
                   progress: bool = True) -> Capture:
    """Recover the cameras of ``photos`` (a folder of photos of one camera, or a video) and write
    ``out/images`` and ``out/transforms.json``; see the module docstring."""
    started = time.perf_counter()
    photos, out = Path(photos), Path(out)
    _check_arguments(photos, out, matching, max_size, camera_model, fps)
    images_dir = out / "images"
    prepared = _read_input(photos, images_dir, max_size, fps, progress)
    width, height = check_one_size(prepared)
    if len(prepared) < MIN_REGISTERED:
        raise UserError(f"PHOTOS: {len(prepared)} photo(s); structure from motion needs at least {MIN_REGISTERED} "
                        "overlapping ones")
    focal = shared_focal(prepared)
    print(f"{len(prepared)} photos of {width}x{height}; focal length "
          + (f"{focal:.1f} px from EXIF (refined by SfM)" if focal else "unknown (estimated by SfM)"))
    result = run_sfm(images_dir, out / "colmap", n_photos=len(prepared), max_side=max(width, height),
                     camera_model=camera_model, focal_px=focal, width=width, height=height, matching=matching,
                     num_threads=num_threads, seed=seed, progress=progress)
    names = [p.name for p in prepared]
    if len(result.images) < MIN_REGISTERED:
        raise _too_few_registered(result, names, matching)
    registered = [n for n in names if n in result.images]
    unregistered = [n for n in names if n not in result.images]
    cam_from_world = np.stack([result.images[n][1] for n in registered])
    oriented = orient(cam_from_world, result.points)
    path = write_transforms(out, registered, [result.images[n][0] for n in registered], result.cameras,
                            oriented.c2w, oriented.aabb, oriented.colmap_to_scene)
    capture = Capture(path, registered, unregistered, dict(zip(registered, oriented.c2w)),
                      time.perf_counter() - started)
    _report(capture, result)
    return capture


def _names(names: list[str], limit: int = 12) -> str:
    return ", ".join(names[:limit]) + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def _report(capture: Capture, result: SfmResult) -> None:
    total = len(capture.registered) + len(capture.unregistered)
    others = f"; other models: {', '.join(map(str, result.model_sizes[1:]))} photos" if len(result.model_sizes) > 1 else ""
    print(f"registered {len(capture.registered)} of {total} photos ({len(result.points)} sparse points{others}) "
          f"in {capture.seconds:.1f} s: {_names(capture.registered)}")
    if capture.unregistered:
        print(f"not registered ({len(capture.unregistered)}): {', '.join(capture.unregistered)}")
    print(f"wrote {capture.transforms}")
