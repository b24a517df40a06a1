"""LLFF format: ``poses_bounds.npy`` ``[N,17]`` beside ``images/`` (and ``images_<k>/``).

Row k is a 3x5 matrix, flattened row-major, then ``(near, far)`` depth bounds of frame k. The
3x5 matrix is ``[R | t | (h, w, f)]`` with the rotation columns in LLFF's
``[down, right, back]`` order; we reorder them to OpenGL ``[right, up, back]``. Frame k is the
k-th image in sorted file-name order. ``downscale=k`` reads ``images_<k>/`` when it exists
(as the LLFF tools write it) and otherwise shrinks ``images/`` by area averaging.

As in the original NeRF loader, by default the poses are (1) rescaled so the nearest bound is
``1 / bd_factor`` (``bd_factor=0.75``, so 1.33), and (2) recentred: expressed relative to the
mean pose (see ``fastnerf.cameras.mean_pose``), which becomes the identity. Rescaling multiplies
the bounds too; recentring is rigid and leaves depths unchanged. ``near`` is then
``0.9 * min(bounds)`` and ``far`` is ``max(bounds)``, in the final world units. Pass
``recenter=False`` and ``bd_factor=None`` to keep the poses as stored. ``aabb`` is ``None``
(forward-facing scenes are unbounded behind the content). Splits: every 8th frame by name
(0, 8, 16, ...; ``fastnerf.data.splits``) is ``val``/``test``, the rest ``train``; ``"all"`` is every frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..cameras import Camera, mean_pose
from .dataset import Dataset
from .errors import DatasetError
from .fields import check_rigid
from .images import IMAGE_SUFFIXES, ImageStack, check_same_size, read_header
from .splits import holdout_by_name
from .transforms_json import downscaled

FILE_NAME = "poses_bounds.npy"
NEAR_MARGIN = 0.9


def load_llff(
    folder: Path,
    split: str,
    *,
    downscale: int,
    background: torch.Tensor,
    skip_missing: bool,
    recenter: bool = True,
    bd_factor: float | None = 0.75,
) -> Dataset:
    npy_path = folder / FILE_NAME
    poses, bounds = read_poses_bounds(npy_path)
    image_dir, already_scaled = _image_folder(folder, downscale)
    image_paths = sorted(p for p in image_dir.iterdir() if p.is_file() and p.suffix in IMAGE_SUFFIXES and not p.name.startswith("."))
    if len(image_paths) != len(poses):
        raise DatasetError(
            f"{npy_path}: has {len(poses)} poses but {image_dir} holds {len(image_paths)} images; "
            "LLFF pairs them in sorted file-name order, so the counts must match"
            + (" (--skip-missing / skip_missing=True cannot apply: LLFF frames have no names)" if skip_missing else "")
        )
    c2w = opengl_c2w(poses)  # [N,4,4]
    check_rigid(c2w, [f"{npy_path}, frame {k}" for k in range(len(c2w))])
    if bd_factor is not None:
        scale = 1.0 / (bounds.min() * bd_factor)
        c2w[:, :3, 3] *= scale
        bounds = bounds * scale
    if recenter:
        centre = mean_pose(torch.from_numpy(c2w)).double().numpy()
        c2w = np.linalg.inv(centre) @ c2w

    indices = holdout_by_name([path.name for path in image_paths], split, str(npy_path))
    locations = [f"{npy_path}, frame {k} ({image_paths[k].name})" for k in indices]
    headers = [read_header(image_paths[k], location) for k, location in zip(indices, locations)]
    width, height = check_same_size(headers, locations)
    pose_height, pose_width, focal = poses[indices[0], :, 4]
    scale_x, scale_y = width / pose_width, height / pose_height
    if abs(scale_x - scale_y) > 0.01 * max(scale_x, scale_y):
        raise DatasetError(
            f"{npy_path}: images in {image_dir.name}/ are {width}x{height}, not a uniform scaling of the "
            f"{pose_width:g}x{pose_height:g} stored in the poses"
        )
    focals = torch.from_numpy(poses[indices, 2, 4] * scale_x).float()
    cameras = Camera(torch.from_numpy(c2w[indices]).float(), focals, focals, width / 2, height / 2, width, height, check=False)
    if not already_scaled:
        cameras = downscaled(cameras, downscale, npy_path)
    return Dataset(
        ImageStack(headers, locations, cameras.width, cameras.height, background),
        cameras,
        background=background,
        aabb=None,
        near=float(bounds.min() * NEAR_MARGIN),
        far=float(bounds.max()),
        forward_facing=True,
        format="llff",
        path=folder,
        split=split,
    )


def read_poses_bounds(npy_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(poses [N,3,5], bounds [N,2])`` from the file, checked."""
    try:
        array = np.load(npy_path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise DatasetError(f"{npy_path}: not a readable .npy array ({error})") from None
    if array.ndim != 2 or array.shape[1] != 17:
        raise DatasetError(f"{npy_path}: expected shape [N,17] (3x5 pose + near, far per frame), got {list(array.shape)}")
    if array.shape[0] == 0:
        raise DatasetError(f"{npy_path}: has no frames")
    array = array.astype(np.float64)
    bad_rows = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if bad_rows.size:
        raise DatasetError(f"{npy_path}, frame {bad_rows[0]}: non-finite values (nan or inf)")
    poses, bounds = array[:, :15].reshape(-1, 3, 5), array[:, 15:]
    for k in range(len(array)):
        height, width, focal = poses[k, :, 4]
        if min(height, width, focal) <= 0:
            raise DatasetError(f"{npy_path}, frame {k}: height, width and focal (column 5) must be positive, got {poses[k, :, 4].tolist()}")
        if not 0 < bounds[k, 0] < bounds[k, 1]:
            raise DatasetError(f"{npy_path}, frame {k}: bounds must satisfy 0 < near < far, got {bounds[k].tolist()}")
    return poses, bounds


def opengl_c2w(poses: np.ndarray) -> np.ndarray:
    """LLFF ``[N,3,5]`` with columns ``[down, right, back, t, hwf]`` -> OpenGL c2w ``[N,4,4]``."""
    c2w = np.zeros((len(poses), 4, 4))
    c2w[:, :3, 0] = poses[:, :, 1]  # right
    c2w[:, :3, 1] = -poses[:, :, 0]  # up = -down
    c2w[:, :3, 2] = poses[:, :, 2]  # back
    c2w[:, :3, 3] = poses[:, :, 3]
    c2w[:, 3, 3] = 1.0
    return c2w


def llff_poses(c2w: np.ndarray, height: int, width: int, focal) -> np.ndarray:
    """Inverse of ``opengl_c2w``: OpenGL ``c2w [N,4,4]`` -> LLFF ``[N,3,5]`` (for writing test data)."""
    poses = np.zeros((len(c2w), 3, 5))
    poses[:, :, 0] = -c2w[:, :3, 1]
    poses[:, :, 1] = c2w[:, :3, 0]
    poses[:, :, 2] = c2w[:, :3, 2]
    poses[:, :, 3] = c2w[:, :3, 3]
    poses[:, :, 4] = np.stack(np.broadcast_arrays(height, width, focal), -1) if np.ndim(focal) else [height, width, focal]
    return poses


def _image_folder(folder: Path, downscale: int) -> tuple[Path, bool]:
    """``(folder of images, whether they are already downscaled)``."""
    if isinstance(downscale, int) and downscale > 1 and (folder / f"images_{downscale}").is_dir():
        return folder / f"images_{downscale}", True
    if not (folder / "images").is_dir():
        raise DatasetError(f"{folder}: LLFF dataset has no images/ folder beside {FILE_NAME}")
    return folder / "images", False
