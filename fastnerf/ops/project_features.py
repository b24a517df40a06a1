"""fastnerf.ops.project_features: project world points into source views and sample their
feature maps bilinearly (PixelNeRF's per-point image features), on every backend.

Backends: "torch" (fastnerf.reference.project_features: grid_sample, autograd by PyTorch, also
in points and cameras), "cpp" and "cuda" (torch.ops.fastnerf.project_features in fastnerf._C),
"triton" (torch.ops.fastnerf.project_features_triton, float32; kernels in
fastnerf.kernels.project_features). The fast backends are differentiable in ``features``;
gradients for points or cameras need the "torch" backend, and asking for them on another
backend is an error rather than a silent zero.
"""

import torch

from .. import _native, backends
from ..reference import project_features as reference
from . import _validate


def project_features(
    points: torch.Tensor,  # [S, 3] world
    c2w: torch.Tensor,  # [V, 4, 4] camera-to-world (OpenGL: looking along -Z, +Y up)
    intrinsics: torch.Tensor,  # [V, 4] (fx, fy, cx, cy) in feature-map pixels
    features: torch.Tensor,  # [V, C, h, w] any strides (channels-last reads fastest)
    *,
    backend: str = None,
) -> torch.Tensor:
    """Features ``[V, S, C]`` of each point in each view: bilinear (texel centres at i + 0.5,
    ``grid_sample(align_corners=False)``), zero outside the map and for points at or behind the
    camera. Intrinsics are in feature-map pixels: scale image intrinsics by ``w / W``, ``h / H``.
    Contract: fastnerf/reference/project_features.py.

    Example:
        >>> import torch
        >>> from fastnerf.ops import project_features
        >>> c2w = torch.eye(4)[None]
        >>> c2w[0, 2, 3] = 2.0                              # a camera at z = 2 looking down -Z
        >>> intrinsics = torch.tensor([[4.0, 4.0, 2.0, 2.0]])    # fx, fy, cx, cy on a 4x4 map
        >>> features = torch.arange(16.0).reshape(1, 1, 4, 4)
        >>> points = torch.tensor([[0.0, 0, 0], [0.0, 0, 3]])   # the centre of the view; behind it
        >>> project_features(points, c2w, intrinsics, features).flatten().tolist()
        [7.5, 0.0]
    """
    _validate.tensor(points, "points", dims=2, dtypes=_validate.FLOAT_DTYPES)
    device = points.device
    _validate.tensor(c2w, "c2w", dims=3, device=device)
    _validate.tensor(intrinsics, "intrinsics", dims=2, device=device)
    _validate.tensor(features, "features", dims=4, device=device)
    _validate.same_dtype(points, "points", c2w=c2w, intrinsics=intrinsics, features=features)
    _validate.size(points, "points", 1, 3, "x, y, z")
    n_views = features.shape[0]
    if tuple(c2w.shape[1:]) != (4, 4):
        raise ValueError(f"c2w must have shape [V, 4, 4], got {tuple(c2w.shape)}")
    _validate.size(c2w, "c2w", 0, n_views, "one camera per feature map")
    _validate.size(intrinsics, "intrinsics", 0, n_views, "one camera per feature map")
    _validate.size(intrinsics, "intrinsics", 1, 4, "(fx, fy, cx, cy)")

    name = backends.select(device, backend)
    if name == "torch":
        return reference.project_features(points, c2w, intrinsics, features)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (points, c2w, intrinsics)):
        raise ValueError(f"project_features: the {name} backend is differentiable in features only; "
                         "use backend='torch' for gradients in points, c2w or intrinsics")
    if name == "triton":
        if points.dtype != torch.float32:
            raise ValueError(f"project_features: the triton backend takes float32, got {points.dtype}")
        return torch.ops.fastnerf.project_features_triton(points, c2w, intrinsics, features)
    return torch.ops.fastnerf.project_features(points, c2w, intrinsics, features)


def _fake_forward(points, c2w, intrinsics, features):
    return features.new_empty(features.shape[0], points.shape[0], features.shape[1])


def _fake_backward(grad_out, points, c2w, intrinsics, features):
    return torch.empty_like(features)


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _backward(ctx, grad_out):
    points, c2w, intrinsics, features = ctx.saved_tensors
    grad_features = torch.ops.fastnerf.project_features_bwd(grad_out.contiguous(), points, c2w, intrinsics, features)
    return None, None, None, grad_features


@_native.on_load
def _register_native():
    torch.library.register_fake("fastnerf::project_features")(_fake_forward)
    torch.library.register_fake("fastnerf::project_features_bwd")(_fake_backward)
    torch.library.register_autograd("fastnerf::project_features", _backward, setup_context=_setup_context)


# The Triton backend as Python custom ops; triton itself is imported on first call only.
@torch.library.custom_op("fastnerf::project_features_triton", mutates_args=())
def _project_features_triton(points: torch.Tensor, c2w: torch.Tensor, intrinsics: torch.Tensor,
                             features: torch.Tensor) -> torch.Tensor:
    from ..kernels import project_features as kernels

    return kernels.project_features_forward(points, c2w, intrinsics, features)


@torch.library.custom_op("fastnerf::project_features_triton_bwd", mutates_args=())
def _project_features_triton_bwd(grad_out: torch.Tensor, points: torch.Tensor, c2w: torch.Tensor,
                                 intrinsics: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    from ..kernels import project_features as kernels

    return kernels.project_features_backward(grad_out, points, c2w, intrinsics, features)


def _backward_triton(ctx, grad_out):
    points, c2w, intrinsics, features = ctx.saved_tensors
    return None, None, None, _project_features_triton_bwd(grad_out, points, c2w, intrinsics, features)


_project_features_triton.register_fake(_fake_forward)
_project_features_triton_bwd.register_fake(_fake_backward)
_project_features_triton.register_autograd(_backward_triton, setup_context=_setup_context)
