"""sh_encode: every backend against the reference (hypothesis); sizes, layouts, dtypes and degrees;
gradients; opcheck; compile; bad input; the encoding module on every backend."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import fastnerf
from fastnerf.fields import SphericalHarmonicsEncoding
from fastnerf.fields.spherical_harmonics import spherical_harmonics
from fastnerf.ops import sh_encode
from fastnerf.reference import sh_encode as reference
from op_tester import assert_close, backend_params, interpreted, non_contiguous, random_cotangents

ALL_CPU = ["torch", "cpp", "triton"]
DEGREES = [1, 2, 3, 4]


def _skip_unless_available(backend):
    if backend not in fastnerf.backends.available("cpu"):
        pytest.skip(f"{backend} not available here")


def unit_directions(n_points, generator, dtype=torch.float64):
    """[N, 3] unit vectors, with some exactly on the axes (components exactly 0 and +-1)."""
    d = torch.nn.functional.normalize(torch.randn(n_points, 3, generator=generator, dtype=torch.float64), dim=-1)
    on_axis = torch.rand(n_points, generator=generator) < 0.1
    axes = torch.eye(3, dtype=torch.float64)[torch.randint(0, 3, (n_points,), generator=generator)]
    d[on_axis] = axes[on_axis] * torch.where(torch.rand(int(on_axis.sum()), 1, generator=generator) < 0.5, -1.0, 1.0)
    return d.to(dtype)


def reference_vjp(directions, degree, cotangent):
    """grad of <cotangent, reference(directions)>; degree 1 is a constant (no graph): zero."""
    if degree == 1:
        return torch.zeros_like(directions)
    x = directions.detach().clone().requires_grad_()
    (grad,) = torch.autograd.grad(reference.sh_encode(x, degree), x, cotangent)
    return grad


def test_one_formula():  # (the docstring example runs in tests/test_docs.py)
    assert spherical_harmonics is reference.sh_encode  # the module's function is the reference


@pytest.mark.parametrize("device,backend", backend_params())
@given(data=st.data())
def test_matches_reference(device, backend, data):
    n_points = data.draw(st.integers(0, 10 if interpreted(device, backend) else 300), label="N")
    degree = data.draw(st.sampled_from(DEGREES), label="degree")
    dtype = data.draw(st.sampled_from([torch.float32, torch.float64]), label="dtype")
    strided = data.draw(st.booleans(), label="non-contiguous directions")
    seed = data.draw(st.integers(0, 2**31 - 1), label="seed")
    d64 = unit_directions(n_points, torch.Generator().manual_seed(seed)).to(dtype).double()  # the inputs' values
    directions = d64.to(dtype).to(device)
    if strided:
        directions = non_contiguous(directions)
    directions.requires_grad_()
    fast = sh_encode(directions, degree, backend=backend)
    ref = reference.sh_encode(d64, degree)
    assert fast.shape == (n_points, degree * degree) and fast.dtype == dtype
    (cotangent,) = random_cotangents([ref], torch.Generator().manual_seed(seed + 1))
    (grad_fast,) = torch.autograd.grad(fast, directions, cotangent.to(dtype).to(device))
    grad_ref = reference_vjp(d64, degree, cotangent)
    # float64: rounding only. float32: outputs are at most ~1.1 in size, each a few roundings of
    # 2^-24; a gradient sums up to 7 terms of constants (<= 7) times cotangents (randn).
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-6, atol=1e-6)
    grad_tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=2e-5)
    assert_close(fast.detach().cpu().double(), ref, what=f"{backend} out", **tol)
    assert_close(grad_fast.cpu().double(), grad_ref, what=f"{backend} grad directions", **grad_tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("degree", DEGREES)
def test_cpp_forward_rounds_as_the_reference(degree, dtype):
    # The C++ kernel evaluates the reference's products in its order without contraction
    # (-ffp-contract=off), so on the CPU it is bitwise the reference, float32 included. Sizes
    # cover a partial block (64 directions), several threads' tasks (8192) and N = 0.
    _skip_unless_available("cpp")
    for n_points in (0, 1, 63, 65, 20001):
        directions = unit_directions(n_points, torch.Generator().manual_seed(n_points), dtype)
        out = sh_encode(directions, degree, backend="cpp")
        assert torch.equal(out, reference.sh_encode(directions, degree)), f"N={n_points}"


@pytest.mark.parametrize("backend", ["cpp", "triton"])
def test_layouts_and_large_batches(backend):
    _skip_unless_available(backend)
    n_points = 20001 if backend == "cpp" else 37  # cpp: more than one parallel_for task; odd N
    g = torch.Generator().manual_seed(4)
    wide = torch.randn(n_points, 5, generator=g)
    wide[:, 1:4] = unit_directions(n_points, g, torch.float32)
    directions = wide[:, 1:4]  # rows 5 apart
    transposed = unit_directions(n_points, g, torch.float32).T.contiguous().T  # column-major
    for d in (directions, transposed):
        assert not d.is_contiguous()
        d.requires_grad_()
        out = sh_encode(d, 4, backend=backend)
        torch.testing.assert_close(out, reference.sh_encode(d.detach(), 4), rtol=1e-6, atol=1e-6)
        cotangent = torch.randn(out.shape, generator=g)
        (grad,) = torch.autograd.grad(out, d, cotangent)
        torch.testing.assert_close(grad, reference_vjp(d.detach(), 4, cotangent), rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("backend", ALL_CPU)
@pytest.mark.parametrize("degree", DEGREES)
def test_gradcheck_float64(backend, degree):
    _skip_unless_available(backend)
    if backend == "torch" and degree == 1:
        pytest.skip("the reference's degree 1 is a constant with no graph")
    d = unit_directions(5, torch.Generator().manual_seed(degree)).requires_grad_()
    assert torch.autograd.gradcheck(lambda d: sh_encode(d, degree, backend=backend), (d,),
                                    fast_mode=backend == "triton")  # the Triton interpreter is slow per call


@pytest.mark.parametrize("device,backend", backend_params())
def test_opcheck(device, backend):
    op = torch.ops.fastnerf.sh_encode_triton if backend == "triton" else torch.ops.fastnerf.sh_encode
    d = torch.randn(6, 3, device=device, requires_grad=True)
    for degree in (1, 4):
        torch.library.opcheck(op.default, (d, degree))


@pytest.mark.parametrize("device,backend", [p for p in backend_params() if p.values[1] != "triton"])
def test_compiles_without_graph_break(device, backend):
    d = torch.randn(6, 3, device=device)

    def f(d):
        return sh_encode(torch.nn.functional.normalize(d, dim=-1), 4, backend=backend).tanh()

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(d), f(d))


def test_double_backward_is_refused_off_the_reference():
    _skip_unless_available("cpp")
    d = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(sh_encode(d, 4, backend="torch").sum(), d, create_graph=True)
    assert grad.requires_grad  # the reference: any order
    with pytest.raises(RuntimeError, match="double backward"):
        torch.autograd.grad(sh_encode(d, 4, backend="cpp").sum(), d, create_graph=True)


BAD = {
    "directions 1-d": (dict(directions=torch.rand(3)), "directions"),
    "directions 3-d": (dict(directions=torch.rand(2, 4, 3)), "directions"),
    "directions ends in 2": (dict(directions=torch.rand(4, 2)), r"directions\.shape\[1\] must be 3"),
    "directions int": (dict(directions=torch.ones(4, 3, dtype=torch.int32)), "directions"),
    "directions float16": (dict(directions=torch.ones(4, 3, dtype=torch.float16)), "directions"),
    "directions not a tensor": (dict(directions=[[0.0, 0.0, 1.0]]), "directions"),
    "degree 0": (dict(degree=0), "degree"),
    "degree 5": (dict(degree=5), "degree"),
    "degree float": (dict(degree=4.0), "degree"),
    "degree bool": (dict(degree=True), "degree"),
}


@pytest.mark.parametrize("backend", ALL_CPU)
@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_names_the_argument(backend, case):
    _skip_unless_available(backend)
    change, name = BAD[case]
    kwargs = {**dict(directions=torch.rand(4, 3), degree=4), **change}
    with pytest.raises(ValueError, match=name):
        sh_encode(kwargs["directions"], kwargs["degree"], backend=backend)


@pytest.mark.parametrize("backend", ["cpp", "triton"])
def test_a_device_the_backend_cannot_run_on_is_named(backend):
    _skip_unless_available(backend)
    with pytest.raises(ValueError, match=f"backend='{backend}' is not available for tensors on meta"):
        sh_encode(torch.rand(4, 3, device="meta"), 4, backend=backend)


def test_native_op_checks_its_arguments_itself():
    _skip_unless_available("cpp")
    with pytest.raises(RuntimeError, match="degree"):
        torch.ops.fastnerf.sh_encode(torch.rand(4, 3), 5)
    with pytest.raises(RuntimeError, match="directions"):
        torch.ops.fastnerf.sh_encode(torch.rand(4, 2), 4)
    with pytest.raises(RuntimeError, match="grad_out"):
        torch.ops.fastnerf.sh_encode_bwd(torch.rand(4, 9), torch.rand(4, 3), 4)


@pytest.mark.parametrize("backend", ALL_CPU)
def test_module_runs_the_op_on_every_backend(backend):
    _skip_unless_available(backend)
    enc = SphericalHarmonicsEncoding(3)
    d = unit_directions(10, torch.Generator().manual_seed(5)).float().reshape(2, 5, 3).requires_grad_()
    out = enc(d, backend=backend)
    assert out.shape == (2, 5, 9)
    torch.testing.assert_close(out, reference.sh_encode(d.detach(), 3))
    out.square().sum().backward()
    torch.testing.assert_close(d.grad, reference_vjp(d.detach(), 3, 2 * reference.sh_encode(d.detach(), 3)))
