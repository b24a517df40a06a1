"""Reading a COLMAP sparse model (``cameras``, ``images``, ``points3D`` as ``.bin`` or ``.txt``)
with ``struct`` and numpy, as COLMAP writes them (``src/colmap/scene/reconstruction_io.cc``).

Binary (little-endian): ``cameras.bin`` = uint64 count, then per camera int32 id, int32 model
id, uint64 width, uint64 height, float64 params; ``images.bin`` = uint64 count, then per image
int32 id, float64 qw qx qy qz tx ty tz, int32 camera id, a NUL-terminated name, uint64 point
count and that many (float64 x, float64 y, int64 point id); ``points3D.bin`` = uint64 count, then
per point uint64 id, float64 xyz, uint8 rgb, float64 error, uint64 track length and that many
(int32 image id, int32 point index). The text files hold the same, one line per camera / point
and two lines per image (the second, its 2-D points, may be empty), ``#`` starting a comment.

Only what fastnerf needs is kept: the cameras, each image's pose and name, the points' positions.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DatasetError

# COLMAP's model ids, names and parameter counts (src/colmap/sensor/models.h).
CAMERA_MODELS = {
    0: ("SIMPLE_PINHOLE", 3), 1: ("PINHOLE", 4), 2: ("SIMPLE_RADIAL", 4), 3: ("RADIAL", 5), 4: ("OPENCV", 8),
    5: ("OPENCV_FISHEYE", 8), 6: ("FULL_OPENCV", 12), 7: ("FOV", 5), 8: ("SIMPLE_RADIAL_FISHEYE", 4),
    9: ("RADIAL_FISHEYE", 5), 10: ("THIN_PRISM_FISHEYE", 12), 11: ("RAD_TAN_THIN_PRISM_FISHEYE", 16),
}
PARAM_COUNTS = dict(CAMERA_MODELS.values())
MODEL_FILES = ("cameras", "images", "points3D")


@dataclass
class ColmapCamera:
    model: str
    width: int
    height: int
    params: np.ndarray  # [K] float64, COLMAP's order


@dataclass
class ColmapImage:
    name: str
    camera_id: int
    qvec: np.ndarray  # [4] (w, x, y, z): rotation of world-to-camera
    tvec: np.ndarray  # [3] translation of world-to-camera (OpenCV camera axes)


@dataclass
class ColmapModel:
    folder: Path
    extension: str  # ".bin" or ".txt"
    cameras: dict[int, ColmapCamera]
    images: list[ColmapImage]
    points: np.ndarray  # [P,3] float64


def model_extension(folder: Path) -> str | None:
    """``".bin"`` or ``".txt"`` when ``folder`` holds a model's ``cameras`` file, else ``None``."""
    for extension in (".bin", ".txt"):
        if (folder / f"cameras{extension}").is_file():
            return extension
    return None


def read_model(folder: Path) -> ColmapModel:
    extension = model_extension(folder)
    if extension is None:
        raise DatasetError(f"{folder}: no cameras.bin or cameras.txt; not a COLMAP model")
    paths = {name: folder / f"{name}{extension}" for name in MODEL_FILES}
    if not paths["images"].is_file():
        raise DatasetError(f"{paths['images']}: missing; a COLMAP model needs its cameras and images files")
    readers = (_read_cameras_bin, _read_images_bin, _read_points_bin) if extension == ".bin" else (
        _read_cameras_txt, _read_images_txt, _read_points_txt)
    cameras = readers[0](paths["cameras"])
    images = readers[1](paths["images"])
    points = readers[2](paths["points3D"]) if paths["points3D"].is_file() else np.zeros((0, 3))
    for image in images:
        if image.camera_id not in cameras:
            raise DatasetError(f"{paths['images']}: image {image.name!r} uses camera {image.camera_id}, "
                               f"which {paths['cameras'].name} does not define")
    return ColmapModel(folder, extension, cameras, images, points)


def count_images(folder: Path) -> int:
    """How many images the model in ``folder`` registers (only the count is read for ``.bin``)."""
    extension = model_extension(folder)
    path = folder / f"images{extension}"
    if extension == ".bin":
        with _Binary(path) as data:
            return data.unpack("<Q", "the image count")[0]
    return len(_read_images_txt(path))


# ------------------------------------------------------------------------------------------ binary


