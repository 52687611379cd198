"""Is a radial acquisition fit for splitting in time? The radial counterpart of :func:`a2a_cli.masks.mask_report`.

For a trajectory ``(T, spokes, samples, 2)``: spokes per frame, the angular coverage of
each frame and each chunk (largest gap between neighbouring spoke angles, modulo 180
degrees) and its uniformity, whether consecutive spokes advance by a golden angle, the
fraction of the Nyquist spoke count (``pi / 2 * samples``), and per split size the same
verdict logic as Cartesian masks: chunks must exist (two or more), cover k-space, and
differ (a target chunk that repeats the input's spokes teaches nothing).

>>> from a2a_cli.nufft import golden_angle_trajectory
>>> r = spoke_report(golden_angle_trajectory(8, 8, 64, 64))
>>> r["golden_angle"]["detected"], r["spokes_per_frame"], r["recommended_split_size"], r["verdict"]
(True, 8, 4, 'ok')
"""
from __future__ import annotations

import math
from typing import Iterable, Optional

import numpy as np

from .masks import _recommend
from .nufft import spoke_angles

__all__ = ["GOLDEN_ANGLES", "spoke_report", "print_spoke_report"]

_PHI = (1 + math.sqrt(5)) / 2
#: Golden angle (N = 1) and tiny golden angles (N = 2..7) in degrees: 180 / (phi + N - 1).
GOLDEN_ANGLES = {n: 180.0 / (_PHI + n - 1) for n in range(1, 8)}
#: A chunk whose largest angular gap exceeds this many times the even spacing is lopsided.
LOPSIDED_GAP = 3.0
#: Angles closer than this (degrees) count as the same spoke.
SAME_SPOKE_DEG = 0.05


def _gaps(angles_deg: np.ndarray) -> np.ndarray:
    """Gaps between neighbouring angles on the half circle (sorted, wrapping at 180)."""
    a = np.sort(np.mod(angles_deg, 180.0))
    return np.diff(np.concatenate([a, a[:1] + 180.0]))


def _coverage(angles_deg: np.ndarray) -> dict:
    n = angles_deg.size
    gaps = _gaps(angles_deg)
    even = 180.0 / n
    return {
        "spokes": int(n),
        "largest_gap_deg": float(gaps.max()),
        "largest_gap_over_even": float(gaps.max() / even),
        "uniformity": float(1.0 - gaps.std() / gaps.mean()) if n > 1 else 0.0,
    }


def _golden(angles_deg: np.ndarray) -> dict:
    """Whether consecutive spokes (in acquisition order) advance by one golden angle."""
    steps = np.mod(np.diff(angles_deg.reshape(-1)), 180.0)
    if steps.size == 0:
        return {"detected": False, "increment_deg": None, "kind": None}
    step = float(np.median(steps))
    for n, g in GOLDEN_ANGLES.items():
        for candidate in (g, 180.0 - g):
            if np.mean(np.abs(steps - candidate) < 0.05) > 0.9:
                kind = "golden angle" if n == 1 else f"tiny golden angle (N={n})"
                return {"detected": True, "increment_deg": step, "kind": kind}
    return {"detected": False, "increment_deg": step, "kind": None}


