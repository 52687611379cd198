"""The reader of multi-coil fastMRI files (single-coil fastMRI-style files are read as a2a files).

fastMRI multi-coil
------------------

``kspace`` ``(slices, coils, H, W)`` (a ``ismrmrd_header`` dataset or an
``acquisition`` attribute such as ``CORPD_FBK`` marks it; a 4D ``kspace`` without
either, or with ``acquisition`` = ``static``, is left to the a2a reader,
:mod:`a2a_cli.data.a2a_file`), optional ``mask`` ``(W,)``/``(H, W)``/
``(S, H, W)`` (absent: the non-zero samples), optional ``reference`` ``(S, H, W)``.
Read in sequential mode like single-coil fastMRI files (one frame per slice without the frames option).
Slices are read as the tensors of :class:`~a2a_cli.data.layout.Sample`: k-space
``(1, 2, T, N, H, W)`` float32 (every frame holds the slice's k-space on its share of
the lines), mask ``(1, 1, T, H, W)``; coil maps are estimated afterwards from all the
slice's samples (:mod:`a2a_cli.data.coil_maps`).
"""
from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import torch

from ..errors import InputError
from ..headers import read_whole
from .hdf5 import attr_str, check_finite, check_mask_values, classify_complex, dataset, read_complex, shape_str
from .layout import SINGLE_FRAME, FileInfo, Sample, SplitOptions, format_info, format_sample, match_dims, split_lines, to_tensor

__all__ = ["NAME", "static_layout", "detect", "inspect", "read_sample", "read_reference", "read_mask"]

NAME = "fastmri"
PathLike = str | os.PathLike


def _rank(ds: h5py.Dataset) -> int:
    """The logical rank of ``kspace`` (a trailing axis of 2 of a float array holds real, imaginary)."""
    return len(ds.shape or ()) - (1 if ds.dtype.kind == "f" and ds.shape and ds.shape[-1] == 2 else 0)


def static_layout(f: h5py.File) -> str:
    """``"fastmri"`` when ``kspace`` is a static fastMRI-style stack, else ``"a2a"`` (or no ``kspace``).

    A 3D ``kspace`` without the a2a ``acquisition`` (``dynamic``/``sequential``) or the
    ``coils`` attribute is a fastMRI-style ``(S, H, W)``; a 4D one is fastMRI ``(slices, coils, H, W)`` only with
    fastMRI's own marks (an ``ismrmrd_header`` dataset or a protocol name as
    ``acquisition``): a 4D ``static`` file stays a2a (and is rejected there).
    """
    ds = f.get("kspace")
    if not isinstance(ds, h5py.Dataset):
        return "a2a"  # the a2a reader reports what is missing
    acq = (attr_str(f.attrs.get("acquisition")) or "").lower()
    if acq in ("dynamic", "sequential") or "coils" in f.attrs:  # ``coils`` is a2a's mark of a coil axis
        return "a2a"
    if _rank(ds) == 3 or "ismrmrd_header" in f or acq not in ("", "static"):
        return "fastmri"
    return "a2a"


def _why_fastmri(f: h5py.File) -> str:
    """What marks ``f`` as a fastMRI file, for messages."""
    if "ismrmrd_header" in f:
        return "its 'ismrmrd_header' dataset"
    return f"its attribute acquisition = {attr_str(f.attrs.get('acquisition'))!r} (a protocol name)"


def detect(f: h5py.File) -> bool:
    """Whether ``f`` is a multi-coil fastMRI file, read here (single-coil ones go to the a2a reader)."""
    return static_layout(f) == "fastmri" and _rank(f["kspace"]) == 4


