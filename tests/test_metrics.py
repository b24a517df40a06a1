"""PSNR, SSIM against a brute-force reference, LPIPS availability."""

import math

import numpy as np
import pytest
import torch

from fastnerf.metrics import MetricUnavailable, available_metrics, lpips, psnr, ssim


def brute_force_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al. SSIM written out window by window (Gaussian 11, sigma 1.5, valid windows)."""
    offsets = np.arange(11) - 5
    g = np.exp(-(offsets**2) / (2 * 1.5**2))
    window = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = 0.01**2, 0.03**2
    values = []
    for channel in range(3):
        for row in range(x.shape[0] - 10):
            for col in range(x.shape[1] - 10):
                a, b = x[row:row + 11, col:col + 11, channel], y[row:row + 11, col:col + 11, channel]
                mu_a, mu_b = (window * a).sum(), (window * b).sum()
                var_a = (window * (a - mu_a) ** 2).sum()
                var_b = (window * (b - mu_b) ** 2).sum()
                cov = (window * (a - mu_a) * (b - mu_b)).sum()
                values.append((2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)))
    return float(np.mean(values))


def test_psnr_known_values():
    target = torch.zeros(4, 5, 3)
    assert psnr(target + 0.1, target) == pytest.approx(20.0)
    batch_pred = torch.stack([target + 0.1, target + 0.01])
    assert psnr(batch_pred, torch.stack([target, target])) == pytest.approx((20.0 + 40.0) / 2)
    assert psnr(target, target) == math.inf


def test_ssim_matches_brute_force():
    rng = np.random.default_rng(0)
    x = rng.random((16, 18, 3))
    y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1)
    assert ssim(torch.tensor(x), torch.tensor(y)) == pytest.approx(brute_force_ssim(x, y), abs=1e-8)
    assert ssim(torch.tensor(y), torch.tensor(x)) == pytest.approx(ssim(torch.tensor(x), torch.tensor(y)), abs=1e-10)


def test_ssim_identity_batch_and_ordering():
    rng = np.random.default_rng(1)
    x = torch.tensor(rng.random((2, 20, 20, 3)), dtype=torch.float32)
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-6)
    slightly = (x + 0.02 * torch.randn_like(x)).clamp(0, 1)
    badly = (x + 0.2 * torch.randn_like(x)).clamp(0, 1)
    assert 1.0 > ssim(slightly, x) > ssim(badly, x)
    per_image = [ssim(badly[i], x[i]) for i in range(2)]
    assert ssim(badly, x) == pytest.approx(sum(per_image) / 2)


@pytest.mark.parametrize("metric", [psnr, ssim])
def test_shape_errors(metric):
    with pytest.raises(ValueError, match="differ"):
        metric(torch.zeros(12, 12, 3), torch.zeros(12, 13, 3))
    with pytest.raises(ValueError, match=r"\[H,W,3\]"):
        metric(torch.zeros(12, 12), torch.zeros(12, 12))


def test_lpips_is_available_or_says_why():
    images = torch.rand(32, 32, 3)
    if "lpips" in available_metrics():
        assert lpips(images, images) == pytest.approx(0.0, abs=1e-6)
        assert lpips(images, 1 - images) > 0.05
    else:
        with pytest.raises(MetricUnavailable, match="LPIPS is unavailable: "):
            lpips(images, images)
    assert {"psnr", "ssim"} <= set(available_metrics())
