"""The students as models: shapes, any-camera rendering (hybrid), refused cameras (pose, shared),
export_forward, config round trips, teacher initialisation and the shared encoder's gradients."""

import math

import pytest
import torch

import fastnerf
from fastnerf.cameras import Camera, look_at
from fastnerf.errors import UserError
from fastnerf.fields.pose_encoding import PoseEncoding, rotation_6d
from fastnerf.fields.upsampling import UpBlock, UpsamplingDecoder
from fastnerf.models import MODEL_KINDS, build_model
from fastnerf.models.students import STUDENT_KINDS

CAMERA = dict(width=16, height=12, fx=18.0, fy=18.0, cx=8.0, cy=6.0)


def cameras(n=3, width=16, height=12, fx=18.0):
    azimuth = torch.linspace(0, 2, n)
    eye = 4 * torch.stack([azimuth.cos() * 0.8, azimuth.sin() * 0.8, torch.full_like(azimuth, 0.6)], -1)
    return Camera(look_at(eye, (0.0, 0.0, 0.0)), fx, fx, width / 2, height / 2, width, height)


def test_students_are_registered_as_models_and_kinds():
    assert {"pose", "hybrid", "shared"} <= set(STUDENT_KINDS) and {"pose", "hybrid", "shared"} <= set(MODEL_KINDS)
    assert STUDENT_KINDS["hybrid"].settings["lr"] > 0 and "batch_views" in STUDENT_KINDS["pose"].settings


def test_upsampling_blocks_double_and_decoder_crops_nothing_itself():
    x = torch.randn(2, 8, 5, 3)
    assert UpBlock(8, 4, "bilinear")(x).shape == (2, 4, 10, 6)
    assert UpBlock(8, 4, "transposed")(x).shape == (2, 4, 10, 6)
    decoder = UpsamplingDecoder(8, 2, mode="transposed", min_channels=2)
    out = decoder(x)
    assert out.shape == (2, 3, 20, 12) and decoder.factor == 4 and 0 <= out.min() and out.max() <= 1
    assert UpsamplingDecoder(8, 0)(x).shape == (2, 3, 5, 3)
    with pytest.raises(ValueError, match="upsampler"):
        UpBlock(8, 4, "nearest")


def test_transposed_blocks_treat_the_four_phases_apart_and_bilinear_blends_them():
    torch.manual_seed(0)
    flat = torch.ones(1, 4, 4, 4)  # a constant input: any output pattern is the upsampler's own
    for mode, patterned in (("transposed", True), ("bilinear", False)):
        block = UpBlock(4, 4, mode)
        out = block(flat)[0, :, 2:-2, 2:-2]  # away from the zero padding
        phase_means = torch.stack([out[:, i::2, j::2].mean() for i in (0, 1) for j in (0, 1)])
        assert bool((phase_means.max() - phase_means.min()) > 1e-3) == patterned, mode


def test_pose_encoding_is_continuous_in_the_rotation():
    c2w = cameras(2).c2w
    assert torch.equal(rotation_6d(c2w)[:, :3], c2w[:, :3, 0]) and torch.equal(rotation_6d(c2w)[:, 3:], c2w[:, :3, 1])
    encoding = PoseEncoding((0, 0, 0), 4.0, position_freqs=2, rotation_freqs=1)
    out = encoding(c2w)
    assert out.shape == (2, encoding.out_dim) and encoding.out_dim == 3 * 5 + 6 * 3
    assert torch.allclose(out[:, :3], c2w[:, :3, 3] / 4.0)
    with pytest.raises(ValueError, match=r"\[B,4,4\]"):
        encoding(c2w[0])


def fixed_student(kind, **options):
    extra = {"aabb": [-1.0] * 3 + [1.0] * 3} if kind == "shared" else {}
    return build_model(kind, **CAMERA, centre=[0.0, 0.0, 0.0], scale=4.0, hidden=16, code_dim=16, channels=8,
                       n_hidden=1, **extra, **options)


