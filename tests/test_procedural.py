"""Procedural scenes: exact analytic intersections, anti-aliased coverage, Blender output, CLI."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastnerf.cameras import Camera, look_at
from fastnerf.cli import main
from fastnerf.data import load
from fastnerf.data.procedural import SCENES, make_random_scenes, make_scene
from fastnerf.data.procedural.scenes import ENVIRONMENT_RADIUS, UNBOUNDED
from fastnerf.data.procedural.materials import Material
from fastnerf.data.procedural.shapes import Box, Disk, Sphere, Tube, bowl, cup, pipe
from fastnerf.data.procedural.tracer import Scene, SceneObject, render, shade
from fastnerf.errors import UserError


def rays_towards(target: torch.Tensor, seed: int, n: int = 256):
    """Rays from random points 5 units away towards random points near ``target [3]``."""
    generator = torch.Generator().manual_seed(seed)
    origins = torch.randn(n, 3, generator=generator)
    origins = target + 5 * origins / origins.norm(dim=-1, keepdim=True)
    aims = target + 0.6 * (torch.rand(n, 3, generator=generator) - 0.5)
    directions = aims - origins
    return origins, directions / directions.norm(dim=-1, keepdim=True)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), radius=st.floats(0.1, 0.4))
def test_sphere_tube_disk_hits_lie_on_their_surfaces(seed, radius):
    centre = torch.tensor([0.1, -0.2, 0.3])
    origins, directions = rays_towards(centre, seed)
    sphere = Sphere(centre, radius)
    t, normals = sphere.intersect(origins, directions, 0.0)
    hit = torch.isfinite(t)
    points = origins[hit] + t[hit, None] * directions[hit]
    torch.testing.assert_close((points - centre).norm(dim=-1), torch.full((int(hit.sum()),), radius), atol=1e-4, rtol=0)
    torch.testing.assert_close(normals[hit], (points - centre) / radius, atol=1e-4, rtol=0)
    # a miss must truly miss: the ray's closest approach to the centre is beyond the radius
    closest = ((origins - centre) - ((origins - centre) * directions).sum(-1, keepdim=True) * directions).norm(dim=-1)
    assert (closest[~hit] >= radius - 1e-5).all() and (closest[hit] <= radius + 1e-5).all()

    tube = Tube(centre, (0.0, 0.0, 1.0), radius, 0.25)
    t, _ = tube.intersect(origins, directions, 0.0)
    hit = torch.isfinite(t)
    points = origins[hit] + t[hit, None] * directions[hit] - centre
    torch.testing.assert_close(points[:, :2].norm(dim=-1), torch.full((int(hit.sum()),), radius), atol=1e-4, rtol=0)
    assert ((points[:, 2] >= -1e-5) & (points[:, 2] <= 0.25 + 1e-5)).all()

    disk = Disk(centre, (0.0, 1.0, 1.0), radius, inner_radius=radius / 2)
    t, normals = disk.intersect(origins, directions, 0.0)
    hit = torch.isfinite(t)
    points = origins[hit] + t[hit, None] * directions[hit] - centre
    torch.testing.assert_close(points[:, 1] + points[:, 2], torch.zeros(int(hit.sum())), atol=1e-4, rtol=0)
    assert ((points.norm(dim=-1) <= radius + 1e-5) & (points.norm(dim=-1) >= radius / 2 - 1e-5)).all()


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), yaw=st.floats(0, 90))
def test_box_hits_lie_on_faces(seed, yaw):
    centre, half = torch.tensor([0.2, 0.0, -0.1]), torch.tensor([0.3, 0.2, 0.1])
    box = Box(centre, half, yaw_deg=yaw)
    origins, directions = rays_towards(centre, seed)
    t, normals = box.intersect(origins, directions, 0.0)
    hit = torch.isfinite(t)
    assert hit.any()
    local = (origins[hit] + t[hit, None] * directions[hit] - centre) @ box.rotation
    on_face = ((local.abs() - half).abs() < 1e-4).any(-1)
    assert on_face.all() and (local.abs() <= half + 1e-4).all()
    assert ((normals[hit] * directions[hit]).sum(-1) < 0).all(), "outside rays meet outward normals"


def crossings(shape, origins, directions, limit: int = 12) -> torch.Tensor:
    """How many times each ray crosses the surface of ``shape``."""
    count, t_min = torch.zeros(origins.shape[0], dtype=torch.int64), torch.zeros(origins.shape[0])
    for _ in range(limit):
        t, _ = shape.intersect(origins, directions, t_min)
        hit = torch.isfinite(t)
        if not hit.any():
            break
        count += hit.long()
        t_min = torch.where(hit, t + 1e-5, torch.full_like(t, float("inf")))
    return count


@pytest.mark.parametrize("make", [lambda: bowl((0.1, 0.0, 0.2), 0.6, rim_height=-0.3, wall=0.05),
                                  lambda: pipe((-0.3, 0.1, 0.0), (1.0, 0.4, 0.2), 0.25, 0.7, 0.04),
                                  lambda: cup((0.0, 0.1, -0.2), 0.3, 0.5, 0.04)], ids=["bowl", "pipe", "cup"])
def test_hollow_shapes_are_closed(make):
    # A radiance field holds one colour per point and direction: a zero-thickness shell with
    # differently lit faces cannot be learned, so every hollow shape has walls. A ray from
    # outside crosses a closed surface an even number of times (an open shell: once).
    origins, directions = rays_towards(torch.tensor([0.0, 0.0, 0.0]), seed=5, n=4096)
    count = crossings(make(), origins, directions)
    assert (count > 0).sum() > 1000
    odd = (count % 2 == 1).float().mean()
    assert odd < 2e-3, f"{odd:.2%} of the rays cross the surface an odd number of times"
    open_shell = Sphere((0.1, 0.0, 0.2), 0.6, cut_normal=(0.0, 0.0, 1.0), cut_height=-0.3)
    assert (crossings(open_shell, origins, directions) % 2 == 1).float().mean() > 0.1, "the check can fail"


def test_coverage_of_a_sphere_is_exact_and_anti_aliased():
    scene = Scene([SceneObject(Sphere((0.0, 0.0, 0.0), 0.5), Material((0.5, 0.5, 0.5)))])
    camera = Camera.from_fov(look_at([0.0, -4.0, 0.0], [0.0, 0.0, 0.0]), 32, 32, math.radians(30))
    alpha = render(scene, camera, samples_per_axis=4)[0, ..., 3]
    origins, directions = camera.rays()
    # distance from the sphere centre to each pixel-centre ray, against the pixel footprint
    distance = torch.linalg.cross(-origins, directions, dim=-1).norm(dim=-1)
    footprint = 4.0 * math.tan(math.radians(15)) * 2 / 32 * 0.75
    assert (alpha[distance < 0.5 - footprint] == 1).all()
    assert (alpha[distance > 0.5 + footprint] == 0).all()
    edge = alpha[(distance > 0.5 - footprint) & (distance < 0.5 + footprint)]
    assert ((edge > 0) & (edge < 1)).any(), "edge pixels are partly covered"


def test_specular_moves_with_view_and_diffuse_does_not():
    point = torch.tensor([0.0, 0.0, 0.5])
    views = torch.tensor([[0.3, -0.4, 0.8], [-0.5, 0.5, 0.7]])
    views = views / views.norm(dim=-1, keepdim=True)
    origins = point + 3 * views

    def colour(material):
        scene = Scene([SceneObject(Sphere((0.0, 0.0, 0.0), 0.5), material)])
        rgb, coverage = shade(scene, origins, -views)
        assert (coverage == 1).all()
        return rgb

    matte = colour(Material((0.5, 0.4, 0.3)))
    torch.testing.assert_close(matte[0], matte[1])
    glossy = colour(Material((0.5, 0.4, 0.3), specular=0.8, shininess=8.0))
    assert (glossy[0] - glossy[1]).abs().max() > 0.05


@pytest.fixture(scope="module")
def small_scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scene")
    return make_scene(SCENES[0], folder / "default", n_train=4, n_val=1, n_test=2, res=24, seed=3)


def test_scene_is_a_loadable_blender_dataset(small_scene):
    train = load(small_scene)
    assert train.format == "blender" and len(train) == 4 and (train.width, train.height) == (24, 24)
    assert len(load(small_scene, split="val")) == 1 and len(load(small_scene, split="test")) == 2
    assert (train.near, train.far) == (2.0, 6.0)
    assert (train.aabb[:3] >= -1.05).all() and (train.aabb[3:] <= 1.05).all()
    alphas = train.alphas
    assert (alphas[:, 0, 0] == 0).all(), "background is transparent"
    assert (alphas[:, 12, 12] == 1).all(), "the object covers the image centre"
    centres = train.cameras.c2w[:, :3, 3]
    torch.testing.assert_close(centres.norm(dim=-1), torch.full((4,), 4.0), atol=1e-5, rtol=0)
    assert train.images.std() > 0.1, "textured, not flat"


def test_scene_is_deterministic(small_scene, tmp_path):
    again = make_scene(SCENES[0], tmp_path, n_train=4, n_val=1, n_test=2, res=24, seed=3)
    for name in ("train/r_0.png", "test/r_1.png", "transforms_train.json"):
        assert (again / name).read_bytes() == (small_scene / name).read_bytes()


@pytest.mark.parametrize("name", [name for name in SCENES[1:] if name not in UNBOUNDED])
def test_other_scenes_render(name, tmp_path):
    dataset = load(make_scene(name, tmp_path, n_train=2, n_val=0, n_test=0, res=16))
    assert len(dataset) == 2 and 0 < dataset.alphas.mean() < 1


def test_environment_is_seen_by_every_ray_that_misses_the_objects():
    scene = Scene([SceneObject(Sphere((0.0, 0.0, 0.0), 0.5), Material((1.0, 0.0, 0.0)))],
                  environment=Material((0.2, 0.4, 0.6)), environment_radius=30.0)
    origins = torch.tensor([[0.0, -4.0, 0.0], [0.0, -4.0, 0.0], [3.0, 2.0, 1.0]])
    directions = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.6, 0.0, 0.8]])
    rgb, coverage = shade(scene, origins, directions)
    assert (coverage == 1).all()
    assert rgb[0, 0] > 0.5 and rgb[0, 2] < 0.1, "the object in front of the environment"
    torch.testing.assert_close(rgb[1:], torch.tensor([[0.2, 0.4, 0.6]] * 2))


def test_garden_is_unbounded_data(tmp_path):
    """The built-in unbounded scene: every pixel covered by the far environment or the objects,
    the aabb the objects' alone, far reaching the environment sphere."""
    dataset = load(make_scene("garden", tmp_path, n_train=3, n_val=0, n_test=0, res=16))
    assert (dataset.alphas == 1).all()
    assert dataset.far >= 4.0 + ENVIRONMENT_RADIUS and dataset.near == 2.0
    assert (dataset.aabb[:3] >= -1.05).all() and (dataset.aabb[3:] <= 1.05).all()
    corners = dataset.images[:, [0, 0, -1, -1], [0, -1, 0, -1]]  # [3,4,3] image corners: the environment
    assert (corners - 1.0).abs().amax() > 0.2, "not the white background"
    assert corners.reshape(-1, 3).std(0).max() > 0.05, "textured: views see different parts of it"


