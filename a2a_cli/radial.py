"""The a2a radial file: reading, validating, writing and simulating radial k-space.

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
  time-averaged centre when absent); ``reference`` ``(T, H, W)``/``(S, T, H, W)``
  (dynamic) or ``(H, W)``/``(S, H, W)`` (static); attribute ``acquisition``
  (``dynamic``, the default, or ``sequential``).

A slice is read as the tensors of :mod:`a2a_cli.nufft`: k-space ``(1, 2, T, N, spokes,
samples)`` (N = 1 for one coil), the sampling tensor ``(1, 4, T, spokes, samples)``
(measured, trajectory H, trajectory W, dcf) and coil maps ``(1, N, H, W)`` (ones for one
coil).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Optional

import h5py
import numpy as np
import torch

from . import io as _io
from .errors import A2AError, InputError
from .formats import ImportedInfo

__all__ = ["is_radial_file", "inspect", "read_sample", "read_mask", "read_trajectory", "write_radial_file",
           "simulate_radial", "RADIAL"]

RADIAL = "radial"
#: Coordinates may exceed the edge by this fraction of a k-space pixel (float rounding).
_EDGE_TOLERANCE = 1e-3


def is_radial_file(f: h5py.File) -> bool:
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


def inspect(f: h5py.File, path: Path) -> ImportedInfo:
    """Validate a radial file from its header and trajectory (k-space is not read)."""
    size = _image_size(f, path)
    if "kspace" not in f:
        raise InputError(path, f"no dataset 'kspace' (the file holds: {', '.join(sorted(f.keys()))})")
    ds = _io._dataset(f, "kspace", path)
    style, shape, fields = _io._classify_complex(ds, "kspace", path)
    n_coils = _io._coil_attr(f, path)
    if n_coils is not None:
        if len(shape) not in (4, 5):
            raise InputError(path, f"the attribute coils={n_coils} says radial 'kspace' has a coil axis, so it must be 4D (T, N, spokes, samples) or 5D (S, T, N, spokes, samples); it has shape {_io._shape_str(shape)}")
        if shape[-3] != n_coils:
            raise InputError(path, f"the attribute coils={n_coils} does not match the coil axis of 'kspace' {_io._shape_str(shape)} (size {shape[-3]} before spokes, samples)")
        body = shape[:-3] + shape[-2:]
    else:
        if len(shape) == 5:
            raise InputError(path, f"'kspace' has 5 dimensions (shape {_io._shape_str(shape)}): multi-coil radial k-space (S, T, N, spokes, samples) needs the attribute coils = N")
        body = shape
    if len(body) not in (3, 4) or 0 in shape:
        raise InputError(path, f"radial 'kspace' must be (T, [N,] spokes, samples) or (S, T, [N,] spokes, samples), got shape {_io._shape_str(shape)}")
    slice_axis = len(body) == 4
    s, (t, spokes, samples) = (body[0], body[1:]) if slice_axis else (1, body)

    tds = _io._dataset(f, "trajectory", path)
    if tds.dtype.kind not in "fiu" or tds.dtype.names:
        raise InputError(path, f"'trajectory' has data type {tds.dtype}; expected float coordinates (cycles per field of view)")
    tshape = tuple(tds.shape)
    allowed = [(t, spokes, samples, 2)] + ([(s, t, spokes, samples, 2)] if slice_axis else [])
    if tshape not in allowed:
        expected = " or ".join(_io._shape_str(a) for a in allowed)
        raise InputError(path, f"'trajectory' has shape {_io._shape_str(tshape)}, which does not fit 'kspace' {_io._shape_str(shape)}: expected {expected} (frames, spokes, samples, and 2 coordinates H, W)")
    traj = np.asarray(tds[()], dtype=np.float64)
    if not np.isfinite(traj).all():
        raise InputError(path, f"'trajectory' contains {int(np.count_nonzero(~np.isfinite(traj)))} NaN or Inf values")
    h, w = size
    over = np.abs(traj) > (np.array([h, w]) / 2) * (1 + _EDGE_TOLERANCE)
    if over.any():
        axis = 0 if over[..., 0].any() else 1
        worst = float(np.abs(traj[..., axis]).max())
        raise InputError(path, f"'trajectory' reaches {worst:.4g} along {'HW'[axis]}, beyond the k-space edge {(h, w)[axis] / 2:g} of image_size {[h, w]} (coordinates are in cycles per field of view, +-H/2 and +-W/2 at the edges)")

    dcf_shared = None
    if "dcf" in f:
        dds = _io._dataset(f, "dcf", path)
        if dds.dtype.kind not in "fiu" or dds.dtype.names:
            raise InputError(path, f"'dcf' has data type {dds.dtype}; expected real density-compensation weights")
        if tuple(dds.shape) not in [a[:-1] for a in allowed]:
            expected = " or ".join(_io._shape_str(a[:-1]) for a in allowed)
            raise InputError(path, f"'dcf' has shape {_io._shape_str(dds.shape)}; expected the trajectory's shape without its last axis: {expected}")
        d = np.asarray(dds[()], dtype=np.float64)
        if not np.isfinite(d).all() or (d < 0).any():
            raise InputError(path, "'dcf' must hold finite weights >= 0")
        dcf_shared = len(dds.shape) == 4

    acq_raw = _io._attr_str(f.attrs.get("acquisition"))
    mode = (acq_raw or "dynamic").lower()
    if mode not in ("dynamic", "sequential"):
        raise InputError(path, f"a radial file's acquisition must be 'dynamic' or 'sequential', not {acq_raw!r}")

    sizes = {"S": s, "T": t, "H": h, "W": w}
    ref_dims = ref_style = ref_fields = None
    if "reference" in f:
        rds = _io._dataset(f, "reference", path)
        candidates = [("S", "T", "H", "W"), ("S", "H", "W")] if slice_axis else [("T", "H", "W"), ("H", "W")]
        if rds.dtype.kind in "fiu" and not rds.dtype.names:
            ref_style, ref_dims = "real", _io._match_dims(tuple(rds.shape), candidates, sizes)
        else:
            ref_style, logical, ref_fields = _io._classify_complex(rds, "reference", path)
            ref_dims = _io._match_dims(logical, candidates, sizes)
        if ref_dims is None:
            expected = " or ".join(_io._dims_str(c, sizes) for c in candidates)
            raise InputError(path, f"'reference' has shape {_io._shape_str(rds.shape)}, which does not fit image_size {[h, w]}: expected {expected}")
    maps_dims = maps_style = maps_fields = None
    if "sensitivity_maps" in f:
        if n_coils is None:
            raise InputError(path, "the file holds 'sensitivity_maps' but 'kspace' has no coil axis (set the attribute coils = N)")
        sds = _io._dataset(f, "sensitivity_maps", path)
        maps_style, logical, maps_fields = _io._classify_complex(sds, "sensitivity_maps", path)
        candidates = [("S", "N", "H", "W"), ("N", "H", "W")] if slice_axis else [("N", "H", "W")]
        maps_dims = _io._match_dims(logical, candidates, {**sizes, "N": n_coils})
        if maps_dims is None:
            raise InputError(path, f"'sensitivity_maps' has shape {_io._shape_str(logical)}; expected (N, H, W) = ({n_coils}, {h}, {w}) or with a leading slice axis")
    multi = n_coils is not None and n_coils > 1
    plan = {
        "spokes": int(spokes), "samples": int(samples), "traj_shared": len(tshape) == 4, "dcf_shared": dcf_shared,
        "coil_axis": n_coils is not None, "maps_dims": maps_dims, "maps_style": maps_style, "maps_fields": maps_fields,
    }
    return ImportedInfo(
        path=path, layout=RADIAL, mode=mode, n_slices=int(s), frames=int(t), height=h, width=w,  # type: ignore[arg-type]
        has_reference=ref_dims is not None, mask_source="stored", complex_style=style,  # type: ignore[arg-type]
        reference_static=ref_dims is not None and "T" not in ref_dims,
        coils=n_coils if multi else None, sensitivity=("stored" if maps_dims else "espirit") if multi else None,
        _kspace_fields=fields, _kspace_slice_axis=slice_axis, _kspace_coil_axis=n_coils is not None,
        _reference_dims=ref_dims, _reference_style=ref_style, _reference_fields=ref_fields,
        source_format=RADIAL, plan=plan,
    )


def read_trajectory(f: h5py.File, info: ImportedInfo, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(trajectory (T, spokes, samples, 2), dcf (T, spokes, samples))`` of slice ``index``, float32."""
    plan = info.plan
    traj = np.asarray(f["trajectory"][()] if plan["traj_shared"] else f["trajectory"][index], dtype=np.float32)
    if plan["dcf_shared"] is None:
        from .nufft import density_compensation

        dcf = density_compensation(torch.from_numpy(traj), (info.height, info.width))
    else:
        dcf = torch.from_numpy(np.asarray(f["dcf"][()] if plan["dcf_shared"] else f["dcf"][index], dtype=np.float32))
    return torch.from_numpy(traj), dcf


