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
    """
    _validate.tensor(x, "x", dims=2, dtypes=_validate.FLOAT_DTYPES)
    _validate.positive_int(n_freqs, "n_freqs", minimum=0, maximum=MAX_FREQS)
    if not isinstance(include_input, bool):
        raise ValueError(f"include_input must be a bool, got {type(include_input).__name__}")
    if n_freqs == 0 and not include_input:
        raise ValueError("n_freqs must be >= 1 when include_input is False (the output would be empty)")
    name = backends.select(x.device, backend)
    if not hasattr(torch.ops.fastnerf, "freq_encode"):  # TEMPORARY until the kernels land
        name = "torch"
    if name == "torch":
        return reference.freq_encode(x, n_freqs, include_input=include_input)
    op = torch.ops.fastnerf.freq_encode_triton if name == "triton" else torch.ops.fastnerf.freq_encode
    return op(x, n_freqs, include_input)
