"""BART's ``.cfl``/``.hdr`` files: complex64 arrays in column-major order with a text header.

``NAME.hdr`` holds ``# Dimensions`` and a line of sizes (first axis fastest); ``NAME.cfl``
the raw complex64 data. BART's axis order for radial k-space is ``(1, samples, spokes,
coils, ..., time at axis 10)``; its trajectories are ``(3, samples, spokes, ..., time)``
in cycles per field of view (the first coordinate along image axis 0).

>>> import tempfile, os
>>> d = tempfile.mkdtemp()
>>> a = (np.arange(6) + 1j).reshape(2, 3).astype(np.complex64)
>>> _ = write_cfl(os.path.join(d, "x"), a)
>>> bool(np.array_equal(read_cfl(os.path.join(d, "x")), a))
True
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .atomic import atomic_write, check_output
from .errors import InputError

__all__ = ["cfl_base", "read_cfl", "write_cfl"]

#: BART's axes: READ, PHS1, PHS2, COIL, MAPS, TE, COEFF, COEFF2, ITER, CSHIFT, TIME, ...
TIME_DIM = 10


def cfl_base(path: str | Path) -> Path:
    """``x``, ``x.cfl`` or ``x.hdr`` -> ``x`` (the name BART uses)."""
    p = Path(path)
    return p.with_suffix("") if p.suffix.lower() in (".cfl", ".hdr") else p


def _pair(base: Path) -> tuple[Path, Path]:
    """``(base.cfl, base.hdr)``; appended, not swapped, so that ``scan.v2`` stays ``scan.v2.cfl``."""
    return base.with_name(base.name + ".cfl"), base.with_name(base.name + ".hdr")


def read_cfl(path: str | Path, keep_trailing: bool = False) -> np.ndarray:
    """Read a BART array with its header's dimensions (trailing ones dropped unless ``keep_trailing``)."""
    base = cfl_base(path)
    cfl, hdr = _pair(base)
    if not hdr.is_file() or not cfl.is_file():
        raise InputError(base, "a BART array needs both NAME.hdr and NAME.cfl")
    lines = [ln for ln in hdr.read_text(errors="replace").splitlines() if ln.strip() and not ln.startswith("#")]
    try:
        dims = [int(v) for v in lines[0].split()]
    except (IndexError, ValueError):
        raise InputError(hdr, "not a BART header (expected '# Dimensions' and a line of integers)") from None
    if not dims or any(d < 1 for d in dims):
        raise InputError(hdr, f"dimensions must be positive integers, got {dims}")
    count = int(np.prod(dims))
    if cfl.stat().st_size != 8 * count:
        raise InputError(cfl, f"holds {cfl.stat().st_size} bytes, but the header's dimensions {dims} need {8 * count}")
    data = np.fromfile(cfl, dtype="<c8", count=count)
    while not keep_trailing and len(dims) > 1 and dims[-1] == 1:
        dims.pop()
    return data.reshape(dims, order="F")


def write_cfl(path: str | Path, array: np.ndarray, overwrite: bool = False, min_dims: int = 0) -> tuple[Path, Path]:
    """Write ``array`` as a BART array (complex64, column-major), atomically; returns ``(cfl, hdr)``.

    ``min_dims`` pads the header with trailing ones (BART itself writes 16). Both files
    are checked before either is written, and neither replaces a file without ``overwrite``.
    """
    cfl, hdr = _pair(cfl_base(path))
    a = np.asarray(array, dtype=np.complex64)
    for p in (cfl, hdr):
        check_output(p, overwrite)
    dims = list(a.shape) + [1] * max(0, min_dims - a.ndim)
    with atomic_write(hdr, overwrite) as th, atomic_write(cfl, overwrite) as tc:
        a.astype("<c8").reshape(-1, order="F").tofile(tc)
        th.write_text("# Dimensions\n" + " ".join(str(d) for d in dims) + "\n")
    return cfl, hdr
