"""Fresh teacher patches from sampled cameras (``TeacherPatches``) and a buffer of the hardest
patches seen so far (``HardPatches``: R2L's hard-ray mining, per patch).

A patch is a ``size x size`` window of a sampled view, given as a camera of its own (the view's
camera with its principal point moved to the window: the same rays as those pixels of the whole
view), so ``fastnerf.render`` of the teacher gives its colours and a student renders it like any
camera. Windows start at multiples of ``align`` (a bundled student's bundle: its bundle rays are
then those of the whole view). With ``size = 1`` a patch is a single ray.

Every draw comes from the caller's ``torch.Generator`` and the teacher's render is deterministic,
so a run that checkpoints the generator (and ``HardPatches.state_dict``) resumes exactly.
"""

from __future__ import annotations

import torch

from ..cameras import Camera
from ..errors import UserError


def crop_cameras(cameras: Camera, x0: torch.Tensor, y0: torch.Tensor, size: int) -> Camera:
    """The ``size x size`` windows of ``cameras`` (a batch) whose top-left pixels are ``(x0, y0)`` (``[n]`` each)."""
    offset = lambda v: torch.as_tensor(v, dtype=cameras.cx.dtype, device=cameras.device)  # noqa: E731
    return Camera(cameras.c2w, cameras.fx, cameras.fy, cameras.cx - offset(x0), cameras.cy - offset(y0), size, size,
                  check=False)


def camera_rows(cameras: Camera) -> torch.Tensor:  # -> [n,20]: c2w (16) + fx, fy, cx, cy
    return torch.cat([cameras.c2w.reshape(-1, 16), torch.stack([cameras.fx, cameras.fy, cameras.cx, cameras.cy], 1)], 1)


def rows_camera(rows: torch.Tensor, size: int) -> Camera:  # [n,20] -> a batch of size x size cameras
    return Camera(rows[:, :16].reshape(-1, 4, 4), rows[:, 16], rows[:, 17], rows[:, 18], rows[:, 19], size, size,
                  check=False)


def _uniform(n: int, generator, device) -> torch.Tensor:
    draw_device = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(n, generator=generator, device=draw_device).to(device)


