"""The NeRF teacher: ``ray_aabb -> march_rays (occupancy grid) -> fields -> composite``.

Two encodings:

- ``"hash"`` (Instant-NGP): multiresolution hash grid, a one-hidden-layer density MLP with a
  truncated-exp density, and a two-hidden-layer colour MLP fed the density MLP's features and
  the spherical-harmonics encoding of the view direction;
- ``"frequency"`` (vanilla NeRF): frequency encoding and the classic skip-connected MLP. The
  occupancy grid takes the place of the coarse network (no coarse/fine pair).

The model composes ``fastnerf.fields`` modules (position encoding -> geometry MLP -> density and
features; direction encoding + features -> colour MLP); the op backend travels as an argument
of every call, never as model state, so one model serves several threads or replicas.

Bounded scenes are marched inside ``aabb``. Forward-facing captures (LLFF) are rendered in NDC
(normalised device coordinates, as in the original NeRF): rays start on the near plane
``z = -ndc_near`` of the (recentred) world and the infinite frustum becomes the cube
``[-1, 1]^3``; ``aabb`` is then a box in NDC.

Unbounded scenes (``contraction="mipnerf360"``) cover all of space: a position is contracted
(``fastnerf.reference.march_rays.contract``, mip-NeRF 360's map under the inf-norm) into
``[-2, 2]^3`` of ``aabb``'s normalised coordinates before the encoding, which reads
``(u + 2) / 4`` in ``[0, 1]``: ``aabb`` (the inner box) is the middle half, at full detail, and the
far field shrinks into the shell around it. The occupancy grid lives in the same contracted
space. Rays run from ``near`` to ``far`` (world distances) with cone stepping (``cone_angle``:
a sample's step grows with its distance, Instant-NGP) and, past ``cone_angle / disparity_step``,
steps evenly spaced in disparity (mip-NeRF 360's far-field spacing, which the contracted grid's
cells follow), so a ray to the far plane costs a bounded number of samples; rays that leave
still composite onto the background.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..fields.frequency import FrequencyEncoding
from ..fields.hash_grid import HashEncoding
from ..fields.mlp import MLP, trunc_exp
from ..fields.occupancy import OccupancyGrid
from ..fields.scene_space import encoding_input, intervals_per_ray, ray_range, scene_config
from ..fields.spherical_harmonics import SphericalHarmonicsEncoding
from ..errors import UserError
from ..supersampling import check_factor
from ..volume import render_rays
from .registry import register_model

ENCODINGS = ("hash", "frequency")
# State-dict names of releases before the model composed fields/ modules -> today's.
_RENAMED_PREFIXES = (("table", "position_encoding.table"), ("density_mlp.", "geometry_mlp."), ("trunk.", "geometry_mlp."))


def ndc_rays(rays_o, rays_d, *, fx_ratio: float, fy_ratio: float, near: float = 1.0):
    """World rays (cameras looking along -Z) to NDC rays; ``fx_ratio = 2 fx / width``, ``fy_ratio = 2 fy / height``."""
    t = -(near + rays_o[:, 2]) / rays_d[:, 2]
    o = rays_o + t[:, None] * rays_d
    ox, oy, oz = o.unbind(-1)
    dx, dy, dz = rays_d.unbind(-1)
    o_ndc = torch.stack([-fx_ratio * ox / oz, -fy_ratio * oy / oz, 1 + 2 * near / oz], -1)
    d_ndc = torch.stack([-fx_ratio * (dx / dz - ox / oz), -fy_ratio * (dy / dz - oy / oz), -2 * near / oz], -1)
    return o_ndc, d_ndc


def marched_rays(ndc, rays_o, rays_d):
    """World rays in a model's marched space: themselves, or NDC rays for an ``ndc`` config
    (``{"fx_ratio", "fy_ratio", "near"}``: forward-facing captures)."""
    if ndc is None:
        return rays_o, rays_d
    return ndc_rays(rays_o, rays_d, fx_ratio=ndc["fx_ratio"], fy_ratio=ndc["fy_ratio"], near=ndc["near"])


def refuse_unbounded(teacher, kind: str, reason: str) -> None:
    """A ``UserError`` naming ``reason`` when ``teacher`` models an unbounded (contracted) scene,
    for a student ``kind`` that cannot follow it there."""
    if teacher.config().get("contraction") is not None:
        raise UserError(f"{kind}: the teacher models an unbounded scene (--scene unbounded: contracted space, "
                        f"cone steps to a far plane) and {reason}; distil it into a student that follows it there "
                        "(pose, lightfield, hybrid), or train a bounded teacher (--scene bounded)")


@register_model("nerf", task="teacher",
                no_export="it is a volume-rendering teacher (custom ops, data-dependent sample counts)")
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
        contraction: ``None`` (bounded: the model lives in ``aabb``) or ``"mipnerf360"``
            (unbounded: ``aabb`` is the inner box of contracted space; see the module docstring).
        cone_angle: cone stepping, a sample's step is ``max(t * cone_angle, step)`` (0: fixed steps).
        disparity_step: with cone stepping, steps of at least ``disparity_step * t^2`` past
            ``t = cone_angle / disparity_step``: far samples evenly spaced in disparity (0: none).
        near, far: where rays start and end (world distances) when unbounded; ``far`` is required then.
    """

    kind = "nerf"

    def __init__(self, *, encoding: str = "hash", aabb=(-1.5, -1.5, -1.5, 1.5, 1.5, 1.5), ndc=None,
                 background=(1.0, 1.0, 1.0), grid_resolution: int = 64, steps_per_diagonal: int = 512,
                 hash_levels: int = 16, hash_features: int = 2, hash_log2_size: int = 15, hash_min_res: int = 16,
                 hash_max_res: int = 1024, grid_warmup: int = 256, hidden: int = 64, color_layers: int = 2,
                 geo_features: int = 15, sh_degree: int = 4, supersample: int = 1,
                 freq_pos: int = 10, freq_dir: int = 4, width: int = 128, depth: int = 6,
                 contraction: str | None = None, cone_angle: float = 0.0, near: float = 0.0, far: float | None = None,
                 disparity_step: float = 0.0):
        super().__init__()
        if encoding not in ENCODINGS:
            raise ValueError(f"NeRF: encoding must be one of {ENCODINGS}, got {encoding!r}")
        scene = scene_config(contraction, cone_angle, near, far, disparity_step, ndc=ndc, who="NeRF")
        aabb = [float(v) for v in torch.as_tensor(aabb, dtype=torch.float32).tolist()]
        if len(aabb) != 6 or not all(aabb[i] < aabb[i + 3] for i in range(3)):
            raise ValueError(f"NeRF: aabb must be (xmin, ymin, zmin, xmax, ymax, zmax) with min < max, got {aabb}")
        self._config = dict(
            encoding=encoding, aabb=aabb, ndc=None if ndc is None else {k: float(v) for k, v in ndc.items()},
            background=[float(v) for v in background], grid_resolution=int(grid_resolution),
            steps_per_diagonal=int(steps_per_diagonal), hash_levels=int(hash_levels),
            hash_features=int(hash_features), hash_log2_size=int(hash_log2_size), hash_min_res=int(hash_min_res),
            hash_max_res=int(hash_max_res), grid_warmup=int(grid_warmup), hidden=int(hidden),
            color_layers=int(color_layers), geo_features=int(geo_features),
            sh_degree=int(sh_degree), freq_pos=int(freq_pos), freq_dir=int(freq_dir), width=int(width),
            depth=int(depth), supersample=check_factor(supersample, "NeRF: supersample"),
            **scene,
        )
        self.contraction, self.cone_angle, self.disparity_step = contraction, float(cone_angle), float(disparity_step)
        self.supersample = self._config["supersample"]
        self.register_buffer("aabb", torch.tensor(aabb))
        self.register_buffer("background", torch.tensor(self._config["background"]))
        self.step_size = math.dist(aabb[:3], aabb[3:]) / steps_per_diagonal
        self.grid = OccupancyGrid(self.aabb.clone(), grid_resolution, warmup_steps=grid_warmup, unit_step=self.step_size,
                                  contraction=contraction, cone_angle=self.cone_angle,
                                  disparity_step=self.disparity_step)
        if encoding == "hash":  # Instant-NGP: tiny MLPs without biases, SH view encoding
            self.position_encoding = HashEncoding(hash_levels, hash_features, hash_log2_size, hash_min_res,
                                                  hash_max_res)
            self.geometry_mlp = MLP(self.position_encoding.out_dim, 1 + geo_features, width=hidden, n_hidden=1,
                                    bias=False)
            self.direction_encoding = SphericalHarmonicsEncoding(sh_degree)
            self.color_mlp = MLP(geo_features + self.direction_encoding.out_dim, 3, width=hidden,
                                 n_hidden=color_layers, bias=False)
            self.input_scale, self.input_shift, self.density_shift = 1.0, 0.0, 0.0  # the grid reads [0, 1]
        else:  # vanilla NeRF: skip-connected trunk, frequency-encoded view direction
            self.position_encoding = FrequencyEncoding(3, freq_pos)
            self.geometry_mlp = MLP(self.position_encoding.out_dim, width + 1, width=width, n_hidden=depth,
                                    skips=(depth // 2 + 1,) if depth > 2 else ())
            self.direction_encoding = FrequencyEncoding(3, freq_dir)
            self.color_mlp = MLP(width + self.direction_encoding.out_dim, 3, width=width // 2, n_hidden=1)
            self.input_scale, self.input_shift, self.density_shift = 2.0, -1.0, -1.0  # [-1, 1]; sparse start

    def config(self) -> dict:
        """Plain values that rebuild this architecture: ``build_model("nerf", **config)``."""
        return {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v)
                for k, v in self._config.items()}

    @staticmethod
    def upgrade_state_dict(state: dict) -> dict:
        """Checkpoints of releases before fields/ composition load after renaming their keys."""
        renamed = {}
        for key, value in state.items():
            for old, new in _RENAMED_PREFIXES:
                if key == old or (old.endswith(".") and key.startswith(old)):
                    key = new + key[len(old):]
                    break
            renamed[key] = value
        return renamed

    # ----------------------------------------------------------------------------- fields
    def unit_positions(self, positions: torch.Tensor) -> torch.Tensor:
        """``positions [S,3]`` (world or NDC) -> the encoding's input ``[S,3]`` in ``[0, 1]``:
        the box normalised (clamped), or the contracted position ``(u + 2) / 4``."""
        return encoding_input(positions, self.aabb, self.contraction)

    def _features(self, positions: torch.Tensor, backend=None):  # [S,3] (world or NDC) -> sigma [S], feat [S,F]
        unit = self.unit_positions(positions)
        encoded = self.position_encoding(unit * self.input_scale + self.input_shift, backend=backend)
        h = self.geometry_mlp(encoded)
        return trunc_exp(h[:, 0] + self.density_shift), h[:, 1:]

    def geometry(self, positions: torch.Tensor, *, backend=None):
        """``(sigma [S], features [S,F])`` at ``positions [S,3]``: density and the colour MLP's geometry input."""
        return self._features(positions, backend)

    def density(self, positions: torch.Tensor, *, backend=None) -> torch.Tensor:
        """Density ``sigma [S]`` at ``positions [S,3]`` (in the marched space: world, or NDC)."""
        return self._features(positions, backend)[0]

    def color(self, features: torch.Tensor, directions: torch.Tensor, *, backend=None) -> torch.Tensor:
        """``rgb [S,3]`` from the geometry ``features [S,F]`` seen along ``directions [S,3]``."""
        directions = directions / directions.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        view = self.direction_encoding(directions, backend=backend)
        return torch.sigmoid(self.color_mlp(torch.cat([features, view], dim=-1)))

    def field(self, positions: torch.Tensor, directions: torch.Tensor, *, backend=None):
        """``(sigma [S], rgb [S,3])`` at ``positions [S,3]`` seen along ``directions [S,3]``."""
        sigmas, features = self._features(positions, backend)
        return sigmas, self.color(features, directions, backend=backend)

    # ----------------------------------------------------------------------------- rendering
    def marching_rays(self, rays_o: torch.Tensor, rays_d: torch.Tensor):
        """The rays in the marched space (NDC for forward-facing models), ``[N,3]`` each."""
        return marched_rays(self._config["ndc"], rays_o, rays_d)

    def render_rays(self, rays_o: torch.Tensor, rays_d: torch.Tensor, *, backend=None, background=None,
                    train: bool = False, generator=None, early_stop_eps: float = 1e-4,
                    dense_samples: int | None = None) -> dict:
        """Volume-render rays ``[N,3]``: ``dict(rgb [N,3], depth [N], opacity [N], n_samples)``.

        ``background``: ``[3]`` or ``[N,3]`` (default: the model's). ``train=True`` jitters the
        march with ``generator``; otherwise rays stop once transmittance < ``early_stop_eps``.
        ``dense_samples=n``: vanilla NeRF sampling, ``n`` evenly spaced samples between each
        ray's entry and exit of the box, no occupancy grid, no early termination.
        """
        rays_o, rays_d = self.marching_rays(rays_o, rays_d)
        if background is None:
            background = self.background

        def field(positions, directions):
            return self.field(positions, directions, backend=backend)

        def geometry(positions):
            return self._features(positions, backend)

        def color(features, directions):
            return self.color(features, directions, backend=backend)

        t_near, t_far = self.ray_range(rays_d)
        return render_rays(field, rays_o, rays_d, self.grid, step_size=self.step_size, background=background,
                           train=train, generator=generator, early_stop_eps=early_stop_eps, backend=backend,
                           dense_samples=dense_samples, stages=(geometry, color), t_near=t_near, t_far=t_far,
                           cone_angle=self.cone_angle, disparity_step=self.disparity_step)

    def ray_range(self, rays_d: torch.Tensor):
        """``(t_near [N], t_far [N])`` of an unbounded model's rays (``near`` to ``far`` whatever the
        directions' lengths), or ``(None, None)``: bounded rays span the box (``ray_aabb``)."""
        return ray_range(rays_d, self._config["near"], self._config["far"])

    def intervals_per_ray(self) -> float:
        """About how many intervals a ray marches while every cell is occupied (the ray batch's
        first guess): half a box diagonal's steps; unbounded, near to far with cone steps."""
        config = self._config
        if config["far"] is None:
            return config["steps_per_diagonal"] / 2.0
        return intervals_per_ray(config["near"], config["far"], self.step_size, self.cone_angle, self.disparity_step)

    @torch.no_grad()
    def update_grid(self, *, step: int, generator=None, n_samples: int | None = None, reduce=None,
                    backend=None) -> None:
        """Refresh the occupancy grid at training ``step`` from the opacity of one marching step
        (``sigma * step_size``, the grid's ``unit_step``; cone stepping: the step there; threshold
        0.01), sampling ``n_samples`` cells (all during warm-up). ``reduce(density_ema)``: combines the replicas' estimates in
        place (data-parallel training)."""
        self.grid.update(lambda x: self.density(x, backend=backend), step=step, n_samples=n_samples,
                         generator=generator, reduce=reduce)

    @torch.no_grad()
    def rebuilt_buffers(self, *, backend=None) -> dict:
        """``{state-dict name: tensor}`` of the occupancy grid rebuilt from the current weights
        (``OccupancyGrid.rebuild``); the model keeps its own grid. The engine stores this with the
        averaged weights, so a loaded model marches the grid of the weights it renders with."""
        return self.grid.rebuilt_state(lambda x: self.density(x, backend=backend), prefix="grid.")

    def occupancy(self) -> float:
        """Fraction of occupied grid cells."""
        return float(self.grid.occupied.float().mean())
