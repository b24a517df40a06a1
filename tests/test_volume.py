"""render_rays: early termination matches full compositing with far fewer field evaluations;
training mode is differentiable and jittered; missed rays get the background; any C."""

import pytest
import torch

import fastnerf
from fastnerf.fields.occupancy import OccupancyGrid
from fastnerf.volume import render_rays

BOX = (-1.0, -1.0, -1.0, 1.0, 1.0, 1.0)


class Counted:
    """An opaque ball of radius 0.5 (sigma 200) with a position-dependent colour; counts evaluations."""

    def __init__(self, channels=3):
        self.channels, self.evaluations = channels, 0

    def __call__(self, positions, directions):
        self.evaluations += positions.shape[0]
        sigma = torch.where(positions.norm(dim=1) < 0.5, 200.0, 0.0)
        freqs = torch.arange(1, self.channels + 1, dtype=positions.dtype)
        values = torch.sigmoid((positions @ torch.ones(3, 1)) * freqs + directions[:, :1])
        return sigma, values


def camera_rays(n_side=24):
    """A pinhole camera at z = -3 looking at the origin, plus rays that miss the box."""
    u = torch.linspace(-0.4, 0.4, n_side)
    dirs = torch.stack(torch.meshgrid(u, u, indexing="ij"), -1).reshape(-1, 2)
    rays_d = torch.cat([dirs, torch.ones(dirs.shape[0], 1)], 1)
    rays_o = torch.tensor([0.0, 0.0, -3.0]).expand_as(rays_d).contiguous()
    miss_o, miss_d = torch.tensor([[5.0, 5.0, 5.0]]), torch.tensor([[1.0, 0.0, 0.0]])
    return torch.cat([rays_o, miss_o]), torch.cat([rays_d, miss_d])


def ball_grid(resolution=32):
    grid = OccupancyGrid(BOX, resolution, warmup_steps=0)
    grid.update(lambda x: torch.where(x.norm(dim=1) < 0.5, 200.0, 0.0) * 0.01)
    return grid


@pytest.mark.parametrize("backend", ["torch", "cpp"])
def test_early_termination_matches_full_compositing(backend):
    if backend not in fastnerf.backends.available("cpu"):
        pytest.skip(f"{backend} not available here")
    rays_o, rays_d = camera_rays()
    grid = ball_grid()
    bg = torch.tensor([0.2, 0.4, 0.6])
    full_field, fast_field = Counted(), Counted()
    full = render_rays(full_field, rays_o, rays_d, grid, step_size=0.01, background=bg, early_stop_eps=0.0,
                       backend=backend)
    fast = render_rays(fast_field, rays_o, rays_d, grid, step_size=0.01, background=bg, backend=backend)
    # Tolerance: a retired ray drops weight < eps = 1e-4 times values in [0, 1], plus float32 rounding.
    torch.testing.assert_close(fast["rgb"], full["rgb"], rtol=0, atol=2e-4)
    torch.testing.assert_close(fast["opacity"], full["opacity"], rtol=0, atol=2e-4)
    torch.testing.assert_close(fast["depth"], full["depth"], rtol=0, atol=2e-3)
    assert fast["n_samples"] == fast_field.evaluations and full["n_samples"] == full_field.evaluations
    assert full["n_samples"] == full["t_starts"].numel()  # eps = 0: every sample evaluated once
    assert fast["n_samples"] < 0.5 * full["n_samples"], (fast["n_samples"], full["n_samples"])
    assert torch.equal(fast["rgb"][-1], bg) and fast["opacity"][-1] == 0  # the missed ray


def test_eps_zero_rounds_equal_one_composite():
    """Compositing in rounds of 3 samples equals one composite over all samples (same samples)."""
    rays_o, rays_d = camera_rays(8)
    grid = ball_grid(16)
    field = Counted(channels=5)
    rounds = render_rays(field, rays_o, rays_d, grid, step_size=0.02, early_stop_eps=0.0, samples_per_round=3)
    once = render_rays(field, rays_o, rays_d, grid, step_size=0.02, early_stop_eps=0.0, samples_per_round=10**6)
    for key in ("values", "opacity", "depth"):
        torch.testing.assert_close(rounds[key], once[key], rtol=1e-5, atol=1e-5)
    assert "rgb" not in rounds and rounds["values"].shape == (rays_o.shape[0], 5)