def _same_spokes(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of the spokes of ``b`` whose angle also appears in ``a``."""
    if a.size == 0 or b.size == 0:
        return 0.0
    d = np.abs(np.mod(b[:, None] - a[None, :] + 90.0, 180.0) - 90.0)
    return float(np.mean(d.min(axis=1) < SAME_SPOKE_DEG))


def spoke_report(trajectory: object, split_sizes: Optional[Iterable[int]] = None) -> dict:
    """JSON-ready statistics of a radial trajectory ``(T, spokes, samples, 2)``; see the module docstring."""
    traj = np.asarray(trajectory, dtype=np.float64)
    t, spokes, samples = traj.shape[:3]
    angles, through = spoke_angles(traj)
    deg = np.degrees(angles)  # (T, spokes)
    nyquist = math.pi / 2 * samples
    frames = [dict(frame=i, **_coverage(deg[i])) for i in range(t)]
    golden = _golden(deg)
    if split_sizes is None:
        sizes = [s for s in range(1, t + 1) if t % s == 0 and t // s >= 2]
    else:
        sizes = sorted({int(s) for s in split_sizes})
    splits = []
    for s in sizes:
        n = t // s
        warnings, unusable = [], False
        if t % s:
            warnings.append(f"T={t} is not divisible by split size {s}: {t - n * s} frame(s) fit in no chunk")
        if n < 2:
            unusable = True
            warnings.append(f"split size {s} leaves {n} chunk(s) of {t} frames; the splitting loss needs at least 2")
        chunks = [deg[c * s:(c + 1) * s].reshape(-1) for c in range(n)]
        cov = [_coverage(c) for c in chunks]
        lopsided = [i for i, c in enumerate(cov) if c["largest_gap_over_even"] > LOPSIDED_GAP]
        if lopsided:
            warnings.append(f"chunk(s) {', '.join(map(str, lopsided[:8]))} leave an angular gap over {LOPSIDED_GAP:g}x the even spacing")
        repeat = float(np.mean([_same_spokes(chunks[i], chunks[j]) for i in range(n) for j in range(n) if i != j])) if n > 1 else 0.0
        if repeat > 0.5:
            warnings.append(f"chunks repeat each other's spokes ({repeat:.0%} of a target chunk's spokes are in the input chunk)")
        splits.append({
            "split_size": int(s), "n_chunks": int(n), "leftover_frames": int(t - n * s),
            "chunk_spokes": [c["spokes"] for c in cov],
            "chunk_nyquist_fraction": [c["spokes"] / nyquist for c in cov],
            "chunk_largest_gap_deg": [c["largest_gap_deg"] for c in cov],
            "mean_pairwise_overlap": repeat,
            "verdict": "unusable" if unusable else ("warning" if warnings else "ok"),
            "warnings": warnings,
        })
    recommended = _recommend([r for r in splits if r["leftover_frames"] == 0] or splits)
    warnings: list[str] = []
    if not through.all():
        warnings.append(f"{int((~through).sum())} spoke(s) are not straight lines through the k-space centre")
    if t < 2:
        warnings.append(f"only {t} frame: the splitting loss needs at least 2 chunks of frames")
    if not golden["detected"]:
        warnings.append("consecutive spokes do not advance by a golden angle: frames may repeat the same spokes")
    if recommended is not None:
        chosen = next(r for r in splits if r["split_size"] == recommended)
        warnings.extend(f"split size {recommended}: {w}" for w in chosen["warnings"])
    unusable = recommended is None
    if unusable and t >= 2:
        warnings.append("no split size gives at least two usable chunks")
    whole = _coverage(deg.reshape(-1))
    return {
        "shape": [int(t), int(spokes), int(samples)],
        "n_frames": int(t),
        "spokes_per_frame": int(spokes),
        "samples_per_spoke": int(samples),
        "nyquist_spokes": nyquist,
        "frame_nyquist_fraction": spokes / nyquist,
        "union_nyquist_fraction": t * spokes / nyquist,
        "frames": frames,
        "union": whole,
        "golden_angle": golden,
        "splits": splits,
        "recommended_split_size": recommended,
        "verdict": "unusable" if unusable else ("warning" if warnings else "ok"),
        "warnings": warnings,
    }


def print_spoke_report(r: dict, console) -> None:
    """Print a report made by :func:`spoke_report` (with the file facts added) on a rich console."""
    from rich.table import Table

    colour = {"ok": "green", "warning": "yellow", "unusable": "red"}.get(r.get("verdict"), "white")
    g = r["golden_angle"]
    per = r["frames"]
    console.print(
        f"radial: {r['n_frames']} frames x {r['spokes_per_frame']} spokes x {r['samples_per_spoke']} samples, "
        f"image {r.get('image_size')}" + (f", {r['coils']} coils (maps: {r.get('sensitivity')})" if (r.get("coils") or 1) > 1 else ""),
        highlight=False,
    )
    console.print(
        f"per frame: {r['frame_nyquist_fraction']:.1%} of the Nyquist spoke count ({r['nyquist_spokes']:.0f}); "
        f"largest angular gap {min(f['largest_gap_deg'] for f in per):.1f}-{max(f['largest_gap_deg'] for f in per):.1f} deg, "
        f"uniformity {np.mean([f['uniformity'] for f in per]):.2f}",
        highlight=False,
    )
    console.print(
        f"all frames: {r['union_nyquist_fraction']:.1%} of Nyquist, largest gap {r['union']['largest_gap_deg']:.2f} deg; "
        + (f"{g['kind']} detected (increment {g['increment_deg']:.3f} deg)" if g["detected"] else
           "no golden angle" + (f" (median increment {g['increment_deg']:.3f} deg)" if g["increment_deg"] is not None else "")),
        highlight=False,
    )
    t = Table(title="split sizes")
    for col in ("split size", "chunks", "spokes per chunk", "of Nyquist", "largest gap (deg)", "verdict", "warnings"):
        t.add_column(col)
    for s in r["splits"]:
        t.add_row(str(s["split_size"]), str(s["n_chunks"]), str(min(s["chunk_spokes"] or [0])),
                  f"{min(s['chunk_nyquist_fraction'] or [0]):.0%}", f"{max(s['chunk_largest_gap_deg'] or [0]):.1f}",
                  s["verdict"], "; ".join(s["warnings"]))
    console.print(t)
    for w in r["warnings"]:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)
    rec = r.get("recommended_split_size")
    console.print(f"[bold {colour}]verdict: {r['verdict']}[/]" + (f" (recommended --split-size {rec})" if rec else ""), highlight=False)
    if r.get("recommended_loss"):
        console.print(f"recommended --loss {r['recommended_loss']}: {r['loss_reason']}", highlight=False, soft_wrap=True)
