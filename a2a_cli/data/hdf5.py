"""Leaf HDF5 helpers of the data layer: opening with clear errors, dataset lookup, complex data.

Every problem is an :class:`~a2a_cli.errors.InputError` naming the file. Complex data
may be stored three ways (``style``):

* ``"complex"``: a complex type (h5py writes complex64 as a compound of ``r``/``i``);
* ``"compound"``: a compound of two float fields ``real``/``imag``, ``r``/``i`` or ``re``/``im``
  (MATLAB v7.3 writes ``real``/``imag``);
* ``"float2"``: a float array with a trailing axis of 2 (real, imaginary).

A real-valued dataset read as complex has style ``"real"``.

>>> shape_str((2, 16, 64))
'(2, 16, 64)'
>>> attr_str(np.array([b" dynamic "]))
'dynamic'
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterator, Sequence

import h5py
import numpy as np

from ..errors import A2AError, InputError
from ..headers import header_int

__all__ = [
    "COMPRESSION", "open_file", "damage_as_input_error", "dataset", "complex_fields", "classify_complex",
    "read_complex", "read_slice_of", "check_binary", "check_finite", "check_mask_values", "attr_str", "shape_str",
    "coil_attr",
]

#: How the writers compress k-space and images.
COMPRESSION = {"compression": "gzip", "compression_opts": 4, "shuffle": True}

_COMPLEX_FIELD_NAMES = (("real", "imag"), ("r", "i"), ("re", "im"))
_COMPLEX_HELP = (
    "store complex numbers as a complex type, a compound type with fields real/imag (or r/i), "
    "or a float array with a trailing axis of 2"
)


def shape_str(shape: Sequence[int]) -> str:
    """A shape as ``(a, b, c)``, whatever integer type its entries have."""
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def attr_str(value: Any) -> str | None:
    """An HDF5 attribute as stripped text (bytes decoded, one-element arrays unpacked); None stays None."""
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        if value.size != 1:
            return str(value.tolist())
        value = value.reshape(()).item()
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).strip()


def open_file(path: Path) -> h5py.File:
    """Open for reading; every failure becomes an :class:`InputError`."""
    path = Path(path)
    if not path.exists():
        if os.path.islink(path):
            raise InputError(path, "is a broken symbolic link, or a loop of links")
        raise InputError(path, "file not found")
    if path.is_dir():
        raise InputError(path, "is a directory, not an HDF5 file")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        msg = str(e)
        if isinstance(e, PermissionError) or "ermission denied" in msg:
            problem = "cannot be opened: permission denied"
        elif "truncated" in msg:
            problem = f"the HDF5 file is truncated (an interrupted copy or download?): {msg}"
        elif "signature" in msg:
            problem = "not an HDF5 file (no HDF5 signature found)"
        else:
            problem = f"cannot be opened as HDF5 (damaged file?): {msg}"
        raise InputError(path, problem) from None


@contextlib.contextmanager
def damage_as_input_error(path: Path) -> Iterator[None]:
    """Report HDF5 library failures inside a file (damaged or truncated) as an :class:`InputError`."""
    try:
        yield
    except A2AError:
        raise
    except (OSError, KeyError, RuntimeError) as e:
        # h5py signals a damaged object header, B-tree or chunk with these
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise InputError(path, f"cannot be read (damaged or truncated HDF5 file?): {first}") from None


def dataset(f: h5py.File, name: str, path: Path) -> h5py.Dataset:
    """``f[name]``, which must be a dataset of numbers with a dataspace."""
    obj = f[name]
    if isinstance(obj, h5py.Group):
        raise InputError(path, f"'{name}' is a group, not a dataset")
    if not isinstance(obj, h5py.Dataset):
        raise InputError(path, f"'{name}' is a {type(obj).__name__}, not a dataset")
    if obj.shape is None:
        raise InputError(path, f"dataset '{name}' is empty (it has no dataspace)")
    if h5py.check_string_dtype(obj.dtype) is not None or obj.dtype.kind in "SU":
        raise InputError(path, f"dataset '{name}' holds text (strings), not numbers")
    if obj.dtype.kind == "O" or h5py.check_vlen_dtype(obj.dtype) is not None:
        raise InputError(path, f"dataset '{name}' holds variable-length or object data ({obj.dtype}), not an array of numbers")
    return obj


def complex_fields(dtype: np.dtype) -> tuple[str, str] | None:
    """The (real, imaginary) field names of a compound complex type, or None.

    >>> complex_fields(np.dtype([("real", "<f4"), ("imag", "<f4")]))
    ('real', 'imag')
    """
    names = {n.lower(): n for n in dtype.names or ()}
    for re_name, im_name in _COMPLEX_FIELD_NAMES:
        if re_name in names and im_name in names and len(names) == 2:
            pair = (names[re_name], names[im_name])
            if all(dtype.fields[n][0].kind == "f" for n in pair):
                return pair
    return None


def classify_complex(ds: h5py.Dataset, name: str, path: Path) -> tuple[str, tuple[int, ...], tuple[str, str] | None]:
    """``(style, logical shape, compound field names)`` of a complex dataset."""
    dt, shape = ds.dtype, tuple(ds.shape)
    if dt.names:
        fields = complex_fields(dt)
        if fields is None:
            raise InputError(path, f"dataset '{name}' has a compound type with fields {list(dt.names)}, not complex numbers; {_COMPLEX_HELP}")
        return "compound", shape, fields
    if dt.kind == "c":
        return "complex", shape, None
    if dt.kind == "f":
        if len(shape) >= 1 and shape[-1] == 2:
            return "float2", shape[:-1], None
        raise InputError(path, f"dataset '{name}' is real-valued ({dt}, shape {shape_str(shape)}) but must be complex; {_COMPLEX_HELP}")
    if dt.kind in "iub":
        raise InputError(path, f"dataset '{name}' holds integers ({dt}): real-valued, but it must be complex; {_COMPLEX_HELP}")
    raise InputError(path, f"dataset '{name}' has the unsupported data type {dt}; {_COMPLEX_HELP}")


def read_complex(ds: h5py.Dataset, style: str, fields: tuple[str, str] | None, sel: Any) -> np.ndarray:
    """``ds[sel]`` as complex64, for a dataset of the given ``style`` (see the module docstring)."""
    raw = np.asarray(ds[sel])
    if style == "complex":
        return raw.astype(np.complex64, copy=False)
    if style == "real":
        return raw.astype(np.complex64)
    if style == "compound":
        out = np.empty(raw.shape, np.complex64)
        out.real, out.imag = raw[fields[0]], raw[fields[1]]  # type: ignore[index]
        return out
    out = np.empty(raw.shape[:-1], np.complex64)  # float2
    out.real, out.imag = raw[..., 0], raw[..., 1]
    return out


def check_finite(z: np.ndarray, path: Path, what: str) -> None:
    """Refuse NaN or Inf values in ``z`` (``what`` names the data in the message)."""
    if not np.isfinite(z).all():
        n_nan = int(np.count_nonzero(np.isnan(z)))
        n_inf = int(np.count_nonzero(np.isinf(z)))
        raise InputError(path, f"{what} contains {n_nan} NaN and {n_inf} Inf (infinite) values; remove or zero them first")


def check_binary(values: np.ndarray, path: Path, what: str) -> None:
    """Refuse a mask holding values other than 0 and 1."""
    if values.dtype == bool:
        return
    bad = (values != 0) & (values != 1)
    if bad.any():
        examples = np.unique(values[bad])[:5].tolist()
        raise InputError(path, f"{what} contains values other than 0 and 1 (e.g. {', '.join(map(str, examples))}); a mask must hold only 0/1")


def read_slice_of(f: h5py.File, name: str, path: Path, index: int, dims: tuple[str, ...], style: str,
                  fields: tuple[str, str] | None) -> np.ndarray:
    """Slice ``index`` of an optional complex dataset (``reference``, ``sensitivity_maps``), checked finite.

    ``dims`` names the dataset's axes; a leading ``"S"`` is the slice axis (else the one
    array is shared by all slices).
    """
    return read_checked(f, name, path, index, index if dims[0] == "S" else (), style, fields)


def read_checked(f: h5py.File, name: str, path: Path, index: int, sel: Any, style: str,
                 fields: tuple[str, str] | None) -> np.ndarray:
    """``f[name][sel]`` as complex64, checked finite; a damaged file or a NaN is an error naming slice ``index``."""
    try:
        a = read_complex(f[name], style, fields, sel)
    except OSError as e:
        raise InputError(path, f"slice {index}: cannot read {name!r} (damaged file?): {e}") from None
    check_finite(a, path, f"slice {index}: {name!r}")
    return a


def coil_attr(f: h5py.File, path: Path) -> int | None:
    """The file attribute ``coils`` (N, the size of the coil axis of ``kspace``), or None when absent."""
    raw = f.attrs.get("coils")
    if raw is None:
        return None
    # text is not a count, even "4"
    return header_int(raw, path, "the attribute coils (the size of the coil axis of 'kspace', a positive integer)", text_ok=False)


def check_mask_values(raw: np.ndarray, path: Path, what: str) -> np.ndarray:
    """A mask read whole, checked to hold 0/1 numbers, as bool."""
    if raw.dtype.names or raw.dtype.kind not in "biuf":
        raise InputError(path, f"{what} has data type {raw.dtype}; expected 0/1 numbers")
    check_binary(raw, path, what)
    return raw.astype(bool)