def test_random_scenes_differ_and_load(tmp_path):
    paths = make_random_scenes(2, tmp_path, seed=0, n_train=2, n_test=1, res=16)
    assert [p.name for p in paths] == ["scene_0000", "scene_0001"]
    first, second = load(paths[0]), load(paths[1])
    assert not torch.allclose(first.images, second.images)
    np.testing.assert_array_less(-1.05, first.aabb[:3].numpy())


def test_bad_names_and_counts_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="unknown scene 'teapot'"):
        make_scene("teapot", tmp_path)
    with pytest.raises(UserError, match="n_train"):
        make_scene(SCENES[0], tmp_path, n_train=0)


def test_cli_make_scene(tmp_path, capsys):
    assert main(["make-scene", "lattice", str(tmp_path / "out"), "--n-train", "2", "--n-test", "1", "--res", "12"]) == 0
    assert "wrote scene 'lattice'" in capsys.readouterr().out
    assert len(load(tmp_path / "out")) == 2
    assert main(["make-scene", "teapot", str(tmp_path / "bad")]) == 2
    assert "unknown scene" in capsys.readouterr().err
    assert main(["make-scene", "random", str(tmp_path / "many"), "--count", "2", "--n-train", "1", "--n-test", "0",
                 "--res", "8"]) == 0
    assert sorted(p.name for p in (tmp_path / "many").iterdir()) == ["scene_0000", "scene_0001"]
