"""Baking: sample a hash teacher's density and geometry features into a sparse vertex grid.

The layout (``fastnerf.ops.baked_render``'s): over a box, ``occupied [Rx,Ry,Rz]`` cells and an
``index [Rx+1,Ry+1,Rz+1]`` int32 of vertex rows (-1: none) into ``values [V, 1+F]`` (density,
then F features); every corner of an occupied cell has a row. Steps:

1. the box: the teacher's occupied cells, one cell of margin, snapped to its grid (a tight box
   gives the same memory a finer grid);
2. the resolution: cubic cells, ``max_resolution`` along the longest side, lowered until the
   estimated size fits ``memory_mb``;
3. candidate cells: fine cells whose centre lies in a teacher-occupied cell (dilated by one);
   the teacher is evaluated at their corners only;
4. kept cells: those whose largest corner density makes one marching step absorb more than
   ``threshold`` (the interpolated density inside a cell never exceeds its largest corner's, so
   a dropped cell absorbs less than that per step); the kept cells' corners are stored;
5. the features, optionally, projected on their ``keep_features`` leading principal directions
   (a hash teacher's 15 geometry features hold over 99.9% of their energy in 7: half the bytes a
   sample reads, for a change of the colour MLP's first layer that the caller folds in);
6. the rows in Morton (Z-curve) order of their vertices, so the 8 corners of a cell, and the
   cells a ray and its neighbours cross next, lie close together in memory (fewer cache misses
   than x-major rows, where an x-neighbour is a whole slab away).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ...errors import UserError

CORNERS = torch.tensor([[dx, dy, dz] for dx in (0, 1) for dy in (0, 1) for dz in (0, 1)])


@dataclass
class BakedGrid:
    aabb: torch.Tensor  # [6] float32
    occupied: torch.Tensor  # [Rx, Ry, Rz] bool
    index: torch.Tensor  # [Rx+1, Ry+1, Rz+1] int32, -1 where no vertex is stored
    values: torch.Tensor  # [V, 1+F] float32
    projection: torch.Tensor | None = None  # [F_teacher, F]: features = teacher features @ projection

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.occupied, self.index, self.values))

    def describe(self) -> str:
        rx, ry, rz = self.occupied.shape
        return (f"baked grid {rx}x{ry}x{rz} cells, {int(self.occupied.sum())} occupied "
                f"({float(self.occupied.float().mean()):.1%}), {self.values.shape[0]} vertices x "
                f"{self.values.shape[1]} channels, {self.nbytes() / 2**20:.1f} MiB")


def tight_box(aabb: torch.Tensor, occupied: torch.Tensor) -> torch.Tensor:
    """The box of ``occupied``'s occupied cells plus one cell of margin, inside ``aabb`` ([6])."""
    res = torch.tensor(occupied.shape, device=aabb.device)
    cells = occupied.nonzero()
    if cells.numel() == 0:
        raise UserError("bake: the teacher's occupancy grid is empty (is the teacher trained?)")
    lo_cell = (cells.min(0).values - 1).clamp_min(0)
    hi_cell = torch.minimum(cells.max(0).values + 2, res)
    size = (aabb[3:] - aabb[:3]) / res
    return torch.cat([aabb[:3] + lo_cell * size, aabb[:3] + hi_cell * size]).float()


def choose_resolution(box: torch.Tensor, fraction: float, channels: int, max_resolution: int,
                      memory_mb: float) -> tuple[int, int, int]:
    """Cubic cells, ``max_resolution`` along the longest side, halved by 2^(1/3) steps until the
    estimated size (index, occupancy, and ``fraction`` of the vertices stored with ``channels``
    float32 each, doubled for the corners of the border cells) fits ``memory_mb``."""
    extent = (box[3:] - box[:3]).tolist()
    longest = max(extent)
    resolution = float(max_resolution)
    while True:
        res = tuple(max(1, math.ceil(e / longest * resolution)) for e in extent)
        vertices = math.prod(r + 1 for r in res)
        estimate = vertices * (4 + 1 + min(1.0, 2 * fraction) * channels * 4)
        if estimate <= memory_mb * 2**20 or resolution <= 16:
            return res
        resolution /= 2 ** (1 / 3)


def principal_directions(features: torch.Tensor, weights: torch.Tensor, k: int) -> torch.Tensor:
    """``[F, k]`` orthonormal: the leading eigenvectors of ``sum_i w_i f_i f_i^T`` (uncentred, so that
    ``f @ P @ P.T`` approximates ``f`` itself and a bias-free layer folds the projection in)."""
    gram = (features * weights[:, None]).T @ features if features.numel() else \
        torch.eye(features.shape[1], device=features.device)
    _, vectors = torch.linalg.eigh(gram.double())
    return vectors[:, -k:].flip(1).to(features.dtype).contiguous()


def morton_codes(coords: torch.Tensor) -> torch.Tensor:
    """``[M]`` int64 Z-curve codes of non-negative integer coordinates ``[M, 3]`` (< 2^20 each)."""
    codes = torch.zeros(coords.shape[0], dtype=torch.int64, device=coords.device)
    coords = coords.long()
    for bit in range(20):
        for axis in range(3):
            codes |= ((coords[:, axis] >> bit) & 1) << (3 * bit + 2 - axis)
    return codes


