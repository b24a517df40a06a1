"""The unbounded teacher (issue 21): contracted positions and occupancy grid, cone stepping to a far
plane, --scene unbounded, old checkpoints, and the students that refuse a contracted teacher."""

import math

import pytest
import torch

from fastnerf.data import load
from fastnerf.data.procedural import make_scene
from fastnerf.errors import UserError
from fastnerf.fields.occupancy import OccupancyGrid
from fastnerf.fields.scene_space import SCENE_KEYS, step_at
from fastnerf.models import build_model
from fastnerf.models.students.baked import BakedStudent
from fastnerf.models.students.hybrid import HybridStudent
from fastnerf.models.students.shared import SharedStudent
from fastnerf.reference.march_rays import contract, grid_cells, uncontract
from fastnerf.train import load_checkpoint, train, train_teacher
from fastnerf.runs import model_from_checkpoint, save_checkpoint
from fastnerf.ops import march_rays
from fastnerf.train.tasks.student import StudentTask
from fastnerf.train.tasks.teacher import teacher_config_for
from fastnerf.volume import march_options

BOX = [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0]
TINY = dict(hash_levels=4, hash_log2_size=10, hash_min_res=4, hash_max_res=32, hidden=16, grid_resolution=8)
UNBOUNDED = dict(aabb=BOX, contraction="mipnerf360", cone_angle=1 / 256, near=0.0, far=1e4)
SMALL = dict(hash_levels=4, hash_log2_size=12, hash_min_res=4, hash_max_res=32, hidden=16, grid_resolution=16,
             steps_per_diagonal=32, grid_warmup=8, supersample=1)


@pytest.fixture(scope="module")
def garden(tmp_path_factory):
    return make_scene("garden", tmp_path_factory.mktemp("garden"), n_train=8, n_val=1, n_test=0, res=16,
                      samples_per_axis=1)


def test_contracted_grid_cells_round_trip_through_uncontract():
    """Every cell centre the grid samples (uncontracted to the world) lies in that very cell of
    the contracted grid march_rays reads, far cells included."""
    grid = OccupancyGrid(BOX, 16, contraction="mipnerf360")
    centres = grid.cell_centers()  # [R^3, 3] world
    assert centres.norm(dim=-1).max() > 10, "the outer cells reach far past the box"
    cells = grid_cells(centres, grid.aabb, grid.resolution, "mipnerf360").floor().long()
    flat = (cells[:, 0] * 16 + cells[:, 1]) * 16 + cells[:, 2]
    assert torch.equal(flat, torch.arange(16**3))


def test_the_model_reads_a_far_point_through_the_contracted_grid():
    """The grid refreshes from the model's density at uncontracted points, so a density that
    lives only around a far point occupies exactly that point's contracted cell, and the march
    keeps samples there; the encoding reads the same contracted coordinate."""
    torch.manual_seed(0)
    model = build_model("nerf", **TINY, **UNBOUNDED, grid_warmup=0)
    far_point = torch.tensor([[30.0, 4.0, -7.0]])
    torch.testing.assert_close(model.unit_positions(far_point), (contract(far_point, model.aabb) + 2) / 4)
    cell = grid_cells(far_point, model.aabb, model.grid.resolution, "mipnerf360").floor().long()[0]
    assert (cell == 7).any() or (cell == 0).any(), "an outer cell of the 8^3 grid: the far field"

    def blob(points):  # density 1 in the far point's cell alone
        inside = grid_cells(points, model.aabb, model.grid.resolution, "mipnerf360").floor().long()
        return (inside == cell).all(1).float()

    model.grid.update(blob, step=1)
    occupied = model.grid.occupied.nonzero()
    assert occupied.tolist() == [cell.tolist()]
    rays_o, rays_d = torch.zeros(1, 3), far_point / far_point.norm()
    out = model.render_rays(rays_o, rays_d, early_stop_eps=0.0)
    mids = (out["t_starts"] + out["t_ends"]) / 2
    assert mids.numel() > 0 and mids.min() <= far_point.norm() <= mids.max()
    assert blob(rays_o + mids[:, None] * rays_d).all(), "samples only in the far point's cell"


