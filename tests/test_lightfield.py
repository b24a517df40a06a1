"""The lightfield student and its ray encodings: geometry, any camera, NDC, training signal."""

import math

import pytest
import torch

import fastnerf
from fastnerf.cameras import Camera, orbit_path
from fastnerf.errors import UserError
from fastnerf.fields.ray_encoding import BALL_RADIUS, RayEncoding, pluecker, ray_points, to_unit_box
from fastnerf.ops import freq_encode
from fastnerf.models import build_model
from fastnerf.models.nerf import ndc_rays
from fastnerf.models.students.lightfield import bundle_rays, camera_intrinsics

AABB = (-1.0, -2.0, -0.5, 1.0, 2.0, 1.5)
GRID = dict(hash_levels=4, hash_features=2, hash_log2_size=10, hash_min_res=4, hash_max_res=32)  # "hash" only
TINY = dict(aabb=AABB, hidden=16, n_blocks=1, n_freqs=2, n_points=4, channels=8, image_width=16, image_height=16,
            dir_freqs=2, **GRID)


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


def random_table(encoding, seed=0):
    # Instant-NGP's table starts at +-1e-4: random features make the lookups tell points apart.
    if encoding.grid is not None:
        with torch.no_grad():
            encoding.grid.table.copy_(torch.randn(encoding.grid.table.shape, generator=torch.Generator().manual_seed(seed)))
    return encoding


@pytest.mark.parametrize("kind", ["points", "pluecker", "hash"])
def test_encoding_names_the_line_not_the_origin(kind):
    encoding = random_table(RayEncoding(kind, AABB, n_points=5, n_freqs=3, **GRID))
    origins, directions = random_rays(7)
    moved = origins + torch.linspace(-2, 3, 7)[:, None] * directions
    assert torch.allclose(encoding(origins, directions), encoding(moved, directions), atol=1e-4)
    sideways = origins + torch.linalg.cross(directions, torch.randn(7, 3), dim=-1)
    assert not torch.allclose(encoding(origins, directions), encoding(sideways, directions), atol=1e-2)
    assert encoding(origins, directions).shape == (7, encoding.out_dim)


def test_hash_encoding_is_the_grid_at_the_ray_points_then_the_direction():
    encoding = random_table(RayEncoding("hash", AABB, n_points=3, dir_freqs=2, **GRID))
    assert encoding.out_dim == 3 * 8 + 3 * 5  # 3 points x (4 levels x 2 features), then 3 x (1 + 2 x 2)
    origins, directions = random_rays(9, seed=2)
    encoded = encoding(origins, directions)
    unit_o, unit_d = to_unit_box(origins, directions, torch.tensor(AABB))
    points = ray_points(unit_o, unit_d, 3)  # [9,3,3], the box is [-1, 1]^3
    for k in range(3):  # the box's [-1, 1] is the grid's [0, 1] (the teacher's normalisation)
        assert torch.allclose(encoded[:, 8 * k:8 * (k + 1)], encoding.grid((points[:, k] + 1) / 2), atol=1e-6)
    assert torch.allclose(encoded[:, 24:], freq_encode(unit_d, 2), atol=1e-6)
    encoded.sum().backward()  # the table learns; nothing else in the encoding does
    assert encoding.grid.table.grad.abs().sum() > 0 and [n for n, _ in encoding.named_parameters()] == ["grid.table"]


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
@pytest.mark.parametrize("encoding", ["points", "pluecker", "hash"])
def test_renders_any_camera_single_or_batch(bundle, encoding):
    model = randomised(build_model("lightfield", encoding=encoding, bundle=bundle, **TINY))
    cameras = Camera(orbit_path(3, 4.0, 30.0, 11, 7, 0.8).c2w, fx=[9.0, 12.0, 20.0], fy=[9.0, 10.0, 20.0],
                     cx=5.5, cy=[3.5, 3.0, 4.0], width=11, height=7)
    batch = fastnerf.render(model, cameras)
    assert batch["rgb"].shape == (3, 7, 11, 3)
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


def test_another_background_is_refused_with_the_one_it_has():
    model = randomised(build_model("lightfield", **{**TINY, "background": (0.0, 0.0, 0.0)}))
    camera = orbit_path(1, 4.0, 30.0, 6, 5, 0.8)[0]
    assert torch.equal(model.render_camera(camera, background=(0.0, 0.0, 0.0))["rgb"], model.render_camera(camera)["rgb"])
    with pytest.raises(UserError, match=r"background it was distilled with, \[0.0, 0.0, 0.0\]"):
        fastnerf.render(model, camera, background=torch.ones(3))


