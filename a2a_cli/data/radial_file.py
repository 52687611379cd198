"""The reader of the a2a radial file (writing and simulating: :mod:`a2a_cli.radial`; the physics: :mod:`a2a_cli.nufft`).

Layout (HDF5; h5py axis order):

* ``kspace``: complex ``(T, N, spokes, samples)`` for one slice or ``(S, T, N, spokes,
  samples)``; single-coil without the N axis. The attribute ``coils = N`` marks the
  coil axis, as for Cartesian files.
* ``trajectory``: float ``(T, spokes, samples, 2)`` (shared by the slices) or ``(S, T,
  spokes, samples, 2)``: the coordinates along image axes H and W in cycles per field
  of view (k-space pixel units; ``+-H/2`` and ``+-W/2`` are the edges), as BART's
  ``traj`` scaled to the image grid (its first coordinate runs along image axis 0).
* attribute ``image_size = [H, W]``.
* optional ``dcf``: float, the trajectory's shape without its last axis (density
  compensation; computed by :func:`a2a_cli.nufft.density_compensation` when absent);
  ``sensitivity_maps`` ``(N, H, W)``/``(S, N, H, W)`` (estimated from the gridded,
  time-averaged centre when absent, :mod:`a2a_cli.data.coil_maps`); ``reference``
  ``(T, H, W)``/``(S, T, H, W)`` (dynamic) or ``(H, W)``/``(S, H, W)`` (static); attribute
  ``acquisition`` (``dynamic``, the default, or ``sequential``).

A slice is read as the tensors of :mod:`a2a_cli.nufft`: k-space ``(1, 2, T, N, spokes,
samples)`` (N = 1 for one coil), the sampling tensor ``(1, 4, T, spokes, samples)``
(measured, trajectory H, trajectory W, dcf) and coil maps ``(1, N, H, W)`` (ones for one
coil).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from ..errors import InputError
from ..nufft import density_compensation, sampling_tensor
from .hdf5 import attr_str, classify_complex, coil_attr, dataset, read_checked, read_slice_of, shape_str
from .layout import FileInfo, Sample, SplitOptions, stored_maps, stored_reference, to_tensor

__all__ = ["NAME", "detect", "inspect", "read_sample", "read_reference", "read_mask", "read_trajectory", "read_kspace"]

NAME = "radial"
#: Coordinates may exceed the edge by this fraction of a k-space pixel (float rounding).
_EDGE_TOLERANCE = 1e-3


def detect(f: h5py.File) -> bool:
    """Whether an open file is an a2a radial file (it holds a ``trajectory`` dataset)."""
    return "trajectory" in f


def _image_size(f: h5py.File, path: Path) -> tuple[int, int]:
    raw = f.attrs.get("image_size")
    if raw is None:
        raise InputError(path, "a radial file needs the attribute image_size = [H, W] (the image grid the trajectory is scaled to)")
    value = np.asarray(raw).reshape(-1)
    if value.size != 2 or value.dtype.kind not in "iuf" or not np.all(np.isfinite(value)) or np.any(value != np.round(value)) or np.any(value < 2):
        raise InputError(path, f"the attribute image_size must be two integers [H, W] >= 2, got {raw!r}")
    return int(value[0]), int(value[1])


def inspect(f: h5py.File, path: Path, split: SplitOptions | None = None, mask_file: Any = None) -> FileInfo:
    """Validate a radial file from its header and trajectory (k-space is not read)."""
    if mask_file is not None:
        raise InputError(path, "a separate mask file (--mask) is used only for CMRxRecon files; a radial file carries its trajectory")
    h, w = _image_size(f, path)
    if "kspace" not in f:
        raise InputError(path, f"no dataset 'kspace' (the file holds: {', '.join(sorted(f.keys()))})")
    style, shape, fields = classify_complex(dataset(f, "kspace", path), "kspace", path)
    n_coils, body = _coil_axis(f, path, shape)
    slice_axis = len(body) == 4
    s, (t, spokes, samples) = (body[0], body[1:]) if slice_axis else (1, body)
    allowed = [(t, spokes, samples, 2)] + ([(s, t, spokes, samples, 2)] if slice_axis else [])
    tshape = _check_trajectory(f, path, allowed, shape, (h, w))
    dcf_shared = _check_dcf(f, path, allowed)
    acq_raw = attr_str(f.attrs.get("acquisition"))
    mode = (acq_raw or "dynamic").lower()
    if mode not in ("dynamic", "sequential"):
        raise InputError(path, f"a radial file's acquisition must be 'dynamic' or 'sequential', not {acq_raw!r}")
    sizes = {"S": s, "T": t, "H": h, "W": w}
    ref_dims, ref_style, ref_fields = _reference(f, path, slice_axis, sizes)
    maps_dims, maps_style, maps_fields = stored_maps(f, path, n_coils, slice_axis, sizes, f"image_size {[h, w]}")
    multi = n_coils is not None and n_coils > 1
    plan = {
        "spokes": int(spokes), "samples": int(samples), "traj_shared": len(tshape) == 4, "dcf_shared": dcf_shared,
        "coil_axis": n_coils is not None, "maps_dims": maps_dims, "maps_style": maps_style, "maps_fields": maps_fields,
    }
    return FileInfo(
        path=path, layout=NAME, mode=mode, n_slices=int(s), frames=int(t), height=h, width=w,  # type: ignore[arg-type]
        has_reference=ref_dims is not None, mask_source="stored", complex_style=style,  # type: ignore[arg-type]
        reference_static=ref_dims is not None and "T" not in ref_dims,
        coils=n_coils if multi else None, sensitivity=("stored" if maps_dims else "espirit") if multi else None,
        _kspace_fields=fields, _kspace_slice_axis=slice_axis, _kspace_coil_axis=n_coils is not None,
        _reference_dims=ref_dims, _reference_style=ref_style, _reference_fields=ref_fields,
        reader=NAME, plan=plan,
    )


def _coil_axis(f: h5py.File, path: Path, shape: tuple[int, ...]) -> tuple[int | None, tuple[int, ...]]:
    """``(N or None, kspace shape without the coil axis)``, checked."""
    n_coils = coil_attr(f, path)
    if n_coils is not None:
        if len(shape) not in (4, 5):
            raise InputError(path, f"the attribute coils={n_coils} says radial 'kspace' has a coil axis, so it must be 4D (T, N, spokes, samples) or 5D (S, T, N, spokes, samples); it has shape {shape_str(shape)}")
        if shape[-3] != n_coils:
            raise InputError(path, f"the attribute coils={n_coils} does not match the coil axis of 'kspace' {shape_str(shape)} (size {shape[-3]} before spokes, samples)")
        body = shape[:-3] + shape[-2:]
    else:
        if len(shape) == 5:
            raise InputError(path, f"'kspace' has 5 dimensions (shape {shape_str(shape)}): multi-coil radial k-space (S, T, N, spokes, samples) needs the attribute coils = N")
        body = shape
    if len(body) not in (3, 4) or 0 in shape:
        raise InputError(path, f"radial 'kspace' must be (T, [N,] spokes, samples) or (S, T, [N,] spokes, samples), got shape {shape_str(shape)}")
    return n_coils, body


def _check_trajectory(f: h5py.File, path: Path, allowed: list[tuple[int, ...]], shape: tuple[int, ...],
                      size: tuple[int, int]) -> tuple[int, ...]:
    """The shape of ``trajectory``, checked to fit ``kspace`` and to stay inside k-space."""
    tds = dataset(f, "trajectory", path)
    if tds.dtype.kind not in "fiu" or tds.dtype.names:
        raise InputError(path, f"'trajectory' has data type {tds.dtype}; expected float coordinates (cycles per field of view)")
    tshape = tuple(tds.shape)
    if tshape not in allowed:
        expected = " or ".join(shape_str(a) for a in allowed)
        raise InputError(path, f"'trajectory' has shape {shape_str(tshape)}, which does not fit 'kspace' {shape_str(shape)}: expected {expected} (frames, spokes, samples, and 2 coordinates H, W)")
    traj = np.asarray(tds[()], dtype=np.float64)
    if not np.isfinite(traj).all():
        raise InputError(path, f"'trajectory' contains {int(np.count_nonzero(~np.isfinite(traj)))} NaN or Inf values")
    h, w = size
    over = np.abs(traj) > (np.array([h, w]) / 2) * (1 + _EDGE_TOLERANCE)
    if over.any():
        axis = 0 if over[..., 0].any() else 1
        worst = float(np.abs(traj[..., axis]).max())
        raise InputError(path, f"'trajectory' reaches {worst:.4g} along {'HW'[axis]}, beyond the k-space edge {(h, w)[axis] / 2:g} of image_size {[h, w]} (coordinates are in cycles per field of view, +-H/2 and +-W/2 at the edges)")
    return tshape


def _check_dcf(f: h5py.File, path: Path, allowed: list[tuple[int, ...]]) -> bool | None:
    """Whether the stored ``dcf`` is shared by the slices (None: no ``dcf``), checked."""
    if "dcf" not in f:
        return None
    dds = dataset(f, "dcf", path)
    if dds.dtype.kind not in "fiu" or dds.dtype.names:
        raise InputError(path, f"'dcf' has data type {dds.dtype}; expected real density-compensation weights")
    if tuple(dds.shape) not in [a[:-1] for a in allowed]:
        expected = " or ".join(shape_str(a[:-1]) for a in allowed)
        raise InputError(path, f"'dcf' has shape {shape_str(dds.shape)}; expected the trajectory's shape without its last axis: {expected}")
    d = np.asarray(dds[()], dtype=np.float64)
    if not np.isfinite(d).all() or (d < 0).any():
        raise InputError(path, "'dcf' must hold finite weights >= 0")
    return len(dds.shape) == 4


def _reference(f: h5py.File, path: Path, slice_axis: bool, sizes: dict[str, int]) -> tuple[Any, Any, Any]:
    """``(axes, style, compound fields)`` of the stored ``reference``; Nones without one."""
    candidates = [("S", "T", "H", "W"), ("S", "H", "W")] if slice_axis else [("T", "H", "W"), ("H", "W")]
    return stored_reference(f, path, candidates, sizes, f"image_size {[sizes['H'], sizes['W']]}")


def read_trajectory(f: h5py.File, info: FileInfo, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(trajectory (T, spokes, samples, 2), dcf (T, spokes, samples))`` of slice ``index``, float32."""
    plan = info.plan
    traj = np.asarray(f["trajectory"][()] if plan["traj_shared"] else f["trajectory"][index], dtype=np.float32)
    if plan["dcf_shared"] is None:
        dcf = density_compensation(torch.from_numpy(traj), (info.height, info.width))
    else:
        dcf = torch.from_numpy(np.asarray(f["dcf"][()] if plan["dcf_shared"] else f["dcf"][index], dtype=np.float32))
    return torch.from_numpy(traj), dcf


