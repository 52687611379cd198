"""Importers for the k-space files labs hold: CMRxRecon ``.mat``, ISMRMRD raw data, fastMRI multi-coil.

:func:`a2a_cli.io.inspect_file` and :func:`a2a_cli.io.read_slice` call into this
module for every file that is not an a2a file (or a single-coil fastMRI-style file,
which :mod:`a2a_cli.io` reads itself), so every command takes these files directly.
The layout is recognised from the file's contents (:func:`detect`), never from its
name. Readers return the same :class:`~a2a_cli.io.FileInfo` (an
:class:`ImportedInfo`) and :class:`~a2a_cli.io.Sample` as the a2a path:

* k-space ``(1, 2, T, N, H, W)`` float32 for N > 1 coils, ``(1, 2, T, H, W)`` for a
  single coil (N = 1 is read exactly like a single-coil a2a file);
* mask ``(1, 1, T, H, W)``;
* ``coil_maps`` complex ``(1, N, H, W)`` estimated from the slice's own data by
  :func:`a2a_cli.coils.estimate_maps` (``info.sensitivity``: ``"espirit"`` or
  ``"lowres"``; these files store no maps), None for a single coil.

H is the readout (fully sampled) axis, W the phase-encode axis, k-space centred
(DC at ``(H // 2, W // 2)``).

CMRxRecon (MATLAB v7.3 ``.mat``; h5py sees MATLAB's axes reversed)
------------------------------------------------------------------

=======================  ====================================  =======================================================
variable                 h5py shape                            meaning
=======================  ====================================  =======================================================
``kspace_subNN``         ``(nt, nz, nc, ny, nx)``              2023 undersampled k-space, NN = 04/08/10
``kus``                  ``(nt, nz, nc, ny, nx)``              2024 undersampled k-space
``kspace_full``          ``(nt, nz, nc, ny, nx)``              fully sampled k-space (reference, or undersampled with
                                                               ``--mask``)
``maskNN`` / ``mask``    ``(ny, nx)`` or ``(nt, ny, nx)``      0/1 sampling mask (2023: ``maskNN`` in ``<name>_mask.mat``
                                                               beside the data; 2024: ``mask`` in
                                                               ``<name>_mask_<pattern>.mat``)
=======================  ====================================  =======================================================

Complex values are a compound of ``real``/``imag``. Slices S = nz, frames T = nt,
coils N = nc. The phase-encode axis is the one the mask's lines run across (a mask
constant along nx samples whole ky lines, so W = ny, H = nx: the published layout);
for masks that are not lines (k-t radial) W = ny. The mask is looked for in this
order: ``--mask FILE``; a mask variable in the data file; ``<name>_mask.mat`` (2023)
or ``<name with _kus_ -> _mask_>.mat`` (2024) beside the data, then in the published
``Mask_TaskN/<patient>/`` folder next to ``UnderSample_TaskN/``. Without any mask the
non-zero samples are the mask. A file holding only ``kspace_full`` needs ``--mask``:
it is then undersampled retrospectively and also serves as its own reference. The
reference image is the coil combination of the inverse FFT of ``kspace_full`` (with
coil maps: ``sum_c conj(S_c) x_c``; without: root sum of squares, real), taken from
the data file or from ``FullSample/<patient>/<name>.mat`` beside ``AccFactorNN``.

ISMRMRD raw data (e.g. OCMR)
----------------------------

``/dataset/xml`` holds the header (``encoding/encodedSpace/matrixSize`` x, y;
``reconSpace/matrixSize`` x; ``encodingLimits/kspace_encoding_step_1/center``).
``/dataset/data`` is a compound of acquisitions with ``head`` (``flags``,
``number_of_samples``, ``active_channels``, ``center_sample``, ``idx`` with
``kspace_encode_step_1``, ``kspace_encode_step_2``, ``slice``, ``phase``,
``repetition``, ``contrast``, ``set``) and ``data`` (float32 ``(channels * samples *
2)``: channel-major, interleaved real/imaginary). Noise, calibration-only,
navigator, phase-correction, feedback, dummy and surface-coil-correction scans are
skipped. Frames are the cardiac ``phase`` counter, or ``repetition`` when the phase
does not vary (both varying: ``(repetition, phase)`` pairs in order). Line
``kspace_encode_step_1 = center`` lands on column W // 2; sample ``center_sample``
on row H // 2. The readout oversampling is removed (the centred reconSpace x of the
readout, in image space), so H = reconSpace x and W = encodedSpace y.
Repeated (line, frame) acquisitions are averaged. The mask is the set of acquired
(line, frame) pairs. No reference.

fastMRI multi-coil
------------------

``kspace`` ``(slices, coils, H, W)`` (a ``ismrmrd_header`` dataset or an
``acquisition`` attribute such as ``CORPD_FBK`` marks it; a 4D ``kspace`` without
either, or with ``acquisition`` = ``static``, is left to :mod:`a2a_cli.io`), optional ``mask`` ``(W,)``/``(H, W)``/
``(S, H, W)`` (absent: the non-zero samples), optional ``reference`` ``(S, H, W)``.
Read in sequential mode like single-coil fastMRI files (one frame per slice without the frames option).
"""
from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import torch