def test_ndc_teacher_rays_are_encoded_in_ndc():
    ndc = {"fx_ratio": 1.5, "fy_ratio": 2.0, "near": 1.0}
    box = (-1.5, -1.5, -1.0, 1.5, 1.5, 1.0)
    model = randomised(build_model("lightfield", **{**TINY, "aabb": box, "ndc": ndc, "bundle": 1}))
    origins = torch.tensor([[0.1, -0.2, 0.0], [0.3, 0.0, 0.2]])
    directions = torch.tensor([[0.1, 0.2, -1.0], [-0.2, 0.1, -1.0]])
    ndc_o, ndc_d = ndc_rays(origins, directions, **ndc)
    expected = torch.sigmoid(model.head(model.blocks(torch.relu(model.stem(model.encoder(ndc_o, ndc_d))))))
    assert torch.allclose(model.ray_outputs(origins, directions), expected)
    assert not torch.allclose(model.encoder(origins, directions), model.encoder(ndc_o, ndc_d))


@pytest.mark.parametrize("encoding", ["points", "hash"])
def test_config_rebuilds_the_same_model(encoding):
    model = randomised(build_model("lightfield", bundle=2, encoding=encoding, **TINY))
    copy = build_model("lightfield", **model.config())
    copy.load_state_dict(model.state_dict())
    camera = orbit_path(1, 4.0, 30.0, 9, 9, 0.8)[0]
    assert torch.equal(fastnerf.render(model, camera)["rgb"], fastnerf.render(copy.eval(), camera)["rgb"])


@pytest.mark.parametrize("bad, message", [({"encoding": "rays"}, "encoding"), ({"bundle": 3}, "bundle"),
                                          ({"hidden": 0}, "hidden"), ({"n_blocks": -1}, "n_blocks"),
                                          ({"n_points": 0}, "n_points"), ({"n_freqs": -1}, "n_freqs"),
                                          ({"hidden": "wide"}, "hidden"), ({"dir_freqs": -1}, "dir_freqs"),
                                          ({"hash_levels": 0}, "hash_levels"), ({"hash_log2_size": 40}, "hash_log2_size"),
                                          ({"hash_min_res": 64, "hash_max_res": 32}, "hash_min_res")])
def test_bad_config_is_a_user_error(bad, message):
    with pytest.raises(UserError, match=message):
        build_model("lightfield", **{**TINY, **bad})


def test_bad_camera_is_a_user_error():
    model = build_model("lightfield", **TINY)
    with pytest.raises(UserError, match="Camera"):
        model.render_camera(torch.eye(4))


# ------------------------------------------------------------------------------ learning
@pytest.mark.parametrize("bundle, encoding", [(1, "points"), (2, "points"), (2, "hash")])
def test_a_few_steps_fit_a_view_dependent_target(bundle, encoding):
    # Target: colour from the ray direction (a "sky" light field); the student must learn it.
    torch.manual_seed(0)
    model = build_model("lightfield", bundle=bundle, encoding=encoding, **{**TINY, "hidden": 32})
    cameras = orbit_path(4, 4.0, 30.0, 16, 16, 0.9)
    c2w, intrinsics = camera_intrinsics(cameras)
    _, directions = bundle_rays(c2w, intrinsics, 16, 16)
    target = directions * 0.5 + 0.5  # [4,16,16,3]
    optimizer = torch.optim.Adam(model.param_groups(1e-2, table_lr=1e-2), lr=1e-2)
    losses = []
    for _ in range(60):
        rgb = model.images(c2w, intrinsics, 16, 16)
        loss = ((rgb - target) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0]


class FlatTeacher(torch.nn.Module):
    """Renders every camera black (the real images are white, so a loss tells the two apart)."""

    kind = "fake"

    def render_camera(self, camera, *, backend=None, background=None, chunk=8192):
        batch = camera.batch()
        rgb = torch.zeros(len(batch), camera.height, camera.width, 3)
        return {"rgb": rgb if camera.is_batch else rgb[0]}


