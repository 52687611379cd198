"""Respiratory self-gating of radial data: a breathing curve from the k-space centre, then bins.

Every radial spoke passes through the k-space centre, whose value (per coil) is the
coil-weighted integral of the object: it moves with the anatomy, at the spoke rate.
:func:`respiratory_signal` takes that sample of every spoke and coil, normalises each
coil channel (real and imaginary parts), takes the first principal component over the
channels (the dominant common change, breathing in the abdomen) and band-passes it:
slow drift below ``low`` and fluctuations faster than ``high`` (in cycles per spoke)
are removed. The sign of a principal component is arbitrary; the curve is oriented so
that its larger excursions (the shorter, deeper phase of breathing) are positive.

:func:`bin_spokes` sorts the spokes into ``bins`` amplitude bins of equal size (as the
respiratory phases of RARE and Phase2Phase); :func:`bin_file` writes the binned radial
file, one frame per bin, which trains and reconstructs like any dynamic radial file.

>>> t = np.arange(400)
>>> curve = np.sin(2 * np.pi * t / 60)
>>> k = (1 + 0.1 * curve)[:, None] * np.array([1.0, 0.5j, -0.3])[None]     # (spokes, coils) centre samples
>>> s = respiratory_signal(k, low=1 / 200, high=1 / 10)
>>> bool(abs(np.corrcoef(s, curve)[0, 1]) > 0.99)
True
>>> b = bin_spokes(curve, 4)
>>> [int((b == i).sum()) for i in range(4)]
[100, 100, 100, 100]
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .errors import A2AError, InputError

__all__ = ["centre_samples", "respiratory_signal", "bin_spokes", "bin_file"]


def centre_samples(kspace: np.ndarray, trajectory: np.ndarray) -> np.ndarray:
    """The sample nearest the k-space centre of every spoke: ``(T * spokes, N)`` complex.

    ``kspace`` ``(T, N, spokes, samples)``, ``trajectory`` ``(T, spokes, samples, 2)``;
    spokes are returned in acquisition order (frame-major).
    """
    t, n, spokes, samples = kspace.shape
    idx = np.argmin(np.linalg.norm(trajectory, axis=-1), axis=-1)  # (T, spokes)
    k = np.take_along_axis(kspace, idx[:, None, :, None], axis=-1)[..., 0]  # (T, N, spokes)
    return k.transpose(0, 2, 1).reshape(t * spokes, n)


def _band_pass(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """Keep the frequencies ``low <= |f| <= high`` (cycles per sample) of a real signal, mean removed."""
    n = x.size
    padded = np.concatenate([x, x[::-1]])  # even extension: no jump at the ends
    f = np.fft.rfftfreq(padded.size)
    spec = np.fft.rfft(padded - padded.mean())
    spec[(f < low) | (f > high)] = 0
    return np.fft.irfft(spec, padded.size)[:n]


def respiratory_signal(centre: np.ndarray, low: float, high: float) -> np.ndarray:
    """Breathing curve ``(spokes,)`` (unit standard deviation) from centre samples ``(spokes, N)``.

    ``low`` / ``high``: the pass band in cycles per spoke.
    """
    c = np.asarray(centre)
    feats = np.concatenate([c.real, c.imag], axis=1).astype(np.float64)
    feats = feats - feats.mean(axis=0)
    std = feats.std(axis=0)
    feats = feats[:, std > 1e-12 * max(float(std.max()), 1e-30)]
    if feats.shape[1] == 0:
        raise A2AError("the k-space centre does not change over the spokes: no respiratory signal to gate on")
    feats = feats / feats.std(axis=0)
    # filter first: the principal component should be the one that breathes, not noise or drift
    filtered = np.stack([_band_pass(col, low, high) for col in feats.T], axis=1)
    _, _, vh = np.linalg.svd(filtered, full_matrices=False)
    s = filtered @ vh[0]
    s = s / max(float(s.std()), 1e-30)
    if np.abs(s.max()) < np.abs(s.min()):
        s = -s
    return s


def bin_spokes(signal: np.ndarray, bins: int) -> np.ndarray:
    """Amplitude bin of every spoke, ``(spokes,)`` ints in ``[0, bins)``, equal counts (the remainder
    of ``len(signal) % bins`` spokes, the most extreme, gets ``-1``: unused)."""
    if bins < 2:
        raise A2AError(f"--bins must be at least 2, got {bins}")
    n = signal.size
    per = n // bins
    if per < 1:
        raise A2AError(f"{n} spokes cannot fill {bins} bins")
    order = np.argsort(signal, kind="stable")
    out = np.full(n, -1, dtype=np.int64)
    for b in range(bins):
        out[order[b * per:(b + 1) * per]] = b
    return out


def bin_file(source: str | Path, target: str | Path, bins: int = 10, plot: Optional[str | Path] = None,
             low: Optional[float] = None, high: Optional[float] = None, overwrite: bool = False,
             on_slice: Optional[Callable[[int, int], None]] = None) -> dict:
    """Self-gate every slice of a radial file and write the binned radial file.

    The output has one frame per bin (``acquisition = dynamic``), the spokes of each bin
    in acquisition order; ``reference`` (when the input has one per frame) becomes the
    mean of the frames the bin's spokes came from. It also stores ``respiratory_signal``
    ``(S, T * spokes)`` and ``bin_of_spoke`` ``(S, T * spokes)`` (-1: unused). Default band:
    from one cycle per half sequence to one cycle per frame's spokes. Returns a summary.
    """
    from .data import inspect_file
    from .data.hdf5 import check_finite, damage_as_input_error, open_file, read_complex, read_slice_of
    from .data.radial_file import read_trajectory
    from .radial import write_radial_file

    source, target = Path(source), Path(target)
    if target.resolve() == source.resolve():
        raise InputError(target, "the output would overwrite the input file; choose another name")
    info = inspect_file(source)
    if info.layout != "radial":
        raise InputError(source, "respiratory binning needs a radial file (a 'trajectory' dataset)")
    n_spokes = info.frames * info.plan["spokes"]
    low_given, high_given = low, high
    low = 2.0 / n_spokes if low is None else float(low)
    high = 1.0 / info.plan["spokes"] if high is None else float(high)
    if not 0 <= low < high <= 0.5:
        given = "--band" if (low_given, high_given) != (None, None) else f"the default band for {n_spokes} spokes ({info.frames} frame(s) of {info.plan['spokes']})"
        raise InputError(source, f"{given}: the pass band must satisfy 0 <= low < high <= 0.5 cycles per spoke, got {low:g}..{high:g}"
                         + ("" if given == "--band" else "; give --band LOW HIGH, or bin a file of several frames"))
    if bins >= 2 and n_spokes < bins:  # fewer than 2 bins: bin_spokes says so
        raise InputError(source, f"{n_spokes} spokes per slice cannot fill {bins} bins; ask for at most {n_spokes} (--bins)")
    per = n_spokes // bins if bins >= 1 else 0
    ks, trajs, refs, signals, labels = [], [], [], [], []
    with open_file(source) as f, damage_as_input_error(source):
        for s in range(info.n_slices):
            sel = s if info._kspace_slice_axis else ()
            k = read_complex(f["kspace"], info.complex_style, info._kspace_fields, sel)
            check_finite(k, source, f"slice {s}: 'kspace'")
            if not info.plan["coil_axis"]:
                k = k[:, None]
            traj = read_trajectory(f, info, s)[0].numpy()
            try:
                sig = respiratory_signal(centre_samples(k, traj), low, high)
            except A2AError as e:
                raise InputError(source, f"slice {s}: {e}") from None
            lab = bin_spokes(sig, bins)
            t, n, sp, sa = k.shape
            flat_k = k.transpose(0, 2, 1, 3).reshape(t * sp, n, sa)
            flat_t = traj.reshape(t * sp, sa, 2)
            frame_of = np.repeat(np.arange(t), sp)
            kb = np.stack([flat_k[lab == b] for b in range(bins)])  # (bins, per, N, samples)
            ks.append(kb.transpose(0, 2, 1, 3))
            trajs.append(np.stack([flat_t[lab == b] for b in range(bins)]))
            if info.has_reference and not info.reference_static:
                r = read_slice_of(f, "reference", source, s, info._reference_dims, info._reference_style, info._reference_fields)
                refs.append(np.stack([r[frame_of[lab == b]].mean(axis=0) for b in range(bins)]))
            signals.append(sig)
            labels.append(lab)
            if on_slice is not None:
                on_slice(s + 1, info.n_slices)
        single = not info.plan["coil_axis"]
        maps = None
        if info.plan["maps_dims"] is not None:
            maps = np.asarray(f["sensitivity_maps"][()])
    kspace = np.stack(ks)
    if single:
        kspace = kspace[:, :, 0]
    write_radial_file(
        target, kspace, np.stack(trajs), (info.height, info.width), reference=np.stack(refs) if refs else None,
        acquisition="dynamic", coils=None if single else int(kspace.shape[2]), sensitivity_maps=maps,
        extra={"respiratory_signal": np.stack(signals).astype(np.float32), "bin_of_spoke": np.stack(labels).astype(np.int16)},
        attrs={"binned_from": str(source.resolve()), "bins": int(bins), "band_cycles_per_spoke": [low, high]},
        overwrite=overwrite,
    )
    if plot is not None:
        _plot(np.stack(signals), np.stack(labels), Path(plot), bins, overwrite)
    return {"file": str(source), "output": str(target), "slices": info.n_slices, "bins": bins,
            "spokes_per_bin": per, "unused_spokes": n_spokes - per * bins}


def _plot(signals: np.ndarray, labels: np.ndarray, path: Path, bins: int, overwrite: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .atomic import atomic_write

    fig, axes = plt.subplots(len(signals), 1, figsize=(10, 2.2 * len(signals)), squeeze=False)
    for s, (sig, lab) in enumerate(zip(signals, labels)):
        ax = axes[s, 0]
        ax.plot(sig, color="k", lw=0.8)
        used = lab >= 0
        ax.scatter(np.flatnonzero(used), sig[used], c=lab[used], cmap="viridis", s=4, vmin=0, vmax=bins - 1)
        ax.set_ylabel(f"slice {s}")
    axes[-1, 0].set_xlabel("spoke (acquisition order)")
    axes[0, 0].set_title(f"respiratory self-gating signal (k-space centre, first principal component); colour = bin of {bins}")
    fig.tight_layout()
    with atomic_write(path, overwrite) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
