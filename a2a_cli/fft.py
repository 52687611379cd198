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

__all__ = ["fftc", "ifftc", "fft2c", "ifft2c"]

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def _centred(z: Array, axes: Sequence[int], inverse: bool) -> Array:
    axes = tuple(axes)
    if isinstance(z, torch.Tensor):
        z = torch.fft.ifftshift(z, dim=axes)
        z = (torch.fft.ifftn if inverse else torch.fft.fftn)(z, dim=axes, norm="ortho")
        return torch.fft.fftshift(z, dim=axes)
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
