"""The lightfield student and its ray encodings: geometry, any camera, NDC, training signal."""

import math

import pytest
import torch

import fastnerf
from fastnerf.cameras import Camera, orbit_path
from fastnerf.errors import UserError
from fastnerf.fields.ray_encoding import BALL_RADIUS, RayEncoding, pluecker, ray_points, to_unit_box
from fastnerf.models import build_model
from fastnerf.models.nerf import ndc_rays
from fastnerf.models.students.lightfield import bundle_rays, camera_intrinsics

AABB = (-1.0, -2.0, -0.5, 1.0, 2.0, 1.5)
TINY = dict(aabb=AABB, hidden=16, n_blocks=1, n_freqs=2, n_points=4, channels=8, image_width=16, image_height=16)


def random_rays(n, seed=0):
    generator = torch.Generator().manual_seed(seed)
    origins = torch.randn(n, 3, generator=generator) * 3
    directions = torch.randn(n, 3, generator=generator)
    return origins, directions / directions.norm(dim=-1, keepdim=True)


def randomised(model, seed=0):
    # Zero-initialised residual branches would hide bugs in the blocks: randomise every weight.
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return model.eval()


# ------------------------------------------------------------------------------ encodings
def test_unit_box_maps_the_box_corners_to_plus_minus_one():
    aabb = torch.tensor(AABB)
    corners = torch.stack([aabb[:3], aabb[3:]])
    origins, directions = to_unit_box(corners, torch.tensor([[0.0, 4.0, 0.0]] * 2), aabb)
    assert torch.allclose(origins, torch.tensor([[-1.0] * 3, [1.0] * 3]))
    assert torch.allclose(directions, torch.tensor([[0.0, 1.0, 0.0]] * 2))  # y half-extent 2: rescaled, unit


@pytest.mark.parametrize("kind", ["points", "pluecker"])
def test_encoding_names_the_line_not_the_origin(kind):
    encoding = RayEncoding(kind, AABB, n_points=5, n_freqs=3)
    origins, directions = random_rays(7)
    moved = origins + torch.linspace(-2, 3, 7)[:, None] * directions
    assert torch.allclose(encoding(origins, directions), encoding(moved, directions), atol=1e-4)
    sideways = origins + torch.linalg.cross(directions, torch.randn(7, 3), dim=-1)
    assert not torch.allclose(encoding(origins, directions), encoding(sideways, directions), atol=1e-2)
    assert encoding(origins, directions).shape == (7, encoding.out_dim)


def test_points_lie_on_the_ray_centred_on_its_closest_approach():
    origins, directions = random_rays(6, seed=3)
    points = ray_points(origins, directions, 8)  # [6,8,3]
    offsets = points - origins[:, None]
    along = (offsets * directions[:, None]).sum(-1)  # [6,8]
    assert torch.allclose(offsets, along[..., None] * directions[:, None], atol=1e-5)  # on the line
    closest = origins - (origins * directions).sum(-1, keepdim=True) * directions
    assert torch.allclose(points.mean(1), closest, atol=1e-5)
    assert torch.allclose(along[:, -1] - along[:, 0], torch.full((6,), 2 * BALL_RADIUS * 7 / 8), atol=1e-5)


def test_pluecker_moment_is_the_distance_to_the_centre():
    origins = torch.tensor([[0.0, 0.5, 9.0]])
    directions = torch.tensor([[0.0, 0.0, -1.0]])
    coordinates = pluecker(origins, directions)
    assert torch.allclose(coordinates[0, :3], directions[0])
    assert math.isclose(coordinates[0, 3:].norm().item(), 0.5, rel_tol=1e-6)


# ------------------------------------------------------------------------------ cameras
def test_bundle_rays_are_the_block_centre_rays():
    cameras = orbit_path(2, 4.0, 30.0, 10, 7, 0.8)
    c2w, intrinsics = camera_intrinsics(cameras)
    origins, directions = bundle_rays(c2w, intrinsics, 7, 10, stride=1)
    expected_o, expected_d = cameras.rays()
    assert torch.allclose(origins, expected_o) and torch.allclose(directions, expected_d, atol=1e-6)
    origins, directions = bundle_rays(c2w, intrinsics, 7, 10, stride=4)  # 2 x 3 blocks, the last ones cropped
    assert origins.shape == (2, 2, 3, 3)
    index = torch.tensor([1])
    _, through = cameras.rays_through(index, torch.tensor([2 * 4 + 2.0]), torch.tensor([1 * 4 + 2.0]))
    assert torch.allclose(directions[1, 1, 2], through[0], atol=1e-6)


