"""hash_encode: the reference by hand; every backend against the reference (hypothesis); corner,
boundary and out-of-range rules; gradients; opcheck; compile; bad input."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import fastnerf
from fastnerf.ops import hash_encode
from fastnerf.reference import hash_encode as reference
from op_tester import assert_close, backend_params, interpreted, non_contiguous, random_cotangents, vjp

ALL_CPU = ["torch", "cpp", "triton"]


def _skip_unless_available(backend, device="cpu"):
    if backend not in fastnerf.backends.available(device):
        pytest.skip(f"{backend} not available here")


# ---- the reference against hand computation --------------------------------------------------


def test_level_resolutions():
    assert reference.level_resolutions(16, 16, 2048) == [
        16, 22, 30, 42, 58, 80, 111, 153, 212, 294, 406, 561, 776, 1072, 1482, 2048]
    assert reference.level_resolutions(1, 7.9, 100) == [7]
    assert reference.level_resolutions(3, 4, 4) == [4, 4, 4]
    # float64 gives 2 * sqrt(3)^2 = 5.9999999999999996: the last level must still be n_max.
    assert reference.level_resolutions(3, 2, 6) == [2, 3, 6]
    for n_levels in range(2, 33):
        assert reference.level_resolutions(n_levels, 16, 4096)[-1] == 4096


def test_reference_dense_vertex_is_the_table_row():
    # N = 2: 27 vertices <= T = 32, dense. x = (0.5, 0, 1) -> vertex (1, 0, 2) exactly.
    table = torch.randn(1, 32, 3, dtype=torch.float64)
    x = torch.tensor([[0.5, 0.0, 1.0]], dtype=torch.float64)
    out = reference.hash_encode(x, table, n_min=2, n_max=2)
    torch.testing.assert_close(out[0], table[0, 1 + 0 * 3 + 2 * 9], rtol=0, atol=0)


def test_reference_hashed_vertex_uses_uint32_xor_of_primes():
    # N = 2 with T = 8 < 27: hashed. Vertex (1, 2, 2) at x = (0.5, 1, 1).
    table = torch.randn(1, 8, 2, dtype=torch.float64)
    x = torch.tensor([[0.5, 1.0, 1.0]], dtype=torch.float64)
    row = (1 ^ ((2 * 2654435761) % 2**32) ^ ((2 * 805459861) % 2**32)) % 8
    out = reference.hash_encode(x, table, n_min=2, n_max=2)
    torch.testing.assert_close(out[0], table[0, row], rtol=0, atol=0)


def test_reference_cell_centre_is_the_mean_of_its_corners_level_major():
    table = torch.randn(2, 64, 2, dtype=torch.float64)  # N = 1 (8 vertices) and N = 3 (64): both dense
    x = torch.tensor([[0.5, 0.5, 0.5]], dtype=torch.float64)
    out = reference.hash_encode(x, table, n_min=1, n_max=3)
    level0 = table[0, :8].mean(0)  # N=1: the one cell's 8 corners are rows 0..7 (side 2)
    # N=3: pos 1.5 -> cell 1..2 in each dim; the centre averages the 8 rows around it.
    rows = [(1 + dx) + (1 + dy) * 4 + (1 + dz) * 16 for dx in (0, 1) for dy in (0, 1) for dz in (0, 1)]
    assert out.shape == (1, 4)
    torch.testing.assert_close(out[0, :2], level0)
    torch.testing.assert_close(out[0, 2:], table[1, rows].mean(0))
    assert not torch.allclose(out[0, 2:], table[1, rows[0]])  # the blend is not one vertex


# ---- every fast backend against the reference -------------------------------------------------


@st.composite
def problems(draw, max_points):
    n_levels = draw(st.integers(1, 4), label="L")
    features = draw(st.sampled_from([1, 2, 3, 4, 8]), label="F")
    log2_t = draw(st.integers(3, 12), label="log2 T")
    n_min = draw(st.integers(1, 8), label="n_min")
    n_max = draw(st.integers(n_min, 64), label="n_max")
    n_points = draw(st.integers(0, max_points), label="N")
    dtype = draw(st.sampled_from([torch.float32, torch.float64]), label="dtype")
    seed = draw(st.integers(0, 2**31 - 1), label="seed")
    strided = draw(st.booleans(), label="non-contiguous x")
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n_points, 3, generator=g, dtype=torch.float64)
    resolutions = reference.level_resolutions(n_levels, n_min, n_max)
    # A third of the coordinates sit on a vertex of some level, a few on 0, 1 or outside [0, 1].
    special = torch.rand(n_points, 3, generator=g)
    res = torch.tensor(resolutions, dtype=torch.float64)[torch.randint(0, n_levels, (n_points, 3), generator=g)]
    on_vertex = torch.floor(torch.rand(n_points, 3, generator=g, dtype=torch.float64) * (res + 1)) / res
    x = torch.where(special < 0.33, on_vertex, x)
    edges = torch.tensor([0.0, 1.0, -0.25, 1.5], dtype=torch.float64)
    x = torch.where(special > 0.9, edges[torch.randint(0, 4, (n_points, 3), generator=g)], x)
    table = torch.randn(n_levels, 2**log2_t, features, generator=g, dtype=torch.float64)
    return dict(x=x.to(dtype), table=table.to(dtype), n_min=n_min, n_max=n_max, strided=strided, seed=seed)


@pytest.mark.parametrize("device,backend", backend_params())
@given(data=st.data())
def test_matches_reference(device, backend, data):
    p = data.draw(problems(12 if interpreted(device, backend) else 300), label="problem")
    x, table = p["x"].to(device), p["table"].to(device)
    if p["strided"]:
        x = non_contiguous(x)
    x_fast, t_fast = x.clone().requires_grad_(), table.clone().requires_grad_()
    x_ref, t_ref = p["x"].clone().requires_grad_(), p["table"].clone().requires_grad_()
    fast = hash_encode(x_fast, t_fast, n_min=p["n_min"], n_max=p["n_max"], backend=backend)
    # Same dtype on both sides: float32 rounding of x * N_l picks the cell, identically everywhere.
    ref = reference.hash_encode(x_ref, t_ref, n_min=p["n_min"], n_max=p["n_max"])
    assert fast.shape == ref.shape and fast.dtype == ref.dtype
    tol = dict(rtol=1e-5, atol=1e-5) if x.dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)
    assert_close(fast.detach().cpu(), ref.detach(), what=f"{backend} out", **tol)

    cotangents = random_cotangents([ref], torch.Generator().manual_seed(p["seed"] + 1))
    grads_fast = vjp([fast], [x_fast, t_fast], [c.to(device) for c in cotangents])
    grads_ref = vjp([ref], [x_ref, t_ref], cotangents)
    for name, a, e in zip(("grad x", "grad table"), grads_fast, grads_ref):
        scale = max(1.0, float(e.abs().max())) if e.numel() else 1.0
        rtol = 1e-4 if x.dtype == torch.float32 else 1e-9
        assert_close(a.cpu(), e, what=f"{backend} {name}", rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("backend", ALL_CPU)
def test_dense_vertex_is_the_table_row_on_every_backend(backend):
    _skip_unless_available(backend)
    # n_min=2, n_max=6, L=3: N = 2, 3, 6 (all dense in T = 512). x = k/6 is a vertex of level 2.
    table = torch.randn(3, 512, 2)
    k = torch.tensor([[0, 6, 3], [1, 2, 5], [6, 6, 6], [0, 0, 0]])
    x = k.float() / 6
    out = hash_encode(x, table, n_min=2, n_max=6, backend=backend)
    assert reference.level_resolutions(3, 2, 6)[2] == 6
    rows = k[:, 0] + k[:, 1] * 7 + k[:, 2] * 49
    torch.testing.assert_close(out[:, 4:6], table[2, rows], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("backend", ALL_CPU)
def test_outside_unit_cube_is_clamped_with_zero_gradient(backend):
    _skip_unless_available(backend)
    table = torch.randn(2, 256, 2, dtype=torch.float64)
    x = torch.tensor([[-0.5, 0.3, 1.7], [0.2, 1.0, 0.0], [2.0, -1.0, 0.61]], dtype=torch.float64, requires_grad=True)
    out = hash_encode(x, table, n_min=3, n_max=9, backend=backend)
    clamped = hash_encode(x.detach().clamp(0, 1), table, n_min=3, n_max=9, backend=backend)
    torch.testing.assert_close(out.detach(), clamped)
    (grad_x,) = torch.autograd.grad(out.sum() + 0 * out.pow(2).sum(), x)
    outside = (x < 0) | (x > 1)
    assert torch.all(grad_x[outside] == 0)
    assert torch.all(grad_x[~outside] != 0)  # 0 and 1 themselves still pass the gradient


@pytest.mark.parametrize("backend", ALL_CPU)
def test_x_equal_one_uses_the_last_cell(backend):
    _skip_unless_available(backend)
    # Dense level N=4 with T = 128 (125 rows used): x = 1 must read vertex 4, never row 5 or beyond.
    table = torch.randn(1, 128, 1, dtype=torch.float64)
    table[0, 125:] = float("nan")  # a stray read past the dense grid would poison the output
    x = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.5]], dtype=torch.float64, requires_grad=True)
    out = hash_encode(x, table, n_min=4, n_max=4, backend=backend)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0], table[0, 4 + 4 * 5 + 4 * 25])
    # The x gradient at x = 1 is the one-sided derivative of the last cell (3..4).
    (grad_x,) = torch.autograd.grad(out[0].sum(), x)
    dx = 4 * (table[0, 124] - table[0, 123])  # vertex (4,4,4) minus (3,4,4), times N
    torch.testing.assert_close(grad_x[0, 0], dx[0])


# ---- gradients ---------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ALL_CPU)
def test_gradcheck_float64(backend):
    _skip_unless_available(backend)
    g = torch.Generator().manual_seed(5)
    # Keep x off cell boundaries (finite differences across a kink are not a derivative).
    x = (torch.rand(6, 3, generator=g, dtype=torch.float64) * 0.9 + 0.05).requires_grad_()
    table = torch.randn(3, 64, 2, generator=g, dtype=torch.float64, requires_grad=True)  # N=2 dense, 4 and 8 hashed

    def f(x, table):
        return hash_encode(x, table, n_min=2, n_max=8, backend=backend)

    assert torch.autograd.gradcheck(f, (x, table), eps=1e-7, atol=1e-6)


@pytest.mark.parametrize("backend", ["cpp"])
def test_cpu_table_gradient_is_deterministic(backend):
    _skip_unless_available(backend)
    x = torch.rand(20000, 3)
    table = torch.randn(4, 2**10, 2, requires_grad=True)
    grads = []
    for _ in range(2):
        out = hash_encode(x, table, n_min=4, n_max=200, backend=backend)
        grads.append(torch.autograd.grad(out, table, torch.ones_like(out))[0])
    assert torch.equal(grads[0], grads[1])


@pytest.mark.parametrize("device,backend", backend_params())
def test_x_without_grad_gets_none(device, backend):
    x = torch.rand(9, 3, device=device)
    table = torch.randn(2, 64, 2, device=device, requires_grad=True)
    out = hash_encode(x, table, n_min=2, n_max=8, backend=backend)
    cotangent = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(device)
    out.backward(cotangent)
    assert x.grad is None
    table_ref = table.detach().cpu().double().requires_grad_()
    reference.hash_encode(x.cpu().double(), table_ref, n_min=2, n_max=8).backward(cotangent.cpu().double())
    assert_close(table.grad.cpu().double(), table_ref.grad, what=f"{backend} grad table", rtol=1e-5, atol=1e-6)


# ---- registration: opcheck and torch.compile ---------------------------------------------------


@pytest.mark.parametrize("device,backend", backend_params())
def test_opcheck(device, backend):
    op = torch.ops.fastnerf.hash_encode_triton if backend == "triton" else torch.ops.fastnerf.hash_encode
    x = torch.rand(7, 3, device=device, requires_grad=True)
    table = torch.randn(2, 32, 2, device=device, requires_grad=True)
    torch.library.opcheck(op.default, (x, table, reference.level_resolutions(2, 2, 5)))


@pytest.mark.parametrize("device,backend", [p for p in backend_params() if p.values[1] != "triton"])
def test_compiles_without_graph_break(device, backend):
    x = torch.rand(7, 3, device=device)
    table = torch.randn(2, 32, 2, device=device)

    def field(x, table):
        return hash_encode(x.clamp(0, 1), table, n_min=2, n_max=5, backend=backend).relu()

    compiled = torch.compile(field, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x, table), field(x, table))


# ---- bad input: a clear ValueError before any kernel runs --------------------------------------


def _good():
    return dict(x=torch.rand(5, 3), table=torch.randn(2, 64, 2), n_min=2, n_max=8)


BAD = {
    "x not a tensor": (dict(x=[[0.1, 0.2, 0.3]]), "x"),
    "x [N,2]": (dict(x=torch.rand(5, 2)), "x"),
    "x 1-d": (dict(x=torch.rand(3)), "x"),
    "x int": (dict(x=torch.ones(5, 3, dtype=torch.int64)), "x"),
    "x float64, table float32": (dict(x=torch.rand(5, 3, dtype=torch.float64)), "x"),
    "table 2-d": (dict(table=torch.randn(64, 2)), "table"),
    "table T not a power of two": (dict(table=torch.randn(2, 48, 2)), "table"),
    "table float16": (dict(table=torch.randn(2, 64, 2).half()), "table"),
    "table no levels": (dict(table=torch.randn(0, 64, 2)), "table"),
    "table no features": (dict(table=torch.randn(2, 64, 0)), "table"),
    "n_min > n_max": (dict(n_min=9, n_max=8), "n_min"),
    "n_min 0": (dict(n_min=0), "n_min"),
    "n_max huge": (dict(n_max=2**30), "n_max"),
    "n_max not a number": (dict(n_max="8"), "n_max"),
}


@pytest.mark.parametrize("backend", ALL_CPU)
@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_names_the_argument(backend, case):
    _skip_unless_available(backend)
    change, name = BAD[case]
    with pytest.raises(ValueError, match=name):
        hash_encode(**{**_good(), **change}, backend=backend)


@pytest.mark.gpu
def test_mixed_devices_rejected():
    with pytest.raises(ValueError, match="table must be on"):
        hash_encode(torch.rand(5, 3, device="cuda"), torch.randn(2, 64, 2), n_min=2, n_max=8)


def test_native_op_checks_its_arguments_itself():
    _skip_unless_available("cpp")
    x, table = torch.rand(5, 3), torch.randn(2, 64, 2)
    with pytest.raises(RuntimeError, match="resolutions"):
        torch.ops.fastnerf.hash_encode(x, table, [4])  # one resolution for two levels
    with pytest.raises(RuntimeError, match="resolutions"):
        torch.ops.fastnerf.hash_encode(x, table, [4, 0])
    with pytest.raises(RuntimeError, match="power of two"):
        torch.ops.fastnerf.hash_encode(x, torch.randn(2, 48, 2), [4, 8])
    assert math.isfinite(float(torch.ops.fastnerf.hash_encode(x, table, [4, 8]).sum()))


def test_double_backward_torch_only():
    g = torch.Generator().manual_seed(9)
    x = (torch.rand(4, 3, generator=g, dtype=torch.float64) * 0.9 + 0.05).requires_grad_()
    table = torch.randn(2, 64, 2, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda x, t: hash_encode(x, t, n_min=2, n_max=8, backend="torch"), (x, table))
    for backend in [b for b in fastnerf.backends.available("cpu") if b != "torch"]:
        out = hash_encode(x, table, n_min=2, n_max=8, backend=backend)
        with pytest.raises(RuntimeError, match="double backward"):
            torch.autograd.grad(out.sum(), x, create_graph=True)


# ---- the CPU kernels' blocks, prefetch path, threads and skipped gradients (issue 15) -------------


@pytest.mark.parametrize("features", [2, 3])
def test_cpp_blocks_and_large_tables_match_the_reference(features):
    # 700 points: two full 256-point blocks and a partial one. T = 2^17 rows of F floats is over
    # 512 KB per level, so the kernels take their prefetching path; N = 16 and 35 are dense, 80
    # is hashed. Outside-range and on-vertex coordinates are mixed in.
    _skip_unless_available("cpp")
    g = torch.Generator().manual_seed(15)
    x = torch.rand(700, 3, generator=g)
    x[::7, 0] = -0.2
    x[::11, 1] = 1.3
    x[::13, 2] = torch.floor(x[::13, 2] * 40) / 40
    table = torch.randn(3, 2**17, features, generator=g)
    fast_x, fast_t = x.clone().requires_grad_(), table.clone().requires_grad_()
    ref_x, ref_t = x.clone().requires_grad_(), table.clone().requires_grad_()
    fast = hash_encode(fast_x, fast_t, n_min=16, n_max=80, backend="cpp")
    ref = reference.hash_encode(ref_x, ref_t, n_min=16, n_max=80)
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
    cotangent = torch.randn(ref.shape, generator=g)
    for got, want in zip(torch.autograd.grad(fast, (fast_x, fast_t), cotangent),
                         torch.autograd.grad(ref, (ref_x, ref_t), cotangent)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * max(1.0, float(want.abs().max())))


def test_cpp_results_do_not_depend_on_the_thread_count():
    # The forward and x gradient split points, the table gradient splits levels between threads:
    # every sum keeps its order, so 1 and 2 threads give the same bits.
    _skip_unless_available("cpp")
    g = torch.Generator().manual_seed(16)
    x = torch.rand(3000, 3, generator=g)
    table = torch.randn(5, 2**12, 2, generator=g)
    cotangent = torch.randn(3000, 10, generator=g)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            x_g, t_g = x.clone().requires_grad_(), table.clone().requires_grad_()
            out = hash_encode(x_g, t_g, n_min=4, n_max=300, backend="cpp")
            results.append((out.detach(), *torch.autograd.grad(out, (x_g, t_g), cotangent)))
    finally:
        torch.set_num_threads(before)
    for one, two in zip(*results):
        assert torch.equal(one, two)
    assert results[0][2].abs().sum() > 0 and results[0][1].abs().sum() > 0


def test_cpp_frozen_table_gets_no_table_gradient():
    # A frozen table (a student's backbone): only x's gradient is computed, and it is the one
    # the full backward gives.
    _skip_unless_available("cpp")
    g = torch.Generator().manual_seed(17)
    x = (torch.rand(50, 3, generator=g, dtype=torch.float64) * 0.9 + 0.05).requires_grad_()
    table = torch.randn(3, 64, 2, generator=g, dtype=torch.float64)
    out = hash_encode(x, table, n_min=2, n_max=8, backend="cpp")
    (grad_x,) = torch.autograd.grad(out.square().sum(), x)
    ref_x = x.detach().clone().requires_grad_()
    (want,) = torch.autograd.grad(reference.hash_encode(ref_x, table, n_min=2, n_max=8).square().sum(), ref_x)
    torch.testing.assert_close(grad_x, want, rtol=1e-9, atol=1e-9)

    grad_out = torch.randn(out.shape, generator=g, dtype=torch.float64)
    resolutions = reference.level_resolutions(3, 2, 8)
    op = torch.ops.fastnerf.hash_encode_bwd
    gx_skip, gt_skip = op(grad_out, x.detach(), table, resolutions, True, False)
    gx_full, gt_full = op(grad_out, x.detach(), table, resolutions, True, True)
    assert gt_skip.numel() == 0 and gt_full.shape == table.shape and gt_full.abs().sum() > 0
    assert torch.equal(gx_skip, gx_full)
    torch.library.opcheck(op.default, (grad_out, x.detach(), table, resolutions, True, False))