def _cell_centres(box: torch.Tensor, res, cells: torch.Tensor) -> torch.Tensor:  # [M,3] long -> [M,3]
    size = (box[3:] - box[:3]) / torch.tensor(res, device=box.device, dtype=torch.float32)
    return box[:3] + (cells.float() + 0.5) * size


def _vertex_positions(box: torch.Tensor, res, vertices: torch.Tensor) -> torch.Tensor:  # [M,3] long -> [M,3]
    size = (box[3:] - box[:3]) / torch.tensor(res, device=box.device, dtype=torch.float32)
    return box[:3] + vertices.float() * size


@torch.no_grad()
def bake(geometry_fn, teacher_aabb: torch.Tensor, teacher_occupied: torch.Tensor, *, step_size: float,
         max_resolution: int = 256, memory_mb: float = 256.0, threshold: float = 1e-3, channels: int,
         keep_features: int | None = None, chunk: int = 1 << 16, progress=None) -> BakedGrid:
    """Bake ``geometry_fn(positions [M,3]) -> (sigma [M], features [M,F])`` (the teacher's field in
    its marched space) into a ``BakedGrid`` (module docstring). ``channels`` = 1 + F;
    ``keep_features`` < F stores that many principal components of the features instead."""
    device = teacher_aabb.device
    n_features = channels - 1
    n_stored = n_features if keep_features is None else min(int(keep_features), n_features)
    box = tight_box(teacher_aabb, teacher_occupied)
    fraction = float(teacher_occupied.float().mean())
    res = choose_resolution(box, fraction, 1 + n_stored, max_resolution, memory_mb)
    # 3. candidate cells: centre inside a teacher cell that is occupied or next to one
    dilated = F.max_pool3d(teacher_occupied[None, None].float(), 3, stride=1, padding=1)[0, 0] > 0
    axes = [torch.arange(r, device=device) for r in res]
    candidates = []
    for x in axes[0]:  # one x-slab at a time: R^2 cells, never R^3
        slab = torch.stack(torch.meshgrid(x[None], axes[1], axes[2], indexing="ij"), -1).reshape(-1, 3)
        centres = _cell_centres(box, res, slab)
        teacher_cell = ((centres - teacher_aabb[:3]) / (teacher_aabb[3:] - teacher_aabb[:3])
                        * torch.tensor(teacher_occupied.shape, device=device)).long()
        teacher_cell = torch.minimum(teacher_cell.clamp_min(0),
                                     torch.tensor(teacher_occupied.shape, device=device) - 1)
        keep = dilated[teacher_cell[:, 0], teacher_cell[:, 1], teacher_cell[:, 2]]
        candidates.append(slab[keep])
    cells = torch.cat(candidates)
    vertex_shape = tuple(r + 1 for r in res)
    strides = torch.tensor([vertex_shape[1] * vertex_shape[2], vertex_shape[2], 1], device=device)
    corner_ids = ((cells[:, None, :] + CORNERS.to(device)) * strides).sum(-1)  # [M, 8] flat vertex ids
    vertex_ids, inverse = torch.unique(corner_ids.reshape(-1), return_inverse=True)
    # evaluate the teacher at every candidate vertex
    flat = torch.stack([vertex_ids // strides[0], (vertex_ids // strides[1]) % vertex_shape[1],
                        vertex_ids % vertex_shape[2]], -1)
    positions = _vertex_positions(box, res, flat)
    sigmas, features = [], []
    for start in range(0, positions.shape[0], chunk):
        sigma, feature = geometry_fn(positions[start:start + chunk])
        sigmas.append(sigma.float())
        features.append(feature.float())
        if progress is not None:
            progress(min(start + chunk, positions.shape[0]), positions.shape[0])
    sigma = torch.cat(sigmas) if sigmas else positions.new_zeros(0)
    feature = torch.cat(features) if features else positions.new_zeros(0, channels - 1)
    # 4. keep cells whose densest corner absorbs more than `threshold` in one step
    corner_sigma = sigma[inverse.reshape(-1, 8)]
    kept = (1.0 - torch.exp(-corner_sigma.amax(1) * step_size)) > threshold
    cells, kept_corners = cells[kept], inverse.reshape(-1, 8)[kept]
    used = torch.unique(kept_corners.reshape(-1))
    used = used[torch.argsort(morton_codes(flat[used]))]  # 6. rows in Z-curve order
    occupied = torch.zeros(res, dtype=torch.bool, device=device)
    occupied[cells[:, 0], cells[:, 1], cells[:, 2]] = True
    index = torch.full(vertex_shape, -1, dtype=torch.int32, device=device)
    index.view(-1)[vertex_ids[used]] = torch.arange(used.numel(), dtype=torch.int32, device=device)
    stored, projection = feature[used], None
    if n_stored < n_features:  # 5. weighted by how much a step at the vertex absorbs: what shows
        alpha = 1.0 - torch.exp(-sigma[used].clamp_min(0.0) * step_size)
        projection = principal_directions(stored, alpha, n_stored)
        stored = stored @ projection
    values = torch.cat([sigma[used, None], stored], 1).contiguous()
    return BakedGrid(box, occupied, index, values, projection)
