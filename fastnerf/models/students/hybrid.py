"""Approach 2, ``hybrid`` (after Niemeyer and Geiger, GIRAFFE): a radiance field that gives each
point a density and M = 128 features, volume-rendered (``march_rays`` + ``composite`` with
C = 128) into a low-resolution feature image, which the UNet decoder's upsampling blocks turn
into the image.

The feature image is the camera divided by ``factor`` (size rounded up, focal lengths and
principal point divided), so the hybrid renders any camera: any size, intrinsics, or batch; the
decoder's output is cropped to the camera's size. Samples along each ray:

- ``sampling="march"`` (default): ``march_rays`` with a step of the box diagonal /
  ``steps_per_diagonal`` (default: ``samples``) and empty-space skipping through the occupancy
  grid (training: jittered starts);
- ``sampling="dense"``: the report's ``samples`` intervals evenly between each ray's entry into
  and exit from the box, no grid.

The field is the teacher's layout (hash grid -> geometry MLP -> density and ``geo_features``; a
feature MLP of those and the view direction's spherical harmonics, shaped as the teacher's colour
MLP, gives the M features), so ``init_from_teacher`` copies the teacher's hash grid, geometry MLP,
occupancy grid and colour MLP.

The copied geometry starts as the teacher's: after a copy the hash grid and geometry MLP are
trained at the ``field_lr`` setting (``train_geometry=False`` freezes them) and the occupancy grid
is the teacher's, its step counter (past warm-up) and its unit (the opacity of one teacher step)
included. A frozen geometry's grid is never updated; a trained one's is updated every
``grid_every`` steps, continuing the teacher's counter, and the checkpoint holds it rebuilt from
the averaged weights (``rebuilt_buffers``). The first 3 features are a colour (sigmoid per sample, composited
on the background colour): the image is that low-resolution colour, bilinearly upsampled, plus
the decoder's residual (its last conv starts at zero). Started from a teacher, the hybrid thus
renders the teacher's low-resolution image from step 0 and learns the detail the upsampling
loses. Forward-facing (NDC) teachers are followed into NDC, unbounded ones (``--scene
unbounded``) into their contracted space: the same contraction of the same inner box for the
hash grid and the occupancy grid, cone steps from ``near`` to ``far`` (``fields.scene_space``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...cameras import Camera
from ...errors import UserError
from ...fields.hash_grid import HashEncoding
from ...fields.mlp import MLP, trunc_exp
from ...fields.occupancy import OccupancyGrid
from ...fields.scene_space import SCENE_KEYS, encoding_input, ray_range, scene_config
from ...fields.spherical_harmonics import SphericalHarmonicsEncoding
from ...fields.upsampling import UPSAMPLERS, UpsamplingDecoder, check_upsampler
from ...options import Option
from ...volume import render_rays
from ..nerf import marched_rays
from . import register_student
from ._background import check_background

SAMPLINGS = ("march", "dense")
OPTIONS = (
    Option("factor", 4, "upsampling factor (a power of two)", flag=True, metavar="F", minimum=1),
    Option("sampling", "march", "samples along rays: march (occupancy grid) or dense", choices=SAMPLINGS, flag=True),
    Option("samples", 32, "samples per ray (dense; march: steps per box diagonal unless --steps-per-diagonal)",
           flag=True, metavar="N", minimum=1),
    Option("steps_per_diagonal", None, "marching steps per box diagonal (march; default: --samples)", type=int,
           flag=True, metavar="N", minimum=1),
    # Trained by default: measured on the tabletop (docs/students.md), a frozen copy marched 16x
    # coarser than the teacher's step is 2.45 dB worse and slower (its density is the teacher's
    # at the teacher's step); trained, it adapts to the student's step.
    Option("train_geometry", True, "train the density field copied from the teacher", flag=True,
           negated_help="keep the density field copied from the teacher frozen (default: trained)"),
    Option("upsampler", "bilinear", "decoder upsampling", choices=UPSAMPLERS, flag=True),
    Option("features", 128, "rendered feature channels M (the first 3 a colour)", minimum=3),
    Option("decoder_channels", 64, "decoder channels after its stem", minimum=1),
)


@register_student("hybrid", lr=2e-3, field_lr=1e-2, batch_views=4, grid_every=16, options=OPTIONS,
                  no_export="it renders its feature image through fastnerf's custom ops (march_rays, composite), "
                  "whose sample count per ray depends on the data; neither torch.export nor ONNX can hold that")
class HybridStudent(nn.Module):
    """Feature field + volume rendering at low resolution + upsampling decoder (module docstring).

    Args:
        aabb, ndc: the marched box (and NDC transform), as the teacher's.
        contraction, cone_angle, near, far, disparity_step: the teacher's scene space (unbounded teachers).
        grid_resolution: occupancy-grid cells per axis.
        hash_*: the hash grid; hidden, geo_features: the density MLP (the teacher's layout).
        color_layers: hidden layers of the feature MLP (width ``hidden``: the teacher's colour MLP).
        features: M, the rendered feature channels (the first 3 a colour).
        background: the colour the first 3 background features start at (the teacher's).
        factor: upsampling factor (a power of two); sampling, samples, steps_per_diagonal: see the
            module docstring.
        train_geometry: train the hash grid and geometry MLP after ``init_from_teacher`` copied
            them (default: they stay the teacher's); a hybrid not started from a teacher trains them.
        grid_warmup: the occupancy grid's warm-up steps (the teacher's).
        upsampler: ``"bilinear"`` or ``"transposed"``; decoder_channels: channels after the stem.
    """

    kind = "hybrid"

    def __init__(self, *, aabb=(-1.5, -1.5, -1.5, 1.5, 1.5, 1.5), ndc=None, grid_resolution: int = 64,
                 hash_levels: int = 16, hash_features: int = 2, hash_log2_size: int = 15, hash_min_res: int = 16,
                 hash_max_res: int = 256, hidden: int = 64, geo_features: int = 15, sh_degree: int = 4,
                 color_layers: int = 2, features: int, factor: int, sampling: str, samples: int,
                 steps_per_diagonal: int | None, train_geometry: bool, upsampler: str, decoder_channels: int,
                 min_channels: int = 16, background=(1.0, 1.0, 1.0), grid_warmup: int = 256,
                 contraction: str | None = None, cone_angle: float = 0.0, near: float = 0.0, far: float | None = None,
                 disparity_step: float = 0.0):
        # features, factor, sampling, samples, steps_per_diagonal, train_geometry, upsampler,
        # decoder_channels: defaults from OPTIONS
        super().__init__()
        if factor < 1 or factor & (factor - 1):
            raise ValueError(f"hybrid: factor must be a power of two, got {factor}")
        if sampling not in SAMPLINGS:
            raise ValueError(f"hybrid: sampling must be one of {SAMPLINGS}, got {sampling!r}")
        if samples < 1 or (steps_per_diagonal is not None and steps_per_diagonal < 1):
            raise ValueError(f"hybrid: samples and steps_per_diagonal must be positive, got {samples}, "
                             f"{steps_per_diagonal}")
        aabb = [float(v) for v in aabb]
        scene = scene_config(contraction, cone_angle, near, far, disparity_step, ndc=ndc, who="hybrid")
        self._config = dict(aabb=aabb, ndc=None if ndc is None else {k: float(v) for k, v in ndc.items()},
                            grid_resolution=int(grid_resolution), hash_levels=int(hash_levels),
                            hash_features=int(hash_features), hash_log2_size=int(hash_log2_size),
                            hash_min_res=int(hash_min_res), hash_max_res=int(hash_max_res), hidden=int(hidden),
                            geo_features=int(geo_features), sh_degree=int(sh_degree), color_layers=int(color_layers),
                            features=int(features), factor=int(factor), sampling=sampling,
                            samples=int(samples),
                            steps_per_diagonal=None if steps_per_diagonal is None else int(steps_per_diagonal),
                            train_geometry=bool(train_geometry), upsampler=check_upsampler(upsampler),
                            decoder_channels=int(decoder_channels), min_channels=int(min_channels),
                            background=[float(v) for v in background], grid_warmup=int(grid_warmup), **scene)
        if features < 3:
            raise ValueError(f"hybrid: features must be at least 3 (the first 3 are a colour), got {features}")
        self.factor, self.sampling, self.samples = int(factor), sampling, int(samples)
        self.register_buffer("aabb", torch.tensor(aabb))
        self.step_size = math.dist(aabb[:3], aabb[3:]) / (steps_per_diagonal or samples)
        self.grid = OccupancyGrid(self.aabb.clone(), grid_resolution, warmup_steps=grid_warmup,
                                  unit_step=self.step_size, contraction=contraction, cone_angle=scene["cone_angle"],
                                  disparity_step=scene["disparity_step"])
        # Whether init_from_teacher copied the geometry (saved, so a resumed run keeps it frozen).
        self.register_buffer("geometry_from_teacher", torch.tensor(False))
        self.geometry_frozen = False
        self.position_encoding = HashEncoding(hash_levels, hash_features, hash_log2_size, hash_min_res, hash_max_res)
        self.geometry_mlp = MLP(self.position_encoding.out_dim, 1 + geo_features, width=hidden, n_hidden=1, bias=False)
        self.direction_encoding = SphericalHarmonicsEncoding(sh_degree)
        self.feature_mlp = MLP(geo_features + self.direction_encoding.out_dim, features, width=hidden,
                               n_hidden=color_layers, bias=False)
        start = torch.zeros(features)
        start[:3] = torch.as_tensor(self._config["background"])
        self.background_feature = nn.Parameter(start)
        self.decoder = UpsamplingDecoder(features, int(math.log2(factor)), mode=upsampler,
                                         max_channels=decoder_channels, min_channels=min_channels, residual=True)

    def config(self) -> dict:
        return {k: dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v
                for k, v in self._config.items()}

    @classmethod
    def config_for(cls, teacher, dataset, sampler, **overrides) -> dict:
        t = teacher.config()
        config = {"aabb": t["aabb"], "ndc": t.get("ndc"), "grid_resolution": t.get("grid_resolution", 64),
                  "grid_warmup": t.get("grid_warmup", 256), "background": dataset.background.tolist(),
                  **{k: t[k] for k in SCENE_KEYS if t.get(k) is not None}}
        if t.get("encoding") == "hash":  # the teacher's field layout, so init_from_teacher can copy it
            config.update({k: t[k] for k in ("hash_levels", "hash_features", "hash_log2_size", "hash_min_res",
                                             "hash_max_res", "hidden", "geo_features", "sh_degree", "color_layers")})
        return {**config, **overrides}

    # ----------------------------------------------------------------------------- teacher
    def init_from_teacher(self, teacher) -> str:
        """Copy the teacher's hash grid, geometry MLP, occupancy grid and colour MLP (into the
        feature MLP's hidden layers and its first 3 outputs); returns what was copied. The copied
        geometry is frozen unless ``train_geometry``. ``ValueError`` (saying why) when the teacher's
        field layout differs (not a hash teacher, or other sizes)."""
        own = {f"{prefix}.{k}": v for prefix in ("position_encoding", "geometry_mlp")
               for k, v in getattr(self, prefix).state_dict().items()}
        own.update({f"color_mlp.hidden.{k}": v for k, v in self.feature_mlp.hidden.state_dict().items()})
        theirs = teacher.state_dict()
        differ = [name for name, value in own.items() if name not in theirs or theirs[name].shape != value.shape]
        colour = theirs.get("color_mlp.output.weight", torch.empty(0)).shape
        if colour != (3, self.feature_mlp.output.in_features):
            differ.append("color_mlp.output.weight")
        if differ:
            raise ValueError(f"the teacher's field layout differs from the hybrid's ({', '.join(differ[:3])}"
                             f"{', ...' if len(differ) > 3 else ''}: a hash teacher with the same hash_*, hidden, "
                             "geo_features, sh_degree and color_layers is needed)")
        with torch.no_grad():
            for name, value in own.items():
                value.copy_(theirs[name])
            self.feature_mlp.output.weight[:3] = theirs["color_mlp.output.weight"]
            if tuple(teacher.grid.occupied.shape) == tuple(self.grid.occupied.shape):
                self.grid.load_state_dict(teacher.grid.state_dict())
                grid = "occupancy grid"
            else:  # another resolution: this grid, from the teacher's density in the teacher's unit
                self.grid.unit_step.copy_(teacher.grid.unit_step)
                self.grid.step.fill_(self.grid.warmup_steps)
                self.grid.rebuild(lambda x: self.density(x))
                grid = "occupancy grid (rebuilt at this resolution)"
            self.grid.step.clamp_(min=self.grid.warmup_steps)  # no warm-up after a copy: the estimate is the teacher's
            self.geometry_from_teacher.fill_(True)
        self._set_frozen()
        return f"hash grid, geometry MLP ({'trained' if self.config()['train_geometry'] else 'frozen'}), {grid}, colour MLP"

    def _set_frozen(self) -> None:
        self.geometry_frozen = bool(self.geometry_from_teacher) and not self._config["train_geometry"]

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Checkpoints from before the geometry could be frozen trained it.
        if prefix + "grid.occupied" in state_dict and prefix + "geometry_from_teacher" not in state_dict:
            state_dict[prefix + "geometry_from_teacher"] = torch.tensor(False)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._set_frozen()

    # ----------------------------------------------------------------------------- field
    def _geometry(self, positions: torch.Tensor, backend=None):  # [S,3] -> (sigma [S], geo [S,G])
        unit = encoding_input(positions, self.aabb, self._config["contraction"])
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.geometry_frozen):
            h = self.geometry_mlp(self.position_encoding(unit, backend=backend))
        return trunc_exp(h[:, 0]), h[:, 1:]

    def density(self, positions: torch.Tensor, *, backend=None) -> torch.Tensor:  # [S,3] -> [S]
        return self._geometry(positions, backend)[0]

    def features(self, geo: torch.Tensor, directions: torch.Tensor, *, backend=None) -> torch.Tensor:
        """``features [S,M]`` (the first 3 a colour in [0, 1]) from geometry ``geo [S,G]`` seen along ``directions [S,3]``."""
        directions = directions / directions.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        view = self.direction_encoding(directions, backend=backend)
        features = self.feature_mlp(torch.cat([geo, view], dim=-1))
        return torch.cat([torch.sigmoid(features[:, :3]), features[:, 3:]], dim=1)

    def field(self, positions: torch.Tensor, directions: torch.Tensor, *, backend=None):
        """``(sigma [S], features [S,M])`` at ``positions [S,3]`` seen along ``directions [S,3]``."""
        sigmas, geo = self._geometry(positions, backend)
        return sigmas, self.features(geo, directions, backend=backend)

    @torch.no_grad()
    def update_grid(self, *, step: int, generator=None, reduce=None, backend=None) -> None:
        """Refresh the occupancy grid as grid step ``step`` (the grid's unit: see OccupancyGrid)."""
        self.grid.update(lambda x: self.density(x, backend=backend), step=step,
                         n_samples=self.grid.occupied.numel() // 8, generator=generator, reduce=reduce)

    @torch.no_grad()
    def rebuilt_buffers(self, *, backend=None) -> dict:
        """The occupancy grid rebuilt from the current weights, where it follows them (a trained
        geometry, marched); ``{}`` where it is the teacher's (frozen) or unused (dense)."""
        if self.geometry_frozen or self.sampling != "march":
            return {}
        return self.grid.rebuilt_state(lambda x: self.density(x, backend=backend), prefix="grid.")

    # ----------------------------------------------------------------------------- feature rendering
    def render_features(self, rays_o: torch.Tensor, rays_d: torch.Tensor, *, train: bool = False, generator=None,
                        backend=None) -> torch.Tensor:  # [N,3], [N,3] -> [N,M]
        """Volume-rendered features of rays (world space), on the learned background feature."""
        rays_o, rays_d = marched_rays(self._config["ndc"], rays_o, rays_d)

        def field(positions, directions):
            return self.field(positions, directions, backend=backend)

        def geometry(positions):  # inference: features only where a sample is visible
            return self._geometry(positions, backend)

        def features(geo, directions):
            return self.features(geo, directions, backend=backend)

        dense = self.samples if self.sampling == "dense" else None
        t_near, t_far = ray_range(rays_d, self._config["near"], self._config["far"])
        out = render_rays(field, rays_o, rays_d, self.grid, step_size=self.step_size, train=train, generator=generator,
                          backend=backend, dense_samples=dense, stages=(geometry, features), t_near=t_near,
                          t_far=t_far, cone_angle=self._config["cone_angle"],
                          disparity_step=self._config["disparity_step"])
        return out["values"] + (1.0 - out["opacity"][:, None]) * self.background_feature

    def feature_camera(self, camera: Camera) -> Camera:
        """The low-resolution camera whose pixel (i, j) covers pixels ``factor*i ..`` of ``camera`` (batch)."""
        f = self.factor
        batch = camera.batch()
        return Camera(batch.c2w, batch.fx / f, batch.fy / f, batch.cx / f, batch.cy / f, math.ceil(camera.width / f),
                      math.ceil(camera.height / f), check=False, distortion_model=batch.distortion_model,
                      distortion=batch.distortion)  # the lens acts on normalised coordinates: unchanged

    def render_images(self, camera: Camera, *, train: bool = False, generator=None, backend=None,
                      chunk: int = 1 << 30) -> torch.Tensor:  # -> [B,H,W,3]
        low = self.feature_camera(camera).to(self.aabb.device)
        origins, directions = low.rays()  # [B,h,w,3]
        rays_o, rays_d = origins.reshape(-1, 3), directions.reshape(-1, 3)
        features = torch.cat([self.render_features(rays_o[i:i + chunk], rays_d[i:i + chunk], train=train,
                                                   generator=generator, backend=backend)
                              for i in range(0, rays_o.shape[0], chunk)]) if rays_o.shape[0] else \
            torch.zeros(0, self.background_feature.shape[0], device=rays_o.device)
        feature_image = features.reshape(len(low), low.height, low.width, -1).permute(0, 3, 1, 2)
        colour = feature_image[:, :3]
        if self.factor > 1:
            colour = F.interpolate(colour, scale_factor=float(self.factor), mode="bilinear", align_corners=False)
        image = (colour + self.decoder(feature_image))[:, :, : camera.height, : camera.width]
        return image.permute(0, 2, 3, 1)

    def render_camera(self, camera, *, backend=None, background=None, chunk: int = 8192) -> dict:
        """``dict(rgb [H,W,3] or [B,H,W,3])`` for any camera; ``background`` other than the one it was
        trained on (its ``background`` config) is a ``UserError``: the background was learned."""
        check_background(self, background, self._config["background"])
        if not isinstance(chunk, int) or chunk < 1:
            raise UserError(f"hybrid: chunk must be a positive integer, got {chunk!r}")
        rgb = self.render_images(camera, backend=backend, chunk=chunk).clamp(0.0, 1.0)
        return {"rgb": rgb if camera.is_batch else rgb[0]}

    # ----------------------------------------------------------------------------- training
    def distill_loss(self, pool, generator, *, step: int, batch_views: int, backend=None, **settings):
        cameras, images = pool.draw_views(batch_views, generator)
        loss = F.mse_loss(self.render_images(cameras, train=True, generator=generator, backend=backend), images)
        return loss, {"mse": float(loss.detach()), "occ": float(self.grid.occupied.float().mean())}

    def after_distill_step(self, step: int, generator, *, grid_every: int = 16, reduce=None, backend=None,
                           **settings) -> None:
        if self.sampling == "march" and not self.geometry_frozen and grid_every and step % grid_every == 0:
            # The grid's counter goes on from where it stands (the teacher's, after a copy): no new warm-up.
            self.update_grid(step=int(self.grid.step) + grid_every, generator=generator, reduce=reduce,
                             backend=backend)

    def param_groups(self, lr: float, *, field_lr: float | None = None, **settings) -> list:
        """The feature MLP and decoder at ``lr``; the field (hash grid, geometry MLP) at ``field_lr``."""
        field = [*self.position_encoding.parameters(), *self.geometry_mlp.parameters()]
        ids = {id(p) for p in field}
        rest = [p for p in self.parameters() if id(p) not in ids]
        return [{"params": field, "base_lr": lr if field_lr is None else field_lr}, {"params": rest, "base_lr": lr}]
