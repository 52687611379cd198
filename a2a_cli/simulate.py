"""Simulated abdominal MRI acquisitions (numpy only, deterministic under a seed).

The phantom is a coronal-like abdomen: rows (H, the readout axis) run head to foot,
columns (W) are the phase-encode direction. Breathing moves the diaphragm, liver,
spleen and kidneys towards the feet and widens the body a little; the spine and
aorta stay put. Images are complex with a smooth low-order phase and a smooth
intensity shading.

Sampling is Cartesian: each frame measures a set of phase-encode lines (columns),
the ``centre_lines`` around the k-space centre in every frame. k-space is the
centred orthonormal FFT of :func:`a2a_cli.physics.fft2c`, so
``kspace[t] = mask[t] * fft2c(image[t]) + noise``.

>>> x = phantom_dynamic(32, 32, 4, rng=0)
>>> x.shape, x.dtype
((4, 32, 32), dtype('complex64'))
>>> line_masks(8, 32, acceleration=4, centre_lines=2, rng=0).sum(axis=1).tolist()
[8, 8, 8, 8, 8, 8, 8, 8]
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from . import __version__
from .errors import A2AError
from .fft import fft2c, ifft2c
from .data import centre_line_indices, write_a2a_file

__all__ = [
    "fft2c",
    "ifft2c",
    "phantom_dynamic",
    "phantom_static",
    "breathing_curve",
    "line_masks",
    "add_noise",
    "coil_sensitivities",
    "measured_snr_db",
    "write_case",
    "make_sample_data",
    "SAMPLE_CASES",
]

RngLike = np.random.Generator | int | Sequence[int] | None


def _rng(rng: RngLike) -> np.random.Generator:
    """A generator from a generator, a seed, or None (= seed 0, so results never depend on chance)."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(0 if rng is None else rng)


# ----------------------------------------------------------------------------------
# phantom
# ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Ellipse:
    """An ellipse in normalised coordinates (y: head -1 .. foot +1, x: -1 .. +1).

    Breathing displacement ``d`` moves the centre by ``shift * d`` towards the feet,
    changes the half-height by ``grow * d`` and the half-width by a factor
    ``1 + widen * d``.
    """

    cy: float
    cx: float
    ry: float
    rx: float
    value: float
    angle: float = 0.0
    shift: float = 0.0
    grow: float = 0.0
    widen: float = 0.0