def test_train_mode_is_differentiable_jittered_and_matches_inference_on_average():
    rays_o, rays_d = camera_rays(8)
    grid = ball_grid(16)
    scale = torch.ones(3, requires_grad=True)

    def field(positions, directions):
        sigma, values = Counted()(positions, directions)
        return sigma * scale[0], values * scale

    g = torch.Generator().manual_seed(0)
    out1 = render_rays(field, rays_o, rays_d, grid, step_size=0.02, train=True, generator=g)
    out2 = render_rays(field, rays_o, rays_d, grid, step_size=0.02, train=True, generator=g)
    assert not torch.equal(out1["t_starts"][:5], out2["t_starts"][:5])  # jittered
    out1["rgb"].sum().backward()
    assert scale.grad is not None and scale.grad.abs().sum() > 0
    with torch.no_grad():
        infer = render_rays(field, rays_o, rays_d, grid, step_size=0.02, early_stop_eps=0.0)
    torch.testing.assert_close(out1["opacity"].detach(), infer["opacity"], rtol=0, atol=0.05)


def test_wide_features_background_per_ray_and_explicit_segments():
    rays_o, rays_d = camera_rays(4)
    n = rays_o.shape[0]
    grid = ball_grid(8)
    bg = torch.rand(n, 128)
    out = render_rays(Counted(128), rays_o, rays_d, grid, step_size=0.05, background=bg)
    assert out["values"].shape == (n, 128)
    torch.testing.assert_close(out["values"][-1], bg[-1])
    none = render_rays(Counted(3), rays_o, rays_d, grid, step_size=0.05, t_near=torch.zeros(n), t_far=torch.zeros(n))
    assert none["n_samples"] == 0 and (none["rgb"] == 0).all()
    with pytest.raises(ValueError, match="t_far"):
        render_rays(Counted(3), rays_o, rays_d, grid, step_size=0.05, t_near=torch.zeros(n))
    with pytest.raises(ValueError, match="background"):
        render_rays(Counted(3), rays_o, rays_d, grid, step_size=0.05, background=torch.zeros(4))


def test_two_stage_fields_colour_only_visible_samples():
    """With (geometry, colour) stages, samples below skip_weight get no colour: at most their weight is lost."""
    rays_o, rays_d = camera_rays(12)
    grid = OccupancyGrid(BOX, 8, warmup_steps=0)  # every cell occupied: many empty samples before the ball
    field = Counted(channels=3)
    coloured = []

    def geometry(positions):
        sigma, _ = field(positions, positions)
        return sigma, positions  # the features are the position itself

    def colour(features, directions):
        coloured.append(features.shape[0])
        return torch.sigmoid((features @ torch.ones(3, 1)) * torch.arange(1, 4, dtype=features.dtype) + directions[:, :1])

    plain = render_rays(field, rays_o, rays_d, grid, step_size=0.02)
    staged = render_rays(field, rays_o, rays_d, grid, step_size=0.02, stages=(geometry, colour), skip_weight=0.0)
    torch.testing.assert_close(staged["rgb"], plain["rgb"], rtol=0, atol=1e-5)  # threshold 0: the same image
    everything = sum(coloured)
    coloured.clear()
    skipped = render_rays(field, rays_o, rays_d, grid, step_size=0.02, stages=(geometry, colour), skip_weight=1e-3)
    assert sum(coloured) < 0.5 * everything  # the empty samples before the ball get no colour
    lost = (skipped["rgb"] - plain["rgb"]).abs().max()
    assert 0 < lost < 16 * 1e-3  # at most the skipped weights (<= 16 per round here) times colours in [0, 1]
    torch.testing.assert_close(skipped["opacity"], plain["opacity"], rtol=0, atol=1e-6)  # density is never skipped
