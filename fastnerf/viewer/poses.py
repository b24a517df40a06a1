"""Between the browser's camera and fastnerf's.

viser reports a camera as ``wxyz`` and ``position`` with ``P_world = R p_camera + t`` in the OpenCV
convention (+Z forward, +Y down) and a vertical field of view; a fastnerf ``Camera`` is an OpenGL
camera-to-world (-Z forward, +Y up, ARCHITECTURE.md section 3). The two differ by a flip of Y and Z.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..cameras import Camera

_FLIP_YZ = np.diag([1.0, -1.0, -1.0])


def c2w_from_viser(wxyz, position) -> np.ndarray:
    """OpenGL camera-to-world ``[4,4]`` from viser's ``wxyz`` and ``position``."""
    w, x, y, z = (float(v) for v in wxyz)
    norm = math.sqrt(w * w + x * x + y * y + z * z) or 1.0
    w, x, y, z = w / norm, x / norm, y / norm, z / norm
    rotation = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                         [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                         [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])
    c2w = np.eye(4)
    c2w[:3, :3] = rotation @ _FLIP_YZ
    c2w[:3, 3] = np.asarray(position, dtype=np.float64)
    return c2w


def viser_from_c2w(c2w) -> tuple[np.ndarray, np.ndarray]:
    """``(wxyz, position)`` for viser from an OpenGL camera-to-world ``[4,4]``."""
    c2w = np.asarray(c2w, dtype=np.float64)
    from viser.transforms import SO3

    return SO3.from_matrix(c2w[:3, :3] @ _FLIP_YZ).wxyz, c2w[:3, 3].copy()


def camera_at(c2w, fov_y: float, width: int, height: int) -> Camera:
    """A square-pixel camera of ``width x height`` with vertical field of view ``fov_y`` (radians)."""
    focal = 0.5 * height / math.tan(0.5 * fov_y)
    return Camera(torch.as_tensor(np.asarray(c2w), dtype=torch.float32), focal, focal, width / 2, height / 2,
                  width, height, check=False)


def fov_y_of(camera: Camera) -> float:
    """Vertical field of view (radians) of a single camera."""
    return 2 * math.atan(0.5 * camera.height / float(camera.fy))


def size_for(aspect: float, long_side: int) -> tuple[int, int]:
    """``(width, height)`` of ``aspect`` whose longer side is ``long_side`` pixels."""
    long_side = max(1, int(long_side))
    if aspect >= 1:
        return long_side, max(1, round(long_side / aspect))
    return max(1, round(long_side * aspect)), long_side
