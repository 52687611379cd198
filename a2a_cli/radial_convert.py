"""Radial data from BART arrays and ISMRMRD raw files into the a2a radial file (:mod:`a2a_cli.radial`).

* BART: k-space ``(1, samples, spokes, coils, ..., time at axis 10, ..., slices at axis 13)``
  and a trajectory ``(3, samples, spokes, ..., time, ..., slices)`` in cycles per field of
  view (``bart traj``'s units; its first coordinate runs along image axis 0). The image
  size is given, or twice the largest coordinate along each axis (rounded up).
* ISMRMRD: acquisitions whose headers carry ``trajectory_dimensions = 2`` and whose
  ``traj`` holds ``samples x 2`` coordinates; frames from ``idx.phase`` (or
  ``idx.repetition``), slices from ``idx.slice``, spokes in acquisition order. The image
  size is ``reconSpace/matrixSize`` x, y; coordinates within +-0.5 are taken as fractions
  of k-space and scaled to cycles per field of view.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import h5py
import numpy as np

from .cfl import TIME_DIM, read_cfl
from .data.hdf5 import check_finite
from .errors import InputError

__all__ = ["convert_bart", "convert_ismrmrd", "ismrmrd_has_trajectories"]

SLICE_DIM = 13


def _dims16(a: np.ndarray) -> np.ndarray:
    return a.reshape(a.shape + (1,) * (16 - a.ndim))


def _image_size(traj: np.ndarray, given: Optional[tuple[int, int]]) -> tuple[int, int]:
    if given is not None:
        if min(given) < 2:
            raise InputError("--image-size", f"the image grid must be two integers H W >= 2, got {given[0]} {given[1]}")
        return int(given[0]), int(given[1])
    # twice the largest coordinate, rounded up to even: the edges then hold every sample
    return tuple(max(2, 2 * math.ceil(float(np.abs(traj[..., a]).max()) - 1e-6)) for a in (0, 1))  # type: ignore[return-value]


def convert_bart(kspace: str | Path, trajectory: str | Path, target: str | Path,
                 image_size: Optional[tuple[int, int]] = None, acquisition: str = "dynamic", overwrite: bool = False) -> Path:
    """Write the a2a radial file of BART k-space and trajectory arrays (``.cfl``/``.hdr``)."""
    from .radial import write_radial_file

    k = _dims16(read_cfl(kspace))
    t = _dims16(read_cfl(trajectory))
    if k.shape[0] != 1:
        raise InputError(kspace, f"BART radial k-space has 1 at axis 0 (samples along axis 1, spokes along axis 2), got dimensions {list(k.shape[:4])}")
    if t.shape[0] != 3 or t.shape[1:3] != k.shape[1:3]:
        raise InputError(trajectory, f"the trajectory must be (3, samples, spokes, ...) matching the k-space's ({k.shape[1]}, {k.shape[2]}), got {list(t.shape[:3])}")
    if not np.isfinite(t).all():
        raise InputError(trajectory, "the trajectory contains NaN or Inf values")
    others = [d for d in range(4, 16) if d not in (TIME_DIM, SLICE_DIM) and k.shape[d] > 1]
    if others:
        raise InputError(kspace, f"BART axes {others} have sizes > 1; only samples, spokes, coils, time (10) and slices (13) are read")
    for d in (TIME_DIM, SLICE_DIM):
        if t.shape[d] not in (1, k.shape[d]):
            raise InputError(trajectory, f"axis {d} has size {t.shape[d]}, the k-space {k.shape[d]}")
    samples, spokes, coils, frames, slices = k.shape[1], k.shape[2], k.shape[3], k.shape[TIME_DIM], k.shape[SLICE_DIM]
    # -> (S, T, N, spokes, samples)
    kk = k[0, :, :, :, 0, 0, 0, 0, 0, 0, :, 0, 0, :, 0, 0].transpose(4, 3, 2, 1, 0)
    tt = t[:2, :, :, 0, 0, 0, 0, 0, 0, 0, :, 0, 0, :, 0, 0].real  # (2, samples, spokes, T', S')
    tt = np.broadcast_to(tt.transpose(4, 3, 2, 1, 0), (slices, frames, spokes, samples, 2))
    size = _image_size(tt, image_size)
    _check_samples(kk, kspace)
    single = coils == 1
    return write_radial_file(
        target, kk[:, :, 0] if single else kk, np.ascontiguousarray(tt, np.float32), size, acquisition=acquisition,
        coils=None if single else coils, attrs={"source_file": str(Path(kspace).resolve()), "source_format": "bart"},
        overwrite=overwrite, converted_from=kspace,
    )


def _check_samples(k: np.ndarray, source: str | Path) -> None:
    """Refuse k-space that no command could train on: NaN/Inf values, or nothing but zeros."""
    check_finite(k, Path(source), "the k-space")
    if not np.any(k):
        raise InputError(source, "the k-space holds only zeros")


def ismrmrd_has_trajectories(f: h5py.File) -> bool:
    """Whether an ISMRMRD file's imaging acquisitions carry trajectory points."""
    g = f.get("dataset")
    if not isinstance(g, h5py.Group) or "data" not in g:
        return False
    ds = g["data"]
    names = ds.dtype["head"].names if ds.dtype.names and "head" in ds.dtype.names else ()
    if "trajectory_dimensions" not in (names or ()):
        return False
    return bool((ds.fields("head")[()]["trajectory_dimensions"] > 0).any())


