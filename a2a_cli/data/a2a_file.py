"""The reader of the a2a k-space file (HDF5) and of single-coil fastMRI-style static files.

File format
-----------

An a2a file is an HDF5 file with these members (S slices, T frames, H readout
samples, W phase-encode lines; k-space is centred, DC at ``(H // 2, W // 2)``, as
made by :func:`a2a_cli.physics.fft2c`):

=====================  ==========================================  =====================================================
member                 shape                                        content
=====================  ==========================================  =====================================================
``kspace``             ``(T, H, W)`` one slice or ``(S, T, H, W)``  complex k-space; zero where not sampled
``mask`` (optional)    ``(T, W)``, ``(S, T, W)``, ``(T, H, W)``     bool or uint8, values 0/1 only (any integer or float
                       or ``(S, T, H, W)``                          type holding only 0 and 1 is accepted); ``(T, W)``
                                                                    marks phase-encode lines; absent: the non-zero
                                                                    k-space samples of each slice
``reference`` (opt.)   dynamic ``(T, H, W)`` / ``(S, T, H, W)``,    complex (or real) ground-truth images, used only to
                       static ``(H, W)`` / ``(S, H, W)``            report quality
attr ``acquisition``   string                                       ``dynamic`` (default for 4D ``kspace``) or
                                                                    ``sequential`` (a static object sampled by a time
                                                                    series of masks)
``kspace``,            ``(T, N, H, W)`` one slice or                N receive coils: the coil axis sits just before
multi-coil             ``(S, T, N, H, W)``                          ``(H, W)``; only with the attribute ``coils``
attr ``coils``         integer N >= 1                               marks the coil axis (required with one); N = 1 is
                                                                    read as single-coil data
``sensitivity_maps``   ``(N, H, W)`` or ``(S, N, H, W)``            complex coil maps, used as given; absent: estimated
(optional)                                                          per slice (:mod:`a2a_cli.data.coil_maps`)
=====================  ==========================================  =====================================================

**Multi-coil files.** The attribute ``coils`` alone decides whether ``kspace`` has
a coil axis: a 4D ``(T, N, H, W)`` slice and a 4D ``(S, T, H, W)`` stack have the
same rank, so shape cannot tell them apart. A 5D ``kspace`` without ``coils`` is
an error, as is ``coils`` that does not match the axis before ``(H, W)``. The
``mask`` and ``reference`` keep their single-coil shapes: one mask shared by all
coils, a coil-combined reference. ``sensitivity_maps`` in a file without ``coils``
is an error. The simulator stores its true maps as ``true_sensitivity_maps``, which
readers ignore, so that simulated files exercise the estimation like scanner files.

Complex data (``kspace``, ``reference``, ``sensitivity_maps``) may be stored as

* a complex type (h5py writes complex64 as a compound of ``r``/``i``);
* a compound type with float fields ``real``/``imag``, ``r``/``i`` or ``re``/``im``
  (MATLAB v7.3 writes ``real``/``imag``);
* a float array with a trailing axis of 2 (real, imaginary): ``(T, H, W, 2)`` or
  ``(S, T, H, W, 2)``.

Samples outside a stored mask are ignored (set to zero when read).

fastMRI-style static files
--------------------------

==================  ======================================  ============================================
member              shape                                   content
==================  ======================================  ============================================
``kspace``          ``(S, H, W)``                           complex single-coil k-space of S slices
``mask`` (opt.)     ``(W,)``, ``(H, W)`` or ``(S, H, W)``   0/1; absent: the non-zero samples
``reference`` (o.)  ``(S, H, W)``                           ground truth, for quality only
==================  ======================================  ============================================

They are read in ``sequential`` mode. Without the ``frames`` option every slice is a
single frame (``T = 1``, all its samples; trained with k-space splitting, SSDU). With it
the sampled lines of each slice are dealt out to T frames by :class:`~a2a_cli.data.layout.SplitOptions`, and
frame t is the full k-space times mask t.

**Telling the two 3D layouts apart.** A 3D ``kspace`` is a single a2a slice
``(T, H, W)`` only when the file attribute ``acquisition`` is ``dynamic`` or
``sequential``. Otherwise (no attribute, ``static``, or a fastMRI protocol name such
as ``CORPD_FBK``) it is a fastMRI-style ``(S, H, W)`` stack, split into frames by
``split`` (the frames option) or read as single frames without it. ``split`` is ignored for a2a files, whose frames are in the file. A 4D
``kspace`` without the attribute is a dynamic a2a file.

Masks of shape ``(S, T, W)`` and ``(T, H, W)`` coincide when ``S == T == H``; the
per-slice line mask ``(S, T, W)`` is then assumed.

**Limits.** A header may declare far more data than the file holds (HDF5 does not
store unwritten chunks), so declared sizes are checked before anything is read: at
most 100 000 slices (environment variable ``A2A_MAX_SLICES``) and 2^28 complex
samples per slice, T x H x W x coils (``A2A_MAX_SLICE_SAMPLES``). Every reading
failure inside the HDF5 library (a damaged or truncated file) is an
:class:`~a2a_cli.errors.InputError`.

**Other layouts.** CMRxRecon ``.mat`` files, ISMRMRD raw data, multi-coil fastMRI
files (``kspace`` ``(slices, coils, H, W)`` with an ``ismrmrd_header`` dataset or a
protocol name as ``acquisition``) and radial files are recognised from their contents
and read by their own readers (:mod:`a2a_cli.data.reader`), which return the same
:class:`~a2a_cli.data.layout.FileInfo` and :class:`~a2a_cli.data.layout.Sample`.

Slices are read as the tensors of :class:`~a2a_cli.data.layout.Sample`: k-space
``(1, 2, T, H, W)`` float32 (channel 0 real, 1 imaginary; ``(1, 2, T, N, H, W)`` with N
coils), mask ``(1, 1, T, H, W)``. Estimated coil maps are not made here
(:mod:`a2a_cli.data.coil_maps`); stored ones are read.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from ..errors import InputError
from .hdf5 import (
    attr_str, check_binary, classify_complex, coil_attr, dataset, read_checked, read_slice_of, shape_str,
)
from .layout import (
    SINGLE_FRAME, FileInfo, Sample, SplitOptions, check_coils_share_lines, check_frames_sampled, check_mask_matches,
    dims_str, match_dims, split_lines, stored_maps, stored_reference, to_tensor,
)

__all__ = ["NAME", "detect", "inspect", "read_sample", "read_reference", "read_mask"]

NAME = "a2a"

# A stored mask up to this many elements is checked for non-0/1 values when the
# file is inspected, so a bad mask is reported before training; larger masks are
# checked slice by slice as they are read.
_MASK_CHECK_LIMIT = 1 << 22


def detect(f: h5py.File) -> bool:
    """Always True: the a2a reader is the last one asked, and reports what a file lacks."""
    return True


# ----------------------------------------------------------------------------------
# inspecting the header
# ----------------------------------------------------------------------------------
def inspect(f: h5py.File, path: Path, split: SplitOptions | None, mask_file: Any = None) -> FileInfo:
    """Validate an a2a (or single-coil fastMRI-style) file from its header and small mask."""
    if mask_file is not None:
        raise InputError(path, "a separate mask file (--mask) is used only for CMRxRecon files; this file carries its own mask")
    if "kspace" not in f:
        held = ", ".join(sorted(f.keys())) or "nothing"
        raise InputError(path, f"no dataset 'kspace' (the file holds: {held})")
    ds = dataset(f, "kspace", path)
    style, ds_shape, fields = classify_complex(ds, "kspace", path)
    n_coils, shape = _coil_axis(f, path, ds_shape)
    layout, mode, mode_source = _layout_and_mode(f, path, shape, n_coils)
    if layout == "fastmri":
        # a static stack: without the frames option each slice is one frame (k-space splitting
        # trains on it); with it, its lines are dealt out to frames for temporal splitting
        (s, h, w), t, slice_axis = shape, (split or SINGLE_FRAME).frames, True
    elif len(shape) == 4:
        (s, t, h, w), slice_axis = shape, True
    else:
        s, (t, h, w), slice_axis = 1, shape, False
    sizes = {"S": s, "T": t, "H": h, "W": w}
    mask_dims = _mask_dims(f, path, layout, slice_axis, sizes, shape)
    ref_dims, ref_style, ref_fields = _reference(f, path, layout, slice_axis, sizes, shape)
    maps_dims, maps_style, maps_fields = stored_maps(f, path, n_coils, slice_axis, sizes, "'kspace'")
    # a coil axis of size 1 is plain single-coil data (its maps, if any, are not needed)
    multi = n_coils is not None and n_coils > 1
    return FileInfo(
        path=path, layout=layout, mode=mode, n_slices=int(s), frames=int(t), height=int(h), width=int(w),  # type: ignore[arg-type]
        has_reference=ref_dims is not None, complex_style=style,  # type: ignore[arg-type]
        mask_source="split" if layout == "fastmri" and t > 1 else ("stored" if mask_dims else "derived"),
        reference_static=ref_dims is not None and "T" not in ref_dims,
        coils=n_coils if multi else None,
        sensitivity=("stored" if maps_dims else "espirit") if multi else None, reader=NAME,
        _kspace_fields=fields, _kspace_slice_axis=slice_axis, _mask_dims=mask_dims,
        _reference_dims=ref_dims, _reference_style=ref_style, _reference_fields=ref_fields,
        _kspace_coil_axis=n_coils is not None, _maps_dims=maps_dims if multi else None,
        _maps_style=maps_style, _maps_fields=maps_fields,
        mode_source=mode_source, stored_shape=tuple(int(v) for v in ds_shape),
    )


def _coil_axis(f: h5py.File, path: Path, shape: tuple[int, ...]) -> tuple[int | None, tuple[int, ...]]:
    """``(N or None, kspace shape without the coil axis)``, checked to be 3D or 4D with no empty axis.

    The attribute ``coils`` alone says whether kspace has a coil axis (before H, W):
    a 4D (T, N, H, W) slice and a 4D (S, T, H, W) stack cannot be told apart by shape.
    """
    n_coils = coil_attr(f, path)
    if n_coils is not None:
        if len(shape) not in (4, 5) or 0 in shape:
            raise InputError(
                path,
                f"the attribute coils={n_coils} says 'kspace' has a coil axis, so it must be 4D (T, N, H, W) or "
                f"5D (S, T, N, H, W); it has shape {shape_str(shape)}",
            )
        if shape[-3] != n_coils:
            raise InputError(path, f"the attribute coils={n_coils} does not match the coil axis of 'kspace' {shape_str(shape)} (size {shape[-3]} before H, W)")
        acq_attr = (attr_str(f.attrs.get("acquisition")) or "").lower()
        if acq_attr not in ("", "dynamic", "sequential"):
            raise InputError(path, f"a2a multi-coil k-space must be 'dynamic' or 'sequential', not acquisition={acq_attr!r}")
        shape = shape[:-3] + shape[-2:]
    elif len(shape) == 5:
        raise InputError(
            path,
            f"'kspace' has 5 dimensions (shape {shape_str(shape)}): multi-coil k-space (S, T, N, H, W) needs the file attribute "
            f"coils = N (the size of the coil axis)",
        )
    if len(shape) not in (3, 4):
        raise InputError(
            path,
            f"'kspace' has {len(shape)} dimensions (shape {shape_str(shape)}); expected 3 (T, H, W) "
            f"or 4 (S, T, H, W), or 3 (slices, H, W) for a static fastMRI-style file",
        )
    if 0 in shape:
        raise InputError(path, f"'kspace' has a zero-size dimension (shape {shape_str(shape)})")
    return n_coils, shape


def _layout_and_mode(f: h5py.File, path: Path, shape: tuple[int, ...], n_coils: int | None) -> tuple[str, str, str]:
    """``(layout, mode, where the mode came from)`` from the attribute ``acquisition`` and the rank."""
    acq_raw = attr_str(f.attrs.get("acquisition"))
    acq = acq_raw.lower() if acq_raw is not None else None
    if acq in ("dynamic", "sequential"):
        return "a2a", acq, "attribute acquisition"
    if n_coils is not None:  # a coil axis: an a2a file, dynamic unless it says otherwise
        return "a2a", "dynamic", "default: no 'acquisition' attribute"
    if len(shape) == 4:
        if acq is not None and acq != "":
            kind = "static" if acq == "static" else f"unknown ({acq_raw!r})"
            raise InputError(
                path,
                f"acquisition is {kind} but 'kspace' is 4D {shape_str(shape)}; a 4D file must be "
                f"'dynamic' or 'sequential' (S, T, H, W); multi-coil static k-space (slices, coils, H, W) is read "
                f"only as a fastMRI file, which has an 'ismrmrd_header' dataset or a protocol name as acquisition",
            )
        return "a2a", "dynamic", "default: no 'acquisition' attribute"
    return "fastmri", "sequential", "a static file"


def _mask_dims(f: h5py.File, path: Path, layout: str, slice_axis: bool, sizes: dict[str, int],
               shape: tuple[int, ...]) -> tuple[str, ...] | None:
    """The axes of the stored ``mask`` (None without one); small masks are checked to hold 0/1."""
    if "mask" not in f:
        return None
    mds = dataset(f, "mask", path)
    if mds.dtype.kind not in "biuf" or mds.dtype.names:
        raise InputError(path, f"'mask' has data type {mds.dtype}; expected bool or uint8 holding 0/1")
    if layout == "fastmri":
        candidates = [("W",), ("H", "W"), ("S", "H", "W")]
    elif slice_axis:
        candidates = [("T", "W"), ("S", "T", "W"), ("T", "H", "W"), ("S", "T", "H", "W")]
    else:
        candidates = [("T", "W"), ("T", "H", "W")]
    dims = match_dims(mds.shape, candidates, sizes)
    if dims is None:
        expected = " or ".join(dims_str(c, sizes) for c in candidates)
        raise InputError(path, f"'mask' has shape {shape_str(mds.shape)}, which does not fit 'kspace' {shape_str(shape)}: expected {expected}")
    if mds.size <= _MASK_CHECK_LIMIT:
        check_binary(mds[()], path, "'mask'")
    return dims


def _reference(f: h5py.File, path: Path, layout: str, slice_axis: bool, sizes: dict[str, int],
               shape: tuple[int, ...]) -> tuple[Any, Any, Any]:
    """``(axes, style, compound fields)`` of the stored ``reference``; Nones without one."""
    if layout == "fastmri":
        candidates = [("S", "H", "W")]
    elif slice_axis:
        candidates = [("S", "T", "H", "W"), ("S", "H", "W")]
    else:
        candidates = [("T", "H", "W"), ("H", "W")]
    return stored_reference(f, path, candidates, sizes, f"'kspace' {shape_str(shape)}")


# ----------------------------------------------------------------------------------
# reading slices
# ----------------------------------------------------------------------------------
def _read_kspace(f: h5py.File, info: FileInfo, index: int) -> np.ndarray:
    """complex64 ``(T, H, W)`` (a2a; ``(T, N, H, W)`` multi-coil) or ``(H, W)`` (fastMRI) of one slice, checked finite."""
    sel = index if info._kspace_slice_axis else ()
    k = read_checked(f, "kspace", info.path, index, sel, info.complex_style, info._kspace_fields)
    if info._kspace_coil_axis and not info.coils:
        k = k[:, 0]  # a coil axis of size 1: single-coil data
    return k


def _slice_mask(f: h5py.File, info: FileInfo, index: int, split: SplitOptions | None, kspace: np.ndarray | None) -> np.ndarray:
    """bool ``(T, H, W)`` mask of one slice; ``kspace`` (from :func:`_read_kspace`) is used when the mask is derived."""
    t, h, w = info.frame_shape
    if info._mask_dims is not None:
        dims = info._mask_dims
        try:
            raw = np.asarray(f["mask"][index] if dims[0] == "S" else f["mask"][()])
        except OSError as e:
            raise InputError(info.path, f"slice {index}: cannot read 'mask' (damaged file?): {e}") from None
        dims = dims[1:] if dims[0] == "S" else dims
        check_binary(raw, info.path, f"slice {index}: 'mask'")
        target = ("T", "H", "W") if info.layout == "a2a" else ("H", "W")
        sizes = {"T": t, "H": h, "W": w}
        m = np.broadcast_to(raw.astype(bool).reshape([sizes[d] if d in dims else 1 for d in target]), [sizes[d] for d in target])
    else:
        if kspace is None:
            kspace = _read_kspace(f, info, index)
        m = kspace != 0
        if m.ndim == 4:  # (T, N, H, W): a location is sampled when any coil holds a value
            m = m.any(axis=1)
    if info.layout == "fastmri":
        frames = split_lines(m.any(axis=0), split or SINGLE_FRAME, index)
        m = m[None, :, :] & frames[:, None, :]
    return np.ascontiguousarray(m, dtype=bool)


def read_sample(f: h5py.File, info: FileInfo, index: int, split: SplitOptions | None,
                allow_empty_frames: bool = False) -> Sample:
    """Slice ``index`` (checked) without its reference; stored coil maps are read, estimated ones are not."""
    k = _read_kspace(f, info, index)
    m = _slice_mask(f, info, index, split, k)
    check_mask_matches(k, m, info.path, index)
    check_coils_share_lines(k, info.path, index)  # (T, N, H, W) only; other shapes pass
    # samples outside the mask are not part of the measurement model y = M F x
    multi = k.ndim == 4  # (T, N, H, W): the mask is shared by the coils
    k = np.where(m[:, None] if multi else m, k if info.layout == "a2a" else k[None], np.complex64(0))
    maps, sensitivity = None, None
    if multi and info.sensitivity == "stored":
        s = read_slice_of(f, "sensitivity_maps", info.path, index, info._maps_dims, info._maps_style, info._maps_fields)  # type: ignore[arg-type]
        maps, sensitivity = torch.from_numpy(np.ascontiguousarray(s))[None], "stored"
    if not allow_empty_frames:
        check_frames_sampled(m, info.path, index)
    return Sample(
        kspace=to_tensor(k), mask=torch.from_numpy(m.astype(np.float32))[None, None], reference=None,
        file=str(info.path), slice_index=index, coil_maps=maps, sensitivity=sensitivity,
    )


def read_reference(f: h5py.File, info: FileInfo, index: int, coil_maps: torch.Tensor | None) -> torch.Tensor | None:
    """The stored reference of slice ``index``, float32 ``(1, 2, T, H, W)`` or ``(1, 2, H, W)``; None without one."""
    if not info.has_reference:
        return None
    r = read_slice_of(f, "reference", info.path, index, info._reference_dims, info._reference_style, info._reference_fields)  # type: ignore[arg-type]
    return to_tensor(r)


def read_mask(f: h5py.File, info: FileInfo, index: int, split: SplitOptions | None) -> np.ndarray:
    """The bool ``(T, H, W)`` mask of slice ``index`` (stored, derived or split)."""
    return _slice_mask(f, info, index, split, None)
