"""Coil sensitivity maps: estimation, normalisation and coil compression.

Layouts (complex tensors; numpy arrays are accepted wherever a tensor is):

* multi-coil k-space of one slice: ``(T, N, H, W)`` (T frames, N coils), centred as
  made by :func:`a2a_cli.physics.fft2c`; or one time-averaged k-space ``(N, H, W)``;
* sampling mask: ``(T, H, W)`` (or anything broadcasting to it, e.g. ``(T, 1, W)``),
  shared by the coils;
* sensitivity maps: ``(N, H, W)``.

Estimation works on the **time-averaged** k-space (each location averaged over the
frames that sampled it): the coil sensitivities do not move with the anatomy, and
the frames of a dynamic series together cover far more of k-space than any one of
them. The calibration (ACS) region is the largest block around the k-space centre
that this average samples fully (:func:`calibration_region`).

* ``espirit`` (:func:`espirit_maps`): calibration matrix of all k x k blocks of the
  ACS region, its dominant right singular vectors as k-space kernels, and per pixel
  the top eigenvector of the image-space operator they define; pixels whose top
  eigenvalue is below ``crop`` (no consistent coil signal: outside the object) get
  zero maps.
* ``lowres`` (:func:`lowres_maps`): low-pass coil images divided by their
  root-sum-of-squares; the fallback when the calibration region is too small for
  ESPIRiT (fewer than ``2 * kernel`` samples along an axis).

Normalisation and phase convention (:func:`normalise_maps`): where the maps are
non-zero, ``sum_c |S_c|^2 = 1``, and their phase is relative to a **virtual body
coil**: the unit coil combination ``w`` that captures the most map energy (the
dominant left singular vector of the maps over all pixels, the sum of its weights
made real positive). After normalisation ``w^H S(p)`` is real and >= 0 at every pixel, so
the coil-combined image ``sum_c conj(S_c) I_c`` carries the object's phase as the
virtual body coil sees it. The convention depends only on the maps (not on how an
estimator fixed each pixel's eigenvector phase), so maps estimated by any method and
the simulator's true maps agree.

>>> import torch
>>> from a2a_cli.physics import fft2c
>>> y, x = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
>>> true = normalise_maps(torch.stack([torch.exp(-((y - cy) ** 2 + (x - cx) ** 2)) * torch.exp(1j * (x + c))
...                                   for c, (cy, cx) in enumerate([(-1, 0), (1, 0), (0, -1), (0, 1)])]))
>>> disc = (x ** 2 + y ** 2 < 0.7).to(torch.complex64)          # the object
>>> maps, method = estimate_maps(fft2c(true * disc)[None], torch.ones(1, 32, 32))  # one fully sampled frame
>>> method, tuple(maps.shape)
('espirit', (4, 32, 32))
>>> bool(((maps - true).abs()[:, disc.real > 0] < 0.02).all())
True
"""
from __future__ import annotations

import contextlib
import math
from typing import Iterator, Literal, Optional

import numpy as np
import torch

from .physics import ifft2c

__all__ = [
    "METHODS",
    "rss",
    "time_average",
    "calibration_region",
    "espirit_maps",
    "lowres_maps",
    "normalise_maps",
    "estimate_maps",
    "coil_compression_matrix",
    "compress_coils",
]

#: Estimation methods of :func:`estimate_maps`.
METHODS = ("espirit", "lowres")


def _tensor(a: object, dtype: torch.dtype = torch.complex64) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(a) if isinstance(a, np.ndarray) else a)
    return t.to(dtype)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run a small dense eigenproblem on one thread.

    A multi-threaded LAPACK eigh of a few hundred rows is slow, and on a busy machine
    it was measured 50x slower than on one thread.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def rss(images: torch.Tensor, dim: int = -3) -> torch.Tensor:
    """Root-sum-of-squares over the coil axis ``dim``: ``sqrt(sum_c |I_c|^2)``.

    >>> rss(torch.tensor([[3.0 + 0j], [4j]]), dim=0)
    tensor([5.])
    """
    return images.abs().pow(2).sum(dim).sqrt()


