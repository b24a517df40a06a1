"""The ``Camera``: one pinhole camera or a batch, its lens, and the rays it casts (the convention:
``fastnerf.cameras``' module docstring)."""

from __future__ import annotations

import math
from typing import Sequence

import torch

from .. import distortion as lens
from ..errors import UserError
from .checks import rigid_transform_problems

_INTRINSIC_NAMES = ("fx", "fy", "cx", "cy")


def _as_intrinsic(value, name: str, batch_shape: tuple[int, ...]) -> torch.Tensor:
    tensor = torch.as_tensor(value, dtype=torch.float32)
    if tensor.ndim == 0 and batch_shape:
        tensor = tensor.expand(batch_shape).clone()
    if tuple(tensor.shape) != batch_shape:
        raise ValueError(f"Camera: {name} must have shape {list(batch_shape)} to match c2w, got {list(tensor.shape)}")
    if not torch.isfinite(tensor).all():
        raise ValueError(f"Camera: {name} has non-finite values")
    if name in ("fx", "fy") and not (tensor > 0).all():
        raise ValueError(f"Camera: {name} (focal length in pixels) must be positive, got {tensor.min().item()}")
    return tensor


class Camera:
    """One pinhole camera or a batch of them (see the module docstring for the convention).

    Args:
        c2w: camera-to-world ``[4,4]`` (single) or ``[B,4,4]`` (batch); must be rigid.
        fx, fy: focal lengths in pixels, 0-d / ``[B]`` (a Python number is broadcast).
        cx, cy: principal point in pixels (image centre is ``width / 2, height / 2``).
        width, height: image size in pixels, shared by the batch.
        distortion_model: ``None`` (pinhole) or a model of ``fastnerf.distortion.MODELS``.
        distortion: its parameters in COLMAP's order, ``[K]`` / ``[B,K]`` (or padded to 4); a
            perspective model whose parameters are all zero is a plain pinhole camera.
    """

    def __init__(self, c2w, fx, fy, cx, cy, width: int, height: int, *, check: bool = True,
                 distortion_model: str | None = None, distortion=None):
        c2w = torch.as_tensor(c2w, dtype=torch.float32)
        if c2w.ndim not in (2, 3) or tuple(c2w.shape[-2:]) != (4, 4):
            raise ValueError(f"Camera: c2w must have shape [4,4] or [B,4,4], got {list(c2w.shape)}")
        if int(width) != width or int(height) != height or width < 1 or height < 1:
            raise ValueError(f"Camera: width and height must be positive integers, got {width} x {height}")
        if check:
            batch = c2w if c2w.ndim == 3 else c2w[None]
            problems = rigid_transform_problems(batch)
            if problems:
                index, reason = problems[0]
                where = f"c2w[{index}]" if c2w.ndim == 3 else "c2w"
                raise ValueError(f"Camera: {where} is not a rigid camera-to-world matrix: {reason}")
        batch_shape = tuple(c2w.shape[:-2])
        self.c2w = c2w
        self.fx = _as_intrinsic(fx, "fx", batch_shape)
        self.fy = _as_intrinsic(fy, "fy", batch_shape)
        self.cx = _as_intrinsic(cx, "cx", batch_shape)
        self.cy = _as_intrinsic(cy, "cy", batch_shape)
        self.width = int(width)
        self.height = int(height)
        self.distortion_model, self.distortion = lens.camera_lens(distortion_model, distortion, batch_shape)
        if self.distortion is not None:
            self.distortion = self.distortion.to(c2w.device)

    # ----------------------------------------------------------------------------- constructors
    @classmethod
    def from_fov(cls, c2w, width: int, height: int, fov_x: float) -> "Camera":
        """Square pixels, principal point at the image centre, horizontal field of view ``fov_x`` radians."""
        if not 0 < fov_x < math.pi:
            raise ValueError(f"Camera.from_fov: fov_x must be in (0, pi) radians, got {fov_x}")
        focal = 0.5 * width / math.tan(0.5 * fov_x)
        return cls(c2w, focal, focal, width / 2, height / 2, width, height)

    # ----------------------------------------------------------------------------- batch handling
    @property
    def is_batch(self) -> bool:
        return self.c2w.ndim == 3

    @property
    def device(self) -> torch.device:
        return self.c2w.device

    def __len__(self) -> int:
        if not self.is_batch:
            raise TypeError("a single Camera has no len(); use camera.batch() for a batch of one")
        return self.c2w.shape[0]

    def __getitem__(self, index) -> "Camera":
        if not self.is_batch:
            raise TypeError("a single Camera cannot be indexed; use camera.batch() for a batch of one")
        if isinstance(index, int) and not -len(self) <= index < len(self):
            raise IndexError(f"camera index {index} out of range for a batch of {len(self)}")
        return self._replace(self.c2w[index], *(getattr(self, n)[index] for n in _INTRINSIC_NAMES),
                             distortion=None if self.distortion is None else self.distortion[index])

    def batch(self) -> "Camera":
        """This camera as a batch (a batch stays as it is)."""
        if self.is_batch:
            return self
        return self._replace(self.c2w[None], *(getattr(self, n)[None] for n in _INTRINSIC_NAMES),
                             distortion=None if self.distortion is None else self.distortion[None])

    def to(self, device) -> "Camera":
        return self._replace(self.c2w.to(device), *(getattr(self, n).to(device) for n in _INTRINSIC_NAMES),
                             distortion=None if self.distortion is None else self.distortion.to(device))

    def _replace(self, c2w, fx, fy, cx, cy, width=None, height=None, *, distortion=None, model=None) -> "Camera":
        camera = Camera.__new__(Camera)
        camera.c2w, camera.fx, camera.fy, camera.cx, camera.cy = c2w, fx, fy, cx, cy
        camera.width = self.width if width is None else int(width)
        camera.height = self.height if height is None else int(height)
        camera.distortion_model = self.distortion_model if model is None else model
        camera.distortion = self.distortion if distortion is None else distortion
        return camera

    # ----------------------------------------------------------------------------- lens
    @property
    def has_distortion(self) -> bool:
        return self.distortion_model is not None

    def pinhole(self) -> "Camera":
        """The same cameras without lens distortion (for novel views rendered as a pinhole camera would)."""
        camera = self._replace(self.c2w, self.fx, self.fy, self.cx, self.cy)
        camera.distortion_model, camera.distortion = None, None
        return camera

    def require_pinhole(self, consumer: str) -> None:
        """``UserError`` naming ``consumer`` when these cameras have lens distortion it cannot apply."""
        if self.has_distortion:
            raise UserError(
                f"{consumer} takes pinhole cameras only (fx, fy, cx, cy), and this camera has {self.distortion_model} "
                "lens distortion; use a model that renders rays (the teacher, the hybrid or baked students), "
                "or undistort the images first")

    @staticmethod
    def cat(cameras: Sequence["Camera"]) -> "Camera":
        """Concatenate cameras (single or batch) of the same image size into one batch."""
        batches = [camera.batch() for camera in cameras]
        if not batches:
            raise ValueError("Camera.cat: no cameras given")
        sizes = {(c.width, c.height) for c in batches}
        if len(sizes) != 1:
            raise ValueError(f"Camera.cat: cameras have different image sizes {sorted(sizes)}")
        first = batches[0]
        combined = first._replace(
            torch.cat([c.c2w for c in batches]), *(torch.cat([getattr(c, n) for c in batches]) for n in _INTRINSIC_NAMES)
        )
        if not any(c.has_distortion for c in batches):
            return combined
        try:
            merged = lens.batch_lens([(c.distortion_model, params) for c in batches
                                      for params in (c.distortion.cpu() if c.has_distortion else [None] * len(c))])
        except ValueError as error:
            raise ValueError(f"Camera.cat: {error}") from None
        combined.distortion_model = merged["distortion_model"]
        combined.distortion = merged["distortion"].to(combined.device)
        return combined

    # ----------------------------------------------------------------------------- resizing
    def resize(self, width: int, height: int) -> "Camera":
        """The same cameras for an image resampled to ``width x height`` (intrinsics scaled per axis)."""
        if int(width) != width or int(height) != height or width < 1 or height < 1:
            raise ValueError(f"Camera.resize: width and height must be positive integers, got {width} x {height}")
        scale_x, scale_y = width / self.width, height / self.height
        return self._replace(
            self.c2w, self.fx * scale_x, self.fy * scale_y, self.cx * scale_x, self.cy * scale_y, width, height
        )

    def downscale(self, factor: int) -> "Camera":
        """Cameras for images shrunk by an integer ``factor`` (size ``width // factor``, as area resampling gives)."""
        if int(factor) != factor or factor < 1:
            raise ValueError(f"Camera.downscale: factor must be a positive integer, got {factor}")
        if self.width // factor < 1 or self.height // factor < 1:
            raise ValueError(f"Camera.downscale: factor {factor} leaves no pixels of a {self.width}x{self.height} image")
        return self.resize(self.width // factor, self.height // factor)

    # ----------------------------------------------------------------------------- rays
    def rays(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Rays through every pixel centre: ``(origins, directions)``, each ``[H,W,3]`` or ``[B,H,W,3]``."""
        camera = self.batch()
        cols = torch.arange(self.width, device=self.device, dtype=torch.float32) + 0.5  # [W]
        rows = torch.arange(self.height, device=self.device, dtype=torch.float32) + 0.5  # [H]
        x = (cols[None, None, :] - camera.cx[:, None, None]) / camera.fx[:, None, None]  # [B,1,W]
        y = -(rows[None, :, None] - camera.cy[:, None, None]) / camera.fy[:, None, None]  # [B,H,1]
        if camera.has_distortion:
            directions = camera._lens_directions(camera.distortion[:, None, None], cols[None, None, :], rows[None, :, None],
                                                 *(getattr(camera, n)[:, None, None] for n in _INTRINSIC_NAMES))
            directions = torch.einsum("bij,bhwj->bhwi", camera.c2w[:, :3, :3].double(), directions)
            directions = (directions / directions.norm(dim=-1, keepdim=True)).float()
        else:  # R (x, y, -1) as the rotation's columns weighted: only the last add, the norm and the division are H*W*3
            columns = camera.c2w[:, None, None, :3, :3].unbind(-1)  # 3 x [B,1,1,3]
            directions = x[..., None] * columns[0] + (y[..., None] * columns[1] - columns[2])  # [B,H,W,3]
            directions = directions / torch.linalg.vector_norm(directions, dim=-1, keepdim=True)
        origins = camera.c2w[:, None, None, :3, 3].expand_as(directions)
        if not self.is_batch:
            return origins[0], directions[0]
        return origins, directions

    def rays_through(
        self, camera_index: torch.Tensor, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rays through continuous pixel coordinates (the centre of pixel (i, j) is (i + 0.5, j + 0.5)).

        Args:
            camera_index: ``[n]`` long, which camera of the batch.
            x: ``[n]`` float, horizontal pixel coordinate (0 = left edge of the image).
            y: ``[n]`` float, vertical pixel coordinate (0 = top edge of the image).
        Returns:
            ``(origins [n,3], directions [n,3])``, directions of unit length.
        """
        camera = self.batch()
        camera_index = torch.as_tensor(camera_index, dtype=torch.long, device=self.device)
        if camera_index.numel() and (camera_index.min() < 0 or camera_index.max() >= len(camera)):
            raise IndexError(f"camera_index out of range for a batch of {len(camera)} cameras")
        fx, fy = camera.fx[camera_index], camera.fy[camera_index]
        cx, cy = camera.cx[camera_index], camera.cy[camera_index]
        x = x.to(device=self.device, dtype=torch.float32)
        y = y.to(device=self.device, dtype=torch.float32)
        c2w = camera.c2w[camera_index]  # [n,4,4]
        if camera.has_distortion:
            camera_dirs = camera._lens_directions(camera.distortion[camera_index], x, y, fx, fy, cx, cy)  # [n,3]
            directions = torch.einsum("nij,nj->ni", c2w[:, :3, :3].double(), camera_dirs)
            return c2w[:, :3, 3].contiguous(), (directions / directions.norm(dim=-1, keepdim=True)).float()
        camera_dirs = torch.stack([(x - cx) / fx, -(y - cy) / fy, -torch.ones_like(x)], dim=-1)  # [n,3]
        directions = torch.einsum("nij,nj->ni", c2w[:, :3, :3], camera_dirs)
        directions = directions / directions.norm(dim=-1, keepdim=True)
        return c2w[:, :3, 3].contiguous(), directions

    def _lens_directions(self, params, x, y, fx, fy, cx, cy) -> torch.Tensor:
        """Camera-space directions ``[..., 3]`` float64 through pixel coordinates ``x, y`` of a distorted
        lens (``params`` and the intrinsics broadcast against them)."""
        u_d = (x.double() - cx.double()) / fx.double()
        v_d = (y.double() - cy.double()) / fy.double()
        u_d, v_d = torch.broadcast_tensors(u_d, v_d)
        return lens.undistorted_directions(self.distortion_model, params.double(), u_d, v_d)

    def pixel_rays(
        self, camera_index: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, offsets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rays through chosen pixels (for training batches), at their centres or at ``offsets``.

        Args:
            camera_index: ``[n]`` long, which camera of the batch.
            rows: ``[n]`` long, pixel row j in ``[0, height)``.
            cols: ``[n]`` long, pixel column i in ``[0, width)``.
            offsets: ``[n,2]`` float ``(x, y)`` in ``[0, 1]`` within each pixel (default: 0.5, the centre).
        Returns:
            ``(origins [n,3], directions [n,3])``.
        """
        rows = torch.as_tensor(rows, device=self.device)
        cols = torch.as_tensor(cols, device=self.device)
        if rows.numel() and (rows.min() < 0 or rows.max() >= self.height):
            raise IndexError(f"rows must lie in [0, {self.height})")
        if cols.numel() and (cols.min() < 0 or cols.max() >= self.width):
            raise IndexError(f"cols must lie in [0, {self.width})")
        if offsets is None:
            return self.rays_through(camera_index, cols.float() + 0.5, rows.float() + 0.5)
        offsets = torch.as_tensor(offsets, device=self.device, dtype=torch.float32)
        if offsets.shape != (rows.numel(), 2):
            raise ValueError(f"offsets must be [n,2] = [{rows.numel()},2], got {list(offsets.shape)}")
        if offsets.numel() and (offsets.min() < 0 or offsets.max() > 1):
            raise ValueError("offsets must lie in [0, 1] (a position within the pixel)")
        return self.rays_through(camera_index, cols.float() + offsets[:, 0], rows.float() + offsets[:, 1])

    def __repr__(self) -> str:
        size = f"batch of {len(self)}" if self.is_batch else "single"
        model = f", {self.distortion_model}" if self.has_distortion else ""
        return f"Camera({size}, {self.width}x{self.height}{model}, device={self.device})"
