"""The ``lightfield`` student: each pixel's ray straight to its colour (R2L, MobileR2L).

A ray is encoded (``fastnerf.fields.ray_encoding``: points along it in the teacher's box,
frequency-encoded or looked up in a learned hash grid, or its Pluecker coordinates) and a
residual MLP maps it to a colour. No volume rendering, and the camera model is kept, so any
pose, resolution, focal length or batch of cameras renders.

Two layouts (``bundle``):

- ``bundle = 1``: the MLP runs on every pixel's ray (R2L);
- ``bundle = s`` (a power of two): the MLP runs on a bundle of rays ``s`` times sparser per
  side (the ray through the centre of each ``s x s`` block of pixels) and gives a feature image;
  ``log2 s`` residual blocks (bilinear x2, then ``+ conv3x3(relu(.))``) bring it to full
  resolution and a 1x1 convolution gives the colour (MobileR2L's layout, with bilinear
  upsampling). The residual form matters: a plain conv + ReLU stack collapsed to a white image
  (every ReLU dead) within 400 steps on the tabletop scene; with the skip, the bundle's own
  features always reach the output. Sizes that are not multiples of ``s`` are rendered on the
  next multiple and cropped, so the ray of a pixel never moves.

Training (``fastnerf train student --kind lightfield``): distilled from fresh teacher patches of
sampled cameras every step, with the hardest patches replayed (``fastnerf.distill.patches``;
whole pool views only when ``batch_views > 0``), then fine-tuned on the real training images only
for the last ``finetune`` share of the steps (R2L gained 1.4 dB from
that step; once begun it stays on, and the task's state records where, so a minutes budget that
grows later does not switch it back). With ``encoding="hash"`` the grid's table starts as the
teacher's (``init_from_teacher``, when the teacher's grid has the same sizes) and trains at its own
``table_lr``. The colours are those of the teacher's background; a render on another background
is refused (the pool holds no opacity to learn one from).

Forward-facing (NDC) teachers: the rays are taken to the teacher's NDC space first and the
teacher's NDC box is the encoding's box.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...cameras import Camera
from ...errors import UserError
from ...fields.mlp import ResidualBlock
from ...fields.ray_encoding import HASH_DEFAULTS, RAY_ENCODINGS, RayEncoding
from ...ops.hash_encode import MAX_LEVELS, MAX_RESOLUTION
from ...options import Option, Options
from ..nerf import marched_rays
from . import register_student
from .lightfield_layout import ResidualUpsampler, bundle_rays, camera_intrinsics


def _is_int(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and int(value) == value


# Settings measured on tabletop (docs/lightfield.md): 2 views a step at lr 3e-3 beat 8 views at 2e-3 in
# equal time on the CPU (more, cheaper steps). The model defaults (points, bundle 8, hidden 64) matched
# bundle 4 / hidden 128 within 0.2 dB at 2-4x less render time.
OPTIONS = (
    Option("encoding", "points", "ray encoding: points along the ray in the box (frequency-encoded), Pluecker "
           "coordinates, or the points looked up in a learned hash grid (hash: the teacher's grid sizes, its table "
           "copied by --teacher-init)", choices=RAY_ENCODINGS),
    Option("bundle", 8, "1 (an MLP run per pixel) or a power of two (a ray bundle that much sparser + upsampler)",
           minimum=1),
    Option("hidden", 64, "MLP width", minimum=1),
    Option("n_blocks", 4, "residual blocks of the MLP (two layers each)", minimum=0),
    Option("channels", 16, "feature channels of the upsampler (bundle > 1)", minimum=1),
)
OPTIONS_BY_NAME = {option.name: option for option in OPTIONS}

# The training data (--setting NAME=VALUE; docs/lightfield.md says what each is for). The student
# plateaued at 18.5 dB on a pool of ~150 whole views, so by default every step trains on fresh
# teacher patches of newly sampled cameras (8 cameras a step instead of 2 views: 8192 pixels, the
# teacher's render of them about as long as the student's step) and replays a quarter of them from
# the hardest patches of earlier steps (R2L's hard-ray mining; 64 patches = the last 8 steps' worth,
# small enough that they stay hard). ``batch_views`` whole views from the pool can be mixed in (or
# used alone: ``patches=0, batch_views=2`` is the earlier training). ``table_lr``: 2.5x the teacher's
# 2e-2 for its tables, because the students' schedule halves every 500 steps (the teacher's every
# 1500); a short sanity run on the busy machine favoured it over 2e-2 (to be measured).
TRAINING = Options(
    Option("batch_views", 0, "whole views a step from the view pool (teacher renders and real images)", minimum=0),
    Option("rays", 4096, "random pixels of the pool views a step (bundle = 1; bundled students take whole views)",
           minimum=1),
    Option("patches", 8, "patches a step of fresh sampled cameras rendered by the teacher (hard ones included)",
           minimum=0),
    Option("patch", 32, "patch side in pixels, a multiple of the bundle (shrunk to fit the views)", minimum=1),
    Option("hard_fraction", 0.25, "share of each step's patches replayed from the hardest of earlier steps",
           minimum=0, maximum=1),
    Option("hard_buffer", 64, "hardest patches kept for replay", minimum=0),
    Option("finetune", 0.2, "last share of the steps trained on real training images only (R2L)", minimum=0,
           maximum=1),
    Option("table_lr", 5e-2, "learning rate of the hash grid's table (encoding=hash; its own Adam group without "
           "weight decay, as the teacher's tables)", minimum=0),
)
# The op's limits (fastnerf.ops.hash_encode), checked when the model is built rather than at its
# first render; features and table size kept to what a light field's grid could sensibly hold.
HASH_LIMITS = {"hash_levels": (1, MAX_LEVELS), "hash_features": (1, 64), "hash_log2_size": (1, 24),
               "hash_min_res": (1, MAX_RESOLUTION), "hash_max_res": (1, MAX_RESOLUTION)}


def bundle_margin(bundle: int) -> int:
    """Pixels of context around a patch that make its upsampled colours those of the whole view (the
    upsampler's reach: 1 bundle for 2x, 2 bundles from 4x on; tested)."""
    return bundle * min(int(math.log2(bundle)), 2)


@register_student("lightfield", lr=3e-3, ema_decay=0.99, options=OPTIONS, **TRAINING.defaults())
class LightField(nn.Module):
    """Ray-to-colour student (see the module docstring).

    Args:
        aabb: the teacher's box (its NDC box when ``ndc`` is set).
        ndc: ``None`` or the teacher's ``{"fx_ratio", "fy_ratio", "near"}``.
        background: colour a render is composited onto by default (the teacher's).
        encoding: ``"points"``, ``"pluecker"`` or ``"hash"``; n_points, n_freqs: their settings;
            hash_levels, hash_features, hash_log2_size, hash_min_res, hash_max_res: the ``"hash"``
            grid (``config_for`` gives a hash teacher's own), dir_freqs: its direction encoding.
        hidden: MLP width; n_blocks: residual blocks (two layers each).
        bundle: 1 (per pixel) or a power of two (a ray bundle that much sparser + upsampler).
        channels: feature channels of the upsampler (``bundle > 1``).
        image_width, image_height: the training resolution (the export's default size).
    """

    kind = "lightfield"
    export_takes_intrinsics = True  # fastnerf.export: the graph takes intrinsics [B,4] as well as c2w

    def __init__(self, *, aabb=(-1.5, -1.5, -1.5, 1.5, 1.5, 1.5), ndc=None, background=(1.0, 1.0, 1.0),
                 encoding: str, n_points: int = 8, n_freqs: int = 8, hidden: int, n_blocks: int, bundle: int,
                 channels: int, image_width: int = 100, image_height: int = 100,
                 hash_levels: int = HASH_DEFAULTS["hash_levels"], hash_features: int = HASH_DEFAULTS["hash_features"],
                 hash_log2_size: int = HASH_DEFAULTS["hash_log2_size"],
                 hash_min_res: int = HASH_DEFAULTS["hash_min_res"], hash_max_res: int = HASH_DEFAULTS["hash_max_res"],
                 dir_freqs: int = 4):
        # encoding, hidden, n_blocks, bundle, channels: defaults from OPTIONS
        super().__init__()
        if encoding not in RAY_ENCODINGS:
            raise UserError(f"lightfield: encoding must be one of {RAY_ENCODINGS}, got {encoding!r}")
        if not _is_int(bundle) or bundle < 1 or bundle & (bundle - 1):
            raise UserError(f"lightfield: bundle must be 1 or a power of two, got {bundle!r}")
        for name, value in (("hidden", hidden), ("channels", channels), ("image_width", image_width),
                            ("image_height", image_height), ("n_points", n_points)):
            if not _is_int(value) or value < 1:
                raise UserError(f"lightfield: {name} must be a positive integer, got {value!r}")
        for name, value in (("n_blocks", n_blocks), ("n_freqs", n_freqs), ("dir_freqs", dir_freqs)):
            if not _is_int(value) or value < 0:
                raise UserError(f"lightfield: {name} must be a non-negative integer, got {value!r}")
        grid = dict(hash_levels=hash_levels, hash_features=hash_features, hash_log2_size=hash_log2_size,
                    hash_min_res=hash_min_res, hash_max_res=hash_max_res)
        for name, value in grid.items():
            low, high = HASH_LIMITS[name]
            if not _is_int(value) or not low <= value <= high:
                raise UserError(f"lightfield: {name} must be an integer in [{low}, {high}], got {value!r}")
        if hash_min_res > hash_max_res:
            raise UserError(f"lightfield: hash_min_res ({hash_min_res}) must be <= hash_max_res ({hash_max_res})")
        grid = {name: int(value) for name, value in grid.items()}
        self._config = dict(
            aabb=[float(v) for v in aabb], ndc=None if ndc is None else {k: float(v) for k, v in ndc.items()},
            background=[float(v) for v in background], encoding=encoding, n_points=int(n_points),
            n_freqs=int(n_freqs), hidden=int(hidden), n_blocks=int(n_blocks), bundle=int(bundle),
            channels=int(channels), image_width=int(image_width), image_height=int(image_height), **grid,
            dir_freqs=int(dir_freqs))
        self.bundle = int(bundle)
        self.ndc = self._config["ndc"]
        self.register_buffer("background", torch.tensor(self._config["background"]))
        self.encoder = RayEncoding(encoding, aabb, n_points=n_points, n_freqs=n_freqs, dir_freqs=int(dir_freqs), **grid)
        self.stem = nn.Linear(self.encoder.out_dim, hidden)
        self.blocks = nn.Sequential(*(ResidualBlock(hidden) for _ in range(n_blocks)))
        self.head = nn.Linear(hidden, 3 if self.bundle == 1 else channels)
        self.upsampler = ResidualUpsampler(channels, self.bundle) if self.bundle > 1 else None

    def config(self) -> dict:
        """Plain values that rebuild this architecture: ``build_model("lightfield", **config)``."""
        return {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v)
                for k, v in self._config.items()}

    @classmethod
    def config_for(cls, teacher, dataset, sampler, **overrides) -> dict:
        """The config for ``teacher`` (its box and NDC; a hash teacher's grid sizes for ``encoding="hash"``,
        so ``init_from_teacher`` can copy its table), its ``dataset`` (background) and the pool's view size."""
        sampler.template.require_pinhole("the lightfield student (its rays, like its exported graph's intrinsics [B,4])")
        config = teacher.config()
        own = {"aabb": list(config["aabb"]), "ndc": config.get("ndc"), "background": dataset.background.tolist(),
               "image_width": sampler.width, "image_height": sampler.height}
        encoding = overrides.get("encoding", OPTIONS_BY_NAME["encoding"].default)
        if encoding == "hash" and config.get("encoding") == "hash":
            own.update({name: config[name] for name in HASH_DEFAULTS if name in config})
        return {**own, **overrides}

    def init_from_teacher(self, teacher) -> str:
        """``encoding="hash"``: copy the teacher's hash table into the ray encoding's grid (the same
        box and normalisation, so a point reads the teacher's features there); returns what was
        copied. ``ValueError`` saying why when there is nothing to copy (another encoding, a teacher
        without a hash grid of these sizes, or a contracted one, whose grid reads other coordinates)."""
        grid = self.encoder.grid
        if grid is None:
            raise ValueError(f"encoding={self._config['encoding']} learns no grid (encoding=hash copies the teacher's)")
        config = teacher.config()
        theirs = getattr(getattr(teacher, "position_encoding", None), "table", None)
        if config.get("encoding") != "hash" or theirs is None:
            raise ValueError("the teacher has no hash grid")
        if config.get("contraction"):
            raise ValueError(f"the teacher's grid reads contracted coordinates ({config['contraction']}), "
                             "the light field's the box")
        sizes = {name: config.get(name) for name in HASH_DEFAULTS}
        mine = {name: self._config[name] for name in HASH_DEFAULTS}
        if sizes != mine or tuple(theirs.shape) != tuple(grid.table.shape):
            differ = ", ".join(f"{name} {sizes[name]} (here {mine[name]})" for name in HASH_DEFAULTS
                               if sizes[name] != mine[name])
            raise ValueError(f"the teacher's hash grid has other sizes: {differ or tuple(theirs.shape)}")
        with torch.no_grad():
            grid.table.copy_(theirs)
        levels, rows, features = grid.table.shape
        return f"hash table ({levels} levels x {features} features, {rows} rows each) into the ray encoding"

    def param_groups(self, lr: float, *, table_lr: float = TRAINING["table_lr"].default, **settings) -> list:
        """Everything at ``lr``; the hash grid's table (``encoding="hash"``) in a group of its own at
        ``table_lr`` without weight decay, as the teacher trains its tables."""
        if self.encoder.grid is None:
            return [{"params": list(self.parameters()), "base_lr": lr}]
        table = self.encoder.grid.table
        rest = [p for p in self.parameters() if p is not table]
        return [{"params": [table], "base_lr": float(table_lr), "weight_decay": 0.0}, {"params": rest, "base_lr": lr}]

    # ----------------------------------------------------------------------------- the network
    def ray_outputs(self, rays_o: torch.Tensor, rays_d: torch.Tensor) -> torch.Tensor:
        """``[N,3]`` world rays -> colours ``[N,3]`` in [0, 1] (``bundle = 1``) or features ``[N,channels]``."""
        rays_o, rays_d = marched_rays(self.ndc, rays_o, rays_d)
        out = self.head(self.blocks(torch.relu(self.stem(self.encoder(rays_o, rays_d)))))
        return torch.sigmoid(out) if self.upsampler is None else out

    def images(self, c2w: torch.Tensor, intrinsics: torch.Tensor, height: int, width: int, *,
               chunk: int | None = None) -> torch.Tensor:
        """``c2w [B,4,4]``, ``intrinsics [B,4]`` (fx, fy, cx, cy) -> ``rgb [B,height,width,3]``.

        ``chunk`` bounds the rays the MLP takes at a time (None: all at once; the export uses that).
        """
        origins, directions = bundle_rays(c2w, intrinsics, height, width, self.bundle)  # [B,h,w,3]
        batch, rows, cols, _ = origins.shape
        rays_o, rays_d = origins.reshape(-1, 3), directions.reshape(-1, 3)
        if chunk is None or rays_o.shape[0] <= chunk:
            outputs = self.ray_outputs(rays_o, rays_d)
        else:
            outputs = torch.cat([self.ray_outputs(rays_o[i:i + chunk], rays_d[i:i + chunk])
                                 for i in range(0, rays_o.shape[0], chunk)])
        outputs = outputs.reshape(batch, rows, cols, -1)
        if self.upsampler is None:
            return outputs
        images = self.upsampler(outputs.permute(0, 3, 1, 2))  # [B,3,h*s,w*s]
        return images[:, :, :height, :width].permute(0, 2, 3, 1)

    # ----------------------------------------------------------------------------- rendering
    def render_camera(self, camera: Camera, *, backend=None, background=None, chunk: int = 8192) -> dict:
        """``dict(rgb [H,W,3] or [B,H,W,3])`` of any camera (any size, intrinsics, batch)."""
        if not isinstance(camera, Camera):
            raise UserError(f"lightfield: camera must be a fastnerf.cameras.Camera, got {type(camera).__name__}")
        if background is not None:
            wanted = torch.as_tensor(background, dtype=torch.float32).flatten().cpu()
            if wanted.shape != (3,) or not torch.allclose(wanted, self.background.cpu(), atol=1e-6):
                raise UserError(f"the lightfield student renders on the background it was distilled with, "
                                f"{self.background.tolist()}; got {wanted.tolist()}")
        c2w, intrinsics = camera_intrinsics(camera)
        device = self.background.device
        c2w, intrinsics = c2w.to(device), intrinsics.to(device)
        self.encoder.backend = backend
        try:
            # One camera at a time keeps the upsampler's activations to one image.
            rgb = torch.cat([self.images(c2w[i:i + 1], intrinsics[i:i + 1], camera.height, camera.width, chunk=chunk)
                             for i in range(c2w.shape[0])])
        finally:
            self.encoder.backend = None
        return {"rgb": rgb if camera.is_batch else rgb[0]}

    def export_forward(self, c2w: torch.Tensor, intrinsics: torch.Tensor, *, height: int | None = None,
                       width: int | None = None) -> torch.Tensor:
        """``c2w [B,4,4]``, ``intrinsics [B,4]`` (fx, fy, cx, cy) -> ``rgb [B,H,W,3]``; plain PyTorch
        ops only (``torch.export`` / ONNX). Size: the training size unless given."""
        height = self._config["image_height"] if height is None else int(height)
        width = self._config["image_width"] if width is None else int(width)
        self.encoder.backend = "torch"
        try:
            return self.images(c2w, intrinsics, height, width)
        finally:
            self.encoder.backend = None

    # ----------------------------------------------------------------------------- training
    @classmethod
    def check_settings(cls, settings: dict, model: dict | None = None) -> dict:
        """``settings`` with the ``TRAINING`` ones checked and completed (others, e.g. ``lr``, pass
        through), for a model of config ``model`` (its ``bundle``; default: the declared one)."""
        bundle = int((model or {}).get("bundle", OPTIONS_BY_NAME["bundle"].default))
        checked = TRAINING.resolve({k: v for k, v in settings.items() if k in TRAINING}, "lightfield")
        if checked["patches"] and checked["patch"] % bundle:
            raise UserError(f"lightfield: --setting patch={checked['patch']} must be a multiple of the bundle "
                            f"({bundle}), so that a patch holds whole bundles")
        if not checked["patches"] and not checked["batch_views"]:
            raise UserError("lightfield: a step needs patches > 0 or batch_views > 0")
        return {**settings, **checked}

    def patch_images(self, cameras: Camera) -> torch.Tensor:
        """``rgb [B,h,w,3]`` of patch cameras (``fastnerf.distill.patches``) as the whole views render
        those pixels: rendered with ``bundle_margin`` pixels of context around them, then cropped."""
        c2w, intrinsics = camera_intrinsics(cameras)
        margin = bundle_margin(self.bundle)
        shift = torch.tensor([0.0, 0.0, margin, margin], dtype=intrinsics.dtype, device=intrinsics.device)
        images = self.images(c2w, intrinsics + shift, cameras.height + 2 * margin, cameras.width + 2 * margin)
        return images[:, margin:margin + cameras.height, margin:margin + cameras.width]

    def distill_loss(self, pool, generator, *, step: int, total_steps: int | None = None, backend=None,
                     schedule: dict | None = None, **settings):
        """One step's loss (settings: ``TRAINING``). Each step trains on ``patches`` patches, a
        ``hard_fraction`` of them replayed from the pool's buffer of the hardest patches and the rest
        fresh (new sampled cameras rendered by the teacher, or real-image crops at the pool's
        ``real_fraction``), and on ``batch_views`` views of the ``ViewPool``: whole (``bundle > 1``),
        or ``rays`` random pixels among them (``bundle = 1``). For the last ``finetune`` share of
        ``total_steps`` every patch and view is a real training image and nothing is replayed; once
        begun, that phase stays on (``schedule``, the task's record of such switches, keeps the step
        it began at: a minutes budget's ``total_steps`` is re-decided every step and may grow). The
        loss is the mean squared error over every pixel; every patch goes back to the hard buffer
        with its error."""
        settings = self.check_settings(settings, {"bundle": self.bundle})
        real_only = self._fine_tuning(step, total_steps, settings["finetune"], schedule)
        has_real = pool.real_images is not None
        self.encoder.backend = backend
        try:
            pairs, stats = [], {"real_only": float(real_only)}
            if settings["batch_views"]:
                pairs.append(self._pool_pairs(pool, generator, settings, real_only and has_real))
            if settings["patches"]:
                pairs.append(self._patch_pairs(pool, generator, settings, real_only and has_real, stats))
        finally:
            self.encoder.backend = None
        predicted = torch.cat([p.reshape(-1, 3) for p, _ in pairs])
        target = torch.cat([t.reshape(-1, 3) for _, t in pairs])
        loss = F.mse_loss(predicted, target)
        return loss, {"mse": float(loss.detach()), "n_rays": float(target.shape[0]), **stats}

    @staticmethod
    def _fine_tuning(step: int, total_steps: int | None, finetune: float, schedule: dict | None) -> bool:
        """Whether ``step`` is in the real-images phase: from the step it began at (``schedule``'s
        ``finetune_from``), else once ``step >= (1 - finetune) * total_steps`` (recorded there then)."""
        began = None if schedule is None else schedule.get("finetune_from")
        if began is not None and step >= began:
            return True
        if not total_steps or finetune <= 0 or step < (1.0 - finetune) * total_steps:
            return False
        if schedule is not None:
            schedule["finetune_from"] = int(step)  # sticky, as the teacher's switch to sub-rays is
        return True

    def _pool_pairs(self, pool, generator, settings: dict, real_only: bool):
        """``(predicted, target)`` on ``batch_views`` views of the pool (real ones only if ``real_only``)."""
        mixed = pool.real_fraction
        if real_only:
            pool.real_fraction = 1.0
        try:
            cameras, images = pool.draw_views(int(settings["batch_views"]), generator)  # [V,h,w,3]
        finally:
            pool.real_fraction = mixed
        if self.upsampler is None:
            views, height, width = images.shape[:3]
            draw_device = generator.device if generator is not None else torch.device("cpu")
            pixel = torch.randint(views * height * width, (int(settings["rays"]),), generator=generator,
                                  device=draw_device).to(images.device)
            view, rows, cols = pixel // (height * width), (pixel // width) % height, pixel % width
            origins, directions = cameras.pixel_rays(view, rows, cols)
            return self.ray_outputs(origins, directions), images[view, rows, cols]
        return self.images(*camera_intrinsics(cameras), cameras.height, cameras.width), images

    def _patch_pairs(self, pool, generator, settings: dict, real_only: bool, stats: dict):
        """``(predicted, target)`` on the step's patches, fresh and replayed; offers them all to the hard buffer."""
        total, size = int(settings["patches"]), int(settings["patch"])
        hard = pool.hard_patches(int(settings["hard_buffer"]), size, self.bundle)
        replayed = 0 if real_only else min(round(settings["hard_fraction"] * total), len(hard))
        old_cameras, old_rgb = hard.take(replayed, generator)
        new_cameras, new_rgb = pool.draw_patches(total - replayed, size, generator, align=self.bundle,
                                                 real_fraction=1.0 if real_only else None)
        cameras, target = Camera.cat([old_cameras, new_cameras]), torch.cat([old_rgb, new_rgb])
        predicted = self.patch_images(cameras)
        if not real_only:  # fine-tuning replays nothing, so it leaves the buffer as it was
            hard.offer(cameras, target, ((predicted.detach() - target) ** 2).mean(dim=(1, 2, 3)))
        stats["hard"] = float(replayed)
        return predicted, target