class TeacherPatches:
    """Patches of freshly sampled views, rendered by the teacher on the fly (or cut from real images).

    Args:
        teacher: a model ``fastnerf.render`` renders.
        sampler: gives ``Camera`` batches (``fastnerf.distill.samplers``); sets the view size.
        background, supersample, backend: the teacher's render (``fastnerf.render``'s arguments).
        real_images: ``[R,h,w,3]`` training images at the sampler's size (or None); real_cameras: theirs.
        device: where the patches are given (default: the sampler's device).
    """

    def __init__(self, teacher, sampler, *, background=None, supersample: int | None = None, backend=None,
                 real_images: torch.Tensor | None = None, real_cameras: Camera | None = None, device=None):
        self.teacher, self.sampler = teacher, sampler
        self.device = torch.device(device) if device is not None else sampler.device
        self.background, self.supersample, self.backend = background, supersample, backend
        self.real_images, self.real_cameras = real_images, real_cameras
        self.width, self.height = sampler.width, sampler.height
        self.rendered = 0  # teacher patches rendered (for the run's summary)

    def patch_size(self, size: int, align: int) -> int:
        """``size`` shrunk to fit the views (a multiple of ``align``; a UserError if not even one fits)."""
        fits = min(self.width, self.height) // align * align
        if fits < 1:
            raise UserError(f"patches: the views are {self.width}x{self.height}, smaller than one bundle of "
                            f"{align}x{align} pixels")
        if size % align:
            raise UserError(f"patches: the patch size {size} must be a multiple of the bundle {align}")
        return min(size, fits)

    def draw(self, n: int, size: int, generator: torch.Generator | None = None, *, align: int = 1,
             real_fraction: float = 0.0) -> tuple[Camera, torch.Tensor]:
        """``(cameras, rgb [n,size,size,3])``: ``n`` patches, each cut from a real training image with
        probability ``real_fraction`` (when there are any), else from a new sampled view rendered by
        the teacher. ``size`` must fit the views (``patch_size``)."""
        device = self.device
        if n == 0:
            return rows_camera(torch.zeros(0, 20, device=device), size), torch.zeros(0, size, size, 3, device=device)
        sampled = self.sampler.sample(n, generator)  # drawn for every patch, so the stream does not depend on the mix
        sampled.require_pinhole("fresh teacher patches (a patch camera keeps fx, fy, cx, cy only)")
        n_real = 0 if self.real_images is None else self.real_images.shape[0]
        is_real = _uniform(n, generator, device) < (real_fraction if n_real else 0.0)
        pick = (_uniform(n, generator, device) * n_real).long().clamp(max=max(n_real - 1, 0))
        x0 = (_uniform(n, generator, device) * ((self.width - size) // align + 1)).long() * align
        y0 = (_uniform(n, generator, device) * ((self.height - size) // align + 1)).long() * align
        rows = camera_rows(sampled.to(device))
        if n_real:
            rows = torch.where(is_real[:, None], camera_rows(self.real_cameras[pick].to(device)), rows)
        cameras = crop_cameras(rows_camera(rows, 1), x0, y0, size)
        rgb = torch.zeros(n, size, size, 3, device=device)
        taught = (~is_real).nonzero().flatten()
        if len(taught):
            from ..rendering import render

            rendered = render(self.teacher, cameras[taught], background=self.background, supersample=self.supersample,
                              backend=self.backend)["rgb"]
            rgb[taught] = rendered.to(device).clamp(0, 1)
            self.rendered += len(taught)
        for index in is_real.nonzero().flatten().tolist():
            top, left = int(y0[index]), int(x0[index])
            rgb[index] = self.real_images[int(pick[index]), top:top + size, left:left + size].to(device)
        return cameras, rgb


class HardPatches:
    """The ``capacity`` patches with the highest error offered so far (R2L's hard-ray mining).

    A step ``take``s a few (they leave the buffer), trains on them with fresh ones, and ``offer``s
    every patch it trained on with its error under the current weights: replayed patches come back
    with their new error and drop out once they are no longer among the hardest.
    """

    def __init__(self, capacity: int, size: int, device=None):
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0:
            raise UserError(f"hard patches: capacity must be a non-negative integer, got {capacity!r}")
        self.capacity, self.size = capacity, int(size)
        device = torch.device("cpu") if device is None else torch.device(device)
        self.rows = torch.zeros(0, 20, device=device)  # cameras (camera_rows)
        self.rgb = torch.zeros(0, self.size, self.size, 3, device=device)  # the targets
        self.errors = torch.zeros(0, device=device)  # mean squared error when last offered

    def __len__(self) -> int:
        return self.errors.shape[0]

    def take(self, n: int, generator: torch.Generator | None = None) -> tuple[Camera, torch.Tensor]:
        """``(cameras, rgb [k,size,size,3])``: ``k = min(n, len(self))`` patches picked at random, removed."""
        n = min(int(n), len(self))
        order = torch.argsort(_uniform(len(self), generator, self.errors.device))
        picked, kept = order[:n], order[n:].sort().values
        cameras, rgb = rows_camera(self.rows[picked], self.size), self.rgb[picked]
        self.rows, self.rgb, self.errors = self.rows[kept], self.rgb[kept], self.errors[kept]
        return cameras, rgb

    @torch.no_grad()
    def offer(self, cameras: Camera, rgb: torch.Tensor, errors: torch.Tensor) -> None:
        """Add patches (``rgb [n,size,size,3]``, ``errors [n]``); keep the ``capacity`` hardest (ties: the older)."""
        if rgb.shape[1:3] != (self.size, self.size):
            raise ValueError(f"hard patches: holds {self.size}x{self.size} patches, got {tuple(rgb.shape[1:3])}")
        device = self.errors.device
        rows = torch.cat([self.rows, camera_rows(cameras).to(device)])
        rgb = torch.cat([self.rgb, rgb.detach().to(device, torch.float32)])
        errors = torch.cat([self.errors, errors.detach().to(device, torch.float32)])
        keep = torch.sort(errors, descending=True, stable=True).indices[: self.capacity]
        self.rows, self.rgb, self.errors = rows[keep], rgb[keep], errors[keep]

    def state_dict(self) -> dict:
        return {"size": self.size, "rows": self.rows.cpu(), "rgb": self.rgb.cpu(), "errors": self.errors.cpu()}

    def load_state_dict(self, state: dict) -> None:
        """Restore a buffer (one of another patch size is dropped: the run's settings changed)."""
        if int(state["size"]) != self.size:
            return
        device = self.errors.device
        count = min(int(state["errors"].shape[0]), self.capacity)
        self.rows, self.rgb = state["rows"][:count].to(device), state["rgb"][:count].to(device)
        self.errors = state["errors"][:count].to(device)
