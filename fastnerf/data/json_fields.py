"""Reading JSON and checking its fields, with errors that name the file, frame and field."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from ..cameras import rigid_transform_problems
from .errors import DatasetError


def read_json(path: Path) -> dict:
    """Parse a JSON file whose top level must be an object."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise DatasetError(f"{path}: cannot read file: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    if not text.strip():
        raise DatasetError(f"{path}: file is empty")
    try:
        content = json.loads(text)
    except json.JSONDecodeError as error:
        hint = " (the file looks truncated)" if error.pos >= len(text.rstrip()) else ""
        raise DatasetError(f"{path}: malformed JSON at line {error.lineno}, column {error.colno}: {error.msg}{hint}") from None
    if not isinstance(content, dict):
        raise DatasetError(f"{path}: expected a JSON object at the top level, got {type(content).__name__}")
    return content


def where(path: Path, frame: int | None = None, field: str | None = None) -> str:
    """``path, frame 3, field 'fl_x'`` for error messages."""
    text = str(path)
    if frame is not None:
        text += f", frame {frame}"
    if field is not None:
        text += f", field '{field}'"
    return text


def positive_number(value, location: str, *, allow_zero: bool = False) -> float:
    """A finite number > 0 (or >= 0); booleans and strings are rejected."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DatasetError(f"{location}: expected a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise DatasetError(f"{location}: expected a finite {'non-negative' if allow_zero else 'positive'} number, got {value}")
    return value


def finite_number(value, location: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise DatasetError(f"{location}: expected a finite number, got {value!r}")
    return float(value)


def pose_matrix(value, location: str) -> np.ndarray:
    """A 4x4 (or 3x4, completed with [0, 0, 0, 1]) finite matrix from nested lists -> ``[4,4]`` float64."""
    try:
        matrix = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DatasetError(f"{location}: expected a 4x4 matrix of numbers, got {_short(value)}") from None
    if matrix.shape == (3, 4):
        matrix = np.concatenate([matrix, [[0.0, 0.0, 0.0, 1.0]]], axis=0)
    if matrix.shape != (4, 4):
        raise DatasetError(f"{location}: expected a 4x4 matrix, got shape {'x'.join(map(str, matrix.shape)) or 'scalar'}")
    if not np.isfinite(matrix).all():
        raise DatasetError(f"{location}: matrix has non-finite entries (nan or inf)")
    return matrix


def check_rigid(c2w: np.ndarray, locations: list[str]) -> None:
    """Raise naming the first frame whose ``c2w [N,4,4]`` is not a rigid transform."""
    problems = rigid_transform_problems(torch.from_numpy(c2w))
    if problems:
        index, reason = problems[0]
        raise DatasetError(f"{locations[index]}: not a rigid camera-to-world matrix: {reason}")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."
