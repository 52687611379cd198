"""Compressed-sensing baselines for the benchmarks: BART ``pics`` (sigpy when BART is absent).

What a user would run instead of a2a, tuned fairly: total variation and wavelet
regularisers, a fine logarithmic grid of weights chosen on training slices (never on
the test file), and enough iterations to converge (checked by doubling them).

Array layouts (numpy, complex; the a2a file layouts of :mod:`a2a_cli.data.a2a_file`):

* ``kspace``: ``(T, H, W)`` single-coil or ``(T, N, H, W)`` with N coils; centred
  k-space as made by :func:`a2a_cli.simulate.fft2c` (BART's unitary centred FFT is
  the same transform);
* ``mask``: bool ``(T, W)`` phase-encode lines or ``(T, H, W)``;
* ``maps``: complex ``(N, H, W)`` coil sensitivities (``y_c = F S_c x``), required
  with coils;
* result: ``(T, H, W)`` in ``dynamic`` mode, ``(H, W)`` in ``sequential`` mode (a
  static object sampled by T masks: reconstructed from the k-space averaged over the
  frames that measured each sample), coil-combined, in the data's units.

Usage::

    from benchmarks.baselines import tune, reconstruct, sample_arrays
    train = [sample_arrays(read_slice(path, i)) for i in range(2)]
    best = tune(train, mode="sequential")                       # Setting(regulariser, weight, ...)
    k, m, s, _ = sample_arrays(read_slice(test_path, 0))
    image = reconstruct(k, m, s, mode="sequential", setting=best)

Regularisers (``Setting.regulariser``): ``"tv"`` spatial total variation; ``"wavelet"``
spatial l1-wavelet (Daubechies, BART's default, with random cycle spinning);
``"l2"`` a Tikhonov weight only (with coil maps: plain SENSE; BART only, not in the default lists);
dynamic only: ``"tv-t"`` TV along time, ``"tv-xyt"`` TV along time and space,
``"wavelet+tv-t"`` spatial wavelet plus TV along time (one weight for both),
``"tv/10+tv-t"`` and ``"tv/3+tv-t"`` spatial TV and TV along time as two terms, the
spatial weight a tenth or a third of the temporal one (the weight tuned is the temporal
one; a2a's own TV reconstruction found spatial weights a tenth to a sixth of temporal);
``"llr"`` locally low rank (BART's ``-R L``: 8x8 blocks through time as low-rank matrices, the
regulariser BART's authors use for dynamic data) and ``"llr+tv/3+tv-t"`` the three terms, low
rank at a quarter and spatial TV at a third of the temporal weight; ``"tv/10+tv-t+f-t/10"`` and
``"tv/10+tv-t+f-t/3"`` the two TV terms and the l1 norm of the temporal Fourier transform
(BART's ``-R F`` along time: x-f sparsity, the prior of k-t SPARSE for motion that repeats) at a
tenth or a third of the temporal weight.
Weights refer to data scaled so that the coil-combined zero-filled image of the
time-averaged k-space peaks at 1, so a weight carries over between files.
"""
from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from a2a_cli.cfl import read_cfl, write_cfl
from a2a_cli.fft import ifft2c

__all__ = [
    "REGULARISERS",
    "Setting",
    "backend",
    "reconstruct",
    "sample_arrays",
    "tune",
    "zero_filled",
]

Mode = Literal["dynamic", "sequential"]

#: Regularisers tried by :func:`tune`, per mode and backend.
REGULARISERS: dict[str, dict[str, tuple[str, ...]]] = {
    "bart": {"sequential": ("tv", "wavelet"),
             "dynamic": ("tv-t", "tv-xyt", "wavelet+tv-t", "tv/10+tv-t", "tv/3+tv-t", "llr", "llr+tv/3+tv-t",
                         "tv/10+tv-t+f-t/10", "tv/10+tv-t+f-t/3")},
    "sigpy": {"sequential": ("tv", "wavelet"), "dynamic": ("tv-t", "tv-xyt")},
}