from . import io as _io
from .errors import InputError
from .fft import fftc, ifftc
from .geometry import read_geometry
from .headers import check_samples, header_int, read_whole
from .paths import attr_path, refuse_outputs_over_inputs

__all__ = ["FORMATS", "ImportedInfo", "detect", "importer_for", "inspect", "read_sample", "read_mask", "convert"]

PathLike = str | os.PathLike

FORMATS = ("a2a", "fastmri", "cmrxrecon", "ismrmrd")

_SUB_RE = re.compile(r"^kspace_sub(\d+)$")

# ISMRMRD acquisition flags (1-based bit numbers) of scans that are not image lines:
# noise measurement, parallel calibration only, navigator, phase correction,
# HP feedback, dummy scan, RT feedback, surface coil correction, phase stabilisation
# (reference).
_ISMRMRD_SKIP_BITS = (19, 20, 23, 24, 26, 27, 28, 29, 30, 31)
_ISMRMRD_SKIP_MASK = sum(1 << (b - 1) for b in _ISMRMRD_SKIP_BITS)


@dataclass
class ImportedInfo(_io.FileInfo):
    """A :class:`~a2a_cli.io.FileInfo` of a file read by an importer of this module.

    ``source_format`` names the importer; ``plan`` holds what the reader needs
    (dataset names, axis order, the mask, acquisition indices). As for a2a files,
    ``coils`` is N, or None for one coil.
    """

    source_format: str = ""
    plan: dict = field(default_factory=dict, repr=False)


# ----------------------------------------------------------------------------------
# detection
# ----------------------------------------------------------------------------------
def _is_ismrmrd(f: h5py.File) -> bool:
    g = f.get("dataset")
    return isinstance(g, h5py.Group) and "data" in g and "xml" in g


def _cmrx_vars(f: h5py.File) -> list[str]:
    return [n for n in f.keys() if n in ("kus", "kspace_full") or _SUB_RE.match(n)]


def _detect(f: h5py.File) -> str:
    if _is_ismrmrd(f):
        return "ismrmrd"
    if _cmrx_vars(f):
        return "cmrxrecon"
    ds = f.get("kspace")
    if not isinstance(ds, h5py.Dataset):
        return "a2a"  # io reports what is missing
    acq = (_io._attr_str(f.attrs.get("acquisition")) or "").lower()
    if acq in ("dynamic", "sequential"):
        return "a2a"
    ndim = len(ds.shape or ()) - (1 if ds.dtype.kind == "f" and ds.shape and ds.shape[-1] == 2 else 0)
    # a 4D 'static' file stays a2a (io rejects it): only fastMRI's own marks make a
    # 4D kspace (slices, coils, H, W)
    if ndim == 3 or "ismrmrd_header" in f or acq not in ("", "static"):
        return "fastmri"
    return "a2a"


def detect(path: PathLike) -> str:
    """The layout of a file from its contents: ``"a2a"``, ``"fastmri"``, ``"cmrxrecon"`` or ``"ismrmrd"``."""
    path = Path(path)
    with _io._open(path) as f:
        return _detect(f)


def importer_for(f: h5py.File) -> str | None:
    """The format name if this module reads ``f``; None if :mod:`a2a_cli.io` does (a2a, single-coil fastMRI)."""
    kind = _detect(f)
    if kind in ("cmrxrecon", "ismrmrd"):
        return kind
    if kind == "fastmri":
        ds = f["kspace"]
        ndim = len(ds.shape or ()) - (1 if ds.dtype.kind == "f" and ds.shape and ds.shape[-1] == 2 else 0)
        return "fastmri" if ndim == 4 else None
    return None


def inspect(f: h5py.File, path: Path, split: _io.SplitOptions | None, mask_file: PathLike | None, kind: str) -> ImportedInfo:
    """Validate ``f`` (of format ``kind``) from its header and masks; see the module docstring."""
    if kind == "cmrxrecon":
        return _cmrx_inspect(f, path, mask_file)
    if mask_file is not None:
        raise InputError(path, f"a separate mask file (--mask) is used only for CMRxRecon files; this is a {kind} file, which carries its own sampling")
    if kind == "ismrmrd":
        return _ismrmrd_inspect(f, path)
    return _fastmri_inspect(f, path, split)


def _info(path: Path, fmt: str, mode: str, s: int, t: int, h: int, w: int, coils: int, has_reference: bool,
          mask_source: str, plan: dict, reference_static: bool = False) -> ImportedInfo:
    multi = coils > 1  # one coil reads exactly like a single-coil a2a file
    return ImportedInfo(
        path=path, layout=fmt, mode=mode, n_slices=int(s), frames=int(t), height=int(h), width=int(w),  # type: ignore[arg-type]
        has_reference=has_reference, mask_source=mask_source, reference_static=reference_static,  # type: ignore[arg-type]
        coils=int(coils) if multi else None, sensitivity="espirit" if multi else None,
        source_format=fmt, plan=plan,
    )


