"""Pieces common to the training loops: errors, LR schedule, RNG state, held-out evaluation."""

from __future__ import annotations

import math
import time

import torch

from ..errors import UserError


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; training stopped and the last good checkpoint was kept."""


def make_adam(param_groups, *, lr: float) -> torch.optim.Adam:
    """Adam as Instant-NGP uses it: betas (0.9, 0.99), eps 1e-15; the fused kernel where torch
    has one for the parameters' device (one pass over each tensor instead of six: the hash
    table's update went from 15 ms to 1.6 ms per step on the 2-core CPU). Groups marked
    ``row_sparse=True`` (a large grid of stored values) make it ``RowSparseAdam``, which updates touched rows only."""
    if any(group.get("row_sparse") for group in param_groups):
        from .sparse_adam import RowSparseAdam

        return RowSparseAdam(param_groups, lr=lr, betas=(0.9, 0.99), eps=1e-15)
    try:
        return torch.optim.Adam(param_groups, lr=lr, betas=(0.9, 0.99), eps=1e-15, fused=True)
    except RuntimeError:  # no fused kernel for this device or dtype
        return torch.optim.Adam(param_groups, lr=lr, betas=(0.9, 0.99), eps=1e-15)


def lr_factor(step: int, *, warmup: int = 20, half_life: int = 1500, floor: float = 0.1) -> float:
    """Multiplier of the base LR at ``step``: linear warm-up, then halving every ``half_life`` steps
    down to ``floor``. It depends on the step only (not on the budget), so a run resumed with a
    larger budget follows exactly the schedule of one that never stopped."""
    return min(1.0, (step + 1) / warmup) * max(floor, 0.5 ** (step / half_life))


def set_lr(optimizer, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor


def psnr_from_mse(mse: float) -> float:
    return -10.0 * math.log10(max(mse, 1e-12))


@torch.no_grad()
def evaluate(model, dataset, *, backend=None, chunk: int = 8192, max_images: int | None = None,
             with_ssim: bool = True, supersample: int | None = None, dense_samples: int | None = None) -> dict:
    """Render the cameras of ``dataset`` (on its background) and compare with its images.

    ``supersample``, ``dense_samples``: as ``fastnerf.render`` (default: the model's own settings).

    Returns ``dict(psnr, ssim, seconds_per_image, n_images, samples_per_ray, images [N,H,W,3])``
    (PSNR/SSIM averaged over images).
    """
    from .. import metrics
    from ..rendering import model_device, render
    from ..devices import synchronize

    device = model_device(model)

    count = len(dataset) if max_images is None else min(max_images, len(dataset))
    psnrs, ssims, renders, seconds, samples, rays = [], [], [], 0.0, 0, 0
    for index in range(count):
        synchronize(device)
        start = time.perf_counter()
        out = render(model, dataset.cameras[index], backend=backend, chunk=chunk, background=dataset.background,
                     supersample=supersample, dense_samples=dense_samples)
        synchronize(device)
        seconds += time.perf_counter() - start
        samples += out.get("n_samples", 0)
        rays += out.get("n_rays", 0)
        target = dataset.images[index].to(out["rgb"].device)
        psnrs.append(metrics.psnr(out["rgb"].clamp(0, 1), target))
        if with_ssim:
            ssims.append(metrics.ssim(out["rgb"].clamp(0, 1), target))
        renders.append(out["rgb"].clamp(0, 1).cpu())
    return {
        "psnr": sum(psnrs) / max(count, 1),
        "ssim": sum(ssims) / len(ssims) if ssims else float("nan"),
        "seconds_per_image": seconds / max(count, 1),
        "n_images": count,
        "samples_per_ray": samples / max(rays, 1),
        "images": torch.stack(renders) if renders else None,
    }
