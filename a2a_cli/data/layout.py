"""What a file holds, as the readers describe it: :class:`FileInfo`, :class:`Sample`, line splitting.

:class:`FileInfo` is learnt from a file's header by :func:`a2a_cli.data.inspect_file`;
``reader`` names the reader that made it (see :mod:`a2a_cli.data.reader`), which is
also the one that reads its slices. :class:`Sample` is one slice as tensors.
:class:`SplitOptions` deals the sampled lines of a static (fastMRI-style) slice out to
frames.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import torch

from ..errors import A2AError, InputError
from ..headers import _DEFAULT_MAX_SLICE_SAMPLES, _DEFAULT_MAX_SLICES, MAX_SLICE_SAMPLES_ENV, MAX_SLICES_ENV, _limit
from .hdf5 import check_finite, classify_complex, dataset, shape_str

__all__ = [
    "SplitOptions", "SINGLE_FRAME", "centre_line_indices", "split_lines", "FileInfo", "Sample", "SensitivityChoice",
    "describe_layout", "layout_warning", "mode_conflict", "check_mask_matches", "check_coils_share_lines",
    "with_sensitivity", "check_declared_size", "check_index",
    "check_frames_sampled", "match_dims", "dims_str", "to_tensor", "format_info", "format_sample",
]

SensitivityChoice = Literal["auto", "stored", "espirit", "lowres"]


# ----------------------------------------------------------------------------------
# splitting the lines of static (fastMRI-style) files into frames
# ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SplitOptions:
    """How to deal the sampled lines of a static slice out to ``frames`` frames.

    ``centre_lines`` lines around the k-space centre (those of them that were
    sampled) go to every frame; the other sampled lines are assigned to exactly one
    frame each, ``"interleaved"`` (line j of the sorted lines to frame j mod T) or
    ``"random"`` (a balanced random assignment drawn from ``(seed, slice index)``, so
    every slice gets its own pattern).

    >>> SplitOptions(frames=4, assignment="interleaved", centre_lines=2)
    SplitOptions(frames=4, assignment='interleaved', centre_lines=2, seed=0)
    """

    frames: int
    assignment: Literal["random", "interleaved"] = "random"
    centre_lines: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.frames, bool) or not isinstance(self.frames, (int, np.integer)) or self.frames < 1:
            raise A2AError(f"frames must be a positive integer, got {self.frames!r}")
        if self.assignment not in ("random", "interleaved"):
            raise A2AError(f"assignment must be 'random' or 'interleaved', got {self.assignment!r}")
        if self.centre_lines < 0:
            raise A2AError(f"centre_lines must be >= 0, got {self.centre_lines!r}")
        if self.seed < 0:
            raise A2AError(f"seed must be >= 0, got {self.seed!r}")


#: Static files read without the frames option: every slice is one frame holding all its samples.
SINGLE_FRAME = SplitOptions(frames=1)


def centre_line_indices(width: int, count: int) -> np.ndarray:
    """Indices of the ``count`` phase-encode lines around the centre ``width // 2``.

    >>> centre_line_indices(8, 2).tolist(), centre_line_indices(8, 3).tolist()
    ([3, 4], [3, 4, 5])
    """
    count = max(0, min(int(count), width))
    start = width // 2 - count // 2
    return np.arange(start, start + count)


def split_lines(lines: np.ndarray, split: SplitOptions, slice_index: int = 0) -> np.ndarray:
    """Deal sampled lines ``(W,)`` bool out to frames: returns bool ``(T, W)``.

    Frames share the sampled centre lines and are otherwise disjoint; their union is
    ``lines``. Frame sizes differ by at most one line.

    >>> lines = np.ones(8, bool)
    >>> split_lines(lines, SplitOptions(2, "interleaved", centre_lines=2)).astype(int)
    array([[1, 0, 1, 1, 1, 0, 1, 0],
           [0, 1, 0, 1, 1, 1, 0, 1]])
    """
    lines = np.asarray(lines, dtype=bool)
    width = lines.shape[0]
    centre = np.zeros(width, dtype=bool)
    centre[centre_line_indices(width, split.centre_lines)] = True
    rest = np.flatnonzero(lines & ~centre)
    frame_of = np.arange(rest.size) % split.frames
    if split.assignment == "random":
        # a permutation of the round-robin labels: random but balanced frame sizes
        frame_of = np.random.default_rng([split.seed, int(slice_index)]).permutation(frame_of)
    out = np.zeros((split.frames, width), dtype=bool)
    out[:, lines & centre] = True
    out[frame_of, rest] = True
    return out


# ----------------------------------------------------------------------------------
# what a file holds
# ----------------------------------------------------------------------------------
@dataclass
class FileInfo:
    """What :func:`~a2a_cli.data.inspect_file` learnt from a file's header.

    ``reader`` names the reader that made it and reads its slices (``"a2a"``,
    ``"radial"``, ``"cmrxrecon"``, ``"ismrmrd"``, ``"fastmri"``; the a2a reader also
    reads single-coil fastMRI-style static files, ``layout`` ``"fastmri"``).
    ``frames`` is T after splitting for fastMRI-style files. ``coils`` is N for
    multi-coil k-space (None for one coil); ``sensitivity`` says where the coil maps
    come from: ``"stored"`` (the file's ``sensitivity_maps``), ``"espirit"`` (estimated;
    a slice whose calibration region is too small falls back to ``"lowres"``, see
    :func:`a2a_cli.coils.estimate_maps`), ``"lowres"``, or None (one coil). The
    underscored fields record how the datasets are stored, and ``plan`` what else a
    reader needs (dataset names, axis order, acquisition indices).
    """

    path: Path
    layout: Literal["a2a", "fastmri", "cmrxrecon", "ismrmrd", "radial"]
    mode: Literal["dynamic", "sequential"]
    n_slices: int
    frames: int
    height: int
    width: int
    has_reference: bool
    mask_source: Literal["stored", "derived", "split"]
    complex_style: Literal["complex", "compound", "float2"] = "complex"
    reference_static: bool = False
    coils: int | None = None
    sensitivity: Literal["stored", "espirit", "lowres"] | None = None
    reader: str = "a2a"
    _kspace_fields: tuple[str, str] | None = field(default=None, repr=False)
    _kspace_coil_axis: bool = field(default=False, repr=False)
    _maps_dims: tuple[str, ...] | None = field(default=None, repr=False)
    _maps_style: str | None = field(default=None, repr=False)
    _maps_fields: tuple[str, str] | None = field(default=None, repr=False)
    _kspace_slice_axis: bool = field(default=True, repr=False)
    _mask_dims: tuple[str, ...] | None = field(default=None, repr=False)
    _reference_dims: tuple[str, ...] | None = field(default=None, repr=False)
    _reference_style: str | None = field(default=None, repr=False)
    _reference_fields: tuple[str, str] | None = field(default=None, repr=False)
    #: where ``mode`` came from, for :func:`describe_layout`
    mode_source: str = field(default="", repr=False)
    #: ``kspace``'s logical shape on disk (a2a files), for :func:`describe_layout`
    stored_shape: tuple[int, ...] = field(default=(), repr=False)
    #: what the reader of a scanner or challenge format needs to read a slice
    plan: dict = field(default_factory=dict, repr=False)

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """``(T, H, W)`` of every slice."""
        return (self.frames, self.height, self.width)


@dataclass
class Sample:
    """One slice, as tensors.

    ``kspace`` float32 ``(1, 2, T, H, W)`` (``(1, 2, T, N, H, W)`` with N coils);
    ``mask`` float32 ``(1, 1, T, H, W)`` (shared by the coils); ``reference`` float32
    ``(1, 2, T, H, W)`` (dynamic) or ``(1, 2, H, W)`` (static) or None, coil-combined;
    ``coil_maps`` complex64 ``(1, N, H, W)`` or None (one coil); ``sensitivity`` how
    the maps were obtained (``"stored"``, ``"espirit"``, ``"lowres"``; None: one coil).
    Radial slices hold the tensors of :mod:`a2a_cli.nufft` instead (see
    :mod:`a2a_cli.data.radial_file`).
    """

    kspace: torch.Tensor
    mask: torch.Tensor
    reference: torch.Tensor | None
    file: str
    slice_index: int
    coil_maps: torch.Tensor | None = None
    sensitivity: str | None = None


def describe_layout(info: FileInfo) -> str:
    """One line saying how a file was read: slices, frames, coils, H, W and where each came from.

    >>> info = FileInfo(path=Path("scan.h5"), layout="a2a", mode="dynamic", n_slices=2, frames=16, height=64,
    ...                 width=48, has_reference=False, mask_source="stored", mode_source="attribute acquisition",
    ...                 stored_shape=(2, 16, 64, 48))
    >>> describe_layout(info)
    "scan.h5: read as 2 slices (kspace axis 0) x 16 frames (axis 1) x 1 coil (no 'coils' attribute) x H 64 (readout) x W 48 (phase encode); dynamic (attribute acquisition); mask stored"
    """
    coils = info.coils or 1
    if info.reader != "a2a":
        fmt = info.reader
        parts = [f"{info.n_slices} slice(s)", f"{info.frames} frame(s)", f"{coils} coil(s)"]
        text = f"read as {fmt}: " + " x ".join(parts) + f" (from the {fmt} file's layout)"
    else:
        text = "read as " + _a2a_axes(info)
    text += f" x H {info.height} (readout) x W {info.width} (phase encode); {info.mode}"
    if info.mode_source:
        text += f" ({info.mode_source})"
    text += f"; mask {info.mask_source}"
    if coils > 1 and info.sensitivity:
        text += f"; coil maps {info.sensitivity}"
    return f"{info.path.name}: {text}"


def _a2a_axes(info: FileInfo) -> str:
    """Slices, frames and coils of a file the a2a reader read, and where each came from."""
    def n(count: int, word: str) -> str:
        return f"{count} {word}{'' if count == 1 else 's'}"

    if info.layout == "fastmri":
        slices = f"{n(info.n_slices, 'slice')} (kspace axis 0)"
        how = "the frames option: lines split into frames" if info.frames > 1 else "one per slice: no frames option"
        frames = f"{n(info.frames, 'frame')} ({how})"
    elif info._kspace_slice_axis:
        slices = f"{n(info.n_slices, 'slice')} (kspace axis 0)"
        frames = f"{n(info.frames, 'frame')} (axis 1)"
    else:
        slices = "1 slice (no slice axis)"
        frames = f"{n(info.frames, 'frame')} (axis 0)"
    if info._kspace_coil_axis:
        coil_text = f"{n(info.coils or 1, 'coil')} (attribute coils)"
    else:
        coil_text = "1 coil (no 'coils' attribute)"
    return f"{slices} x {frames} x {coil_text}"


def mode_conflict(info: FileInfo, mode: str) -> str | None:
    """Why a file cannot be read in ``mode`` (a run's or a checkpoint's), or None when it can.

    A file whose mode is only a default (no ``acquisition`` attribute) is read in any mode,
    as are static fastMRI-style slices; one that names its mode is read only in it.
    """
    if info.mode == mode or info.layout == "fastmri" or info.mode_source.startswith("default"):
        return None
    return f"the file's acquisition is {info.mode!r}, not {mode!r}"


def layout_warning(info: FileInfo, mask: np.ndarray | None = None) -> str | None:
    """A warning when the file's shape can be read in more than one way, else None.

    A 4D ``kspace`` without the ``coils`` attribute is read as ``(slices, frames, H, W)``,
    but could be one slice of multi-coil k-space ``(frames, coils, H, W)``. Receive coils
    share one sampling pattern: given a slice's ``mask`` ``(T, ...)``, frames that sample
    differently settle the question and no warning is given.
    """
    shape = info.stored_shape
    if info.reader != "a2a" or info.layout != "a2a" or info._kspace_coil_axis or len(shape) != 4:
        return None
    if mask is not None and mask.shape[0] > 1 and not (mask == mask[:1]).all():
        return None
    return (
        f"{info.path}: 'kspace' {shape_str(shape)} has no 'coils' attribute, so it is read as {shape[0]} slices x "
        f"{shape[1]} frames; if it is one slice of multi-coil k-space (frames x {shape[1]} coils), set the file "
        f"attribute coils = {shape[1]} (and check that the slices and frames above are right); if it is a static "
        f"multi-coil stack ({shape[0]} slices x {shape[1]} coils), mark it as fastMRI files are: an 'ismrmrd_header' "
        f"dataset or the protocol's name (e.g. CORPD_FBK) as the attribute acquisition"
    )


def with_sensitivity(info: FileInfo, choice: SensitivityChoice | None) -> FileInfo:
    """``info`` with its coil maps taken as ``choice`` says (single-coil files are returned as they are).

    ``"auto"`` (or None): the file's ``sensitivity_maps`` when it has them, else ESPIRiT
    (falling back to low-resolution maps for a slice whose calibration region is too
    small); ``"stored"``: the file's maps, an :class:`InputError` if it has none;
    ``"espirit"``/``"lowres"``: estimated even if the file stores maps.
    """
    if choice in (None, "auto") or not info.coils:
        return info
    if choice == "stored":
        if info._maps_dims is None:
            raise InputError(info.path, "stored coil sensitivities were asked for, but the file has no 'sensitivity_maps'")
        return dataclasses.replace(info, sensitivity="stored")
    if choice not in ("espirit", "lowres"):
        raise A2AError(f"sensitivity must be auto, stored, espirit or lowres, got {choice!r}")
    return dataclasses.replace(info, sensitivity=choice)


# ----------------------------------------------------------------------------------
# checks and small helpers shared by the readers
# ----------------------------------------------------------------------------------
def check_declared_size(info: FileInfo) -> FileInfo:
    """Refuse headers that declare more than we will allocate (limits: :mod:`a2a_cli.headers`)."""
    max_slices = _limit(MAX_SLICES_ENV, _DEFAULT_MAX_SLICES)
    if info.n_slices > max_slices:
        raise InputError(
            info.path,
            f"declares {info.n_slices} slices, more than the limit of {max_slices} (a damaged header?); "
            f"set {MAX_SLICES_ENV} to raise the limit",
        )
    coils = max(1, int(info.coils or 1))
    samples = info.frames * info.height * info.width * coils
    max_samples = _limit(MAX_SLICE_SAMPLES_ENV, _DEFAULT_MAX_SLICE_SAMPLES)
    if samples > max_samples:
        shape = f"{info.frames} frames x {info.height} x {info.width}" + (f" x {coils} coils" if coils > 1 else "")
        raise InputError(
            info.path,
            f"declares slices of {shape} = {samples} complex samples ({samples * 8 / 2**30:.1f} GiB each), more than "
            f"the limit of {max_samples} (a damaged header?); set {MAX_SLICE_SAMPLES_ENV} to raise the limit",
        )
    return info


def check_index(info: FileInfo, index: int) -> int:
    """``index`` as an int, if the file has that slice; else an :class:`InputError`."""
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < info.n_slices:
        raise InputError(info.path, f"slice {index} does not exist (the file has {info.n_slices} slice{'s' * (info.n_slices != 1)})")
    return int(index)


def check_frames_sampled(mask: np.ndarray, path: Path, index: int) -> None:
    """Refuse a slice whose mask ``(T, ...)`` leaves a frame without samples."""
    empty = np.flatnonzero(~mask.reshape(mask.shape[0], -1).any(axis=1))
    if empty.size:
        listed = ", ".join(map(str, empty[:10].tolist())) + (", ..." if empty.size > 10 else "")
        raise InputError(path, f"slice {index}: frame(s) {listed} have no k-space samples ({empty.size} of {mask.shape[0]} frames empty)")


#: above this share of the lines a mask marks as measured holding only zeros, mask and k-space do not match
EMPTY_LINE_LIMIT = 0.25


def check_mask_matches(kspace: np.ndarray, mask: np.ndarray, path: Path, index: int) -> None:
    """Refuse a slice where many lines the mask ``(T, H, W)`` marks as measured hold only zeros.

    ``kspace`` is ``(T, H, W)``, ``(T, N, H, W)`` or ``(H, W)`` (one k-space for every frame).
    A measured line is never zero in every coil, so this is a mask that belongs to other
    data or k-space read along the wrong axes (frames and coils swapped, or a forgotten
    ``coils`` attribute). A few empty lines are let through: zero-padded k-space edges
    marked as measured. Samples are grouped by phase-encode column (W) and frame, so a
    partial echo's zeros along the readout do not count.

    >>> m = np.ones((2, 4, 3), bool)
    >>> check_mask_matches(np.ones((2, 4, 3)), m, Path("a.h5"), 0)
    >>> check_mask_matches(np.zeros((2, 4, 3)), m, Path("a.h5"), 0)
    Traceback (most recent call last):
    a2a_cli.errors.InputError: a.h5: slice 0: 6 of the 6 lines (phase-encode columns of a frame) that the mask marks as measured hold only zeros in 'kspace': the mask does not match the k-space; check that it belongs to this file and the order of the axes (multi-coil k-space is (frames, coils, H, W) with the file attribute coils)
    """
    filled = kspace != 0
    several_coils = filled.ndim == 4 and filled.shape[1] > 1
    if filled.ndim == 4:
        filled = filled.any(axis=1)
    declared = mask.any(axis=-2)  # (T, W)
    measured = (filled & mask).any(axis=-2)
    n_declared = int(declared.sum())
    n_empty = int((declared & ~measured).sum())
    if n_declared and n_empty > EMPTY_LINE_LIMIT * n_declared:
        coils = " in every coil" if several_coils else ""
        raise InputError(
            path,
            f"slice {index}: {n_empty} of the {n_declared} lines (phase-encode columns of a frame) that the mask marks as "
            f"measured hold only zeros in 'kspace'{coils}: the mask does not match the k-space; check that it belongs to "
            f"this file and the order of the axes (multi-coil k-space is (frames, coils, H, W) with the file attribute coils)",
        )


def check_coils_share_lines(kspace: np.ndarray, path: Path, index: int) -> None:
    """Refuse multi-coil k-space ``(T, N, H, W)`` whose coils sample different lines in a frame.

    Receive coils record the same samples, so coils that disagree are frames read as coils
    (k-space stored as (coils, frames, H, W)). Coils with no data at all (a dead element)
    are left out of the comparison.

    >>> k = np.zeros((2, 2, 4, 6), np.complex64); k[0, :, :, 0] = k[1, :, :, 1] = 1
    >>> check_coils_share_lines(k, Path("a.h5"), 0)
    >>> check_coils_share_lines(k.transpose(1, 0, 2, 3), Path("a.h5"), 0)
    Traceback (most recent call last):
    a2a_cli.errors.InputError: a.h5: slice 0: the coils of a frame hold different k-space lines (4 of 8 coil lines differ from their frame's), which receive coils never do: are frames and coils swapped? Multi-coil k-space is (frames, coils, H, W) with the file attribute coils
    """
    if kspace.ndim != 4 or kspace.shape[1] < 2:
        return
    lines = (kspace != 0).any(axis=-2)  # (T, N, W)
    lines = lines[:, lines.any(axis=(0, 2))]  # coils that hold data
    union = lines.any(axis=1)  # (T, W)
    expected = int(union.sum()) * lines.shape[1]
    differ = int((lines != union[:, None]).sum())
    if lines.shape[1] > 1 and differ > EMPTY_LINE_LIMIT * expected:
        raise InputError(
            path,
            f"slice {index}: the coils of a frame hold different k-space lines ({differ} of {expected} coil lines differ "
            f"from their frame's), which receive coils never do: are frames and coils swapped? Multi-coil k-space is "
            f"(frames, coils, H, W) with the file attribute coils",
        )


def dims_str(dims: tuple[str, ...], sizes: Mapping[str, int]) -> str:
    """``(T, W) = (16, 48)``: named axes and their sizes."""
    return f"({', '.join(dims)}) = {shape_str([sizes[d] for d in dims])}"


def match_dims(shape: Sequence[int], candidates: Sequence[tuple[str, ...]], sizes: Mapping[str, int]) -> tuple[str, ...] | None:
    """The first of ``candidates`` (axis names) whose sizes are ``shape``, or None.

    >>> match_dims((16, 48), [("T", "H", "W"), ("T", "W")], {"T": 16, "H": 64, "W": 48})
    ('T', 'W')
    """
    for dims in candidates:
        if len(dims) == len(shape) and all(sizes[d] == s for d, s in zip(dims, shape)):
            return dims
    return None


def to_tensor(z: Any) -> torch.Tensor:
    """complex ``(...)`` -> float32 ``(1, 2, ...)`` (channel 0 real, 1 imaginary)."""
    return torch.from_numpy(np.stack((z.real, z.imag)).astype(np.float32, copy=False)).unsqueeze(0)


# ----------------------------------------------------------------------------------
# what the readers of scanner and challenge formats share
# ----------------------------------------------------------------------------------
def format_info(path: Path, fmt: str, mode: str, s: int, t: int, h: int, w: int, coils: int, has_reference: bool,
                mask_source: str, plan: dict, reference_static: bool = False) -> FileInfo:
    """The :class:`FileInfo` a format reader ``fmt`` makes; one coil reads exactly like a single-coil a2a file."""
    multi = coils > 1
    return FileInfo(
        path=path, layout=fmt, mode=mode, n_slices=int(s), frames=int(t), height=int(h), width=int(w),  # type: ignore[arg-type]
        has_reference=has_reference, mask_source=mask_source, reference_static=reference_static,  # type: ignore[arg-type]
        coils=int(coils) if multi else None, sensitivity="espirit" if multi else None,
        reader=fmt, plan=plan,
    )


def format_sample(info: FileInfo, index: int, k: np.ndarray, m: np.ndarray, allow_empty_frames: bool) -> Sample:
    """A :class:`Sample` (no reference, no coil maps) from k-space ``(T, N, H, W)`` and mask ``(T, H, W)``.

    k-space is checked finite and zeroed outside the mask; one coil drops the coil axis.
    """
    check_finite(k, info.path, f"slice {index}: k-space")
    check_mask_matches(k, m, info.path, index)
    check_coils_share_lines(k, info.path, index)
    k = np.where(m[:, None], k, np.complex64(0)).astype(np.complex64, copy=False)
    if not allow_empty_frames:
        check_frames_sampled(m, info.path, index)
    return Sample(
        kspace=to_tensor(k[:, 0] if k.shape[1] == 1 else k),
        mask=torch.from_numpy(np.ascontiguousarray(m, dtype=np.float32))[None, None],
        reference=None, file=str(info.path), slice_index=index,
    )


def stored_reference(f: Any, path: Path, candidates: Sequence[tuple[str, ...]], sizes: Mapping[str, int],
                     fits: str) -> tuple[Any, Any, Any]:
    """``(axes, style, compound fields)`` of a file's ``reference`` dataset; Nones without one.

    A complex reference in any stored style, a float ``(..., 2)`` one (real and imaginary
    parts) or a real-valued (magnitude) image; its axes must match one of ``candidates``
    (``fits`` says what they were derived from, for the message).
    """
    if "reference" not in f:
        return None, None, None
    rds = dataset(f, "reference", path)
    rshape = tuple(rds.shape)
    ref_fields = None
    if rds.dtype.kind in "fiu" and not rds.dtype.names:
        if rds.dtype.kind == "f" and rshape and rshape[-1] == 2 and match_dims(rshape[:-1], candidates, sizes):
            ref_style, ref_dims = "float2", match_dims(rshape[:-1], candidates, sizes)
        else:
            ref_style, ref_dims = "real", match_dims(rshape, candidates, sizes)
    else:
        ref_style, logical, ref_fields = classify_complex(rds, "reference", path)
        ref_dims = match_dims(logical, candidates, sizes)
    if ref_dims is None:
        expected = " or ".join(dims_str(c, sizes) for c in candidates)
        raise InputError(path, f"'reference' has shape {shape_str(rshape)}, which does not fit {fits}: expected {expected}")
    return ref_dims, ref_style, ref_fields


def stored_maps(f: Any, path: Path, n_coils: int | None, slice_axis: bool, sizes: Mapping[str, int],
                fits: str) -> tuple[Any, Any, Any]:
    """``(axes, style, compound fields)`` of a file's ``sensitivity_maps`` ``(N, H, W)`` or
    ``(S, N, H, W)``; Nones without them. ``fits`` says what the sizes came from, for the message."""
    if "sensitivity_maps" not in f:
        return None, None, None
    if n_coils is None:
        raise InputError(path, "the file holds 'sensitivity_maps' but 'kspace' has no coil axis (set the attribute coils = N)")
    sds = dataset(f, "sensitivity_maps", path)
    maps_style, logical, maps_fields = classify_complex(sds, "sensitivity_maps", path)
    candidates = [("S", "N", "H", "W"), ("N", "H", "W")] if slice_axis else [("N", "H", "W")]
    maps_dims = match_dims(logical, candidates, {**sizes, "N": n_coils})
    if maps_dims is None:
        expected = " or ".join(dims_str(c, {**sizes, "N": n_coils}) for c in candidates)
        raise InputError(path, f"'sensitivity_maps' has shape {shape_str(logical)}, which does not fit {fits}: expected {expected}")
    return maps_dims, maps_style, maps_fields