def test_samples_per_ray_stay_bounded_to_a_far_plane():
    """Cone stepping: a ray to t = 1e4 through an all-occupied grid costs the linear part up to
    t = step / cone_angle plus ~ln(far / that) / ln(1 + cone_angle) steps, not far / step."""
    model = build_model("nerf", **TINY, **UNBOUNDED, steps_per_diagonal=64)  # warm-up: every cell occupied
    rays_d = torch.nn.functional.normalize(torch.randn(8, 3, generator=torch.Generator().manual_seed(1)), dim=-1)
    rays_o = torch.zeros(8, 3)
    t_near, t_far = model.ray_range(rays_d)
    packed_info, _, _ = march_rays(rays_o, rays_d, t_near, t_far, model.grid, model.step_size,
                                   **march_options(model.grid, model.cone_angle))
    counts = packed_info[:, 1]
    step, cone = model.step_size, model.cone_angle
    assert model.intervals_per_ray() == pytest.approx(counts.float().mean().item(), rel=0.05)
    linear_end = step / cone
    bound = linear_end / step + math.log(1e4 / linear_end) / math.log(1 + cone) + 2
    assert (counts > 0).all() and counts.max() <= bound, (counts.max(), bound)
    assert bound < 1e4 / step / 10


def test_disparity_steps_bound_a_ray_to_any_far_plane_and_leave_the_near_steps_alone():
    """Past t = cone_angle / disparity_step the steps grow as disparity_step * t^2: a ray to
    t = 1e4 costs at most ~1 / cone_angle intervals past that distance (cone steps alone:
    ln(1e4 / t) / cone_angle), intervals_per_ray says how many, and before that distance the
    intervals are the cone march's, bitwise."""
    cone, reach = 1 / 64, 6.0
    model = build_model("nerf", **TINY, **{**UNBOUNDED, "cone_angle": cone}, steps_per_diagonal=64,
                        disparity_step=cone / reach)
    plain = build_model("nerf", **TINY, **{**UNBOUNDED, "cone_angle": cone}, steps_per_diagonal=64)
    rays_d = torch.nn.functional.normalize(torch.randn(8, 3, generator=torch.Generator().manual_seed(1)), dim=-1)
    rays_o = torch.zeros(8, 3)
    t_near, t_far = model.ray_range(rays_d)

    def march(m, t_far):
        return march_rays(rays_o, rays_d, t_near, t_far, m.grid, m.step_size,
                          **march_options(m.grid, m.cone_angle, m.disparity_step))

    counts, plain_counts = march(model, t_far)[0][:, 1], march(plain, t_far)[0][:, 1]
    linear_end = model.step_size / cone
    cone_part = linear_end / model.step_size + math.log(reach / linear_end) / math.log(1 + cone)
    assert (counts <= cone_part + 1.2 / cone + 4).all() and (plain_counts > counts + 300).all(), (counts, plain_counts)
    assert model.intervals_per_ray() == pytest.approx(counts.float().mean().item(), rel=0.05)
    near_info, near_starts, _ = march(model, torch.full_like(t_far, reach))
    plain_info, plain_starts, _ = march(plain, torch.full_like(t_far, reach))
    assert torch.equal(near_info, plain_info) and torch.equal(near_starts, plain_starts)
    # the grid's threshold reads the same step: longer far out, the cone's inside the reach
    points = torch.tensor([[0.0, 4.0, 0.0], [60.0, 0.0, 0.0]])
    far_steps = step_at(points, model.aabb, model.step_size, cone, cone / reach)
    torch.testing.assert_close(far_steps, torch.tensor([4.0 * cone, 60.0 * 60.0 * cone / reach]))