class _Binary:
    """Bytes of one file read in order; running past the end is a DatasetError naming the file."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.data = path.read_bytes()
        except OSError as error:
            raise DatasetError(f"{path}: cannot read file: {error.strerror or error}") from None
        self.offset = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def unpack(self, layout: str, what: str) -> tuple:
        size = struct.calcsize(layout)
        if self.offset + size > len(self.data):
            raise DatasetError(f"{self.path}: truncated: the file ends at byte {len(self.data)} while reading {what} "
                               f"(byte {self.offset}); re-export the model from COLMAP")
        values = struct.unpack_from(layout, self.data, self.offset)
        self.offset += size
        return values

    def skip(self, size: int, what: str) -> None:
        if self.offset + size > len(self.data):
            raise DatasetError(f"{self.path}: truncated: the file ends at byte {len(self.data)} while reading {what}")
        self.offset += size

    def name(self, what: str) -> str:
        end = self.data.find(b"\x00", self.offset)
        if end < 0:
            raise DatasetError(f"{self.path}: truncated: no end to the name of {what}")
        text = self.data[self.offset:end].decode("utf-8", errors="replace")
        self.offset = end + 1
        return text

    def finish(self) -> None:
        if self.offset != len(self.data):
            raise DatasetError(f"{self.path}: {len(self.data) - self.offset} unexpected bytes after the last record; "
                               "not a COLMAP model file, or a damaged one")


def _read_cameras_bin(path: Path) -> dict[int, ColmapCamera]:
    with _Binary(path) as data:
        cameras = {}
        for index in range(data.unpack("<Q", "the camera count")[0]):
            camera_id, model_id, width, height = data.unpack("<iiQQ", f"camera {index}")
            if model_id not in CAMERA_MODELS:
                raise DatasetError(f"{path}: camera {camera_id} has unknown model id {model_id}")
            model, count = CAMERA_MODELS[model_id]
            params = np.array(data.unpack(f"<{count}d", f"the parameters of camera {camera_id}"))
            cameras[camera_id] = _camera(path, camera_id, model, width, height, params)
        data.finish()
    return cameras


def _read_images_bin(path: Path) -> list[ColmapImage]:
    with _Binary(path) as data:
        images = []
        for index in range(data.unpack("<Q", "the image count")[0]):
            values = data.unpack("<i7di", f"image {index}")
            name = data.name(f"image {values[0]}")
            n_points = data.unpack("<Q", f"the point count of image {name!r}")[0]
            data.skip(24 * n_points, f"the 2-D points of image {name!r}")
            images.append(_image(path, name, values[8], values[1:5], values[5:8]))
        data.finish()
    return images


def _read_points_bin(path: Path) -> np.ndarray:
    with _Binary(path) as data:
        count = data.unpack("<Q", "the point count")[0]
        points = np.empty((count, 3))
        for index in range(count):
            values = data.unpack("<Q3d3BdQ", f"point {index}")
            points[index] = values[1:4]
            data.skip(8 * values[-1], f"the track of point {values[0]}")
        data.finish()
    return points


# ------------------------------------------------------------------------------------------ text


def _lines(path: Path) -> list[tuple[int, str]]:
    """``(line number, text)`` of every line, comments blanked (image files need the empty lines)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: cannot read as text: {error}") from None
    return [(number, "" if line.lstrip().startswith("#") else line.strip())
            for number, line in enumerate(text.splitlines(), 1)]


def _numbers(path: Path, number: int, fields: list[str], kind, what: str) -> list:
    try:
        return [kind(field) for field in fields]
    except ValueError:
        raise DatasetError(f"{path}, line {number}: expected {what}, got {' '.join(fields)!r}") from None


def _read_cameras_txt(path: Path) -> dict[int, ColmapCamera]:
    cameras = {}
    for number, line in _lines(path):
        if not line:
            continue
        fields = line.split()
        if len(fields) < 4:
            raise DatasetError(f"{path}, line {number}: expected CAMERA_ID MODEL WIDTH HEIGHT PARAMS[], got {line!r}")
        camera_id, width, height = _numbers(path, number, [fields[0], fields[2], fields[3]], int, "integer id and size")
        params = np.array(_numbers(path, number, fields[4:], float, "numeric parameters"))
        cameras[camera_id] = _camera(path, camera_id, fields[1], width, height, params, line=number)
    return cameras


def _read_images_txt(path: Path) -> list[ColmapImage]:
    images, lines, index = [], _lines(path), 0
    while index < len(lines):
        number, line = lines[index]
        index += 1
        if not line:
            continue
        fields = line.split(maxsplit=9)
        if len(fields) < 10:
            raise DatasetError(f"{path}, line {number}: expected IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME, got {line!r}")
        values = _numbers(path, number, fields[1:8], float, "a quaternion and a translation")
        camera_id = _numbers(path, number, fields[8:9], int, "an integer camera id")[0]
        images.append(_image(path, fields[9], camera_id, values[:4], values[4:], line=number))
        index += 1  # the image's 2-D points, not needed here
    return images


def _read_points_txt(path: Path) -> np.ndarray:
    points = []
    for number, line in _lines(path):
        if line:
            fields = line.split()
            points.append(_numbers(path, number, fields[1:4], float, "POINT3D_ID X Y Z ..."))
            if len(points[-1]) != 3:
                raise DatasetError(f"{path}, line {number}: expected POINT3D_ID X Y Z R G B ERROR TRACK[], got {line!r}")
    return np.array(points, dtype=np.float64).reshape(-1, 3)


# ------------------------------------------------------------------------------------------ checks


def _camera(path, camera_id, model, width, height, params, line=None) -> ColmapCamera:
    where = f"{path}, line {line}" if line is not None else f"{path}, camera {camera_id}"
    if model not in PARAM_COUNTS:
        raise DatasetError(f"{where}: unknown camera model {model!r}")
    if len(params) != PARAM_COUNTS[model]:
        raise DatasetError(f"{where}: {model} takes {PARAM_COUNTS[model]} parameters, got {len(params)}")
    if width < 1 or height < 1 or not np.isfinite(params).all():
        raise DatasetError(f"{where}: camera {camera_id} has size {width}x{height} and parameters {params.tolist()}; "
                           "expected a positive size and finite parameters")
    return ColmapCamera(model, int(width), int(height), params)


def _image(path, name, camera_id, qvec, tvec, line=None) -> ColmapImage:
    qvec, tvec = np.asarray(qvec, dtype=np.float64), np.asarray(tvec, dtype=np.float64)
    where = f"{path}, line {line}" if line is not None else str(path)
    if not (np.isfinite(qvec).all() and np.isfinite(tvec).all()) or np.linalg.norm(qvec) < 1e-6:
        raise DatasetError(f"{where}: image {name!r} has a non-finite or zero pose (q = {qvec.tolist()}, t = {tvec.tolist()})")
    return ColmapImage(name, int(camera_id), qvec / np.linalg.norm(qvec), tvec)
