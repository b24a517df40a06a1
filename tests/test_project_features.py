"""project_features: the reference against hand computation; every backend against the reference
(hypothesis); gradients; opcheck; bad input."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastnerf import reference
from fastnerf.cameras import look_at
from fastnerf.ops import project_features
from op_tester import assert_close, backend_params, interpreted, non_contiguous


def cameras(n_views, generator, dtype=torch.float64):
    """Cameras at distance ~3 looking near the origin; intrinsics for a feature map of about 6x5."""
    eyes = torch.randn(n_views, 3, generator=generator, dtype=torch.float64)
    eyes = 3 * eyes / eyes.norm(dim=-1, keepdim=True).clamp_min(1e-3)
    eyes[:, 2] = eyes[:, 2].clamp(-2.5, 2.5)
    targets = torch.randn(n_views, 3, generator=generator, dtype=torch.float64) * 0.2
    c2w = look_at(eyes, targets)
    focal = 4.0 + 4.0 * torch.rand(n_views, 2, generator=generator, dtype=torch.float64)
    centre = torch.tensor([3.0, 2.5], dtype=torch.float64) + torch.rand(n_views, 2, generator=generator, dtype=torch.float64) - 0.5
    return c2w.to(dtype), torch.cat([focal, centre], 1).to(dtype)


def make_inputs(n_views, n_points, channels, height, width, seed, *, spread=1.5, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    c2w, intrinsics = cameras(n_views, g)
    points = (torch.rand(n_points, 3, generator=g, dtype=torch.float64) * 2 - 1) * spread  # some behind cameras
    features = torch.randn(n_views, channels, height, width, generator=g, dtype=torch.float64)
    return [x.to(dtype) for x in (points, c2w, intrinsics, features)]


# ---- the reference against hand computation ----------------------------------------------------


def test_reference_matches_hand_computation():
    # camera at z = 2 looking down -Z at the origin, fx = fy = 2, principal point (1.5, 1), map 3x2
    c2w = torch.eye(4, dtype=torch.float64)[None].clone()
    c2w[0, 2, 3] = 2.0
    intrinsics = torch.tensor([[2.0, 2.0, 1.5, 1.0]], dtype=torch.float64)
    features = torch.arange(6, dtype=torch.float64).reshape(1, 1, 2, 3)  # rows [0 1 2], [3 4 5]
    points = torch.tensor([
        [0.0, 0.0, 0.0],   # u = 1.5, w = 1.0 -> between texels (1,0) and (1,1): (1 + 4) / 2
        [0.5, 0.0, 0.0],   # u = 2.0 -> x = 1.5: between columns 1 and 2 of both rows: (1+2+4+5)/4
        [-0.75, 0.25, 0.0],  # u = 0.75, w = 0.75 -> x = 0.25, y = 0.25 around texel (0,0) ...
        [0.0, 0.0, 3.0],   # behind the camera
        [5.0, 0.0, 0.0],   # far off the map
    ], dtype=torch.float64)
    out = reference.project_features.project_features(points, c2w, intrinsics, features)[0, :, 0]
    x, y = 0.25, 0.25  # taps (0,0)=0, (1,0)=1, (0,1)=3, (1,1)=4
    third = (1 - x) * (1 - y) * 0 + x * (1 - y) * 1 + (1 - x) * y * 3 + x * y * 4
    torch.testing.assert_close(out, torch.tensor([2.5, 3.0, third, 0.0, 0.0], dtype=torch.float64))


def test_reference_edge_texels_blend_with_zero():
    c2w = torch.eye(4, dtype=torch.float64)[None].clone()
    c2w[0, 2, 3] = 1.0
    intrinsics = torch.tensor([[1.0, 1.0, 0.0, 0.0]], dtype=torch.float64)  # the axis hits the map's corner
    features = torch.ones(1, 1, 2, 2, dtype=torch.float64)
    out = reference.project_features.project_features(torch.zeros(1, 3, dtype=torch.float64), c2w, intrinsics, features)
    torch.testing.assert_close(out[0, 0, 0], torch.tensor(0.25, dtype=torch.float64))  # one tap of four inside


# ---- every fast backend against the reference -------------------------------------------------


@pytest.mark.parametrize("device,backend", backend_params())
@settings(deadline=None, max_examples=40)
@given(data=st.data())
def test_matches_reference(device, backend, data):
    n_views = data.draw(st.integers(1, 3), label="views")
    small = interpreted(device, backend)
    n_points = data.draw(st.sampled_from([0, 1, 7] if small else [0, 1, 7, 64]), label="points")
    channels = data.draw(st.sampled_from([1, 3, 16, 33]), label="channels")
    height, width = data.draw(st.integers(1, 7), label="h"), data.draw(st.integers(1, 7), label="w")
    layout = data.draw(st.sampled_from(["contiguous", "channels_last", "strided"]), label="layout")
    seed = data.draw(st.integers(0, 2**31 - 1), label="seed")
    points, c2w, intrinsics, features = make_inputs(n_views, n_points, channels, height, width, seed)
    if layout == "channels_last":
        features = features.contiguous(memory_format=torch.channels_last)
    elif layout == "strided":
        features = non_contiguous(features)
    features = features.to(device).requires_grad_()
    fast = project_features(points.to(device), c2w.to(device), intrinsics.to(device), features, backend=backend)
    ref_features = features.detach().cpu().double().requires_grad_()
    ref = reference.project_features.project_features(points.double(), c2w.double(), intrinsics.double(), ref_features)
    assert fast.shape == (n_views, n_points, channels) and fast.dtype == torch.float32
    assert_close(fast.cpu().double(), ref.detach(), what=f"{backend} features", rtol=1e-4, atol=1e-5)
    cotangent = torch.randn(ref.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    (grad_fast,) = torch.autograd.grad(fast, features, cotangent.float().to(device))
    (grad_ref,) = torch.autograd.grad(ref, ref_features, cotangent)
    assert_close(grad_fast.cpu().double(), grad_ref, what=f"{backend} grad features", rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("device,backend", backend_params())
def test_points_that_do_not_project_give_zero(device, backend):
    c2w = torch.eye(4)[None].clone()
    c2w[0, 2, 3] = 2.0
    intrinsics = torch.tensor([[2.0, 2.0, 1.5, 1.0]])
    features = torch.ones(1, 4, 2, 3)
    points = torch.tensor([[0.0, 0.0, 2.0], [0.0, 0.0, 5.0], [1e30, 0.0, 0.0], [float("nan"), 0.0, 0.0],
                           [0.0, 0.0, float("inf")], [0.0, 0.0, 0.0]])
    out = project_features(points.to(device), c2w.to(device), intrinsics.to(device), features.to(device), backend=backend)
    assert torch.equal(out[0, :5].cpu(), torch.zeros(5, 4)) and torch.equal(out[0, 5].cpu(), torch.ones(4))


# ---- gradients ---------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["torch", "cpp"])
def test_gradcheck_features_float64(backend):
    import fastnerf

    if backend not in fastnerf.backends.available("cpu"):
        pytest.skip(f"{backend} not available here")
    points, c2w, intrinsics, features = make_inputs(2, 9, 3, 4, 5, seed=5, dtype=torch.float64)
    features.requires_grad_()
    assert torch.autograd.gradcheck(lambda f: project_features(points, c2w, intrinsics, f, backend=backend),
                                    (features,), eps=1e-6, atol=1e-6)


def test_reference_gradcheck_points_float64():
    points, c2w, intrinsics, features = make_inputs(2, 6, 2, 4, 5, seed=9, spread=0.3, dtype=torch.float64)
    points.requires_grad_()
    assert torch.autograd.gradcheck(lambda p: project_features(p, c2w, intrinsics, features, backend="torch"),
                                    (points,), eps=1e-7, atol=1e-5)


@pytest.mark.parametrize("device,backend", backend_params())
def test_opcheck(device, backend):
    points, c2w, intrinsics, features = (x.to(device) for x in make_inputs(2, 11, 5, 4, 6, seed=3))
    features.requires_grad_()
    op = torch.ops.fastnerf.project_features_triton if backend == "triton" else torch.ops.fastnerf.project_features
    torch.library.opcheck(op.default, (points, c2w, intrinsics, features))


# ---- bad input ----------------------------------------------------------------------------------


def test_bad_input_names_the_argument():
    points, c2w, intrinsics, features = make_inputs(2, 4, 3, 4, 5, seed=1)
    with pytest.raises(ValueError, match=r"points.shape\[1\] must be 3"):
        project_features(points[:, :2], c2w, intrinsics, features)
    with pytest.raises(ValueError, match=r"c2w.shape\[0\] must be 2"):
        project_features(points, c2w[:1], intrinsics, features)
    with pytest.raises(ValueError, match=r"intrinsics.shape\[1\] must be 4"):
        project_features(points, c2w, intrinsics[:, :3], features)
    with pytest.raises(ValueError, match="features must have 4 dimension"):
        project_features(points, c2w, intrinsics, features[0])
    with pytest.raises(ValueError, match="features must have the dtype of points"):
        project_features(points, c2w, intrinsics, features.double())
    with pytest.raises(ValueError, match=r"c2w must have shape \[V, 4, 4\]"):
        project_features(points, c2w[:, :3], intrinsics, features)


@pytest.mark.parametrize("device,backend", backend_params())
def test_point_gradients_refused_on_native_backends(device, backend):
    points, c2w, intrinsics, features = (x.to(device) for x in make_inputs(1, 4, 3, 4, 5, seed=1))
    with pytest.raises(ValueError, match="differentiable in features only"):
        project_features(points.requires_grad_(), c2w, intrinsics, features, backend=backend)


def test_projection_agrees_with_camera_rays():
    """A point on the ray through a pixel centre samples exactly that texel (the camera convention)."""
    from fastnerf.cameras import Camera

    c2w = look_at(torch.tensor([[2.0, -1.0, 1.5]]), (0.1, 0.2, 0.0)).float()
    camera = Camera(c2w, 5.0, 6.0, 3.2, 2.1, 6, 4)
    features = torch.arange(24.0).reshape(1, 1, 4, 6)
    rows, cols = torch.tensor([0, 3, 2]), torch.tensor([5, 0, 2])
    origins, directions = camera.pixel_rays(torch.zeros(3, dtype=torch.long), rows, cols)
    points = origins + 1.7 * directions
    intrinsics = torch.tensor([[5.0, 6.0, 3.2, 2.1]])
    out = project_features(points, c2w, intrinsics, features, backend="torch")[0, :, 0]
    torch.testing.assert_close(out, (rows * 6 + cols).float(), atol=1e-4, rtol=0)
    assert math.isclose(float(out[0]), 5.0, abs_tol=1e-4)
