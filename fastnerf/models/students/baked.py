"""``baked``: the teacher baked into a sparse grid and rendered by deferred shading (after SNeRG).

At inference each pixel casts one ray. One fused op, ``fastnerf.ops.baked_render``, marches it
through the grid's occupied cells, interpolates the baked density and F features trilinearly
and composites the features with early termination (no per-sample tensor is made); then one
small MLP per pixel turns the composited features, divided by the opacity, and the view
direction's spherical harmonics into a colour, laid over the background by the opacity:

    rgb = opacity * sigmoid(MLP([features / opacity, SH(d)])) + (1 - opacity) * background

The bake (``_baking.py``) stores the hash teacher's density and its geometry features (the
input of its colour MLP) at the grid's vertices, and the MLP starts as the teacher's colour MLP,
so the baked model renders the teacher's picture from the start (exactly where one surface
sample dominates a pixel). Fine-tuning then fits the grid values and the MLP to teacher renders
at the teacher's own sub-rays (one ray per pixel learns the anti-aliased picture) and to the
real images; only the grid rows the rays touched are updated (``row_sparse`` parameter group).

Forward-facing (NDC) teachers are followed into NDC, as the hybrid does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...cameras import Camera
from ...errors import UserError
from ...fields.mlp import MLP
from ...fields.spherical_harmonics import SphericalHarmonicsEncoding
from ...options import Option
from ...ops import baked_render, ray_aabb
from ..nerf import marched_rays, refuse_unbounded
from . import register_student
from ._baking import bake

MIN_OPACITY = 1e-3  # features are divided by max(opacity, this): a fainter pixel shows its background
SKIP_OPACITY = 1e-4  # inference: pixels this transparent get no MLP evaluation
# ``chunk`` bounds memory in rays of a volume renderer, whose rays each hold tens of samples'
# tensors; a baked ray holds none (its features and the MLP's activations, ~0.5 KB), so the same
# memory renders this many times the rays per call, and a frame takes fewer calls.
RAYS_PER_CHUNK_RAY = 8
BAKED_FEATURES = 7  # feature channels a vertex stores by default (the ``features`` option)


OPTIONS = (
    Option("max_resolution", 256, "bake: grid cells along the box's longest side at most", flag=True, metavar="R",
           minimum=2),
    # 24 MB: a grid that mostly fits a CPU's L3 renders faster than a finer one, at the same PSNR
    # after fine-tuning (tabletop, 16 channels: 32.01 dB either way, 10.0 ms at 31 MiB against 11.6
    # at 118 MiB); with 8 channels a vertex, 24 MB holds the grid 48 MB held at 16
    Option("memory_mb", 24.0, "bake: the grid's memory limit (the resolution drops to fit)", flag=True,
           metavar="MB", minimum=1.0),
    # 7: a hash teacher's 15 geometry features hold over 99.9% of their energy in 7 principal
    # directions (tabletop), so 1 + 7 channels: 32-byte rows, half the bytes a sample reads
    Option("features", BAKED_FEATURES, "bake: feature channels stored per vertex, the teacher's geometry "
           "features projected on their leading principal directions (the teacher's count or more: all)",
           minimum=1),
    # 1e-2: the teacher's own occupancy rule (Instant-NGP's: one step absorbing 1%). On the tabletop
    # the bake-only PSNR is the same as at 1e-3 (28.58 against 28.57 dB) with 15% of the cells
    # kept instead of 23%: the march visits fewer empty-looking cells (1.2x at 100x100, 1.45x at 400)
    Option("threshold", 1e-2, "bake: a cell whose densest corner absorbs less in one step is empty",
           minimum=0.0, maximum=1.0),
    Option("early_stop_eps", 1e-4, "a ray stops once its transmittance falls below this", minimum=0.0,
           maximum=0.5),
)


# lr_half_life 6000: the rates stay high through a 5-minute run (~8-10k steps). On the tabletop
# (teacher 33.21 dB, 5 minutes each): half-life 1000 31.88 dB, 3000 32.15, 6000 32.19 (twice),
# 20000 32.17; with 1000 the held-out PSNR had stopped rising by step ~5000 at a tenth of the rates.
# lr 4e-3 (the colour MLP's; was 2e-3) then 32.23, 8192 rays a step 32.26, both 32.25.
@register_student("baked", lr=4e-3, grid_lr=1e-2, rays=4096, batch_views=1, ema_decay=None, lr_half_life=6000,
                  options=OPTIONS,
                  no_export="it marches its grid with fastnerf's baked_render op, whose sample count per ray "
                  "depends on the data; neither torch.export nor ONNX can hold that")
class BakedStudent(nn.Module):
    """A baked sparse grid + a per-pixel colour MLP (module docstring).

    Args:
        aabb: the baked box (marched space: world, or NDC); set by the bake.
        resolution: cells per axis ``(Rx, Ry, Rz)``; n_vertices: stored vertices (set by the bake).
        features: F, feature channels per vertex (at most the teacher's ``geo_features``: their leading
            principal directions when fewer).
        ndc: ``None`` or the teacher's NDC transform.
        step_size: marching step (default: the teacher's).
        early_stop_eps: a ray stops once its transmittance falls below this.
        hidden, color_layers, sh_degree: the colour MLP (the teacher's layout).
        max_resolution, memory_mb, threshold: the bake (``_baking.bake``): cells along the longest
            side at most, the grid's memory limit, and the per-step opacity below which a cell is empty.
        background: the colour a transparent pixel shows.
    """

    kind = "baked"

    def __init__(self, *, aabb=(-1.5, -1.5, -1.5, 1.5, 1.5, 1.5), resolution=(2, 2, 2), n_vertices: int = 0,
                 features: int, ndc=None, step_size: float = 0.01, early_stop_eps: float,
                 hidden: int = 64, color_layers: int = 2, sh_degree: int = 4, max_resolution: int, memory_mb: float,
                 threshold: float, background=(1.0, 1.0, 1.0)):
        super().__init__()
        resolution = [int(r) for r in resolution]
        if len(resolution) != 3 or min(resolution) < 1:
            raise ValueError(f"baked: resolution must be three positive ints, got {resolution}")
        if features < 1:
            raise ValueError(f"baked: features must be positive, got {features}")
        if not 0.0 <= early_stop_eps < 1.0:
            raise ValueError(f"baked: early_stop_eps must lie in [0, 1), got {early_stop_eps}")
        self._config = dict(aabb=[float(v) for v in aabb], resolution=resolution, n_vertices=int(n_vertices),
                            features=int(features), ndc=None if ndc is None else {k: float(v) for k, v in ndc.items()},
                            step_size=float(step_size), early_stop_eps=float(early_stop_eps), hidden=int(hidden),
                            color_layers=int(color_layers), sh_degree=int(sh_degree),
                            max_resolution=int(max_resolution), memory_mb=float(memory_mb),
                            threshold=float(threshold), background=[float(v) for v in background])
        self.register_buffer("aabb", torch.tensor(self._config["aabb"]))
        self.register_buffer("background", torch.tensor(self._config["background"]))
        self.register_buffer("occupied", torch.zeros(resolution, dtype=torch.bool))
        self.register_buffer("index", torch.full([r + 1 for r in resolution], -1, dtype=torch.int32))
        self.values = nn.Parameter(torch.zeros(int(n_vertices), 1 + int(features)))
        self.direction_encoding = SphericalHarmonicsEncoding(sh_degree)
        self.color_mlp = MLP(features + self.direction_encoding.out_dim, 3, width=hidden, n_hidden=color_layers,
                             bias=False)

    def config(self) -> dict:
        return {k: dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v
                for k, v in self._config.items()}

    @classmethod
    def config_for(cls, teacher, dataset, sampler, **overrides) -> dict:
        refuse_unbounded(teacher, "baked", "baked's sparse grid lives in the teacher's world box, so everything "
                         "the teacher keeps outside it (the far field) would be lost")
        t = teacher.config()
        if t.get("encoding") != "hash":
            raise UserError("baked: only a hash-encoding teacher can be baked (its colour is a small MLP of "
                            "geometry features, which the bake stores); this teacher uses "
                            f"{t.get('encoding')!r} encoding, whose 128-wide features would not fit a grid")
        keep = int(overrides.pop("features", BAKED_FEATURES))
        config = {"aabb": t["aabb"], "ndc": t.get("ndc"), "features": min(keep, t["geo_features"]),
                  "hidden": t["hidden"],
                  "color_layers": t["color_layers"], "sh_degree": t["sh_degree"], "step_size": teacher.step_size,
                  "background": t.get("background", [1.0, 1.0, 1.0])}
        return {**config, **overrides}

    # ----------------------------------------------------------------------------- bake
    def init_from_teacher(self, teacher, *, log=None) -> str:
        """Bake ``teacher`` (a hash ``NeRF``) into this model's grid and copy its colour MLP; returns
        what was copied (``ValueError`` saying why for a teacher whose colour MLP does not fit)."""
        c = self._config
        teacher_features = teacher.config().get("geo_features", -1) if hasattr(teacher, "geometry") else -1
        if not 0 < c["features"] <= teacher_features or \
                self.color_mlp.in_dim - c["features"] != teacher.color_mlp.in_dim - teacher_features:
            raise ValueError("the teacher's geometry features do not fit the baked grid's colour MLP")
        device = self.values.device
        grid = bake(lambda x: teacher.geometry(x), teacher.grid.aabb.to(device),
                    teacher.grid.occupied.to(device), step_size=c["step_size"], max_resolution=c["max_resolution"],
                    memory_mb=c["memory_mb"], threshold=c["threshold"], channels=1 + teacher_features,
                    keep_features=c["features"])
        self.set_grid(grid.aabb, grid.occupied, grid.index, grid.values)
        state = dict(teacher.color_mlp.state_dict())
        copied = "geometry and features (baked into the grid) and colour MLP"
        if grid.projection is not None:  # the first layer reads the projected features: W f = (W P)(P^T f)
            first = "hidden.0.weight"
            weight = state[first]
            state[first] = torch.cat([weight[:, :teacher_features] @ grid.projection.to(weight),
                                      weight[:, teacher_features:]], 1)
            copied += f" (its first layer on the features' {c['features']} principal directions)"
        self.color_mlp.load_state_dict(state)
        (log or print)(grid.describe())
        return copied

    @torch.no_grad()
    def set_grid(self, aabb, occupied, index, values) -> None:
        """Replace the baked grid (the ``values`` Parameter keeps its identity, so an optimizer
        built before still holds it)."""
        if tuple(index.shape) != tuple(r + 1 for r in occupied.shape):
            raise ValueError(f"baked: index must have one more vertex than occupied has cells per axis, "
                             f"got {tuple(index.shape)} and {tuple(occupied.shape)}")
        if index.numel() and int(index.max()) >= values.shape[0]:
            raise ValueError(f"baked: index names row {int(index.max())} of only {values.shape[0]} values")
        self.aabb.copy_(aabb)
        self.occupied = occupied.to(self.aabb.device).contiguous()
        self.index = index.to(self.aabb.device, torch.int32).contiguous()
        self.values.data = values.to(self.aabb.device, torch.float32).contiguous()
        self._config.update(aabb=[float(v) for v in self.aabb.tolist()], resolution=list(self.occupied.shape),
                            n_vertices=int(self.values.shape[0]))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # A checkpoint's grid has its own size: take it (a resumed run does not bake again).
        shapes = {name: state_dict.get(prefix + name) for name in ("occupied", "index", "values", "aabb")}
        if all(t is not None for t in shapes.values()):
            self.set_grid(shapes["aabb"], shapes["occupied"].bool(), shapes["index"], shapes["values"])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ----------------------------------------------------------------------------- rendering
    def render_rays(self, rays_o: torch.Tensor, rays_d: torch.Tensor, *, backend=None, background=None,
                    offsets: torch.Tensor | None = None) -> dict:
        """``dict(rgb [N,3], depth [N], opacity [N])`` of world rays ``[N,3]`` (one ray per pixel).
        ``offsets [N]`` in [0, 1): marching jitter (training)."""
        rays_o, rays_d = marched_rays(self._config["ndc"], rays_o.float(), rays_d.float())
        rays_o, rays_d = rays_o.contiguous(), rays_d.contiguous()
        t_near, t_far, _ = ray_aabb(rays_o, rays_d, self.aabb, backend=backend)
        out = baked_render(rays_o, rays_d, t_near, t_far, (self.aabb, self.occupied), self.index, self.values,
                           self._config["step_size"], offsets=offsets,
                           early_stop_eps=self._config["early_stop_eps"], backend=backend)
        opacity = out.opacity
        if torch.is_grad_enabled():
            colour = self._shade(out.features / opacity.clamp_min(MIN_OPACITY)[:, None], rays_d, backend)
        else:  # transparent pixels need no MLP
            colour = out.features.new_zeros(out.features.shape[0], 3)
            visible = (opacity > SKIP_OPACITY).nonzero().squeeze(1)
            features = out.features[visible] / opacity[visible].clamp_min(MIN_OPACITY)[:, None]
            colour[visible] = self._shade(features, rays_d[visible], backend)
        bg = self.background if background is None else torch.as_tensor(background, dtype=colour.dtype,
                                                                          device=colour.device)
        rgb = torch.lerp(bg.expand_as(colour), colour, opacity[:, None])  # opacity colour + (1 - opacity) bg
        return {"rgb": rgb, "depth": out.depth, "opacity": opacity}

    def _shade(self, features, directions, backend):  # [M,F], [M,3] -> [M,3]
        view = self.direction_encoding(F.normalize(directions, dim=-1, eps=1e-12), backend=backend)
        return torch.sigmoid(self.color_mlp(torch.cat([features, view], dim=-1)))

    def render_camera(self, camera: Camera, *, backend=None, background=None, chunk: int = 8192) -> dict:
        """``dict(rgb, depth, opacity)`` (``[H,W,...]`` or ``[B,H,W,...]``) of any camera, one ray per
        pixel, ``chunk * RAYS_PER_CHUNK_RAY`` rays at a time (the memory of ``chunk`` teacher rays)."""
        if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1:
            raise UserError(f"baked: chunk must be a positive integer, got {chunk!r}")
        origins, directions = camera.to(self.aabb.device).rays()
        shape = origins.shape[:-1]
        chunk = chunk * RAYS_PER_CHUNK_RAY
        rays_o, rays_d = origins.reshape(-1, 3), directions.reshape(-1, 3)
        parts = [self.render_rays(rays_o[i:i + chunk], rays_d[i:i + chunk], backend=backend, background=background)
                 for i in range(0, max(rays_o.shape[0], 1), chunk)]  # (one call for no rays: the outputs' shapes)
        return {key: (torch.cat([p[key] for p in parts]) if len(parts) > 1 else parts[0][key])
                .reshape(*shape, *parts[0][key].shape[1:]) for key in ("rgb", "depth", "opacity")}

    # ----------------------------------------------------------------------------- training
    def distill_loss(self, pool, generator, *, step: int, rays: int, backend=None, **settings):
        """One step: ``rays`` pixels of pool views (teacher renders at its sub-rays) and real images,
        one jittered ray through each pixel's centre."""
        draw = pool.draw_rays(int(rays), generator)
        origins, directions = draw["origins"], draw["directions"]
        draw_device = generator.device if generator is not None else torch.device("cpu")
        offsets = torch.rand(origins.shape[0], generator=generator, device=draw_device).to(origins.device)
        offsets = offsets.clamp_max(1.0 - 2**-24)
        rgb = self.render_rays(origins, directions, backend=backend, offsets=offsets)["rgb"]
        loss = F.mse_loss(rgb, draw["rgb"])
        return loss, {"mse": float(loss.detach()), "n_rays": float(origins.shape[0])}

    def param_groups(self, lr: float, *, grid_lr: float = 1e-2, **settings) -> list:
        """The colour MLP at ``lr``; the grid at ``grid_lr``, updated only where rays touched it."""
        return [{"params": [self.values], "base_lr": grid_lr, "row_sparse": True},
                {"params": list(self.color_mlp.parameters()), "base_lr": lr}]

