"""fastnerf.distill: camera samplers, the view pool (draws, refresh, persistence) and diagnostics."""

import math

import pytest
import torch

from fastnerf.cameras import Camera, look_at, rigid_transform_problems
from fastnerf.data.dataset import Dataset
from fastnerf.distill import OrbitSampler, PerturbedPoseSampler, ViewPool, sampler_for
from fastnerf.distill.diagnostics import checkerboard_energy, flicker, nearest_view_baseline
from fastnerf.errors import UserError

SIZE = 8


def ring_cameras(n=12, radius=4.0, elevations=(10.0, 50.0)):
    azimuth = torch.linspace(0, 2 * math.pi, n + 1)[:-1]
    elevation = torch.deg2rad(torch.linspace(*elevations, n))
    eye = radius * torch.stack([elevation.cos() * azimuth.cos(), elevation.cos() * azimuth.sin(), elevation.sin()], -1)
    return Camera.from_fov(look_at(eye, (0.0, 0.0, 0.0)), SIZE, SIZE, math.radians(40))


def colour_of(c2w):  # [B,4,4] -> [B,3]: a colour that identifies the camera
    return torch.sigmoid(c2w[:, :3, 3])


class PoseColourTeacher(torch.nn.Module):
    """Renders each camera as a flat image of a colour computed from its centre."""

    kind = "fake"
    renders = 0

    def render_camera(self, camera, *, backend=None, background=None, chunk=8192):
        batch = camera.batch()
        self.renders += len(batch)
        rgb = colour_of(batch.c2w)[:, None, None, :].expand(len(batch), camera.height, camera.width, 3)
        return {"rgb": rgb if camera.is_batch else rgb[0]}


def real_dataset(cameras):
    images = colour_of(cameras.c2w)[:, None, None, :].expand(len(cameras), SIZE, SIZE, 3).contiguous()
    return Dataset(images, cameras, aabb=torch.tensor([-1.0, -1, -1, 1, 1, 1]))


def test_orbit_sampler_stays_in_the_training_band_and_looks_at_the_centre():
    cameras = ring_cameras()
    sampler = OrbitSampler(cameras, (0.0, 0.0, 0.0))
    sampled = sampler.sample(200, torch.Generator().manual_seed(0))
    assert len(sampled) == 200 and (sampled.width, sampled.height) == (SIZE, SIZE)
    assert not rigid_transform_problems(sampled.c2w)
    centres = sampled.c2w[:, :3, 3]
    assert torch.allclose(centres.norm(dim=-1), torch.full((200,), 4.0), atol=1e-4)
    elevation = torch.rad2deg(torch.asin(centres[:, 2] / 4.0))
    assert elevation.min() >= 10 - 1e-3 and elevation.max() <= 50 + 1e-3 and elevation.std() > 5
    forward = -sampled.c2w[:, :3, 2]  # cameras look along -Z
    assert torch.allclose((forward * -centres / 4.0).sum(-1), torch.ones(200), atol=1e-4)
    azimuth = torch.atan2(centres[:, 1], centres[:, 0])
    assert (azimuth > 2).any() and (azimuth < -2).any()  # any azimuth, not only the training ones
    assert torch.allclose(sampled.fx, cameras.fx[:1].expand(200))


def test_samplers_resize_and_forward_facing_perturbs_training_poses():
    cameras = ring_cameras()
    assert OrbitSampler(cameras, (0, 0, 0), size=(16, 12)).sample(2).width == 16
    front = Camera(cameras.c2w[:4], cameras.fx[:4], cameras.fy[:4], cameras.cx[:4], cameras.cy[:4], SIZE, SIZE)
    sampler = PerturbedPoseSampler(front, max_angle_deg=3.0)
    sampled = sampler.sample(50, torch.Generator().manual_seed(1))
    assert not rigid_transform_problems(sampled.c2w)
    distance = torch.cdist(sampled.c2w[:, :3, 3], front.c2w[:, :3, 3]).min(dim=1).values
    assert distance.max() < 4 * float(front.c2w[:, :3, 3].std(0).max()) and distance.max() > 0
    data = real_dataset(cameras)
    assert isinstance(sampler_for(data), OrbitSampler)
    data.forward_facing = True
    assert isinstance(sampler_for(data), PerturbedPoseSampler)


def make_pool(**options):
    cameras = ring_cameras()
    teacher = PoseColourTeacher()
    pool = ViewPool(teacher, OrbitSampler(cameras, (0, 0, 0)), real_dataset(cameras), **options)
    return teacher, pool


def test_pool_views_match_their_cameras_real_and_rendered():
    teacher, pool = make_pool(capacity=6, real_fraction=0.5, render_batch=4)
    generator = torch.Generator().manual_seed(0)
    pool.fill(generator)
    assert len(pool) == 6 and pool.full and teacher.renders == 6
    cameras, images = pool.draw_views(40, generator)
    assert images.shape == (40, SIZE, SIZE, 3) and images.dtype == torch.float32
    expected = colour_of(cameras.c2w)
    assert torch.allclose(images[:, 0, 0], expected, atol=2e-3)  # float16 storage
    real = torch.isclose(cameras.c2w[:, None], real_dataset(ring_cameras()).cameras.c2w[None]).all(-1).all(-1).any(1)
    assert 5 < int(real.sum()) < 35  # about half real


