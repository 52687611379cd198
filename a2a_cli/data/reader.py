"""Which reader reads a file, and the public entry points that dispatch through them.

A reader is a module with the functions of :class:`Reader` (``NAME``, ``detect``,
``inspect``, ``read_sample``, ``read_reference``, ``read_mask``). :data:`READERS` lists
them in the order they are asked: the first whose ``detect`` says yes reads the file,
and the :class:`~a2a_cli.data.layout.FileInfo` it makes records its ``NAME`` (``info.reader``),
so later reads go straight to it. The a2a reader comes last and takes any other file
(it names what is missing). A slice is read in three steps: the reader's
``read_sample`` (k-space, mask, stored coil maps), the coil-map step
(:class:`~a2a_cli.data.coil_maps.CoilMaps`: estimated maps), then ``read_reference``,
which may combine coil images with those maps (CMRxRecon).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import h5py
import numpy as np
import torch

from ..errors import InputError
from . import a2a_file, cmrxrecon, fastmri, ismrmrd, radial_file
from .coil_maps import CoilMaps
from .hdf5 import damage_as_input_error, open_file
from .layout import FileInfo, Sample, SensitivityChoice, SplitOptions, check_declared_size, check_index, with_sensitivity

__all__ = ["Reader", "READERS", "reader_for", "reader_of", "detect", "inspect_open", "inspect_file", "read_item",
           "read_slice", "read_mask", "mask_is_lines", "FORMATS"]

PathLike = str | os.PathLike

#: The layouts :func:`detect` names (and ``a2a convert`` takes).
FORMATS = ("a2a", "fastmri", "cmrxrecon", "ismrmrd")


class Reader(Protocol):
    """What a reader module provides (layouts: :class:`~a2a_cli.data.layout.Sample`)."""

    NAME: str

    def detect(self, f: h5py.File) -> bool:
        """Whether this reader reads the open file ``f`` (from its contents, never its name)."""

    def inspect(self, f: h5py.File, path: Path, split: SplitOptions | None, mask_file: PathLike | None) -> FileInfo:
        """Validate ``f`` from its header (and small masks) without reading its k-space."""

    def read_sample(self, f: h5py.File, info: FileInfo, index: int, split: SplitOptions | None,
                    allow_empty_frames: bool = False) -> Sample:
        """Slice ``index`` (already checked) without its reference; coil maps only when stored."""

    def read_reference(self, f: h5py.File, info: FileInfo, index: int, coil_maps: torch.Tensor | None) -> torch.Tensor | None:
        """The reference image of slice ``index`` (float32 ``(1, 2, ...)``), or None."""

    def read_mask(self, f: h5py.File, info: FileInfo, index: int, split: SplitOptions | None) -> np.ndarray:
        """The bool ``(T, H, W)`` mask of slice ``index`` (already checked)."""


#: The readers, in the order they are asked.
READERS: tuple[Reader, ...] = (radial_file, ismrmrd, cmrxrecon, fastmri, a2a_file)  # type: ignore[assignment]
_BY_NAME: dict[str, Reader] = {r.NAME: r for r in READERS}


def reader_for(f: h5py.File) -> Reader:
    """The first reader of :data:`READERS` that reads ``f``."""
    return next(r for r in READERS if r.detect(f))


def reader_of(info: FileInfo) -> Reader:
    """The reader that made ``info``."""
    return _BY_NAME[info.reader]


def detect(path: PathLike) -> str:
    """The layout of a file from its contents: ``"a2a"``, ``"fastmri"``, ``"cmrxrecon"`` or ``"ismrmrd"``."""
    with open_file(Path(path)) as f:
        if ismrmrd.detect(f):
            return ismrmrd.NAME
        if cmrxrecon.detect(f):
            return cmrxrecon.NAME
        return fastmri.static_layout(f)


def inspect_open(f: h5py.File, path: Path, split: SplitOptions | None, mask_file: PathLike | None = None) -> FileInfo:
    """:func:`inspect_file` on an open file: damage and oversized headers become :class:`InputError`."""
    with damage_as_input_error(path):
        try:
            info = check_declared_size(reader_for(f).inspect(f, path, split, mask_file))
        except MemoryError:  # a size no check above foresaw: still the file's fault, not the machine's
            raise InputError(path, "its header declares more data than fits in memory (a damaged header?)") from None
    if split is not None and info.layout != "fastmri":  # silently ignored, it would train on other frames than asked
        raise InputError(path, f"--frames splits the lines of a fastMRI-style static file into frames, but this "
                               f"{info.layout} file stores its own frames ({info.frames}): leave --frames out")
    return info


def inspect_file(
    path: PathLike, split: SplitOptions | None = None, mask_file: PathLike | None = None,
    sensitivity: SensitivityChoice = "auto",
) -> FileInfo:
    """Validate a file from its header (and small mask) without reading its k-space.

    Raises :class:`InputError` naming the file and the problem. ``split`` is needed
    for fastMRI-style static files (see :mod:`a2a_cli.data.a2a_file`) and refused for any other file;
    ``mask_file`` is a separate (CMRxRecon) mask file. ``sensitivity`` chooses the coil
    maps of multi-coil files (see :func:`~a2a_cli.data.layout.with_sensitivity`).
    """
    path = Path(path)
    with open_file(path) as f:
        return with_sensitivity(inspect_open(f, path, split, mask_file), sensitivity)


def read_item(
    f: h5py.File, info: FileInfo, index: int, split: SplitOptions | None, coil_maps: CoilMaps,
    allow_empty_frames: bool = False, with_reference: bool = True,
) -> Sample:
    """Slice ``index`` of the open file ``f`` as a :class:`Sample`: read, coil maps, reference.

    A damaged file becomes an :class:`InputError`.
    """
    reader = reader_of(info)
    with damage_as_input_error(info.path):
        index = check_index(info, index)
        sample = coil_maps(reader.read_sample(f, info, index, split, allow_empty_frames), info)
        if with_reference:
            sample.reference = reader.read_reference(f, info, index, sample.coil_maps)
        return sample


def read_slice(
    path: PathLike, index: int, split: SplitOptions | None = None, info: FileInfo | None = None,
    allow_empty_frames: bool = False, mask_file: PathLike | None = None,
    sensitivity: SensitivityChoice | None = None,
) -> Sample:
    """Read slice ``index`` of a file (only that slice is read from disk).

    Raises :class:`InputError` for NaN/Inf samples, a mask with values other than
    0/1, and frames without samples (unless ``allow_empty_frames``). Multi-coil files
    give ``coil_maps`` as ``sensitivity`` says (None: as ``info`` says, else ``"auto"``;
    see :func:`~a2a_cli.data.layout.with_sensitivity`), estimated afresh.
    """
    path = Path(path)
    with open_file(path) as f:
        info = info if info is not None else inspect_open(f, path, split, mask_file)
        return read_item(f, with_sensitivity(info, sensitivity), index, split, CoilMaps(cache=False),
                         allow_empty_frames=allow_empty_frames)


def read_mask(path: PathLike, split: SplitOptions | None = None, slice_index: int = 0, mask_file: PathLike | None = None) -> np.ndarray:
    """The sampling mask of one slice, bool ``(T, H, W)`` (stored, derived or split).

    Empty frames are allowed here (this is for looking at masks).
    """
    path = Path(path)
    with open_file(path) as f, damage_as_input_error(path):
        info = inspect_open(f, path, split, mask_file)
        return reader_of(info).read_mask(f, info, check_index(info, slice_index), split)


def mask_is_lines(mask: np.ndarray) -> bool:
    """True if every phase-encode column of a ``(..., H, W)`` mask is fully sampled or empty.

    >>> m = np.zeros((2, 4, 6), bool); m[:, :, [1, 3]] = True
    >>> mask_is_lines(m)
    True
    >>> m[0, 0, 0] = True
    >>> mask_is_lines(m)
    False
    """
    mask = np.asarray(mask, dtype=bool)
    return bool(np.array_equal(mask.any(axis=-2), mask.all(axis=-2)))