def read_kspace(f: h5py.File, info: FileInfo, index: int) -> np.ndarray:
    """complex64 ``(T, N, spokes, samples)`` of slice ``index`` (N = 1 for one coil), checked finite."""
    sel = index if info._kspace_slice_axis else ()
    k = read_checked(f, "kspace", info.path, index, sel, info.complex_style, info._kspace_fields)
    return k if info.plan["coil_axis"] else k[:, None]


def read_sample(f: h5py.File, info: FileInfo, index: int, split: SplitOptions | None = None,
                allow_empty_frames: bool = False) -> Sample:
    """Slice ``index`` (checked) as a :class:`~a2a_cli.data.layout.Sample` of radial tensors, without its reference.

    Coil maps: ones for one coil, the stored maps when ``info.sensitivity`` is ``"stored"``,
    else None (estimated afterwards, :class:`~a2a_cli.data.coil_maps.CoilMaps`).
    """
    k = read_kspace(f, info, index)
    traj, dcf = read_trajectory(f, info, index)
    if not allow_empty_frames:
        empty = np.flatnonzero(~(np.abs(k) > 0).reshape(k.shape[0], -1).any(axis=1))
        if empty.size:
            listed = ", ".join(map(str, empty[:10].tolist()))
            raise InputError(info.path, f"slice {index}: frame(s) {listed} hold only zeros ({empty.size} of {k.shape[0]} frames)")
    maps, method = None, None
    if k.shape[1] == 1:
        maps = torch.ones(1, 1, info.height, info.width, dtype=torch.complex64)
    elif info.sensitivity == "stored":
        dims = info.plan["maps_dims"]
        s = read_slice_of(f, "sensitivity_maps", info.path, index, dims, info.plan["maps_style"], info.plan["maps_fields"])
        maps, method = torch.from_numpy(np.ascontiguousarray(s, dtype=np.complex64))[None], "stored"
    return Sample(
        kspace=to_tensor(k.astype(np.complex64, copy=False)), mask=sampling_tensor(traj, dcf)[None],
        reference=None, file=str(info.path), slice_index=index, coil_maps=maps, sensitivity=method,
    )


