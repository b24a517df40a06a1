"""fastnerf.ops.sh_encode: real spherical harmonics of view directions, on every backend.

Backends: "torch" (fastnerf.reference.sh_encode, autograd by PyTorch), "cpp" and "cuda"
(torch.ops.fastnerf.sh_encode in fastnerf._C), "triton" (torch.ops.fastnerf.sh_encode_triton,
kernels in fastnerf.kernels.sh_encode). The native and Triton ops share one fake kernel and one
autograd formula, so they work under torch.compile and pass torch.library.opcheck.
"""

import torch

from .. import _native, backends
from ..reference import sh_encode as reference
from . import _validate


def sh_encode(
    directions: torch.Tensor,  # [N, 3] float32/float64, unit vectors
    degree: int = 4,
    *,
    backend: str = None,
) -> torch.Tensor:  # [N, degree^2]
    """The real spherical harmonics of bands 0..degree-1 of each direction (degree in 1..4), in
    tiny-cuda-nn's constants, signs and order (fastnerf.reference.sh_encode is the spec).

    Differentiable in directions (any order on the torch backend; first order on the others).

    Example:
        >>> import torch
        >>> from fastnerf.ops import sh_encode
        >>> d = torch.tensor([[0.36, 0.48, 0.8]])   # a unit direction
        >>> [round(v, 4) for v in sh_encode(d, 2)[0].tolist()]   # C0, -C1 y, C1 z, -C1 x
        [0.2821, -0.2345, 0.3909, -0.1759]
    """
    _validate.tensor(directions, "directions", dims=2, dtypes=_validate.FLOAT_DTYPES)
    _validate.size(directions, "directions", 1, 3, "x, y, z per direction")
    _validate.positive_int(degree, "degree", minimum=1, maximum=reference.MAX_DEGREE)
    name = backends.select(directions.device, backend)
    if name == "torch":
        return reference.sh_encode(directions, degree)
    op = torch.ops.fastnerf.sh_encode_triton if name == "triton" else torch.ops.fastnerf.sh_encode
    return op(directions, degree)


# ---- fake kernels and autograd, shared by the native and Triton ops ---------------------------


def _fake_forward(directions, degree):
    return directions.new_empty(directions.shape[0], degree * degree)


def _fake_backward(grad_out, directions, degree):
    return directions.new_empty(directions.shape)


def _setup_context(ctx, inputs, output):
    directions, degree = inputs
    ctx.degree = degree
    ctx.save_for_backward(directions)


def _refuse_double_backward():
    # Grad mode is on inside backward only under create_graph=True: the backward op has no
    # derivative of its own, and PyTorch would silently drop the second-order terms.
    if torch.is_grad_enabled() and not torch.compiler.is_compiling():
        raise RuntimeError(
            "sh_encode: double backward (create_graph=True) is only supported by backend='torch'"
        )


def _autograd_with(backward_op):
    # First order only: the backward ops are not themselves differentiable.
    def backward(ctx, grad_out):
        _refuse_double_backward()
        (directions,) = ctx.saved_tensors
        return backward_op(grad_out.contiguous(), directions, ctx.degree), None

    return backward


@_native.on_load
def _register_native():
    if not hasattr(torch.ops.fastnerf, "sh_encode"):  # a fastnerf._C built before this op: rebuild
        return
    torch.library.register_fake("fastnerf::sh_encode")(_fake_forward)
    torch.library.register_fake("fastnerf::sh_encode_bwd")(_fake_backward)
    torch.library.register_autograd(
        "fastnerf::sh_encode", _autograd_with(torch.ops.fastnerf.sh_encode_bwd), setup_context=_setup_context
    )


# The Triton backend as Python custom ops; triton itself is imported on first call only.
@torch.library.custom_op("fastnerf::sh_encode_triton", mutates_args=())
def _sh_encode_triton(directions: torch.Tensor, degree: int) -> torch.Tensor:
    from ..kernels import sh_encode as kernels

    return kernels.sh_encode_forward(directions, degree)


@torch.library.custom_op("fastnerf::sh_encode_triton_bwd", mutates_args=())
def _sh_encode_triton_bwd(grad_out: torch.Tensor, directions: torch.Tensor, degree: int) -> torch.Tensor:
    from ..kernels import sh_encode as kernels

    return kernels.sh_encode_backward(grad_out, directions, degree)


_sh_encode_triton.register_fake(_fake_forward)
_sh_encode_triton_bwd.register_fake(_fake_backward)
_sh_encode_triton.register_autograd(_autograd_with(_sh_encode_triton_bwd), setup_context=_setup_context)
