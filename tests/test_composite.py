"""composite: every backend against the reference; gradients; opcheck; compile; bad input."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from fastnerf import reference
from fastnerf.ops import composite
from op_tester import (
    INTERPRETED_MAX,
    assert_close,
    backend_params,
    interpreted,
    non_contiguous,
    packs,
    random_cotangents,
    sorted_intervals,
    vjp,
)


def make_inputs(pack, channels, sigma_scale, seed, *, dtype=torch.float32, zero_length_fraction=0.0):
    g = torch.Generator().manual_seed(seed)
    S = pack["n_samples"]
    sigmas = torch.rand(S, generator=g, dtype=torch.float64) * sigma_scale
    values = torch.rand(S, channels, generator=g, dtype=torch.float64) * 2 - 1
    t_starts, t_ends = sorted_intervals(S, pack["packed_info"], g, torch.float64, zero_length_fraction)
    return [x.to(dtype) for x in (sigmas, values, t_starts, t_ends)] + [pack["packed_info"]]


def to(inputs, device, requires_grad=True):
    moved = [x.to(device) for x in inputs]
    for x in moved[:2]:
        x.requires_grad_(requires_grad)
    return moved


# ---- the reference against hand computation: the spec must be right before it judges others ----


def test_reference_matches_hand_computation():
    sigmas = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    values = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]], dtype=torch.float64)
    t_starts = torch.tensor([0.0, 0.5, 1.5], dtype=torch.float64)
    t_ends = torch.tensor([0.5, 1.5, 1.5 + 0.25], dtype=torch.float64)
    packed_info = torch.tensor([[0, 2], [2, 0], [2, 1]])
    out, opacity, depth, weights = reference.composite.composite(sigmas, values, t_starts, t_ends, packed_info)
    a0, a1 = 1 - math.exp(-0.5), 1 - math.exp(-2.0)
    w0, w1 = a0, (1 - a0) * a1
    w2 = 1 - math.exp(-0.125)
    expected_weights = torch.tensor([w0, w1, w2], dtype=torch.float64)
    torch.testing.assert_close(weights, expected_weights)
    torch.testing.assert_close(out, torch.tensor([[w0, w1], [0, 0], [2 * w2, 2 * w2]], dtype=torch.float64))
    torch.testing.assert_close(opacity, torch.tensor([w0 + w1, 0.0, w2], dtype=torch.float64))
    torch.testing.assert_close(depth, torch.tensor([w0 * 0.25 + w1 * 1.0, 0.0, w2 * 1.625], dtype=torch.float64))


# ---- every fast backend against the reference -------------------------------------------------


@pytest.mark.parametrize("device,backend", backend_params())
@given(data=st.data())
def test_matches_reference(device, backend, data):
    small = interpreted(device, backend)
    pack = data.draw(
        packs(max_rays=INTERPRETED_MAX["rays"], max_samples_per_ray=INTERPRETED_MAX["samples_per_ray"])
        if small
        else packs(max_rays=64, max_samples_per_ray=48),
        label="pack",
    )
    channels = data.draw(st.sampled_from([1, 3, 4, 16, 128]), label="channels")
    sigma_scale = data.draw(st.sampled_from([0.0, 1.0, 30.0, 1e4]), label="sigma_scale")
    zero_fraction = data.draw(st.sampled_from([0.0, 0.3]), label="zero_length_fraction")
    strided = data.draw(st.booleans(), label="non_contiguous_values")
    seed = data.draw(st.integers(0, 2**31 - 1), label="seed")

    inputs = make_inputs(pack, channels, sigma_scale, seed, zero_length_fraction=zero_fraction)
    fast_inputs = to(inputs, device)
    if strided:
        fast_inputs[1] = non_contiguous(fast_inputs[1].detach()).requires_grad_()
    # Ground truth in float64 (so float32 rounding of the reference is not what we compare to).
    ref_inputs = [x.double() if x.is_floating_point() else x for x in inputs]
    ref_inputs = to(ref_inputs, "cpu")

    fast = composite(*fast_inputs, backend=backend)
    ref = reference.composite.composite(*ref_inputs)
    for name, a, e in zip(("out", "opacity", "depth", "weights"), fast, ref):
        assert a.shape == e.shape and a.dtype == torch.float32, name
        assert_close(a.cpu().double(), e.detach(), what=f"{backend} {name}", rtol=1e-4, atol=2e-5)

    cotangents = random_cotangents(ref, torch.Generator().manual_seed(seed + 1))
    grads_fast = vjp(fast, fast_inputs[:2], [c.float().to(device) for c in cotangents])
    grads_ref = vjp(ref, ref_inputs[:2], cotangents)
    for name, a, e in zip(("grad sigmas", "grad values"), grads_fast, grads_ref):
        scale = max(1.0, float(e.abs().max())) if e.numel() else 1.0
        assert_close(a.cpu().double(), e, what=f"{backend} {name}", rtol=1e-3, atol=1e-4 * scale)


@pytest.mark.parametrize("channels", [1, 2, 3, 4, 5, 16])
@pytest.mark.parametrize("device,backend", backend_params())
def test_every_channel_specialisation_matches_reference(device, backend, channels):
    """The native kernels are compiled separately for C = 1, 3, 4 and any other C: each of those
    paths (and its neighbours) against the float64 reference, forward and backward, every time
    (hypothesis may not draw every width in a run)."""
    pack = {"packed_info": torch.tensor([[0, 3], [3, 0], [5, 4], [3, 2]]), "n_samples": 9}
    inputs = make_inputs(pack, channels, 3.0, seed=11 + channels)
    fast_inputs = to(inputs, device)
    ref_inputs = to([x.double() if x.is_floating_point() else x for x in inputs], "cpu")
    fast = composite(*fast_inputs, backend=backend)
    ref = reference.composite.composite(*ref_inputs)
    assert float(ref[1][[0, 2, 3]].min()) > 0.01  # rays with samples gather weight: zeros would fail
    for name, a, e in zip(("out", "opacity", "depth", "weights"), fast, ref):
        assert_close(a.cpu().double(), e.detach(), what=f"{backend} C={channels} {name}", rtol=1e-4, atol=2e-5)
    cotangents = random_cotangents(ref, torch.Generator().manual_seed(channels))
    grads_fast = vjp(fast, fast_inputs[:2], [c.float().to(device) for c in cotangents])
    grads_ref = vjp(ref, ref_inputs[:2], cotangents)
    for name, a, e in zip(("grad sigmas", "grad values"), grads_fast, grads_ref):
        assert_close(a.cpu().double(), e, what=f"{backend} C={channels} {name}", rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("device,backend", backend_params())
def test_every_output_written(device, backend):
    """Outputs come from torch.empty: garbage in any slot would differ between two runs on a
    poisoned allocator. Here: rays with no samples must give exact zeros, uncovered samples 0."""
    packed_info = torch.tensor([[0, 0], [3, 2], [5, 0]], device=device)
    sigmas = torch.full((7,), 3.0, device=device)
    values = torch.ones(7, 4, device=device)
    t = torch.arange(8, dtype=torch.float32, device=device) * 0.1
    for _ in range(2):
        torch.empty(4096, device=device).fill_(float("nan"))  # dirty the caching allocator
        out, opacity, depth, weights = composite(sigmas, values, t[:-1], t[1:], packed_info, backend=backend)
        assert torch.equal(out[0], torch.zeros(4, device=device)) and torch.equal(out[2], torch.zeros(4, device=device))
        assert opacity[0] == 0 and depth[0] == 0 and opacity[2] == 0
        assert torch.equal(weights[[0, 1, 2, 5, 6]], torch.zeros(5, device=device))
        # ray 1: alpha = 1 - e^-0.3 for each of its two samples
        alpha = 1 - math.exp(-0.3)
        torch.testing.assert_close(weights[3:5].cpu(), torch.tensor([alpha, (1 - alpha) * alpha]))


@pytest.mark.parametrize("device,backend", backend_params())
def test_opaque_first_sample_takes_all_weight(device, backend):
    packed_info = torch.tensor([[0, 3]], device=device)
    sigmas = torch.tensor([1e4, 5.0, 5.0], device=device)
    values = torch.tensor([[0.2], [0.9], [0.9]], device=device)
    t = torch.tensor([1.0, 1.1, 1.2, 1.3], device=device)
    out, opacity, depth, weights = composite(sigmas, values, t[:-1], t[1:], packed_info, backend=backend)
    torch.testing.assert_close(opacity.cpu(), torch.tensor([1.0]))
    torch.testing.assert_close(out.cpu(), torch.tensor([[0.2]]))
    torch.testing.assert_close(depth.cpu(), torch.tensor([1.05]))
    assert weights[1:].abs().max() < 1e-30


# ---- float64 gradcheck ------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["torch", "cpp", "triton"])
def test_gradcheck_float64(backend):
    import fastnerf

    if backend not in fastnerf.backends.available("cpu"):
        pytest.skip(f"{backend} not available here")
    pack = {"packed_info": torch.tensor([[0, 3], [3, 0], [5, 4], [3, 2]]), "n_samples": 9}
    sigmas, values, t_starts, t_ends, packed_info = make_inputs(pack, 3, 3.0, seed=7, dtype=torch.float64)
    sigmas.requires_grad_()
    values.requires_grad_()

    def f(s, v):
        return tuple(composite(s, v, t_starts, t_ends, packed_info, backend=backend))

    # fast mode (one random projection) where the Triton interpreter runs: each kernel call is slow there
    assert torch.autograd.gradcheck(f, (sigmas, values), eps=1e-6, atol=1e-6, fast_mode=backend == "triton")


# ---- registration: opcheck and torch.compile ---------------------------------------------------


def _opcheck_args(device):
    pack = {"packed_info": torch.tensor([[0, 3], [3, 0], [3, 5]]), "n_samples": 8}
    inputs = make_inputs(pack, 3, 2.0, seed=3)
    return [x.to(device) for x in inputs]


@pytest.mark.parametrize("device,backend", backend_params())
def test_opcheck(device, backend):
    op = torch.ops.fastnerf.composite_triton if backend == "triton" else torch.ops.fastnerf.composite
    args = _opcheck_args(device)
    args[0].requires_grad_()
    args[1].requires_grad_()
    torch.library.opcheck(op.default, args)


@pytest.mark.parametrize("device,backend", backend_params())
def test_compiles_without_graph_break(device, backend):
    args = _opcheck_args(device)

    def render_like(sigmas, values, t_starts, t_ends, packed_info):
        out, opacity, _, _ = composite(sigmas.relu(), values.sigmoid(), t_starts, t_ends, packed_info, backend=backend)
        return out + (1 - opacity[:, None])

    compiled = torch.compile(render_like, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(*args), render_like(*args))


# ---- bad input: a clear ValueError before any kernel runs --------------------------------------


def _good(device="cpu"):
    packed_info = torch.tensor([[0, 2], [2, 3]], device=device)
    sigmas = torch.rand(5, device=device)
    values = torch.rand(5, 3, device=device)
    t = torch.linspace(0, 1, 6, device=device)
    return dict(sigmas=sigmas, values=values, t_starts=t[:-1], t_ends=t[1:], packed_info=packed_info)


BAD = {
    "sigmas int": (dict(sigmas=torch.ones(5, dtype=torch.int32)), "sigmas"),
    "values float64": (dict(values=torch.rand(5, 3, dtype=torch.float64)), "values"),
    "values 1-d": (dict(values=torch.rand(5)), "values"),
    "values wrong rows": (dict(values=torch.rand(4, 3)), "values"),
    "t_starts wrong length": (dict(t_starts=torch.rand(6)), "t_starts"),
    "t_ends 2-d": (dict(t_ends=torch.rand(5, 1)), "t_ends"),
    "packed_info float": (dict(packed_info=torch.tensor([[0.0, 2.0]])), "packed_info"),
    "packed_info [N,3]": (dict(packed_info=torch.tensor([[0, 2, 1]])), "packed_info"),
    "packed_info past the end": (dict(packed_info=torch.tensor([[0, 2], [2, 4]])), "packed_info"),
    "packed_info negative count": (dict(packed_info=torch.tensor([[0, 2], [2, -1]])), "packed_info"),
    "packed_info negative start": (dict(packed_info=torch.tensor([[-1, 2], [2, 3]])), "packed_info"),
    "packed_info overlapping": (dict(packed_info=torch.tensor([[0, 3], [2, 3]])), "packed_info"),
    "packed_info overlapping, unsorted": (dict(packed_info=torch.tensor([[3, 2], [0, 4]])), "packed_info"),
    "sigmas not a tensor": (dict(sigmas=[1.0] * 5), "sigmas"),
}


@pytest.mark.parametrize("backend", ["torch", "cpp", "triton"])
@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_names_the_argument(backend, case):
    import fastnerf

    if backend not in fastnerf.backends.available("cpu"):
        pytest.skip(f"{backend} not available here")
    change, name = BAD[case]
    kwargs = {**_good(), **change}
    with pytest.raises(ValueError, match=name):
        composite(**kwargs, backend=backend)


def test_mixed_devices_rejected_on_any_machine():
    kwargs = _good()
    kwargs["values"] = kwargs["values"].to("meta")
    with pytest.raises(ValueError, match="values must be on cpu"):
        composite(**kwargs)


@pytest.mark.gpu
def test_mixed_devices_rejected():
    kwargs = _good("cuda")
    kwargs["values"] = kwargs["values"].cpu()
    with pytest.raises(ValueError, match="values must be on cuda"):
        composite(**kwargs)


def test_native_op_checks_bounds_itself():
    """Called directly, past the Python validation, the C++ kernel still refuses bad ranges."""
    import fastnerf

    if "cpp" not in fastnerf.backends.available("cpu"):
        pytest.skip("cpp not available here")
    kwargs = _good()
    kwargs["packed_info"] = torch.tensor([[0, 2], [4, 9]])
    with pytest.raises(RuntimeError, match="packed_info"):
        torch.ops.fastnerf.composite(*kwargs.values())
