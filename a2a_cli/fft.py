"""The one centred, orthonormal FFT of the project, for torch tensors and numpy arrays alike.

Centred means ``ifftshift -> fft -> fftshift`` (k-space centre in the middle of the array);
orthonormal means ``F^H F = I``, so the adjoint is the inverse.

>>> import numpy as np, torch
>>> z = np.random.default_rng(0).standard_normal((3, 8, 8)) + 0j
>>> bool(np.allclose(ifft2c(fft2c(z)), z))
True
>>> bool(np.allclose(fft2c(torch.from_numpy(z)).numpy(), fft2c(z)))
True
>>> bool(np.allclose(fftc(z, axes=(0,)), np.fft.fftshift(np.fft.fft(np.fft.ifftshift(z, axes=0), axis=0, norm="ortho"), axes=0)))
True
"""
from __future__ import annotations

from typing import Sequence, TypeVar

import numpy as np
import torch

__all__ = ["fftc", "ifftc", "fft1c", "ifft1c", "fft2c", "ifft2c"]

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def _shift(z: torch.Tensor, dims: Sequence[int], inverse: bool) -> torch.Tensor:
    """``fftshift`` (or ``ifftshift``) one axis at a time: a roll over several axes at
    once takes a slow path on the CPU (measured 20-60x slower at 8x180x230)."""
    for d in dims:
        n = z.shape[d]
        z = torch.roll(z, -(n // 2) if inverse else n // 2, d)
    return z


def _centred(z: Array, axes: Sequence[int], inverse: bool) -> Array:
    axes = tuple(axes)
    if isinstance(z, torch.Tensor):
        z = _shift(z, axes, inverse=True)
        z = (torch.fft.ifftn if inverse else torch.fft.fftn)(z, dim=axes, norm="ortho")
        return _shift(z, axes, inverse=False)
    z = np.fft.ifftshift(z, axes=axes)
    z = (np.fft.ifftn if inverse else np.fft.fftn)(z, axes=axes, norm="ortho")
    return np.fft.fftshift(z, axes=axes)


def fftc(z: Array, axes: Sequence[int] = (-2, -1)) -> Array:
    """Centred orthonormal FFT of a complex tensor or array over ``axes``."""
    return _centred(z, axes, inverse=False)


def ifftc(k: Array, axes: Sequence[int] = (-2, -1)) -> Array:
    """Inverse (and adjoint) of :func:`fftc`."""
    return _centred(k, axes, inverse=True)


def fft2c(z: Array) -> Array:
    """Centred orthonormal 2D FFT over the last two axes (image -> k-space)."""
    return _centred(z, (-2, -1), inverse=False)


def ifft2c(k: Array) -> Array:
    """Inverse (and adjoint) of :func:`fft2c` (k-space -> image)."""
    return _centred(k, (-2, -1), inverse=True)


def fft1c(z: Array, dim: int = -1) -> Array:
    """Centred orthonormal 1D FFT along ``dim`` (one factor of :func:`fft2c`).

    >>> z = torch.randn(3, 6, 5, dtype=torch.complex64)
    >>> bool(torch.allclose(fft1c(fft1c(z, -1), -2), fft2c(z), atol=1e-5))
    True
    """
    return _centred(z, (dim,), inverse=False)


def ifft1c(k: Array, dim: int = -1) -> Array:
    """Inverse (and adjoint) of :func:`fft1c`."""
    return _centred(k, (dim,), inverse=True)