def time_average(kspace: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Average ``(T, N, H, W)`` k-space over the frames that sampled each location.

    ``mask`` broadcasts to ``(T, H, W)``. Returns ``(average (N, H, W), sampled (H, W) bool)``;
    a 3D ``(N, H, W)`` k-space is returned as is (its non-zero locations as ``sampled``).
    """
    k = _tensor(kspace)
    if k.ndim == 3:
        return k, (k != 0).any(0)
    if k.ndim != 4:
        raise ValueError(f"k-space must be (T, N, H, W) or (N, H, W), got shape {tuple(k.shape)}")
    t, _, h, w = k.shape
    m = torch.as_tensor(mask).to(torch.float32).expand(t, h, w)
    count = m.sum(0)
    avg = (k * m[:, None]).sum(0) / torch.clamp(count, min=1.0)
    return avg, count > 0


def _centred_run(ok: np.ndarray, limit: int) -> int:
    """Length of the run of True around index ``len // 2`` (counted like ``centre_line_indices``), at most ``limit``."""
    n = ok.shape[0]
    best = 0
    for size in range(1, min(n, limit) + 1):
        start = n // 2 - size // 2
        if ok[start:start + size].all():
            best = size
        else:
            break
    return best


def calibration_region(sampled: torch.Tensor | np.ndarray, max_size: int = 24) -> tuple[slice, slice]:
    """The largest centred block of fully sampled k-space, at most ``max_size`` per axis.

    ``sampled`` is bool ``(H, W)``. The block holds the DC sample ``(H // 2, W // 2)``
    and grows symmetrically (an even size has one more sample before the centre, as
    in :func:`a2a_cli.data.centre_line_indices`). Returns ``(rows, cols)`` slices
    (empty when the centre itself was not sampled).

    >>> m = np.zeros((16, 16), bool); m[:, 5:11] = True
    >>> calibration_region(m, max_size=8)
    (slice(4, 12, None), slice(5, 11, None))
    """
    s = np.asarray(sampled.cpu() if isinstance(sampled, torch.Tensor) else sampled, dtype=bool)
    h, w = s.shape
    rows = _centred_run(s[:, w // 2], max_size)
    for _ in range(2):  # columns within those rows, then rows within those columns
        r0 = h // 2 - rows // 2
        cols = _centred_run(s[r0:r0 + rows].all(0), max_size) if rows else 0
        c0 = w // 2 - cols // 2
        rows = _centred_run(s[:, c0:c0 + cols].all(1), max_size) if cols else 0
    r0, c0 = h // 2 - rows // 2, w // 2 - cols // 2
    return slice(r0, r0 + rows), slice(c0, c0 + cols)


def espirit_maps(
    calib: torch.Tensor, shape: tuple[int, int], kernel: int = 6, threshold: float = 0.02, crop: float = 0.8,
) -> tuple[torch.Tensor, torch.Tensor]:
    """ESPIRiT maps from fully sampled calibration k-space ``calib`` ``(N, h, w)``.

    1. Calibration matrix: one row per ``kernel x kernel`` block of ``calib`` (all
       coils), ``(P, N k^2)``.
    2. Its right singular vectors with singular value >= ``threshold * s_max`` span
       the blocks that consistent multi-coil data can have; their rows of ``Vh`` are
       k-space kernels ``v_j`` ``(N, k, k)``.
    3. Projecting every block of a k-space onto that span and averaging the
       overlapping blocks is a convolution; in image space it is, per pixel p, the
       matrix ``G(p) = (1 / k^2) sum_j a_j(p) a_j(p)^H`` with ``a_j(p) = sum_u v_j[u]
       exp(2 pi i u.p)`` (the kernel's inverse DFT on the image grid). Coil images
       ``S(p) rho(p)`` are left unchanged by it, so the sensitivities are the
       eigenvectors of ``G(p)`` with eigenvalue 1. ``G`` is evaluated from its
       ``(2k-1)^2`` Fourier coefficients, a block of image rows at a time, so memory
       stays small for large images and many coils.
    4. Maps: the top eigenvector where its eigenvalue exceeds ``crop``, else zero,
       normalised by :func:`normalise_maps`.

    Returns ``(maps (N, H, W) complex64, eigenvalue (H, W) float32)``.
    """
    calib = _tensor(calib, torch.complex128)
    n, ch, cw = calib.shape
    h, w = shape
    k = int(kernel)
    if min(ch, cw) < k:
        raise ValueError(f"calibration region {ch}x{cw} is smaller than the {k}x{k} kernel")
    blocks = calib.unfold(1, k, 1).unfold(2, k, 1)  # (N, ch-k+1, cw-k+1, k, k)
    a = blocks.permute(1, 2, 0, 3, 4).reshape(-1, n * k * k)
    # right singular vectors from the Gram matrix A^H A = Vh^H S^2 Vh: an eigh of (N k^2)^2
    # is much faster than the SVD of the tall A, and double precision keeps s^2 accurate
    with _one_thread():
        evals, evecs = torch.linalg.eigh(a.mH @ a)
    s = evals.flip(0).clamp(min=0).sqrt()
    vh = evecs.flip(1).mH
    rank = max(1, int((s >= threshold * s[0]).sum()))
    kernels = vh[:rank].reshape(rank, n, k, k)
    # G(p) = sum_d h[d] exp(2 pi i d.p) with h_ab[d] = (1/k^2) sum_j sum_u v_ja[u] conj(v_jb[u - d]),
    # d in [-(k-1), k-1]^2: a correlation, done by FFT on a (2k-1)^2 grid (no wrap-around)
    size = 2 * k - 1
    spec = torch.fft.fft2(kernels, s=(size, size))
    h_ab = torch.fft.fftshift(torch.fft.ifft2(torch.einsum("jayx,jbyx->abyx", spec, spec.conj())), dim=(-2, -1)) / (k * k)
    d = torch.arange(-(k - 1), k, dtype=torch.float64)
    # image pixel i sits at p = i - H // 2 (the fftshift of ifft2c)
    ey = torch.exp(2j * math.pi * d[:, None] * (torch.arange(h) - h // 2)[None, :] / h)
    ex = torch.exp(2j * math.pi * d[:, None] * (torch.arange(w) - w // 2)[None, :] / w)
    gx = torch.einsum("abyx,xl->abyl", h_ab, ex)  # (N, N, 2k-1, W)
    # per-pixel N x N eigenproblems, a block of rows at a time to bound memory
    rows = max(1, (1 << 22) // (n * n * w))
    maps = torch.zeros(n, h, w, dtype=torch.complex64)
    top = torch.zeros(h, w, dtype=torch.float32)
    for r0 in range(0, h, rows):
        g = torch.einsum("abyl,yi->ilab", gx, ey[:, r0:r0 + rows])  # (R, W, N, N) Hermitian
        evals, evecs = torch.linalg.eigh(g.to(torch.complex64))  # single precision: ample for maps, 2x faster
        top[r0:r0 + rows] = evals[..., -1]
        maps[:, r0:r0 + rows] = evecs[..., -1].permute(2, 0, 1)  # unit norm per pixel
    maps = maps * (top > crop)
    return normalise_maps(maps.to(torch.complex64)), top.to(torch.float32)


def _hann(n: int, width: int) -> torch.Tensor:
    """Centred Hann window of ``width`` samples (DC at ``n // 2``) on ``n`` samples."""
    d = torch.arange(n, dtype=torch.float64) - n // 2
    half = max(width, 1) / 2
    return torch.where(d.abs() < half, torch.cos(math.pi * d / (2 * half)) ** 2, torch.zeros(()))


def lowres_maps(average: torch.Tensor, size: int = 24, threshold: float = 0.05) -> torch.Tensor:
    """Low-resolution maps: low-pass coil images over their root-sum-of-squares.

    ``average`` is the time-averaged k-space ``(N, H, W)`` (zero where not sampled);
    a Hann window ``size`` samples wide along both axes keeps its centre. Pixels where
    the low-pass rss is below ``threshold`` times its maximum (background) get zero
    maps. The object's own (low-resolution) phase cancels in :func:`normalise_maps`.
    Returns complex64 ``(N, H, W)``.
    """
    k = _tensor(average, torch.complex128)
    _, h, w = k.shape
    window = _hann(h, size)[:, None] * _hann(w, size)[None, :]
    images = ifft2c(k * window)
    r = rss(images, 0)
    support = r > threshold * r.max()
    maps = torch.where(support, images / torch.clamp(r, min=1e-30), torch.zeros((), dtype=images.dtype))
    return normalise_maps(maps.to(torch.complex64))


def normalise_maps(maps: torch.Tensor) -> torch.Tensor:
    """``sum_c |S_c|^2 = 1`` where the maps are non-zero, phase relative to the virtual body coil.

    See the module docstring for the convention. ``maps`` ``(N, H, W)`` (or
    ``(B, N, H, W)``, each sample separately); zero pixels stay zero.

    >>> s = normalise_maps(torch.tensor([[[2j]], [[0j]]]))
    >>> s.flatten().tolist()
    [(1+0j), 0j]
    """
    s = _tensor(maps)
    if s.ndim == 4:
        return torch.stack([normalise_maps(m) for m in s])
    norm = rss(s, 0)
    on = norm > 0
    s = torch.where(on, s / torch.clamp(norm, min=1e-30), torch.zeros((), dtype=s.dtype))
    flat = s.reshape(s.shape[0], -1)[:, on.flatten()].to(torch.complex128)
    if flat.shape[1] == 0:
        return s
    u, _, _ = torch.linalg.svd(flat @ flat.conj().T)
    vbc = u[:, 0]
    # fix the virtual coil's free global phase: the sum of its weights real positive
    # (continuous in the maps, unlike "largest entry real", which jumps between near-equal coils)
    total = vbc.sum()
    vbc = vbc * (total.conj() / total.abs() if total.abs() > 1e-12 else 1.0)
    proj = torch.einsum("c,chw->hw", vbc.conj().to(s.dtype), s)
    phase = torch.where(proj.abs() > 0, proj.conj() / torch.clamp(proj.abs(), min=1e-30), torch.ones((), dtype=s.dtype))
    return s * phase


def estimate_maps(
    kspace: torch.Tensor | np.ndarray,
    mask: torch.Tensor | np.ndarray,
    method: Literal["espirit", "lowres"] = "espirit",
    calibration: int = 24,
    kernel: int = 6,
    threshold: float = 0.02,
    crop: float = 0.8,
) -> tuple[torch.Tensor, str]:
    """Sensitivity maps of one slice from its own data.

    ``kspace`` ``(T, N, H, W)`` (or one time-averaged ``(N, H, W)``), ``mask``
    broadcasting to ``(T, H, W)``. ``calibration``: the most centre samples per axis
    used (bounds the compute). ``espirit`` falls back to ``lowres`` when the fully
    sampled centre of the time average is smaller than ``2 * kernel`` along an axis.
    Returns ``(maps complex64 (N, H, W), method actually used)``.
    """
    if method not in METHODS:
        raise ValueError(f"sensitivity estimation method must be one of {', '.join(METHODS)}, got {method!r}")
    avg, sampled = time_average(kspace, mask)
    # maps do not depend on the data's scale; unit scale keeps the thresholds meaningful
    # for k-space stored at 1e-15 or 1e15
    energy = avg[:, sampled].abs().double().square().mean() if bool(sampled.any()) else None
    if energy is not None and math.isfinite(float(energy)) and float(energy) > 0:
        avg = avg / float(energy.sqrt())
    rows, cols = calibration_region(sampled, calibration)
    size = min(rows.stop - rows.start, cols.stop - cols.start)
    if method == "espirit" and size >= 2 * kernel:
        maps, _ = espirit_maps(avg[:, rows, cols], tuple(avg.shape[-2:]), kernel=kernel, threshold=threshold, crop=crop)
        if bool((maps != 0).any()):
            return maps, "espirit"
    return lowres_maps(avg, size=calibration), "lowres"


def coil_compression_matrix(kspace: torch.Tensor | np.ndarray, n: int, coil_axis: int = -3) -> torch.Tensor:
    """The ``(n, N)`` matrix with orthonormal rows that keeps most of the signal energy in ``n`` virtual coils.

    Its rows are the dominant eigenvectors (conjugated) of the coil covariance
    ``sum_samples y y^H`` of ``kspace`` (coil axis ``coil_axis``; unsampled zeros add nothing).
    """
    k = _tensor(kspace, torch.complex128)
    ncoil = k.shape[coil_axis]
    if not 1 <= n <= ncoil:
        raise ValueError(f"cannot compress {ncoil} coils to {n} virtual coils")
    flat = k.movedim(coil_axis, 0).reshape(ncoil, -1)
    _, vecs = torch.linalg.eigh(flat @ flat.conj().T)  # ascending eigenvalues
    return vecs[:, -n:].flip(-1).conj().T.to(torch.complex64)


def compress_coils(
    kspace: torch.Tensor | np.ndarray, n: int, coil_axis: int = -3, matrix: Optional[torch.Tensor] = None,
    return_matrix: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """SVD coil compression of ``kspace`` to ``n`` virtual coils (along ``coil_axis``).

    Applies ``matrix`` (default :func:`coil_compression_matrix` of this k-space) to
    the coil axis. The measurement model stays exact: virtual coil ``v`` sees
    ``sum_c U_vc S_c x``, so stored maps are compressed with the same matrix (give it
    as ``matrix``). Virtual coils come in order of decreasing energy.

    >>> y = torch.randn(8, 1, 16, 16, dtype=torch.complex64) * torch.tensor([1.0, 1e-3] * 4)[:, None, None, None]
    >>> yc = compress_coils(y, 4, coil_axis=0)
    >>> tuple(yc.shape), round(float(yc.abs().pow(2).sum() / y.abs().pow(2).sum()), 4)
    ((4, 1, 16, 16), 1.0)
    """
    k = _tensor(kspace)
    u = coil_compression_matrix(k, n, coil_axis) if matrix is None else _tensor(matrix)
    out = torch.tensordot(u, k.movedim(coil_axis, 0), dims=([1], [0])).movedim(0, coil_axis)
    return (out, u) if return_matrix else out