def read_sample(f: h5py.File, info: ImportedInfo, index: int, allow_empty_frames: bool = False,
                with_reference: bool = True, known_maps: tuple[torch.Tensor, str] | None = None) -> _io.Sample:
    """Slice ``index`` as a :class:`~a2a_cli.io.Sample` of radial tensors (module docstring)."""
    from .nufft import estimate_radial_maps, sampling_tensor

    index = _io._check_index(info, index)
    sel = index if info._kspace_slice_axis else ()
    try:
        k = _io._read_complex(f["kspace"], info.complex_style, info._kspace_fields, sel)
    except OSError as e:
        raise InputError(info.path, f"slice {index}: cannot read 'kspace' (damaged file?): {e}") from None
    _io._check_finite(k, info.path, f"slice {index}: 'kspace'")
    if not info.plan["coil_axis"]:
        k = k[:, None]
    traj, dcf = read_trajectory(f, info, index)
    if not allow_empty_frames:
        empty = np.flatnonzero(~(np.abs(k) > 0).reshape(k.shape[0], -1).any(axis=1))
        if empty.size:
            listed = ", ".join(map(str, empty[:10].tolist()))
            raise InputError(info.path, f"slice {index}: frame(s) {listed} hold only zeros ({empty.size} of {k.shape[0]} frames)")
    size = (info.height, info.width)
    kt = torch.from_numpy(np.ascontiguousarray(k, dtype=np.complex64))
    if k.shape[1] == 1:
        maps, method = torch.ones(1, 1, *size, dtype=torch.complex64), None
    elif known_maps is not None:
        maps, method = known_maps
    elif info.sensitivity == "stored":
        dims = info.plan["maps_dims"]
        s = _io._read_slice_of(f, "sensitivity_maps", info, index, dims, info.plan["maps_style"], info.plan["maps_fields"])
        maps, method = torch.from_numpy(np.ascontiguousarray(s, dtype=np.complex64))[None], "stored"
    else:
        m, method = estimate_radial_maps(kt, traj, size, method=info.sensitivity or "espirit")
        maps = m[None]
    ref = None
    if with_reference and info.has_reference:
        r = _io._read_slice_of(f, "reference", info, index, info._reference_dims, info._reference_style, info._reference_fields)
        ref = _io._to_tensor(r)
    return _io.Sample(
        kspace=_io._to_tensor(k.astype(np.complex64, copy=False)),
        mask=sampling_tensor(traj, dcf)[None],
        reference=ref, file=str(info.path), slice_index=index, coil_maps=maps, sensitivity=method,
    )


