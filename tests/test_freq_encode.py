"""freq_encode: the reference by hand; every backend against the reference (hypothesis);
gradients; opcheck; compile; bad input."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import fastnerf
from fastnerf.ops import freq_encode
from fastnerf.reference import freq_encode as reference
from op_tester import assert_close, backend_params, interpreted, non_contiguous, random_cotangents, vjp

ALL_CPU = ["torch", "cpp", "triton"]


def _skip_unless_available(backend):
    if backend not in fastnerf.backends.available("cpu"):
        pytest.skip(f"{backend} not available here")


def test_reference_matches_hand_computation():
    x = torch.tensor([[0.3, -1.2]], dtype=torch.float64)
    out = reference.freq_encode(x, 2)
    a, b = 0.3, -1.2
    expected = [a, b, math.sin(a), math.sin(b), math.cos(a), math.cos(b),
                math.sin(2 * a), math.sin(2 * b), math.cos(2 * a), math.cos(2 * b)]
    torch.testing.assert_close(out[0], torch.tensor(expected, dtype=torch.float64))
    torch.testing.assert_close(reference.freq_encode(x, 2, include_input=False)[0], out[0, 2:])
    assert reference.freq_encode(x, 0).shape == (1, 2)


@pytest.mark.parametrize("device,backend", backend_params())
@given(data=st.data())
def test_matches_reference(device, backend, data):
    n_points = data.draw(st.integers(0, 10 if interpreted(device, backend) else 200), label="N")
    dims = data.draw(st.integers(1, 5), label="D")
    n_freqs = data.draw(st.integers(0, 10), label="n_freqs")
    include_input = data.draw(st.booleans(), label="include_input") or n_freqs == 0
    dtype = data.draw(st.sampled_from([torch.float32, torch.float64]), label="dtype")
    strided = data.draw(st.booleans(), label="non-contiguous x")
    seed = data.draw(st.integers(0, 2**31 - 1), label="seed")
    g = torch.Generator().manual_seed(seed)
    x64 = (torch.rand(n_points, dims, generator=g, dtype=torch.float64) * 2 - 1) * 3

    x = x64.to(dtype).to(device)
    if strided:
        x = non_contiguous(x)
    x.requires_grad_()
    x_ref = x64.clone().requires_grad_()  # float64 ground truth of the float32 inputs' values
    if dtype == torch.float32:
        x_ref = x64.float().double().requires_grad_()
    fast = freq_encode(x, n_freqs, include_input=include_input, backend=backend)
    ref = reference.freq_encode(x_ref, n_freqs, include_input=include_input)
    assert fast.shape == ref.shape and fast.dtype == dtype
    cotangents = random_cotangents([ref], torch.Generator().manual_seed(seed + 1))
    (grad_fast,) = vjp([fast], [x], [c.to(dtype).to(device) for c in cotangents])
    (grad_ref,) = vjp([ref], [x_ref], cotangents)
    if dtype == torch.float64:
        assert_close(fast.detach().cpu(), ref.detach(), what=f"{backend} out", rtol=1e-10, atol=1e-10)
        assert_close(grad_fast.cpu(), grad_ref, what=f"{backend} grad x", rtol=1e-10, atol=1e-10)
        return
    wave_bound = sincos_error_bound(x_ref.detach(), n_freqs, torch.device(device).type)  # [n_freqs, N, D]
    out_bound = torch.cat(([torch.zeros_like(x_ref)] if include_input else [])
                          + [b for k in range(n_freqs) for b in (wave_bound[k], wave_bound[k])], 1)
    assert_within(fast.detach().cpu().double(), ref.detach(), out_bound, what=f"{backend} out")
    assert_within(grad_fast.cpu().double(), grad_ref, grad_error_bound(cotangents[0], wave_bound, include_input),
                  what=f"{backend} grad x")


# float32 error of freq_encode, from the math. 2^k x is exact in float32 (a power-of-two scale,
# far from overflow), so each output's whole error is that of float32 sin/cos of an exact argument:
#   CPU  (the cpp polynomial, libm, numpy under the Triton interpreter): < 2e-7 absolute at any
#        argument (about 1-2 ulp of 1; test_cpp_float_sin_cos_accuracy_over_range checks the cpp
#        path alone to this bound up to |2^k x| = 9000).
#   GPU  (--use_fast_math turns sinf into __sinf; Triton's tl.sin is sin.approx.f32): the hardware
#        reduces the argument by a float32 multiply with 1/(2 pi), so the reduced angle is off by up
#        to about 2^-23 |2^k x| radians (two roundings of 2^-24), on top of the approximation's own
#        2^-21.41 on [-pi, pi] (CUDA programming guide, intrinsic functions). The error grows with
#        2^k |x|: ~2e-4 at the test's largest argument (3 * 2^9), 5e-7 for |2^k x| < 1.
CPU_SINCOS_ERROR = 2e-7
GPU_SINCOS_ERROR, GPU_SINCOS_GROWTH = 2.0**-21, 2.0**-23


def sincos_error_bound(x, n_freqs, device_type):
    """|float32 sin or cos of 2^k x - exact| may reach this: [n_freqs, N, D] from x [N, D]."""
    scaled = torch.stack([x.abs() * 2.0**k for k in range(n_freqs)]) if n_freqs else x.new_zeros(0, *x.shape)
    if device_type == "cuda":
        return GPU_SINCOS_ERROR + GPU_SINCOS_GROWTH * scaled
    return torch.full_like(scaled, CPU_SINCOS_ERROR)


def grad_error_bound(cotangent, wave_bound, include_input):
    """grad_x = [g_x] + sum_k 2^k (g_sin_k cos(2^k x) - g_cos_k sin(2^k x)): each term is off by
    2^k (|g_sin_k| + |g_cos_k|) times the sin/cos error, plus float32 roundings of 2^-24 of the
    terms' magnitude: the cotangent's to float32, the products' and the running sum's (n_freqs + 4)."""
    n_freqs, dims = wave_bound.shape[0], cotangent.shape[1] // ((1 if include_input else 0) + 2 * wave_bound.shape[0])
    waves = cotangent[:, dims:] if include_input else cotangent
    bound = torch.zeros_like(cotangent[:, :dims])
    for k in range(n_freqs):
        magnitude = 2.0**k * (waves[:, 2 * k * dims:(2 * k + 1) * dims].abs()
                              + waves[:, (2 * k + 1) * dims:(2 * k + 2) * dims].abs())
        bound += magnitude * (wave_bound[k] + (n_freqs + 4) * 2.0**-24)
    if include_input:
        bound += cotangent[:, :dims].abs() * (n_freqs + 4) * 2.0**-24
    return bound


def assert_within(actual, expected, bound, *, what):
    error = (actual - expected).abs()
    assert actual.shape == expected.shape, what
    if error.numel():
        worst = int((error - bound).argmax())
        assert (error <= bound).all(), (
            f"{what}: error {float(error.flatten()[worst]):.3g} over its bound {float(bound.flatten()[worst]):.3g} "
            f"at flat index {worst}")


@pytest.mark.parametrize("backend", ALL_CPU)
@pytest.mark.parametrize("include_input", [True, False])
def test_gradcheck_float64(backend, include_input):
    _skip_unless_available(backend)
    x = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2), requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: freq_encode(x, 4, include_input=include_input, backend=backend), (x,),
                                    fast_mode=backend == "triton")  # the Triton interpreter is slow per call


@pytest.mark.parametrize("device,backend", backend_params())
def test_opcheck(device, backend):
    op = torch.ops.fastnerf.freq_encode_triton if backend == "triton" else torch.ops.fastnerf.freq_encode
    x = torch.randn(6, 3, device=device, requires_grad=True)
    torch.library.opcheck(op.default, (x, 3, True))
    torch.library.opcheck(op.default, (x, 2, False))


@pytest.mark.parametrize("device,backend", [p for p in backend_params() if p.values[1] != "triton"])
def test_compiles_without_graph_break(device, backend):
    x = torch.randn(6, 3, device=device)

    def f(x):
        return freq_encode(x * 2, 4, backend=backend).tanh()

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x), f(x))


BAD = {
    "x 1-d": (dict(x=torch.rand(3)), "x"),
    "x int": (dict(x=torch.ones(4, 3, dtype=torch.int32)), "x"),
    "x not a tensor": (dict(x=[[1.0]]), "x"),
    "n_freqs negative": (dict(n_freqs=-1), "n_freqs"),
    "n_freqs float": (dict(n_freqs=2.0), "n_freqs"),
    "n_freqs too many": (dict(n_freqs=40), "n_freqs"),
    "nothing to output": (dict(n_freqs=0, include_input=False), "n_freqs"),
    "include_input not bool": (dict(include_input=1), "include_input"),
}


@pytest.mark.parametrize("backend", ALL_CPU)
@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_names_the_argument(backend, case):
    _skip_unless_available(backend)
    change, name = BAD[case]
    kwargs = {**dict(x=torch.rand(4, 3), n_freqs=3, include_input=True), **change}
    with pytest.raises(ValueError, match=name):
        freq_encode(kwargs.pop("x"), kwargs.pop("n_freqs"), **kwargs, backend=backend)


def test_native_op_checks_its_arguments_itself():
    _skip_unless_available("cpp")
    with pytest.raises(RuntimeError, match="n_freqs"):
        torch.ops.fastnerf.freq_encode(torch.rand(4, 3), -1, True)
    with pytest.raises(RuntimeError, match="grad_out"):
        torch.ops.fastnerf.freq_encode_bwd(torch.rand(4, 5), torch.rand(4, 3), 1, True)


@pytest.mark.parametrize("include_input", [True, False])
def test_cpp_float_sin_cos_accuracy_over_range(include_input):
    # The float cpp path evaluates sin/cos by its own polynomial up to |2^k x| = 8192 and by libm
    # beyond: both must stay ~1e-7 from float64 sin/cos of the same (exact) float arguments.
    _skip_unless_available("cpp")
    g = torch.Generator().manual_seed(3)
    x = torch.cat([torch.rand(4000, 3, generator=g) * 2 - 1, (torch.rand(300, 3, generator=g) * 2 - 1) * 9000])
    x = torch.cat([x, torch.tensor([[float("nan"), float("inf"), -0.0]])])
    n_freqs = 12
    out = freq_encode(x, n_freqs, include_input=include_input, backend="cpp")
    ref = reference.freq_encode(x.double(), n_freqs, include_input=include_input)
    torch.testing.assert_close(out.double(), ref, rtol=0, atol=2e-7, equal_nan=True)
    cotangent = torch.randn(out.shape, generator=g)
    xg = x[:-1].clone().requires_grad_()
    (grad,) = torch.autograd.grad(freq_encode(xg, n_freqs, include_input=include_input, backend="cpp"), xg,
                                  cotangent[:-1])
    xr = x[:-1].double().requires_grad_()
    (grad_ref,) = torch.autograd.grad(reference.freq_encode(xr, n_freqs, include_input=include_input), xr,
                                      cotangent[:-1].double())
    torch.testing.assert_close(grad.double(), grad_ref, rtol=1e-6, atol=2e-7 * 2**n_freqs)
