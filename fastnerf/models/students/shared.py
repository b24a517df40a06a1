"""Approach 3, ``shared``: a view encoder (pose -> code) shared by an image decoder and a NeRF.

Training: the code of each view is decoded to the image (as ``pose``) and also concatenated to
the frequency encoding of every sample along a random subset of that view's rays, which a NeRF
MLP turns into density and colour, rendered through the ops (``march_rays`` in the teacher's
occupancy grid, ``composite``). Both losses flow into the encoder: the NeRF's asks the code to
carry what a 3D field needs (the report's argument for the shared backbone).
Inference: encoder + decoder only; like ``pose`` it renders the one camera it was trained for.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...fields.frequency import FrequencyEncoding
from ...fields.mlp import MLP, trunc_exp
from ...fields.occupancy import OccupancyGrid
from ...volume import render_rays
from ..nerf import marched_rays, refuse_unbounded
from ...fields.upsampling import UPSAMPLERS
from ...options import Option
from . import register_student
from ._fixed_camera import FixedCameraRendering, PoseToImage, camera_config, default_n_up, scene_frame


OPTIONS = (
    Option("upsampler", "bilinear", "decoder upsampling", choices=UPSAMPLERS, flag=True),
    Option("channels", 64, "feature-map channels", minimum=1),
    Option("hidden", 256, "pose MLP width", minimum=1),
    Option("nerf_samples", 64, "the radiance-field branch's marching steps per box diagonal", minimum=1),
)


@register_student("shared", lr=5e-3, batch_views=4, nerf_rays=256, nerf_weight=0.5, options=OPTIONS)
class SharedStudent(FixedCameraRendering, nn.Module):
    """Shared-backbone student (see the module docstring).

    Args: as ``PoseStudent``, plus the NeRF branch's ``aabb``, ``ndc``, ``grid_resolution``
    (occupancy copied from the teacher), ``nerf_freqs`` (position encoding), ``nerf_hidden``,
    ``nerf_layers`` and ``nerf_samples`` (marching steps per box diagonal), and ``background``.
    """

    kind = "shared"

    def __init__(self, *, width: int, height: int, fx: float, fy: float, cx: float, cy: float, centre=(0.0, 0.0, 0.0),
                 scale: float = 1.0, position_freqs: int = 6, rotation_freqs: int = 4, hidden: int,
                 n_hidden: int = 3, code_dim: int = 256, channels: int, n_up: int | None = None,
                 upsampler: str, min_channels: int = 16, aabb=(-1.5, -1.5, -1.5, 1.5, 1.5, 1.5), ndc=None,
                 grid_resolution: int = 64, nerf_freqs: int = 6, nerf_hidden: int = 128, nerf_layers: int = 3,
                 nerf_samples: int, background=(1.0, 1.0, 1.0)):
        # hidden, channels, upsampler, nerf_samples: defaults from OPTIONS
        super().__init__()
        n_up = default_n_up(width, height) if n_up is None else int(n_up)
        self.camera = {"width": int(width), "height": int(height), "fx": float(fx), "fy": float(fy),
                       "cx": float(cx), "cy": float(cy)}
        aabb = [float(v) for v in aabb]
        self._config = dict(self.camera, centre=[float(v) for v in centre], scale=float(scale),
                            position_freqs=int(position_freqs), rotation_freqs=int(rotation_freqs), hidden=int(hidden),
                            n_hidden=int(n_hidden), code_dim=int(code_dim), channels=int(channels), n_up=n_up,
                            upsampler=upsampler, min_channels=int(min_channels), aabb=aabb,
                            ndc=None if ndc is None else {k: float(v) for k, v in ndc.items()},
                            grid_resolution=int(grid_resolution), nerf_freqs=int(nerf_freqs),
                            nerf_hidden=int(nerf_hidden), nerf_layers=int(nerf_layers), nerf_samples=int(nerf_samples),
                            background=[float(v) for v in background])
        self.net = PoseToImage(width=width, height=height, centre=centre, scale=scale, position_freqs=position_freqs,
                               rotation_freqs=rotation_freqs, hidden=hidden, n_hidden=n_hidden, code_dim=code_dim,
                               channels=channels, n_up=n_up, upsampler=upsampler, min_channels=min_channels)
        self.register_buffer("aabb", torch.tensor(aabb))
        self.grid = OccupancyGrid(self.aabb.clone(), grid_resolution)
        self.step_size = math.dist(aabb[:3], aabb[3:]) / nerf_samples
        self.nerf_encoding = FrequencyEncoding(3, nerf_freqs)
        self.nerf = MLP(self.nerf_encoding.out_dim + code_dim, 4, width=nerf_hidden, n_hidden=nerf_layers)

    def config(self) -> dict:
        return {k: dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v
                for k, v in self._config.items()}

    @classmethod
    def config_for(cls, teacher, dataset, sampler, **overrides) -> dict:
        refuse_unbounded(teacher, "shared", "the shared student's NeRF branch marches the teacher's occupancy grid "
                         "in the world box, which here lives in contracted space")
        centre, scale = scene_frame(teacher, dataset)
        t = teacher.config()
        return {**camera_config(sampler.template), "centre": centre, "scale": scale, "aabb": t["aabb"],
                "ndc": t.get("ndc"), "grid_resolution": t.get("grid_resolution", 64),
                "background": dataset.background.tolist(), **overrides}

    def init_from_teacher(self, teacher) -> str:
        """Use the teacher's occupancy grid for the NeRF branch's empty-space skipping; returns what
        was copied (``ValueError`` saying why for a grid of another resolution)."""
        theirs, own = tuple(teacher.grid.occupied.shape), tuple(self.grid.occupied.shape)
        if theirs != own:
            raise ValueError(f"the teacher's occupancy grid has {theirs} cells, the student's {own}")
        self.grid.load_state_dict(teacher.grid.state_dict())
        return "occupancy grid"

    # ----------------------------------------------------------------------------- inference

    # ----------------------------------------------------------------------------- the NeRF branch
    def nerf_render(self, code: torch.Tensor, rays_o: torch.Tensor, rays_d: torch.Tensor, *, generator=None,
                    background=None, backend=None) -> torch.Tensor:  # code [C], rays [n,3] -> rgb [n,3]
        """The NeRF branch's colours of rays (world space) of one view, conditioned on its ``code``."""
        c = self._config
        rays_o, rays_d = marched_rays(c["ndc"], rays_o, rays_d)

        def field(positions, directions):  # [S,3] -> (sigma [S], rgb [S,3])
            unit = ((positions - self.aabb[:3]) / (self.aabb[3:] - self.aabb[:3])).clamp(0.0, 1.0)
            encoded = self.nerf_encoding(unit * 2 - 1, backend=backend)
            h = self.nerf(torch.cat([encoded, code.expand(encoded.shape[0], -1)], dim=1))
            return trunc_exp(h[:, 0] - 1.0), torch.sigmoid(h[:, 1:])

        return render_rays(field, rays_o, rays_d, self.grid, step_size=self.step_size, background=background,
                           train=True, generator=generator, backend=backend)["rgb"]

    def distill_loss(self, pool, generator, *, step: int, batch_views: int, nerf_rays: int = 1024,
                     nerf_weight: float = 0.5, backend=None, **settings):
        cameras, images = pool.draw_views(batch_views, generator)  # images [B,H,W,3]
        codes = self.net.code(cameras.c2w, backend=backend)  # [B,C]
        image_loss = F.mse_loss(self.net.decode(codes), images)
        loss, stats = image_loss, {"mse": float(image_loss.detach())}
        per_view = max(1, nerf_rays // batch_views) if nerf_weight > 0 else 0
        if per_view:
            draw_device = generator.device if generator is not None else torch.device("cpu")
            nerf_losses = []
            for b in range(batch_views):
                pixel = torch.randint(cameras.width * cameras.height, (per_view,), generator=generator,
                                      device=draw_device).to(images.device)
                rows, cols = pixel // cameras.width, pixel % cameras.width
                rays_o, rays_d = cameras.pixel_rays(torch.full_like(rows, b), rows, cols)
                rgb = self.nerf_render(codes[b], rays_o, rays_d, generator=generator, background=pool.background,
                                       backend=backend)
                nerf_losses.append(F.mse_loss(rgb, images[b, rows, cols]))
            nerf_loss = torch.stack(nerf_losses).mean()
            loss = loss + nerf_weight * nerf_loss
            stats["nerf_mse"] = float(nerf_loss.detach())
        return loss, stats