# ----------------------------------------------------------------------------------
# numpy helpers
# ----------------------------------------------------------------------------------
def _coil_maps(info: ImportedInfo, kspace: np.ndarray, mask: np.ndarray,
               known: tuple[torch.Tensor, str] | None) -> tuple[torch.Tensor | None, str | None]:
    """``(coil maps complex (1, N, H, W), method)`` of k-space ``(T, N, H, W)`` (mask ``(T, H, W)``).

    ``known`` (from an earlier read of the slice) is returned as is; otherwise the
    maps are estimated from the slice's own data by :func:`a2a_cli.coils.estimate_maps`
    with the method ``info.sensitivity`` names. ``(None, None)`` for one coil.
    """
    if kspace.shape[1] == 1:
        return None, None
    if known is not None:
        return known
    from .coils import estimate_maps  # torch-heavy; only multi-coil files need it

    maps, used = estimate_maps(torch.from_numpy(np.ascontiguousarray(kspace, dtype=np.complex64)),
                               torch.from_numpy(np.ascontiguousarray(mask)), method=info.sensitivity or "espirit")
    return maps.to(torch.complex64)[None], used


def _combine(images: np.ndarray, maps: torch.Tensor | None) -> np.ndarray:
    """Coil images ``(T, N, H, W)`` -> one image ``(T, H, W)``: ``sum conj(S) x / sum |S|^2``, else RSS."""
    if maps is None:
        return np.sqrt((np.abs(images) ** 2).sum(axis=1)).astype(np.complex64)
    s = maps[0].numpy()
    norm = (np.abs(s) ** 2).sum(axis=0)
    combined = (np.conj(s)[None] * images).sum(axis=1) / np.where(norm > 0, norm, 1)
    return combined.astype(np.complex64)


def _sample(info: ImportedInfo, index: int, k: np.ndarray, m: np.ndarray, ref: np.ndarray | None,
            allow_empty_frames: bool, maps: tuple[torch.Tensor | None, str | None] = (None, None)) -> _io.Sample:
    """Build a :class:`~a2a_cli.io.Sample` from k-space ``(T, N, H, W)``, mask ``(T, H, W)``, reference."""
    _io._check_finite(k, info.path, f"slice {index}: k-space")
    k = np.where(m[:, None], k, np.complex64(0)).astype(np.complex64, copy=False)
    if not allow_empty_frames:
        empty = np.flatnonzero(~m.reshape(m.shape[0], -1).any(axis=1))
        if empty.size:
            listed = ", ".join(map(str, empty[:10].tolist())) + (", ..." if empty.size > 10 else "")
            raise InputError(info.path, f"slice {index}: frame(s) {listed} have no k-space samples ({empty.size} of {m.shape[0]} frames empty)")
    single = k.shape[1] == 1
    if ref is not None:
        _io._check_finite(ref, info.path, f"slice {index}: reference")
    return _io.Sample(
        kspace=_io._to_tensor(k[:, 0] if single else k),
        mask=torch.from_numpy(np.ascontiguousarray(m, dtype=np.float32))[None, None],
        reference=None if ref is None else _io._to_tensor(ref),
        file=str(info.path),
        slice_index=index,
        coil_maps=maps[0],
        sensitivity=maps[1],
    )


def _check_mask_values(raw: np.ndarray, path: Path, what: str) -> np.ndarray:
    if raw.dtype.names or raw.dtype.kind not in "biuf":
        raise InputError(path, f"{what} has data type {raw.dtype}; expected 0/1 numbers")
    _io._check_binary(raw, path, what)
    return raw.astype(bool)


# ----------------------------------------------------------------------------------
# CMRxRecon
# ----------------------------------------------------------------------------------
def _mat_dataset(f: h5py.File, name: str, path: Path) -> h5py.Dataset:
    obj = f[name]
    if not isinstance(obj, h5py.Dataset) or obj.shape is None:
        raise InputError(path, f"MATLAB variable '{name}' is not a numeric array")
    return obj


def _pick_mask_var(f: h5py.File, number: str | None) -> str | None:
    """The mask variable of a file: ``maskNN`` for ``kspace_subNN``, else ``mask``, else the only ``mask*``."""
    names = [n for n in f.keys() if isinstance(f[n], h5py.Dataset)]
    for want in ([f"mask{number}"] if number else []) + ["mask"]:
        if want in names:
            return want
    masks = [n for n in names if n.lower().startswith("mask")]
    return masks[0] if len(masks) == 1 else None


def _beside_masks(path: Path) -> list[Path]:
    """Published places of the mask file of a CMRxRecon data file."""
    stem, parent = path.stem, path.parent
    found: list[Path] = []
    if "_kus_" in stem:  # 2024: cine_sax_kus_Uniform4.mat -> cine_sax_mask_Uniform4.mat
        name = stem.replace("_kus_", "_mask_", 1) + path.suffix
        found.append(parent / name)
        task = re.match(r"^UnderSample_(Task\w*)$", parent.parent.name)
        if task:
            found.append(parent.parent.parent / f"Mask_{task.group(1)}" / parent.name / name)
    else:  # 2023: cine_sax.mat -> cine_sax_mask.mat
        found.append(parent / f"{stem}_mask{path.suffix}")
    return found


def _full_sample_beside(path: Path) -> Path | None:
    """``FullSample/<patient>/<name>.mat`` next to ``AccFactorNN/`` (2023) or ``UnderSample_TaskN/`` (2024)."""
    parent = path.parent
    if not re.match(r"^(AccFactor\d+|UnderSample_Task\w*)$", parent.parent.name):
        return None
    base = path.stem.split("_kus_")[0]
    candidate = parent.parent.parent / "FullSample" / parent.name / f"{base}{path.suffix}"
    return candidate if candidate.is_file() else None