@pytest.mark.parametrize("bundle", [1, 4])
@pytest.mark.parametrize("encoding", ["points", "pluecker"])
def test_renders_any_camera_single_or_batch(bundle, encoding):
    model = randomised(build_model("lightfield", encoding=encoding, bundle=bundle, **TINY))
    cameras = Camera(orbit_path(3, 4.0, 30.0, 11, 7, 0.8).c2w, fx=[9.0, 12.0, 20.0], fy=[9.0, 10.0, 20.0],
                     cx=5.5, cy=[3.5, 3.0, 4.0], width=11, height=7)
    batch = fastnerf.render(model, cameras)
    assert batch["rgb"].shape == (3, 7, 11, 3) and batch["opacity"].shape == (3, 7, 11)
    assert batch["rgb"].min() >= 0 and batch["rgb"].max() <= 1
    single = fastnerf.render(model, cameras[1])
    assert single["rgb"].shape == (7, 11, 3)
    assert torch.allclose(single["rgb"], batch["rgb"][1], atol=1e-6)
    assert not torch.allclose(batch["rgb"][0], batch["rgb"][2], atol=1e-3)  # the focal length matters
    pieces = model.render_camera(cameras, chunk=5)
    assert torch.allclose(pieces["rgb"], batch["rgb"], atol=1e-6)


def test_bundle_renders_odd_sizes_on_the_next_multiple_and_crops():
    model = randomised(build_model("lightfield", bundle=4, **TINY))
    c2w = orbit_path(1, 4.0, 30.0, 8, 8, 0.8).c2w[0]
    small = Camera(c2w, fx=12.0, fy=12.0, cx=8.0, cy=6.0, width=18, height=13)
    padded = Camera(c2w, fx=12.0, fy=12.0, cx=8.0, cy=6.0, width=20, height=16)
    assert torch.allclose(model.render_camera(small)["rgb"], model.render_camera(padded)["rgb"][:13, :18], atol=1e-6)


def test_background_is_composited_with_the_predicted_opacity():
    model = randomised(build_model("lightfield", **TINY))
    camera = orbit_path(1, 4.0, 30.0, 6, 5, 0.8)[0]
    white = model.render_camera(camera)
    black = model.render_camera(camera, background=(0.0, 0.0, 0.0))
    assert torch.allclose(white["rgb"] - black["rgb"], (1 - white["opacity"])[..., None].expand(5, 6, 3), atol=1e-6)
    with pytest.raises(UserError, match="background"):
        model.render_camera(camera, background=(1.0, 0.0))


def test_ndc_teacher_rays_are_encoded_in_ndc():
    ndc = {"fx_ratio": 1.5, "fy_ratio": 2.0, "near": 1.0}
    box = (-1.5, -1.5, -1.0, 1.5, 1.5, 1.0)
    model = randomised(build_model("lightfield", **{**TINY, "aabb": box, "ndc": ndc}))
    origins = torch.tensor([[0.1, -0.2, 0.0], [0.3, 0.0, 0.2]])
    directions = torch.tensor([[0.1, 0.2, -1.0], [-0.2, 0.1, -1.0]])
    ndc_o, ndc_d = ndc_rays(origins, directions, **ndc)
    expected = model.head(model.blocks(torch.relu(model.stem(model.encoder(ndc_o, ndc_d)))))
    assert torch.allclose(model.ray_outputs(origins, directions), expected)
    assert not torch.allclose(model.encoder(origins, directions), model.encoder(ndc_o, ndc_d))


def test_config_rebuilds_the_same_model():
    model = randomised(build_model("lightfield", bundle=2, encoding="points", **TINY))
    copy = build_model("lightfield", **model.config())
    copy.load_state_dict(model.state_dict())
    camera = orbit_path(1, 4.0, 30.0, 9, 9, 0.8)[0]
    assert torch.equal(fastnerf.render(model, camera)["rgb"], fastnerf.render(copy.eval(), camera)["rgb"])


@pytest.mark.parametrize("bad, message", [({"encoding": "rays"}, "encoding"), ({"bundle": 3}, "bundle"),
                                          ({"hidden": 0}, "hidden"), ({"n_blocks": -1}, "n_blocks")])
def test_bad_config_is_a_user_error(bad, message):
    with pytest.raises(UserError, match=message):
        build_model("lightfield", **{**TINY, **bad})


def test_bad_camera_is_a_user_error():
    model = build_model("lightfield", **TINY)
    with pytest.raises(UserError, match="Camera"):
        model.render_camera(torch.eye(4))


# ------------------------------------------------------------------------------ learning
@pytest.mark.parametrize("bundle", [1, 2])
def test_a_few_steps_fit_a_view_dependent_target(bundle):
    # Target: colour from the ray direction (a "sky" light field); the student must learn it.
    torch.manual_seed(0)
    model = build_model("lightfield", bundle=bundle, **{**TINY, "hidden": 32})
    cameras = orbit_path(4, 4.0, 30.0, 16, 16, 0.9)
    c2w, intrinsics = camera_intrinsics(cameras)
    _, directions = bundle_rays(c2w, intrinsics, 16, 16)
    target = directions * 0.5 + 0.5  # [4,16,16,3]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        rgb, _ = model.colour(model.raw_images(c2w, intrinsics, 16, 16), model.background)
        loss = ((rgb - target) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0]
