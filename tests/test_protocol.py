"""One render protocol for every kind, and the public API's names.

Every registered kind is checkpointable (``kind``, ``config``), follows one of the rendering
protocols of ``fastnerf.models.base``, and renders a camera batch through ``fastnerf.render``,
each image the same as that camera rendered alone; a kind's own options pass through ``render``.
"""

import pytest
import torch

import fastnerf
from fastnerf.cameras import orbit_path
from fastnerf.data import Dataset
from fastnerf.errors import UserError
from fastnerf.models import Checkpointable, ConditionedModel, build_model, get_kind, kinds
from fastnerf.models.base import ImageModel, RayModel, rendering_protocol

TINY = {  # small enough to build and render in a moment; everything else the kind's defaults
    "nerf": dict(hash_levels=2, hash_log2_size=8, hash_max_res=32, hidden=8, grid_resolution=4, steps_per_diagonal=32,
                 supersample=1),
    "pixelnerf": dict(encoder_widths=(8, 8, 8, 8), hidden=16, aabb=(-1, -1, -1, 1, 1, 1), near=1.0, far=5.0,
                      dense_coarse=8, dense_fine=4, grid_resolution=8, march_steps=32),
    "pose": dict(hidden=16, code_dim=16, channels=8),
    "shared": dict(hidden=16, code_dim=16, channels=8, nerf_hidden=16, nerf_samples=8),
    "hybrid": dict(features=8, decoder_channels=8),
    "lightfield": dict(hidden=16, n_blocks=1, n_freqs=2, n_points=4, channels=8),
    "baked": dict(max_resolution=16),
}


@pytest.fixture(scope="module")
def teacher_and_data():
    torch.manual_seed(0)
    teacher = build_model("nerf", **TINY["nerf"])
    cameras = orbit_path(3, 4.0, 25.0, 16, 12, 0.9)
    from fastnerf.distill import sampler_for

    dataset = Dataset(torch.rand(3, 12, 16, 3), cameras)
    return teacher, dataset, sampler_for(dataset)


def build(name, teacher_and_data):
    kind = get_kind(name)
    torch.manual_seed(0)
    if name == "nerf":
        return teacher_and_data[0]
    overrides = TINY.get(name, {})
    config = kind.model_class.config_for(*teacher_and_data, **overrides) if hasattr(kind.model_class,
                                                                                     "config_for") else overrides
    model = build_model(name, **config)
    if hasattr(model, "init_from_teacher"):
        try:
            model.init_from_teacher(teacher_and_data[0])
        except ValueError:  # the protocol's answer when there is nothing to copy (the task logs it)
            pass
    return model


def test_every_kind_is_covered():
    assert {kind.name for kind in kinds()} <= set(TINY), "give a new kind a tiny config here"


@pytest.mark.parametrize("name", [kind.name for kind in kinds()])
def test_every_kind_follows_the_protocol_and_renders_a_camera_batch(name, teacher_and_data):
    model = build(name, teacher_and_data)
    assert isinstance(model, Checkpointable) and model.kind == name
    assert type(build_model(name, **model.config())) is type(model)
    protocol = rendering_protocol(model)
    assert protocol in (ImageModel, RayModel), f"{name} follows no rendering protocol"
    dataset = teacher_and_data[1]
    cameras = dataset.cameras[:2]
    views = (dataset.images, dataset.cameras) if isinstance(model, ConditionedModel) else None
    batch = fastnerf.render(model, cameras, views=views)
    assert batch["rgb"].shape == (2, 12, 16, 3) and torch.isfinite(batch["rgb"]).all()
    single = fastnerf.render(model, cameras[1], views=views)["rgb"]
    torch.testing.assert_close(single, batch["rgb"][1], atol=1e-5, rtol=1e-5)  # a batch is its cameras
    with pytest.raises(UserError, match="takes no option 'no_such_option'"):
        fastnerf.render(model, cameras, views=views, no_such_option=1)


def test_a_kinds_options_pass_through_render(teacher_and_data):
    model = build("pixelnerf", teacher_and_data).eval()
    dataset = teacher_and_data[1]
    views = (dataset.images[:2], dataset.cameras[:2])
    fast, dense = (fastnerf.render(model, dataset.cameras[2], views=views, mode=mode) for mode in ("fast", "dense"))
    assert fast["n_samples"] != dense["n_samples"]  # the mode reached render_rays
    assert not torch.equal(fast["rgb"], dense["rgb"])
    encoded = model.encode_views(*views)  # encode once, render many: the same image
    again = fastnerf.render(model, dataset.cameras[2], views=encoded, mode="dense")
    torch.testing.assert_close(again["rgb"], dense["rgb"])
    with pytest.raises(UserError, match="its options: .*mode"):
        fastnerf.render(model, dataset.cameras[2], views=views, modes="dense")


def test_the_public_api_names():
    assert set(fastnerf.__all__) >= {"render", "backends", "ops", "__version__"}
    for name in fastnerf.__all__:
        assert hasattr(fastnerf, name), name
    from fastnerf.rendering import render

    assert fastnerf.render is render
    assert set(fastnerf.ops.__all__) >= {"composite", "ray_aabb", "march_rays", "freq_encode", "hash_encode",
                                         "project_features", "baked_render"}
    for module in (fastnerf.ops, fastnerf.train, fastnerf.models, fastnerf.data):
        missing = [name for name in module.__all__ if not hasattr(module, name)]
        assert not missing, f"{module.__name__}.__all__ names what it lacks: {missing}"
    assert callable(fastnerf.train.load_run)  # a public contract: it stays importable from here
    from fastnerf.runs import load_run

    assert fastnerf.train.load_run is load_run