def test_pool_rays_carry_the_colour_of_their_view():
    _, pool = make_pool(capacity=4, real_fraction=0.3)
    generator = torch.Generator().manual_seed(2)
    pool.fill(generator)
    rays = pool.draw_rays(64, generator)
    assert rays["origins"].shape == rays["directions"].shape == rays["rgb"].shape == (64, 3)
    assert torch.allclose(rays["rgb"], torch.sigmoid(rays["origins"]), atol=2e-3)
    assert torch.allclose(rays["directions"].norm(dim=-1), torch.ones(64), atol=1e-5)


def test_refresh_renders_fresh_views_at_the_ratio_and_replaces_the_oldest():
    teacher, pool = make_pool(capacity=4, fresh_ratio=0.5, real_fraction=0.0)
    generator = torch.Generator().manual_seed(3)
    pool.fill(generator)
    first = pool.c2w.clone()
    pool.draw_views(4, generator)  # 4 pool views drawn -> 2 fresh views earned
    assert pool.refresh(generator) == 2 and teacher.renders == 6
    assert not torch.equal(pool.c2w[:2], first[:2]) and torch.equal(pool.c2w[2:], first[2:])
    assert pool.refresh(generator) == 0
    _, still = make_pool(capacity=4, fresh_ratio=0.0)
    still.fill(generator)
    still.draw_views(8, generator)
    assert still.refresh(generator) == 0


def test_pool_saves_loads_and_restores_state_exactly(tmp_path):
    _, pool = make_pool(capacity=5, fresh_ratio=0.25)
    generator = torch.Generator().manual_seed(4)
    pool.fill(generator)
    pool.draw_views(3, generator)
    path = pool.save(tmp_path / "pool.pt")
    _, other = make_pool(capacity=5, fresh_ratio=0.25)
    other.load(path)
    assert torch.equal(other.images, pool.images) and torch.equal(other.c2w, pool.c2w)
    assert (other.count, other.next_slot, other.credit) == (pool.count, pool.next_slot, pool.credit)
    a, b = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    assert torch.equal(pool.draw_views(4, a)[1], other.draw_views(4, b)[1])
    loaded = ViewPool(None, OrbitSampler(ring_cameras(), (0, 0, 0)), None, capacity=5)
    loaded.load(path)
    assert len(loaded) == 5 and loaded.draw_views(2)[1].shape == (2, SIZE, SIZE, 3)
    with pytest.raises(UserError, match="cannot render"):
        loaded.render_views(1)


def test_pool_bad_input_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="capacity"):
        make_pool(capacity=0)
    with pytest.raises(UserError, match="real_fraction"):
        make_pool(real_fraction=1.5)
    _, pool = make_pool(capacity=2)
    (tmp_path / "junk.pt").write_bytes(b"not a pool")
    with pytest.raises(UserError, match="not a readable view pool"):
        pool.load(tmp_path / "junk.pt")
    with pytest.raises(UserError, match="no view pool file"):
        pool.load(tmp_path / "missing.pt")
    big = ViewPool(PoseColourTeacher(), OrbitSampler(ring_cameras(), (0, 0, 0), size=(4, 4)), None, capacity=2)
    big.fill()
    big.save(tmp_path / "small.pt")
    with pytest.raises(UserError, match="holds 4x4 views"):
        pool.load(tmp_path / "small.pt")
    empty = ViewPool(PoseColourTeacher(), OrbitSampler(ring_cameras(), (0, 0, 0)), None, capacity=2)
    with pytest.raises(UserError, match="empty"):
        empty.draw_views(1)


def test_nearest_view_baseline_picks_the_closest_camera():
    cameras = ring_cameras()
    train = real_dataset(cameras)
    shifted = cameras.c2w.clone()
    shifted[:, :3, 3] *= 1.05
    test = real_dataset(Camera(shifted[[3, 7]], cameras.fx[:2], cameras.fy[:2], cameras.cx[:2], cameras.cy[:2], SIZE, SIZE))
    images, index = nearest_view_baseline(train, test)
    assert index.tolist() == [3, 7] and torch.equal(images, train.images[[3, 7]])


def test_flicker_and_checkerboard_numbers():
    frames = torch.zeros(3, 4, 4, 3)
    frames[1] += 0.5
    assert flicker(frames) == pytest.approx(0.5) and flicker(frames[:1]) == 0.0
    target = torch.rand(16, 16, 3, generator=torch.Generator().manual_seed(0))
    checker = ((torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2).float()[..., None].expand(16, 16, 3)
    assert checkerboard_energy(target + 0.1 * checker, target) > 0.99
    noise = torch.randn(16, 16, 3, generator=torch.Generator().manual_seed(1))
    assert checkerboard_energy(target + 0.1 * noise, target) < 0.3
    smooth = torch.linspace(0, 1, 16)[None, :, None].expand(16, 16, 3)
    assert checkerboard_energy(target + 0.1 * torch.sin(6.28 * smooth), target) < 0.05


def test_rays_earn_fresh_views_by_the_view_not_by_the_ray():
    _, pool = make_pool(capacity=4, real_fraction=0.0, fresh_ratio=0.5)
    generator = torch.Generator().manual_seed(0)
    pool.fill(generator)
    credit = pool.credit
    pool.draw_rays(4 * SIZE * SIZE, generator)  # four views' worth of pixels
    assert pool.credit - credit == pytest.approx(0.5 * 4)  # not 0.5 per ray
    pool.draw_views(4, generator)
    assert pool.credit - credit == pytest.approx(0.5 * 8)