def _load_cmrx_mask(path: Path, source: Path, number: str | None, shape5: tuple[int, ...], own: h5py.File | None) -> tuple[np.ndarray, str]:
    """bool mask ``(nt or 1, ny, nx)`` from ``source`` (``own`` when it is the data file) and its variable name."""
    nt, _, _, ny, nx = shape5
    f = own if own is not None else _io._open(source)
    try:
        var = _pick_mask_var(f, number)
        if var is None:
            held = ", ".join(sorted(f.keys())) or "nothing"
            raise InputError(source, f"no mask variable ('mask{number or 'NN'}' or 'mask') in this mask file (it holds: {held})")
        ds = _mat_dataset(f, var, source)
        raw = read_whole(ds, source, f"mask '{var}'")
    finally:
        if own is None:
            f.close()
    shape = raw.shape
    if shape == (ny, nx):
        raw = raw[None]
    elif shape == (nt, ny, nx):
        pass
    elif shape in ((nx, ny), (nt, nx, ny)) and nx != ny:
        raise InputError(source, f"mask '{var}' has shape {shape} but the k-space (h5py order) is (nt, nz, nc, ny, nx) = {shape5}: "
                                 f"the mask axes are transposed; expected (ny, nx) = ({ny}, {nx}) or (nt, ny, nx)")
    else:
        raise InputError(source, f"mask '{var}' has shape {_io._shape_str(shape)}, which does not fit k-space (nt, nz, nc, ny, nx) = "
                                 f"{_io._shape_str(shape5)}: expected (ny, nx) = ({ny}, {nx}) or (nt, ny, nx) = ({nt}, {ny}, {nx})")
    return _check_mask_values(raw, source, f"mask '{var}'"), var


def _phase_axis(mask: np.ndarray) -> str:
    """``"ny"`` or ``"nx"``: the axis a ``(t, ny, nx)`` mask's lines run across (``"ny"`` if not lines)."""
    along_nx = np.array_equal(mask.any(axis=2), mask.all(axis=2))  # whole rows: lines at fixed ky
    along_ny = np.array_equal(mask.any(axis=1), mask.all(axis=1))
    if along_ny and not along_nx:
        return "nx"
    return "ny"


def _cmrx_inspect(f: h5py.File, path: Path, mask_file: PathLike | None) -> ImportedInfo:
    names = _cmrx_vars(f)
    subs = sorted(n for n in names if _SUB_RE.match(n))
    if len(subs) > 1:
        raise InputError(path, f"holds several undersampled variables ({', '.join(subs)}); keep one per file")
    data_var = "kus" if "kus" in names else (subs[0] if subs else "kspace_full")
    number = _SUB_RE.match(data_var).group(1) if subs and data_var == subs[0] else None  # type: ignore[union-attr]
    ds = _mat_dataset(f, data_var, path)
    style, shape, fields = _io._classify_complex(ds, data_var, path)
    if len(shape) != 5:
        extra = " (no time axis: a static acquisition, not a cine)" if len(shape) == 4 else ""
        raise InputError(path, f"'{data_var}' has shape {_io._shape_str(shape)}{extra}; expected 5 axes (nt, nz, nc, ny, nx) as h5py reads MATLAB's (nx, ny, nc, nz, nt)")
    if 0 in shape:
        raise InputError(path, f"'{data_var}' has a zero-size axis (shape {_io._shape_str(shape)})")
    nt, nz, nc, ny, nx = shape

    retrospective = data_var == "kspace_full"
    mask = None
    mask_from = None
    if mask_file is not None:
        mask, var = _load_cmrx_mask(Path(mask_file), Path(mask_file), number, shape, None)
        mask_from = f"{mask_file}:{var}"
    elif not retrospective and _pick_mask_var(f, number) is not None:
        mask, var = _load_cmrx_mask(path, path, number, shape, f)
        mask_from = var
    elif not retrospective:
        for candidate in _beside_masks(path):
            if candidate.is_file():
                mask, var = _load_cmrx_mask(candidate, candidate, number, shape, None)
                mask_from = f"{candidate}:{var}"
                break
    if retrospective and mask is None:
        raise InputError(path, "holds only fully sampled 'kspace_full'; give a sampling mask with --mask FILE "
                               "(e.g. a CMRxRecon *_mask_*.mat) to undersample it retrospectively")

    if mask is not None:
        pe = _phase_axis(mask)
        mask_source = "stored"
    else:
        # no mask anywhere: the non-zero samples, orientation from the first slice
        check_samples(path, f"slice 0 of '{data_var}' (read to find the sampled locations)", (nt, nc, ny, nx))
        first = _io._read_complex(ds, style, fields, (slice(None), 0))
        pe = _phase_axis((first != 0).any(axis=1))
        mask_source = "derived"
    h, w = (nx, ny) if pe == "ny" else (ny, nx)

    ref_file, ref_var = None, None
    if retrospective:
        ref_file, ref_var = str(path), "kspace_full"
    elif "kspace_full" in f:
        ref_file, ref_var = str(path), "kspace_full"
    else:
        beside = _full_sample_beside(path)
        if beside is not None:
            with _io._open(beside) as g:
                if "kspace_full" in g and tuple(_io._classify_complex(g["kspace_full"], "kspace_full", beside)[1]) == tuple(shape):
                    ref_file, ref_var = str(beside), "kspace_full"
    if ref_file == str(path):
        rshape = _io._classify_complex(_mat_dataset(f, "kspace_full", path), "kspace_full", path)[1]
        if tuple(rshape) != tuple(shape):
            raise InputError(path, f"'kspace_full' has shape {_io._shape_str(rshape)} but '{data_var}' has {_io._shape_str(shape)}")

    plan = {"var": data_var, "style": style, "fields": fields, "pe": pe, "mask": mask, "mask_from": mask_from,
            "retrospective": retrospective, "ref_file": ref_file, "ref_var": ref_var}
    return _info(path, "cmrxrecon", "dynamic", nz, nt, h, w, nc, ref_file is not None, mask_source, plan)


