"""Writing a2a files: reconstructions slice by slice, and whole arrays as an a2a input file.

Both write atomically (:func:`a2a_cli.atomic.atomic_write`): the file appears under its
name only when everything was written, and an existing file is replaced only with
``overwrite``. Layouts: reconstructions complex64 ``(S, T, H, W)`` (dynamic) or
``(S, H, W)`` (sequential); :func:`write_a2a_file` stores the arrays as given (the
a2a file format: :mod:`a2a_cli.data.a2a_file`).
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import sys
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import h5py
import numpy as np
import torch

from .. import __version__
from ..atomic import atomic_write, check_output
from ..errors import A2AError
from .hdf5 import COMPRESSION

__all__ = ["ReconstructionWriter", "write_a2a_file"]

PathLike = str | os.PathLike


def _attr_value(value: Any) -> Any:
    """A value h5py can store as an attribute."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (str, bytes, bool, int, float, np.generic, np.ndarray)):
        return value
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return np.asarray(value)
    return json.dumps(value, default=str)


def _as_complex(array: Any, shape: tuple[int, ...]) -> np.ndarray:
    """complex ``shape`` from a complex array/tensor of that shape or a real ``(2, *shape)``
    (``(1, 2, *shape)``) one, leading singleton dimensions allowed."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    a = np.asarray(array)
    n = int(np.prod(shape))
    if np.iscomplexobj(a):
        if a.size == n and a.shape[a.ndim - len(shape):] == shape:
            return a.reshape(shape).astype(np.complex64, copy=False)
    elif a.size == 2 * n and a.shape[a.ndim - len(shape):] == shape and a.ndim > len(shape) and a.shape[a.ndim - len(shape) - 1] == 2:
        a = a.reshape((2,) + shape)
        out = np.empty(shape, np.complex64)
        out.real, out.imag = a[0], a[1]
        return out
    raise ValueError(f"expected complex {shape} or real (2, *{shape}) data, got {a.dtype} {a.shape}")


class ReconstructionWriter:
    """Write reconstructions slice by slice into a new HDF5 file, atomically.

    Creates ``reconstruction`` complex64 ``(S, T, H, W)`` (``frame_shape`` =
    ``(T, H, W)``, dynamic) or ``(S, H, W)`` (``frame_shape`` = ``(H, W)``,
    sequential), one frame per chunk, gzip compressed; ``extra`` names more datasets
    of the same shape (or maps names to their own frame shapes). File attributes come
    from ``attrs``; ``a2a_version`` and ``created`` (ISO 8601, UTC) are added when
    missing. The file appears under its name only when the ``with`` block ends without
    an exception and every slice of every dataset was written.

    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "recon.h5"
    >>> with ReconstructionWriter(out, n_slices=1, frame_shape=(4, 4), attrs={"mode": "sequential"}) as w:
    ...     w.write(0, np.ones((4, 4), np.complex64))
    >>> with h5py.File(out) as f:
    ...     f["reconstruction"].shape, f.attrs["mode"]
    ((1, 4, 4), 'sequential')
    """

    def __init__(
        self, path: PathLike, n_slices: int, frame_shape: Sequence[int], attrs: Mapping[str, Any] | None = None,
        overwrite: bool = False, extra: Sequence[str] | Mapping[str, Sequence[int]] = (),
    ):
        self.path = Path(path)
        self.n_slices = int(n_slices)
        self.frame_shape = tuple(int(s) for s in frame_shape)
        if self.n_slices < 1 or len(self.frame_shape) not in (2, 3) or min(self.frame_shape) < 1:
            raise ValueError(f"need n_slices >= 1 and a frame shape (T, H, W) or (H, W), got {n_slices}, {frame_shape}")
        self.attrs = dict(attrs or {})
        self.overwrite = overwrite
        self.shapes: dict[str, tuple[int, ...]] = {"reconstruction": self.frame_shape}
        if isinstance(extra, Mapping):
            self.shapes.update({name: tuple(int(s) for s in shape) for name, shape in extra.items()})
        else:
            self.shapes.update({name: self.frame_shape for name in extra})
        check_output(self.path, overwrite)  # fail before any reconstruction work
        self._file: h5py.File | None = None
        self._written: dict[str, set[int]] = {name: set() for name in self.shapes}

    def __enter__(self) -> "ReconstructionWriter":
        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(atomic_write(self.path, self.overwrite))
        try:
            self._file = h5py.File(tmp, "w")
            for name, shape in self.shapes.items():
                chunks = (1,) * (len(shape) - 1) + shape[-2:]  # (slice, [frame,] H, W): one frame per chunk
                self._file.create_dataset(name, shape=(self.n_slices,) + shape, dtype=np.complex64, chunks=chunks, **COMPRESSION)
            attrs = dict(self.attrs)
            attrs.setdefault("a2a_version", __version__)
            attrs.setdefault("created", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
            for key, value in attrs.items():
                if value is not None:
                    self._file.attrs[key] = _attr_value(value)
        except BaseException:
            if self._file is not None:
                self._file.close()
            self._stack.__exit__(*sys.exc_info())
            raise
        return self

    def set_attr(self, key: str, value: Any) -> None:
        """Set a file attribute while the writer is open (for what is known only after the slices)."""
        if self._file is None:
            raise RuntimeError("ReconstructionWriter.set_attr needs an open writer (use it in a with block)")
        self._file.attrs[key] = _attr_value(value)

    def write(self, slice_index: int, array: Any, name: str = "reconstruction") -> None:
        """Store one slice: complex ``frame_shape`` or real ``(2, *frame_shape)`` (numpy or torch)."""
        if self._file is None:
            raise RuntimeError("ReconstructionWriter.write needs an open writer (use it in a with block)")
        if name not in self.shapes:
            raise KeyError(f"dataset {name!r} was not declared (declared: {', '.join(self.shapes)})")
        if not 0 <= slice_index < self.n_slices:
            raise IndexError(f"slice {slice_index} out of range 0..{self.n_slices - 1}")
        self._file[name][slice_index] = _as_complex(array, self.shapes[name])
        self._written[name].add(int(slice_index))

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        try:
            if exc_type is None:
                missing = {n: self.n_slices - len(w) for n, w in self._written.items() if len(w) < self.n_slices}
                if missing:
                    raise RuntimeError(f"{self.path}: not written, slices missing: " + ", ".join(f"{n}: {k}" for n, k in missing.items()))
            self._file.close()  # type: ignore[union-attr]
        except BaseException:
            self._file.close()  # type: ignore[union-attr]
            self._stack.__exit__(*sys.exc_info())
            raise
        finally:
            self._file = None
        return bool(self._stack.__exit__(exc_type, exc, tb))


def _complex_for_style(z: np.ndarray, style: str) -> np.ndarray:
    z = np.asarray(z).astype(np.complex64, copy=False)
    if style == "complex":
        return z
    if style == "compound":
        out = np.empty(z.shape, dtype=[("real", "<f4"), ("imag", "<f4")])
        out["real"], out["imag"] = z.real, z.imag
        return out
    if style == "float2":
        return np.stack((z.real, z.imag), axis=-1).astype(np.float32)
    raise A2AError(f"complex_style must be 'complex', 'compound' or 'float2', got {style!r}")


def write_a2a_file(
    path: PathLike, kspace: np.ndarray, mask: np.ndarray | None = None, reference: np.ndarray | None = None,
    acquisition: str | None = "dynamic", complex_style: Literal["complex", "compound", "float2"] = "complex",
    overwrite: bool = False, attrs: Mapping[str, Any] | None = None,
    coils: int | None = None, sensitivity_maps: np.ndarray | None = None, extra: Mapping[str, np.ndarray] | None = None,
) -> Path:
    """Write numpy arrays as an a2a (or, with ``acquisition=None``/``"static"``, fastMRI-style) file.

    ``kspace`` and ``reference`` are complex and stored in ``complex_style``;
    ``mask`` (any 0/1 array) is stored as uint8. k-space is chunked one frame per
    chunk and gzip compressed. Shapes are stored as given: see :mod:`a2a_cli.data.a2a_file`.
    ``coils`` = N marks the axis before ``(H, W)`` of ``kspace`` as the coil axis (the
    attribute ``coils``); ``sensitivity_maps`` ``(N, H, W)``/``(S, N, H, W)`` and the
    ``extra`` complex datasets are stored like ``kspace``. Returns the path.
    """
    path = Path(path)
    kspace = np.asarray(kspace)
    if not np.iscomplexobj(kspace):
        raise A2AError("write_a2a_file: kspace must be a complex array")
    if coils is not None and (kspace.ndim < 3 or kspace.shape[-3] != coils):
        raise A2AError(f"write_a2a_file: coils={coils} but kspace {kspace.shape} has no coil axis of that size before (H, W)")
    if sensitivity_maps is not None and coils is None:
        raise A2AError("write_a2a_file: sensitivity_maps need the coil count (coils=N)")
    attrs = dict(attrs or {})
    if coils is not None:
        attrs["coils"] = int(coils)
    extra = dict(extra or {})
    if sensitivity_maps is not None:
        extra["sensitivity_maps"] = sensitivity_maps
    k_data = _complex_for_style(kspace, complex_style)
    h, w = kspace.shape[-2:]
    with atomic_write(path, overwrite) as tmp, h5py.File(tmp, "w") as f:
        tail = (2,) if complex_style == "float2" else ()
        chunks = (1,) * (kspace.ndim - 2) + (h, w) + tail
        f.create_dataset("kspace", data=k_data, chunks=chunks, track_times=False, **COMPRESSION)
        if mask is not None:
            f.create_dataset("mask", data=np.asarray(mask).astype(np.uint8), track_times=False, **COMPRESSION)
        if reference is not None:
            reference = np.asarray(reference)
            r_data = _complex_for_style(reference, complex_style)
            chunks = (1,) * (reference.ndim - 2) + reference.shape[-2:] + tail
            f.create_dataset("reference", data=r_data, chunks=chunks, track_times=False, **COMPRESSION)
        for name, array in extra.items():
            array = np.asarray(array)
            chunks = (1,) * (array.ndim - 2) + array.shape[-2:] + tail
            f.create_dataset(name, data=_complex_for_style(array, complex_style), chunks=chunks, track_times=False, **COMPRESSION)
        if acquisition is not None:
            f.attrs["acquisition"] = acquisition
        for key, value in (attrs or {}).items():
            if value is not None:
                f.attrs[key] = _attr_value(value)
    return path
