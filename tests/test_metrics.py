"""Tests of the magnitude image-quality metrics (a2a_cli.metrics)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from a2a_cli.metrics import K1, K2, gaussian_window, magnitude, psnr, ssim


def phantom(h: int = 32, w: int = 32) -> np.ndarray:
    """A smooth complex test image with structure and a spatially varying phase."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    mag = 0.2 + np.exp(-((x - 0.5) ** 2 + (y - 0.4) ** 2) / 0.05) + 0.5 * (x > 0.7)
    return mag * np.exp(1j * 2.0 * x)


def test_identical_images():
    ref = phantom()
    assert psnr(ref, ref) == float("inf")
    assert ssim(ref, ref) == pytest.approx(1.0, abs=1e-12)


def test_global_phase_is_ignored():
    ref = phantom()
    est = ref * np.exp(1j * 1.234)
    assert psnr(ref, est) > 250  # round-off only
    assert ssim(ref, est) == pytest.approx(1.0, abs=1e-12)


def test_psnr_known_values():
    ref = np.ones((4, 4))
    est = np.full((4, 4), 0.9)  # MSE 0.01
    assert psnr(ref, est) == pytest.approx(20.0)
    assert psnr(ref, est, data_range=2.0) == pytest.approx(20.0 + 20 * math.log10(2.0))
    # default data_range is max |reference|: scaling both images changes nothing
    assert psnr(5 * ref, 5 * est) == pytest.approx(20.0)
    assert psnr(np.zeros(3), np.ones(3)) == float("-inf")


def test_ssim_constant_images_known_value():
    # no variance anywhere: SSIM reduces to the luminance term (2 mx my + C1) / (mx^2 + my^2 + C1)
    c1 = (K1 * 1.0) ** 2
    expected = (2 * 1.0 * 0.5 + c1) / (1.0 + 0.25 + c1)
    assert ssim(np.ones((16, 16)), np.full((16, 16), 0.5)) == pytest.approx(expected, rel=1e-12)


def test_ssim_matches_direct_formula_on_one_window():
    # an 11x11 image has exactly one valid window: compare with the textbook formula
    rng = np.random.default_rng(1)
    x = rng.random((11, 11))
    y = np.clip(x + 0.1 * rng.standard_normal((11, 11)), 0, None)
    g = np.outer(gaussian_window(11, 1.5), gaussian_window(11, 1.5))
    mx, my = (g * x).sum(), (g * y).sum()
    vx, vy = (g * (x - mx) ** 2).sum(), (g * (y - my) ** 2).sum()
    cxy = (g * (x - mx) * (y - my)).sum()
    L = 2.0
    c1, c2 = (K1 * L) ** 2, (K2 * L) ** 2
    expected = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    assert ssim(x, y, data_range=L) == pytest.approx(expected, rel=1e-10)


def test_noisier_estimates_score_lower():
    rng = np.random.default_rng(0)
    ref = phantom()
    noise = rng.standard_normal(ref.shape) + 1j * rng.standard_normal(ref.shape)
    scores = [(psnr(ref, ref + s * noise), ssim(ref, ref + s * noise)) for s in (0.01, 0.05, 0.2)]
    psnrs, ssims = zip(*scores)
    assert psnrs[0] > psnrs[1] > psnrs[2]
    assert ssims[0] > ssims[1] > ssims[2]
    assert 0.0 < ssims[2] < ssims[0] < 1.0


def test_ssim_symmetric_with_fixed_range():
    rng = np.random.default_rng(2)
    a, b = rng.random((20, 24)), rng.random((20, 24))
    assert ssim(a, b, data_range=1.0) == pytest.approx(ssim(b, a, data_range=1.0), rel=1e-12)
    assert psnr(a, b, data_range=1.0) == pytest.approx(psnr(b, a, data_range=1.0), rel=1e-12)


def test_ssim_averages_over_frames_and_series():
    rng = np.random.default_rng(3)
    ref = np.abs(rng.standard_normal((2, 3, 16, 16)))
    est = ref + 0.3 * rng.random(ref.shape)
    L = float(ref.max())
    per_frame = [ssim(ref[s, t], est[s, t], data_range=L) for s in range(2) for t in range(3)]
    assert ssim(ref, est) == pytest.approx(np.mean(per_frame), rel=1e-12)
    assert ssim(ref[0], est[0], data_range=L) == pytest.approx(np.mean(per_frame[:3]), rel=1e-12)


def test_small_frames_use_a_smaller_window():
    ref = phantom(6, 9)
    assert ssim(ref, ref) == pytest.approx(1.0)
    assert ssim(ref, 0.5 * ref) < 1.0


def test_torch_inputs_match_numpy():
    ref = phantom()
    est = ref + 0.05
    expected = (psnr(ref, est), ssim(ref, est))
    tref, test_ = torch.from_numpy(ref).to(torch.complex64), torch.from_numpy(est).to(torch.complex64)
    assert psnr(tref, test_) == pytest.approx(expected[0], rel=1e-4)
    assert ssim(tref, test_) == pytest.approx(expected[1], rel=1e-4)
    assert magnitude(torch.tensor([3 + 4j])).tolist() == [5.0]


def test_errors():
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(np.ones((4, 4)), np.ones((4, 5)))
    with pytest.raises(ValueError):
        ssim(np.ones(8), np.ones(8))
    with pytest.raises(ValueError):
        psnr(np.ones(3), np.ones(3), data_range=0.0)