def _anatomy(rng: np.random.Generator) -> list[_Ellipse]:
    """A randomly varied abdomen, in painting order (later shapes cover earlier ones)."""

    def j(scale: float = 1.0) -> float:  # position jitter
        return float(rng.uniform(-0.03, 0.03) * scale)

    def s() -> float:  # size factor
        return float(rng.uniform(0.9, 1.1))

    def v(value: float) -> float:  # intensity variation
        return float(value * rng.uniform(0.88, 1.12))

    body_ry, body_rx = 0.93 * s(), 0.82 * s()
    shapes = [
        # subcutaneous fat (bright), then the soft tissue inside it
        _Ellipse(0.04 + j(), j(), body_ry, body_rx, v(0.75), widen=0.04),
        _Ellipse(0.04 + j(0.3), j(0.3), body_ry - 0.07, body_rx - 0.08, v(0.3), widen=0.045),
        # liver (patient's right = image left), with its vessels
        _Ellipse(-0.08 + j(), -0.36 + j(), 0.33 * s(), 0.36 * s(), v(0.58), angle=0.35 + j(3), shift=1.0, grow=-0.15),
        # spleen
        _Ellipse(-0.12 + j(), 0.45 + j(), 0.2 * s(), 0.13 * s(), v(0.5), angle=-0.45 + j(3), shift=1.0, grow=-0.1),
    ]
    for _ in range(int(rng.integers(3, 6))):
        r = float(rng.uniform(0.018, 0.035))
        shapes.append(_Ellipse(-0.08 + float(rng.uniform(-0.18, 0.2)), -0.36 + float(rng.uniform(-0.22, 0.2)), r, r, v(0.9), shift=1.0))
    for side in (-1.0, 1.0):  # kidneys: cortex, then medulla/pelvis
        cy, cx, ang = 0.32 + j(), side * (0.3 + j()), side * (0.25 + j(2))
        ry, rx = 0.17 * s(), 0.095 * s()
        shapes.append(_Ellipse(cy, cx, ry, rx, v(0.78), angle=ang, shift=0.6))
        shapes.append(_Ellipse(cy, cx + side * 0.02, ry * 0.5, rx * 0.45, v(0.42), angle=ang, shift=0.6))
    for _ in range(int(rng.integers(3, 6))):  # bowel loops of varied content
        shapes.append(_Ellipse(
            float(rng.uniform(0.5, 0.75)), float(rng.uniform(-0.45, 0.45)), float(rng.uniform(0.05, 0.1)),
            float(rng.uniform(0.06, 0.13)), float(rng.uniform(0.15, 0.7)), angle=float(rng.uniform(0, np.pi)), shift=0.25,
        ))
    # vessels: inferior vena cava (moves a little) and aorta (fixed), then the spine
    shapes.append(_Ellipse(0.2 + j(), -0.13 + j(0.3), 0.55, 0.04, v(0.82), shift=0.2))
    shapes.append(_Ellipse(0.22 + j(), 0.14 + j(0.3), 0.6, 0.035, v(1.0)))
    y = -0.32 + j()
    shapes.append(_Ellipse(0.3, 0.0, 0.66, 0.085, v(0.35)))  # intervertebral discs (fixed)
    while y < 0.92:
        shapes.append(_Ellipse(y, 0.0, 0.055, 0.075, v(0.88)))  # vertebral bodies; discs are the gaps
        y += 0.135
    # lungs: their lower edge (the diaphragm) follows the liver, their top stays
    for side in (-1.0, 1.0):
        shapes.append(_Ellipse(-0.55 + j(), side * (0.37 + j()), 0.3 * s(), 0.26 * s(), v(0.05), shift=0.5, grow=0.5))
    shapes.append(_Ellipse(-0.6 + j(), 0.06 + j(), 0.18 * s(), 0.2 * s(), v(0.55), shift=0.4))  # heart base
    return shapes


def _smooth_field(yy: np.ndarray, xx: np.ndarray, rng: np.random.Generator, terms: int = 4) -> np.ndarray:
    """A smooth random field in [-1, 1] from a few low-frequency cosines."""
    f = np.zeros_like(yy)
    for _ in range(terms):
        ky, kx = rng.uniform(-1.5, 1.5, size=2)
        f += np.cos(np.pi * (ky * yy + kx * xx) + rng.uniform(0, 2 * np.pi))
    return f / terms


class _Phantom:
    """Renders one random anatomy at any breathing displacement."""

    def __init__(self, height: int, width: int, rng: np.random.Generator, oversample: int = 2):
        self.height, self.width, self.os = height, width, oversample
        # sub-pixel sample centres on [-1, 1); averaging them anti-aliases the edges so
        # that sub-pixel motion changes the image smoothly
        ys = (np.arange(height * oversample) + 0.5) / (height * oversample) * 2 - 1
        xs = (np.arange(width * oversample) + 0.5) / (width * oversample) * 2 - 1
        self.yy, self.xx = np.meshgrid(ys, xs, indexing="ij")
        self.shapes = _anatomy(rng)
        yc = (np.arange(height) + 0.5) / height * 2 - 1
        xc = (np.arange(width) + 0.5) / width * 2 - 1
        y, x = np.meshgrid(yc, xc, indexing="ij")
        self.shading = 1.0 + 0.12 * _smooth_field(y, x, rng)
        c = rng.uniform(-1.0, 1.0, size=5)
        self.phase = rng.uniform(-np.pi, np.pi) + c[0] * x + c[1] * y + c[2] * x * y + c[3] * x**2 + c[4] * y**2

    def magnitude(self, d: float) -> np.ndarray:
        img = np.zeros_like(self.yy)
        for e in self.shapes:
            cy, ry, rx = e.cy + e.shift * d, max(e.ry + e.grow * d, 1e-3), e.rx * (1 + e.widen * d)
            dy, dx = self.yy - cy, self.xx - e.cx
            if e.angle:
                c, s = math.cos(e.angle), math.sin(e.angle)
                dy, dx = c * dy - s * dx, s * dy + c * dx
            img[(dy / ry) ** 2 + (dx / rx) ** 2 <= 1.0] = e.value
        o = self.os
        return img.reshape(self.height, o, self.width, o).mean(axis=(1, 3))

    def image(self, d: float) -> np.ndarray:
        return (self.magnitude(d) * self.shading * np.exp(1j * self.phase)).astype(np.complex64)