def inspect(f: h5py.File, path: Path, split: SplitOptions | None, mask_file: PathLike | None = None) -> FileInfo:
    """Validate a multi-coil fastMRI file from its header and mask (see the module docstring)."""
    if mask_file is not None:
        raise InputError(path, f"a separate mask file (--mask) is used only for CMRxRecon files; this is a {NAME} file, which carries its own sampling")
    ds = dataset(f, "kspace", path)
    style, shape, fields = classify_complex(ds, "kspace", path)
    if 0 in shape:
        raise InputError(path, f"'kspace' has a zero-size dimension (shape {shape_str(shape)})")
    s, n, h, w = shape
    split = split or SINGLE_FRAME  # without the frames option: one frame per slice
    sizes = {"S": s, "H": h, "W": w}
    mask_dims = None
    if "mask" in f:
        mds = dataset(f, "mask", path)
        mask_dims = match_dims(mds.shape, [("W",), ("H", "W"), ("S", "H", "W")], sizes)
        if mask_dims is None:
            raise InputError(path, f"'mask' has shape {shape_str(mds.shape)}, which does not fit 'kspace' {shape_str(shape)}: expected (W,), (H, W) or (S, H, W)"
                                   f" of a fastMRI file (slices, coils, H, W), as {_why_fastmri(f)} says it is; an a2a file "
                                   f"has acquisition = 'dynamic' or 'sequential'")
        check_mask_values(read_whole(mds, path, "'mask'"), path, "'mask'")
    ref = None
    if "reference" in f:
        rds = dataset(f, "reference", path)
        rstyle, rshape, rfields = ("real", tuple(rds.shape), None) if rds.dtype.kind in "fiu" and not rds.dtype.names else classify_complex(rds, "reference", path)
        if tuple(rshape) != (s, h, w):
            raise InputError(path, f"'reference' has shape {shape_str(rshape)}; expected (S, H, W) = {shape_str((s, h, w))}")
        ref = (rstyle, rfields)
    plan = {"style": style, "fields": fields, "mask_dims": mask_dims, "ref": ref}
    return format_info(path, NAME, "sequential", s, split.frames, h, w, n, ref is not None, "split", plan, reference_static=True)


def _fastmri_mask(f: h5py.File, info: FileInfo, index: int, split: SplitOptions | None, k: np.ndarray | None) -> np.ndarray:
    """bool ``(T, H, W)``: the slice's samples dealt out to frames (``k``: ``(N, H, W)`` when derived)."""
    split = split or SINGLE_FRAME
    h, w = info.height, info.width
    dims = info.plan["mask_dims"]
    if dims is not None:
        raw = np.asarray(f["mask"][index] if dims[0] == "S" else f["mask"][()]).astype(bool)
        m0 = np.broadcast_to(raw.reshape((1, w) if raw.ndim == 1 else (h, w)), (h, w))
    else:
        if k is None:
            k = read_complex(f["kspace"], info.plan["style"], info.plan["fields"], index)
        m0 = (k != 0).any(axis=0)
    frames = split_lines(m0.any(axis=0), split, index)
    return np.ascontiguousarray(m0[None] & frames[:, None, :])


def read_sample(f: h5py.File, info: FileInfo, index: int, split: SplitOptions | None,
                allow_empty_frames: bool = False) -> Sample:
    """Slice ``index`` (checked): its k-space ``(N, H, W)`` in every frame, masked by the frame's lines."""
    try:
        k = read_complex(f["kspace"], info.plan["style"], info.plan["fields"], index)  # (N, H, W)
    except OSError as e:
        raise InputError(info.path, f"slice {index}: cannot read 'kspace' (damaged file?): {e}") from None
    m = _fastmri_mask(f, info, index, split, k)
    kt = np.broadcast_to(k[None], (m.shape[0],) + k.shape)
    return format_sample(info, index, kt, m, allow_empty_frames)


def read_reference(f: h5py.File, info: FileInfo, index: int, coil_maps: torch.Tensor | None) -> torch.Tensor | None:
    """The stored reference of slice ``index``, float32 ``(1, 2, H, W)``; None without one."""
    if info.plan["ref"] is None:
        return None
    rstyle, rfields = info.plan["ref"]
    ref = read_complex(f["reference"], rstyle, rfields, index)
    check_finite(ref, info.path, f"slice {index}: reference")
    return to_tensor(ref)


def read_mask(f: h5py.File, info: FileInfo, index: int, split: SplitOptions | None) -> np.ndarray:
    """The bool ``(T, H, W)`` mask of slice ``index``: its samples dealt out to frames."""
    return _fastmri_mask(f, info, index, split, None)