@pytest.mark.parametrize("kind", ["pose", "shared"])
def test_fixed_camera_students_render_their_camera_and_refuse_others(kind):
    torch.manual_seed(0)
    model = fixed_student(kind)
    batch = cameras(3)
    out = fastnerf.render(model, batch)["rgb"]
    assert out.shape == (3, 12, 16, 3) and 0 <= out.min() and out.max() <= 1
    single = fastnerf.render(model, batch[1])["rgb"]
    assert torch.allclose(single, out[1], atol=1e-6)
    intrinsics = torch.tensor([[18.0, 18.0, 8.0, 6.0]]).expand(3, 4)
    assert torch.allclose(model.export_forward(batch.c2w, intrinsics), out, atol=1e-6)
    with pytest.raises(UserError, match=r"renders only the camera it was trained for: 16x12 pixels, fx=18"):
        fastnerf.render(model, cameras(1, width=32, height=24))
    with pytest.raises(UserError, match="fx=18"):
        fastnerf.render(model, cameras(1, fx=30.0))
    rebuilt = build_model(kind, **model.config())
    rebuilt.load_state_dict(model.state_dict())
    assert torch.equal(fastnerf.render(rebuilt, batch)["rgb"], out)


@pytest.mark.parametrize("kind", ["pose", "shared", "hybrid"])
def test_students_that_bake_their_background_refuse_another(kind):
    torch.manual_seed(0)
    background = [0.2, 0.3, 0.4]
    model = small_hybrid(background=background) if kind == "hybrid" else fixed_student(kind, background=background)
    camera = cameras(1)[0]
    out = fastnerf.render(model, camera)["rgb"]
    assert torch.equal(fastnerf.render(model, camera, background=torch.tensor(background))["rgb"], out)
    with pytest.raises(UserError, match=rf"background=\[0.0, 0.0, 0.0\]: the '{kind}' student bakes its background "
                                        r"into the image and renders only the background it was trained on, "
                                        r"\[0.2, 0.3, 0.4\]"):
        fastnerf.render(model, camera, background=[0.0, 0.0, 0.0])