def _cmrx_to_a2a(z: np.ndarray, pe: str) -> np.ndarray:
    """``(..., ny, nx)`` -> ``(..., H, W)`` with W the phase-encode axis."""
    return np.swapaxes(z, -1, -2) if pe == "ny" else z


def _cmrx_read_complex(f: h5py.File, name: str, index: int, path: Path) -> np.ndarray:
    ds = f[name]
    style, _, fields = _io._classify_complex(ds, name, path)
    try:
        return _io._read_complex(ds, style, fields, (slice(None), index))
    except OSError as e:
        raise InputError(path, f"slice {index}: cannot read '{name}' (damaged file?): {e}") from None


def _cmrx_mask(info: ImportedInfo, k: np.ndarray | None) -> np.ndarray:
    """bool ``(T, H, W)``; ``k`` (``(T, N, H, W)``) is used when the mask is derived."""
    plan = info.plan
    if plan["mask"] is None:
        return (k != 0).any(axis=1)  # type: ignore[union-attr]
    m = _cmrx_to_a2a(plan["mask"], plan["pe"])
    return np.ascontiguousarray(np.broadcast_to(m, info.frame_shape))


def _cmrx_read(f: h5py.File, info: ImportedInfo, index: int, allow_empty_frames: bool, with_reference: bool,
               known_maps: tuple[torch.Tensor, str] | None) -> _io.Sample:
    plan = info.plan
    k = _cmrx_to_a2a(_cmrx_read_complex(f, plan["var"], index, info.path), plan["pe"])  # (T, N, H, W)
    m = _cmrx_mask(info, k)
    maps = _coil_maps(info, np.where(m[:, None], k, 0), m, known_maps)
    ref = None
    if with_reference and plan["ref_file"] is not None:
        if plan["ref_file"] == str(info.path):
            full = k if plan["retrospective"] else _cmrx_to_a2a(_cmrx_read_complex(f, plan["ref_var"], index, info.path), plan["pe"])
        else:
            ref_path = Path(plan["ref_file"])
            with _io._open(ref_path) as g:
                full = _cmrx_to_a2a(_cmrx_read_complex(g, plan["ref_var"], index, ref_path), plan["pe"])
        images = ifftc(full, axes=(-2, -1))
        ref = images[:, 0] if maps[0] is None and images.shape[1] == 1 else _combine(images, maps[0])
    return _sample(info, index, k, m, ref, allow_empty_frames, maps)


# ----------------------------------------------------------------------------------
# ISMRMRD
# ----------------------------------------------------------------------------------
def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _xml_int(root: ET.Element, path: str, file: Path, low: int = 1) -> int | None:
    """The integer at ``path`` under ``root`` (None when absent), through the checked :func:`~a2a_cli.headers.header_int`."""
    node: ET.Element | None = root
    for part in path.split("/"):
        node = next((c for c in node if _local(c.tag) == part), None) if node is not None else None
    if node is None or node.text is None or not node.text.strip():
        return None
    return header_int(node.text, file, f"the ISMRMRD header field encoding/{path}", low=low)


def _ismrmrd_header(f: h5py.File, path: Path) -> ET.Element:
    xml = f["dataset"]["xml"]
    if not isinstance(xml, h5py.Dataset) or xml.shape is None:
        raise InputError(path, "/dataset/xml is not a dataset holding the ISMRMRD header text")
    if xml.dtype.names or (xml.dtype.kind not in "SUOa" and h5py.check_string_dtype(xml.dtype) is None):
        raise InputError(path, f"/dataset/xml holds {xml.dtype}, not the ISMRMRD header text")
    raw = read_whole(xml, path, "the ISMRMRD header /dataset/xml")
    if isinstance(raw, np.ndarray):
        raw = raw.reshape(-1)[0] if raw.size else b""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise InputError(path, f"the ISMRMRD header /dataset/xml is not valid XML: {e}") from None
    enc = next((c for c in root if _local(c.tag) == "encoding"), None)
    if enc is None:
        raise InputError(path, "the ISMRMRD header /dataset/xml has no <encoding> section")
    return enc


