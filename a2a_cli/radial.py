"""The a2a radial file: writing and simulating radial k-space (reading: :mod:`a2a_cli.data.radial_file`).

The file's layout (datasets, shapes, attributes) is described in :mod:`a2a_cli.data.radial_file`.

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

from .atomic import atomic_write
from .data.hdf5 import damage_as_input_error, open_file
from .data.layout import FileInfo, check_index
from .data.radial_file import NAME as RADIAL
from .data.radial_file import read_trajectory
from .errors import A2AError, InputError

__all__ = ["write_radial_file", "simulate_radial", "spoke_report_of", "RADIAL"]


def write_radial_file(
    path: str | Path, kspace: np.ndarray, trajectory: np.ndarray, image_size: tuple[int, int],
    dcf: Optional[np.ndarray] = None, reference: Optional[np.ndarray] = None, acquisition: str = "dynamic",
    coils: Optional[int] = None, sensitivity_maps: Optional[np.ndarray] = None, extra: Optional[dict] = None,
    attrs: Optional[dict[str, Any]] = None, overwrite: bool = False, converted_from: Optional[str | Path] = None,
) -> Path:
    """Write an a2a radial file (atomically: nothing is left behind if it fails).

    With ``converted_from`` (the input of a conversion) the file is read back as every command
    will read it before it appears; a problem is an :class:`InputError` naming that input.
    """
    path = Path(path)
    with atomic_write(path, overwrite) as tmp:
        _write_radial(tmp, kspace, trajectory, image_size, dcf, reference, acquisition, coils, sensitivity_maps, extra, attrs)
        if converted_from is not None:
            from .data import inspect_file

            try:
                inspect_file(tmp)
            except InputError as e:
                raise InputError(converted_from, f"the converted file would not be readable: {e.problem}") from None
    return path


def _write_radial(tmp: Path, kspace: np.ndarray, trajectory: np.ndarray, image_size: tuple[int, int],
                  dcf: Optional[np.ndarray], reference: Optional[np.ndarray], acquisition: str, coils: Optional[int],
                  sensitivity_maps: Optional[np.ndarray], extra: Optional[dict], attrs: Optional[dict[str, Any]]) -> None:
    with h5py.File(tmp, "w") as f:
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


def spoke_report_of(path: str | Path, info: FileInfo, slice_index: int, split_sizes: Optional[list[int]] = None,
                    png: Optional[Path] = None, overwrite: bool = False) -> dict:
    """:func:`a2a_cli.radial_report.spoke_report` of one slice of a radial file, with the file's facts;
    ``png``: a picture of the spokes of the first frames and of the whole slice."""
    from .radial_report import spoke_report

    path = Path(path)
    with open_file(path) as f, damage_as_input_error(path):
        traj, _ = read_trajectory(f, info, check_index(info, slice_index))
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
    with atomic_write(png, overwrite) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