def read_reference(f: h5py.File, info: FileInfo, index: int, coil_maps: torch.Tensor | None) -> torch.Tensor | None:
    """The stored reference of slice ``index``, float32 ``(1, 2, T, H, W)`` or ``(1, 2, H, W)``; None without one."""
    if not info.has_reference:
        return None
    r = read_slice_of(f, "reference", info.path, index, info._reference_dims, info._reference_style, info._reference_fields)  # type: ignore[arg-type]
    return to_tensor(r)


def read_mask(f: h5py.File, info: FileInfo, index: int, split: SplitOptions | None = None) -> np.ndarray:
    """Where slice ``index``'s samples fall on the Cartesian grid: bool ``(T, H, W)`` (nearest cell).

    Radial data have no Cartesian mask; this coverage map answers the same question
    (which k-space cells some frame measures) for code written for masks.
    """
    traj, _ = read_trajectory(f, info, index)
    h, w = info.height, info.width
    rows = np.clip(np.round(traj[..., 0].numpy()).astype(int) + h // 2, 0, h - 1)
    cols = np.clip(np.round(traj[..., 1].numpy()).astype(int) + w // 2, 0, w - 1)
    m = np.zeros((info.frames, h, w), bool)
    frame = np.broadcast_to(np.arange(info.frames)[:, None, None], rows.shape)
    m[frame, rows, cols] = True
    return m
