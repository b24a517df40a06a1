"""The `baked` student: the bake's layout, deferred shading against the teacher's own colour
head, training that updates only touched rows, bake-only runs, resume without a second bake,
any camera, NDC teachers, no per-sample tensor on the render path, and refusals."""

import math

import pytest
import torch

import fastnerf
from fastnerf.cli import main
from fastnerf.errors import UserError
from fastnerf.models import build_model
from fastnerf.models.students import _baking
from fastnerf.models.students.baked import BakedStudent
from fastnerf.train import TeacherTask, load_run, train
from fastnerf.train.tasks.student import StudentTask
from test_students_train import teacher_run

MODEL = {"max_resolution": 16}


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return teacher_run(tmp_path_factory.mktemp("baked-teacher"), "blender")


def baked_task(teacher, rays=256, **options):
    pool = {"pool_size": 4, "initial_views": 2, "fresh_ratio": 0.5, "eval_views": 1, **options}
    return StudentTask(teacher=str(teacher), kind="baked", model=dict(MODEL), settings={"rays": rays}, **pool)


def sphere_field(centre=(0.0, 0.0, 0.0), radius=0.5, features=3):
    centre = torch.tensor(centre)

    def geometry(x):
        inside = ((x - centre).norm(dim=-1) < radius).float()
        return inside * 200.0, torch.stack([x[:, 0], x[:, 1], x[:, 2]] * (features // 3), -1)

    return geometry


# ------------------------------------------------------------------------------ the bake
def test_bake_stores_every_corner_of_every_occupied_cell_and_drops_empty_space():
    aabb = torch.tensor([-1.0, -1, -1, 1, 1, 1])
    coarse = torch.ones(8, 8, 8, dtype=torch.bool)
    grid = _baking.bake(sphere_field(), aabb, coarse, step_size=0.05, max_resolution=20, channels=4)
    occupied, index, values = grid.occupied, grid.index, grid.values
    cells = occupied.nonzero()
    assert 0 < cells.shape[0] < occupied.numel() * 0.5  # the sphere, not the box
    for corner in _baking.CORNERS:
        rows = index[tuple((cells + corner).T)]
        assert bool((rows >= 0).all()) and bool((rows < values.shape[0]).all())
    assert int(index.max()) == values.shape[0] - 1 and int((index >= 0).sum()) == values.shape[0]
    # stored vertices carry the field: features are the position, density 200 inside
    size = (grid.aabb[3:] - grid.aabb[:3]) / torch.tensor(occupied.shape)
    vertex = (index >= 0).nonzero()
    positions = grid.aabb[:3] + vertex * size
    stored = values[index[tuple(vertex.T)].long()]
    torch.testing.assert_close(stored[:, 1:], positions, atol=1e-5, rtol=0)
    inside = (positions.norm(dim=-1) < 0.5).float() * 200
    torch.testing.assert_close(stored[:, 0], inside)
    # a cell far outside the sphere is empty
    far = ((torch.tensor([0.95, 0.95, 0.95]) - grid.aabb[:3]) / size).long()
    far = torch.minimum(far, torch.tensor(occupied.shape) - 1)
    assert not bool(occupied[tuple(far)])


def test_rows_are_in_z_curve_order_of_their_vertices():
    grid = _baking.bake(sphere_field(), torch.tensor([-1.0, -1, -1, 1, 1, 1]), torch.ones(8, 8, 8, dtype=torch.bool),
                        step_size=0.05, max_resolution=20, channels=4)
    vertex = (grid.index >= 0).nonzero()
    rows = grid.index[tuple(vertex.T)].long()
    codes = _baking.morton_codes(vertex)[torch.argsort(rows)]
    assert bool((codes[1:] > codes[:-1]).all())  # row r + 1's vertex follows row r's on the Z curve
    assert _baking.morton_codes(torch.tensor([[0, 0, 1], [0, 1, 0], [1, 0, 0], [1, 1, 1], [2, 0, 0]])).tolist() == \
        [1, 2, 4, 7, 32]


def test_features_projected_on_their_principal_directions_lose_nothing_of_a_lower_rank_field():
    # 6 feature channels that are (x, y, z) twice: rank 3, so 3 principal directions hold them exactly
    args = dict(step_size=0.05, max_resolution=20, channels=7)
    aabb, coarse = torch.tensor([-1.0, -1, -1, 1, 1, 1]), torch.ones(8, 8, 8, dtype=torch.bool)
    full = _baking.bake(sphere_field(features=6), aabb, coarse, **args)
    kept = _baking.bake(sphere_field(features=6), aabb, coarse, keep_features=3, **args)
    assert full.projection is None and tuple(kept.projection.shape) == (6, 3)
    assert kept.values.shape == (full.values.shape[0], 4)
    torch.testing.assert_close(kept.projection.T @ kept.projection, torch.eye(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(kept.values[:, 0], full.values[:, 0])
    torch.testing.assert_close(kept.values[:, 1:] @ kept.projection.T, full.values[:, 1:], atol=1e-4, rtol=0)
    # a rank-3 field kept in 2 directions is not: the test can tell
    two = _baking.bake(sphere_field(features=6), aabb, coarse, keep_features=2, **args)
    assert float((two.values[:, 1:] @ two.projection.T - full.values[:, 1:]).abs().max()) > 0.05


def test_the_colour_mlp_reads_the_projected_features_as_the_teacher_reads_their_projection(teacher, tmp_path,
                                                                                       monkeypatch):
    grids = []
    real_bake = _baking.bake
    monkeypatch.setattr("fastnerf.models.students.baked.bake", lambda *a, **k: grids.append(real_bake(*a, **k))
                        or grids[-1])
    task = StudentTask(teacher=str(teacher), kind="baked", model={**MODEL, "features": 3}, settings={"rays": 4},
                       pool_size=4, initial_views=2, fresh_ratio=0.5, eval_views=1)
    train(task, tmp_path / "run", steps=0, progress=False, eval_every=0)
    baked, _ = load_run(tmp_path / "run")
    nerf, _ = load_run(teacher)
    projection = grids[0].projection
    teacher_features = nerf.config()["geo_features"]
    assert baked.values.shape[1] == 4 and tuple(projection.shape) == (teacher_features, 3)
    f = torch.randn(32, teacher_features)
    view = torch.randn(32, baked.color_mlp.in_dim - 3)
    with torch.no_grad():
        torch.testing.assert_close(baked.color_mlp(torch.cat([f @ projection, view], 1)),
                                   nerf.color_mlp(torch.cat([f @ projection @ projection.T, view], 1)),
                                   atol=1e-5, rtol=1e-4)


def test_bake_box_is_tight_and_memory_limit_lowers_the_resolution():
    aabb = torch.tensor([-1.0, -1, -1, 1, 1, 1])
    coarse = torch.zeros(8, 8, 8, dtype=torch.bool)
    coarse[2:4, 3:5, 3:5] = True
    box = _baking.tight_box(aabb, coarse)
    torch.testing.assert_close(box, torch.tensor([-0.75, -0.5, -0.5, 0.25, 0.5, 0.5]))
    big = _baking.choose_resolution(box, 0.1, 16, 256, memory_mb=1e6)
    small = _baking.choose_resolution(box, 0.1, 16, 256, memory_mb=1.0)
    assert big == (256, 256, 256) and max(small) < 100
    with pytest.raises(UserError, match="empty"):
        _baking.tight_box(aabb, torch.zeros(8, 8, 8, dtype=torch.bool))


# ------------------------------------------------------------------------------ rendering
def baked_sphere(features=3):
    model = build_model("baked", aabb=(-1.0, -1, -1, 1, 1, 1), features=features, step_size=0.02, hidden=16)
    grid = _baking.bake(sphere_field(features=features), model.aabb, torch.ones(4, 4, 4, dtype=torch.bool),
                        step_size=0.02, max_resolution=24, channels=1 + features)
    model.set_grid(grid.aabb, grid.occupied, grid.index, grid.values)
    return model


def test_render_is_deferred_shading_of_the_composited_features():
    model = baked_sphere()
    rays_o = torch.tensor([[0.0, 0.0, -3.0], [0.9, 0.9, -3.0], [0.1, -0.2, -3.0]])
    rays_d = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.1, 1.0]])
    rays_d = rays_d / rays_d.norm(dim=-1, keepdim=True)
    with torch.no_grad():
        out = model.render_rays(rays_o, rays_d)
        t_near, t_far, _ = fastnerf.ops.ray_aabb(rays_o, rays_d, model.aabb)
        ref = fastnerf.ops.baked_render(rays_o, rays_d, t_near, t_far, (model.aabb, model.occupied), model.index,
                                        model.values, 0.02, backend="torch")
        features = ref.features / ref.opacity.clamp_min(1e-3)[:, None]
        sh = model.direction_encoding(rays_d)
        colour = torch.sigmoid(model.color_mlp(torch.cat([features, sh], -1)))
        expected = ref.opacity[:, None] * colour + (1 - ref.opacity[:, None]) * model.background
    assert float(out["opacity"][0]) > 0.99 and float(out["opacity"][1]) < 1e-4  # through the sphere; past it
    torch.testing.assert_close(out["rgb"][[0, 2]], expected[[0, 2]], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["rgb"][1], model.background, atol=1e-4, rtol=0)
    # the depth is where the ray enters the sphere (z = -0.5, 2.5 from the origin), within a step
    assert abs(float(out["depth"][0]) - 2.5) < 0.05


def test_render_makes_no_per_sample_tensor(monkeypatch):
    import sys

    model = baked_sphere()

    def forbidden(*args, **kwargs):
        raise AssertionError("a per-sample path was called on the baked render path")

    modules = sys.modules
    for module, name in ((modules["fastnerf.ops.march_rays"], "march_rays"), (fastnerf.ops, "march_rays"),
                         (fastnerf.ops, "composite"), (modules["fastnerf.reference.march_rays"], "march_rays"),
                         (torch.nn.functional, "grid_sample"), (modules["fastnerf.reference.baked_render"], "baked_render")):
        monkeypatch.setattr(module, name, forbidden)
    camera = fastnerf.cameras.Camera.from_fov(fastnerf.cameras.look_at(torch.tensor([0.0, -3.0, 0.5]),
                                                                       torch.zeros(3)), 24, 16, 0.8)
    out = fastnerf.render(model, camera)
    assert out["rgb"].shape == (16, 24, 3) and float(out["opacity"].max()) > 0.9


def test_any_camera_size_intrinsics_and_batch():
    model = baked_sphere()
    c2w = fastnerf.cameras.look_at(torch.tensor([[0.0, -3.0, 0.5], [3.0, 0.0, 0.5]]), torch.zeros(2, 3))
    batch = fastnerf.cameras.Camera(c2w, torch.tensor([20.0, 30.0]), torch.tensor([20.0, 25.0]),
                                    torch.tensor([10.0, 9.0]), torch.tensor([7.0, 8.0]), 21, 13)
    out = fastnerf.render(model, batch, chunk=50)
    single = [fastnerf.render(model, batch[i])["rgb"] for i in range(2)]
    assert out["rgb"].shape == (2, 13, 21, 3)
    torch.testing.assert_close(out["rgb"], torch.stack(single), atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------ training
def test_bake_only_run_then_training_updates_only_touched_rows_and_resumes_without_baking(teacher, tmp_path,
                                                                                          monkeypatch):
    summary = train(baked_task(teacher, rays=4), tmp_path / "run", steps=0, progress=False, eval_every=0)
    baked, checkpoint = load_run(tmp_path / "run")
    assert checkpoint["model_kind"] == "baked" and baked.values.shape[0] > 0
    assert baked.config()["n_vertices"] == baked.values.shape[0]
    assert summary["steps"] == 0
    before = baked.values.detach().clone()

    calls = []
    real_bake = _baking.bake
    monkeypatch.setattr("fastnerf.models.students.baked.bake", lambda *a, **k: calls.append(1) or real_bake(*a, **k))
    trained = train(None, tmp_path / "run", steps=2, resume=True, progress=False, eval_every=0)["model"]
    assert not calls  # the run folder's grid was used, not a new bake
    after = trained.values.detach()
    changed = (after != before).any(1)
    # 8 rays touch at most 8 corners of a few samples each: those rows learned, the others kept their values
    assert 0 < int(changed.sum()) < changed.numel() // 4
    assert torch.isfinite(after).all()
    assert not torch.equal(trained.color_mlp.output.weight, baked.color_mlp.output.weight)


def test_resume_is_exact(teacher, tmp_path):
    straight = train(baked_task(teacher), tmp_path / "straight", steps=4, progress=False, eval_every=0)["model"]
    train(baked_task(teacher), tmp_path / "split", steps=2, progress=False, eval_every=0)
    resumed = train(None, tmp_path / "split", steps=4, resume=True, progress=False, eval_every=0)["model"]
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), f"{name} differs after resume"


def test_cli_bake_only_and_render(teacher, tmp_path):
    run = tmp_path / "baked"
    assert main(["train", "student", "--teacher", str(teacher), "--kind", "baked", "--out", str(run), "--steps", "0",
                 "--quiet", "--option", "max_resolution=12", "--pool-size", "4", "--initial-views", "1",
                 "--threads", "1"]) == 0
    assert main(["render", str(run), "--path", "test", "--out", str(tmp_path / "frames")]) == 0
    assert any((tmp_path / "frames").iterdir())


def test_ndc_teacher_bakes_and_renders(tmp_path):
    teacher = teacher_run(tmp_path, "llff")
    summary = train(baked_task(teacher), tmp_path / "baked", steps=2, progress=False, eval_every=0)
    model, checkpoint = load_run(tmp_path / "baked")
    assert model.config()["ndc"] is not None
    from fastnerf.data import load

    cameras = load(checkpoint["dataset"]["path"], "train").cameras[:1]
    out = fastnerf.render(model, cameras)["rgb"]
    assert torch.isfinite(out).all() and summary["steps"] == 2


def test_frequency_teacher_is_refused_with_the_reason(tmp_path):
    from fastnerf.data.procedural import make_scene

    data = make_scene("tabletop", tmp_path / "data", n_train=3, n_val=1, n_test=1, res=12, seed=0,
                      samples_per_axis=1)
    train(TeacherTask(data=data, encoding="frequency", model_config={"width": 16, "depth": 2, "grid_resolution": 8}),
          tmp_path / "teacher", steps=1, progress=False, eval_every=0)
    with pytest.raises(UserError, match="hash-encoding teacher"):
        train(baked_task(tmp_path / "teacher"), tmp_path / "baked", steps=1, progress=False, eval_every=0)


def test_set_grid_rejects_an_index_past_the_values():
    model = build_model("baked", features=3)
    index = torch.zeros(3, 3, 3, dtype=torch.int32)
    index[1, 1, 1] = 5
    with pytest.raises(ValueError, match="row 5"):
        model.set_grid(torch.tensor([-1.0, -1, -1, 1, 1, 1]), torch.ones(2, 2, 2, dtype=torch.bool), index,
                       torch.zeros(3, 4))
    assert math.isfinite(float(model.values.detach().sum()))


def test_row_sparse_adam_is_adam_on_touched_rows_and_leaves_the_others():
    from fastnerf.train.optim import make_adam

    torch.manual_seed(0)
    table = torch.nn.Parameter(torch.randn(12, 4))
    mlp = torch.nn.Parameter(torch.randn(3, 3))
    reference = torch.nn.Parameter(table.detach().clone())
    optimizer = make_adam([{"params": [table], "base_lr": 0.1, "row_sparse": True},
                           {"params": [mlp], "base_lr": 0.1}], lr=0.1)
    adam = torch.optim.Adam([reference], lr=0.1, betas=(0.9, 0.99), eps=1e-15)
    touched = torch.tensor([1, 5, 6])
    for _ in range(4):  # the same rows every step: exactly Adam on them
        for param, opt in ((table, optimizer), (reference, adam)):
            opt.zero_grad()
            (param[touched] ** 2).sum().backward()
            opt.step()
        (mlp ** 2).sum().backward()
    torch.testing.assert_close(table.detach()[touched], reference.detach()[touched])
    before = table.detach().clone()
    optimizer.zero_grad()
    (table[2] ** 2).sum().backward()  # a step that touches row 2 alone
    optimizer.step()
    moved = (table.detach() != before).any(1)
    assert moved.nonzero().flatten().tolist() == [2]
