"""fastnerf.ops.hash_encode: the Instant-NGP multiresolution hash encoding, on every backend.

Backends: "torch" (fastnerf.reference.hash_encode, autograd by PyTorch), "cpp" and "cuda"
(torch.ops.fastnerf.hash_encode in fastnerf._C), "triton" (torch.ops.fastnerf.hash_encode_triton,
kernels in fastnerf.kernels.hash_encode). The level resolutions are computed once in Python
(reference.level_resolutions) and passed to every kernel as integers, so backends cannot
disagree by rounding. The exact corner rule and out-of-range behaviour are in
fastnerf/reference/hash_encode.py.
"""

import numbers

import torch

from .. import _native, backends
from ..reference import hash_encode as reference
from ..reference.hash_encode import level_resolutions
from . import _validate

MAX_LEVELS = 64  # the native kernels pass resolutions by value
MAX_RESOLUTION = 2**20  # keeps (N+1)^3 and the hash products inside int64
MAX_LOG2_TABLE_SIZE = 31


def hash_encode(
    x: torch.Tensor,  # [N, 3] positions in [0, 1]^3; outside is clamped (gradient 0 there)
    table: torch.Tensor,  # [L, T, F] features, T a power of two, same dtype as x
    *,
    n_min: float,
    n_max: float,
    backend: str = None,
) -> torch.Tensor:  # [N, L * F], level-major: column l * F + f
    """Multiresolution hash encoding (Instant-NGP); differentiable in `table` and `x`.

    N_l = floor(n_min * b^l) with b = exp((ln n_max - ln n_min) / (L - 1)) (`level_resolutions`).
    x outside [0, 1] is clamped; its gradient is 0 in a clamped coordinate. The x-gradient is
    first order on every backend; second order (create_graph=True) only on backend="torch",
    the others raise rather than drop terms.

    Example:
        >>> import torch
        >>> from fastnerf.ops import hash_encode
        >>> table = torch.zeros(2, 16, 2)                   # 2 levels of 16 entries, 2 features each
        >>> table[1] = 1.0                                  # level 1 is all ones
        >>> hash_encode(torch.tensor([[0.5, 0.5, 0.5]]), table, n_min=2, n_max=4).tolist()
        [[0.0, 0.0, 1.0, 1.0]]
    """
    resolutions = _validate_hash_inputs(x, table, n_min, n_max)
    name = backends.select(x.device, backend)
    if name == "torch":
        return reference.encode_levels(x, table, resolutions)
    op = torch.ops.fastnerf.hash_encode_triton if name == "triton" else torch.ops.fastnerf.hash_encode
    return op(x, table, resolutions)


def _validate_hash_inputs(x, table, n_min, n_max):
    _validate.tensor(x, "x", dims=2, dtypes=_validate.FLOAT_DTYPES)
    _validate.size(x, "x", 1, 3, "3-d positions")
    _validate.tensor(table, "table", dims=3, dtypes=_validate.FLOAT_DTYPES, device=x.device)
    n_levels, table_size, features = table.shape
    if not 1 <= n_levels <= MAX_LEVELS:
        raise ValueError(f"table.shape[0] (levels) must be in 1..{MAX_LEVELS}, got shape {tuple(table.shape)}")
    if not _validate.is_power_of_two(table_size) or table_size > 2**MAX_LOG2_TABLE_SIZE:
        raise ValueError(
            f"table.shape[1] (T) must be a power of two <= 2^{MAX_LOG2_TABLE_SIZE}, got shape {tuple(table.shape)}"
        )
    if features < 1:
        raise ValueError(f"table.shape[2] (features) must be >= 1, got shape {tuple(table.shape)}")
    if x.dtype != table.dtype:
        raise ValueError(f"x must have the dtype of table ({table.dtype}), got {x.dtype}")
    for name, value in (("n_min", n_min), ("n_max", n_max)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"{name} must be a number, got {type(value).__name__}")
        if not 1 <= value <= MAX_RESOLUTION:
            raise ValueError(f"{name} must be in [1, {MAX_RESOLUTION}], got {value}")
    if n_min > n_max:
        raise ValueError(f"n_min must be <= n_max, got n_min={n_min}, n_max={n_max}")
    return level_resolutions(n_levels, float(n_min), float(n_max))


# ---- fake kernels and autograd, shared by the native and Triton ops ---------------------------


def _fake_forward(x, table, resolutions):
    return table.new_empty(x.shape[0], table.shape[0] * table.shape[2])


def _fake_backward(grad_out, x, table, resolutions, x_requires_grad, table_requires_grad=True):
    # A table gradient that is not required is not computed: an empty [0] stands in for it.
    return x.new_empty(x.shape), table.new_empty(table.shape if table_requires_grad else (0,))


def _setup_context(ctx, inputs, output):
    x, table, resolutions = inputs
    ctx.resolutions = resolutions
    ctx.save_for_backward(x, table)


def _refuse_double_backward():
    # Grad mode is on inside backward only under create_graph=True: the backward op has no
    # derivative of its own, and PyTorch would silently drop the second-order terms.
    if torch.is_grad_enabled() and not torch.compiler.is_compiling():
        raise RuntimeError(
            "hash_encode: double backward (create_graph=True, e.g. an eikonal loss trained through the "
            "encoding) is only supported by backend='torch'"
        )


def _autograd_with(backward_op, *, skips_table=False):
    # First order only: the backward ops are not themselves differentiable (double backward,
    # e.g. an eikonal loss trained through the table, needs backend="torch"). skips_table: the op
    # takes table_requires_grad and leaves out the table gradient (a frozen table) when False.
    def backward(ctx, grad_out):
        _refuse_double_backward()
        x, table = ctx.saved_tensors
        x_needs, table_needs = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        flags = (x_needs, table_needs) if skips_table else (x_needs,)
        grad_x, grad_table = backward_op(grad_out.contiguous(), x, table, ctx.resolutions, *flags)
        return (grad_x if x_needs else None), (grad_table if table_needs else None), None

    return backward


@_native.on_load
def _register_native():
    torch.library.register_fake("fastnerf::hash_encode")(_fake_forward)
    torch.library.register_fake("fastnerf::hash_encode_bwd")(_fake_backward)
    torch.library.register_autograd(
        "fastnerf::hash_encode",
        _autograd_with(torch.ops.fastnerf.hash_encode_bwd, skips_table=True),
        setup_context=_setup_context,
    )


# The Triton backend as Python custom ops; triton itself is imported on first call only.
@torch.library.custom_op("fastnerf::hash_encode_triton", mutates_args=())
def _hash_encode_triton(x: torch.Tensor, table: torch.Tensor, resolutions: list[int]) -> torch.Tensor:
    from ..kernels import hash_encode as kernels

    return kernels.hash_encode_forward(x, table, resolutions)


@torch.library.custom_op("fastnerf::hash_encode_triton_bwd", mutates_args=())
def _hash_encode_triton_bwd(
    grad_out: torch.Tensor, x: torch.Tensor, table: torch.Tensor, resolutions: list[int], x_requires_grad: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    from ..kernels import hash_encode as kernels

    return kernels.hash_encode_backward(grad_out, x, table, resolutions, x_requires_grad)


_hash_encode_triton.register_fake(_fake_forward)
_hash_encode_triton_bwd.register_fake(_fake_backward)
_hash_encode_triton.register_autograd(_autograd_with(_hash_encode_triton_bwd), setup_context=_setup_context)
