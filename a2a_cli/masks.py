"""Statistics of a dynamic sampling mask, and pictures of it.

A mask is boolean ``(T, H, W)`` (T frames, H readout, W phase-encode) or ``(T, W)``
(Cartesian phase-encode lines). Leading singleton axes are dropped, so the physics
layout ``(1, 1, T, H, W)`` is accepted too. A ``(T, H, W)`` mask whose every frame is
constant along H samples whole phase-encode lines and is analysed as a line mask
(orientation ``"lines"``); otherwise it is a point mask (``"points"``).

Counts in :func:`mask_report` are in *units*: lines for a line mask, k-space points for
a point mask. Accelerations are always ``H * W / points sampled`` (``W / lines`` for a
line mask), ``None`` where nothing is sampled.

The splitting loss cuts the T frames into chunks of ``split_size`` consecutive frames,
feeds one chunk to the network and scores it against another, so the report also
checks each candidate split: every chunk should sample the k-space centre, cover a
good part of k-space, and differ from the other chunks.

>>> import numpy as np
>>> mask = np.zeros((4, 8), dtype=bool)
>>> mask[:, 4] = True                     # the centre line in every frame
>>> mask[[0, 1, 2, 3], [0, 2, 5, 7]] = True
>>> report = mask_report(mask)
>>> report["orientation"], [f["acceleration"] for f in report["frames"]], report["union"]["samples"]
('lines', [4.0, 4.0, 4.0, 4.0], 5)
>>> report["never_sampled_lines"], report["recommended_split_size"]
([1, 3, 6], 2)
>>> print(render_text(mask))
t=00 █···█···
t=01 ··█·█···
t=02 ····██··
t=03 ····█··█
all  █·█·██·█
         ^ centre (line 4)
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import numpy as np

__all__ = [
    "as_mask",
    "mask_report",
    "splitting_fitness",
    "never_sampled_lines",
    "never_sampled_lines_by_width",
    "render_text",
    "save_mask_png",
]

# a chunk whose union covers less than this fraction of k-space gives the network an
# input (and a target) too sparse to be informative
SPARSE_CHUNK_FRACTION = 0.25
# above this mean fraction of a target chunk's samples that the input chunk also holds,
# the target mostly repeats the input and the loss teaches little
HEAVY_OVERLAP = 0.9
# below this fraction of a target chunk's samples that the input chunk lacks (for the
# best split), temporal splitting has (almost) nothing to teach: k-space splitting (SSDU)
OWN_SAMPLES_MIN = 0.05
# frames listed by number in a warning before the list is cut short
_LIST_LIMIT = 10


def as_mask(mask: object) -> np.ndarray:
    """``mask`` as a boolean ``(T, H, W)`` array (``(T, W)`` becomes ``(T, 1, W)``).

    Non-boolean input is true where non-zero; leading singleton axes are dropped.
    """
    if hasattr(mask, "detach"):  # torch tensor
        mask = mask.detach().cpu().numpy()
    arr = np.asarray(mask)
    while arr.ndim > 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 2:
        arr = arr[:, None, :]
    if arr.ndim != 3:
        raise ValueError(f"a mask must be (T, H, W) or (T, W), got shape {np.shape(mask)}")
    if 0 in arr.shape:
        raise ValueError(f"the mask is empty: shape {np.shape(mask)}")
    return arr if arr.dtype == bool else arr != 0


def _is_lines(m: np.ndarray) -> bool:
    """True when every frame of ``(T, H, W)`` is constant along H (whole lines)."""
    return bool(np.all(m == m[:, :1, :]))


def _ratio(total: int, samples: int) -> Optional[float]:
    return None if samples == 0 else total / samples


def _mean_pairwise_overlap(sets: np.ndarray) -> Optional[float]:
    """Mean over ordered pairs (i, j), i != j, of ``|S_i & S_j| / |S_j|``.

    ``sets`` is boolean ``(N, U)``. The measure is the fraction of a target's samples
    that the input also holds, which is what matters for the splitting loss (those
    samples are repeated, not predicted). Pairs with an empty target are skipped;
    ``None`` when no pair is left.
    """
    n = sets.shape[0]
    if n < 2:
        return None
    f = sets.astype(np.float32)
    # float32 BLAS gives exact integer counts (below 2**24) at half the memory of float64
    inter = (f @ f.T).astype(np.float64)
    size = sets.sum(axis=1).astype(np.float64)
    off = ~np.eye(n, dtype=bool) & (size[None, :] > 0)
    if not off.any():
        return None
    frac = np.divide(inter, size[None, :], out=np.zeros_like(inter), where=size[None, :] > 0)
    return float(frac[off].mean())


def _runs(indices: Sequence[int]) -> list[list[int]]:
    """Contiguous runs ``[first, last]`` of a sorted index list."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return runs