def test_pose_student_learns_two_views_apart():
    torch.manual_seed(0)
    model = fixed_student("pose", n_up=1)
    batch = cameras(2)
    target = torch.zeros(2, 12, 16, 3)
    target[1] = 1.0
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        loss = torch.nn.functional.mse_loss(model(batch.c2w), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    out = model(batch.c2w).detach()
    assert out[0].mean() < 0.2 and out[1].mean() > 0.8


def small_hybrid(**options):
    settings = dict(aabb=[-1.0] * 3 + [1.0] * 3, grid_resolution=8, hash_levels=4, hash_log2_size=10,
                    hash_max_res=32, hidden=16, geo_features=7, features=8, factor=4, decoder_channels=8,
                    min_channels=4)
    return build_model("hybrid", **{**settings, **options})


@pytest.mark.parametrize("sampling", ["march", "dense"])
def test_hybrid_renders_any_camera(sampling):
    torch.manual_seed(0)
    model = small_hybrid(sampling=sampling, samples=8)
    for camera in (cameras(2), cameras(1, width=13, height=9), cameras(1, width=40, height=24, fx=50.0)[0]):
        out = fastnerf.render(model, camera)["rgb"]
        shape = (camera.height, camera.width, 3)
        assert out.shape == ((len(camera),) + shape if camera.is_batch else shape)
    low = model.feature_camera(cameras(1, width=13, height=9))
    assert (low.width, low.height) == (4, 3) and torch.allclose(low.fx, torch.tensor([4.5]))
    chunked = model.render_camera(cameras(2), chunk=7)["rgb"]
    assert torch.allclose(chunked, model.render_camera(cameras(2))["rgb"], atol=1e-5)


def test_hybrid_dense_samples_are_even_between_entry_and_exit():
    model = small_hybrid(sampling="dense", samples=4)
    seen = {}

    def spy(positions, directions, backend=None):
        seen["positions"] = positions
        return torch.zeros(positions.shape[0]), torch.zeros(positions.shape[0], 8)

    model.field = spy
    rays_o = torch.tensor([[-3.0, 0.0, 0.0], [-3.0, 5.0, 0.0]])  # the second misses the box
    rays_d = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    features = model.render_features(rays_o, rays_d)
    assert torch.allclose(seen["positions"][:, 0], torch.tensor([-0.75, -0.25, 0.25, 0.75]))
    assert torch.allclose(features, model.background_feature.detach().expand(2, 8))  # empty: background


def test_hybrid_started_from_a_hash_teacher_renders_the_teacher_at_low_resolution():
    torch.manual_seed(0)
    teacher = build_model("nerf", aabb=[-1.0] * 3 + [1.0] * 3, grid_resolution=8, hash_levels=4, hash_log2_size=10,
                          hash_max_res=32, hidden=16, geo_features=7, steps_per_diagonal=64, background=[0.2, 0.3, 0.4])
    with torch.no_grad():  # a visible teacher: dense enough to be opaque somewhere, coloured
        teacher.position_encoding.table.normal_(0, 1)
    teacher.grid.occupied[:4] = False
    model = small_hybrid(samples=64, background=[0.2, 0.3, 0.4])
    assert model.init_from_teacher(teacher)
    assert torch.equal(model.position_encoding.table, teacher.position_encoding.table)
    assert torch.equal(model.grid.occupied, teacher.grid.occupied)
    rays_o, rays_d = cameras(2, width=8, height=6).rays()
    rays_o, rays_d = rays_o.reshape(-1, 3), rays_d.reshape(-1, 3)
    with torch.no_grad():
        expected = teacher.render_rays(rays_o, rays_d)
        features = model.render_features(rays_o, rays_d)
    assert expected["opacity"].max() > 0.5 and expected["opacity"].min() < 0.5
    assert torch.allclose(features[:, :3], expected["rgb"], atol=1e-5)  # same field, same marching, same colour
    with torch.no_grad():  # the decoder's residual starts at zero: the image is the colour, upsampled
        image = model.render_images(cameras(1, width=16, height=12))
        colour = model.render_features(*[t.reshape(-1, 3) for t in model.feature_camera(cameras(1, 16, 12)).rays()])
    low_image = colour[:, :3].reshape(1, 3, 4, 3).permute(0, 3, 1, 2)  # [1, 3 channels, 3 rows, 4 columns]
    upsampled = torch.nn.functional.interpolate(low_image, scale_factor=4.0, mode="bilinear", align_corners=False)
    assert torch.allclose(image[0], upsampled[0].permute(1, 2, 0), atol=1e-5)
    with pytest.raises(ValueError, match="field layout differs"):
        small_hybrid(hash_levels=3).init_from_teacher(teacher)
    groups = model.param_groups(1e-3, field_lr=1e-2)
    assert groups[0]["base_lr"] == 1e-2 and groups[1]["base_lr"] == 1e-3
    assert groups[0]["params"][0] is model.position_encoding.table
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_shared_nerf_loss_reaches_the_encoder():
    torch.manual_seed(0)
    model = fixed_student("shared", nerf_samples=16, grid_resolution=4)
    batch = cameras(1)
    code = model.net.code(batch.c2w)[0]
    rays_o, rays_d = batch.rays()
    rgb = model.nerf_render(code, rays_o.reshape(-1, 3)[:20], rays_d.reshape(-1, 3)[:20],
                            generator=torch.Generator().manual_seed(0), background=torch.ones(3))
    assert rgb.shape == (20, 3)
    rgb.sum().backward()
    assert model.net.encoder.hidden[0].weight.grad.abs().sum() > 0  # the NeRF's loss shapes the encoder
    assert model.net.to_map.weight.grad is None  # and not the image decoder
