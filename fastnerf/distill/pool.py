"""``ViewPool``: a bounded in-memory pool of teacher-rendered views, refreshed while a student
trains, mixed with the real training images. No file per view: the pool is a few tensors
(``save``/``load`` write and read one file; ``state_dict`` goes into the student's checkpoint so
a resumed run continues exactly).

Freshness: every view drawn from the pool earns ``fresh_ratio`` of a new teacher render;
``refresh`` renders the earned views in batches of ``render_batch`` and writes them over the
oldest ones (a ring). ``fresh_ratio = 0`` reuses the first fill forever; ``1`` renders one new
view per view trained on.

Draws: ``draw_views`` gives whole views (``Camera`` batch + images) for image students,
``draw_rays`` single pixels' rays and colours (for per-ray students); each pick is a real
training image with probability ``real_fraction``, else a pool view. ``draw_patches`` gives
patches of new sampled views that the teacher renders there and then (no pool involved;
``fastnerf.distill.patches``), and ``hard_patches`` the buffer of the hardest patches a student
has trained on, which the pool's state carries so that a resumed run replays the same ones.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from .. import distortion as lens
from ..cameras import Camera
from ..errors import UserError
from .patches import HardPatches, TeacherPatches

POOL_FORMAT = "fastnerf-view-pool"
POOL_VERSION = 2  # 2: each view's lens (version 1 pools, without it, load as pinhole views)


def _resized(images: torch.Tensor, width: int, height: int) -> torch.Tensor:  # [N,H,W,3] -> [N,h,w,3]
    if images.shape[1:3] == (height, width):
        return images
    chw = images.permute(0, 3, 1, 2)
    return F.interpolate(chw, size=(height, width), mode="bilinear", antialias=True,
                         align_corners=False).clamp(0, 1).permute(0, 2, 3, 1).contiguous()


class ViewPool:
    """Teacher views (images stored as float16) plus the real training views.

    Args:
        teacher: a model ``fastnerf.render`` can render (or ``None`` for a pool loaded from a file).
        sampler: gives ``Camera`` batches (``fastnerf.distill.samplers``); sets the view size.
        real: the training ``Dataset`` (or ``None``); its images are resized to the sampler's size.
        capacity: teacher views kept.
        fresh_ratio: new teacher views per pool view drawn (see the module docstring).
        real_fraction: probability that a drawn view / ray comes from a real training image.
        render_batch: cameras per teacher render call.
        background: ``[3]`` the teacher renders on (default: the real dataset's, else white).
        supersample: teacher rays per pixel side (default: the teacher's own).
        device: where the pool lives (default: the sampler's device).
    """

    def __init__(self, teacher, sampler, real=None, *, capacity: int = 256, fresh_ratio: float = 0.25,
                 real_fraction: float = 0.25, render_batch: int = 8, background=None, supersample: int | None = None,
                 backend=None, device=None):
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise UserError(f"view pool: capacity must be a positive integer, got {capacity!r}")
        if not 0.0 <= fresh_ratio <= 16.0:
            raise UserError(f"view pool: fresh_ratio must be in [0, 16], got {fresh_ratio!r}")
        if not 0.0 <= real_fraction <= 1.0:
            raise UserError(f"view pool: real_fraction must be in [0, 1], got {real_fraction!r}")
        self.teacher, self.sampler = teacher, sampler
        self.capacity, self.fresh_ratio, self.real_fraction = capacity, float(fresh_ratio), float(real_fraction)
        self.render_batch, self.supersample, self.backend = max(1, int(render_batch)), supersample, backend
        self.device = torch.device(device) if device is not None else sampler.device
        self.width, self.height = sampler.width, sampler.height
        self.background = (torch.as_tensor(background, dtype=torch.float32) if background is not None else
                           real.background.float() if real is not None else torch.ones(3)).to(self.device)
        self.real_images, self.real_cameras = None, None
        if real is not None:
            self.real_images = _resized(real.images.to(self.device), self.width, self.height)  # [R,h,w,3]
            self.real_cameras = real.cameras.to(self.device).resize(self.width, self.height)
        if real is None:
            self.real_fraction = 0.0
        self.images = torch.zeros(capacity, self.height, self.width, 3, dtype=torch.float16, device=self.device)
        self.c2w = torch.zeros(capacity, 4, 4, device=self.device)
        self.intrinsics = torch.zeros(capacity, 4, device=self.device)  # fx, fy, cx, cy
        # The lens every view shares (the training cameras'), with each view's parameters (zeros: pinhole).
        self.distortion_model = _shared_model(sampler.template, None if real is None else real.cameras)
        self.distortion = torch.zeros(capacity, lens.N_PARAMS, device=self.device)
        self.count, self.next_slot, self.credit, self.rendered = 0, 0, 0.0, 0
        self.patches = TeacherPatches(teacher, sampler, background=self.background, supersample=supersample,
                                      backend=backend, real_images=self.real_images, real_cameras=self.real_cameras,
                                      device=self.device)
        self.hard, self._hard_state = None, None

    # ----------------------------------------------------------------------------- filling
    def __len__(self) -> int:
        return self.count

    @property
    def full(self) -> bool:
        return self.count == self.capacity

    def render_views(self, n: int, generator: torch.Generator | None = None, *, progress: bool = False) -> None:
        """Render ``n`` new teacher views (sampled cameras) into the ring, ``render_batch`` at a time."""
        if self.teacher is None:
            raise UserError("view pool: it was loaded without a teacher, so it cannot render new views")
        from ..rendering import render

        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=n, desc="teacher views", unit="view", leave=False)
        done = 0
        while done < n:
            k = min(self.render_batch, n - done)
            cameras = self.sampler.sample(k, generator)
            rgb = render(self.teacher, cameras, background=self.background, supersample=self.supersample,
                         backend=self.backend)["rgb"]  # [k,h,w,3]
            self._store(cameras, rgb.clamp(0, 1))
            done += k
            if bar is not None:
                bar.update(k)
        if bar is not None:
            bar.close()

    def fill(self, generator: torch.Generator | None = None, *, progress: bool = False) -> None:
        """Render views until the pool is full."""
        self.render_views(self.capacity - self.count, generator, progress=progress)

    def refresh(self, generator: torch.Generator | None = None) -> int:
        """Render the fresh views earned by the draws so far; returns how many were rendered."""
        n = int(self.credit)
        if n and self.teacher is not None:
            self.render_views(n, generator)
            self.credit -= n
        return n

    def _store(self, cameras: Camera, rgb: torch.Tensor) -> None:  # rgb [k,h,w,3]
        for index in range(rgb.shape[0]):
            slot = self.next_slot
            self.images[slot] = rgb[index].to(self.device, torch.float16)
            self.c2w[slot] = cameras.c2w[index].to(self.device)
            self.intrinsics[slot] = torch.stack([cameras.fx[index], cameras.fy[index], cameras.cx[index],
                                                 cameras.cy[index]]).to(self.device)
            self.distortion[slot] = _lens_rows(cameras, self.distortion_model)[index].to(self.device)
            self.next_slot = (slot + 1) % self.capacity
            self.count = min(self.count + 1, self.capacity)
            self.rendered += 1

    # ----------------------------------------------------------------------------- drawing
    def _picks(self, n: int, generator, per_view: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """``(is_real [n] bool, index [n] long)``: which views the draw uses. Each pick of a pool view
        earns ``per_view`` of a view's fresh-render credit (a pixel is 1/(W*H) of a view)."""
        if self.count == 0 and self.real_images is None:
            raise UserError("view pool: empty, and no real images to draw instead; call fill() first")
        draw_device = generator.device if generator is not None else torch.device("cpu")
        u = torch.rand(n, generator=generator, device=draw_device).to(self.device)
        is_real = u < self.real_fraction if self.count else torch.ones(n, dtype=torch.bool, device=self.device)
        v = torch.rand(n, generator=generator, device=draw_device).to(self.device)
        n_real = 0 if self.real_images is None else self.real_images.shape[0]
        index = torch.where(is_real, (v * n_real).long().clamp(max=max(n_real - 1, 0)),
                            (v * self.count).long().clamp(max=max(self.count - 1, 0)))
        self.credit += self.fresh_ratio * per_view * int((~is_real).sum())
        return is_real, index

    def _camera_rows(self, is_real, index) -> torch.Tensor:  # -> [n, 24]: c2w (16) + fx, fy, cx, cy + lens (4)
        pool_index = index.clamp(max=self.capacity - 1)
        pool_rows = torch.cat([self.c2w[pool_index].reshape(-1, 16), self.intrinsics[pool_index],
                               self.distortion[pool_index]], 1)
        if self.real_cameras is None:
            return pool_rows
        real = self.real_cameras
        safe = index.clamp(max=len(real) - 1)
        real_rows = torch.cat([real.c2w[safe].reshape(-1, 16), torch.stack([real.fx[safe], real.fy[safe],
                                                                              real.cx[safe], real.cy[safe]], 1),
                               _lens_rows(real, self.distortion_model)[safe]], 1)
        return torch.where(is_real[:, None], real_rows, pool_rows)

    def _cameras(self, rows: torch.Tensor) -> Camera:
        lens_arguments = {} if self.distortion_model is None else {"distortion_model": self.distortion_model,
                                                                   "distortion": rows[:, 20:24]}
        return Camera(rows[:, :16].reshape(-1, 4, 4), rows[:, 16], rows[:, 17], rows[:, 18], rows[:, 19],
                      self.width, self.height, check=False, **lens_arguments)

    def draw_views(self, n: int, generator: torch.Generator | None = None) -> tuple[Camera, torch.Tensor]:
        """``(cameras, images [n,h,w,3] float32)``: ``n`` views, real with probability ``real_fraction``."""
        is_real, index = self._picks(n, generator)
        images = self.images[index.clamp(max=self.capacity - 1)].float()
        if self.real_images is not None:
            real = self.real_images[index.clamp(max=self.real_images.shape[0] - 1)]
            images = torch.where(is_real[:, None, None, None], real, images)
        return self._cameras(self._camera_rows(is_real, index)), images

    def draw_rays(self, n: int, generator: torch.Generator | None = None) -> dict:
        """``dict(origins [n,3], directions [n,3], rgb [n,3])``: rays through the centres of ``n``
        pixels, each of a view drawn as in ``draw_views``."""
        is_real, index = self._picks(n, generator, per_view=1.0 / (self.width * self.height))
        draw_device = generator.device if generator is not None else torch.device("cpu")
        pixel = torch.randint(self.width * self.height, (n,), generator=generator, device=draw_device).to(self.device)
        rows, cols = pixel // self.width, pixel % self.width
        rgb = self.images[index.clamp(max=self.capacity - 1), rows, cols].float()
        if self.real_images is not None:
            real = self.real_images[index.clamp(max=self.real_images.shape[0] - 1), rows, cols]
            rgb = torch.where(is_real[:, None], real, rgb)
        cameras = self._cameras(self._camera_rows(is_real, index))
        origins, directions = cameras.pixel_rays(torch.arange(n, device=self.device), rows, cols)
        return {"origins": origins, "directions": directions, "rgb": rgb}

    def draw_patches(self, n: int, size: int, generator: torch.Generator | None = None, *, align: int = 1,
                     real_fraction: float | None = None) -> tuple[Camera, torch.Tensor]:
        """``(cameras, rgb [n,size,size,3])``: patches of new sampled views rendered by the teacher, or
        cut from real images with probability ``real_fraction`` (default: the pool's); see
        ``TeacherPatches.draw``. ``size`` is first shrunk to fit the views (a multiple of ``align``)."""
        if self.teacher is None:
            raise UserError("view pool: it was loaded without a teacher, so it cannot render new patches")
        size = self.patches.patch_size(int(size), int(align))
        fraction = self.real_fraction if real_fraction is None else float(real_fraction)
        return self.patches.draw(int(n), size, generator, align=int(align), real_fraction=fraction)

    def hard_patches(self, capacity: int, size: int, align: int = 1) -> HardPatches:
        """The buffer of the hardest patches (created on first use; kept in ``state_dict``). ``size``
        is shrunk as ``draw_patches`` does."""
        size = self.patches.patch_size(int(size), int(align))
        if self.hard is None or (self.hard.capacity, self.hard.size) != (capacity, size):
            self.hard = HardPatches(capacity, size, device=self.device)
            if self._hard_state is not None:
                self.hard.load_state_dict(self._hard_state)
                self._hard_state = None
        return self.hard

    # ----------------------------------------------------------------------------- persistence
    def state_dict(self, *, hard: bool = True) -> dict:
        """Tensors and plain values: the pool's views and counters and (``hard``) the hard patches
        (for checkpoints; ``save`` leaves the hard patches out: they belong to one student's run)."""
        state = {"format": POOL_FORMAT, "version": POOL_VERSION, "width": self.width, "height": self.height,
                 "images": self.images[: self.count].cpu(), "c2w": self.c2w[: self.count].cpu(),
                 "intrinsics": self.intrinsics[: self.count].cpu(), "distortion_model": self.distortion_model,
                 "distortion": self.distortion[: self.count].cpu(), "next_slot": self.next_slot,
                 "credit": self.credit, "rendered": self.rendered, "patches_rendered": self.patches.rendered}
        if hard and self.hard is not None:
            state["hard"] = self.hard.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        if not isinstance(state, dict) or state.get("format") != POOL_FORMAT:
            raise UserError("view pool: not a fastnerf view pool")
        if state.get("version") not in (1, POOL_VERSION):
            raise UserError(f"view pool: version {state.get('version')!r}, this fastnerf reads 1 to {POOL_VERSION}")
        if state.get("distortion_model") != self.distortion_model:
            raise UserError(f"view pool: holds views of a {state.get('distortion_model') or 'pinhole'} lens, this "
                            f"student trains on a {self.distortion_model or 'pinhole'} one")
        if (state["width"], state["height"]) != (self.width, self.height):
            raise UserError(f"view pool: holds {state['width']}x{state['height']} views, this student trains on "
                            f"{self.width}x{self.height}")
        count = min(int(state["images"].shape[0]), self.capacity)
        self.images.zero_()
        self.images[:count] = state["images"][:count].to(self.device, torch.float16)
        self.c2w[:count] = state["c2w"][:count].to(self.device)
        self.intrinsics[:count] = state["intrinsics"][:count].to(self.device)
        self.distortion.zero_()
        if "distortion" in state:
            self.distortion[:count] = state["distortion"][:count].to(self.device)
        self.count = count
        self.next_slot = int(state["next_slot"]) % self.capacity if count == self.capacity else count
        self.credit, self.rendered = float(state["credit"]), int(state["rendered"])
        self.patches.rendered = int(state.get("patches_rendered", 0))
        hard = state.get("hard")
        if hard is not None and self.hard is not None:
            self.hard.load_state_dict(hard)
        else:
            self._hard_state = hard  # restored when the student asks for the buffer

    def save(self, path) -> Path:
        """Write the pool to one file (atomically)."""
        import os

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(self.state_dict(hard=False), tmp)
        os.replace(tmp, path)
        return path

    def load(self, path) -> None:
        """Read a pool written by ``save`` (same view size; at most ``capacity`` views are kept)."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: no view pool file")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - any unreadable file is the user's to fix
            raise UserError(f"{path}: not a readable view pool ({error})") from None
        self.load_state_dict(state)


def _shared_model(template: Camera, real: Camera | None) -> str | None:
    """The lens model the sampled and the real views share (``None``: pinhole)."""
    cameras = [template] if real is None else [template, real]
    models = [c.distortion_model for c in cameras if c.has_distortion]
    if not models:
        return None
    try:
        model = lens.common_model(models)
    except ValueError as error:
        raise UserError(f"view pool: {error}") from None
    if model == lens.FISHEYE and len(models) < len(cameras):
        raise UserError("view pool: fisheye and pinhole views cannot share a pool")
    return model


def _lens_rows(cameras: Camera, model: str | None) -> torch.Tensor:  # -> [B,4]
    """Each camera's lens parameters under the pool's ``model`` (zeros for a pinhole camera)."""
    if not cameras.has_distortion:
        return cameras.c2w.new_zeros(len(cameras), lens.N_PARAMS)
    if lens.common_model([cameras.distortion_model, model]) != model:
        raise UserError(f"view pool: a {cameras.distortion_model} camera in a pool of {model} views")
    return cameras.distortion
