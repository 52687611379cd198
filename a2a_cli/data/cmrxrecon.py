"""The reader of CMRxRecon ``.mat`` files (MATLAB v7.3, which is HDF5).

Slices are read as the tensors of :class:`~a2a_cli.data.layout.Sample`: k-space
``(1, 2, T, N, H, W)`` float32 for N > 1 coils (``(1, 2, T, H, W)`` for one), mask
``(1, 1, T, H, W)``. These files store no coil maps: they are estimated from the
slice's own data afterwards (:mod:`a2a_cli.data.coil_maps`), and the reference is
combined with them (:func:`read_reference`). H is the readout (fully sampled) axis,
W the phase-encode axis, k-space centred (DC at ``(H // 2, W // 2)``).

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
the data file or from ``FullSample/<patient>/<name>.mat`` beside ``AccFactorNN``."""
from __future__ import annotations

import os
import re
from pathlib import Path

import h5py
import numpy as np
import torch

from ..errors import InputError
from ..fft import ifftc
from ..headers import check_samples, read_whole
from .hdf5 import check_finite, check_mask_values, classify_complex, open_file, read_complex, shape_str
from .layout import FileInfo, Sample, SplitOptions, format_info, format_sample, to_tensor

__all__ = ["NAME", "detect", "inspect", "read_sample", "read_reference", "read_mask"]

NAME = "cmrxrecon"
PathLike = str | os.PathLike

_SUB_RE = re.compile(r"^kspace_sub(\d+)$")


def _cmrx_vars(f: h5py.File) -> list[str]:
    return [n for n in f.keys() if n in ("kus", "kspace_full") or _SUB_RE.match(n)]


def detect(f: h5py.File) -> bool:
    """Whether ``f`` holds a CMRxRecon k-space variable (``kus``, ``kspace_full``, ``kspace_subNN``)."""
    return bool(_cmrx_vars(f))


def _combine(images: np.ndarray, maps: torch.Tensor | None) -> np.ndarray:
    """Coil images ``(T, N, H, W)`` -> one image ``(T, H, W)``: ``sum conj(S) x / sum |S|^2``, else RSS."""
    if maps is None:
        return np.sqrt((np.abs(images) ** 2).sum(axis=1)).astype(np.complex64)
    s = maps[0].numpy()
    norm = (np.abs(s) ** 2).sum(axis=0)
    combined = (np.conj(s)[None] * images).sum(axis=1) / np.where(norm > 0, norm, 1)
    return combined.astype(np.complex64)



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
    f = own if own is not None else open_file(source)
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
        raise InputError(source, f"mask '{var}' has shape {shape_str(shape)}, which does not fit k-space (nt, nz, nc, ny, nx) = "
                                 f"{shape_str(shape5)}: expected (ny, nx) = ({ny}, {nx}) or (nt, ny, nx) = ({nt}, {ny}, {nx})")
    return check_mask_values(raw, source, f"mask '{var}'"), var


def _phase_axis(mask: np.ndarray) -> str:
    """``"ny"`` or ``"nx"``: the axis a ``(t, ny, nx)`` mask's lines run across (``"ny"`` if not lines)."""
    along_nx = np.array_equal(mask.any(axis=2), mask.all(axis=2))  # whole rows: lines at fixed ky
    along_ny = np.array_equal(mask.any(axis=1), mask.all(axis=1))
    if along_ny and not along_nx:
        return "nx"
    return "ny"


