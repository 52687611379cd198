"""Checked reading of scanner headers: one conversion for every header number, one size check before every read.

A scanner header (ISMRMRD XML, a file attribute such as ``coils``, the declared shape
of a CMRxRecon or fastMRI variable) is data like any other: it may hold text where a
number belongs, ``NaN``, ``1e999``, or a size that would need terabytes. Every number
goes through :func:`header_int`, and every dataset read whole while a file is
inspected goes through :func:`read_whole`, which checks the declared size first.
Problems are :class:`~a2a_cli.errors.InputError`: ``error: FILE: ...``, exit code 2.

Limit: a header table or mask read whole may hold at most as many bytes as one slice
of k-space may (8 bytes x ``A2A_MAX_SLICE_SAMPLES``, 2 GiB by default).

>>> header_int("128", "scan.h5", "matrix size x")
128
>>> header_int("1e999", "scan.h5", "matrix size x")
Traceback (most recent call last):
    ...
a2a_cli.errors.InputError: scan.h5: matrix size x is '1e999', not a whole number from 1 to 1048576
"""
from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from .errors import InputError

__all__ = ["header_int", "read_whole", "check_samples", "max_read_bytes", "MAX_HEADER_SIZE", "MAX_SLICES_ENV", "MAX_SLICE_SAMPLES_ENV"]

# What a file header may declare. A damaged or hostile header can claim 10^9 frames
# in a file of a few kilobytes (HDF5 stores unwritten chunks as nothing); reading one
# such slice would ask for terabytes, and listing 10^9 slices would never finish. The
# limits are generous for real scans (1000 frames of 512 x 512 fit) and can be raised
# with these environment variables.
MAX_SLICE_SAMPLES_ENV = "A2A_MAX_SLICE_SAMPLES"
MAX_SLICES_ENV = "A2A_MAX_SLICES"
_DEFAULT_MAX_SLICE_SAMPLES = 1 << 28  # complex samples per slice (2 GiB as complex64)
_DEFAULT_MAX_SLICES = 100_000


def _limit(env: str, default: int) -> int:
    """A size limit, from the environment variable ``env`` when it holds a positive integer."""
    try:
        value = int(os.environ.get(env, ""))
    except ValueError:
        return default
    return value if value > 0 else default


#: The largest size a header may declare for one axis.
MAX_HEADER_SIZE = 1 << 20


def _shown(raw: Any) -> str:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if isinstance(raw, np.ndarray) and raw.size == 1:
        raw = raw.reshape(()).item()
    text = repr(raw) if isinstance(raw, str) else str(raw)
    return text if len(text) <= 60 else text[:57] + "..."


def header_int(raw: Any, path: str | os.PathLike, what: str, low: int = 1, high: int = MAX_HEADER_SIZE,
               text_ok: bool = True) -> int:
    """``raw`` (text, a number or a one-element array) as an integer from ``low`` to ``high``.

    A whole number written as a float (``"128.0"``) is accepted; text that is not a
    number (any text when ``text_ok`` is false, as for an HDF5 attribute that must be
    numeric), booleans, NaN, infinities, fractions and values out of range are an
    :class:`InputError` naming ``path`` and ``what``.
    """
    value: Any = raw
    if isinstance(value, np.ndarray):
        value = value.reshape(()).item() if value.size == 1 else None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    number: float | int | None = None
    if isinstance(value, str) and text_ok:
        text = value.strip()
        try:
            number = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                number = None
    elif isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)):
        number = value.item() if isinstance(value, np.generic) else value
    if isinstance(number, float):
        number = int(number) if math.isfinite(number) and number.is_integer() else None
    if number is None or not low <= number <= high:
        raise InputError(path, f"{what} is {_shown(raw)}, not a whole number from {low} to {high}")
    return int(number)


def max_read_bytes() -> int:
    """Bytes a header table or mask read whole may take (8 x ``A2A_MAX_SLICE_SAMPLES``)."""
    return 8 * _limit(MAX_SLICE_SAMPLES_ENV, _DEFAULT_MAX_SLICE_SAMPLES)


def _size_str(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def read_whole(ds: Any, path: str | os.PathLike, what: str, field: str | None = None) -> np.ndarray:
    """All of dataset ``ds`` (or its compound ``field``), after checking its declared size against :func:`max_read_bytes`."""
    shape = tuple(ds.shape or ())
    itemsize = (ds.dtype[field] if field else ds.dtype).itemsize
    count = math.prod(shape)
    need = count * itemsize
    limit = max_read_bytes()
    if need > limit:
        raise InputError(path, f"{what} declares {count:,} entries ({_size_str(need)}), more than the limit of "
                               f"{_size_str(limit)} (a damaged header?); set A2A_MAX_SLICE_SAMPLES to raise it")
    try:
        return np.asarray(ds.fields(field)[()] if field else ds[()])
    except MemoryError:
        raise InputError(path, f"{what} ({_size_str(need)}) does not fit in memory") from None


def check_samples(path: str | os.PathLike, what: str, shape: tuple[int, ...]) -> None:
    """Refuse reading ``shape`` complex samples at once past ``A2A_MAX_SLICE_SAMPLES``."""
    need = 8 * math.prod(shape)
    limit = max_read_bytes()
    if need > limit:
        raise InputError(path, f"{what} of shape {tuple(shape)} needs {_size_str(need)}, more than the limit of "
                               f"{_size_str(limit)} (a damaged header?); set A2A_MAX_SLICE_SAMPLES to raise it")