def read_mask(f: h5py.File, info: ImportedInfo, index: int) -> np.ndarray:
    """Where slice ``index``'s samples fall on the Cartesian grid: bool ``(T, H, W)`` (nearest cell).

    Radial data have no Cartesian mask; this coverage map answers the same question
    (which k-space cells some frame measures) for code written for masks.
    """
    traj, _ = read_trajectory(f, info, _io._check_index(info, index))
    h, w = info.height, info.width
    rows = np.clip(np.round(traj[..., 0].numpy()).astype(int) + h // 2, 0, h - 1)
    cols = np.clip(np.round(traj[..., 1].numpy()).astype(int) + w // 2, 0, w - 1)
    m = np.zeros((info.frames, h, w), bool)
    frame = np.broadcast_to(np.arange(info.frames)[:, None, None], rows.shape)
    m[frame, rows, cols] = True
    return m


def write_radial_file(
    path: str | Path, kspace: np.ndarray, trajectory: np.ndarray, image_size: tuple[int, int],
    dcf: Optional[np.ndarray] = None, reference: Optional[np.ndarray] = None, acquisition: str = "dynamic",
    coils: Optional[int] = None, sensitivity_maps: Optional[np.ndarray] = None, extra: Optional[dict] = None,
    attrs: Optional[dict[str, Any]] = None, overwrite: bool = False,
) -> Path:
    """Write an a2a radial file (atomically: nothing is left behind if it fails)."""
    path = Path(path)
    with _io.atomic_write(path, overwrite) as tmp, h5py.File(tmp, "w") as f:
        k = np.asarray(kspace, np.complex64)
        f.create_dataset("kspace", data=k, chunks=(1,) * (k.ndim - 2) + k.shape[-2:], compression="gzip", compression_opts=1)
        f.create_dataset("trajectory", data=np.asarray(trajectory, np.float32))
        if dcf is not None:
            f.create_dataset("dcf", data=np.asarray(dcf, np.float32))
        if reference is not None:
            f.create_dataset("reference", data=np.asarray(reference, np.complex64), compression="gzip", compression_opts=1)
        if sensitivity_maps is not None:
            f.create_dataset("sensitivity_maps", data=np.asarray(sensitivity_maps, np.complex64))
        for name, value in (extra or {}).items():
            f.create_dataset(name, data=value)
        f.attrs["image_size"] = np.asarray(image_size, np.int64)
        f.attrs["acquisition"] = acquisition
        if coils is not None:
            f.attrs["coils"] = int(coils)
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
    return path


def simulate_radial(
    path: str | Path, mode: Literal["dynamic", "sequential"] = "dynamic", slices: int = 2, frames: int = 16,
    size: int = 64, spokes: int = 8, samples: Optional[int] = None, coils: int = 4, snr_db: Optional[float] = 30.0,
    motion: Literal["respiratory", "periodic", "none"] = "respiratory", period: Optional[int] = None,
    seed: int = 0, overwrite: bool = False,
) -> Path:
    """Golden-angle radial acquisition of the breathing phantom (or the static one), multi-coil.

    Every slice continues the golden-angle sequence where its own random start puts it
    (so files and slices differ in their spokes); frame ``t`` holds spokes ``t * spokes``
    to ``(t + 1) * spokes - 1``. ``samples`` per spoke default to ``size`` (Nyquist along
    the spoke). The phantom, breathing curve and coil maps are those of
    :mod:`a2a_cli.simulate`; the true maps are stored as ``true_sensitivity_maps`` and
    the breathing curve per frame as ``true_breathing`` ``(S, T)``.
    """
    from . import __version__
    from .nufft import golden_angle_trajectory, nufft
    from .simulate import _Phantom, _check_size, add_noise, breathing_curve, coil_sensitivities

    if mode not in ("dynamic", "sequential"):
        raise A2AError(f"mode must be 'dynamic' or 'sequential', got {mode!r}")
    if slices < 1 or spokes < 1 or coils < 1:
        raise A2AError("slices, spokes and coils must be positive")
    _check_size(size, size, frames)
    samples = int(size if samples is None else samples)
    multi = coils > 1
    ks, trajs, refs, maps_all, curves = [], [], [], [], []
    for s in range(slices):
        rng = np.random.default_rng([seed, s])
        maps = coil_sensitivities(coils, size, size, np.random.default_rng([seed, s, 1])) if multi else np.ones((1, size, size), np.complex64)
        phantom = _Phantom(size, size, rng)
        d = breathing_curve(frames, motion if mode == "dynamic" else "none", period, rng)
        x = np.stack([phantom.image(float(v)) for v in d]) if mode == "dynamic" else phantom.image(0.0)
        traj = golden_angle_trajectory(frames, spokes, samples, size, first=int(rng.integers(0, 10_000)))
        img = torch.from_numpy(np.broadcast_to(x, (frames, size, size)).astype(np.complex64))
        coil = img[:, None] * torch.from_numpy(maps)[None]
        with torch.no_grad():
            k = nufft(coil, traj.reshape(frames, -1, 2)).reshape(frames, coils, spokes, samples).numpy()
        k = add_noise(k, snr_db, rng, mask=np.ones(k.shape, bool))
        ks.append(k if multi else k[:, 0])
        trajs.append(traj.numpy())
        refs.append(x)
        maps_all.append(maps)
        curves.append(d)
    params = {"mode": mode, "slices": slices, "frames": frames, "size": size, "spokes": spokes, "samples": samples,
              "coils": coils, "snr_db": snr_db, "motion": motion, "period": period, "seed": seed, "trajectory": "golden-angle radial"}
    extra = {"true_breathing": np.stack(curves).astype(np.float32)}
    if multi:
        extra["true_sensitivity_maps"] = np.stack(maps_all).astype(np.complex64)
    return write_radial_file(
        path, np.stack(ks), np.stack(trajs), (size, size), reference=np.stack(refs), acquisition=mode,
        coils=coils if multi else None, extra=extra, attrs={"a2a_version": __version__, "simulation": json.dumps(params)},
        overwrite=overwrite,
    )


def spoke_report_of(path: str | Path, info: ImportedInfo, slice_index: int, split_sizes: Optional[list[int]] = None,
                    png: Optional[Path] = None, overwrite: bool = False) -> dict:
    """:func:`a2a_cli.radial_report.spoke_report` of one slice of a radial file, with the file's facts;
    ``png``: a picture of the spokes of the first frames and of the whole slice."""
    from .radial_report import spoke_report

    path = Path(path)
    with _io._open(path) as f, _io._damage_as_input_error(path):
        traj, _ = read_trajectory(f, info, _io._check_index(info, slice_index))
    report = spoke_report(traj.numpy(), split_sizes)
    report.update(file=str(path), slice=slice_index, image_size=[info.height, info.width],
                  coils=info.coils, sensitivity=info.sensitivity)
    if png is not None:
        if png.resolve() == path.resolve():
            raise InputError(png, "--png names the input file, which is never overwritten; choose another name")
        _save_spokes_png(traj.numpy(), png, overwrite)
    return report


def _save_spokes_png(traj: np.ndarray, png: Path, overwrite: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 4))
    shown = min(4, traj.shape[0])
    for t in range(shown):
        for s in traj[t]:
            axes[0].plot(s[:, 1], s[:, 0], color=f"C{t}", lw=0.8)
    axes[0].set_title(f"frames 0-{shown - 1} (one colour each)")
    for s in traj.reshape(-1, *traj.shape[-2:]):
        axes[1].plot(s[:, 1], s[:, 0], color="k", lw=0.3, alpha=0.5)
    axes[1].set_title("all frames")
    for ax in axes:
        ax.set_aspect("equal")
        ax.set_xlabel("k_W (cycles/FOV)")
        ax.set_ylabel("k_H")
    with _io.atomic_write(png, overwrite) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