def breathing_curve(
    frames: int, motion: Literal["respiratory", "periodic", "none"] = "respiratory", period: int | None = None,
    rng: RngLike = None, amplitude: float = 0.12,
) -> np.ndarray:
    """Diaphragm displacement per frame, float ``(T,)`` in normalised units (2 = field of view).

    ``respiratory``: breaths of varying length (about 5 to 9 frames) and depth, with
    the long pause at end-expiration (displacement 0). ``periodic``: a fixed breath
    repeating exactly every ``period`` frames (default ``max(2, frames // 2)``).
    ``none``: no motion.

    >>> d = breathing_curve(12, "periodic", period=4)
    >>> bool(np.array_equal(d[:4], d[4:8])), bool(np.array_equal(d[:4], d[8:]))
    (True, True)
    """
    rng = _rng(rng)

    def shape(phi: np.ndarray) -> np.ndarray:
        return ((1 - np.cos(phi)) / 2) ** 1.5

    if motion == "none":
        return np.zeros(frames)
    if motion == "periodic":
        period = max(2, frames // 2) if period is None else int(period)
        if period < 1:
            raise A2AError(f"period must be >= 1 frame, got {period}")
        t = np.arange(frames) % period  # exact repetition: identical inputs give identical frames
        return amplitude * shape(2 * np.pi * t / period)
    if motion != "respiratory":
        raise A2AError(f"motion must be 'respiratory', 'periodic' or 'none', got {motion!r}")
    base = rng.uniform(5.0, 9.0)
    step = 2 * np.pi / (base * rng.uniform(0.8, 1.25, size=frames))  # uneven breathing rate
    phi = rng.uniform(0, 2 * np.pi) + np.concatenate(([0.0], np.cumsum(step[:-1])))
    # depth changes from breath to breath: a random value per breath, interpolated
    breaths = np.floor(phi / (2 * np.pi))
    depth = rng.uniform(0.6, 1.3, size=int(breaths.max() - breaths.min()) + 2)
    frac = phi / (2 * np.pi) - breaths.min()
    i = np.floor(frac).astype(int)
    w = frac - i
    return amplitude * ((1 - w) * depth[i] + w * depth[i + 1]) * shape(phi)


def phantom_dynamic(
    height: int, width: int, frames: int, motion: Literal["respiratory", "periodic", "none"] = "respiratory",
    period: int | None = None, rng: RngLike = None,
) -> np.ndarray:
    """Breathing abdomen, complex64 ``(T, H, W)``; see :func:`breathing_curve` for ``motion``/``period``.

    >>> x = phantom_dynamic(32, 32, 6, motion="periodic", period=3, rng=1)
    >>> bool(np.array_equal(x[:3], x[3:]))
    True
    """
    _check_size(height, width, frames)
    rng = _rng(rng)
    phantom = _Phantom(height, width, rng)
    d = breathing_curve(frames, motion, period, rng)
    return np.stack([phantom.image(float(v)) for v in d])


def phantom_static(height: int, width: int, rng: RngLike = None) -> np.ndarray:
    """Abdomen at end-expiration, complex64 ``(H, W)``.

    >>> phantom_static(16, 24, rng=0).shape
    (16, 24)
    """
    _check_size(height, width, 1)
    return _Phantom(height, width, _rng(rng)).image(0.0)


def _check_size(height: int, width: int, frames: int) -> None:
    if min(height, width) < 4 or frames < 1:
        raise A2AError(f"image size must be at least 4x4 with >= 1 frame, got {height}x{width}, {frames} frames")


# ----------------------------------------------------------------------------------
# sampling and noise
# ----------------------------------------------------------------------------------
def line_masks(frames: int, width: int, acceleration: float = 5.0, centre_lines: int = 4, rng: RngLike = None) -> np.ndarray:
    """Per-frame phase-encode lines, bool ``(T, W)``.

    Each frame gets ``round(width / acceleration)`` lines (at least the centre
    lines), ``centre_lines`` of them (counted in) shared by all frames. The n other
    lines of a frame are spread over k-space, one per band of neighbouring lines.
    Consecutive frames form blocks of ``B = (width - centre_lines) // n`` frames that
    never repeat a non-centre line, so a block measures all but fewer than n of the
    non-centre lines, and the lines left out change from block to block. When all T
    frames fit in one block (``T <= B``), the frames are disjoint apart from the
    centre lines. (Fully disjoint frames are impossible once ``T * n`` exceeds the
    available lines, e.g. 16 frames of 13 lines out of 64.) Every seed gives a new
    random pattern.

    >>> m = line_masks(4, 16, acceleration=4, centre_lines=2, rng=0)
    >>> m.shape, int(m.sum(axis=1).max())
    ((4, 16), 4)
    >>> bool(m[:, 7:9].all())
    True
    """
    rng = _rng(rng)
    if frames < 1 or width < 1:
        raise A2AError(f"need frames >= 1 and width >= 1, got {frames}, {width}")
    if not acceleration >= 1:
        raise A2AError(f"acceleration must be >= 1, got {acceleration}")
    if not 0 <= centre_lines <= width:
        raise A2AError(f"centre_lines must be between 0 and the width {width}, got {centre_lines}")
    total = max(1, int(round(width / acceleration)))
    centre = centre_line_indices(width, centre_lines)
    out = np.zeros((frames, width), dtype=bool)
    out[:, centre] = True
    pool = np.setdiff1d(np.arange(width), centre)
    n = min(total - centre.size, pool.size)
    if n <= 0:
        return out
    block = pool.size // n  # frames per block: each gets exactly n lines, none repeated
    for start in range(0, frames, block):
        # a random choice of the lines this block measures, cut into n bands of
        # `block` neighbouring lines; each frame takes one line of every band, so its
        # lines are spread over k-space
        chosen = np.sort(rng.choice(pool, size=block * n, replace=False))
        for band in chosen.reshape(n, block):
            targets = start + rng.permutation(block)
            keep = targets < frames
            out[targets[keep], band[keep]] = True
    return out


def add_noise(kspace: np.ndarray, snr_db: float | None, rng: RngLike = None, mask: np.ndarray | None = None) -> np.ndarray:
    """Add complex Gaussian noise to the sampled k-space; returns a complex64 copy.

    SNR is the mean power of the sampled samples over the noise power:
    ``snr_db = 10 log10(mean |y_sampled|^2 / E|n|^2)``, where the complex noise has
    variance ``E|n|^2`` split equally between real and imaginary parts. Sampled
    means ``mask`` (broadcastable to ``kspace``) or, without it, the non-zero samples;
    the other samples stay exactly zero. ``snr_db`` None or inf adds nothing.

    >>> y = np.ones((2, 100, 100), np.complex64)
    >>> round(measured_snr_db(y, add_noise(y, 20.0, rng=0)), 1)
    20.0
    """
    y = np.asarray(kspace).astype(np.complex64)
    if snr_db is None or math.isinf(snr_db):
        return y
    sampled = (y != 0) if mask is None else np.broadcast_to(np.asarray(mask, dtype=bool), y.shape)
    if not sampled.any():
        return y
    power = float(np.mean(np.abs(y[sampled]) ** 2))
    sigma = math.sqrt(power / 10 ** (snr_db / 10) / 2)  # per real/imaginary part
    rng = _rng(rng)
    count = int(sampled.sum())
    y[sampled] += (sigma * (rng.standard_normal(count) + 1j * rng.standard_normal(count))).astype(np.complex64)
    return y


def measured_snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    """SNR in dB of ``noisy`` against ``clean`` over the samples where ``clean`` is non-zero."""
    sampled = clean != 0
    signal = np.mean(np.abs(clean[sampled]) ** 2)
    noise = np.mean(np.abs((noisy - clean)[sampled]) ** 2)
    return float(10 * np.log10(signal / noise))


def coil_sensitivities(coils: int, height: int, width: int, rng: RngLike = None) -> np.ndarray:
    """Receive-coil sensitivities of an array around the body, complex64 ``(N, H, W)``.

    Coil centres lie on an ellipse just outside the body (radii 1.2 x 1.1 in
    normalised units, 2 = field of view), evenly spaced with a little jitter. Each
    magnitude falls off like the on-axis field of a loop of radius ``a``,
    ``(1 + (r / a)^2)^(-3/2)`` with r the distance to the coil centre (a Biot-Savart
    profile); each phase is a smooth random plane plus a gentle quadratic term. The
    maps are normalised as :func:`a2a_cli.coils.normalise_maps` does (``sum_c |S_c|^2
    = 1`` everywhere, phase relative to the virtual body coil), so the coil-combined
    image ``sum_c conj(S_c) I_c`` of noiseless coil images ``I_c = S_c x`` is ``x``.

    >>> s = coil_sensitivities(8, 32, 32, rng=0)
    >>> s.shape, bool(np.allclose((np.abs(s) ** 2).sum(axis=0), 1, atol=1e-5))
    ((8, 32, 32), True)
    """
    from .coils import normalise_maps  # torch-based; imported here so that numpy-only simulation stays light

    if coils < 1:
        raise A2AError(f"coils must be >= 1, got {coils}")
    rng = _rng(rng)
    yc = (np.arange(height) + 0.5) / height * 2 - 1
    xc = (np.arange(width) + 0.5) / width * 2 - 1
    y, x = np.meshgrid(yc, xc, indexing="ij")
    angles = 2 * np.pi * (np.arange(coils) + rng.uniform(-0.15, 0.15, size=coils)) / coils + rng.uniform(0, 2 * np.pi)
    maps = np.empty((coils, height, width), np.complex128)
    for c, phi in enumerate(angles):
        cy, cx = 1.2 * np.sin(phi), 1.1 * np.cos(phi)
        a = rng.uniform(0.7, 1.0)
        r2 = (y - cy) ** 2 + (x - cx) ** 2
        g = rng.uniform(-1.0, 1.0, size=3)
        phase = rng.uniform(-np.pi, np.pi) + g[0] * y + g[1] * x + 0.3 * g[2] * r2
        maps[c] = (1 + r2 / a**2) ** -1.5 * np.exp(1j * phase)
    return normalise_maps(maps.astype(np.complex64)).numpy()


# ----------------------------------------------------------------------------------
# writing cases
# ----------------------------------------------------------------------------------
def write_case(
    path: str | Path,
    mode: Literal["dynamic", "sequential"] = "dynamic",
    slices: int = 2,
    frames: int = 16,
    height: int = 64,
    width: int = 64,
    acceleration: float = 5.0,
    centre_lines: int = 4,
    snr_db: float | None = 30.0,
    motion: Literal["respiratory", "periodic", "none"] = "respiratory",
    period: int | None = None,
    seed: int = 0,
    complex_style: Literal["complex", "compound", "float2"] = "complex",
    overwrite: bool = False,
    coils: int = 1,
) -> Path:
    """Simulate ``slices`` slices and write them as an a2a file; returns the path.

    Each slice has its own anatomy, breathing and line pattern (drawn from
    ``(seed, slice)``). ``dynamic``: a breathing phantom, ``y_t = M_t F x_t + n``.
    ``sequential``: a static phantom, ``y_t = M_t F x + n`` (``motion`` unused). SNR
    is per slice (see :func:`add_noise`). The file holds ``kspace`` ``(S, T, H, W)``,
    ``mask`` uint8 ``(S, T, W)``, ``reference`` (the noiseless image, ``(S, T, H, W)``
    dynamic or ``(S, H, W)`` sequential), and the attributes ``acquisition``,
    ``a2a_version`` and ``simulation`` (these parameters as JSON).

    ``coils`` > 1: every slice gets its own coil array (:func:`coil_sensitivities`,
    drawn from ``(seed, slice, 1)`` so the single-coil stream is unchanged), the data
    are ``y_{t,c} = M_t F S_c x_t + n`` with the mask shared by the coils, ``kspace`` is
    ``(S, T, N, H, W)`` with the attribute ``coils = N``, and the true maps are stored
    as ``true_sensitivity_maps`` ``(S, N, H, W)``: not as ``sensitivity_maps``, so that
    readers estimate the maps from the data as they must for scanner files (store
    them under that name to use them). The reference is the image ``x`` itself.
    """
    if mode not in ("dynamic", "sequential"):
        raise A2AError(f"mode must be 'dynamic' or 'sequential', got {mode!r}")
    if slices < 1:
        raise A2AError(f"slices must be >= 1, got {slices}")
    if seed < 0:
        raise A2AError(f"seed must be >= 0, got {seed}")
    _check_size(height, width, frames)
    if motion not in ("respiratory", "periodic", "none"):
        raise A2AError(f"motion must be 'respiratory', 'periodic' or 'none', got {motion!r}")
    if isinstance(coils, bool) or not isinstance(coils, (int, np.integer)) or coils < 1:
        raise A2AError(f"coils must be a positive integer, got {coils!r}")
    multi = coils > 1
    coil_shape = (coils,) if multi else ()
    kspace = np.zeros((slices, frames) + coil_shape + (height, width), np.complex64)
    masks = np.zeros((slices, frames, width), bool)
    maps = np.zeros((slices, coils, height, width), np.complex64) if multi else None
    refs = []
    for s in range(slices):
        rng = np.random.default_rng([seed, s])
        if multi:
            maps[s] = coil_sensitivities(coils, height, width, np.random.default_rng([seed, s, 1]))  # type: ignore[index]
        if mode == "dynamic":
            x = phantom_dynamic(height, width, frames, motion, period, rng)
            k = fft2c(x[:, None] * maps[s]) if multi else fft2c(x)  # type: ignore[index]
        else:
            x = phantom_static(height, width, rng)
            k = np.broadcast_to(fft2c(x * maps[s]) if multi else fft2c(x), (frames,) + coil_shape + (height, width))  # type: ignore[index]
        masks[s] = line_masks(frames, width, acceleration, centre_lines, rng)
        m = masks[s][:, None, None, :] if multi else masks[s][:, None, :]
        kspace[s] = add_noise(k * m, snr_db, rng, mask=m)
        refs.append(x)
    params = {
        "mode": mode, "slices": slices, "frames": frames, "height": height, "width": width,
        "acceleration": acceleration, "centre_lines": centre_lines, "snr_db": snr_db, "motion": motion,
        "period": period, "seed": seed,
    }
    if multi:
        params["coils"] = coils
    return write_a2a_file(
        path, kspace, mask=masks, reference=np.stack(refs), acquisition=mode, complex_style=complex_style,
        overwrite=overwrite, attrs={"a2a_version": __version__, "simulation": json.dumps(params)},
        coils=coils if multi else None, extra=None if maps is None else {"true_sensitivity_maps": maps},
    )


#: The bundled sample files: name -> :func:`write_case` keyword arguments. Sequential
#: files take 6 lines per frame (acceleration 64/6): with 13 lines per frame the
#: disjoint frames would cover all of k-space and the static image would be fully sampled.
SAMPLE_CASES: dict[str, dict] = {
    "dynamic_train.h5": {"mode": "dynamic", "slices": 4, "seed": 1},
    "dynamic_test.h5": {"mode": "dynamic", "slices": 2, "seed": 2},
    "sequential_train.h5": {"mode": "sequential", "slices": 4, "seed": 3, "acceleration": 10.67},
    "sequential_test.h5": {"mode": "sequential", "slices": 2, "seed": 4, "acceleration": 10.67},
}


def make_sample_data(directory: str | Path, overwrite: bool = False) -> list[Path]:
    """Write the files of :data:`SAMPLE_CASES` into ``directory`` (64x64, T=16, 4 centre lines, 30 dB)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return [write_case(directory / name, overwrite=overwrite, **kw) for name, kw in SAMPLE_CASES.items()]