def convert_ismrmrd(source: str | Path, target: str | Path, overwrite: bool = False) -> Path:
    """Write the a2a radial file of an ISMRMRD raw file whose acquisitions carry 2D trajectories."""
    from .data.ismrmrd import SKIP_MASK as _ISMRMRD_SKIP_MASK
    from .data.ismrmrd import read_header as _ismrmrd_header
    from .data.ismrmrd import xml_int as _xml_int
    from .headers import read_whole
    from .radial import write_radial_file

    source = Path(source)
    with h5py.File(source, "r") as f:
        enc = _ismrmrd_header(f, source)
        rx, ry = (_xml_int(enc, f"reconSpace/matrixSize/{a}", source, low=0) for a in "xy")
        if not rx or not ry:
            raise InputError(source, "the ISMRMRD header lacks reconSpace/matrixSize x and y (the image size)")
        table = read_whole(f["dataset"]["data"], source, "the ISMRMRD acquisition table /dataset/data")
    heads = table["head"]
    keep = ((heads["flags"].astype(np.uint64) & np.uint64(_ISMRMRD_SKIP_MASK)) == 0) & (heads["trajectory_dimensions"] > 0)
    acq = np.flatnonzero(keep)
    if acq.size == 0:
        raise InputError(source, "no imaging acquisitions with trajectory points")
    if np.unique(heads["trajectory_dimensions"][acq]).tolist() != [2]:
        raise InputError(source, "only 2D trajectories (trajectory_dimensions = 2) are supported")
    samples = np.unique(heads["number_of_samples"][acq])
    channels = np.unique(heads["active_channels"][acq])
    if samples.size != 1 or channels.size != 1:
        raise InputError(source, f"the radial acquisitions differ in samples {samples.tolist()} or channels {channels.tolist()}")
    sa, n = int(samples[0]), int(channels[0])
    idx = heads["idx"]
    phase, rep, sl = (idx[name][acq].astype(np.int64) for name in ("phase", "repetition", "slice"))
    frame_key = phase if np.unique(phase).size > 1 else rep
    frames, frame = np.unique(frame_key, return_inverse=True)
    slices, slc = np.unique(sl, return_inverse=True)
    counts = np.zeros((slices.size, frames.size), np.int64)
    np.add.at(counts, (slc, frame), 1)
    if np.unique(counts).size != 1:
        raise InputError(source, f"frames hold different numbers of spokes ({counts.min()} to {counts.max()}); bin them to equal counts first")
    spokes = int(counts[0, 0])
    k = np.zeros((slices.size, frames.size, n, spokes, sa), np.complex64)
    tr = np.zeros((slices.size, frames.size, spokes, sa, 2), np.float32)
    fill = np.zeros((slices.size, frames.size), np.int64)
    for j, a in enumerate(acq):
        s, t = slc[j], frame[j]
        p = fill[s, t]
        fill[s, t] += 1
        data = np.asarray(table["data"][a], np.float32).view(np.complex64).reshape(n, sa)
        k[s, t, :, p] = data
        tr[s, t, p] = np.asarray(table["traj"][a], np.float32).reshape(sa, 2)
    if not np.isfinite(tr).all():
        raise InputError(source, "the trajectories contain NaN or Inf values")
    if np.abs(tr).max() <= 0.5 + 1e-6:  # fractions of k-space: scale to cycles per field of view
        tr = tr * np.array([rx, ry], np.float32)
    _check_samples(k, source)
    single = n == 1
    return write_radial_file(
        target, k[:, :, 0] if single else k, tr, (rx, ry), acquisition="dynamic", coils=None if single else n,
        attrs={"source_file": str(source.resolve()), "source_format": "ismrmrd"}, overwrite=overwrite,
        converted_from=source,
    )