def _ismrmrd_inspect(f: h5py.File, path: Path) -> ImportedInfo:
    enc = _ismrmrd_header(f, path)
    hx, wy = (_xml_int(enc, f"encodedSpace/matrixSize/{a}", path) for a in "xy")
    z = _xml_int(enc, "encodedSpace/matrixSize/z", path, low=0)
    rx = _xml_int(enc, "reconSpace/matrixSize/x", path, low=0)
    if not hx or not wy:
        raise InputError(path, "the ISMRMRD header lacks encoding/encodedSpace/matrixSize x and y")
    if z is not None and z > 1:
        raise InputError(path, f"3D encoding (encoded matrix z = {z}) is not supported; only 2D (multi-slice) cine")
    centre = _xml_int(enc, "encodingLimits/kspace_encoding_step_1/center", path, low=0)
    centre = wy // 2 if centre is None else centre
    ds = f["dataset"]["data"]
    if not isinstance(ds, h5py.Dataset) or not ds.dtype.names or "head" not in ds.dtype.names or "data" not in ds.dtype.names:
        raise InputError(path, "/dataset/data is not an ISMRMRD acquisition table (compound with 'head' and 'data')")
    head_names = ds.dtype["head"].names or ()
    need = ("flags", "number_of_samples", "active_channels", "idx")
    missing = [n for n in need if n not in head_names]
    if missing:
        raise InputError(path, f"ISMRMRD acquisition headers lack {', '.join(missing)}")
    try:
        heads = read_whole(ds, path, "the ISMRMRD acquisition table /dataset/data", field="head")
    except OSError as e:
        raise InputError(path, f"cannot read the acquisition headers (damaged file?): {e}") from None
    if heads.size == 0:
        raise InputError(path, "/dataset/data holds no acquisitions")
    idx = heads["idx"]
    counter = lambda name: idx[name].astype(np.int64) if name in (idx.dtype.names or ()) else np.zeros(heads.size, np.int64)  # noqa: E731
    keep = (heads["flags"].astype(np.uint64) & np.uint64(_ISMRMRD_SKIP_MASK)) == 0
    if not keep.any():
        raise InputError(path, "no imaging acquisitions (all are noise, calibration or other non-imaging scans)")
    acq = np.flatnonzero(keep)
    if "trajectory_dimensions" in head_names and (heads["trajectory_dimensions"][acq] > 0).any():
        raise InputError(
            path,
            "the acquisitions carry trajectory points (non-Cartesian, e.g. radial k-space), which are not read as "
            "Cartesian lines; write the a2a radial file first: a2a convert IN OUT",
        )
    ky, sl = counter("kspace_encode_step_1")[acq], counter("slice")[acq]
    phase, rep = counter("phase")[acq], counter("repetition")[acq]
    for name in ("kspace_encode_step_2", "contrast", "set"):
        if np.unique(counter(name)[acq]).size > 1:
            raise InputError(path, f"the acquisitions have several values of '{name}'; only single-contrast 2D cine data is supported")
    channels = np.unique(heads["active_channels"][acq])
    if channels.size != 1 or channels[0] < 1:
        raise InputError(path, f"the imaging acquisitions have differing channel counts {channels.tolist()}")
    samples = heads["number_of_samples"][acq].astype(np.int64)
    centre_sample = heads["center_sample"][acq].astype(np.int64) if "center_sample" in head_names else np.zeros_like(samples)
    centre_sample = np.where(centre_sample > 0, centre_sample, samples // 2)  # 0: not set, assume a centred echo
    rows0 = hx // 2 - centre_sample  # row of each acquisition's first sample
    if (rows0 < 0).any() or (rows0 + samples > hx).any():
        raise InputError(path, f"readouts of up to {samples.max()} samples do not fit the encoded matrix x = {hx}")
    cols = ky - centre + wy // 2
    if (cols < 0).any() or (cols >= wy).any():
        raise InputError(path, f"kspace_encode_step_1 values {ky.min()}..{ky.max()} (centre {centre}) do not fit the encoded matrix y = {wy}")
    if np.unique(phase).size > 1 and np.unique(rep).size > 1:
        frame_key, frame_desc = rep * (phase.max() + 1) + phase, "(repetition, phase)"
    elif np.unique(phase).size > 1:
        frame_key, frame_desc = phase, "phase"
    else:
        frame_key, frame_desc = rep, "repetition"
    frame_values, frames = np.unique(frame_key, return_inverse=True)
    slice_values, slices = np.unique(sl, return_inverse=True)
    h = rx if rx and rx < hx else hx
    plan = {
        "acq": acq, "slice": slices, "frame": frames, "col": cols, "row0": rows0, "samples": samples,
        "encoded_x": int(hx), "crop_x": int(h), "frame_counter": frame_desc, "slice_values": slice_values.tolist(),
    }
    return _info(path, "ismrmrd", "dynamic", slice_values.size, frame_values.size, h, wy, int(channels[0]), False, "stored", plan)


def _ismrmrd_lines(info: ImportedInfo, index: int) -> np.ndarray:
    sel = info.plan["slice"] == index
    m = np.zeros((info.frames, info.width), dtype=bool)
    m[info.plan["frame"][sel], info.plan["col"][sel]] = True
    return m


def _ismrmrd_read(f: h5py.File, info: ImportedInfo, index: int, allow_empty_frames: bool,
                  known_maps: tuple[torch.Tensor, str] | None) -> _io.Sample:
    plan = info.plan
    sel = np.flatnonzero(plan["slice"] == index)
    n, hx, t, w = info.coils or 1, plan["encoded_x"], info.frames, info.width
    k = np.zeros((t, n, hx, w), np.complex64)
    count = np.zeros((t, w), np.int64)
    try:
        raw = f["dataset"]["data"].fields("data")[plan["acq"][sel].tolist()]
    except OSError as e:
        raise InputError(info.path, f"slice {index}: cannot read the acquisitions (damaged file?): {e}") from None
    for j, data in zip(sel, raw):
        ns, r0 = int(plan["samples"][j]), int(plan["row0"][j])
        data = np.asarray(data, dtype=np.float32)
        if data.size != n * ns * 2:
            raise InputError(info.path, f"slice {index}: an acquisition holds {data.size} values, not channels * samples * 2 = {n * ns * 2}")
        fr, col = plan["frame"][j], plan["col"][j]
        k[fr, :, r0:r0 + ns, col] += data.view(np.complex64).reshape(n, ns)
        count[fr, col] += 1
    k /= np.maximum(count, 1)[:, None, None, :]  # repeated acquisitions (averages) are averaged
    if plan["crop_x"] < hx:
        # drop the readout oversampling: image space along the readout, keep the centre
        start = hx // 2 - plan["crop_x"] // 2
        k = fftc(ifftc(k, axes=(2,))[:, :, start:start + plan["crop_x"]], axes=(2,)).astype(np.complex64)
    lines = count > 0
    m = np.ascontiguousarray(np.broadcast_to(lines[:, None, :], info.frame_shape))
    return _sample(info, index, k, m, None, allow_empty_frames, _coil_maps(info, k, m, known_maps))


# ----------------------------------------------------------------------------------
# fastMRI multi-coil
# ----------------------------------------------------------------------------------
def _fastmri_inspect(f: h5py.File, path: Path, split: _io.SplitOptions | None) -> ImportedInfo:
    ds = _io._dataset(f, "kspace", path)
    style, shape, fields = _io._classify_complex(ds, "kspace", path)
    if 0 in shape:
        raise InputError(path, f"'kspace' has a zero-size dimension (shape {_io._shape_str(shape)})")
    s, n, h, w = shape
    split = split or _io.SINGLE_FRAME  # without the frames option: one frame per slice
    sizes = {"S": s, "H": h, "W": w}
    mask_dims = None
    if "mask" in f:
        mds = _io._dataset(f, "mask", path)
        mask_dims = _io._match_dims(mds.shape, [("W",), ("H", "W"), ("S", "H", "W")], sizes)
        if mask_dims is None:
            raise InputError(path, f"'mask' has shape {_io._shape_str(mds.shape)}, which does not fit 'kspace' {_io._shape_str(shape)}: expected (W,), (H, W) or (S, H, W)")
        _check_mask_values(read_whole(mds, path, "'mask'"), path, "'mask'")
    ref = None
    if "reference" in f:
        rds = _io._dataset(f, "reference", path)
        rstyle, rshape, rfields = ("real", tuple(rds.shape), None) if rds.dtype.kind in "fiu" and not rds.dtype.names else _io._classify_complex(rds, "reference", path)
        if tuple(rshape) != (s, h, w):
            raise InputError(path, f"'reference' has shape {_io._shape_str(rshape)}; expected (S, H, W) = {_io._shape_str((s, h, w))}")
        ref = (rstyle, rfields)
    plan = {"style": style, "fields": fields, "mask_dims": mask_dims, "ref": ref}
    return _info(path, "fastmri", "sequential", s, split.frames, h, w, n, ref is not None, "split", plan, reference_static=True)


def _fastmri_mask(f: h5py.File, info: ImportedInfo, index: int, split: _io.SplitOptions | None, k: np.ndarray | None) -> np.ndarray:
    """bool ``(T, H, W)``: the slice's samples dealt out to frames (``k``: ``(N, H, W)`` when derived)."""
    split = split or _io.SINGLE_FRAME
    h, w = info.height, info.width
    dims = info.plan["mask_dims"]
    if dims is not None:
        raw = np.asarray(f["mask"][index] if dims[0] == "S" else f["mask"][()]).astype(bool)
        m0 = np.broadcast_to(raw.reshape((1, w) if raw.ndim == 1 else (h, w)), (h, w))
    else:
        if k is None:
            k = _io._read_complex(f["kspace"], info.plan["style"], info.plan["fields"], index)
        m0 = (k != 0).any(axis=0)
    frames = _io.split_lines(m0.any(axis=0), split, index)
    return np.ascontiguousarray(m0[None] & frames[:, None, :])


def _fastmri_read(f: h5py.File, info: ImportedInfo, index: int, split: _io.SplitOptions | None,
                  allow_empty_frames: bool, with_reference: bool, known_maps: tuple[torch.Tensor, str] | None) -> _io.Sample:
    try:
        k = _io._read_complex(f["kspace"], info.plan["style"], info.plan["fields"], index)  # (N, H, W)
    except OSError as e:
        raise InputError(info.path, f"slice {index}: cannot read 'kspace' (damaged file?): {e}") from None
    m = _fastmri_mask(f, info, index, split, k)
    kt = np.broadcast_to(k[None], (m.shape[0],) + k.shape)
    union = m.any(axis=0)  # the maps come from all the slice's samples, whatever the split
    maps = _coil_maps(info, np.where(union[None, None], k[None], 0), union[None], known_maps)
    ref = None
    if with_reference and info.plan["ref"] is not None:
        rstyle, rfields = info.plan["ref"]
        ref = _io._read_complex(f["reference"], rstyle, rfields, index)
    return _sample(info, index, kt, m, ref, allow_empty_frames, maps)


# ----------------------------------------------------------------------------------
# entry points used by a2a_cli.io
# ----------------------------------------------------------------------------------
def read_sample(f: h5py.File, info: ImportedInfo, index: int, split: _io.SplitOptions | None,
                allow_empty_frames: bool = False, with_reference: bool = True,
                known_maps: tuple[torch.Tensor, str] | None = None) -> _io.Sample:
    """Slice ``index`` of an imported file as a :class:`~a2a_cli.io.Sample` (see the module docstring).

    ``known_maps``: ``(coil maps (1, N, H, W), method)`` of this slice from an earlier read.
    """
    index = _io._check_index(info, index)
    if info.source_format == "radial":
        from . import radial

        return radial.read_sample(f, info, index, allow_empty_frames, with_reference, known_maps)
    if info.source_format == "cmrxrecon":
        return _cmrx_read(f, info, index, allow_empty_frames, with_reference, known_maps)
    if info.source_format == "ismrmrd":
        return _ismrmrd_read(f, info, index, allow_empty_frames, known_maps)
    return _fastmri_read(f, info, index, split, allow_empty_frames, with_reference, known_maps)


def read_mask(f: h5py.File, info: ImportedInfo, index: int, split: _io.SplitOptions | None) -> np.ndarray:
    """The bool ``(T, H, W)`` mask of slice ``index`` (reads k-space only when the mask is derived)."""
    index = _io._check_index(info, index)
    if info.source_format == "radial":
        from . import radial

        return radial.read_mask(f, info, index)
    if info.source_format == "cmrxrecon":
        k = None
        if info.plan["mask"] is None:
            k = _cmrx_to_a2a(_cmrx_read_complex(f, info.plan["var"], index, info.path), info.plan["pe"])
        return _cmrx_mask(info, k)
    if info.source_format == "ismrmrd":
        return np.ascontiguousarray(np.broadcast_to(_ismrmrd_lines(info, index)[:, None, :], info.frame_shape))
    return _fastmri_mask(f, info, index, split, None)


# ----------------------------------------------------------------------------------
# conversion to an a2a file
# ----------------------------------------------------------------------------------
def _complex_np(t: torch.Tensor) -> np.ndarray:
    """``(1, 2, ...)`` float tensor -> complex64 ``(...)``."""
    a = t[0].numpy()
    return (a[0] + 1j * a[1]).astype(np.complex64)


def convert(
    source: PathLike, target: PathLike, mask_file: PathLike | None = None, split: _io.SplitOptions | None = None,
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
    info = _io.inspect_file(source, split=split, mask_file=mask_file)
    if virtual_coils is not None:
        if not info.coils:
            raise InputError(source, "--virtual-coils needs multi-coil data; the file has one coil")
        if not 1 <= virtual_coils < info.coils:
            raise InputError(source, f"--virtual-coils {virtual_coils}: the file has {info.coils} coils; "
                                     f"give a number from 1 to {info.coils - 1}")
    fmt = getattr(info, "source_format", None) or detect(source)
    t, h, w, s = info.frames, info.height, info.width, info.n_slices
    with _io.atomic_write(target, overwrite) as tmp, h5py.File(tmp, "w") as out:
        k_ds = m_ds = r_ds = s_ds = None
        for index in range(s):
            sample = _io.read_slice(source, index, split=split, info=info, allow_empty_frames=True, mask_file=mask_file)
            k = _complex_np(sample.kspace)
            maps = None if sample.coil_maps is None else sample.coil_maps[0]
            if virtual_coils is not None:
                from .coils import compress_coils

                kc, matrix = compress_coils(k, virtual_coils, coil_axis=-3, return_matrix=True)
                k = kc.numpy()
                maps = None if maps is None else compress_coils(maps, virtual_coils, coil_axis=0, matrix=matrix)
            if k_ds is None:
                k_ds = out.create_dataset("kspace", shape=(s,) + k.shape, dtype=np.complex64,
                                          chunks=(1,) * (k.ndim - 1) + (h, w), **_io._COMPRESSION)
                m_ds = out.create_dataset("mask", shape=(s, t, h, w), dtype=np.uint8, chunks=(1, 1, h, w), **_io._COMPRESSION)
                if sample.reference is not None:
                    rshape = (t, h, w) if sample.reference.ndim == 5 else (h, w)
                    r_ds = out.create_dataset("reference", shape=(s,) + rshape, dtype=np.complex64,
                                              chunks=(1,) * (len(rshape) - 1) + (h, w), **_io._COMPRESSION)
                if maps is not None:  # stored, so reading the output does not estimate them again
                    s_ds = out.create_dataset("sensitivity_maps", shape=(s,) + tuple(maps.shape),
                                              dtype=np.complex64, chunks=(1, 1, h, w), **_io._COMPRESSION)
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
