"""fastnerf.render: shapes for single and batch cameras, any intrinsics, chunking, bad cameras."""

import pytest
import torch

import fastnerf
from fastnerf.cameras import Camera, orbit_path
from fastnerf.errors import UserError
from fastnerf.models import build_model
from fastnerf.rendering import render
from tiny import TINY_TEACHER

TINY = {**TINY_TEACHER, "steps_per_diagonal": 64}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("nerf", **TINY)


def test_single_and_batch_shapes_any_size(model):
    cameras = orbit_path(3, 4.0, 30.0, 11, 7, 0.8)
    batch = fastnerf.render(model, cameras)
    assert batch["rgb"].shape == (3, 7, 11, 3)
    assert batch["depth"].shape == (3, 7, 11) and batch["opacity"].shape == (3, 7, 11)
    single = render(model, cameras[1])
    assert single["rgb"].shape == (7, 11, 3)
    assert torch.equal(single["rgb"], batch["rgb"][1])


def test_chunk_size_does_not_change_the_image(model):
    camera = orbit_path(1, 4.0, 20.0, 9, 13, 0.7)[0]
    whole = render(model, camera, chunk=1 << 20)
    pieces = render(model, camera, chunk=7)
    assert torch.allclose(whole["rgb"], pieces["rgb"], atol=1e-6)


def test_memory_is_bounded_by_chunk(model):
    seen = []
    original = model.render_rays

    class Spy(torch.nn.Module):
        kind = "nerf"

        def render_rays(self, rays_o, rays_d, **kwargs):
            seen.append(rays_o.shape[0])
            return original(rays_o, rays_d, **kwargs)

    camera = orbit_path(1, 4.0, 20.0, 40, 30, 0.7)[0]
    render(Spy(), camera, chunk=256)
    assert max(seen) <= 256 and sum(seen) == 40 * 30


def test_custom_intrinsics_and_principal_point(model):
    c2w = orbit_path(1, 4.0, 30.0, 8, 8, 0.8).c2w[0]
    camera = Camera(c2w, fx=10.0, fy=14.0, cx=3.0, cy=5.5, width=8, height=12)
    out = render(model, camera)
    assert out["rgb"].shape == (12, 8, 3) and torch.isfinite(out["rgb"]).all()
    # the same focal lengths on a larger sensor whose principal point sits 4 pixels further in:
    # its pixels (4.., 4..) cast exactly the rays of the small camera's, so they render the same
    larger = Camera(c2w, fx=10.0, fy=14.0, cx=7.0, cy=9.5, width=16, height=20)
    torch.testing.assert_close(render(model, larger)["rgb"][4:16, 4:12], out["rgb"], atol=1e-5, rtol=0)
    shifted = Camera(c2w, fx=10.0, fy=14.0, cx=4.0, cy=5.5, width=8, height=12)  # another principal point
    assert (render(model, shifted)["rgb"] - out["rgb"]).abs().max() > 1e-3


def test_singular_pose_is_a_user_error(model):
    c2w = torch.eye(4)
    c2w[:3, :3] = 0.0  # singular rotation
    camera = Camera(c2w, 10.0, 10.0, 4.0, 4.0, 8, 8, check=False)
    with pytest.raises(UserError, match="singular or non-rigid"):
        render(model, camera)
    with pytest.raises(UserError, match="chunk"):
        render(model, orbit_path(1, 4.0, 30.0, 8, 8, 0.8)[0], chunk=0)
    with pytest.raises(UserError, match="Camera"):
        render(model, "not a camera")


class Student(torch.nn.Module):
    """Renders whole cameras and records what it was given."""

    kind = "student"

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.calls = []

    def render_camera(self, camera, *, backend=None, background=None, chunk=8192):
        self.calls.append({"training": self.training, "grad": torch.is_grad_enabled(), "background": background,
                           "chunk": chunk, "backend": backend})
        return {"rgb": torch.zeros(camera.height, camera.width, 3)}

    def render_rays(self, rays_o, rays_d, **kwargs):  # both entry points: render_camera wins
        raise AssertionError("a model with render_camera is rendered through it")


def test_image_models_render_whole_cameras_through_one_protocol():
    camera = orbit_path(1, 4.0, 30.0, 5, 4, 0.8)[0]
    student = Student().train()
    out = render(student, camera, background=[0.0, 1.0, 0.0], chunk=77, backend="torch")
    assert out["rgb"].shape == (4, 5, 3)
    assert student.calls == [{"training": False, "grad": False, "background": [0.0, 1.0, 0.0], "chunk": 77,
                              "backend": "torch"}]
    assert student.training  # put back as it was
    assert render(student, camera, supersample=1)["rgb"].shape == (4, 5, 3)
    with pytest.raises(UserError, match="supersample applies to ray-based models; Student"):
        render(student, camera, supersample=2)
    with pytest.raises(UserError, match="dense_samples applies to ray-based models"):
        render(student, camera, dense_samples=256)
    with pytest.raises(UserError, match="views applies to ray-based models"):
        render(student, camera, views=(torch.zeros(1, 4, 5, 3), camera))


def test_views_go_to_image_conditioned_models_once_and_are_checked(model):
    camera = orbit_path(1, 4.0, 30.0, 6, 5, 0.8)[0]
    with pytest.raises(UserError, match="views apply to image-conditioned models; NeRF"):
        render(model, camera, views=(torch.zeros(1, 5, 6, 3), camera.batch()))

    class Conditioned(torch.nn.Module):
        kind = "conditioned"
        needs_views = True

        def __init__(self):
            super().__init__()
            self.encoded = []

        def encode_views(self, images, cameras):
            self.encoded.append(images.shape)
            return images.mean()

        def render_rays(self, rays_o, rays_d, *, backend=None, background=None, views=None):
            return {"rgb": views.expand(rays_o.shape[0], 3)}

    conditioned = Conditioned()
    images = torch.full((2, 5, 6, 3), 0.25)
    out = render(conditioned, camera, views=(images, orbit_path(2, 4.0, 30.0, 6, 5, 0.8)), chunk=7)
    assert conditioned.encoded == [(2, 5, 6, 3)] and torch.allclose(out["rgb"], torch.tensor(0.25))
    with pytest.raises(UserError, match="2 images of 6x5 but 1 cameras"):
        render(conditioned, camera, views=(images, camera.batch()))
    with pytest.raises(UserError, match="renders from source views"):
        render(conditioned, camera)


def test_dense_samples_render_as_vanilla_nerf(model):
    camera = orbit_path(1, 4.0, 30.0, 6, 5, 0.8)[0]
    from fastnerf.ops import ray_aabb

    dense = render(model, camera, dense_samples=64, supersample=1)
    rays_o, rays_d = camera.rays()
    hit = ray_aabb(rays_o.reshape(-1, 3), rays_d.reshape(-1, 3), model.aabb)[2]
    assert 0 < int(hit.sum()) and dense["n_samples"] == 64 * int(hit.sum())  # every sample of every ray, no grid
    marched = render(model, camera, supersample=1)
    assert dense["n_samples"] > marched["n_samples"]
    torch.testing.assert_close(dense["rgb"], marched["rgb"], atol=0.08, rtol=0)  # same field, other sampling
    with pytest.raises(UserError, match="dense_samples must be a positive integer"):
        render(model, camera, dense_samples=0)


def test_package_attribute_stays_the_function_after_submodule_imports():
    import fastnerf.train  # noqa: F401  (imports fastnerf.rendering internally)

    assert callable(fastnerf.render) and fastnerf.render.__name__ == "render"