def inspect(f: h5py.File, path: Path, split: SplitOptions | None, mask_file: PathLike | None) -> FileInfo:
    """Validate a CMRxRecon file and find its mask and reference (see the module docstring)."""
    names = _cmrx_vars(f)
    subs = sorted(n for n in names if _SUB_RE.match(n))
    if len(subs) > 1:
        raise InputError(path, f"holds several undersampled variables ({', '.join(subs)}); keep one per file")
    data_var = "kus" if "kus" in names else (subs[0] if subs else "kspace_full")
    number = _SUB_RE.match(data_var).group(1) if subs and data_var == subs[0] else None  # type: ignore[union-attr]
    ds = _mat_dataset(f, data_var, path)
    style, shape, fields = classify_complex(ds, data_var, path)
    if len(shape) != 5:
        extra = " (no time axis: a static acquisition, not a cine)" if len(shape) == 4 else ""
        raise InputError(path, f"'{data_var}' has shape {shape_str(shape)}{extra}; expected 5 axes (nt, nz, nc, ny, nx) as h5py reads MATLAB's (nx, ny, nc, nz, nt)")
    if 0 in shape:
        raise InputError(path, f"'{data_var}' has a zero-size axis (shape {shape_str(shape)})")
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
        first = read_complex(ds, style, fields, (slice(None), 0))
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
            with open_file(beside) as g:
                if "kspace_full" in g and tuple(classify_complex(g["kspace_full"], "kspace_full", beside)[1]) == tuple(shape):
                    ref_file, ref_var = str(beside), "kspace_full"
    if ref_file == str(path):
        rshape = classify_complex(_mat_dataset(f, "kspace_full", path), "kspace_full", path)[1]
        if tuple(rshape) != tuple(shape):
            raise InputError(path, f"'kspace_full' has shape {shape_str(rshape)} but '{data_var}' has {shape_str(shape)}")

    plan = {"var": data_var, "style": style, "fields": fields, "pe": pe, "mask": mask, "mask_from": mask_from,
            "retrospective": retrospective, "ref_file": ref_file, "ref_var": ref_var}
    return format_info(path, NAME, "dynamic", nz, nt, h, w, nc, ref_file is not None, mask_source, plan)


def _cmrx_to_a2a(z: np.ndarray, pe: str) -> np.ndarray:
    """``(..., ny, nx)`` -> ``(..., H, W)`` with W the phase-encode axis."""
    return np.swapaxes(z, -1, -2) if pe == "ny" else z


def _cmrx_read_complex(f: h5py.File, name: str, index: int, path: Path) -> np.ndarray:
    ds = f[name]
    style, _, fields = classify_complex(ds, name, path)
    try:
        return read_complex(ds, style, fields, (slice(None), index))
    except OSError as e:
        raise InputError(path, f"slice {index}: cannot read '{name}' (damaged file?): {e}") from None


def _cmrx_mask(info: FileInfo, k: np.ndarray | None) -> np.ndarray:
    """bool ``(T, H, W)``; ``k`` (``(T, N, H, W)``) is used when the mask is derived."""
    plan = info.plan
    if plan["mask"] is None:
        return (k != 0).any(axis=1)  # type: ignore[union-attr]
    m = _cmrx_to_a2a(plan["mask"], plan["pe"])
    return np.ascontiguousarray(np.broadcast_to(m, info.frame_shape))


def read_sample(f: h5py.File, info: FileInfo, index: int, split: SplitOptions | None,
                allow_empty_frames: bool = False) -> Sample:
    """Slice ``index`` (checked) without its reference and coil maps."""
    plan = info.plan
    k = _cmrx_to_a2a(_cmrx_read_complex(f, plan["var"], index, info.path), plan["pe"])  # (T, N, H, W)
    return format_sample(info, index, k, _cmrx_mask(info, k), allow_empty_frames)


def read_reference(f: h5py.File, info: FileInfo, index: int, coil_maps: torch.Tensor | None) -> torch.Tensor | None:
    """The coil combination of the inverse FFT of ``kspace_full``, float32 ``(1, 2, T, H, W)``; None without it.

    With coil maps ``(1, N, H, W)``: ``sum_c conj(S_c) x_c / sum_c |S_c|^2``; without (one
    coil: that coil's image; several: root sum of squares, real).
    """
    plan = info.plan
    if plan["ref_file"] is None:
        return None
    # a retrospective file's data variable is kspace_full itself
    ref_path = Path(plan["ref_file"])
    if plan["ref_file"] == str(info.path):
        full = _cmrx_to_a2a(_cmrx_read_complex(f, plan["ref_var"], index, info.path), plan["pe"])
    else:
        with open_file(ref_path) as g:
            full = _cmrx_to_a2a(_cmrx_read_complex(g, plan["ref_var"], index, ref_path), plan["pe"])
    images = ifftc(full, axes=(-2, -1))
    ref = images[:, 0] if coil_maps is None and images.shape[1] == 1 else _combine(images, coil_maps)
    check_finite(ref, info.path, f"slice {index}: reference")
    return to_tensor(ref)


def read_mask(f: h5py.File, info: FileInfo, index: int, split: SplitOptions | None) -> np.ndarray:
    """The bool ``(T, H, W)`` mask of slice ``index`` (reads k-space only when the mask is derived)."""
    k = None
    if info.plan["mask"] is None:
        k = _cmrx_to_a2a(_cmrx_read_complex(f, info.plan["var"], index, info.path), info.plan["pe"])
    return _cmrx_mask(info, k)