# BART ``-R`` terms per regulariser; flags: 1|2 = x, y; 1024 = time (BART's dimension 10).
_BART_TERMS = {
    "tv": ("T:3:0:{w}",),
    "wavelet": ("W:3:0:{w}",),
    "tv-t": ("T:1024:0:{w}",),
    "tv-xyt": ("T:1027:0:{w}",),
    "wavelet+tv-t": ("W:3:0:{w}", "T:1024:0:{w}"),
    # two TV terms with their own weights: spatial TV at a fixed fraction of the temporal weight
    "tv/10+tv-t": ("T:3:0:{w10}", "T:1024:0:{w}"),
    "tv/3+tv-t": ("T:3:0:{w3}", "T:1024:0:{w}"),
    # locally low rank: 8x8 blocks (BART's default ``-b 8``, randomly shifted) as matrices of pixels x frames
    "llr": ("L:3:3:{w}",),
    # the three terms, at fixed ratios to the temporal TV weight (the best ratios of a coarse grid on texture-dyn)
    "llr+tv/3+tv-t": ("L:3:3:{w4}", "T:3:0:{w3}", "T:1024:0:{w}"),
    # l1 of the temporal Fourier transform (x-f sparsity, k-t SPARSE) beside the two TV terms, at a tenth or a
    # third of the temporal weight (alone it stayed near zero-filled on the periodic benchmark file)
    "tv/10+tv-t+f-t/10": ("T:3:0:{w10}", "T:1024:0:{w}", "F:1024:0:{w10}"),
    "tv/10+tv-t+f-t/3": ("T:3:0:{w10}", "T:1024:0:{w}", "F:1024:0:{w3}"),
    # plain SENSE: a small Tikhonov (l2) weight only; BART's ``-R Q`` (not tuned by default)
    "l2": ("Q:{w}",),
}
_TIME_DIM = 10


@dataclass(frozen=True)
class Setting:
    """A tuned compressed-sensing configuration.

    ``psnr``: mean PSNR (dB) on the tuning slices; ``doubled_psnr``: the same with
    twice the iterations (convergence check: they should agree to about 0.1 dB);
    ``table``: every ``(regulariser, weight, psnr)`` tried.
    """

    regulariser: str
    weight: float
    iterations: int = 200
    backend: str = "bart"
    psnr: float | None = None
    doubled_psnr: float | None = None
    table: tuple[tuple[str, float, float], ...] = field(default=(), repr=False)

    def label(self) -> str:
        """Short description, e.g. ``"BART pics, tv, weight 0.0042"``."""
        name = "BART pics" if self.backend == "bart" else "sigpy"
        return f"{name}, {self.regulariser}, weight {self.weight:.2g}"


def backend() -> str:
    """``"bart"`` when the ``bart`` executable is on the PATH, else ``"sigpy"``."""
    return "bart" if shutil.which("bart") else "sigpy"


