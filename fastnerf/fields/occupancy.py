"""OccupancyGrid: which cells of an axis-aligned box may hold density, for empty-space skipping.

The grid keeps a per-cell density EMA and a bool occupancy derived from it (Instant-NGP,
nerfacc). fastnerf.ops.march_rays keeps only samples whose midpoint lies in an occupied cell.

One unit: `density_fn` returns a density sigma; the grid keeps `sigma * unit_step`, the opacity
of one step of length `unit_step` (a buffer, saved with the grid), and `threshold` applies to
that. Instant-NGP and nerfacc threshold the opacity of one marching step; an owner sets
`unit_step` to its marching step when it makes the grid (the default 0.01 is then "one step of
this cell absorbs 1%"). A grid copied into another model (a student) brings its unit with it, so
the copy's estimate stays comparable whatever step the new owner marches with. As in nerfacc, the
effective threshold is min(threshold, mean of the EMA), so a field that is faint everywhere early
in training does not empty the grid.

Contraction: with `contraction="mipnerf360"` the grid covers all of space, contracted
(`fastnerf.reference.march_rays.contract`, mip-NeRF 360's map under the inf-norm) into the cube
[-2, 2]^3 of `aabb`'s normalised coordinates: `aabb` is its middle half, and the cells grow
without bound outside it. Cell centres and sample points are mapped back to the world with
`uncontract`. `march_rays(..., contraction=grid.contraction)` reads the grid the same way. With
`cone_angle` > 0 (the owner's cone stepping) a step there is longer: the grid keeps
sigma * max(cone_angle * distance from the box centre, unit_step), and with `disparity_step` > 0
(steps evenly spaced in disparity far out) sigma * max(distance * max(cone_angle, distance *
disparity_step), unit_step): the owner's step there (`fields.scene_space.step_at`).
"""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..reference.march_rays import CONTRACTIONS, uncontract
from .scene_space import step_at

_CONTRACTED_EDGE = 2.0 - 1e-4  # |u| < 2 strictly: uncontract is infinite on the cube's surface


def chunked_density(density_fn, points: torch.Tensor, chunk: int) -> torch.Tensor:
    """``density_fn`` of ``points [M,3]`` in chunks of ``chunk`` points, as one float ``[M]``."""
    if points.shape[0] == 0:
        return torch.zeros(0, device=points.device)
    return torch.cat([density_fn(points[i:i + chunk]).reshape(-1).float() for i in range(0, points.shape[0], chunk)])


