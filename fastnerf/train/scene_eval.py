"""Multi-scene evaluation of an image-conditioned model: for every held-out scene,
encode K source views once, render each target view, and score it.

Scores per target image, averaged over all targets of all scenes: PSNR, PSNR inside the object
mask (where the scene has masks; the background dominates otherwise), SSIM. Baseline: the
nearest source view (the source camera whose viewing direction is closest to the target's),
scored as if it were the rendering. Costs: milliseconds per image and field evaluations per
pixel (the fast mode's occupancy pass is counted, spread over the scene's targets, and also
reported on its own).
"""

from __future__ import annotations

import math
import time

import torch

from ..metrics import psnr, ssim


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


@torch.no_grad()
def render_view(model, camera, views: dict, *, chunk: int = 8192, backend=None, mode=None, background=None) -> dict:
    """Render one camera with ``views`` (from ``model.encode_views``): ``rgb [H,W,3]`` and the field evaluations."""
    origins, directions = camera.rays()
    origins, directions = origins.reshape(-1, 3), directions.reshape(-1, 3)
    parts, evaluations = [], 0
    for start in range(0, origins.shape[0], chunk):
        out = model.render_rays(origins[start:start + chunk], directions[start:start + chunk], backend=backend,
                                background=background, views=views, mode=mode)
        parts.append(out["rgb"])
        evaluations += int(out["n_samples"])
    return {"rgb": torch.cat(parts).view(camera.height, camera.width, 3), "n_samples": evaluations}


def _mean(values):
    values = [v for v in values if v is not None and math.isfinite(v)]
    return sum(values) / len(values) if values else None


@torch.no_grad()
def evaluate_scenes(model, dataset, *, n_views: int | None = 1, source_views=None, max_targets: int | None = None,
                    max_scenes: int | None = None, backend=None, chunk: int = 8192, mode=None,
                    progress: bool = False) -> dict:
    """Scores of ``model`` on ``dataset`` (a ``MultiSceneDataset``) with K source views per scene.

    Args:
        n_views: K, the first K views of each scene's source pool (ignored with ``source_views``).
        source_views: explicit view indices, e.g. ``[22, 25, 28]`` (the DTU protocol of Yu et al. 2021).
        max_targets, max_scenes: evaluate fewer (quick checks).
        mode: the model's render mode (``"fast"`` or ``"dense"``; default its own).
    Returns:
        dict of floats: psnr, psnr_masked, ssim, baseline_psnr, baseline_psnr_masked,
        baseline_ssim, latency_ms, evals_per_pixel, grid_evals_per_pixel; and n_scenes, n_targets, views.
    """
    was_training = model.training
    model.eval()
    rows = []
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
            device = next(model.parameters()).device
            start = time.perf_counter()
            views = model.encode_views(scene.images[sources].to(device), scene.cameras[sources].to(device))
            encode_seconds = time.perf_counter() - start
            grid_seconds, grid_evaluations = 0.0, 0
            if (mode or model.config().get("render_mode")) == "fast" and hasattr(model, "occupancy"):
                start = time.perf_counter()
                model.occupancy(views, backend)
                grid_seconds, grid_evaluations = time.perf_counter() - start, views["grid_evaluations"]
            shared_seconds = (encode_seconds + grid_seconds) / len(targets)
            pixels = scene.cameras.width * scene.cameras.height
            for target in targets:
                start = time.perf_counter()
                out = render_view(model, scene.cameras[target].to(device), views, chunk=chunk, backend=backend, mode=mode)
                seconds = time.perf_counter() - start + shared_seconds
                pred, truth = out["rgb"].cpu().clamp(0, 1), scene.images[target]
                baseline = scene.images[nearest_source(scene.cameras, sources, target)]
                mask = None if scene.masks is None else scene.masks[target]
                rows.append({
                    "psnr": psnr(pred, truth), "ssim": ssim(pred, truth) if min(truth.shape[:2]) >= 11 else None,
                    "psnr_masked": None if mask is None else masked_psnr(pred, truth, mask),
                    "baseline_psnr": psnr(baseline, truth),
                    "baseline_ssim": ssim(baseline, truth) if min(truth.shape[:2]) >= 11 else None,
                    "baseline_psnr_masked": None if mask is None else masked_psnr(baseline, truth, mask),
                    "latency_ms": 1000.0 * seconds,
                    "evals_per_pixel": (out["n_samples"] + grid_evaluations / len(targets)) / pixels,
                    "grid_evals_per_pixel": grid_evaluations / len(targets) / pixels,
                })
    finally:
        model.train(was_training)
    keys = ("psnr", "psnr_masked", "ssim", "baseline_psnr", "baseline_psnr_masked", "baseline_ssim", "latency_ms",
            "evals_per_pixel", "grid_evals_per_pixel")
    summary = {key: _mean([row[key] for row in rows]) for key in keys}
    summary.update(n_scenes=len(scenes), n_targets=len(rows),
                   views=list(source_views) if source_views is not None else n_views)
    return summary