# ----------------------------------------------------------------------------- arrays
def sample_arrays(sample) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``(kspace, mask, maps, reference)`` numpy arrays of an :class:`a2a_cli.data.Sample`.

    kspace ``(T, H, W)`` or ``(T, N, H, W)`` complex64; mask bool ``(T, H, W)``; maps
    ``(N, H, W)`` or None; reference ``(T, H, W)`` / ``(H, W)`` complex or None.
    """

    def cplx(t) -> np.ndarray:
        a = t[0].detach().cpu().numpy()
        return (a[0] + 1j * a[1]).astype(np.complex64)

    maps = None if sample.coil_maps is None else sample.coil_maps[0].detach().cpu().numpy().astype(np.complex64)
    ref = None if sample.reference is None else cplx(sample.reference)
    return cplx(sample.kspace), sample.mask[0, 0].detach().cpu().numpy() > 0, maps, ref


def _prepare(kspace: np.ndarray, mask: np.ndarray, maps: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checked ``(T, N, H, W)`` k-space (masked), bool ``(T, H, W)`` mask and ``(N, H, W)`` maps."""
    k = np.asarray(kspace).astype(np.complex64)
    if k.ndim == 3:
        k = k[:, None]
        if maps is None:
            maps = np.ones((1,) + k.shape[-2:], np.complex64)
    elif k.ndim != 4:
        raise ValueError(f"kspace must be (T, H, W) or (T, N, H, W), got shape {k.shape}")
    elif maps is None:
        raise ValueError("multi-coil kspace needs coil maps (N, H, W)")
    t, n, h, w = k.shape
    m = np.asarray(mask).astype(bool)
    if m.ndim == 2 and m.shape == (t, w):
        m = np.broadcast_to(m[:, None, :], (t, h, w))
    if m.shape != (t, h, w):
        raise ValueError(f"mask shape {m.shape} does not match kspace {k.shape}")
    s = np.asarray(maps).astype(np.complex64)
    if s.shape != (n, h, w):
        raise ValueError(f"maps shape {s.shape} does not match kspace {k.shape}")
    return k * m[:, None], np.ascontiguousarray(m), s


