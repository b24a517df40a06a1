"""Image quality metrics: PSNR, SSIM, and LPIPS where its weights are already on this machine.

Images are ``[H,W,3]`` or ``[B,H,W,3]`` float in [0, 1]; a batch gives the mean over its images.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
# torchvision's AlexNet weights, which the `lpips` package loads on top of its own linear layers.
LPIPS_BACKBONE_FILE = "alexnet-owt-7be5be79.pth"


class MetricUnavailable(RuntimeError):
    """The metric cannot be computed here (e.g. LPIPS without its weights on the machine)."""


def _as_batch(pred, target, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    pred, target = torch.as_tensor(pred), torch.as_tensor(target)
    if pred.shape != target.shape:
        raise ValueError(f"{name}: pred and target shapes differ: {list(pred.shape)} vs {list(target.shape)}")
    if pred.ndim == 3:
        pred, target = pred[None], target[None]
    if pred.ndim != 4 or pred.shape[-1] != 3:
        raise ValueError(f"{name}: images must be [H,W,3] or [B,H,W,3], got {list(pred.shape)}")
    return pred.detach().to(torch.float64), target.detach().to(torch.float64).to(pred.device)


def psnr(pred, target) -> float:
    """Peak signal-to-noise ratio in dB for a data range of 1, averaged over the batch (``inf`` if equal)."""
    pred, target = _as_batch(pred, target, "psnr")
    mse = ((pred - target) ** 2).mean(dim=(1, 2, 3))  # [B]
    return float((-10.0 * torch.log10(mse)).mean())


def _gaussian_window(device) -> torch.Tensor:
    coords = torch.arange(SSIM_WINDOW, dtype=torch.float64, device=device) - (SSIM_WINDOW - 1) / 2
    kernel = torch.exp(-(coords**2) / (2 * SSIM_SIGMA**2))
    return kernel / kernel.sum()


def ssim(pred, target) -> float:
    """Structural similarity (Wang et al. 2004): Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03,
    data range 1; local statistics over valid windows only, per channel, averaged over the batch."""
    pred, target = _as_batch(pred, target, "ssim")
    if min(pred.shape[1:3]) < SSIM_WINDOW:
        raise ValueError(f"ssim: images must be at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {pred.shape[2]}x{pred.shape[1]}")
    x, y = pred.permute(0, 3, 1, 2), target.permute(0, 3, 1, 2)  # [B,3,H,W]
    kernel = _gaussian_window(x.device)
    channels = x.shape[1]
    horizontal = kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    vertical = kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)

    def blur(image):  # separable valid convolution per channel
        return F.conv2d(F.conv2d(image, horizontal, groups=channels), vertical, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(ssim_map.mean(dim=(1, 2, 3)).mean())


def _lpips_backbone_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / LPIPS_BACKBONE_FILE


def _lpips_unavailable_reason() -> str | None:
    try:
        import lpips as _lpips  # noqa: F401
    except ImportError:
        return "the 'lpips' package is not installed"
    if not _lpips_backbone_path().is_file():
        return f"the AlexNet weights are not on this machine ({_lpips_backbone_path()}); fastnerf never downloads them"
    return None


_lpips_model = None


def lpips(pred, target) -> float:
    """LPIPS (AlexNet) distance, mean over the batch; raises ``MetricUnavailable`` unless the
    ``lpips`` package and the AlexNet weights are already installed (nothing is fetched)."""
    global _lpips_model
    reason = _lpips_unavailable_reason()
    if reason is not None:
        raise MetricUnavailable(f"LPIPS is unavailable: {reason}")
    pred, target = _as_batch(pred, target, "lpips")
    if _lpips_model is None:
        import lpips as lpips_package

        _lpips_model = lpips_package.LPIPS(net="alex", verbose=False).eval()
    model = _lpips_model.to(pred.device)
    with torch.no_grad():
        distance = model(pred.permute(0, 3, 1, 2).float() * 2 - 1, target.permute(0, 3, 1, 2).float() * 2 - 1)
    return float(distance.mean())


def available_metrics() -> tuple[str, ...]:
    """Names of the metrics this machine can compute."""
    return ("psnr", "ssim") + (("lpips",) if _lpips_unavailable_reason() is None else ())
