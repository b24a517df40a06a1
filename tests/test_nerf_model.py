"""The NeRF teacher model: registry, config round trip, fields, gradients, NDC, early termination."""

import math

import pytest
import torch

from fastnerf.errors import UserError
from fastnerf.fields.mlp import MLP, trunc_exp
from fastnerf.models import MODEL_KINDS, NeRF, RayModel, build_model
from fastnerf.models.nerf import ndc_rays
from tiny import TINY_TEACHER

TINY = {**TINY_TEACHER, "steps_per_diagonal": 64, "width": 32, "depth": 3, "freq_pos": 4, "freq_dir": 2}


def rays(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    origins = torch.tensor([0.0, 0.0, 4.0]).repeat(n, 1)
    target = torch.rand(n, 3, generator=g) - 0.5
    directions = target - origins
    return origins, directions / directions.norm(dim=-1, keepdim=True)


def test_registry_and_unknown_kind():
    assert MODEL_KINDS["nerf"] is NeRF
    with pytest.raises(UserError, match="unknown model kind 'student'"):
        build_model("student")
    with pytest.raises(ValueError, match="encoding"):
        NeRF(encoding="fourier")
    with pytest.raises(ValueError, match="aabb"):
        NeRF(aabb=(0, 0, 0, 1, -1, 1))


@pytest.mark.parametrize("encoding", ["hash", "frequency"])
def test_config_is_plain_and_rebuilds_the_same_architecture(encoding):
    model = build_model("nerf", encoding=encoding, **TINY)
    config = model.config()
    assert all(isinstance(v, (int, float, str, list, dict, type(None))) for v in config.values())
    clone = build_model("nerf", **config)
    assert {k: v.shape for k, v in clone.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    assert any(k.startswith("grid.") for k in model.state_dict())  # occupancy grid travels with the weights
    assert isinstance(model, RayModel)


@pytest.mark.parametrize("encoding", ["hash", "frequency"])
def test_train_render_has_gradients_everywhere(encoding):
    torch.manual_seed(0)
    model = build_model("nerf", encoding=encoding, **TINY)
    o, d = rays()
    out = model.render_rays(o, d, train=True, generator=torch.Generator().manual_seed(1),
                            background=torch.rand(16, 3))
    assert out["rgb"].shape == (16, 3) and out["opacity"].shape == (16,) and out["depth"].shape == (16,)
    assert out["n_samples"] > 0
    out["rgb"].sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_missed_rays_get_the_background():
    model = build_model("nerf", **TINY)
    o = torch.tensor([[0.0, 0.0, 4.0]]).repeat(4, 1)
    d = torch.tensor([[0.0, 0.0, 1.0]]).repeat(4, 1)  # looking away from the box
    out = model.render_rays(o, d, background=torch.tensor([0.2, 0.4, 0.6]))
    assert torch.allclose(out["rgb"], torch.tensor([0.2, 0.4, 0.6]).expand(4, 3))
    assert out["n_samples"] == 0


def test_early_termination_saves_evaluations_and_keeps_the_image():
    torch.manual_seed(0)
    model = build_model("nerf", **TINY)
    # A dense constant field: sigma = exp(5) everywhere, so rays saturate within a few steps.
    geometry = model._features
    model._features = lambda x, backend=None: (torch.full((x.shape[0],), math.exp(5.0)), geometry(x, backend)[1])
    o, d = rays(64)
    early = model.render_rays(o, d, early_stop_eps=1e-4)
    full = model.render_rays(o, d, early_stop_eps=0.0)
    assert early["n_samples"] < full["n_samples"] / 2
    assert torch.allclose(early["rgb"], full["rgb"], atol=1e-3)


def test_trunc_exp_forward_and_clamped_gradient():
    x = torch.tensor([0.0, 1.0, 30.0], requires_grad=True)
    y = trunc_exp(x)
    assert torch.allclose(y, torch.exp(x.detach()))
    y.sum().backward()
    assert torch.allclose(x.grad, torch.exp(torch.tensor([0.0, 1.0, 15.0])))


def test_mlp_skip_connection_shapes():
    mlp = MLP(5, 3, width=8, n_hidden=4, skips=(2,))
    assert mlp(torch.rand(7, 5)).shape == (7, 3)
    assert mlp.hidden[2].in_features == 8 + 5


def test_ndc_rays_map_world_lines_to_ndc_lines():
    g = torch.Generator().manual_seed(0)
    o = torch.rand(8, 3, generator=g) * 0.2
    d = torch.cat([torch.rand(8, 2, generator=g) - 0.5, -torch.ones(8, 1)], -1)
    d = d / d.norm(dim=-1, keepdim=True)
    fx_ratio, fy_ratio, near = 1.5, 2.0, 1.0
    o_ndc, d_ndc = ndc_rays(o, d, fx_ratio=fx_ratio, fy_ratio=fy_ratio, near=near)
    assert torch.allclose(o_ndc[:, 2], torch.full((8,), -1.0), atol=1e-5)  # rays start on the near plane
    for t in (2.0, 5.0, 40.0):  # world points project (pinhole) to ndc points on the ndc ray
        p = o + t * d
        p_ndc = torch.stack([-fx_ratio * p[:, 0] / p[:, 2], -fy_ratio * p[:, 1] / p[:, 2], 1 + 2 * near / p[:, 2]], -1)
        s = (p_ndc[:, 2] - o_ndc[:, 2]) / d_ndc[:, 2]
        assert torch.allclose(o_ndc + s[:, None] * d_ndc, p_ndc, atol=1e-4)
        assert ((s >= 0) & (s <= 1)).all()


def test_forward_facing_model_renders_in_ndc():
    model = build_model("nerf", ndc={"fx_ratio": 1.5, "fy_ratio": 1.5, "near": 1.0},
                        aabb=[-1.5, -1.5, -1.0, 1.5, 1.5, 1.0], **TINY)
    o = torch.zeros(8, 3)
    d = torch.cat([torch.rand(8, 2) * 0.2 - 0.1, -torch.ones(8, 1)], -1)
    d = d / d.norm(dim=-1, keepdim=True)
    out = model.render_rays(o, d)
    assert out["n_samples"] > 0 and torch.isfinite(out["rgb"]).all()
    # what it promises: the world rays are marched as their NDC rays, through the same field
    plain = build_model("nerf", aabb=[-1.5, -1.5, -1.0, 1.5, 1.5, 1.0], **TINY)
    plain.load_state_dict(model.state_dict())
    expected = plain.render_rays(*ndc_rays(o, d, fx_ratio=1.5, fy_ratio=1.5, near=1.0))
    assert out["n_samples"] == expected["n_samples"]
    torch.testing.assert_close(out["rgb"], expected["rgb"])
    assert not torch.allclose(plain.render_rays(o, d)["rgb"], out["rgb"])  # the world rays themselves differ