def _averaged(k: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """k-space averaged over the frames that measured each sample ``(N, H, W)``, and their union ``(H, W)``."""
    count = m.sum(0)
    return k.sum(0) / np.maximum(count, 1)[None], count > 0


def _combine(coil_images: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """``sum_c conj(S_c) I_c`` over the coil axis (second to last but two)."""
    return (np.conj(maps) * coil_images).sum(axis=-3)


def zero_filled(kspace: np.ndarray, mask: np.ndarray, maps: np.ndarray | None = None, mode: Mode = "sequential") -> np.ndarray:
    """Zero-filled coil-combined image(s): per frame (dynamic) or of the averaged k-space (sequential).

    >>> k = np.zeros((2, 4, 4), np.complex64); k[:, 2, 2] = 4.0
    >>> m = np.zeros((2, 4), bool); m[:, 2] = True
    >>> zero_filled(k, m, mode="sequential")[0, 0].real.round(6)
    1.0
    """
    k, m, s = _prepare(kspace, mask, maps)
    if mode == "dynamic":
        return _combine(ifft2c(k), s).astype(np.complex64)
    avg, _ = _averaged(k, m)
    return _combine(ifft2c(avg), s).astype(np.complex64)


def _scale(k: np.ndarray, m: np.ndarray, s: np.ndarray) -> float:
    avg, _ = _averaged(k, m)
    peak = float(np.abs(_combine(ifft2c(avg), s)).max())
    return peak if peak > 0 and math.isfinite(peak) else 1.0


# ----------------------------------------------------------------------------- BART
def _to_bart(a: np.ndarray, time_axis: bool) -> np.ndarray:
    """``([T,] N, H, W)`` -> BART dims ``(H, W, 1, N, 1, ..., T)`` (time at dimension 10)."""
    if not time_axis:
        return np.transpose(a, (1, 2, 0))[:, :, None, :]
    t, n, h, w = a.shape
    out = np.transpose(a, (2, 3, 1, 0))  # (H, W, N, T)
    return out.reshape(h, w, 1, n, *([1] * (_TIME_DIM - 4)), t)


def _bart(k: np.ndarray, m: np.ndarray, s: np.ndarray, mode: Mode, regulariser: str, weight: float, iterations: int) -> np.ndarray:
    terms = _BART_TERMS[regulariser]
    if mode == "sequential" and regulariser not in ("tv", "wavelet", "l2"):
        raise ValueError(f"regulariser {regulariser!r} needs dynamic data")
    with tempfile.TemporaryDirectory(prefix="a2a-bart-") as tmp:
        d = Path(tmp)
        if mode == "sequential":
            avg, union = _averaged(k, m)
            write_cfl(d / "k", _to_bart(avg, False), min_dims=16)
            write_cfl(d / "p", union[:, :, None].astype(np.complex64), min_dims=16)
        else:
            write_cfl(d / "k", _to_bart(k, True), min_dims=16)
            write_cfl(d / "p", _to_bart(m[:, None].astype(np.complex64), True), min_dims=16)
        write_cfl(d / "s", _to_bart(s, False), min_dims=16)
        # -w 1: no automatic scaling (the data are scaled already, so weights carry over);
        # -u: ADMM penalty; 0.1 converges in about half the iterations of BART's default
        # 0.5 for total variation at these weights (measured), and is unused by FISTA (wavelets).
        cmd = ["bart", "pics", "-w", "1", "-u", "0.1", "-i", str(iterations), "-p", str(d / "p")]
        for term in terms:
            cmd += ["-R", term.format(w=f"{weight:.6g}", w10=f"{weight / 10:.6g}", w3=f"{weight / 3:.6g}", w4=f"{weight / 4:.6g}",
                                          w30=f"{weight / 30:.6g}")]
        cmd += [str(d / "k"), str(d / "s"), str(d / "x")]
        env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"bart pics failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
        x = read_cfl(d / "x", keep_trailing=True)
    h, w = k.shape[-2:]
    if mode == "sequential":
        return x.reshape(h, w)
    return np.moveaxis(x.reshape(h, w, -1), -1, 0)  # (T, H, W)


# ----------------------------------------------------------------------------- sigpy
def _sigpy(k: np.ndarray, m: np.ndarray, s: np.ndarray, mode: Mode, regulariser: str, weight: float, iterations: int) -> np.ndarray:
    import sigpy as sp

    if mode == "sequential":
        y, union = _averaged(k, m)  # (N, H, W), (H, W)
        shape, mult = y.shape[-2:], union[None].astype(np.complex64)
        tv_axes = (0, 1)
    else:
        y, mult = k, m[:, None].astype(np.complex64)  # (T, N, H, W)
        shape = (k.shape[0],) + k.shape[-2:]
        tv_axes = {"tv-t": (0,), "tv-xyt": (0, 1, 2), "tv": (1, 2)}.get(regulariser, (0,))
    if mode == "sequential":
        S = sp.linop.Multiply(shape, s)
    else:
        S = sp.linop.Multiply((shape[0], 1) + shape[1:], s) * sp.linop.Reshape((shape[0], 1) + shape[1:], shape)
    A = sp.linop.Multiply(S.oshape, mult) * sp.linop.FFT(S.oshape, axes=(-2, -1), center=True) * S
    y = (y * mult).astype(np.complex64)
    if regulariser == "wavelet":
        W = sp.linop.Wavelet(shape, axes=(-2, -1))
        proxg = sp.prox.UnitaryTransform(sp.prox.L1Reg(W.oshape, weight), W)
        app = sp.app.LinearLeastSquares(A, y, proxg=proxg, max_iter=iterations, show_pbar=False)
    elif regulariser in ("tv", "tv-t", "tv-xyt"):
        G = sp.linop.FiniteDifference(shape, axes=tv_axes)
        app = sp.app.LinearLeastSquares(A, y, proxg=sp.prox.L1Reg(G.oshape, weight), G=G, max_iter=iterations, show_pbar=False)
    else:
        raise ValueError(f"regulariser {regulariser!r} is not available with sigpy")
    return np.asarray(app.run())


# ----------------------------------------------------------------------------- public
def reconstruct(
    kspace: np.ndarray, mask: np.ndarray, maps: np.ndarray | None = None, *, mode: Mode,
    setting: Setting | None = None, regulariser: str | None = None, weight: float | None = None,
    iterations: int | None = None, backend_name: str | None = None,
) -> np.ndarray:
    """Compressed-sensing reconstruction of one slice, complex64 ``(T, H, W)`` (dynamic) or ``(H, W)`` (sequential).

    Give a tuned ``setting`` or ``regulariser`` and ``weight`` (explicit arguments win).
    The data are scaled internally (see the module docstring); the result is in the
    data's units.
    """
    if setting is not None:
        regulariser = regulariser or setting.regulariser
        weight = setting.weight if weight is None else weight
        iterations = iterations or setting.iterations
        backend_name = backend_name or setting.backend
    if regulariser is None or weight is None:
        raise ValueError("give a setting, or a regulariser and a weight")
    if mode not in ("dynamic", "sequential"):
        raise ValueError(f"mode must be 'dynamic' or 'sequential', got {mode!r}")
    k, m, s = _prepare(kspace, mask, maps)
    scale = _scale(k, m, s)
    solver = _bart if (backend_name or backend()) == "bart" else _sigpy
    x = solver(k / scale, m, s, mode, regulariser, float(weight), int(iterations or 200))
    return (x * scale).astype(np.complex64)


def _score(data: Sequence[tuple], mode: Mode, regulariser: str, weight: float, iterations: int, name: str) -> float:
    from a2a_cli.metrics import psnr

    values = []
    for k, m, s, ref in data:
        x = reconstruct(k, m, s, mode=mode, regulariser=regulariser, weight=weight, iterations=iterations, backend_name=name)
        values.append(psnr(ref, x))
    return float(np.mean(values))


def _scan(data: list, mode: Mode, reg: str, grid: list[float], adaptive: bool, refine: int, iterations: int, name: str) -> dict[float, float]:
    """PSNR per weight for one regulariser: the grid, extended at an end and refined when ``adaptive``."""
    tried: dict[float, float] = {}

    def trial(w: float) -> None:
        if w not in tried:
            tried[w] = _score(data, mode, reg, w, iterations, name)

    for w in grid:
        trial(w)
    if not adaptive:
        return tried
    for _ in range(3):  # the best at an end of the grid: extend it by a decade
        w_best = max(tried, key=tried.__getitem__)
        if w_best not in (min(tried), max(tried)):
            break
        trial(w_best / 10 if w_best == min(tried) else w_best * 10)
    if refine > 1:
        w_best = max(tried, key=tried.__getitem__)
        step = 10 ** (1 / refine)
        for j in range(1, refine // 2 + 1):
            trial(w_best * step**j)
            trial(w_best / step**j)
    return tried


def tune(
    slices: Iterable[tuple], mode: Mode, regularisers: Sequence[str] | None = None,
    weights: Sequence[float] | None = None, iterations: int = 200, backend_name: str | None = None,
    refine: int = 8,
) -> Setting:
    """Pick the regulariser and weight with the best mean PSNR on training slices.

    ``slices``: ``(kspace, mask, maps, reference)`` tuples as :func:`sample_arrays`
    gives (the reference is the ground-truth image of the mode's shape). Each
    regulariser is scanned over ``weights`` (default ``10^-4 ... 10^-0.5`` in half
    decades, extended by a decade while the best lies at an end), then refined around
    its best weight in steps of ``1/refine`` decade. The winner is rerun with twice
    the iterations (``Setting.doubled_psnr``) to show convergence.
    """
    data = list(slices)
    if not data or any(d[3] is None for d in data):
        raise ValueError("tune needs slices with references")
    name = backend_name or backend()
    regularisers = tuple(regularisers or REGULARISERS[name][mode])
    grid = sorted(weights) if weights is not None else [10 ** (e / 2) for e in range(-8, 0)]
    table: list[tuple[str, float, float]] = []
    best: tuple[float, str, float] = (-math.inf, "", 0.0)
    for reg in regularisers:
        tried = _scan(data, mode, reg, grid, weights is None, refine, iterations, name)
        table += [(reg, w, p) for w, p in tried.items()]
        w_best = max(tried, key=tried.__getitem__)
        if tried[w_best] > best[0]:
            best = (tried[w_best], reg, w_best)
    setting = Setting(best[1], best[2], iterations, name, best[0], None, tuple(table))
    doubled = _score(data, mode, setting.regulariser, setting.weight, 2 * iterations, name)
    return replace(setting, doubled_psnr=doubled)
