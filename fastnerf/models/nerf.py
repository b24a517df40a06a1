"""The NeRF teacher: ``ray_aabb -> march_rays (occupancy grid) -> fields -> composite``.

Two encodings:

- ``"hash"`` (Instant-NGP): multiresolution hash grid, a one-hidden-layer density MLP with a
  truncated-exp density, and a two-hidden-layer colour MLP fed the density MLP's features and
  the spherical-harmonics encoding of the view direction;
- ``"frequency"`` (vanilla NeRF): frequency encoding and the classic skip-connected MLP. The
  occupancy grid takes the place of the coarse network (no coarse/fine pair).

Bounded scenes are marched inside ``aabb``. Forward-facing captures (LLFF) are rendered in NDC
(normalised device coordinates, as in the original NeRF): rays start on the near plane
``z = -ndc_near`` of the (recentred) world and the infinite frustum becomes the cube
``[-1, 1]^3``; ``aabb`` is then a box in NDC.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .. import ops
from ..fields.mlp import MLP, trunc_exp
from ..fields.occupancy import OccupancyGrid
from ..fields.spherical_harmonics import spherical_harmonics
from ..supersampling import check_factor
from ..volume import render_rays
from . import register_model

ENCODINGS = ("hash", "frequency")


def ndc_rays(rays_o, rays_d, *, fx_ratio: float, fy_ratio: float, near: float = 1.0):
    """World rays (cameras looking along -Z) to NDC rays; ``fx_ratio = 2 fx / width``, ``fy_ratio = 2 fy / height``."""
    t = -(near + rays_o[:, 2]) / rays_d[:, 2]
    o = rays_o + t[:, None] * rays_d
    ox, oy, oz = o.unbind(-1)
    dx, dy, dz = rays_d.unbind(-1)
    o_ndc = torch.stack([-fx_ratio * ox / oz, -fy_ratio * oy / oz, 1 + 2 * near / oz], -1)
    d_ndc = torch.stack([-fx_ratio * (dx / dz - ox / oz), -fy_ratio * (dy / dz - oy / oz), -2 * near / oz], -1)
    return o_ndc, d_ndc


@register_model("nerf")
class NeRF(nn.Module):
    """Radiance field teacher (see the module docstring).

    Args:
        encoding: ``"hash"`` or ``"frequency"``.
        aabb: ``(xmin, ymin, zmin, xmax, ymax, zmax)`` marched region (NDC box when ``ndc`` is set).
        ndc: ``None`` or ``{"fx_ratio", "fy_ratio", "near"}`` for forward-facing captures.
        background: default background colour when ``render_rays`` gets none.
        grid_resolution: occupancy grid cells per axis.
        steps_per_diagonal: marching step = aabb diagonal / this.
        supersample: rays per pixel side the model was trained with, and ``fastnerf.render``
            renders with by default (``fastnerf.supersampling``).
        hash_levels, hash_features, hash_log2_size, hash_min_res, hash_max_res: hash grid.
        hidden: width of the tiny hash MLPs; color_layers: hidden layers of the colour MLP;
            geo_features: density-MLP features passed to colour.
        freq_pos, freq_dir, width, depth: frequency-encoding MLP.
    """

    kind = "nerf"

    def __init__(self, *, encoding: str = "hash", aabb=(-1.5, -1.5, -1.5, 1.5, 1.5, 1.5), ndc=None,
                 background=(1.0, 1.0, 1.0), grid_resolution: int = 64, steps_per_diagonal: int = 512,
                 hash_levels: int = 16, hash_features: int = 2, hash_log2_size: int = 15, hash_min_res: int = 16,
                 hash_max_res: int = 1024, grid_warmup: int = 256, hidden: int = 64, color_layers: int = 2, geo_features: int = 15,
                 sh_degree: int = 4, supersample: int = 1,
                 freq_pos: int = 10, freq_dir: int = 4, width: int = 128, depth: int = 6):
        super().__init__()
        if encoding not in ENCODINGS:
            raise ValueError(f"NeRF: encoding must be one of {ENCODINGS}, got {encoding!r}")
        aabb = [float(v) for v in torch.as_tensor(aabb, dtype=torch.float32).tolist()]
        if len(aabb) != 6 or not all(aabb[i] < aabb[i + 3] for i in range(3)):
            raise ValueError(f"NeRF: aabb must be (xmin, ymin, zmin, xmax, ymax, zmax) with min < max, got {aabb}")
        self._config = dict(
            encoding=encoding, aabb=aabb, ndc=None if ndc is None else {k: float(v) for k, v in ndc.items()},
            background=[float(v) for v in background], grid_resolution=int(grid_resolution),
            steps_per_diagonal=int(steps_per_diagonal), hash_levels=int(hash_levels),
            hash_features=int(hash_features), hash_log2_size=int(hash_log2_size), hash_min_res=int(hash_min_res),
            hash_max_res=int(hash_max_res), grid_warmup=int(grid_warmup), hidden=int(hidden), color_layers=int(color_layers),
            geo_features=int(geo_features),
            sh_degree=int(sh_degree), freq_pos=int(freq_pos), freq_dir=int(freq_dir), width=int(width),
            depth=int(depth), supersample=check_factor(supersample, "NeRF: supersample"),
        )
        self.encoding = encoding
        self.supersample = self._config["supersample"]
        self.backend = None  # op backend of the render in progress (None: fastest available)
        self.register_buffer("aabb", torch.tensor(aabb))
        self.register_buffer("background", torch.tensor(self._config["background"]))
        diagonal = math.dist(aabb[:3], aabb[3:])
        self.step_size = diagonal / steps_per_diagonal
        self.grid = OccupancyGrid(self.aabb.clone(), grid_resolution, warmup_steps=grid_warmup)
        if encoding == "hash":
            # Instant-NGP init: table uniform in +-1e-4.
            self.table = nn.Parameter(torch.rand(hash_levels, 2**hash_log2_size, hash_features) * 2e-4 - 1e-4)
            self.density_mlp = MLP(hash_levels * hash_features, 1 + geo_features, width=hidden, n_hidden=1, bias=False)
            self.color_mlp = MLP(geo_features + sh_degree**2, 3, width=hidden, n_hidden=color_layers, bias=False)
        else:
            pos_dim = 3 * (1 + 2 * freq_pos)
            self.trunk = MLP(pos_dim, width + 1, width=width, n_hidden=depth, skips=(depth // 2 + 1,) if depth > 2 else ())
            self.color_mlp = MLP(width + 3 * (1 + 2 * freq_dir), 3, width=width // 2, n_hidden=1)

    def config(self) -> dict:
        """Plain values that rebuild this architecture: ``build_model("nerf", **config)``."""
        return {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v)
                for k, v in self._config.items()}

    # ----------------------------------------------------------------------------- fields
    def _features(self, positions: torch.Tensor):  # [S,3] world (or NDC) -> (sigma [S], features [S,F])
        unit = ((positions - self.aabb[:3]) / (self.aabb[3:] - self.aabb[:3])).clamp(0.0, 1.0)
        c = self._config
        if self.encoding == "hash":
            h = self.density_mlp(ops.hash_encode(unit, self.table, n_min=c["hash_min_res"], n_max=c["hash_max_res"],
                                                 backend=self.backend))
        else:
            h = self.trunk(ops.freq_encode(unit * 2 - 1, c["freq_pos"], backend=self.backend))
        return trunc_exp(h[:, 0] - 1.0 if self.encoding == "frequency" else h[:, 0]), h[:, 1:]

    def density(self, positions: torch.Tensor) -> torch.Tensor:
        """Density ``sigma [S]`` at ``positions [S,3]`` (in the marched space: world, or NDC)."""
        return self._features(positions)[0]

    def field(self, positions: torch.Tensor, directions: torch.Tensor):
        """``(sigma [S], rgb [S,3])`` at ``positions [S,3]`` seen along ``directions [S,3]``."""
        sigmas, features = self._features(positions)
        directions = directions / directions.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        if self.encoding == "hash":
            view = spherical_harmonics(directions, self._config["sh_degree"])
        else:
            view = ops.freq_encode(directions, self._config["freq_dir"], backend=self.backend)
        rgb = torch.sigmoid(self.color_mlp(torch.cat([features, view], dim=-1)))
        return sigmas, rgb

    # ----------------------------------------------------------------------------- rendering
    def marching_rays(self, rays_o: torch.Tensor, rays_d: torch.Tensor):
        """The rays in the marched space (NDC for forward-facing models), ``[N,3]`` each."""
        ndc = self._config["ndc"]
        if ndc is None:
            return rays_o, rays_d
        return ndc_rays(rays_o, rays_d, fx_ratio=ndc["fx_ratio"], fy_ratio=ndc["fy_ratio"], near=ndc["near"])

    def render_rays(self, rays_o: torch.Tensor, rays_d: torch.Tensor, *, backend=None, background=None,
                    train: bool = False, generator=None, early_stop_eps: float = 1e-4) -> dict:
        """Volume-render rays ``[N,3]``: ``dict(rgb [N,3], depth [N], opacity [N], n_samples)``.

        ``background``: ``[3]`` or ``[N,3]`` (default: the model's). ``train=True`` jitters the
        march with ``generator``; otherwise rays stop once transmittance < ``early_stop_eps``.
        """
        rays_o, rays_d = self.marching_rays(rays_o, rays_d)
        if background is None:
            background = self.background
        self.backend = backend
        try:
            return render_rays(self.field, rays_o, rays_d, self.grid, step_size=self.step_size, background=background,
                               train=train, generator=generator, early_stop_eps=early_stop_eps, backend=backend)
        finally:
            self.backend = None

    @torch.no_grad()
    def update_grid(self, *, step: int, generator=None, n_samples: int | None = None) -> None:
        """Refresh the occupancy grid at training ``step`` from the opacity of one marching step
        (``sigma * step_size``; threshold 0.01), sampling ``n_samples`` cells (all during warm-up)."""
        self.grid.update(lambda x: self.density(x) * self.step_size, step=step, n_samples=n_samples,
                         generator=generator)

    def occupancy(self) -> float:
        """Fraction of occupied grid cells."""
        return float(self.grid.occupied.float().mean())
