"""Reading and writing a2a k-space files (HDF5), lazily and one slice at a time.

File format
-----------

An a2a file is an HDF5 file with these members (S slices, T frames, H readout
samples, W phase-encode lines; k-space is centred, DC at ``(H // 2, W // 2)``, as
made by :func:`a2a_cli.physics.fft2c`):

=====================  ==========================================  =====================================================
member                 shape                                        content
=====================  ==========================================  =====================================================
``kspace``             ``(T, H, W)`` one slice or ``(S, T, H, W)``  complex k-space; zero where not sampled
``mask`` (optional)    ``(T, W)``, ``(S, T, W)``, ``(T, H, W)``     bool or uint8, values 0/1 only (any integer or float
                       or ``(S, T, H, W)``                          type holding only 0 and 1 is accepted); ``(T, W)``
                                                                    marks phase-encode lines; absent: the non-zero
                                                                    k-space samples of each slice
``reference`` (opt.)   dynamic ``(T, H, W)`` / ``(S, T, H, W)``,    complex (or real) ground-truth images, used only to
                       static ``(H, W)`` / ``(S, H, W)``            report quality
attr ``acquisition``   string                                       ``dynamic`` (default for 4D ``kspace``) or
                                                                    ``sequential`` (a static object sampled by a time
                                                                    series of masks)
``kspace``,            ``(T, N, H, W)`` one slice or                N receive coils: the coil axis sits just before
multi-coil             ``(S, T, N, H, W)``                          ``(H, W)``; only with the attribute ``coils``
attr ``coils``         integer N >= 1                               marks the coil axis (required with one); N = 1 is
                                                                    read as single-coil data
``sensitivity_maps``   ``(N, H, W)`` or ``(S, N, H, W)``            complex coil maps, used as given; absent: estimated
(optional)                                                          per slice (:mod:`a2a_cli.coils`)
=====================  ==========================================  =====================================================

**Multi-coil files.** The attribute ``coils`` alone decides whether ``kspace`` has
a coil axis: a 4D ``(T, N, H, W)`` slice and a 4D ``(S, T, H, W)`` stack have the
same rank, so shape cannot tell them apart. A 5D ``kspace`` without ``coils`` is
an error, as is ``coils`` that does not match the axis before ``(H, W)``. The
``mask`` and ``reference`` keep their single-coil shapes: one mask shared by all
coils, a coil-combined reference. ``sensitivity_maps`` in a file without ``coils``
is an error. The simulator stores its true maps as ``true_sensitivity_maps``, which
readers ignore, so that simulated files exercise the estimation like scanner files.

Complex data (``kspace``, ``reference``, ``sensitivity_maps``) may be stored as

* a complex type (h5py writes complex64 as a compound of ``r``/``i``);
* a compound type with float fields ``real``/``imag``, ``r``/``i`` or ``re``/``im``
  (MATLAB v7.3 writes ``real``/``imag``);
* a float array with a trailing axis of 2 (real, imaginary): ``(T, H, W, 2)`` or
  ``(S, T, H, W, 2)``.

Samples outside a stored mask are ignored (set to zero when read).

fastMRI-style static files
--------------------------

==================  ======================================  ============================================
member              shape                                   content
==================  ======================================  ============================================
``kspace``          ``(S, H, W)``                           complex single-coil k-space of S slices
``mask`` (opt.)     ``(W,)``, ``(H, W)`` or ``(S, H, W)``   0/1; absent: the non-zero samples
``reference`` (o.)  ``(S, H, W)``                           ground truth, for quality only
==================  ======================================  ============================================

They are read in ``sequential`` mode. Without the ``frames`` option every slice is a
single frame (``T = 1``, all its samples; trained with k-space splitting, SSDU). With it
the sampled lines of each slice are dealt out to T frames by :class:`SplitOptions`, and
frame t is the full k-space times mask t.

**Telling the two 3D layouts apart.** A 3D ``kspace`` is a single a2a slice
``(T, H, W)`` only when the file attribute ``acquisition`` is ``dynamic`` or
``sequential``. Otherwise (no attribute, ``static``, or a fastMRI protocol name such
as ``CORPD_FBK``) it is a fastMRI-style ``(S, H, W)`` stack, split into frames by
``split`` (the frames option) or read as single frames without it. ``split`` is ignored for a2a files, whose frames are in the file. A 4D
``kspace`` without the attribute is a dynamic a2a file.

Masks of shape ``(S, T, W)`` and ``(T, H, W)`` coincide when ``S == T == H``; the
per-slice line mask ``(S, T, W)`` is then assumed.

**Limits.** A header may declare far more data than the file holds (HDF5 does not
store unwritten chunks), so declared sizes are checked before anything is read: at
most 100 000 slices (environment variable ``A2A_MAX_SLICES``) and 2^28 complex
samples per slice, T x H x W x coils (``A2A_MAX_SLICE_SAMPLES``). Every reading
failure inside the HDF5 library (a damaged or truncated file) is an :class:`InputError`.

**Other layouts.** CMRxRecon ``.mat`` files, ISMRMRD raw data and multi-coil fastMRI
files (``kspace`` ``(slices, coils, H, W)`` with an ``ismrmrd_header`` dataset or a
protocol name as ``acquisition``) are recognised from their contents and read by
:mod:`a2a_cli.formats`, which returns the same :class:`FileInfo` and :class:`Sample`.

Tensor layouts returned (see :mod:`a2a_cli.physics`): k-space and images
``(B, 2, T, H, W)`` float32 (channel 0 real, 1 imaginary), masks ``(B, 1, T, H, W)``;
multi-coil k-space ``(B, 2, T, N, H, W)`` with coil maps complex64 ``(B, N, H, W)``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import math
import os
import sys
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal, Mapping, Sequence

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from . import __version__
from .atomic import OutputExistsError, atomic_write, check_output
from .errors import A2AError, InputError
from .headers import _DEFAULT_MAX_SLICE_SAMPLES, _DEFAULT_MAX_SLICES, MAX_SLICE_SAMPLES_ENV, MAX_SLICES_ENV, _limit, header_int

__all__ = [
    "SplitOptions",
    "FileInfo",
    "Sample",
    "OutputExistsError",
    "centre_line_indices",
    "split_lines",
    "inspect_file",
    "with_sensitivity",
    "read_slice",
    "read_mask",
    "mask_is_lines",
    "KspaceDataset",
    "ShapeBatchSampler",
    "atomic_write",
    "ReconstructionWriter",
    "write_a2a_file",
]

PathLike = str | os.PathLike

# A stored mask up to this many elements is checked for non-0/1 values when the
# file is inspected, so a bad mask is reported before training; larger masks are
# checked slice by slice as they are read.
_MASK_CHECK_LIMIT = 1 << 22

_COMPLEX_FIELD_NAMES = (("real", "imag"), ("r", "i"), ("re", "im"))
_COMPRESSION = {"compression": "gzip", "compression_opts": 4, "shuffle": True}


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
# inspecting files
# ----------------------------------------------------------------------------------
@dataclass
class FileInfo:
    """What :func:`inspect_file` learnt from a file's header.

    ``frames`` is T after splitting for fastMRI-style files. ``coils`` is N for
    multi-coil k-space (None for one coil); ``sensitivity`` says where the coil maps
    come from: ``"stored"`` (the file's ``sensitivity_maps``), ``"espirit"`` (estimated;
    a slice whose calibration region is too small falls back to ``"lowres"``, see
    :func:`a2a_cli.coils.estimate_maps`), ``"lowres"``, or None (one coil). The
    underscored fields record how the datasets are stored, for the readers.
    """

    path: Path
    layout: Literal["a2a", "fastmri"]
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

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """``(T, H, W)`` of every slice."""
        return (self.frames, self.height, self.width)


def describe_layout(info: FileInfo) -> str:
    """One line saying how a file was read: slices, frames, coils, H, W and where each came from.

    >>> info = FileInfo(path=Path("scan.h5"), layout="a2a", mode="dynamic", n_slices=2, frames=16, height=64,
    ...                 width=48, has_reference=False, mask_source="stored", mode_source="attribute acquisition",
    ...                 stored_shape=(2, 16, 64, 48))
    >>> describe_layout(info)
    "scan.h5: read as 2 slices (kspace axis 0) x 16 frames (axis 1) x 1 coil (no 'coils' attribute) x H 64 (readout) x W 48 (phase encode); dynamic (attribute acquisition); mask stored"
    """
    fmt = getattr(info, "source_format", "") or ""
    coils = info.coils or 1
    if fmt:
        where = f"from the {fmt} file's layout"
        parts = [f"{info.n_slices} slice(s)", f"{info.frames} frame(s)", f"{coils} coil(s)"]
        text = f"read as {fmt}: " + " x ".join(parts) + f" ({where})"
    else:
        coil_axis = info._kspace_coil_axis
        def n(count: int, word: str) -> str:
            return f"{count} {word}{'' if count == 1 else 's'}"

        if info.layout == "fastmri":
            slices = f"{n(info.n_slices, 'slice')} (kspace axis 0)"
            frames = f"{info.frames} frames (the frames option: lines split into frames)"
        elif info._kspace_slice_axis:
            slices = f"{n(info.n_slices, 'slice')} (kspace axis 0)"
            frames = f"{n(info.frames, 'frame')} (axis 1)"
        else:
            slices = "1 slice (no slice axis)"
            frames = f"{n(info.frames, 'frame')} (axis 0)"
        if coil_axis:
            coil_text = f"{n(info.coils or 1, 'coil')} (attribute coils)"
        else:
            coil_text = "1 coil (no 'coils' attribute)"
        text = f"read as {slices} x {frames} x {coil_text}"
    text += f" x H {info.height} (readout) x W {info.width} (phase encode); {info.mode}"
    if info.mode_source:
        text += f" ({info.mode_source})"
    text += f"; mask {info.mask_source}"
    if coils > 1 and info.sensitivity:
        text += f"; coil maps {info.sensitivity}"
    return f"{info.path.name}: {text}"


def layout_warning(info: FileInfo, mask: np.ndarray | None = None) -> str | None:
    """A warning when the file's shape can be read in more than one way, else None.

    A 4D ``kspace`` without the ``coils`` attribute is read as ``(slices, frames, H, W)``,
    but could be one slice of multi-coil k-space ``(frames, coils, H, W)``. Receive coils
    share one sampling pattern: given a slice's ``mask`` ``(T, ...)``, frames that sample
    differently settle the question and no warning is given.
    """
    shape = info.stored_shape
    if getattr(info, "source_format", "") or info.layout != "a2a" or info._kspace_coil_axis or len(shape) != 4:
        return None
    if mask is not None and mask.shape[0] > 1 and not (mask == mask[:1]).all():
        return None
    return (
        f"{info.path}: 'kspace' {_shape_str(shape)} has no 'coils' attribute, so it is read as {shape[0]} slices x "
        f"{shape[1]} frames; if it is one slice of multi-coil k-space (frames x {shape[1]} coils), set the file "
        f"attribute coils = {shape[1]} (and check that the slices and frames above are right)"
    )


@dataclass
class Sample:
    """One slice, as tensors.

    ``kspace`` float32 ``(1, 2, T, H, W)`` (``(1, 2, T, N, H, W)`` with N coils);
    ``mask`` float32 ``(1, 1, T, H, W)`` (shared by the coils); ``reference`` float32
    ``(1, 2, T, H, W)`` (dynamic) or ``(1, 2, H, W)`` (static) or None, coil-combined;
    ``coil_maps`` complex64 ``(1, N, H, W)`` or None (one coil); ``sensitivity`` how
    the maps were obtained (``"stored"``, ``"espirit"``, ``"lowres"``; None: one coil).
    """

    kspace: torch.Tensor
    mask: torch.Tensor
    reference: torch.Tensor | None
    file: str
    slice_index: int
    coil_maps: torch.Tensor | None = None
    sensitivity: str | None = None


def _shape_str(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def _dims_str(dims: tuple[str, ...], sizes: Mapping[str, int]) -> str:
    return f"({', '.join(dims)}) = {_shape_str([sizes[d] for d in dims])}"


def _match_dims(shape: Sequence[int], candidates: Sequence[tuple[str, ...]], sizes: Mapping[str, int]) -> tuple[str, ...] | None:
    for dims in candidates:
        if len(dims) == len(shape) and all(sizes[d] == s for d, s in zip(dims, shape)):
            return dims
    return None


def _attr_str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        if value.size != 1:
            return str(value.tolist())
        value = value.reshape(()).item()
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).strip()


def _open(path: Path) -> h5py.File:
    """Open for reading; every failure becomes an :class:`InputError`."""
    if not path.exists():
        if os.path.islink(path):
            raise InputError(path, "is a broken symbolic link, or a loop of links")
        raise InputError(path, "file not found")
    if path.is_dir():
        raise InputError(path, "is a directory, not an HDF5 file")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        msg = str(e)
        if isinstance(e, PermissionError) or "ermission denied" in msg:
            problem = "cannot be opened: permission denied"
        elif "truncated" in msg:
            problem = f"the HDF5 file is truncated (an interrupted copy or download?): {msg}"
        elif "signature" in msg:
            problem = "not an HDF5 file (no HDF5 signature found)"
        else:
            problem = f"cannot be opened as HDF5 (damaged file?): {msg}"
        raise InputError(path, problem) from None


def _check_declared_size(info: "FileInfo") -> "FileInfo":
    """Refuse headers that declare more than we will allocate (see the limits above)."""
    max_slices = _limit(MAX_SLICES_ENV, _DEFAULT_MAX_SLICES)
    if info.n_slices > max_slices:
        raise InputError(
            info.path,
            f"declares {info.n_slices} slices, more than the limit of {max_slices} (a damaged header?); "
            f"set {MAX_SLICES_ENV} to raise the limit",
        )
    coils = max(1, int(getattr(info, "coils", 1) or 1))
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


@contextlib.contextmanager
def _damage_as_input_error(path: Path) -> Iterator[None]:
    """Report HDF5 library failures inside a file (damaged or truncated) as an :class:`InputError`."""
    try:
        yield
    except A2AError:
        raise
    except (OSError, KeyError, RuntimeError) as e:
        # h5py signals a damaged object header, B-tree or chunk with these
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise InputError(path, f"cannot be read (damaged or truncated HDF5 file?): {first}") from None


def _dataset(f: h5py.File, name: str, path: Path) -> h5py.Dataset:
    obj = f[name]
    if isinstance(obj, h5py.Group):
        raise InputError(path, f"'{name}' is a group, not a dataset")
    if not isinstance(obj, h5py.Dataset):
        raise InputError(path, f"'{name}' is a {type(obj).__name__}, not a dataset")
    if obj.shape is None:
        raise InputError(path, f"dataset '{name}' is empty (it has no dataspace)")
    if h5py.check_string_dtype(obj.dtype) is not None or obj.dtype.kind in "SU":
        raise InputError(path, f"dataset '{name}' holds text (strings), not numbers")
    if obj.dtype.kind == "O" or h5py.check_vlen_dtype(obj.dtype) is not None:
        raise InputError(path, f"dataset '{name}' holds variable-length or object data ({obj.dtype}), not an array of numbers")
    return obj


def _complex_fields(dtype: np.dtype) -> tuple[str, str] | None:
    names = {n.lower(): n for n in dtype.names or ()}
    for re_name, im_name in _COMPLEX_FIELD_NAMES:
        if re_name in names and im_name in names and len(names) == 2:
            pair = (names[re_name], names[im_name])
            if all(dtype.fields[n][0].kind == "f" for n in pair):
                return pair
    return None


_COMPLEX_HELP = (
    "store complex numbers as a complex type, a compound type with fields real/imag (or r/i), "
    "or a float array with a trailing axis of 2"
)


def _classify_complex(ds: h5py.Dataset, name: str, path: Path) -> tuple[str, tuple[int, ...], tuple[str, str] | None]:
    """``(style, logical shape, compound field names)`` of a complex dataset."""
    dt, shape = ds.dtype, tuple(ds.shape)
    if dt.names:
        fields = _complex_fields(dt)
        if fields is None:
            raise InputError(path, f"dataset '{name}' has a compound type with fields {list(dt.names)}, not complex numbers; {_COMPLEX_HELP}")
        return "compound", shape, fields
    if dt.kind == "c":
        return "complex", shape, None
    if dt.kind == "f":
        if len(shape) >= 1 and shape[-1] == 2:
            return "float2", shape[:-1], None
        raise InputError(path, f"dataset '{name}' is real-valued ({dt}, shape {_shape_str(shape)}) but must be complex; {_COMPLEX_HELP}")
    if dt.kind in "iub":
        raise InputError(path, f"dataset '{name}' holds integers ({dt}): real-valued, but it must be complex; {_COMPLEX_HELP}")
    raise InputError(path, f"dataset '{name}' has the unsupported data type {dt}; {_COMPLEX_HELP}")


def _check_binary(values: np.ndarray, path: Path, what: str) -> None:
    if values.dtype == bool:
        return
    bad = (values != 0) & (values != 1)
    if bad.any():
        examples = np.unique(values[bad])[:5].tolist()
        raise InputError(path, f"{what} contains values other than 0 and 1 (e.g. {', '.join(map(str, examples))}); a mask must hold only 0/1")


def _check_finite(z: np.ndarray, path: Path, what: str) -> None:
    if not np.isfinite(z).all():
        n_nan = int(np.count_nonzero(np.isnan(z)))
        n_inf = int(np.count_nonzero(np.isinf(z)))
        raise InputError(path, f"{what} contains {n_nan} NaN and {n_inf} Inf (infinite) values; remove or zero them first")


def inspect_file(
    path: PathLike, split: SplitOptions | None = None, mask_file: PathLike | None = None,
    sensitivity: SensitivityChoice = "auto",
) -> FileInfo:
    """Validate a file from its header (and small mask) without reading its k-space.

    Raises :class:`InputError` naming the file and the problem. ``split`` is needed
    for fastMRI-style static files (see the module docstring) and ignored otherwise.
    CMRxRecon, ISMRMRD and multi-coil fastMRI files are read by
    :mod:`a2a_cli.formats`; ``mask_file`` is a separate (CMRxRecon) mask file.
    ``sensitivity`` chooses the coil maps of multi-coil files (see :func:`with_sensitivity`).
    """
    path = Path(path)
    with _open(path) as f:
        return with_sensitivity(_inspect(f, path, split, mask_file), sensitivity)


SensitivityChoice = Literal["auto", "stored", "espirit", "lowres"]


def with_sensitivity(info: FileInfo, choice: SensitivityChoice | None) -> FileInfo:
    """``info`` with its coil maps taken as ``choice`` says (single-coil files are returned as they are).

    ``"auto"`` (or None): the file's ``sensitivity_maps`` when it has them, else ESPIRiT
    (falling back to low-resolution maps for a slice whose calibration region is too
    small); ``"stored"``: the file's maps, an :class:`InputError` if it has none;
    ``"espirit"``/``"lowres"``: estimated even if the file stores maps.
    """
    if choice in (None, "auto") or not getattr(info, "coils", None):
        return info
    if choice == "stored":
        if info._maps_dims is None:
            raise InputError(info.path, "stored coil sensitivities were asked for, but the file has no 'sensitivity_maps'")
        return dataclasses.replace(info, sensitivity="stored")
    if choice not in ("espirit", "lowres"):
        raise A2AError(f"sensitivity must be auto, stored, espirit or lowres, got {choice!r}")
    return dataclasses.replace(info, sensitivity=choice)


def _inspect(f: h5py.File, path: Path, split: SplitOptions | None, mask_file: PathLike | None = None) -> FileInfo:
    """:func:`inspect_file` on an open file: damage and oversized headers become :class:`InputError`."""
    with _damage_as_input_error(path):
        try:
            return _check_declared_size(_inspect_header(f, path, split, mask_file))
        except MemoryError:  # a size no check above foresaw: still the file's fault, not the machine's
            raise InputError(path, "its header declares more data than fits in memory (a damaged header?)") from None


def _inspect_header(f: h5py.File, path: Path, split: SplitOptions | None, mask_file: PathLike | None = None) -> FileInfo:
    from . import formats  # imported here: formats builds on this module

    if "trajectory" in f:  # non-Cartesian: never read as Cartesian k-space
        from . import radial

        if mask_file is not None:
            raise InputError(path, "a separate mask file (--mask) is used only for CMRxRecon files; a radial file carries its trajectory")
        return radial.inspect(f, path)
    kind = formats.importer_for(f)
    if kind is not None:
        return formats.inspect(f, path, split, mask_file, kind)
    if mask_file is not None:
        raise InputError(path, "a separate mask file (--mask) is used only for CMRxRecon files; this file carries its own mask")
    if "kspace" not in f:
        held = ", ".join(sorted(f.keys())) or "nothing"
        raise InputError(path, f"no dataset 'kspace' (the file holds: {held})")
    ds = _dataset(f, "kspace", path)
    style, shape, fields = _classify_complex(ds, "kspace", path)
    ds_shape = shape
    # the attribute `coils` alone says whether kspace has a coil axis (before H, W):
    # a 4D (T, N, H, W) slice and a 4D (S, T, H, W) stack cannot be told apart by shape
    n_coils = _coil_attr(f, path)
    if n_coils is not None:
        if len(shape) not in (4, 5) or 0 in shape:
            raise InputError(
                path,
                f"the attribute coils={n_coils} says 'kspace' has a coil axis, so it must be 4D (T, N, H, W) or "
                f"5D (S, T, N, H, W); it has shape {_shape_str(shape)}",
            )
        if shape[-3] != n_coils:
            raise InputError(path, f"the attribute coils={n_coils} does not match the coil axis of 'kspace' {_shape_str(shape)} (size {shape[-3]} before H, W)")
        acq_attr = (_attr_str(f.attrs.get("acquisition")) or "").lower()
        if acq_attr not in ("", "dynamic", "sequential"):
            raise InputError(path, f"a2a multi-coil k-space must be 'dynamic' or 'sequential', not acquisition={acq_attr!r}")
        shape = shape[:-3] + shape[-2:]
    elif len(shape) == 5:
        raise InputError(
            path,
            f"'kspace' has 5 dimensions (shape {_shape_str(shape)}): multi-coil k-space (S, T, N, H, W) needs the file attribute "
            f"coils = N (the size of the coil axis)",
        )
    if len(shape) not in (3, 4):
        raise InputError(
            path,
            f"'kspace' has {len(shape)} dimensions (shape {_shape_str(shape)}); expected 3 (T, H, W) "
            f"or 4 (S, T, H, W), or 3 (slices, H, W) for a static fastMRI-style file",
        )
    if 0 in shape:
        raise InputError(path, f"'kspace' has a zero-size dimension (shape {_shape_str(shape)})")

    acq_raw = _attr_str(f.attrs.get("acquisition"))
    acq = acq_raw.lower() if acq_raw is not None else None
    mode_source = "attribute acquisition"
    if acq in ("dynamic", "sequential"):
        layout, mode = "a2a", acq
    elif n_coils is not None:  # a coil axis: an a2a file, dynamic unless it says otherwise
        layout, mode = "a2a", "dynamic"
        mode_source = "default: no 'acquisition' attribute"
    elif len(shape) == 4:
        if acq is not None and acq != "":
            kind = "static" if acq == "static" else f"unknown ({acq_raw!r})"
            raise InputError(
                path,
                f"acquisition is {kind} but 'kspace' is 4D {_shape_str(shape)}; a 4D file must be "
                f"'dynamic' or 'sequential' (S, T, H, W); multi-coil static k-space (slices, coils, H, W) is read "
                f"only as a fastMRI file, which has an 'ismrmrd_header' dataset or a protocol name as acquisition",
            )
        layout, mode = "a2a", "dynamic"
        mode_source = "default: no 'acquisition' attribute"
    else:
        # a static stack: without the frames option each slice is one frame (k-space splitting
        # trains on it); with it, its lines are dealt out to frames for temporal splitting
        split = split or SINGLE_FRAME
        layout, mode = "fastmri", "sequential"
        mode_source = "static file split into frames"

    if layout == "fastmri":
        s, h, w = shape
        t = split.frames  # type: ignore[union-attr]
        slice_axis = True
    elif len(shape) == 4:
        s, t, h, w = shape
        slice_axis = True
    else:
        s, (t, h, w) = 1, shape
        slice_axis = False
    sizes = {"S": s, "T": t, "H": h, "W": w}

    mask_dims = None
    if "mask" in f:
        mds = _dataset(f, "mask", path)
        if mds.dtype.kind not in "biuf" or mds.dtype.names:
            raise InputError(path, f"'mask' has data type {mds.dtype}; expected bool or uint8 holding 0/1")
        if layout == "fastmri":
            candidates = [("W",), ("H", "W"), ("S", "H", "W")]
        elif slice_axis:
            candidates = [("T", "W"), ("S", "T", "W"), ("T", "H", "W"), ("S", "T", "H", "W")]
        else:
            candidates = [("T", "W"), ("T", "H", "W")]
        mask_dims = _match_dims(mds.shape, candidates, sizes)
        if mask_dims is None:
            expected = " or ".join(_dims_str(c, sizes) for c in candidates)
            raise InputError(path, f"'mask' has shape {_shape_str(mds.shape)}, which does not fit 'kspace' {_shape_str(shape)}: expected {expected}")
        if mds.size <= _MASK_CHECK_LIMIT:
            _check_binary(mds[()], path, "'mask'")
    mask_source = "split" if layout == "fastmri" else ("stored" if mask_dims else "derived")

    ref_dims = ref_style = ref_fields = None
    if "reference" in f:
        rds = _dataset(f, "reference", path)
        if layout == "fastmri":
            candidates = [("S", "H", "W")]
        elif slice_axis:
            candidates = [("S", "T", "H", "W"), ("S", "H", "W")]
        else:
            candidates = [("T", "H", "W"), ("H", "W")]
        rshape = tuple(rds.shape)
        if rds.dtype.kind in "fiu" and not rds.dtype.names:
            # float (..., 2): real/imaginary parts; otherwise a real-valued (magnitude) image
            if rds.dtype.kind == "f" and rshape and rshape[-1] == 2 and _match_dims(rshape[:-1], candidates, sizes):
                ref_style, ref_dims = "float2", _match_dims(rshape[:-1], candidates, sizes)
            else:
                ref_style, ref_dims = "real", _match_dims(rshape, candidates, sizes)
        else:
            ref_style, logical, ref_fields = _classify_complex(rds, "reference", path)
            ref_dims = _match_dims(logical, candidates, sizes)
        if ref_dims is None:
            expected = " or ".join(_dims_str(c, sizes) for c in candidates)
            raise InputError(path, f"'reference' has shape {_shape_str(rshape)}, which does not fit 'kspace' {_shape_str(shape)}: expected {expected}")

    maps_dims = maps_style = maps_fields = None
    if "sensitivity_maps" in f:
        if n_coils is None:
            raise InputError(path, "the file holds 'sensitivity_maps' but 'kspace' has no coil axis (set the attribute coils = N)")
        sds = _dataset(f, "sensitivity_maps", path)
        maps_style, logical, maps_fields = _classify_complex(sds, "sensitivity_maps", path)
        candidates = [("S", "N", "H", "W"), ("N", "H", "W")] if slice_axis else [("N", "H", "W")]
        maps_dims = _match_dims(logical, candidates, {**sizes, "N": n_coils})
        if maps_dims is None:
            expected = " or ".join(_dims_str(c, {**sizes, "N": n_coils}) for c in candidates)
            raise InputError(path, f"'sensitivity_maps' has shape {_shape_str(logical)}, which does not fit 'kspace': expected {expected}")

    # a coil axis of size 1 is plain single-coil data (its maps, if any, are not needed)
    multi = n_coils is not None and n_coils > 1
    return FileInfo(
        path=path, layout=layout, mode=mode, n_slices=int(s), frames=int(t), height=int(h), width=int(w),
        has_reference=ref_dims is not None, mask_source=mask_source, complex_style=style,  # type: ignore[arg-type]
        reference_static=ref_dims is not None and "T" not in ref_dims,
        coils=n_coils if multi else None,
        sensitivity=("stored" if maps_dims else "espirit") if multi else None,
        _kspace_fields=fields, _kspace_slice_axis=slice_axis, _mask_dims=mask_dims,
        _reference_dims=ref_dims, _reference_style=ref_style, _reference_fields=ref_fields,
        _kspace_coil_axis=n_coils is not None, _maps_dims=maps_dims if multi else None,
        _maps_style=maps_style, _maps_fields=maps_fields,
        mode_source=mode_source, stored_shape=tuple(int(v) for v in ds_shape),
    )


def _coil_attr(f: h5py.File, path: Path) -> int | None:
    """The file attribute ``coils`` (N, the size of the coil axis of ``kspace``), or None when absent."""
    raw = f.attrs.get("coils")
    if raw is None:
        return None

    # text is not a count, even "4"
    return header_int(raw, path, "the attribute coils (the size of the coil axis of 'kspace', a positive integer)", text_ok=False)


# ----------------------------------------------------------------------------------
# reading slices
# ----------------------------------------------------------------------------------
def _read_complex(ds: h5py.Dataset, style: str, fields: tuple[str, str] | None, sel: Any) -> np.ndarray:
    raw = np.asarray(ds[sel])
    if style == "complex":
        return raw.astype(np.complex64, copy=False)
    if style == "real":
        return raw.astype(np.complex64)
    if style == "compound":
        out = np.empty(raw.shape, np.complex64)
        out.real, out.imag = raw[fields[0]], raw[fields[1]]  # type: ignore[index]
        return out
    out = np.empty(raw.shape[:-1], np.complex64)  # float2
    out.real, out.imag = raw[..., 0], raw[..., 1]
    return out


def _check_index(info: FileInfo, index: int) -> int:
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < info.n_slices:
        raise InputError(info.path, f"slice {index} does not exist (the file has {info.n_slices} slice{'s' * (info.n_slices != 1)})")
    return int(index)


def _read_kspace(f: h5py.File, info: FileInfo, index: int) -> np.ndarray:
    """complex64 ``(T, H, W)`` (a2a; ``(T, N, H, W)`` multi-coil) or ``(H, W)`` (fastMRI) of one slice, checked finite."""
    sel = index if info._kspace_slice_axis else ()
    try:
        k = _read_complex(f["kspace"], info.complex_style, info._kspace_fields, sel)
    except OSError as e:
        raise InputError(info.path, f"slice {index}: cannot read 'kspace' (damaged file?): {e}") from None
    _check_finite(k, info.path, f"slice {index}: 'kspace'")
    if info._kspace_coil_axis and not getattr(info, "coils", None):
        k = k[:, 0]  # a coil axis of size 1: single-coil data
    return k


def _read_slice_of(f, name: str, info: "FileInfo", index: int, dims, style, fields) -> np.ndarray:
    """One slice of an optional complex dataset (``reference``, ``sensitivity_maps``), checked finite."""
    try:
        a = _read_complex(f[name], style, fields, index if dims[0] == "S" else ())  # type: ignore[arg-type]
    except OSError as e:
        raise InputError(info.path, f"slice {index}: cannot read {name!r} (damaged file?): {e}") from None
    _check_finite(a, info.path, f"slice {index}: {name!r}")
    return a


def _read_maps(f: h5py.File, info: FileInfo, index: int, kspace: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, str]:
    """Coil maps complex64 ``(1, N, H, W)`` of one slice and how they were obtained.

    Stored maps are used as given when ``info.sensitivity`` is ``"stored"``; otherwise
    they are estimated from the slice's masked k-space ``(T, N, H, W)`` and mask ``(T, H, W)``.
    """
    if info.sensitivity == "stored":
        s = _read_slice_of(f, "sensitivity_maps", info, index, info._maps_dims, info._maps_style, info._maps_fields)
        return torch.from_numpy(np.ascontiguousarray(s))[None], "stored"
    from .coils import estimate_maps  # torch-heavy; only multi-coil files need it

    maps, used = estimate_maps(torch.from_numpy(kspace), torch.from_numpy(mask), method=info.sensitivity or "espirit")
    return maps[None], used


def _slice_mask(f: h5py.File, info: FileInfo, index: int, split: SplitOptions | None, kspace: np.ndarray | None) -> np.ndarray:
    """bool ``(T, H, W)`` mask of one slice; ``kspace`` (from :func:`_read_kspace`) is used when the mask is derived."""
    t, h, w = info.frame_shape
    if info._mask_dims is not None:
        dims = info._mask_dims
        try:
            raw = np.asarray(f["mask"][index] if dims[0] == "S" else f["mask"][()])
        except OSError as e:
            raise InputError(info.path, f"slice {index}: cannot read 'mask' (damaged file?): {e}") from None
        dims = dims[1:] if dims[0] == "S" else dims
        _check_binary(raw, info.path, f"slice {index}: 'mask'")
        target = ("T", "H", "W") if info.layout == "a2a" else ("H", "W")
        sizes = {"T": t, "H": h, "W": w}
        m = np.broadcast_to(raw.astype(bool).reshape([sizes[d] if d in dims else 1 for d in target]), [sizes[d] for d in target])
    else:
        if kspace is None:
            kspace = _read_kspace(f, info, index)
        m = kspace != 0
        if m.ndim == 4:  # (T, N, H, W): a location is sampled when any coil holds a value
            m = m.any(axis=1)
    if info.layout == "fastmri":
        frames = split_lines(m.any(axis=0), split or SINGLE_FRAME, index)
        m = m[None, :, :] & frames[:, None, :]
    return np.ascontiguousarray(m, dtype=bool)


def _to_tensor(z: np.ndarray) -> torch.Tensor:
    """complex ``(...)`` -> float32 ``(1, 2, ...)``."""
    return torch.from_numpy(np.stack((z.real, z.imag)).astype(np.float32, copy=False)).unsqueeze(0)


def _read(
    f: h5py.File, info: FileInfo, index: int, split: SplitOptions | None,
    allow_empty_frames: bool = False, with_reference: bool = True,
    known_maps: tuple[torch.Tensor, str] | None = None,
) -> Sample:
    """One slice as a :class:`Sample`; a damaged file becomes an :class:`InputError`.

    ``known_maps``: ``(coil maps (1, N, H, W), method)`` of this slice from an earlier
    read, so that multi-coil maps are not estimated again.
    """
    with _damage_as_input_error(info.path):
        return _read_sample(f, info, index, split, allow_empty_frames, with_reference, known_maps)


def _read_sample(
    f: h5py.File, info: FileInfo, index: int, split: SplitOptions | None,
    allow_empty_frames: bool = False, with_reference: bool = True,
    known_maps: tuple[torch.Tensor, str] | None = None,
) -> Sample:
    if getattr(info, "source_format", None):
        from .formats import read_sample

        return read_sample(f, info, index, split, allow_empty_frames, with_reference, known_maps)  # type: ignore[arg-type]
    index = _check_index(info, index)
    k = _read_kspace(f, info, index)
    m = _slice_mask(f, info, index, split, k)
    # samples outside the mask are not part of the measurement model y = M F x
    multi = k.ndim == 4  # (T, N, H, W): the mask is shared by the coils
    k = np.where(m[:, None] if multi else m, k if info.layout == "a2a" else k[None], np.complex64(0))
    maps, sensitivity = None, None
    if multi:
        maps, sensitivity = known_maps if known_maps is not None else _read_maps(f, info, index, k, m)
    if not allow_empty_frames:
        empty = np.flatnonzero(~m.reshape(m.shape[0], -1).any(axis=1))
        if empty.size:
            listed = ", ".join(map(str, empty[:10].tolist())) + (", ..." if empty.size > 10 else "")
            raise InputError(info.path, f"slice {index}: frame(s) {listed} have no k-space samples ({empty.size} of {m.shape[0]} frames empty)")
    ref = None
    if with_reference and info.has_reference:
        r = _read_slice_of(f, "reference", info, index, info._reference_dims, info._reference_style, info._reference_fields)
        ref = _to_tensor(r)
    return Sample(
        kspace=_to_tensor(k),
        mask=torch.from_numpy(m.astype(np.float32))[None, None],
        reference=ref,
        file=str(info.path),
        slice_index=index,
        coil_maps=maps,
        sensitivity=sensitivity,
    )


def read_slice(
    path: PathLike, index: int, split: SplitOptions | None = None, info: FileInfo | None = None,
    allow_empty_frames: bool = False, mask_file: PathLike | None = None,
    sensitivity: SensitivityChoice | None = None,
) -> Sample:
    """Read slice ``index`` of a file (only that slice is read from disk).

    Raises :class:`InputError` for NaN/Inf samples, a mask with values other than
    0/1, and frames without samples (unless ``allow_empty_frames``). Multi-coil files
    give ``coil_maps`` as ``sensitivity`` says (None: as ``info`` says, else ``"auto"``;
    see :func:`with_sensitivity`).
    """
    path = Path(path)
    with _open(path) as f:
        info = info if info is not None else _inspect(f, path, split, mask_file)
        return _read(f, with_sensitivity(info, sensitivity), index, split, allow_empty_frames=allow_empty_frames)


def read_mask(path: PathLike, split: SplitOptions | None = None, slice_index: int = 0, mask_file: PathLike | None = None) -> np.ndarray:
    """The sampling mask of one slice, bool ``(T, H, W)`` (stored, derived or split).

    Empty frames are allowed here (this is for looking at masks).
    """
    path = Path(path)
    with _open(path) as f, _damage_as_input_error(path):
        info = _inspect(f, path, split, mask_file)
        if getattr(info, "source_format", None):
            from . import formats

            return formats.read_mask(f, info, slice_index, split)  # type: ignore[arg-type]
        index = _check_index(info, slice_index)
        return _slice_mask(f, info, index, split, None)


def mask_is_lines(mask: np.ndarray) -> bool:
    """True if every phase-encode column of a ``(..., H, W)`` mask is fully sampled or empty.

    >>> m = np.zeros((2, 4, 6), bool); m[:, :, [1, 3]] = True
    >>> mask_is_lines(m)
    True
    >>> m[0, 0, 0] = True
    >>> mask_is_lines(m)
    False
    """
    mask = np.asarray(mask, dtype=bool)
    return bool(np.array_equal(mask.any(axis=-2), mask.all(axis=-2)))


# ----------------------------------------------------------------------------------
# dataset and sampler
# ----------------------------------------------------------------------------------
class KspaceDataset(Dataset):
    """All (file, slice) pairs of several files, read lazily one slice per item.

    Every file is validated with :func:`inspect_file` here, so a bad file is reported
    before training starts. ``mode`` is the files' common acquisition mode (None if
    they differ; each file's own is in ``infos``). HDF5 handles are
    opened on first use in each process (DataLoader workers get their own) and at
    most ``max_open_files`` stay open at a time.

    ``dataset[i]`` is ``{"kspace": (2, T, H, W), "mask": (1, T, H, W), "file": str,
    "slice": int}`` (float32 tensors, no batch dim); multi-coil items have k-space
    ``(2, T, N, H, W)`` and ``"coil_maps"`` complex64 ``(N, H, W)`` (chosen by
    ``sensitivity``, see :func:`with_sensitivity`; estimated maps are computed once
    per item and process, then kept). ``items`` lists ``(path, slice)``, ``shapes``
    the ``(T, H, W)`` of each item, ``batch_keys`` what items of one batch must share
    (``(T, H, W, N)``, N = 1 for one coil), ``infos`` the :class:`FileInfo` per file.
    """

    def __init__(
        self, paths: PathLike | Sequence[PathLike], split: SplitOptions | None = None, max_open_files: int = 64,
        mask_file: PathLike | None = None, sensitivity: SensitivityChoice = "auto",
    ):
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise A2AError("no input files given")
        self.split = split
        self.mask_file = mask_file
        self.infos = [inspect_file(p, split, mask_file, sensitivity) for p in self.paths]
        modes = {i.mode for i in self.infos}
        # whether mixed modes are acceptable is the caller's decision (e.g. a forced mode)
        self.mode: str | None = modes.pop() if len(modes) == 1 else None
        self.items: list[tuple[str, int]] = []
        self.shapes: list[tuple[int, int, int]] = []
        self.batch_keys: list[tuple[int, int, int, int]] = []
        self._item_info: list[FileInfo] = []
        for info in self.infos:
            for s in range(info.n_slices):
                self.items.append((str(info.path), s))
                self.shapes.append(info.frame_shape)
                self.batch_keys.append(info.frame_shape + (int(getattr(info, "coils", None) or 1),))
                self._item_info.append(info)
        self._maps: dict[int, tuple[torch.Tensor, str]] = {}
        self.max_open_files = max(1, int(max_open_files))
        self._handles: OrderedDict[str, h5py.File] = OrderedDict()
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.items)

    def _file(self, path: str) -> h5py.File:
        if os.getpid() != self._pid:
            # forked worker: handles inherited from the parent must not be shared
            self._handles = OrderedDict()
            self._pid = os.getpid()
        f = self._handles.get(path)
        if f is None:
            f = _open(Path(path))
            self._handles[path] = f
            while len(self._handles) > self.max_open_files:
                self._handles.popitem(last=False)[1].close()
        else:
            self._handles.move_to_end(path)
        return f

    def __getitem__(self, i: int) -> dict[str, Any]:
        path, s = self.items[i]
        sample = self._read_cached(i, with_reference=False)
        item = {"kspace": sample.kspace[0], "mask": sample.mask[0], "file": path, "slice": s}
        if sample.coil_maps is not None:
            item["coil_maps"] = sample.coil_maps[0]
        return item

    def _read_cached(self, i: int, allow_empty_frames: bool = False, with_reference: bool = True) -> Sample:
        """Read item ``i``, estimating its coil maps only the first time."""
        path, s = self.items[i]
        sample = _read(self._file(path), self._item_info[i], s, self.split, allow_empty_frames=allow_empty_frames,
                       with_reference=with_reference, known_maps=self._maps.get(i))
        if sample.coil_maps is not None:
            self._maps[i] = (sample.coil_maps, getattr(sample, "sensitivity", None) or "estimated")
        return sample

    def read(self, i: int, allow_empty_frames: bool = False) -> Sample:
        """Item ``i`` as a full :class:`Sample` (with the reference, batch dim 1)."""
        return self._read_cached(i, allow_empty_frames=allow_empty_frames)

    def close(self) -> None:
        """Close this process's open files (they reopen on the next access)."""
        handles, self._handles = self._handles, OrderedDict()
        if os.getpid() == self._pid:
            for f in handles.values():
                with contextlib.suppress(Exception):
                    f.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def __getstate__(self) -> dict[str, Any]:
        # h5py handles cannot be pickled (spawned workers): they reopen lazily
        state = self.__dict__.copy()
        state["_handles"] = OrderedDict()
        return state


