"""Conversion of any supported input to an a2a file (the ``a2a convert`` command).

The input is read through :mod:`a2a_cli.data.reader` (so every layout it reads converts),
slice by slice, and written atomically: ``kspace`` complex64 ``(S, T, H, W)`` or
``(S, T, N, H, W)``, ``mask`` uint8 ``(S, T, H, W)``, the reference and coil maps.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import torch

from ..atomic import atomic_write
from ..coils import compress_coils
from ..errors import InputError
from ..geometry import read_geometry
from ..paths import attr_path, refuse_outputs_over_inputs
from .hdf5 import COMPRESSION
from .layout import SplitOptions
from .reader import detect, inspect_file, read_slice

__all__ = ["convert"]

PathLike = str | os.PathLike


def _complex_np(t: torch.Tensor) -> np.ndarray:
    """``(1, 2, ...)`` float tensor -> complex64 ``(...)``."""
    a = t[0].numpy()
    return (a[0] + 1j * a[1]).astype(np.complex64)


def convert(
    source: PathLike, target: PathLike, mask_file: PathLike | None = None, split: SplitOptions | None = None,
    overwrite: bool = False, on_slice: Callable[[int, int], None] | None = None, virtual_coils: int | None = None,
) -> Path:
    """Write the a2a file of any supported input, slice by slice and atomically.

    Output: ``kspace`` complex64 ``(S, T, H, W)`` (one coil) or ``(S, T, N, H, W)``,
    ``mask`` uint8 ``(S, T, H, W)``, ``reference`` ``(S, T, H, W)`` (dynamic) or
    ``(S, H, W)`` (sequential) when the input has one; attributes ``acquisition``
    (the mode), ``source_file``, ``source_format``, and the pixel spacing and frame time
    that the input records (:mod:`a2a_cli.geometry`). Returns the target path.

    ``virtual_coils`` = n compresses each slice's coils to n virtual coils
    (:func:`a2a_cli.coils.compress_coils`, a matrix per slice); the slice's sensitivity
    maps go through the same matrix, so the measurement model stays exact and every
    later step (training, data consistency) runs N/n times cheaper on the coil axis.
    """
    source, target = Path(source), Path(target)
    refuse_outputs_over_inputs([target], [source, mask_file], "the output would replace an input file (the data or its mask); choose another name")
    info = inspect_file(source, split=split, mask_file=mask_file)
    if virtual_coils is not None:
        if not info.coils:
            raise InputError(source, "--virtual-coils needs multi-coil data; the file has one coil")
        if not 1 <= virtual_coils < info.coils:
            fewer = "1" if info.coils == 2 else f"a number from 1 to {info.coils - 1}"
            raise InputError(source, f"--virtual-coils {virtual_coils}: the file has {info.coils} coils; compressing "
                                     f"them means fewer: give {fewer}")
    fmt = info.reader if info.reader != "a2a" else detect(source)
    t, h, w, s = info.frames, info.height, info.width, info.n_slices
    with atomic_write(target, overwrite) as tmp, h5py.File(tmp, "w") as out:
        k_ds = m_ds = r_ds = s_ds = None
        for index in range(s):
            sample = read_slice(source, index, split=split, info=info, allow_empty_frames=True, mask_file=mask_file)
            k = _complex_np(sample.kspace)
            maps = None if sample.coil_maps is None else sample.coil_maps[0]
            if virtual_coils is not None:
                kc, matrix = compress_coils(k, virtual_coils, coil_axis=-3, return_matrix=True)
                k = kc.numpy()
                if not np.isfinite(k).all():  # sums of coils near the float32 limit overflow
                    raise InputError(source, f"slice {index}: --virtual-coils {virtual_coils} overflows complex64 "
                                             "(k-space values near the float32 limit); scale the k-space down first")
                maps = None if maps is None else compress_coils(maps, virtual_coils, coil_axis=0, matrix=matrix)
            if k_ds is None:
                k_ds = out.create_dataset("kspace", shape=(s,) + k.shape, dtype=np.complex64,
                                          chunks=(1,) * (k.ndim - 1) + (h, w), **COMPRESSION)
                m_ds = out.create_dataset("mask", shape=(s, t, h, w), dtype=np.uint8, chunks=(1, 1, h, w), **COMPRESSION)
                if sample.reference is not None:
                    rshape = (t, h, w) if sample.reference.ndim == 5 else (h, w)
                    r_ds = out.create_dataset("reference", shape=(s,) + rshape, dtype=np.complex64,
                                              chunks=(1,) * (len(rshape) - 1) + (h, w), **COMPRESSION)
                if maps is not None:  # stored, so reading the output does not estimate them again
                    s_ds = out.create_dataset("sensitivity_maps", shape=(s,) + tuple(maps.shape),
                                              dtype=np.complex64, chunks=(1, 1, h, w), **COMPRESSION)
            k_ds[index] = k
            m_ds[index] = sample.mask[0, 0].numpy().astype(np.uint8)  # type: ignore[index]
            if r_ds is not None and sample.reference is not None:
                r_ds[index] = _complex_np(sample.reference)
            if s_ds is not None and maps is not None:
                s_ds[index] = maps.numpy()
            if on_slice is not None:
                on_slice(index + 1, s)
        out.attrs["acquisition"] = info.mode
        out.attrs["source_file"] = attr_path(source)  # bytes when the name is not UTF-8: nothing is lost
        out.attrs["source_format"] = fmt
        for key, value in read_geometry(source).items():  # pixel spacing, frame time (see a2a_cli.geometry)
            out.attrs[key] = value
        if info.coils:
            # the a2a mark of a coil axis in 'kspace' (S, T, N, H, W)
            out.attrs["coils"] = int(virtual_coils or info.coils)
            if virtual_coils is not None:
                out.attrs["compressed_from_coils"] = int(info.coils)
    return target