def _list_text(items: Sequence[int]) -> str:
    shown = ", ".join(str(i) for i in items[:_LIST_LIMIT])
    return shown + (f", ... ({len(items)} in all)" if len(items) > _LIST_LIMIT else "")


def _split_report(units: np.ndarray, centre_unit: int, s: int, centre_text: str, unit_name: str) -> dict:
    """Check one split size on the ``(T, U)`` boolean unit matrix."""
    t, n_units = units.shape
    if s < 1:
        raise ValueError(f"split sizes must be positive, got {s}")
    n = t // s
    leftover = t - n * s
    warnings: list[str] = []
    unusable = False
    if leftover:
        warnings.append(f"T={t} is not divisible by split size {s}: {leftover} frame(s) fit in no chunk")
    chunks = units[: n * s].reshape(n, s, n_units).any(axis=1)
    samples = chunks.sum(axis=1)
    coverage = samples / n_units
    centre = chunks[:, centre_unit]
    if n < 2:
        unusable = True
        warnings.append(f"split size {s} leaves {n} chunk(s) of {t} frames; the splitting loss needs at least 2")
    empty = [int(i) for i in np.flatnonzero(samples == 0)]
    if empty:
        unusable = True
        warnings.append(f"chunk(s) {_list_text(empty)} have no samples")
    missing = [int(i) for i in np.flatnonzero(~centre) if samples[i] > 0]
    if missing:
        warnings.append(f"chunk(s) {_list_text(missing)} miss the k-space centre ({centre_text})")
    sparse = [int(i) for i in np.flatnonzero(coverage < SPARSE_CHUNK_FRACTION) if samples[i] > 0]
    if sparse:
        warnings.append(
            f"chunk(s) {_list_text(sparse)} cover less than {SPARSE_CHUNK_FRACTION:.0%} of the k-space {unit_name} "
            "(too sparse; a larger split size covers more)"
        )
    overlap = _mean_pairwise_overlap(chunks)
    if overlap is not None and overlap > HEAVY_OVERLAP:
        warnings.append(
            f"chunks overlap heavily: on average {overlap:.0%} of a target chunk's samples are also in the "
            "input chunk (the target then repeats the input)"
        )
    return {
        "split_size": int(s),
        "n_chunks": int(n),
        "leftover_frames": int(leftover),
        "chunk_samples": [int(v) for v in samples],
        "chunk_acceleration": [_ratio(n_units, int(v)) for v in samples],
        "chunk_coverage": [float(v) for v in coverage],
        "chunk_centre_sampled": [bool(v) for v in centre],
        "centre_in_every_chunk": bool(n > 0 and centre.all()),
        "mean_pairwise_overlap": overlap,
        "verdict": "unusable" if unusable else ("warning" if warnings else "ok"),
        "warnings": warnings,
    }


def _recommend(splits: list[dict]) -> Optional[int]:
    """The split size to train with: the largest usable one.

    Among usable splits (whole chunks only when any divides T, and without heavy
    overlap when any avoids it) the largest leaves at least two chunks while its chunks
    cover the most k-space, which is what the view-shared network input needs; larger
    chunks measured best in the benchmark (``benchmarks/RESULTS.md``).
    """
    pool = [r for r in splits if r["verdict"] != "unusable"]
    for keep in (lambda r: r["leftover_frames"] == 0, lambda r: not any("overlap heavily" in w for w in r["warnings"])):
        preferred = [r for r in pool if keep(r)]
        pool = preferred or pool
    if not pool:
        return None
    return max(r["split_size"] for r in pool)


