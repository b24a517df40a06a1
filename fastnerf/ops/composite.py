"""fastnerf.ops.composite: volume compositing of packed samples, on every backend.

Backends: "torch" (fastnerf.reference.composite, autograd by PyTorch), "cpp" and "cuda"
(torch.ops.fastnerf.composite in fastnerf._C), "triton" (torch.ops.fastnerf.composite_triton,
kernels in fastnerf.kernels.composite). The native and Triton ops share one fake kernel and one
autograd formula, so they work under torch.compile and pass torch.library.opcheck.
"""

from typing import NamedTuple

import torch

from .. import _native, backends
from ..reference import composite as reference
from . import _validate


class CompositeResult(NamedTuple):
    out: torch.Tensor  # [N, C]
    opacity: torch.Tensor  # [N]
    depth: torch.Tensor  # [N]
    weights: torch.Tensor  # [S]


def composite(
    sigmas: torch.Tensor,  # [S] density >= 0
    values: torch.Tensor,  # [S, C] colour (C=3) or features (any C)
    t_starts: torch.Tensor,  # [S]
    t_ends: torch.Tensor,  # [S]
    packed_info: torch.Tensor,  # [N, 2] int32/int64 (start, count): ray r owns samples start..start+count-1
    *,
    backend: str = None,
) -> CompositeResult:
    """Composite each ray's samples front to back.

    alpha_i = 1 - exp(-sigma_i (t_end_i - t_start_i)), T_i = prod_{j<i} (1 - alpha_j), w_i = T_i alpha_i;
    out = sum w_i values_i, opacity = sum w_i, depth = sum w_i (t_start_i + t_end_i) / 2.
    Differentiable in `sigmas` and `values` through all four outputs. The background is the
    caller's: `out + (1 - opacity[:, None]) * background`.

    Example:
        >>> import torch
        >>> from fastnerf.ops import composite
        >>> sigmas = torch.tensor([1.0, 2.0, 0.5])        # ray 0: samples 0 and 1; ray 1: sample 2
        >>> values = torch.eye(3)                          # a colour per sample: red, green, blue
        >>> t_starts, t_ends = torch.tensor([0.0, 0.5, 0.0]), torch.tensor([0.5, 1.0, 1.0])
        >>> packed_info = torch.tensor([[0, 2], [2, 1], [3, 0]])   # ray 2 has no samples
        >>> out, opacity, depth, weights = composite(sigmas, values, t_starts, t_ends, packed_info)
        >>> [round(v, 4) for v in opacity.tolist()]
        [0.7769, 0.3935, 0.0]
        >>> [round(v, 4) for v in out[0].tolist()]       # mostly red, then green behind it
        [0.3935, 0.3834, 0.0]
    """
    _validate.tensor(sigmas, "sigmas", dims=1, dtypes=_validate.FLOAT_DTYPES)
    device, n_samples = sigmas.device, sigmas.shape[0]
    _validate.tensor(values, "values", dims=2, device=device)
    _validate.tensor(t_starts, "t_starts", dims=1, device=device)
    _validate.tensor(t_ends, "t_ends", dims=1, device=device)
    _validate.same_dtype(sigmas, "sigmas", values=values, t_starts=t_starts, t_ends=t_ends)
    _validate.size(values, "values", 0, n_samples, "one row per sample, like sigmas")
    _validate.size(t_starts, "t_starts", 0, n_samples, "one per sample, like sigmas")
    _validate.size(t_ends, "t_ends", 0, n_samples, "one per sample, like sigmas")
    _validate.packed_info(packed_info, n_samples, device=device)

    name = backends.select(device, backend)
    if name == "torch":
        return CompositeResult(*reference.composite(sigmas, values, t_starts, t_ends, packed_info))
    op = torch.ops.fastnerf.composite_triton if name == "triton" else torch.ops.fastnerf.composite
    return CompositeResult(*op(sigmas, values, t_starts, t_ends, packed_info))


# ---- fake kernels and autograd, shared by the native and Triton ops ---------------------------


def _fake_forward(sigmas, values, t_starts, t_ends, packed_info):
    n_rays, channels = packed_info.shape[0], values.shape[1]
    return (
        values.new_empty(n_rays, channels),
        sigmas.new_empty(n_rays),
        sigmas.new_empty(n_rays),
        sigmas.new_empty(sigmas.shape[0]),
    )


def _fake_backward(grad_out, grad_opacity, grad_depth, grad_weights, sigmas, values, *rest):
    return sigmas.new_empty(sigmas.shape[0]), values.new_empty(values.shape)


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs, *output)


def _autograd_with(backward_op):
    def backward(ctx, grad_out, grad_opacity, grad_depth, grad_weights):
        saved = ctx.saved_tensors
        out, opacity, depth, weights = saved[5:]
        grads = [
            torch.zeros_like(o) if g is None else g.contiguous()
            for g, o in zip((grad_out, grad_opacity, grad_depth, grad_weights), (out, opacity, depth, weights))
        ]
        grad_sigmas, grad_values = backward_op(*grads, *saved)
        return grad_sigmas, grad_values, None, None, None

    return backward


@_native.on_load
def _register_native():
    torch.library.register_fake("fastnerf::composite")(_fake_forward)
    torch.library.register_fake("fastnerf::composite_bwd")(_fake_backward)
    torch.library.register_autograd(
        "fastnerf::composite",
        _autograd_with(torch.ops.fastnerf.composite_bwd),
        setup_context=_setup_context,
    )


# The Triton backend as Python custom ops; triton itself is imported on first call only.
@torch.library.custom_op("fastnerf::composite_triton", mutates_args=())
def _composite_triton(
    sigmas: torch.Tensor, values: torch.Tensor, t_starts: torch.Tensor, t_ends: torch.Tensor, packed_info: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    from ..kernels import composite as kernels

    return kernels.composite_forward(sigmas, values, t_starts, t_ends, packed_info)


@torch.library.custom_op("fastnerf::composite_triton_bwd", mutates_args=())
def _composite_triton_bwd(
    grad_out: torch.Tensor,
    grad_opacity: torch.Tensor,
    grad_depth: torch.Tensor,
    grad_weights: torch.Tensor,
    sigmas: torch.Tensor,
    values: torch.Tensor,
    t_starts: torch.Tensor,
    t_ends: torch.Tensor,
    packed_info: torch.Tensor,
    out: torch.Tensor,
    opacity: torch.Tensor,
    depth: torch.Tensor,
    weights: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    from ..kernels import composite as kernels

    return kernels.composite_backward(
        grad_out, grad_opacity, grad_depth, grad_weights, sigmas, values, t_starts, t_ends, packed_info,
        out, opacity, depth, weights,
    )


_composite_triton.register_fake(_fake_forward)
_composite_triton_bwd.register_fake(_fake_backward)
_composite_triton.register_autograd(_autograd_with(_composite_triton_bwd), setup_context=_setup_context)