def test_bad_scene_settings_name_the_argument():
    with pytest.raises(ValueError, match="needs far"):
        build_model("nerf", **TINY, aabb=BOX, contraction="mipnerf360")
    with pytest.raises(ValueError, match="contraction must be one of"):
        build_model("nerf", **TINY, contraction="sphere", far=10.0)
    with pytest.raises(ValueError, match="cone_angle"):
        build_model("nerf", **TINY, cone_angle=-1.0)
    with pytest.raises(ValueError, match="disparity_step must be a finite number"):
        build_model("nerf", **TINY, **UNBOUNDED, disparity_step=-1.0)
    with pytest.raises(ValueError, match="disparity_step .* needs cone stepping"):
        build_model("nerf", **TINY, **{**UNBOUNDED, "cone_angle": 0.0}, disparity_step=0.01)
    with pytest.raises(ValueError, match="exclude each other"):
        build_model("nerf", **TINY, contraction="mipnerf360", far=10.0, ndc={"fx_ratio": 1, "fy_ratio": 1, "near": 1})
    with pytest.raises(ValueError, match="give t_near and t_far"):
        from fastnerf.volume import render_rays

        render_rays(lambda p, d: (p[:, 0], d), torch.zeros(1, 3), torch.ones(1, 3),
                    OccupancyGrid(BOX, 4, contraction="mipnerf360"), step_size=0.1)


def test_teacher_trains_unbounded_its_grid_stays_contracted_and_students_follow(garden, tmp_path):
    logs = []
    summary = train_teacher(garden, tmp_path / "run", steps=16, scene="unbounded", target_samples=2048,
                            max_rays=64, grid_every=4, eval_every=0, progress=False, model_config=SMALL,
                            log=logs.append)
    assert math.isfinite(summary["held_out_psnr"]) and summary["scene"] == "unbounded"
    assert not any("try --scene unbounded" in line for line in logs)
    checkpoint = load_checkpoint(tmp_path / "run")
    config = checkpoint["model_config"]
    assert config["contraction"] == "mipnerf360" and config["cone_angle"] > 0 and config["far"] >= 24.0
    model = model_from_checkpoint(checkpoint)
    assert model.grid.contraction == "mipnerf360" and int(model.grid.step) >= SMALL["grid_warmup"]
    centres = model.grid.cell_centers()[model.grid.occupied.reshape(-1)]
    inner = torch.tensor(config["aabb"])
    assert ((centres < inner[:3]) | (centres > inner[3:])).any(1).any(), "occupied cells out in the far field"
    # pose (as lightfield) learns from the teacher's rendered views alone; the hybrid follows the
    # teacher into its contracted space (its grid copied, the same contraction)
    for kind, options in (("pose", {"hidden": 16, "code_dim": 16, "channels": 8}),
                          ("hybrid", {"features": 8, "decoder_channels": 8})):
        task = StudentTask(teacher=str(tmp_path / "run"), kind=kind, model=options, settings={"batch_views": 1},
                           pool_size=2, initial_views=1, fresh_ratio=0.0, eval_views=1, teacher_supersample=1)
        assert train(task, tmp_path / kind, steps=1, progress=False, eval_every=0)["steps"] == 1
    hybrid = model_from_checkpoint(load_checkpoint(tmp_path / "hybrid"))
    assert hybrid.grid.contraction == "mipnerf360" and hybrid.config()["far"] == config["far"]
    assert hybrid.config()["cone_angle"] == config["cone_angle"] and hybrid.grid.cone_angle == config["cone_angle"]
    assert config["disparity_step"] > 0 and hybrid.config()["disparity_step"] == config["disparity_step"]
    assert hybrid.grid.disparity_step == model.grid.disparity_step == config["disparity_step"]
    torch.testing.assert_close(hybrid.grid.aabb, model.grid.aabb)


def test_a_bounded_teacher_on_unbounded_data_suggests_the_unbounded_scene(garden, tmp_path):
    logs = []
    train_teacher(garden, tmp_path / "run", steps=1, target_samples=1024, max_rays=64, eval_every=0,
                  progress=False, model_config=SMALL, log=logs.append)
    assert any("looks unbounded (its far plane (24)" in line and "--scene unbounded" in line for line in logs), logs