def splitting_fitness(mask: object) -> dict:
    """Whether temporal splitting (Artifact2Artifact) can learn from this mask, and which loss to use.

    A target chunk teaches through the samples that the input chunk lacks (its *own*
    samples). ``own_fraction`` is the largest, over the split sizes that divide T into two
    or more chunks, of the mean fraction of a target chunk's samples that are its own.
    Below ``OWN_SAMPLES_MIN`` (the same lines in every frame), or with a single frame,
    the mask is unfit and k-space splitting (``ssdu``) is recommended. Returns
    ``{"fit", "own_fraction", "reason", "recommended_loss"}`` (``recommended_loss`` None
    for a mask without samples).

    >>> same = np.zeros((8, 16), dtype=bool); same[:, ::4] = True
    >>> f = splitting_fitness(same)
    >>> f["fit"], f["own_fraction"], f["recommended_loss"]
    (False, 0.0, 'ssdu')
    >>> varied = np.zeros((8, 16), dtype=bool)
    >>> for t in range(8): varied[t, t::4] = True
    >>> splitting_fitness(varied)["recommended_loss"]
    'a2a'
    """
    m = as_mask(mask)
    t = m.shape[0]
    units = m[:, 0, :] if _is_lines(m) else m.reshape(t, -1)
    if not units.any():
        return {"fit": False, "own_fraction": None, "reason": "the mask has no samples", "recommended_loss": None}
    if t < 2:
        return {"fit": False, "own_fraction": None, "recommended_loss": "ssdu",
                "reason": "a single frame cannot be split in time"}
    own = []
    for s in range(1, t // 2 + 1):
        if t % s:
            continue
        chunks = units.reshape(t // s, s, -1).any(axis=1)
        if not chunks.any(axis=1).all():
            continue
        overlap = _mean_pairwise_overlap(chunks)
        if overlap is not None:
            own.append(1.0 - overlap)
    best = max(own) if own else None
    if best is None:
        return {"fit": False, "own_fraction": None, "recommended_loss": "ssdu",
                "reason": "no split of the frames gives two chunks with samples"}
    best = round(float(best), 4)
    if best < OWN_SAMPLES_MIN:
        return {"fit": False, "own_fraction": best, "recommended_loss": "ssdu",
                "reason": f"chunks carry almost no samples of their own ({best:.0%} at best: the frames sample "
                          "the same k-space), so every target chunk repeats its input"}
    return {"fit": True, "own_fraction": best, "recommended_loss": "a2a",
            "reason": f"chunks carry samples of their own (up to {best:.0%} of a target chunk)"}


def mask_report(mask: object, split_sizes: Optional[Iterable[int]] = None) -> dict:
    """JSON-ready statistics of a ``(T, H, W)`` or ``(T, W)`` boolean mask.

    Keys (counts in lines for a line mask, in points for a point mask):

    * ``shape`` (as given), ``n_frames``, ``n_lines`` (W), ``orientation``
      (``"lines"``/``"points"``), ``unit`` (``"lines"``/``"points"``).
    * ``frames``: one dict per frame: ``frame``, ``samples``, ``acceleration`` (``None``
      if empty).
    * ``union`` of all frames: ``samples``, ``acceleration``, ``fraction`` of k-space.
    * ``never_sampled_lines``: phase-encode indices no frame touches.
    * ``overlap``: ``in_multiple_frames`` (units sampled by >= 2 frames),
      ``fraction_of_union``, ``mean_pairwise`` (mean fraction of a frame's samples also
      sampled by another frame, over ordered pairs).
    * ``shared_lines``: lines sampled in every frame (for a point mask: lines whose
      centre-row point ``(H//2, w)`` is), as ``indices``, ``count``, ``centre_block``
      (``[first, last]`` of the run holding ``W//2``, or ``None``) and
      ``contiguous_around_centre`` (all shared lines form that one run).
    * ``empty_frames``: frames with no samples.
    * ``centre``: ``line`` (W//2), ``point`` (``[H//2, W//2]`` for a point mask, else
      ``None``), ``sampled_in_every_frame``, ``frames_missing``.
    * ``splits``: one entry per split size (default: every ``s`` with ``T % s == 0`` and
      ``T // s >= 2``): ``split_size``, ``n_chunks``, ``leftover_frames``,
      ``chunk_samples``, ``chunk_acceleration``, ``chunk_coverage``,
      ``chunk_centre_sampled``, ``centre_in_every_chunk``, ``mean_pairwise_overlap``,
      ``verdict`` (``"ok"``/``"warning"``/``"unusable"``) and ``warnings``.
    * ``recommended_split_size`` (``None`` if no split is usable), ``verdict``,
      ``warnings`` (mask-level problems, then the recommended split's warnings).
    * ``temporal_splitting``: :func:`splitting_fitness` (``fit``, ``own_fraction``,
      ``reason``), and ``recommended_loss``: ``"a2a"`` where temporal splitting is fit,
      ``"ssdu"`` (k-space splitting) where it is not, ``None`` without samples.
    """
    m = as_mask(mask)
    t, _, w = m.shape
    u = _as_units(m)
    report = {
        "shape": [int(v) for v in np.shape(mask)],
        "n_frames": int(t),
        "n_lines": int(w),
        "orientation": "lines" if u.lines else "points",
        "unit": u.name,
        **_sampling_section(m, u),
    }
    splits, candidates, recommended = _split_section(u, split_sizes)
    fitness = splitting_fitness(m)
    warnings, unusable = _mask_warnings(report, u, splits, candidates, recommended, fitness)
    report.update({
        "splits": splits,
        "recommended_split_size": recommended,
        "verdict": "unusable" if unusable else ("warning" if warnings else "ok"),
        "warnings": warnings,
        "temporal_splitting": {k: fitness[k] for k in ("fit", "own_fraction", "reason")},
        "recommended_loss": fitness["recommended_loss"],
    })
    return report


@dataclass(frozen=True)
class _Units:
    """A ``(T, H, W)`` mask seen as what is counted: whole lines of a line mask, or points."""

    units: np.ndarray  # (T, U) boolean: U lines (W) or points (H * W)
    centre: int  # the unit at the k-space centre
    centre_text: str  # how a message names it
    shared_row: np.ndarray  # (T, W): per line, what "sampled in every frame" is judged on
    lines: bool

    @property
    def name(self) -> str:
        return "lines" if self.lines else "points"


def _as_units(m: np.ndarray) -> _Units:
    """The :class:`_Units` of mask ``m`` ``(T, H, W)``; a point mask judges shared lines on its centre row."""
    t, h, w = m.shape
    if _is_lines(m):
        return _Units(m[:, 0, :], w // 2, f"line {w // 2}", m[:, 0, :], True)
    return _Units(m.reshape(t, h * w), (h // 2) * w + w // 2, f"point ({h // 2}, {w // 2})", m[:, h // 2, :], False)


def _sampling_section(m: np.ndarray, u: _Units) -> dict:
    """The report's keys on what is sampled: ``frames`` to ``centre`` (see :func:`mask_report`)."""
    _, h, w = m.shape
    units, n_units = u.units, u.units.shape[1]
    per_frame = units.sum(axis=1)
    union_samples = int(units.any(axis=0).sum())
    multi = int((units.sum(axis=0) >= 2).sum())
    shared = [int(i) for i in np.flatnonzero(u.shared_row.all(axis=0))]
    block = next((r for r in _runs(shared) if r[0] <= w // 2 <= r[1]), None)
    centre_missing = [int(i) for i in np.flatnonzero(~units[:, u.centre])]
    return {
        "frames": [
            {"frame": i, "samples": int(v), "acceleration": _ratio(n_units, int(v))} for i, v in enumerate(per_frame)
        ],
        "union": {
            "samples": union_samples,
            "acceleration": _ratio(n_units, union_samples),
            "fraction": union_samples / n_units,
        },
        "never_sampled_lines": [int(i) for i in np.flatnonzero(~m.any(axis=(0, 1)))],
        "overlap": {
            "in_multiple_frames": multi,
            "fraction_of_union": multi / union_samples if union_samples else 0.0,
            "mean_pairwise": _mean_pairwise_overlap(units),
        },
        "shared_lines": {
            "indices": shared,
            "count": len(shared),
            "centre_block": block,
            "contiguous_around_centre": bool(block is not None and len(shared) == block[1] - block[0] + 1),
        },
        "empty_frames": [int(i) for i in np.flatnonzero(per_frame == 0)],
        "centre": {
            "line": int(w // 2),
            "point": None if u.lines else [int(h // 2), int(w // 2)],
            "sampled_in_every_frame": not centre_missing,
            "frames_missing": centre_missing,
        },
    }


def _split_section(u: _Units, split_sizes: Optional[Iterable[int]]) -> tuple[list[dict], list[dict], Optional[int]]:
    """``(splits, candidates, recommended)``: the reports of the sizes asked for (default: every divisor
    of T leaving two chunks), those of every such divisor, and the size recommended among the latter."""
    t = u.units.shape[0]
    divisors = [s for s in range(1, t + 1) if t % s == 0 and t // s >= 2]
    sizes = divisors if split_sizes is None else sorted({int(s) for s in split_sizes})
    splits = [_split_report(u.units, u.centre, s, u.centre_text, u.name) for s in sizes]
    # recommend among the sizes that divide T, whichever sizes the caller asked about
    candidates = splits if split_sizes is None else [
        _split_report(u.units, u.centre, s, u.centre_text, u.name) for s in divisors]
    return splits, candidates, _recommend(candidates)


def _mask_warnings(report: dict, u: _Units, splits: list[dict], candidates: list[dict],
                   recommended: Optional[int], fitness: dict) -> tuple[list[str], bool]:
    """``(warnings, unusable)`` of a mask, from its report's sampling keys, its splits and :func:`splitting_fitness`."""
    t, w = report["n_frames"], report["n_lines"]
    union_samples, empty = report["union"]["samples"], report["empty_frames"]
    never, centre_missing = report["never_sampled_lines"], report["centre"]["frames_missing"]
    warnings: list[str] = []
    unusable = False
    if union_samples == 0:
        unusable = True
        warnings.append("the mask has no samples")
    elif empty:
        noun = "frame" if len(empty) == 1 else "frames"
        verb = "has" if len(empty) == 1 else "have"
        warnings.append(f"{noun} {_list_text(empty)} {verb} no samples")
    if never and union_samples:
        warnings.append(
            f"lines never sampled by any frame: {len(never)} of {w} "
            "(self-supervision cannot learn them; vary the pattern between files)"
        )
    if centre_missing and union_samples:
        warnings.append(f"the k-space centre ({u.centre_text}) is not sampled in frame(s) {_list_text(centre_missing)}")
    if t < 2:
        warnings.append(f"only {t} frame: the splitting loss needs at least 2 chunks of frames")
    if _recommend(splits) is None:
        unusable = True
        if t >= 2 and union_samples:
            warnings.append("no split size gives at least two usable chunks")
    if recommended is not None:
        chosen = next(r for r in candidates if r["split_size"] == recommended)
        warnings.extend(f"split size {recommended}: {msg}" for msg in chosen["warnings"])
    if not fitness["fit"] and union_samples:
        warnings.append(f"unfit for temporal splitting: {fitness['reason']}; use --loss ssdu (k-space splitting)")
    return warnings, unusable


def never_sampled_lines_by_width(masks: Sequence[object]) -> dict[int, np.ndarray]:
    """Per width W: the phase-encode indices that no mask of that width samples.

    Masks of one width are compared together whatever their frame counts; masks of
    different widths index different k-space grids, so they are never compared.
    """
    seen: dict[int, np.ndarray] = {}
    for mask in masks:
        m = as_mask(mask)
        cols = m.any(axis=(0, 1))
        w = cols.shape[0]
        seen[w] = seen[w] | cols if w in seen else cols
    return {w: np.flatnonzero(~cols).astype(np.int64) for w, cols in seen.items()}


def never_sampled_lines(masks: Sequence[object]) -> np.ndarray:
    """Phase-encode indices that no mask in ``masks`` samples in any frame.

    Masks may differ in T but should share W. When widths differ, each width group is
    compared on its own (see :func:`never_sampled_lines_by_width`) and the result is
    the sorted union of the groups' indices, i.e. an index listed is never sampled by
    the masks of at least one width. An empty list gives an empty array.

    >>> a = np.zeros((3, 6), bool); a[:, 2] = True
    >>> b = np.zeros((5, 6), bool); b[:, [0, 3]] = True
    >>> never_sampled_lines([a, b]).tolist()
    [1, 4, 5]
    """
    groups = never_sampled_lines_by_width(masks)
    if not groups:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.concatenate(list(groups.values()))).astype(np.int64)


# -- pictures ---------------------------------------------------------------------------

_FULL, _EMPTY, _PARTIAL = "█", "·", "░▒▓"


def _glyph(fraction: float) -> str:
    if fraction <= 0.0:
        return _EMPTY
    if fraction >= 1.0:
        return _FULL
    return _PARTIAL[min(2, int(fraction * 3))]


def _bin_mean(a: np.ndarray, size: int, axis: int) -> np.ndarray:
    """Mean over consecutive blocks of ``size`` along ``axis`` (the last block may be shorter)."""
    starts = np.arange(0, a.shape[axis], size)
    sums = np.add.reduceat(a, starts, axis=axis)
    lengths = np.diff(np.append(starts, a.shape[axis]))
    shape = [1] * a.ndim
    shape[axis] = len(lengths)
    return sums / lengths.reshape(shape)


def _line_fractions(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(T, W)`` fraction of each line's points sampled per frame, and ``(W,)`` for the union."""
    return m.mean(axis=1), m.any(axis=0).mean(axis=0)


def render_text(mask: object, max_width: int = 96, max_rows: int = 48) -> str:
    """A terminal picture of a mask: one row per frame, one character per line.

    Rows are ``t=00 ...`` per frame, then ``all`` (the union of all frames), then a
    marker row with ``^`` under the centre line ``W//2``. ``█`` is sampled, ``·`` not,
    and ``░▒▓`` partly sampled (a point mask's line, or a character that stands for
    several lines when W > ``max_width``, or several frames when T > ``max_rows``;
    binned rows are labelled ``t=00-03``). Plain text, no markup.
    """
    m = as_mask(mask)
    t, _, w = m.shape
    if max_width < 1 or max_rows < 1:
        raise ValueError("max_width and max_rows must be positive")
    frac, union = _line_fractions(m)
    per_char = math.ceil(w / max_width)
    per_row = math.ceil(t / max_rows)
    frac = _bin_mean(_bin_mean(frac, per_char, axis=1), per_row, axis=0)
    union = _bin_mean(union, per_char, axis=0)
    digits = max(2, len(str(t - 1)))
    labels = []
    for start in range(0, t, per_row):
        stop = min(start + per_row, t) - 1
        labels.append(f"t={start:0{digits}d}" + (f"-{stop:0{digits}d}" if stop > start else ""))
    labels.append("all")
    width = max(len(label) for label in labels)
    rows = [label.ljust(width) + " " + "".join(_glyph(v) for v in row) for label, row in zip(labels, [*frac, union])]
    rows.append(" " * (width + 1 + (w // 2) // per_char) + f"^ centre (line {w // 2})")
    return "\n".join(rows)


def save_mask_png(mask: object, path: str | os.PathLike) -> None:
    """Save a picture of a mask: phase-encode line (x) against frame (y), with the union
    of all frames as a bar underneath and the centre line marked.

    A point mask shows, per line and frame, the fraction of the line's points sampled.
    Drawn with matplotlib's Agg renderer (no display needed) and written atomically.
    """
    from matplotlib.ticker import MaxNLocator

    from .plots import _new_figure, save_figure

    m = as_mask(mask)
    t, _, w = m.shape
    frac, union = _line_fractions(m)
    report_accel = _ratio(m[0].size * t, int(m.sum()))
    # constrained layout: tight_layout cannot handle the shared-axis gridspec
    fig = _new_figure(7.0, float(np.clip(2.0 + 0.12 * t, 3.2, 9.0)), layout="constrained")
    grid = fig.add_gridspec(2, 1, height_ratios=[max(t, 4), max(1.0, 0.08 * max(t, 4))])
    ax = fig.add_subplot(grid[0])
    bar = fig.add_subplot(grid[1], sharex=ax)
    extent_x = (-0.5, w - 0.5)
    ax.imshow(frac, cmap="gray", vmin=0, vmax=1, aspect="auto", interpolation="nearest",
              extent=(*extent_x, t - 0.5, -0.5))
    bar.imshow(union[None, :], cmap="gray", vmin=0, vmax=1, aspect="auto", interpolation="nearest",
               extent=(*extent_x, 0.5, -0.5))
    for a in (ax, bar):
        a.axvline(w // 2, color="tab:red", lw=0.8, alpha=0.7)
    ax.set_ylabel("frame")
    if t <= 10:
        ax.set_yticks(range(t))
    else:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # frames are whole numbers
    ax.tick_params(labelbottom=False)
    bar.set_yticks([0])
    bar.set_yticklabels(["all"])
    bar.set_xlabel(f"phase-encode line (centre {w // 2} in red)")
    accel = "no samples" if report_accel is None else f"mean acceleration {report_accel:.2f}"
    kind = "" if _is_lines(m) else "\n(point mask: grey = part of a line's points)"
    ax.set_title(f"sampling mask: {t} frame{'s' if t != 1 else ''} x {w} lines, {accel}{kind}")
    save_figure(fig, path, "png")
