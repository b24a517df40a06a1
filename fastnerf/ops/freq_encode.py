"""fastnerf.ops.freq_encode: the NeRF frequency (positional) encoding, on every backend.

Backends: "torch" (fastnerf.reference.freq_encode, autograd by PyTorch), "cpp" and "cuda"
(torch.ops.fastnerf.freq_encode in fastnerf._C), "triton" (torch.ops.fastnerf.freq_encode_triton,
kernels in fastnerf.kernels.freq_encode). The native and Triton ops share one fake kernel and one
autograd formula, so they work under torch.compile and pass torch.library.opcheck.
"""

import torch

from .. import _native, backends
from ..reference import freq_encode as reference
from . import _validate

MAX_FREQS = 32  # 2^31 x: beyond this sin/cos of float inputs are noise


def freq_encode(
    x: torch.Tensor,  # [N, D] float32/float64
    n_freqs: int,
    *,
    include_input: bool = True,
    backend: str = None,
) -> torch.Tensor:  # [N, D * (include_input + 2 * n_freqs)]
    """[x, sin(2^0 x), cos(2^0 x), ..., sin(2^(n-1) x), cos(2^(n-1) x)], each block D wide.

    Differentiable in x (any order on the torch backend; first order on the others).

    Example:
        >>> import torch
        >>> from fastnerf.ops import freq_encode
        >>> [round(v, 4) for v in freq_encode(torch.tensor([[0.5]]), 2)[0].tolist()]   # x, sin x, cos x, sin 2x, cos 2x
        [0.5, 0.4794, 0.8776, 0.8415, 0.5403]
    """
    _validate.tensor(x, "x", dims=2, dtypes=_validate.FLOAT_DTYPES)
    _validate.positive_int(n_freqs, "n_freqs", minimum=0, maximum=MAX_FREQS)
    if not isinstance(include_input, bool):
        raise ValueError(f"include_input must be a bool, got {type(include_input).__name__}")
    if n_freqs == 0 and not include_input:
        raise ValueError("n_freqs must be >= 1 when include_input is False (the output would be empty)")
    name = backends.select(x.device, backend)
    if name == "torch":
        return reference.freq_encode(x, n_freqs, include_input=include_input)
    op = torch.ops.fastnerf.freq_encode_triton if name == "triton" else torch.ops.fastnerf.freq_encode
    return op(x, n_freqs, include_input)


# ---- fake kernels and autograd, shared by the native and Triton ops ---------------------------


def _fake_forward(x, n_freqs, include_input):
    return x.new_empty(x.shape[0], x.shape[1] * (int(include_input) + 2 * n_freqs))


def _fake_backward(grad_out, x, n_freqs, include_input):
    return x.new_empty(x.shape)


def _setup_context(ctx, inputs, output):
    x, n_freqs, include_input = inputs
    ctx.n_freqs, ctx.include_input = n_freqs, include_input
    ctx.save_for_backward(x)


def _refuse_double_backward():
    # Grad mode is on inside backward only under create_graph=True: the backward op has no
    # derivative of its own, and PyTorch would silently drop the second-order terms.
    if torch.is_grad_enabled() and not torch.compiler.is_compiling():
        raise RuntimeError(
            "freq_encode: double backward (create_graph=True, e.g. an eikonal loss trained through the "
            "encoding) is only supported by backend='torch'"
        )


def _autograd_with(backward_op):
    # First order only: the backward ops are not themselves differentiable.
    def backward(ctx, grad_out):
        _refuse_double_backward()
        (x,) = ctx.saved_tensors
        return backward_op(grad_out.contiguous(), x, ctx.n_freqs, ctx.include_input), None, None

    return backward


@_native.on_load
def _register_native():
    torch.library.register_fake("fastnerf::freq_encode")(_fake_forward)
    torch.library.register_fake("fastnerf::freq_encode_bwd")(_fake_backward)
    torch.library.register_autograd(
        "fastnerf::freq_encode", _autograd_with(torch.ops.fastnerf.freq_encode_bwd), setup_context=_setup_context
    )


# The Triton backend as Python custom ops; triton itself is imported on first call only.
@torch.library.custom_op("fastnerf::freq_encode_triton", mutates_args=())
def _freq_encode_triton(x: torch.Tensor, n_freqs: int, include_input: bool) -> torch.Tensor:
    from ..kernels import freq_encode as kernels

    return kernels.freq_encode_forward(x, n_freqs, include_input)


@torch.library.custom_op("fastnerf::freq_encode_triton_bwd", mutates_args=())
def _freq_encode_triton_bwd(grad_out: torch.Tensor, x: torch.Tensor, n_freqs: int, include_input: bool) -> torch.Tensor:
    from ..kernels import freq_encode as kernels

    return kernels.freq_encode_backward(grad_out, x, n_freqs, include_input)


_freq_encode_triton.register_fake(_fake_forward)
_freq_encode_triton_bwd.register_fake(_fake_backward)
_freq_encode_triton.register_autograd(_autograd_with(_freq_encode_triton_bwd), setup_context=_setup_context)