def _grey_student_and_black_teacher(bundle):
    """A pool of a black teacher and white real images, a student rendering every pixel 0.8 (loss
    0.64 against the teacher, 0.04 against the images), the generator and the distill settings."""
    from fastnerf.data.dataset import Dataset
    from fastnerf.distill import ViewPool
    from fastnerf.models.students import STUDENT_KINDS

    cameras = orbit_path(6, 4.0, 30.0, 8, 8, 0.9)
    real = Dataset(torch.ones(6, 8, 8, 3), cameras, aabb=torch.tensor(AABB))
    sampler = _FixedSampler(cameras)
    pool = ViewPool(FlatTeacher(), sampler, real, capacity=4, real_fraction=0.0)
    generator = torch.Generator().manual_seed(0)
    pool.fill(generator)
    model = build_model("lightfield", bundle=bundle, **{**TINY, "image_width": 8, "image_height": 8})
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        last = model.head if bundle == 1 else model.upsampler.head
        last.bias.fill_(math.log(0.8 / 0.2))
    settings = {k: v for k, v in STUDENT_KINDS["lightfield"].settings.items() if k not in ("lr", "ema_decay")}
    settings.update(finetune=0.2, rays=64, batch_views=2)
    return model, pool, generator, settings


@pytest.mark.parametrize("bundle", [1, 2])
def test_distill_loss_fine_tunes_on_real_images_only_at_the_end(bundle):
    model, pool, generator, settings = _grey_student_and_black_teacher(bundle)
    distilled, stats = model.distill_loss(pool, generator, step=79, total_steps=100, **settings)
    assert distilled.item() == pytest.approx(0.64, abs=1e-4) and stats["real_only"] == 0
    tuned, stats = model.distill_loss(pool, generator, step=80, total_steps=100, **settings)
    assert tuned.item() == pytest.approx(0.04, abs=1e-4) and stats["real_only"] == 1
    assert pool.real_fraction == 0.0  # the pool's own mix is left as it was
    unknown_total, _ = model.distill_loss(pool, generator, step=99, total_steps=None, **settings)
    assert unknown_total.item() == pytest.approx(0.64, abs=1e-4)


def test_fine_tuning_once_begun_stays_on_when_the_step_count_grows():
    # A minutes budget re-decides total_steps after every step (fastnerf/train/budget.py); a count
    # that grows after the real-images phase began must not switch it back (nor must a resume).
    model, pool, generator, settings = _grey_student_and_black_teacher(2)
    schedule = {}
    _, stats = model.distill_loss(pool, generator, step=80, total_steps=100, schedule=schedule, **settings)
    assert stats["real_only"] == 1 and schedule == {"finetune_from": 80}
    for total_steps in (200, None):  # 81 < 0.8 x 200; None: a resumed minutes budget still calibrating
        tuned, stats = model.distill_loss(pool, generator, step=81, total_steps=total_steps, schedule=schedule,
                                          **settings)
        assert stats["real_only"] == 1 and tuned.item() == pytest.approx(0.04, abs=1e-4)
    assert schedule == {"finetune_from": 80}
    _, stats = model.distill_loss(pool, generator, step=81, total_steps=200, schedule={}, **settings)
    assert stats["real_only"] == 0  # a run whose phase has not begun still waits for its share


class _FixedSampler:
    """Hands out the same cameras in turn (enough for a ViewPool)."""

    def __init__(self, cameras):
        self.cameras, self.width, self.height, self.device, self.next = cameras, cameras.width, cameras.height, torch.device("cpu"), 0
        self.template = cameras

    def sample(self, n, generator=None):
        index = [(self.next + i) % len(self.cameras) for i in range(n)]
        self.next += n
        return self.cameras[torch.tensor(index)]


def test_upsampler_starts_as_bilinear_interpolation_and_keeps_a_skip_path():
    import torch.nn.functional as F

    from fastnerf.models.students.lightfield import ResidualUpsampler

    torch.manual_seed(0)
    upsampler = ResidualUpsampler(4, 4)
    features = torch.randn(2, 4, 3, 5)
    bilinear = F.interpolate(F.interpolate(features, scale_factor=2.0, mode="bilinear"), scale_factor=2.0, mode="bilinear")
    assert torch.allclose(upsampler(features), torch.sigmoid(upsampler.head(bilinear)), atol=1e-6)
    with torch.no_grad():  # convs that kill every ReLU still leave the features' path to the output
        for conv in upsampler.stages:
            conv.weight.fill_(-1.0)
            conv.bias.fill_(-100.0)
    features = -features.abs()  # relu(h) = 0 everywhere: the conv adds only its bias
    out = upsampler(features)
    assert out.shape == (2, 3, 12, 20) and out.std() > 0