class ShapeBatchSampler(Sampler[list[int]]):
    """Batches of dataset indices whose items all have the same ``(T, H, W)``.

    Items are grouped by shape, shuffled within groups and cut into batches; the
    batch order is shuffled too. ``set_epoch(e)`` gives a new order per epoch
    (deterministic in ``seed`` and ``e``). With ``num_replicas`` > 1 every rank
    builds the same batch list and takes every ``num_replicas``-th batch, so ranks
    are disjoint and together see every item once per epoch; their batch counts
    then differ by at most one, unless ``drop_last`` (which also drops incomplete
    batches) trims the list, or ``pad`` repeats batches from the start of the
    epoch's order (as :class:`~torch.utils.data.DistributedSampler` does), so that
    every rank gets the same count: distributed training needs that, since every
    step is a collective. ``pad`` makes at most ``num_replicas - 1`` batches a
    second visit per epoch and never leaves a rank without batches.
    ``num_replicas``/``rank`` default to the initialised ``torch.distributed`` group,
    else 1/0. ``dataset`` is anything with ``.shapes``, or a sequence of shapes.
    """

    def __init__(
        self, dataset: Any, batch_size: int, shuffle: bool = True, seed: int = 0, drop_last: bool = False,
        num_replicas: int | None = None, rank: int | None = None, pad: bool = False,
    ):
        # items of one batch must share (T, H, W) and, to be stacked, the coil count
        shapes = getattr(dataset, "batch_keys", None) or (dataset.shapes if hasattr(dataset, "shapes") else dataset)
        if batch_size < 1:
            raise A2AError(f"batch size must be >= 1, got {batch_size}")
        if num_replicas is None or rank is None:
            dist = torch.distributed
            ready = dist.is_available() and dist.is_initialized()
            num_replicas = num_replicas if num_replicas is not None else (dist.get_world_size() if ready else 1)
            rank = rank if rank is not None else (dist.get_rank() if ready else 0)
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise A2AError(f"invalid sharding: rank {rank} of {num_replicas} replicas")
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, shape in enumerate(shapes):
            groups.setdefault(tuple(shape), []).append(i)
        self.groups = list(groups.values())
        self.batch_size, self.shuffle, self.seed, self.drop_last = int(batch_size), shuffle, seed, drop_last
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.pad = bool(pad) and not drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the order of epoch ``epoch`` (call before iterating, as with DistributedSampler)."""
        self.epoch = int(epoch)

    def _n_batches_total(self) -> int:
        b = self.batch_size
        n = sum(len(g) // b if self.drop_last else math.ceil(len(g) / b) for g in self.groups)
        if self.pad:
            return math.ceil(n / self.num_replicas) * self.num_replicas
        return n - n % self.num_replicas if self.drop_last else n

    def _all_batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        batches: list[list[int]] = []
        for group in self.groups:
            order = rng.permutation(group).tolist() if self.shuffle else list(group)
            for start in range(0, len(order), self.batch_size):
                batch = order[start:start + self.batch_size]
                if len(batch) == self.batch_size or not self.drop_last:
                    batches.append(batch)
        if self.shuffle:
            batches = [batches[j] for j in rng.permutation(len(batches))]
        total = self._n_batches_total()
        while self.pad and len(batches) < total:  # a loop: there may be fewer batches than ranks
            batches += batches[: total - len(batches)]
        return batches[:total]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._all_batches()[self.rank::self.num_replicas])

    def __len__(self) -> int:
        return len(range(self.rank, self._n_batches_total(), self.num_replicas))


# ----------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------
def _attr_value(value: Any) -> Any:
    """A value h5py can store as an attribute."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (str, bytes, bool, int, float, np.generic, np.ndarray)):
        return value
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return np.asarray(value)
    return json.dumps(value, default=str)