class OccupancyGrid(nn.Module):
    """aabb [6] + a resolution^3 grid: `density_ema [R,R,R]`, `occupied [R,R,R] bool`, `step`, `unit_step`.

    All are buffers, so `state_dict()` saves them and `load_state_dict` restores them (a state
    without `unit_step`, from before it was a buffer, keeps the grid's own). occupied[i, j, k] is
    the cell of x index i, y index j, z index k. Until `warmup_steps` updates (or training steps)
    have passed, every cell is occupied.

    `contraction` (None: the grid covers `aabb`; "mipnerf360": all space), `cone_angle` and
    `disparity_step` (see the module docstring) are construction arguments (models keep them in
    their config), not state.
    """

    def __init__(self, aabb, resolution=128, *, decay: float = 0.95, threshold: float = 0.01, warmup_steps: int = 256,
                 unit_step: float = 1.0, contraction: str | None = None, cone_angle: float = 0.0,
                 disparity_step: float = 0.0):
        super().__init__()
        if contraction not in CONTRACTIONS:
            raise ValueError(f"contraction must be one of {CONTRACTIONS}, got {contraction!r}")
        for name, value in (("cone_angle", cone_angle), ("disparity_step", disparity_step)):
            if not 0.0 <= float(value) < float("inf"):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        self.contraction, self.cone_angle, self.disparity_step = contraction, float(cone_angle), float(disparity_step)
        aabb = torch.as_tensor(aabb, dtype=torch.float32).reshape(-1)
        if aabb.numel() != 6 or not bool(torch.isfinite(aabb).all()) or not bool((aabb[:3] < aabb[3:]).all()):
            raise ValueError(f"aabb must be six finite numbers (min xyz, max xyz) with min < max, got {aabb.tolist()}")
        res = (resolution,) * 3 if isinstance(resolution, int) else tuple(int(r) for r in resolution)
        if len(res) != 3 or min(res) < 1:
            raise ValueError(f"resolution must be a positive int or three of them, got {resolution!r}")
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"decay must lie in [0, 1], got {decay}")
        if not unit_step > 0:
            raise ValueError(f"unit_step must be positive, got {unit_step}")
        self.resolution = res
        self.decay, self.threshold, self.warmup_steps = float(decay), float(threshold), int(warmup_steps)
        self.register_buffer("aabb", aabb.clone())
        self.register_buffer("density_ema", torch.zeros(res))
        self.register_buffer("occupied", torch.ones(res, dtype=torch.bool))
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))
        self.register_buffer("unit_step", torch.tensor(float(unit_step)))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Grids saved before unit_step was a buffer stored sigma * their owner's step: the owner's own.
        if prefix + "step" in state_dict and prefix + "unit_step" not in state_dict:
            state_dict[prefix + "unit_step"] = self.unit_step.clone()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def past_warmup(self) -> bool:
        return int(self.step) >= self.warmup_steps

    @classmethod
    def from_occupancy(cls, aabb, occupied: torch.Tensor, **kwargs) -> "OccupancyGrid":
        """A grid with the given occupancy [Rx, Ry, Rz] bool, past warm-up (for tests and tools)."""
        if not isinstance(occupied, torch.Tensor) or occupied.dim() != 3 or occupied.dtype != torch.bool:
            raise ValueError("occupied must be a 3-d bool tensor [Rx, Ry, Rz]")
        grid = cls(aabb, tuple(occupied.shape), **kwargs).to(occupied.device)
        grid.occupied.copy_(occupied)
        grid.density_ema.copy_(occupied.float())
        grid.step.fill_(grid.warmup_steps)
        return grid

    def occupancy_fraction(self) -> float:
        return float(self.occupied.float().mean())

    def cell_centers(self) -> torch.Tensor:
        """[R^3, 3] cell centres in world space, x-major (the flat order of `occupied`); for a
        contracted grid, the centres in contracted space mapped back to the world."""
        return self._points(torch.arange(self.occupied.numel(), device=self.aabb.device), None)

    def _points(self, cells: torch.Tensor, jitter) -> torch.Tensor:
        rx, ry, rz = self.resolution
        index = torch.stack([cells // (ry * rz), (cells // rz) % ry, cells % rz], 1).float()
        index = index + (0.5 if jitter is None else jitter)
        res = torch.tensor(self.resolution, dtype=torch.float32, device=cells.device)
        lo, hi = self.aabb[:3], self.aabb[3:]
        if self.contraction is None:
            return lo + index / res * (hi - lo)
        contracted = (index / res * 4.0 - 2.0).clamp(-_CONTRACTED_EDGE, _CONTRACTED_EDGE)
        return uncontract(contracted, self.aabb)

    @torch.no_grad()
    def update(self, density_fn, *, step: int = None, n_samples: int = None, generator=None, chunk: int = 1 << 18,
               reduce=None):
        """Sample one jittered point in cells, decay the EMA, take the max, threshold.

        density_fn(points [M, 3]) -> sigma [M], a density (called under no_grad, in chunks of
        `chunk`); the grid keeps sigma * unit_step.
        n_samples: cells to sample; None samples every cell. Otherwise half are drawn uniformly
        and half among the occupied cells (Instant-NGP). During warm-up every cell is sampled.
        step: the training step (default: one more than the last update); warm-up lasts
        while step < warmup_steps, and every cell stays occupied during it.
        reduce: ``reduce(density_ema)`` combines replicas' grids in place before thresholding (a
        max over the ranks in data-parallel training: the same as one grid that saw every sample).
        """
        self.step.fill_(int(self.step) + 1 if step is None else int(step))
        device, n_cells = self.aabb.device, self.occupied.numel()
        warm = int(self.step) < self.warmup_steps
        if n_samples is None or warm or n_samples >= n_cells:
            cells = torch.arange(n_cells, device=device)
        else:
            uniform = torch.randint(n_cells, (n_samples - n_samples // 2,), generator=generator, device=device)
            occupied_cells = self.occupied.reshape(-1).nonzero().squeeze(1)
            if occupied_cells.numel():
                pick = torch.randint(occupied_cells.numel(), (n_samples // 2,), generator=generator, device=device)
                uniform = torch.cat([uniform, occupied_cells[pick]])
            cells = uniform
        opacity = self._opacity(density_fn, cells, generator, chunk)
        ema = self.density_ema.reshape(-1)
        ema.mul_(self.decay)
        ema.scatter_reduce_(0, cells, opacity.to(ema.dtype), reduce="amax")
        if reduce is not None:
            reduce(self.density_ema)
        self._threshold(warm)
        return self

    @torch.no_grad()
    def rebuild(self, density_fn, *, samples_per_cell: int = 8, seed: int = 0, chunk: int = 1 << 18):
        """Estimate the grid afresh from `density_fn` (sigma, as for `update`): the max over
        `samples_per_cell` jittered points in every cell (drawn from `seed`, so the same weights
        give the same grid), replacing the running estimate; the step counter is kept, so a grid
        in warm-up stays all occupied (and is left as it is: nothing is evaluated). Used to make
        the grid of averaged weights."""
        if not self.past_warmup:  # every cell stays occupied whatever the estimate: skip the evaluation
            return self
        device, n_cells = self.aabb.device, self.occupied.numel()
        generator = torch.Generator(device).manual_seed(int(seed))
        cells = torch.arange(n_cells, device=device)
        estimate = torch.zeros(n_cells, device=device)
        for _ in range(max(1, int(samples_per_cell))):
            estimate = torch.maximum(estimate, self._opacity(density_fn, cells, generator, chunk))
        self.density_ema.copy_(estimate.reshape(self.resolution))
        self._threshold(not self.past_warmup)
        return self

    def rebuilt_state(self, density_fn, *, prefix: str = "", **kwargs) -> dict:
        """The state dict (names under `prefix`) of a copy of this grid rebuilt from `density_fn`
        (`rebuild`); this grid is left as it was."""
        fresh = copy.deepcopy(self).rebuild(density_fn, **kwargs)
        return {prefix + name: value for name, value in fresh.state_dict().items()}

    def _opacity(self, density_fn, cells: torch.Tensor, generator, chunk: int) -> torch.Tensor:  # [M] -> [M]
        """sigma * unit_step (cone stepping: the step there) at one jittered point in each of `cells`."""
        device = self.aabb.device
        jitter = torch.rand(cells.shape[0], 3, generator=generator, device=device)
        if self.cone_angle == 0.0:
            return chunked_density(density_fn, self._points(cells, jitter), chunk) * self.unit_step
        return torch.cat([self._cone_opacity(density_fn, self._points(cells[i:i + chunk], jitter[i:i + chunk]))
                          for i in range(0, cells.shape[0], chunk)]) if cells.numel() else torch.zeros(0, device=device)

    def _cone_opacity(self, density_fn, points: torch.Tensor) -> torch.Tensor:  # [M,3] -> [M]
        steps = step_at(points, self.aabb, self.unit_step, self.cone_angle, self.disparity_step)
        return density_fn(points).reshape(-1).float() * steps

    def _threshold(self, warm: bool) -> None:
        if warm:
            self.occupied.fill_(True)
        else:
            threshold = min(self.threshold, float(self.density_ema.mean()))
            self.occupied.copy_(self.density_ema > threshold)

    def extra_repr(self) -> str:
        return (f"aabb={self.aabb.tolist()}, resolution={self.resolution}, decay={self.decay}, "
                f"threshold={self.threshold}, warmup_steps={self.warmup_steps}, unit_step={float(self.unit_step):g}, "
                f"contraction={self.contraction!r}, cone_angle={self.cone_angle:g}, "
                f"disparity_step={self.disparity_step:g}")


@torch.no_grad()
def occupancy_from_corners(density_fn, aabb: torch.Tensor, resolution: int, threshold: float,
                           chunk: int = 1 << 14) -> tuple[torch.Tensor, int]:
    """Occupancy ``[R,R,R]`` bool of a field seen once (no training to average over: an
    image-conditioned scene) and the field evaluations it took.

    Density is evaluated at the ``(R+1)^3`` cell corners; a cell is occupied when any corner
    exceeds ``threshold``, and occupancy is dilated by one cell so that surfaces between
    corners are kept. (``OccupancyGrid`` is the other way: an EMA of jittered samples that
    follows a field while it trains.)
    """
    lo, hi = aabb[:3], aabb[3:]
    axis = torch.linspace(0.0, 1.0, resolution + 1, device=aabb.device)
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    points = lo + grid * (hi - lo)
    sigma = chunked_density(density_fn, points, chunk)
    corners = (sigma > threshold).float().view(1, 1, resolution + 1, resolution + 1, resolution + 1)
    cells = F.max_pool3d(corners, 2, stride=1) > 0  # any of the 8 corners
    dilated = F.max_pool3d(cells.float(), 3, stride=1, padding=1) > 0
    return dilated[0, 0], int(points.shape[0])
