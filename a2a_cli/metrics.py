"""Image quality of a reconstruction against a reference: PSNR and SSIM on magnitudes.

Inputs are numpy arrays or torch tensors, complex or real, of any matching shape.
Only magnitudes are compared: a complex MR image is defined up to a global phase
(coil combination and the self-supervised training both leave it free), so comparing
real/imaginary parts would penalise a harmless phase offset. Real images are compared
by their absolute value. A real ``(B, 2, ...)`` (real, imaginary) tensor is *not*
recognised as complex: convert it first with :func:`a2a_cli.physics.to_complex`.

``data_range`` (the peak value ``L`` in PSNR and in the SSIM constants) defaults to
``max |reference|`` over the whole input, so all frames of a series share one scale.

>>> import numpy as np
>>> ref = np.full((8, 8), 1j)                   # magnitude 1, phase pi/2
>>> psnr(ref, np.ones((8, 8)))                 # the phase is ignored
inf
>>> round(psnr(ref, np.full((8, 8), 0.9)), 3)  # MSE 0.01, peak 1 -> 20 dB
20.0
>>> round(ssim(ref, np.ones((8, 8))), 6)
1.0
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

__all__ = ["magnitude", "psnr", "ssim", "gaussian_window"]

K1 = 0.01
K2 = 0.03
WINDOW_SIZE = 11
WINDOW_SIGMA = 1.5


def magnitude(x: object) -> np.ndarray:
    """``|x|`` as a float64 numpy array; ``x`` is numpy or torch, complex or real."""
    if hasattr(x, "detach"):  # torch tensor; avoids importing torch for numpy callers
        x = x.detach().cpu()
        x = x.abs().double().numpy()
    return np.abs(np.asarray(x)).astype(np.float64, copy=False)


def _pair(reference: object, estimate: object) -> tuple[np.ndarray, np.ndarray]:
    ref, est = magnitude(reference), magnitude(estimate)
    if ref.shape != est.shape:
        raise ValueError(f"reference and estimate shapes differ: {ref.shape} vs {est.shape}")
    if ref.size == 0:
        raise ValueError("cannot compare empty images")
    return ref, est


def _data_range(ref: np.ndarray, data_range: Optional[float]) -> float:
    if data_range is None:
        return float(ref.max())
    if not data_range > 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    return float(data_range)


def psnr(reference: object, estimate: object, data_range: Optional[float] = None) -> float:
    """Peak signal-to-noise ratio in dB of ``|estimate|`` against ``|reference|``.

    ``10 log10(L^2 / mean((|ref| - |est|)^2))`` over all elements; ``L`` is
    ``data_range`` (default ``max |reference|``). Identical magnitudes give ``inf``; an
    all-zero reference with a non-zero estimate gives ``-inf``.
    """
    ref, est = _pair(reference, estimate)
    peak = _data_range(ref, data_range)
    mse = float(np.mean((ref - est) ** 2))
    if mse == 0.0:
        return float("inf")
    if peak == 0.0:
        return float("-inf")
    return 10.0 * math.log10(peak * peak / mse)


def gaussian_window(size: int = WINDOW_SIZE, sigma: float = WINDOW_SIGMA) -> np.ndarray:
    """Normalised 1D Gaussian of odd length ``size`` (the SSIM window is its outer product).

    >>> w = gaussian_window(7, 1.5)
    >>> w.shape, round(float(w.sum()), 12), bool(w[3] == w.max())
    ((7,), 1.0, True)
    """
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(r**2) / (2.0 * sigma**2))
    return g / g.sum()


def _filter_valid(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of ``(N, H, W)`` with ``g`` along H and W.

    'valid' (no padding) as in the original SSIM definition: border windows would
    otherwise mix in made-up pixels. Output ``(N, H - k + 1, W - k + 1)``.
    """
    k = len(g)
    x = np.lib.stride_tricks.sliding_window_view(x, k, axis=2) @ g
    x = np.lib.stride_tricks.sliding_window_view(x, k, axis=1) @ g
    return x


def ssim(reference: object, estimate: object, data_range: Optional[float] = None) -> float:
    """Mean structural similarity of ``|estimate|`` against ``|reference|``.

    Inputs are ``(H, W)``, ``(T, H, W)``, ``(S, T, H, W)`` or any ``(..., H, W)``: SSIM
    is computed per 2D frame with an 11x11 Gaussian window (sigma 1.5), ``K1 = 0.01``,
    ``K2 = 0.03`` and population (co)variances (Wang et al. 2004), averaged over each
    frame's valid window positions and then over frames. Frames smaller than 11 pixels
    use the largest odd window that fits. ``data_range`` defaults to
    ``max |reference|`` over all frames. SSIM is symmetric in its arguments when
    ``data_range`` is given (the default depends on which image is the reference).
    """
    ref, est = _pair(reference, estimate)
    if ref.ndim < 2:
        raise ValueError(f"ssim needs images of at least 2 dimensions (..., H, W), got shape {ref.shape}")
    peak = _data_range(ref, data_range)
    h, w = ref.shape[-2:]
    size = min(WINDOW_SIZE, h, w)
    size -= 1 - size % 2  # keep the window odd so that it has a centre pixel
    g = gaussian_window(size, WINDOW_SIGMA)
    x = ref.reshape(-1, h, w)
    y = est.reshape(-1, h, w)
    c1 = (K1 * peak) ** 2
    c2 = (K2 * peak) ** 2
    if c1 == 0.0:
        # an all-zero reference with no data_range: SSIM is 1 only for an all-zero estimate
        return 1.0 if not np.any(y) else 0.0
    mx, my = _filter_valid(x, g), _filter_valid(y, g)
    vx = _filter_valid(x * x, g) - mx * mx
    vy = _filter_valid(y * y, g) - my * my
    cxy = _filter_valid(x * y, g) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean(axis=(1, 2)).mean())
