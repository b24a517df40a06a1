"""Every consumer of a camera honours its lens distortion or refuses it with a clear error:
the distillation samplers and view pool carry it (and its checkpoint state), the hybrid's
feature camera keeps it; pose/shared, the light field (and its exported intrinsics input) and
PixelNeRF's feature projection refuse it."""

import pytest
import torch

import fastnerf
from fastnerf.cameras import Camera
from fastnerf.distill import OrbitSampler, ViewPool
from fastnerf.errors import UserError
from fastnerf.export import camera_inputs
from fastnerf.models import build_model
from test_distill import SIZE, PoseColourTeacher, real_dataset, ring_cameras
from test_students import cameras as student_cameras
from test_students import fixed_student, small_hybrid

LENS = torch.tensor([0.2, -0.05, 0.01, 0.003])


def distorted(cameras: Camera, params=LENS) -> Camera:
    return Camera(cameras.c2w, cameras.fx, cameras.fy, cameras.cx, cameras.cy, cameras.width, cameras.height,
                  distortion_model="OPENCV", distortion=params)


def test_sampler_and_pool_carry_the_lens_through_draws_and_checkpoints():
    real_cameras = ring_cameras(6)
    per_camera = LENS * torch.linspace(0.5, 1.5, 6)[:, None]  # [6,4]: every real camera its own lens
    real = real_dataset(distorted(real_cameras, per_camera))
    sampler = OrbitSampler(real.cameras, (0.0, 0.0, 0.0))
    sampled = sampler.sample(3, torch.Generator().manual_seed(0))
    assert sampled.distortion_model == "OPENCV" and torch.equal(sampled.distortion, per_camera[:1].expand(3, 4))
    pool = ViewPool(PoseColourTeacher(), sampler, real, capacity=4, real_fraction=0.5)
    pool.fill(torch.Generator().manual_seed(1))
    generator = torch.Generator().manual_seed(2)
    cameras, _ = pool.draw_views(16, generator)
    assert cameras.distortion_model == "OPENCV"
    for index in range(16):  # each view has the real camera's lens or the sampler's
        rows_equal = (cameras.distortion[index] == per_camera).all(-1)
        assert rows_equal.any()
    assert (cameras.distortion != per_camera[0]).any(-1).any()  # some real views besides camera 0
    rays = pool.draw_rays(5, torch.Generator().manual_seed(3))
    assert rays["directions"].shape == (5, 3)
    state = pool.state_dict()
    assert state["distortion_model"] == "OPENCV" and torch.equal(state["distortion"], pool.distortion)
    restored = ViewPool(None, sampler, real, capacity=4)
    restored.load_state_dict(state)
    assert torch.equal(restored.distortion, pool.distortion)
    pinhole_pool = ViewPool(None, OrbitSampler(real_cameras, (0.0, 0.0, 0.0)), None, capacity=4)
    with pytest.raises(UserError, match="OPENCV lens, this student trains on a pinhole one"):
        pinhole_pool.load_state_dict(state)
    old = {key: value for key, value in pinhole_pool.state_dict().items() if key not in ("distortion", "distortion_model")}
    old["version"] = 1  # a pool written before lenses loads as pinhole views
    pinhole_pool.load_state_dict(old)


def test_pool_rays_follow_the_lens():
    real = real_dataset(distorted(ring_cameras(4)))
    pool = ViewPool(PoseColourTeacher(), OrbitSampler(real.cameras, (0.0, 0.0, 0.0)), real, capacity=2, real_fraction=1.0)
    rays = pool.draw_rays(64, torch.Generator().manual_seed(0))
    pinhole = ViewPool(PoseColourTeacher(), OrbitSampler(ring_cameras(4), (0.0, 0.0, 0.0)),
                       real_dataset(ring_cameras(4)), capacity=2, real_fraction=1.0)
    straight = pinhole.draw_rays(64, torch.Generator().manual_seed(0))
    torch.testing.assert_close(rays["origins"], straight["origins"])
    assert (rays["directions"] - straight["directions"]).norm(dim=-1).max() > 1e-3  # same pixels, bent rays


def test_hybrid_renders_through_the_lens():
    torch.manual_seed(0)
    model = small_hybrid()
    plain = student_cameras(1, width=SIZE * 2, height=SIZE * 2)
    bent = distorted(plain)
    low = model.feature_camera(bent)
    assert low.distortion_model == "OPENCV" and torch.equal(low.distortion, LENS[None])
    assert not torch.allclose(fastnerf.render(model, bent)["rgb"], fastnerf.render(model, plain)["rgb"])


@pytest.mark.parametrize("kind", ["pose", "shared"])
def test_fixed_camera_students_refuse_a_lens(kind):
    model = fixed_student(kind)
    with pytest.raises(UserError, match=rf"the '{kind}' student .* takes pinhole cameras only .* OPENCV lens distortion"):
        fastnerf.render(model, distorted(student_cameras(1)))
    from fastnerf.models.students._fixed_camera import camera_config

    with pytest.raises(UserError, match="pose and shared students"):
        camera_config(distorted(student_cameras(1)))


def test_lightfield_its_export_and_pixelnerf_refuse_a_lens():
    from test_lightfield import TINY

    lightfield = build_model("lightfield", bundle=1, **TINY).eval()
    camera = distorted(ring_cameras(2))
    with pytest.raises(UserError, match="lightfield student .* takes pinhole cameras only"):
        fastnerf.render(lightfield, camera)
    with pytest.raises(UserError, match=r"exported graph \(its input intrinsics \[B,4\] has no lens\)"):
        camera_inputs(camera)
    from test_pixelnerf import TINY as PIXELNERF

    pixelnerf = build_model("pixelnerf", **PIXELNERF)
    with pytest.raises(UserError, match="pixelnerf .* takes pinhole cameras only"):
        pixelnerf.encode_views(torch.rand(2, SIZE, SIZE, 3), camera)
