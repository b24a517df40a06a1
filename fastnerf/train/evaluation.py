"""Held-out evaluation of a single-scene model: render a dataset's cameras and score them."""

from __future__ import annotations

import time

import torch


@torch.no_grad()
def evaluate(model, dataset, *, backend=None, chunk: int = 8192, max_images: int | None = None,
             with_ssim: bool = True, supersample: int | None = None, dense_samples: int | None = None) -> dict:
    """Render the cameras of ``dataset`` (on its background) and compare with its images.

    ``supersample``, ``dense_samples``: as ``fastnerf.render`` (default: the model's own settings).

    Returns ``dict(psnr, ssim, seconds_per_image, n_images, samples_per_ray, images [N,H,W,3])``
    (PSNR/SSIM averaged over images).
    """
    from .. import metrics
    from ..devices import synchronize
    from ..rendering import model_device, render

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