def _as_complex(array: Any, shape: tuple[int, ...]) -> np.ndarray:
    """complex ``shape`` from a complex array/tensor of that shape or a real ``(2, *shape)``
    (``(1, 2, *shape)``) one, leading singleton dimensions allowed."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    a = np.asarray(array)
    n = int(np.prod(shape))
    if np.iscomplexobj(a):
        if a.size == n and a.shape[a.ndim - len(shape):] == shape:
            return a.reshape(shape).astype(np.complex64, copy=False)
    elif a.size == 2 * n and a.shape[a.ndim - len(shape):] == shape and a.ndim > len(shape) and a.shape[a.ndim - len(shape) - 1] == 2:
        a = a.reshape((2,) + shape)
        out = np.empty(shape, np.complex64)
        out.real, out.imag = a[0], a[1]
        return out
    raise ValueError(f"expected complex {shape} or real (2, *{shape}) data, got {a.dtype} {a.shape}")


class ReconstructionWriter:
    """Write reconstructions slice by slice into a new HDF5 file, atomically.

    Creates ``reconstruction`` complex64 ``(S, T, H, W)`` (``frame_shape`` =
    ``(T, H, W)``, dynamic) or ``(S, H, W)`` (``frame_shape`` = ``(H, W)``,
    sequential), one frame per chunk, gzip compressed; ``extra`` names more datasets
    of the same shape (or maps names to their own frame shapes). File attributes come
    from ``attrs``; ``a2a_version`` and ``created`` (ISO 8601, UTC) are added when
    missing. The file appears under its name only when the ``with`` block ends without
    an exception and every slice of every dataset was written.

    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "recon.h5"
    >>> with ReconstructionWriter(out, n_slices=1, frame_shape=(4, 4), attrs={"mode": "sequential"}) as w:
    ...     w.write(0, np.ones((4, 4), np.complex64))
    >>> with h5py.File(out) as f:
    ...     f["reconstruction"].shape, f.attrs["mode"]
    ((1, 4, 4), 'sequential')
    """

    def __init__(
        self, path: PathLike, n_slices: int, frame_shape: Sequence[int], attrs: Mapping[str, Any] | None = None,
        overwrite: bool = False, extra: Sequence[str] | Mapping[str, Sequence[int]] = (),
    ):
        self.path = Path(path)
        self.n_slices = int(n_slices)
        self.frame_shape = tuple(int(s) for s in frame_shape)
        if self.n_slices < 1 or len(self.frame_shape) not in (2, 3) or min(self.frame_shape) < 1:
            raise ValueError(f"need n_slices >= 1 and a frame shape (T, H, W) or (H, W), got {n_slices}, {frame_shape}")
        self.attrs = dict(attrs or {})
        self.overwrite = overwrite
        self.shapes: dict[str, tuple[int, ...]] = {"reconstruction": self.frame_shape}
        if isinstance(extra, Mapping):
            self.shapes.update({name: tuple(int(s) for s in shape) for name, shape in extra.items()})
        else:
            self.shapes.update({name: self.frame_shape for name in extra})
        check_output(self.path, overwrite)  # fail before any reconstruction work
        self._file: h5py.File | None = None
        self._written: dict[str, set[int]] = {name: set() for name in self.shapes}

    def __enter__(self) -> "ReconstructionWriter":
        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(atomic_write(self.path, self.overwrite))
        try:
            self._file = h5py.File(tmp, "w")
            for name, shape in self.shapes.items():
                chunks = (1,) * (len(shape) - 1) + shape[-2:]  # (slice, [frame,] H, W): one frame per chunk
                self._file.create_dataset(name, shape=(self.n_slices,) + shape, dtype=np.complex64, chunks=chunks, **_COMPRESSION)
            attrs = dict(self.attrs)
            attrs.setdefault("a2a_version", __version__)
            attrs.setdefault("created", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
            for key, value in attrs.items():
                if value is not None:
                    self._file.attrs[key] = _attr_value(value)
        except BaseException:
            if self._file is not None:
                self._file.close()
            self._stack.__exit__(*sys.exc_info())
            raise
        return self

    def set_attr(self, key: str, value: Any) -> None:
        """Set a file attribute while the writer is open (for what is known only after the slices)."""
        if self._file is None:
            raise RuntimeError("ReconstructionWriter.set_attr needs an open writer (use it in a with block)")
        self._file.attrs[key] = _attr_value(value)

    def write(self, slice_index: int, array: Any, name: str = "reconstruction") -> None:
        """Store one slice: complex ``frame_shape`` or real ``(2, *frame_shape)`` (numpy or torch)."""
        if self._file is None:
            raise RuntimeError("ReconstructionWriter.write needs an open writer (use it in a with block)")
        if name not in self.shapes:
            raise KeyError(f"dataset {name!r} was not declared (declared: {', '.join(self.shapes)})")
        if not 0 <= slice_index < self.n_slices:
            raise IndexError(f"slice {slice_index} out of range 0..{self.n_slices - 1}")
        self._file[name][slice_index] = _as_complex(array, self.shapes[name])
        self._written[name].add(int(slice_index))

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        try:
            if exc_type is None:
                missing = {n: self.n_slices - len(w) for n, w in self._written.items() if len(w) < self.n_slices}
                if missing:
                    raise RuntimeError(f"{self.path}: not written, slices missing: " + ", ".join(f"{n}: {k}" for n, k in missing.items()))
            self._file.close()  # type: ignore[union-attr]
        except BaseException:
            self._file.close()  # type: ignore[union-attr]
            self._stack.__exit__(*sys.exc_info())
            raise
        finally:
            self._file = None
        return bool(self._stack.__exit__(exc_type, exc, tb))


def _complex_for_style(z: np.ndarray, style: str) -> np.ndarray:
    z = np.asarray(z).astype(np.complex64, copy=False)
    if style == "complex":
        return z
    if style == "compound":
        out = np.empty(z.shape, dtype=[("real", "<f4"), ("imag", "<f4")])
        out["real"], out["imag"] = z.real, z.imag
        return out
    if style == "float2":
        return np.stack((z.real, z.imag), axis=-1).astype(np.float32)
    raise A2AError(f"complex_style must be 'complex', 'compound' or 'float2', got {style!r}")


def write_a2a_file(
    path: PathLike, kspace: np.ndarray, mask: np.ndarray | None = None, reference: np.ndarray | None = None,
    acquisition: str | None = "dynamic", complex_style: Literal["complex", "compound", "float2"] = "complex",
    overwrite: bool = False, attrs: Mapping[str, Any] | None = None,
    coils: int | None = None, sensitivity_maps: np.ndarray | None = None, extra: Mapping[str, np.ndarray] | None = None,
) -> Path:
    """Write numpy arrays as an a2a (or, with ``acquisition=None``/``"static"``, fastMRI-style) file.

    ``kspace`` and ``reference`` are complex and stored in ``complex_style``;
    ``mask`` (any 0/1 array) is stored as uint8. k-space is chunked one frame per
    chunk and gzip compressed. Shapes are stored as given: see the module docstring.
    ``coils`` = N marks the axis before ``(H, W)`` of ``kspace`` as the coil axis (the
    attribute ``coils``); ``sensitivity_maps`` ``(N, H, W)``/``(S, N, H, W)`` and the
    ``extra`` complex datasets are stored like ``kspace``. Returns the path.
    """
    path = Path(path)
    kspace = np.asarray(kspace)
    if not np.iscomplexobj(kspace):
        raise A2AError("write_a2a_file: kspace must be a complex array")
    if coils is not None and (kspace.ndim < 3 or kspace.shape[-3] != coils):
        raise A2AError(f"write_a2a_file: coils={coils} but kspace {kspace.shape} has no coil axis of that size before (H, W)")
    if sensitivity_maps is not None and coils is None:
        raise A2AError("write_a2a_file: sensitivity_maps need the coil count (coils=N)")
    attrs = dict(attrs or {})
    if coils is not None:
        attrs["coils"] = int(coils)
    extra = dict(extra or {})
    if sensitivity_maps is not None:
        extra["sensitivity_maps"] = sensitivity_maps
    k_data = _complex_for_style(kspace, complex_style)
    h, w = kspace.shape[-2:]
    with atomic_write(path, overwrite) as tmp, h5py.File(tmp, "w") as f:
        tail = (2,) if complex_style == "float2" else ()
        chunks = (1,) * (kspace.ndim - 2) + (h, w) + tail
        f.create_dataset("kspace", data=k_data, chunks=chunks, track_times=False, **_COMPRESSION)
        if mask is not None:
            f.create_dataset("mask", data=np.asarray(mask).astype(np.uint8), track_times=False, **_COMPRESSION)
        if reference is not None:
            reference = np.asarray(reference)
            r_data = _complex_for_style(reference, complex_style)
            chunks = (1,) * (reference.ndim - 2) + reference.shape[-2:] + tail
            f.create_dataset("reference", data=r_data, chunks=chunks, track_times=False, **_COMPRESSION)
        for name, array in extra.items():
            array = np.asarray(array)
            chunks = (1,) * (array.ndim - 2) + array.shape[-2:] + tail
            f.create_dataset(name, data=_complex_for_style(array, complex_style), chunks=chunks, track_times=False, **_COMPRESSION)
        if acquisition is not None:
            f.attrs["acquisition"] = acquisition
        for key, value in (attrs or {}).items():
            if value is not None:
                f.attrs[key] = _attr_value(value)
    return path