def test_unbounded_config_follows_the_data(garden):
    dataset = load(garden)
    bounded = teacher_config_for(dataset)
    unbounded = teacher_config_for(dataset, scene="unbounded")
    assert "contraction" not in bounded and bounded["aabb"] == unbounded["aabb"]
    assert (unbounded["near"], unbounded["far"]) == (2.0, 24.0)
    # steps evenly spaced in disparity past the inner box's farthest corner from the cameras
    corners = torch.tensor([[x, y, z] for x in unbounded["aabb"][0::3] for y in unbounded["aabb"][1::3]
                            for z in unbounded["aabb"][2::3]])
    reach = torch.cdist(dataset.cameras.c2w[:, :3, 3], corners).max().item()
    assert unbounded["disparity_step"] == pytest.approx(unbounded["cone_angle"] / reach, rel=1e-5)
    assert "disparity_step" not in bounded
    assert unbounded["hash_max_res"] == 2 * bounded["hash_max_res"], "the inner box is half the contracted cube"
    dataset.forward_facing = True
    with pytest.raises(UserError, match="forward-facing"):
        teacher_config_for(dataset, scene="unbounded")


def test_checkpoints_from_before_the_scene_option_load_unchanged(tmp_path):
    """A config without contraction / cone_angle / near / far (every run before this one) is the
    bounded model: the same weights load and render bitwise as they did."""
    torch.manual_seed(0)
    model = build_model("nerf", **TINY).eval()
    old_config = {k: v for k, v in model.config().items() if k not in SCENE_KEYS}
    save_checkpoint(tmp_path, model=model)
    checkpoint = load_checkpoint(tmp_path)
    checkpoint["model_config"] = old_config
    loaded = model_from_checkpoint(checkpoint)
    assert loaded.contraction is None and loaded.grid.contraction is None
    rays_o = torch.tensor([[0.0, -4.0, 0.3], [3.0, 3.0, 1.0]])
    rays_d = torch.nn.functional.normalize(-rays_o, dim=-1)
    assert torch.equal(loaded.render_rays(rays_o, rays_d)["rgb"], model.render_rays(rays_o, rays_d)["rgb"])


@pytest.mark.parametrize("student, reason", [(BakedStudent, "sparse grid lives in the teacher's world box"),
                                             (SharedStudent, "occupancy grid in the world box")])
def test_students_that_march_the_teacher_s_box_refuse_a_contracted_teacher(student, reason):
    teacher = build_model("nerf", **TINY, **UNBOUNDED)
    with pytest.raises(UserError, match=f"unbounded scene.*{reason}"):
        student.config_for(teacher, None, None)


class _Data:  # what the hybrid's config_for reads of a dataset
    background = torch.ones(3)


def test_the_hybrid_reads_the_teacher_s_contracted_space():
    """Initialised from a contracted teacher, the hybrid's density is the teacher's at far points
    (the same contraction before the same hash grid) and it marches the same grid."""
    torch.manual_seed(0)
    teacher = build_model("nerf", **TINY, **UNBOUNDED, hash_features=2, geo_features=15)
    config = HybridStudent.config_for(teacher, _Data(), None, features=8, factor=2, sampling="march", samples=16,
                                      steps_per_diagonal=None, train_geometry=False, upsampler="bilinear",
                                      decoder_channels=8)
    hybrid = build_model("hybrid", **config)
    assert hybrid.init_from_teacher(teacher)
    points = torch.tensor([[0.2, 0.1, -0.3], [30.0, 4.0, -7.0], [-500.0, 2.0, 90.0]])
    torch.testing.assert_close(hybrid.density(points), teacher.density(points))
    assert torch.equal(hybrid.grid.occupied, teacher.grid.occupied) and hybrid.grid.contraction == "mipnerf360"
    rays_o, rays_d = torch.zeros(2, 3), torch.nn.functional.normalize(points[1:], dim=-1)
    assert hybrid.render_features(rays_o, rays_d).shape == (2, 8)


def test_uncontract_inverts_contract_far_out():
    points = torch.tensor([[0.5, -0.2, 0.1], [5.0, 1.0, -2.0], [-300.0, 20.0, 1.0]])
    aabb = torch.tensor(BOX)
    torch.testing.assert_close(uncontract(contract(points, aabb), aabb), points, rtol=1e-4, atol=1e-5)
