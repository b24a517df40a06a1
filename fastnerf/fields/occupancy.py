"""OccupancyGrid: which cells of an axis-aligned box may hold density, for empty-space skipping.

The grid keeps a per-cell density EMA and a bool occupancy derived from it (Instant-NGP,
nerfacc). fastnerf.ops.march_rays keeps only samples whose midpoint lies in an occupied cell.

Threshold: `threshold` applies to whatever `density_fn` returns. Instant-NGP and nerfacc
threshold the opacity of one marching step, alpha ~= sigma * step_size; to do the same, pass
`density_fn=lambda x: field.density(x) * step_size` (the default 0.01 is then "one step of this
cell absorbs 1%"). With raw sigma the threshold is a density. As in nerfacc, the effective
threshold is min(threshold, mean of the EMA), so a field that is faint everywhere early in
training does not empty the grid.

Contraction: with `contraction="mipnerf360"` the grid covers all of space, contracted
(`fastnerf.reference.march_rays.contract`, mip-NeRF 360's map under the inf-norm) into the cube
[-2, 2]^3 of `aabb`'s normalised coordinates: `aabb` is its middle half, and the cells grow
without bound outside it. Cell centres and sample points are mapped back to the world with
`uncontract`. `march_rays(..., contraction=grid.contraction)` reads the grid the same way.
"""

import torch
from torch import nn

from ..reference.march_rays import CONTRACTIONS, uncontract

_CONTRACTED_EDGE = 2.0 - 1e-4  # |u| < 2 strictly: uncontract is infinite on the cube's surface


class OccupancyGrid(nn.Module):
    """aabb [6] + a resolution^3 grid: `density_ema [R,R,R]`, `occupied [R,R,R] bool`, `step`.

    `contraction`: None (the grid covers `aabb`) or "mipnerf360" (all space, see the module
    docstring); a construction argument (models keep it in their config), not state.

    All three are buffers, so `state_dict()` saves them and `load_state_dict` restores them.
    occupied[i, j, k] is the cell of x index i, y index j, z index k. Until `warmup_steps`
    updates (or training steps) have passed, every cell is occupied.
    """

    def __init__(self, aabb, resolution=128, *, decay: float = 0.95, threshold: float = 0.01, warmup_steps: int = 256,
                 contraction: str | None = None):
        super().__init__()
        if contraction not in CONTRACTIONS:
            raise ValueError(f"contraction must be one of {CONTRACTIONS}, got {contraction!r}")
        self.contraction = contraction
        aabb = torch.as_tensor(aabb, dtype=torch.float32).reshape(-1)
        if aabb.numel() != 6 or not bool(torch.isfinite(aabb).all()) or not bool((aabb[:3] < aabb[3:]).all()):
            raise ValueError(f"aabb must be six finite numbers (min xyz, max xyz) with min < max, got {aabb.tolist()}")
        res = (resolution,) * 3 if isinstance(resolution, int) else tuple(int(r) for r in resolution)
        if len(res) != 3 or min(res) < 1:
            raise ValueError(f"resolution must be a positive int or three of them, got {resolution!r}")
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"decay must lie in [0, 1], got {decay}")
        self.resolution = res
        self.decay, self.threshold, self.warmup_steps = float(decay), float(threshold), int(warmup_steps)
        self.register_buffer("aabb", aabb.clone())
        self.register_buffer("density_ema", torch.zeros(res))
        self.register_buffer("occupied", torch.ones(res, dtype=torch.bool))
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))

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

        density_fn(points [M, 3]) -> sigma [M] (called under no_grad, in chunks of `chunk`).
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
        jitter = torch.rand(cells.shape[0], 3, generator=generator, device=device)
        sigma = torch.cat([
            density_fn(self._points(cells[i:i + chunk], jitter[i:i + chunk])).reshape(-1).float()
            for i in range(0, cells.shape[0], chunk)
        ]) if cells.numel() else torch.zeros(0, device=device)
        ema = self.density_ema.reshape(-1)
        ema.mul_(self.decay)
        ema.scatter_reduce_(0, cells, sigma.to(ema.dtype), reduce="amax")
        if reduce is not None:
            reduce(self.density_ema)
        if warm:
            self.occupied.fill_(True)
        else:
            threshold = min(self.threshold, float(ema.mean()))
            self.occupied.copy_(self.density_ema > threshold)
        return self

    def extra_repr(self) -> str:
        return (f"aabb={self.aabb.tolist()}, resolution={self.resolution}, decay={self.decay}, "
                f"threshold={self.threshold}, warmup_steps={self.warmup_steps}, contraction={self.contraction!r}")
