"""Figures the students are judged by, beside PSNR/SSIM (``fastnerf.metrics``):

- ``nearest_view_baseline``: each test view "predicted" by the training image whose camera centre
  is closest (what a student that only memorises views would get);
- ``flicker``: mean absolute change between consecutive frames of a camera path (view consistency);
- ``checkerboard_energy``: the share of an error image's spectral energy at the harmonics of the
  upsampler's period (transposed convolutions of stride 2 leave a period-2 pattern).
"""

from __future__ import annotations

import torch


def nearest_view_baseline(train, test) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images [T,H,W,3], index [T])``: for each camera of ``test`` (a ``Dataset``), the image of
    ``train`` whose camera centre is nearest. Sizes must match (resize the datasets first)."""
    if (train.width, train.height) != (test.width, test.height):
        raise ValueError(f"nearest_view_baseline: train images are {train.width}x{train.height}, "
                         f"test images {test.width}x{test.height}")
    train_centres = train.cameras.c2w[:, :3, 3].cpu()  # [N,3]
    test_centres = test.cameras.c2w[:, :3, 3].cpu()  # [T,3]
    index = torch.cdist(test_centres, train_centres).argmin(dim=1)  # [T]
    return train.images.cpu()[index], index


def flicker(frames: torch.Tensor) -> float:
    """Mean absolute difference between consecutive frames ``[N,H,W,3]`` (0 for fewer than 2)."""
    if frames.ndim != 4:
        raise ValueError(f"flicker: frames must be [N,H,W,C], got {list(frames.shape)}")
    if frames.shape[0] < 2:
        return 0.0
    return float((frames[1:].double() - frames[:-1].double()).abs().mean())


def checkerboard_energy(pred: torch.Tensor, target: torch.Tensor, period: int = 2) -> float:
    """Share of the error's spectral energy (DC removed) at the non-zero harmonics of ``period``.

    The error ``pred - target`` (``[H,W,3]`` or ``[B,H,W,3]``) is Fourier-transformed per image and
    channel; the frequencies ``k / period`` cycles per pixel (k = 1 .. period-1) along either axis
    are a pattern repeating every ``period`` pixels, what a stride-``period`` transposed
    convolution imprints. White noise scores the share of the spectrum those lines cover, about
    ``(period - 1)(H + W) / (H W)`` (2% at 100x100 and period 2); a checkerboard scores far more.
    """
    if pred.shape != target.shape:
        raise ValueError(f"checkerboard_energy: shapes differ: {list(pred.shape)} vs {list(target.shape)}")
    error = (pred.double() - target.double())
    if error.ndim == 3:
        error = error[None]
    error = error.permute(0, 3, 1, 2)  # [B,3,H,W]
    error = error - error.mean(dim=(2, 3), keepdim=True)
    power = torch.fft.fft2(error).abs() ** 2  # [B,3,H,W]
    height, width = power.shape[-2:]
    rows = torch.zeros(height, dtype=torch.bool)
    cols = torch.zeros(width, dtype=torch.bool)
    for k in range(1, period):
        if height % period == 0:
            rows[k * height // period] = True
        if width % period == 0:
            cols[k * width // period] = True
    mask = rows[:, None] | cols[None, :]  # harmonic rows or columns of the spectrum
    total = float(power.sum())
    return float(power[..., mask].sum()) / total if total > 0 else 0.0


@torch.no_grad()
def psnr_vs_teacher(teacher_run, images: torch.Tensor, cameras, *, background=None, backend=None) -> float:
    """PSNR of a student's ``images [N,H,W,3]`` against its teacher's renders of the same ``cameras``
    (the teacher run loaded with ``load_run``, rendered with its default settings)."""
    from ..metrics import psnr
    from ..rendering import render
    from ..runs import load_run

    teacher, _ = load_run(teacher_run, device=images.device)
    reference = render(teacher, cameras, background=background, backend=backend)["rgb"].clamp(0, 1)
    return psnr(images.to(reference.device), reference)
