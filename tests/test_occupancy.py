"""OccupancyGrid: warm-up, EMA decay and threshold, sampling, from_occupancy, checkpoints."""

import pytest
import torch

from fastnerf.fields.occupancy import OccupancyGrid

BOX = (-1.0, -1.0, -1.0, 1.0, 1.0, 1.0)


def ball(radius=0.5, sigma=10.0):
    return lambda x: torch.where(x.norm(dim=1) < radius, torch.full_like(x[:, 0], sigma), torch.zeros_like(x[:, 0]))


def test_defaults_and_buffers():
    grid = OccupancyGrid(BOX)
    assert grid.occupied.shape == (128, 128, 128) and grid.occupied.dtype == torch.bool
    assert grid.occupied.all() and grid.occupancy_fraction() == 1.0
    assert set(grid.state_dict()) == {"aabb", "density_ema", "occupied", "step", "unit_step"}


def test_warmup_keeps_everything_occupied_then_thresholds():
    grid = OccupancyGrid(BOX, 16, warmup_steps=3)
    g = torch.Generator().manual_seed(0)
    for _ in range(2):
        grid.update(ball(), generator=g)
        assert grid.occupied.all()
    grid.update(ball(), generator=g)  # step 3: warm-up over
    centers = grid.cell_centers()
    inside = (centers.norm(dim=1) < 0.45).reshape(16, 16, 16)
    outside = (centers.norm(dim=1) > 0.5 + 0.13).reshape(16, 16, 16)  # a cell diagonal away
    assert grid.occupied[inside].all() and not grid.occupied[outside].any()
    assert 0.03 < grid.occupancy_fraction() < 0.15


def test_decay_and_max():
    grid = OccupancyGrid(BOX, 4, decay=0.5, warmup_steps=0)
    grid.update(lambda x: torch.full_like(x[:, 0], 8.0))
    assert torch.allclose(grid.density_ema, torch.full((4, 4, 4), 8.0))
    grid.update(lambda x: torch.full_like(x[:, 0], 1.0))  # max(8 * 0.5, 1) = 4
    assert torch.allclose(grid.density_ema, torch.full((4, 4, 4), 4.0))
    grid.update(lambda x: torch.zeros_like(x[:, 0]))
    assert torch.allclose(grid.density_ema, torch.full((4, 4, 4), 2.0)) and grid.occupied.all()


def test_threshold_is_min_of_threshold_and_mean():
    grid = OccupancyGrid(BOX, 4, threshold=100.0, warmup_steps=0)
    grid.update(ball(radius=0.9, sigma=1.0))
    assert grid.occupied.any() and not grid.occupied.all()  # threshold 100 alone would empty it


def test_points_are_jittered_inside_their_cells():
    grid = OccupancyGrid(BOX, 8, warmup_steps=0)
    seen = []

    def record(x):
        seen.append(x.clone())
        return torch.zeros(x.shape[0])

    grid.update(record, generator=torch.Generator().manual_seed(1), chunk=100)
    points = torch.cat(seen)
    assert points.shape == (512, 3) and len(seen) == 6  # chunks of 100
    cells = ((points + 1) / 2 * 8).floor().long()
    flat = cells[:, 0] * 64 + cells[:, 1] * 8 + cells[:, 2]
    assert torch.equal(flat, torch.arange(512))  # one point in each cell, in its own cell
    offsets = (points + 1) / 2 * 8 - cells
    assert offsets.std() > 0.2  # jittered, not cell centres


def test_n_samples_after_warmup_samples_that_many_cells():
    grid = OccupancyGrid(BOX, 8, warmup_steps=1)
    calls = []
    grid.update(ball())  # warm-up step: every cell
    grid.update(lambda x: calls.append(x.shape[0]) or torch.zeros(x.shape[0]), n_samples=100,
                generator=torch.Generator().manual_seed(0))
    assert calls == [100]


def test_from_occupancy_and_state_dict_roundtrip(tmp_path):
    g = torch.Generator().manual_seed(0)
    occupied = torch.rand(5, 6, 7, generator=g) < 0.3
    grid = OccupancyGrid.from_occupancy(BOX, occupied)
    assert torch.equal(grid.occupied, occupied) and int(grid.step) == grid.warmup_steps
    path = tmp_path / "grid.pt"
    torch.save(grid.state_dict(), path)
    restored = OccupancyGrid(BOX, (5, 6, 7))
    restored.load_state_dict(torch.load(path, weights_only=True))
    for name in ("aabb", "density_ema", "occupied", "step"):
        assert torch.equal(getattr(restored, name), getattr(grid, name)), name


@pytest.mark.parametrize("kwargs", [dict(aabb=(1, 1, 1, 0, 0, 0)), dict(aabb=(0, 0, 1)), dict(resolution=0),
                                    dict(decay=1.5)])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        OccupancyGrid(**{"aabb": BOX, **kwargs})


def test_from_occupancy_rejects_non_bool():
    with pytest.raises(ValueError, match="occupied"):
        OccupancyGrid.from_occupancy(BOX, torch.ones(2, 2, 2))
