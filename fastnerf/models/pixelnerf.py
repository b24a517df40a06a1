"""PixelNeRF (Yu et al. 2021): a radiance field conditioned on CNN features of one to three
source images, so it renders scenes it never trained on with no per-scene optimisation.

    source images -> ResNet encoder (4 stages, upsampled, concatenated) -> feature maps, once
    sample p -> project into every source view (fastnerf.ops.project_features), bilinear features
             -> residual MLP on [posenc(p in the view's camera frame), view direction in that frame],
                the view's features added before each of the first 3 blocks
             -> average over views -> 2 more blocks -> density, colour -> fastnerf.ops.composite

One saving over pixelNeRF: its MLP adds ``W_i z`` (a linear map of the sampled feature z) before
block i. Sampling is linear too, so we apply the three ``W_i`` to the feature maps once per
source view (a 1x1 convolution) and sample the projected maps: the per-sample cost of the
three latent layers disappears (a texel's bias term is the one difference: none here).

Rendering (eval mode) has two modes:
- ``"dense"``: pixelNeRF's 64 stratified + 32 importance samples per ray (96 field evaluations;
  pixelNeRF itself evaluates 160, re-running the 64 coarse points in its fine network);
- ``"fast"`` (default): a coarse density pass over the scene box at ``grid_resolution``^3 corners
  (once per set of source views, cached in the encoded views) gives an occupancy grid;
  ``march_rays`` keeps only samples in occupied cells, and ``fastnerf.volume.render_rays``
  evaluates them in rounds, retiring rays whose transmittance drops below ``early_stop_eps``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import ops
from ..fields.image_encoder import ResNetEncoder
from ..fields.mlp import ResidualBlock
from ..volume import render_rays as march_and_composite
from ..options import Option
from . import register_model
from .pixelnerf_sampling import (
    importance_points,
    merged_intervals,
    occupancy_from_density,
    ray_segments,
    stratified_bins,
)

RENDER_MODES = ("fast", "dense")
ENCODERS = ("small", "resnet34")
OPTIONS = (  # the options of `fastnerf train pixelnerf` (the task adds its own)
    Option("hidden", 64, "MLP width (pixelNeRF: 512)", flag=True),
    Option("encoder", "small", "image encoder: small (CPU-sized) or resnet34 (pixelNeRF's)", choices=ENCODERS,
           flag=True),
    Option("encoder_weights", None, "torchvision ResNet-34 state dict for --encoder resnet34", type=str, flag=True,
           metavar="FILE"),
)


@register_model("pixelnerf", task="pixelnerf", options=OPTIONS,
                no_export="it marches data-dependent sample counts through fastnerf's custom ops, conditioned "
                "on source views; neither torch.export nor ONNX can hold that")
class PixelNeRF(nn.Module):
    """Image-conditioned radiance field (see the module docstring).

    Args:
        encoder: ``"small"`` (the CPU-sized ``ResNetEncoder()``, widths ``encoder_widths``) or
            ``"resnet34"`` (pixelNeRF's, 512 channels; ``encoder_weights=FILE`` loads torchvision weights).
        hidden: MLP width (pixelNeRF: 512); n_blocks: residual blocks (5); combine_after: blocks
            before the views are averaged (3); pos_freqs: frequencies of the position encoding (6).
        aabb, near, far: where rays are sampled (world units; from the training data).
        background: colour behind the scene when ``render_rays`` gets none.
        train_samples: stratified samples per ray in training.
        dense_coarse, dense_fine: samples of the dense mode (64, 32).
        render_mode: ``"fast"`` or ``"dense"``; grid_resolution, march_steps (steps per box
            diagonal), density_threshold, early_stop_eps: the fast mode.
    """

    kind = "pixelnerf"
    needs_views = True  # fastnerf.render: a render without views=(images, cameras) is an error

    # encoder, encoder_weights, hidden: defaults from OPTIONS (the registration above)
    def __init__(self, *, encoder: str, encoder_widths=(32, 32, 64, 128), encoder_blocks=(1, 1, 1),
                 encoder_weights: str | None, hidden: int, n_blocks: int = 5, combine_after: int = 3,
                 pos_freqs: int = 6, aabb=(-1.5, -1.5, -1.5, 1.5, 1.5, 1.5), near: float = 0.0, far: float = 100.0,
                 background=(1.0, 1.0, 1.0), train_samples: int = 32, dense_coarse: int = 64, dense_fine: int = 32,
                 render_mode: str = "fast", grid_resolution: int = 24, march_steps: int = 64,
                 density_threshold: float = 1.0, early_stop_eps: float = 1e-3):
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"PixelNeRF: encoder must be 'small' or 'resnet34', got {encoder!r}")
        if render_mode not in RENDER_MODES:
            raise ValueError(f"PixelNeRF: render_mode must be one of {RENDER_MODES}, got {render_mode!r}")
        if not 1 <= combine_after <= n_blocks:
            raise ValueError(f"PixelNeRF: combine_after must lie in [1, n_blocks={n_blocks}], got {combine_after}")
        aabb = [float(v) for v in aabb]
        if len(aabb) != 6 or not all(aabb[i] < aabb[i + 3] for i in range(3)) or not 0 <= near < far:
            raise ValueError(f"PixelNeRF: need aabb (min xyz, max xyz) with min < max and 0 <= near < far; "
                             f"got {aabb}, near={near}, far={far}")
        self._config = dict(
            encoder=encoder, encoder_widths=[int(w) for w in encoder_widths], encoder_blocks=[int(b) for b in encoder_blocks],
            encoder_weights=None, hidden=int(hidden), n_blocks=int(n_blocks), combine_after=int(combine_after),
            pos_freqs=int(pos_freqs), aabb=aabb, near=float(near), far=float(far),
            background=[float(v) for v in background], train_samples=int(train_samples),
            dense_coarse=int(dense_coarse), dense_fine=int(dense_fine), render_mode=render_mode,
            grid_resolution=int(grid_resolution), march_steps=int(march_steps),
            density_threshold=float(density_threshold), early_stop_eps=float(early_stop_eps))
        self.encoder = ResNetEncoder.resnet34() if encoder == "resnet34" else ResNetEncoder(encoder_widths, encoder_blocks)
        if encoder_weights:
            self.encoder.load_torchvision(encoder_weights)
        self.hidden, self.n_blocks, self.combine_after, self.pos_freqs = hidden, n_blocks, combine_after, pos_freqs
        # The per-block latent layers of pixelNeRF, applied to the feature maps (see the docstring).
        self.latent_projection = nn.Conv2d(self.encoder.out_channels, combine_after * hidden, 1, bias=False)
        in_dim = 3 * (1 + 2 * pos_freqs) + 3
        self.input_layer = nn.Linear(in_dim, hidden)
        self.blocks = nn.ModuleList(ResidualBlock(hidden) for _ in range(n_blocks))
        self.output_layer = nn.Linear(hidden, 4)
        self.register_buffer("aabb", torch.tensor(aabb), persistent=False)
        self.register_buffer("default_background", torch.tensor(self._config["background"]), persistent=False)

    def config(self) -> dict:
        return dict(self._config)

    # ---- conditioning -------------------------------------------------------------------------

    def encode_views(self, images: torch.Tensor, cameras) -> dict:
        """Encode source ``images [V,H,W,3]`` (in [0, 1]) seen by ``cameras`` (a batch of V) once."""
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"encode_views: images must be [V,H,W,3], got {list(images.shape)}")
        cameras = cameras.batch().to(images.device)
        cameras.require_pinhole("pixelnerf (project_features projects through fx, fy, cx, cy)")
        if len(cameras) != images.shape[0] or (cameras.height, cameras.width) != tuple(images.shape[1:3]):
            raise ValueError(f"encode_views: {images.shape[0]} images of {images.shape[2]}x{images.shape[1]} do not "
                             f"match {len(cameras)} cameras of {cameras.width}x{cameras.height}")
        features = self.encoder(images.permute(0, 3, 1, 2).float())
        latent = self.latent_projection(features).contiguous(memory_format=torch.channels_last)
        scale_x = latent.shape[-1] / cameras.width
        scale_y = latent.shape[-2] / cameras.height
        intrinsics = torch.stack([cameras.fx * scale_x, cameras.fy * scale_y, cameras.cx * scale_x,
                                  cameras.cy * scale_y], -1)
        return {"latent": latent, "c2w": cameras.c2w.float(), "intrinsics": intrinsics.float()}

    # ---- the field ----------------------------------------------------------------------------

    def field(self, points: torch.Tensor, directions: torch.Tensor, views: dict, backend=None):
        """``(sigma [S], rgb [S,3])`` at ``points [S,3]`` seen along ``directions [S,3]``."""
        c2w, latent = views["c2w"], views["latent"]
        n_views, n_points = c2w.shape[0], points.shape[0]
        rotation, origin = c2w[:, :3, :3], c2w[:, :3, 3]
        local = torch.einsum("vji,vsj->vsi", rotation, points[None] - origin[:, None])  # [V,S,3] camera frame
        local_dirs = torch.einsum("vji,sj->vsi", rotation, directions)  # [V,S,3]
        encoded = ops.freq_encode(local.reshape(-1, 3).contiguous(), self.pos_freqs, backend=backend)
        h = self.input_layer(torch.cat([encoded, local_dirs.reshape(-1, 3)], -1))  # [V*S, hidden]
        z = ops.project_features(points.contiguous(), c2w, views["intrinsics"], latent, backend=backend)
        z = z.reshape(n_views * n_points, self.combine_after, self.hidden)
        for index in range(self.combine_after):
            h = self.blocks[index](h + z[:, index])
        h = h.view(n_views, n_points, self.hidden).mean(0)
        for block in self.blocks[self.combine_after:]:
            h = block(h)
        out = self.output_layer(torch.relu(h))
        return F.softplus(out[:, 0] - 1.0), torch.sigmoid(out[:, 1:])

    def density(self, points: torch.Tensor, views: dict, backend=None) -> torch.Tensor:
        """sigma ``[S]`` (view direction: towards the first source camera)."""
        towards = F.normalize(points - views["c2w"][0, :3, 3], dim=-1)
        return self.field(points, towards, views, backend)[0]

    # ---- rendering ----------------------------------------------------------------------------

    def _background(self, background, n_rays, like):
        bg = self.default_background if background is None else torch.as_tensor(background, dtype=like.dtype,
                                                                                 device=like.device)
        return bg.to(like.device).expand(n_rays, 3) if bg.dim() == 1 else bg

    def _composite(self, points, rays_d, ray_ids, t_starts, t_ends, packed_info, views, backend):
        sigma, rgb = self.field(points, rays_d[ray_ids], views, backend)
        return ops.composite(sigma, rgb, t_starts, t_ends, packed_info, backend=backend)

    def render_rays(self, rays_o: torch.Tensor, rays_d: torch.Tensor, *, backend=None, background=None, views=None,
                    generator=None, mode: str | None = None, dense_samples: int | None = None) -> dict:
        """Render rays ``[N,3]`` conditioned on ``views`` (from ``encode_views``).

        Training mode: ``train_samples`` jittered stratified samples per ray, differentiable.
        Eval mode: ``mode`` (default: the config's ``render_mode``), ``"fast"`` or ``"dense"``;
        ``dense_samples=N``: N evenly spaced samples per ray, no importance pass (``fastnerf.render``).
        Returns ``dict(rgb [N,3], depth [N], opacity [N], n_samples)`` (field evaluations).
        """
        if views is None:
            raise ValueError("PixelNeRF.render_rays needs views=model.encode_views(images, cameras)")
        cfg = self._config
        n_rays = rays_o.shape[0]
        bg = self._background(background, n_rays, rays_o)
        t_near, t_far = ray_segments(rays_o, rays_d, self.aabb, cfg["near"], cfg["far"], backend)
        mode = mode or cfg["render_mode"]
        if self.training:
            out = self._render_stratified(rays_o, rays_d, t_near, t_far, views, cfg["train_samples"], generator, backend)
        elif dense_samples is not None:
            with torch.no_grad():
                out = self._render_stratified(rays_o, rays_d, t_near, t_far, views, int(dense_samples), None, backend,
                                              jitter=False)
        elif mode == "dense":
            out = self._render_dense(rays_o, rays_d, t_near, t_far, views, backend)
        elif mode == "fast":
            out = self._render_fast(rays_o, rays_d, t_near, t_far, views, backend)
        else:
            raise ValueError(f"render_rays: mode must be one of {RENDER_MODES}, got {mode!r}")
        out["rgb"] = out["rgb"] + (1.0 - out["opacity"][:, None]) * bg
        return out

    def _render_stratified(self, rays_o, rays_d, t_near, t_far, views, n_bins, generator, backend, jitter=True):
        packed_info, t_starts, t_ends, t_points = stratified_bins(t_near, t_far, n_bins, generator, jitter)
        ray_ids = torch.repeat_interleave(torch.arange(rays_o.shape[0], device=rays_o.device), packed_info[:, 1],
                                          output_size=t_points.shape[0])
        points = rays_o[ray_ids] + rays_d[ray_ids] * t_points[:, None]
        rgb, opacity, depth, _ = self._composite(points, rays_d, ray_ids, t_starts, t_ends, packed_info, views, backend)
        return {"rgb": rgb, "opacity": opacity, "depth": depth, "n_samples": int(t_points.shape[0])}

    @torch.no_grad()
    def _render_dense(self, rays_o, rays_d, t_near, t_far, views, backend):
        """pixelNeRF's sampling: 64 bin midpoints, then 32 importance samples from their weights."""
        n_coarse, n_fine = self._config["dense_coarse"], self._config["dense_fine"]
        hit = t_far > t_near
        packed_info, t_starts, t_ends, t_points = stratified_bins(t_near, t_far, n_coarse, jitter=False)
        ray_ids = torch.repeat_interleave(torch.arange(rays_o.shape[0], device=rays_o.device), packed_info[:, 1],
                                          output_size=t_points.shape[0])
        points = rays_o[ray_ids] + rays_d[ray_ids] * t_points[:, None]
        coarse_sigma, coarse_rgb = self.field(points, rays_d[ray_ids], views, backend)
        weights = ops.composite(coarse_sigma, coarse_rgb, t_starts, t_ends, packed_info, backend=backend).weights
        n_hit = int(hit.sum())
        fine = importance_points(t_starts, t_ends, weights, n_hit, n_coarse, n_fine)  # [R, n_fine]
        hit_o, hit_d = rays_o[hit], rays_d[hit]
        fine_points = hit_o[:, None] + hit_d[:, None] * fine[..., None]
        fine_sigma, fine_rgb = self.field(fine_points.reshape(-1, 3), hit_d.repeat_interleave(n_fine, 0), views, backend)
        starts, ends, _, order = merged_intervals(t_points.view(n_hit, n_coarse), fine, t_near[hit], t_far[hit])
        sigma = torch.cat([coarse_sigma.view(n_hit, n_coarse), fine_sigma.view(n_hit, n_fine)], 1).gather(1, order)
        rgb = torch.cat([coarse_rgb.view(n_hit, n_coarse, 3), fine_rgb.view(n_hit, n_fine, 3)], 1)
        rgb = rgb.gather(1, order[..., None].expand(-1, -1, 3))
        total = n_coarse + n_fine
        counts = hit.long() * total
        merged_info = torch.stack([torch.cumsum(counts, 0) - counts, counts], 1)
        color, opacity, depth, _ = ops.composite(sigma.reshape(-1), rgb.reshape(-1, 3), starts.reshape(-1),
                                                 ends.reshape(-1), merged_info, backend=backend)
        return {"rgb": color, "opacity": opacity, "depth": depth, "n_samples": n_hit * total}

    def occupancy(self, views: dict, backend=None) -> torch.Tensor:
        """The occupancy grid of the scene ``views`` show (built once, cached in ``views``)."""
        if "occupied" not in views:
            cfg = self._config
            threshold = cfg["density_threshold"]
            with torch.no_grad():
                occupied, evaluations = occupancy_from_density(lambda p: self.density(p, views, backend), self.aabb,
                                                               cfg["grid_resolution"], threshold)
            views["occupied"], views["grid_evaluations"] = occupied, evaluations
        return views["occupied"]

    @torch.no_grad()
    def _render_fast(self, rays_o, rays_d, t_near, t_far, views, backend):
        cfg = self._config
        occupied = self.occupancy(views, backend)
        diagonal = float((self.aabb[3:] - self.aabb[:3]).norm())
        out = march_and_composite(
            lambda p, d: self.field(p, d, views, backend), rays_o.float().contiguous(), rays_d.float().contiguous(),
            (self.aabb, occupied), step_size=diagonal / cfg["march_steps"], t_near=t_near, t_far=t_far,
            early_stop_eps=cfg["early_stop_eps"], samples_per_round=8, backend=backend)
        return {"rgb": out["values"], "opacity": out["opacity"], "depth": out["depth"], "n_samples": out["n_samples"]}

    def extra_repr(self) -> str:
        return f"render_mode={self._config['render_mode']!r}, hidden={self.hidden}, blocks={self.n_blocks}"
