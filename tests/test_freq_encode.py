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
    # |2^k x| up to 3 * 2^9: float32 sin/cos of it carry ~1e-4 absolute error from argument rounding alone.
    tol = 2e-4 if dtype == torch.float32 else 1e-10
    assert_close(fast.detach().cpu().double(), ref.detach(), what=f"{backend} out", rtol=tol, atol=tol)
    cotangents = random_cotangents([ref], torch.Generator().manual_seed(seed + 1))
    (grad_fast,) = vjp([fast], [x], [c.to(dtype).to(device) for c in cotangents])
    (grad_ref,) = vjp([ref], [x_ref], cotangents)
    scale = max(1.0, float(grad_ref.abs().max())) if grad_ref.numel() else 1.0
    assert_close(grad_fast.cpu().double(), grad_ref, what=f"{backend} grad x", rtol=tol, atol=tol * scale)


@pytest.mark.parametrize("backend", ALL_CPU)
@pytest.mark.parametrize("include_input", [True, False])
def test_gradcheck_float64(backend, include_input):
    _skip_unless_available(backend)
    x = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2), requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: freq_encode(x, 4, include_input=include_input, backend=backend), (x,))


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
