"""The ``lightfield`` student: each pixel's ray straight to its colour (R2L, MobileR2L).

A ray is encoded (``fastnerf.fields.ray_encoding``: points along it in the teacher's box, or its
Pluecker coordinates, frequency-encoded) and a residual MLP maps it to a colour. No volume
rendering, and the camera model is kept, so any pose, resolution, focal length or batch of
cameras renders.

Two layouts (``bundle``):

- ``bundle = 1``: the MLP runs on every pixel's ray (R2L);
- ``bundle = s`` (a power of two): the MLP runs on a bundle of rays ``s`` times sparser per
  side (the ray through the centre of each ``s x s`` block of pixels) and gives a feature image;
  ``log2 s`` blocks of (bilinear x2, 3x3 convolution, ReLU) bring it to full resolution
  (MobileR2L's layout, with bilinear upsampling); sizes that are not multiples of ``s`` are
  rendered on the next multiple and cropped, so the ray of a pixel never moves.

The network predicts a foreground colour and an opacity, so a render can be composited onto
any background: ``rgb = opacity * colour + (1 - opacity) * background`` (always in [0, 1]).

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
from ...fields.ray_encoding import RAY_ENCODINGS, RayEncoding
from .. import register_model
from ..nerf import ndc_rays


class ResidualBlock(nn.Module):
    """``h + W2 relu(W1 relu(h))``; W2 starts at zero so a deep stack starts as the identity."""

    def __init__(self, width: int):
        super().__init__()
        self.inner = nn.Linear(width, width)
        self.outer = nn.Linear(width, width)
        nn.init.zeros_(self.outer.weight)
        nn.init.zeros_(self.outer.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # [N,width] -> [N,width]
        return h + self.outer(torch.relu(self.inner(torch.relu(h))))


class BilinearUpsampler(nn.Module):
    """``[B,C,h,w] -> [B,4,h*factor,w*factor]``: per x2, bilinear upsampling then conv3x3 + ReLU; a 1x1 conv to 4 channels."""

    def __init__(self, channels: int, factor: int):
        super().__init__()
        self.stages = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1)
                                    for _ in range(int(math.log2(factor))))
        self.output = nn.Conv2d(channels, 4, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        h = features
        for conv in self.stages:
            h = F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False)
            h = torch.relu(conv(h))
        return self.output(h)


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


def camera_intrinsics(camera: Camera) -> tuple[torch.Tensor, torch.Tensor]:
    """``(c2w [B,4,4], intrinsics [B,4])`` of a single or batch ``camera``."""
    batch = camera.batch()
    return batch.c2w, torch.stack([batch.fx, batch.fy, batch.cx, batch.cy], dim=-1)


@register_model("lightfield")
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
                 encoding: str = "pluecker", n_points: int = 16, n_freqs: int = 8, hidden: int = 128,
                 n_blocks: int = 4, bundle: int = 1, channels: int = 32, image_width: int = 100,
                 image_height: int = 100):
        super().__init__()
        if encoding not in RAY_ENCODINGS:
            raise UserError(f"lightfield: encoding must be one of {RAY_ENCODINGS}, got {encoding!r}")
        if isinstance(bundle, bool) or int(bundle) != bundle or bundle < 1 or bundle & (bundle - 1):
            raise UserError(f"lightfield: bundle must be 1 or a power of two, got {bundle!r}")
        for name, value in (("hidden", hidden), ("channels", channels), ("image_width", image_width),
                            ("image_height", image_height)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise UserError(f"lightfield: {name} must be a positive integer, got {value!r}")
        if isinstance(n_blocks, bool) or int(n_blocks) != n_blocks or n_blocks < 0:
            raise UserError(f"lightfield: n_blocks must be a non-negative integer, got {n_blocks!r}")
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
        out_dim = 4 if self.bundle == 1 else channels
        self.head = nn.Linear(hidden, out_dim)
        self.upsampler = BilinearUpsampler(channels, self.bundle) if self.bundle > 1 else None

    def config(self) -> dict:
        """Plain values that rebuild this architecture: ``build_model("lightfield", **config)``."""
        return {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v)
                for k, v in self._config.items()}

    # ----------------------------------------------------------------------------- the network
    def ray_outputs(self, rays_o: torch.Tensor, rays_d: torch.Tensor) -> torch.Tensor:
        """``[N,3]`` world rays -> ``[N,4]`` raw outputs per ray (``bundle = 1``) or ``[N,channels]`` features."""
        if self.ndc is not None:
            rays_o, rays_d = ndc_rays(rays_o, rays_d, fx_ratio=self.ndc["fx_ratio"], fy_ratio=self.ndc["fy_ratio"],
                                      near=self.ndc["near"])
        return self.head(self.blocks(torch.relu(self.stem(self.encoder(rays_o, rays_d)))))

    def raw_images(self, c2w: torch.Tensor, intrinsics: torch.Tensor, height: int, width: int, *,
                   chunk: int | None = None) -> torch.Tensor:
        """``c2w [B,4,4]``, ``intrinsics [B,4]`` -> raw outputs ``[B,height,width,4]`` (see ``colour``).

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
        images = self.upsampler(outputs.permute(0, 3, 1, 2))  # [B,4,h*s,w*s]
        return images[:, :, :height, :width].permute(0, 2, 3, 1)

    @staticmethod
    def colour(raw: torch.Tensor, background: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw outputs ``[...,4]`` -> ``(rgb [...,3], opacity [...])`` over ``background [3]``."""
        foreground = torch.sigmoid(raw[..., :3])
        opacity = torch.sigmoid(raw[..., 3])
        return background + opacity[..., None] * (foreground - background), opacity

    # ----------------------------------------------------------------------------- rendering
    def render_camera(self, camera: Camera, *, backend=None, background=None, chunk: int = 8192) -> dict:
        """``dict(rgb [H,W,3] or [B,H,W,3], opacity)`` of any camera (any size, intrinsics, batch)."""
        if not isinstance(camera, Camera):
            raise UserError(f"lightfield: camera must be a fastnerf.cameras.Camera, got {type(camera).__name__}")
        background = self.background if background is None else torch.as_tensor(
            background, dtype=torch.float32, device=self.background.device)
        if background.shape != (3,):
            raise UserError(f"lightfield: background must be 3 values (RGB), got shape {list(background.shape)}")
        c2w, intrinsics = camera_intrinsics(camera)
        c2w, intrinsics = c2w.to(self.background.device), intrinsics.to(self.background.device)
        self.encoder.backend = backend
        try:
            # One camera at a time keeps the upsampler's activations to one image.
            raw = torch.cat([self.raw_images(c2w[i:i + 1], intrinsics[i:i + 1], camera.height, camera.width,
                                             chunk=chunk) for i in range(c2w.shape[0])])
        finally:
            self.encoder.backend = None
        rgb, opacity = self.colour(raw, background)
        if not camera.is_batch:
            rgb, opacity = rgb[0], opacity[0]
        return {"rgb": rgb, "opacity": opacity}

    def export_forward(self, c2w: torch.Tensor, intrinsics: torch.Tensor, *, height: int | None = None,
                       width: int | None = None) -> torch.Tensor:
        """``c2w [B,4,4]``, ``intrinsics [B,4]`` (fx, fy, cx, cy) -> ``rgb [B,H,W,3]`` on the model's
        background; plain PyTorch ops only (``torch.export`` / ONNX). Size: the training size by default."""
        height = self._config["image_height"] if height is None else int(height)
        width = self._config["image_width"] if width is None else int(width)
        self.encoder.backend = "torch"
        try:
            raw = self.raw_images(c2w, intrinsics, height, width)
        finally:
            self.encoder.backend = None
        return self.colour(raw, self.background)[0]
