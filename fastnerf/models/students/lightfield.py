"""The ``lightfield`` student: each pixel's ray straight to its colour (R2L, MobileR2L).

A ray is encoded (``fastnerf.fields.ray_encoding``: points along it in the teacher's box, or its
Pluecker coordinates, frequency-encoded) and a residual MLP maps it to a colour. No volume
rendering, and the camera model is kept, so any pose, resolution, focal length or batch of
cameras renders.

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

Training (``fastnerf train student --kind lightfield``): distilled from the teacher's views in
the ``ViewPool`` (single rays for ``bundle = 1``, whole views otherwise), then fine-tuned on the
real training images only for the last ``finetune`` share of the steps (R2L gained 1.4 dB from
that step). The colours are those of the teacher's background; a render on another background
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
from ...fields.ray_encoding import RAY_ENCODINGS, RayEncoding
from ...options import Option
from ..nerf import marched_rays
from . import register_student


class ResidualUpsampler(nn.Module):
    """``[B,C,h,w]`` features -> ``[B,3,h*factor,w*factor]`` colours in [0, 1].

    Per x2: bilinear upsampling, then ``h + conv3x3(relu(h))`` (the conv starts at zero, so the
    upsampler starts as plain bilinear interpolation); then a 1x1 convolution and a sigmoid.
    """

    def __init__(self, channels: int, factor: int):
        super().__init__()
        self.stages = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in range(int(math.log2(factor))))
        for conv in self.stages:
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
        self.head = nn.Conv2d(channels, 3, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        h = features
        for conv in self.stages:
            h = F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False)
            h = h + conv(torch.relu(h))
        return torch.sigmoid(self.head(h))


def bundle_rays(c2w: torch.Tensor, intrinsics: torch.Tensor, height: int, width: int, stride: int = 1):
    """Rays through the centres of ``stride x stride`` pixel blocks of ``height x width`` images.

    Args:
        c2w: ``[B,4,4]`` camera-to-world (OpenGL axes: looking along -Z, +Y up).
        intrinsics: ``[B,4]`` = fx, fy, cx, cy in pixels.
    Returns:
        ``(origins, directions)``, each ``[B, ceil(height/stride), ceil(width/stride), 3]``; with
        ``stride = 1`` exactly ``Camera.rays()`` (pixel centres).
    """
    rows = math.ceil(height / stride)
    cols = math.ceil(width / stride)
    dtype, device = c2w.dtype, c2w.device
    u = torch.arange(cols, dtype=dtype, device=device) * stride + 0.5 * stride  # [w] pixel x
    v = torch.arange(rows, dtype=dtype, device=device) * stride + 0.5 * stride  # [h] pixel y
    fx, fy, cx, cy = (intrinsics[:, i, None, None] for i in range(4))  # [B,1,1] each
    x = ((u[None, None, :] - cx) / fx).expand(-1, rows, -1)  # [B,h,w]
    y = (-(v[None, :, None] - cy) / fy).expand(-1, -1, cols)  # [B,h,w]
    camera_dirs = torch.stack([x, y, -torch.ones_like(x)], dim=-1)  # [B,h,w,3]
    directions = torch.einsum("bij,bhwj->bhwi", c2w[:, :3, :3], camera_dirs)
    directions = directions / directions.norm(dim=-1, keepdim=True)
    origins = c2w[:, None, None, :3, 3].expand_as(directions)
    return origins, directions


def _is_int(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and int(value) == value


def camera_intrinsics(camera: Camera) -> tuple[torch.Tensor, torch.Tensor]:
    """``(c2w [B,4,4], intrinsics [B,4])`` of a single or batch ``camera`` (a pinhole one: the
    network's rays, and the exported graph's input, have no lens)."""
    camera.require_pinhole("the lightfield student (its rays, like its exported graph's intrinsics [B,4])")
    batch = camera.batch()
    return batch.c2w, torch.stack([batch.fx, batch.fy, batch.cx, batch.cy], dim=-1)


# Settings measured on tabletop (docs/lightfield.md): 2 views a step at lr 3e-3 beat 8 views at 2e-3 in
# equal time on the CPU (more, cheaper steps); `rays` applies to bundle = 1. The model defaults (points,
# bundle 8, hidden 64) matched bundle 4 / hidden 128 within 0.2 dB at 2-4x less render time.
OPTIONS = (
    Option("encoding", "points", "ray encoding: points along the ray in the box, or Pluecker coordinates",
           choices=RAY_ENCODINGS),
    Option("bundle", 8, "1 (an MLP run per pixel) or a power of two (a ray bundle that much sparser + upsampler)",
           minimum=1),
    Option("hidden", 64, "MLP width", minimum=1),
    Option("n_blocks", 4, "residual blocks of the MLP (two layers each)", minimum=0),
    Option("channels", 16, "feature channels of the upsampler (bundle > 1)", minimum=1),
)


@register_student("lightfield", lr=3e-3, batch_views=2, rays=4096, finetune=0.2, ema_decay=0.99, options=OPTIONS)
class LightField(nn.Module):
    """Ray-to-colour student (see the module docstring).

    Args:
        aabb: the teacher's box (its NDC box when ``ndc`` is set).
        ndc: ``None`` or the teacher's ``{"fx_ratio", "fy_ratio", "near"}``.
        background: colour a render is composited onto by default (the teacher's).
        encoding: ``"points"`` or ``"pluecker"``; n_points, n_freqs: its settings.
        hidden: MLP width; n_blocks: residual blocks (two layers each).
        bundle: 1 (per pixel) or a power of two (a ray bundle that much sparser + upsampler).
        channels: feature channels of the upsampler (``bundle > 1``).
        image_width, image_height: the training resolution (the export's default size).
    """

    kind = "lightfield"
    export_takes_intrinsics = True  # fastnerf.export: the graph takes intrinsics [B,4] as well as c2w

    def __init__(self, *, aabb=(-1.5, -1.5, -1.5, 1.5, 1.5, 1.5), ndc=None, background=(1.0, 1.0, 1.0),
                 encoding: str, n_points: int = 8, n_freqs: int = 8, hidden: int, n_blocks: int, bundle: int,
                 channels: int, image_width: int = 100, image_height: int = 100):
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
        for name, value in (("n_blocks", n_blocks), ("n_freqs", n_freqs)):
            if not _is_int(value) or value < 0:
                raise UserError(f"lightfield: {name} must be a non-negative integer, got {value!r}")
        self._config = dict(
            aabb=[float(v) for v in aabb], ndc=None if ndc is None else {k: float(v) for k, v in ndc.items()},
            background=[float(v) for v in background], encoding=encoding, n_points=int(n_points),
            n_freqs=int(n_freqs), hidden=int(hidden), n_blocks=int(n_blocks), bundle=int(bundle),
            channels=int(channels), image_width=int(image_width), image_height=int(image_height))
        self.bundle = int(bundle)
        self.ndc = self._config["ndc"]
        self.register_buffer("background", torch.tensor(self._config["background"]))
        self.encoder = RayEncoding(encoding, aabb, n_points=n_points, n_freqs=n_freqs)
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
        """The config for ``teacher`` (its box and NDC), its ``dataset`` (background) and the pool's view size."""
        sampler.template.require_pinhole("the lightfield student (its rays, like its exported graph's intrinsics [B,4])")
        config = teacher.config()
        return {"aabb": list(config["aabb"]), "ndc": config.get("ndc"), "background": dataset.background.tolist(),
                "image_width": sampler.width, "image_height": sampler.height, **overrides}

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
    def distill_loss(self, pool, generator, *, step: int, batch_views: int, rays: int, finetune: float,
                     total_steps: int | None = None, backend=None, **settings):
        """One step's loss on the ``ViewPool``: teacher views mixed with real ones, then real views
        only for the last ``finetune`` share of ``total_steps``. ``batch_views`` views per step:
        whole (``bundle > 1``), or ``rays`` random pixels among them (``bundle = 1``; drawn as
        views, so the pool's refresh rate counts views, not rays)."""
        real_only = bool(total_steps) and finetune > 0 and step >= (1.0 - finetune) * total_steps
        mixed = pool.real_fraction
        if real_only and pool.real_images is not None:
            pool.real_fraction = 1.0
        try:
            cameras, images = pool.draw_views(int(batch_views), generator)  # [V,h,w,3]
        finally:
            pool.real_fraction = mixed
        self.encoder.backend = backend
        try:
            predicted, target = self._predict_draw(cameras, images, generator, int(rays))
        finally:
            self.encoder.backend = None
        loss = F.mse_loss(predicted, target)
        return loss, {"mse": float(loss.detach()), "real_only": float(real_only)}

    def _predict_draw(self, cameras: Camera, images: torch.Tensor, generator, rays: int):
        """``(predicted, target)`` for drawn views ``images [V,h,w,3]``: ``rays`` random pixels, or whole views."""
        if self.upsampler is None:
            views, height, width = images.shape[:3]
            draw_device = generator.device if generator is not None else torch.device("cpu")
            pixel = torch.randint(views * height * width, (rays,), generator=generator,
                                  device=draw_device).to(images.device)
            view, rows, cols = pixel // (height * width), (pixel // width) % height, pixel % width
            origins, directions = cameras.pixel_rays(view, rows, cols)
            return self.ray_outputs(origins, directions), images[view, rows, cols]
        return self.images(*camera_intrinsics(cameras), cameras.height, cameras.width), images
