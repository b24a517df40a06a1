"""Multi-scene evaluation of an image-conditioned model: for every held-out scene,
encode K source views once, render each target view, and score it.

Scores per target image, averaged over all targets of all scenes: PSNR, PSNR inside the object
mask (where the scene has masks; the background dominates otherwise), SSIM. Baseline: the
nearest source view (the source camera whose viewing direction is closest to the target's),
scored as if it were the rendering. Costs: field evaluations per pixel (the fast mode's occupancy
pass is counted, spread over the scene's targets, and also reported on its own) and ``latency_ms``,
timed as every kind is (``fastnerf.timing``: warm-up, synchronised, the mean of 100 renders, or 5
for a render over a second) on the first target of the first scene, the encoding of its source
views and the occupancy pass inside each timed render. Every image goes through ``fastnerf.render``.
"""

from __future__ import annotations

import math

import torch

from ..metrics import psnr, ssim
from ..rendering import model_device, render
from ..timing import latency_ms


def masked_psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float | None:
    """PSNR over the pixels where ``mask [H,W] > 0.5`` (``None`` when the mask is empty)."""
    inside = mask > 0.5
    if not bool(inside.any()):
        return None
    mse = float(((pred - target) ** 2)[inside].double().mean())
    return math.inf if mse == 0 else -10.0 * math.log10(mse)


def nearest_source(cameras, sources: list[int], target: int) -> int:
    """The source view whose camera looks most nearly the way the target camera does (and, on a tie, is closest)."""
    c2w = cameras.c2w
    forward = -c2w[:, :3, 2]
    target_forward, target_origin = forward[target], c2w[target, :3, 3]
    scores = [(-float(forward[s] @ target_forward), float((c2w[s, :3, 3] - target_origin).norm()), s) for s in sources]
    return min(scores)[2]


def _mean(values):
    values = [v for v in values if v is not None and math.isfinite(v)]
    return sum(values) / len(values) if values else None


@torch.no_grad()
def evaluate_scenes(model, dataset, *, n_views: int | None = 1, source_views=None, max_targets: int | None = None,
                    max_scenes: int | None = None, backend=None, chunk: int = 8192, mode=None,
                    latency_renders: int = 100, progress: bool = False) -> dict:
    """Scores of ``model`` on ``dataset`` (a ``MultiSceneDataset``) with K source views per scene.

    Args:
        n_views: K, the first K views of each scene's source pool (ignored with ``source_views``).
        source_views: explicit view indices, e.g. ``[22, 25, 28]`` (the DTU protocol of Yu et al. 2021).
        max_targets, max_scenes: evaluate fewer (quick checks).
        mode: the model's render mode (``"fast"`` or ``"dense"``; default its own).
        latency_renders: timed renders for ``latency_ms`` (0: not timed, ``latency_ms`` None).
    Returns:
        dict of floats: psnr, psnr_masked, ssim, baseline_psnr, baseline_psnr_masked,
        baseline_ssim, latency_ms, evals_per_pixel, grid_evals_per_pixel; and n_scenes, n_targets, views.
    """
    was_training = model.training
    model.eval()
    rows, timing = [], None
    options = {"backend": backend, "chunk": chunk, **({"mode": mode} if mode else {})}
    device = model_device(model)
    scenes = dataset.scenes[:max_scenes] if max_scenes else dataset.scenes
    iterator = scenes
    if progress:
        from tqdm import tqdm

        iterator = tqdm(scenes, desc="scenes", leave=False)
    try:
        for scene in iterator:
            sources, targets = scene.choose_views(n_views, source_views)
            targets = targets[:max_targets] if max_targets else targets
            if not targets:
                continue
            source_images, source_cameras = scene.images[sources].to(device), scene.cameras[sources].to(device)
            if timing is None and latency_renders:
                timing = latency_ms(model, scene.cameras[targets[0]], repeats=latency_renders,
                                    views=(source_images, source_cameras), **options)
            with torch.no_grad():
                views = model.encode_views(source_images, source_cameras)  # once for the scene's targets
            outputs = [render(model, scene.cameras[target], views=views, **options) for target in targets]
            grid_evaluations = views.get("grid_evaluations", 0)  # the fast mode's occupancy pass, cached in views
            pixels = scene.cameras.width * scene.cameras.height
            for target, out in zip(targets, outputs):
                pred, truth = out["rgb"].cpu().clamp(0, 1), scene.images[target]
                baseline = scene.images[nearest_source(scene.cameras, sources, target)]
                mask = None if scene.masks is None else scene.masks[target]
                rows.append({
                    "psnr": psnr(pred, truth), "ssim": ssim(pred, truth) if min(truth.shape[:2]) >= 11 else None,
                    "psnr_masked": None if mask is None else masked_psnr(pred, truth, mask),
                    "baseline_psnr": psnr(baseline, truth),
                    "baseline_ssim": ssim(baseline, truth) if min(truth.shape[:2]) >= 11 else None,
                    "baseline_psnr_masked": None if mask is None else masked_psnr(baseline, truth, mask),
                    "evals_per_pixel": (out["n_samples"] + grid_evaluations / len(targets)) / pixels,
                    "grid_evals_per_pixel": grid_evaluations / len(targets) / pixels,
                })
    finally:
        model.train(was_training)
    keys = ("psnr", "psnr_masked", "ssim", "baseline_psnr", "baseline_psnr_masked", "baseline_ssim",
            "evals_per_pixel", "grid_evals_per_pixel")
    summary = {key: _mean([row[key] for row in rows]) for key in keys}
    summary.update(n_scenes=len(scenes), n_targets=len(rows),
                   views=list(source_views) if source_views is not None else n_views,
                   latency_ms=None if timing is None else timing["latency_ms"],
                   latency_renders=None if timing is None else timing["renders"])
    return summary
