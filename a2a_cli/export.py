"""Export an a2a reconstruction (``<name>_recon.h5``) to the formats viewers open.

The input is a file written by ``a2a reconstruct``: ``reconstruction`` complex64
``(S, T, H, W)`` (attribute ``mode`` = ``dynamic``) or ``(S, H, W)`` (``sequential``,
read here as T = 1), H rows (readout), W columns (phase encode), with the optional
geometry attributes of :mod:`a2a_cli.geometry` (``pixel_spacing`` mm, ``slice_thickness``
mm, ``frame_time`` s). What is unknown is written as 1 mm and 1 s, with a note.

=========  ======================  ===========================================================================
format     output                  content
=========  ======================  ===========================================================================
``nifti``  ``.nii``, ``.nii.gz``   magnitude float32 (``--complex``: complex64), axes ``(W, H, S, T)``
                                   (``(W, H, S)`` for a sequential reconstruction): i = column, j = row, k =
                                   slice, t = frame; affine ``diag(-col, -row, thickness)`` (the LPS axes of
                                   the DICOM export, as dcm2niix writes them), zooms in mm and s
``dicom``  a folder                MR Image Storage, one file per slice and frame (``slice000_frame0000.dcm``),
                                   one study and one series, magnitude as uint16 with RescaleSlope, window
                                   centre/width, PixelSpacing, SliceLocation, TriggerTime (when the frame time
                                   is known)
``bart``   ``.cfl`` + ``.hdr``     complex64, column-major; BART dims 0 = H, 1 = W, 10 = frames, 13 = slices
``gif``    ``.gif``                a cine of one slice (``--slice``, default 0), magnitude, 8 bits
``mp4``    ``.mp4``                the same cine as H.264, when ffmpeg is installed
``png``    ``.png``                a mosaic of magnitudes: one row per slice, one column per frame
=========  ======================  ===========================================================================

Every output is written to a hidden temporary name and renamed when complete; a
DICOM folder appears complete or not at all. nibabel and pydicom are optional
(``pip install 'a2a-cli[export]'``).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import gzip
import importlib
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import h5py
import numpy as np

from . import __version__
from . import cfl as cfl_io
from .errors import A2AError, InputError, raise_if_stopped
from .geometry import FRAME_TIME, PIXEL_SPACING, SLICE_THICKNESS, geometry_from_attrs
from .atomic import OutputExistsError, atomic_write
from .data.hdf5 import open_file

__all__ = ["FORMATS", "SUFFIXES", "EXTRA_HINT", "Recon", "format_for", "parse_frames", "load_recon",
           "export_target", "require_packages", "check_target", "export", "read_cfl"]

PathLike = str | os.PathLike

FORMATS = ("nifti", "dicom", "bart", "gif", "mp4", "png")
SUFFIXES = {".nii.gz": "nifti", ".nii": "nifti", ".cfl": "bart", ".hdr": "bart", ".gif": "gif", ".mp4": "mp4", ".png": "png"}
EXTRA_HINT = "pip install 'a2a-cli[export]'"
_PACKAGES = {"nifti": ("nibabel", "NIfTI"), "dicom": ("pydicom", "DICOM")}
_DEFAULT_FPS = 10.0  # cine speed when the frame time is unknown
_UINT16_MAX = 65535
_NO_FFMPEG = "MP4 export needs an encoder: ffmpeg is not on PATH; install ffmpeg, or export a .gif instead"


# ----------------------------------------------------------------------------------
# choosing the format
# ----------------------------------------------------------------------------------
def _suffix_of(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def format_for(out: PathLike, fmt: Optional[str] = None) -> str:
    """The export format: ``fmt`` if given, else from OUT's suffix (see :data:`SUFFIXES`).

    >>> format_for("a.nii.gz"), format_for("b.CFL"), format_for("series", "dicom")
    ('nifti', 'bart', 'dicom')
    >>> format_for("x.jpg")
    Traceback (most recent call last):
    ...
    a2a_cli.errors.InputError: x.jpg: unknown export format '.jpg'; use a name ending in .nii.gz, .nii, .cfl, .hdr, .gif, .mp4 or .png, or --format dicom|nifti|bart|gif|mp4|png
    """
    if fmt is not None:
        if fmt not in FORMATS:
            raise A2AError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        return fmt
    suffix = _suffix_of(Path(out))
    if suffix in SUFFIXES:
        return SUFFIXES[suffix]
    names = ", ".join(list(SUFFIXES)[:-1]) + " or " + list(SUFFIXES)[-1]
    what = f"{suffix!r}" if suffix else "(no suffix)"
    raise InputError(out, f"unknown export format {what}; use a name ending in {names}, or --format dicom|nifti|bart|gif|mp4|png")


def export_target(recon_path: PathLike, suffix: str) -> tuple[Path, str]:
    """``(output path, format)`` of ``reconstruct --export SUFFIX`` for ``<name>_recon.h5``.

    ``dicom`` gives the folder ``<name>_recon_dicom``; a suffix may omit its dot.

    >>> export_target("out/a_recon.h5", ".nii.gz"), export_target("out/a_recon.h5", "dicom")
    ((PosixPath('out/a_recon.nii.gz'), 'nifti'), (PosixPath('out/a_recon_dicom'), 'dicom'))
    """
    recon_path = Path(recon_path)
    s = suffix.strip()
    if s.lower() == "dicom":
        return recon_path.with_name(recon_path.stem + "_dicom"), "dicom"
    if not s.startswith("."):
        s = "." + s
    target = recon_path.with_name(recon_path.stem + s)
    if _suffix_of(target) not in SUFFIXES or _suffix_of(target) != s.lower():
        names = ", ".join(list(SUFFIXES)) + " or dicom"
        raise A2AError(f"--export {suffix!r} is not an export format; use one of {names}")
    return target, SUFFIXES[s.lower()]


def require_packages(fmt: str) -> None:
    """Raise a one-line :class:`A2AError` if ``fmt`` cannot be written here.

    The message names the ``export`` extra when nibabel or pydicom is missing, and
    ffmpeg when an MP4 has no encoder.
    """
    _module(fmt)
    if fmt == "mp4" and _ffmpeg() is None:
        raise A2AError(_NO_FFMPEG)


def _module(fmt: str) -> Any:
    if fmt not in _PACKAGES:
        return None
    name, what = _PACKAGES[fmt]
    try:
        return importlib.import_module(name)
    except ImportError:
        raise A2AError(f"{what} export needs the optional package {name}, which is not installed: {EXTRA_HINT}") from None


# ----------------------------------------------------------------------------------
# reading a reconstruction
# ----------------------------------------------------------------------------------
@dataclass
class Recon:
    """The part of a reconstruction that is exported.

    ``images`` complex64 ``(S, T, H, W)`` (T = 1 for a sequential reconstruction);
    ``slices`` and ``frames`` the indices they had in the file; geometry None when unknown.
    """

    path: Path
    images: np.ndarray
    mode: str
    slices: list[int]
    frames: list[int]
    pixel_spacing: Optional[list[float]] = None
    slice_thickness: Optional[float] = None
    frame_time: Optional[float] = None
    attrs: dict = field(default_factory=dict, repr=False)


def parse_frames(text: Optional[str], total: int) -> range:
    """Frames ``A:B`` (A included, B excluded; either may be left out) or ``N`` of ``total``.

    >>> parse_frames("2:5", 8), parse_frames(":3", 8), parse_frames("7", 8), parse_frames(None, 8)
    (range(2, 5), range(0, 3), range(7, 8), range(0, 8))
    """
    if text is None or text.strip() in ("", ":"):
        return range(total)
    try:
        if ":" in text:
            a, b = text.split(":", 1)
            start, stop = int(a) if a.strip() else 0, int(b) if b.strip() else total
        else:
            start = int(text)
            stop = start + 1
    except ValueError:
        raise A2AError(f"--frames expects A:B (or one frame N), got {text!r}") from None
    if not 0 <= start < stop <= total:
        problem = "selects no frames" if start >= stop else "reaches past the frames"
        raise A2AError(f"--frames {text} {problem} of 0..{total - 1} (A:B takes frames A to B - 1)")
    return range(start, stop)


def _attr_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.size == 1:
        return _attr_text(value.reshape(-1)[0])
    return str(value)


def load_recon(path: PathLike, slice_index: Optional[int] = None, frames: Optional[str] = None) -> Recon:
    """Read the reconstruction of ``path`` (all slices, or ``slice_index``; ``frames`` as for :func:`parse_frames`).

    Anything that is not an a2a reconstruction is an :class:`InputError`.
    """
    path = Path(path)
    not_recon = ("is not an a2a reconstruction (a 'reconstruction' dataset with a 'mode' attribute, "
                 "as written by `a2a reconstruct`)")
    if not path.is_file():
        raise InputError(path, "not found" if not path.exists() else "is not a file")
    with open_file(path) as f:  # missing, truncated, not HDF5: said as the readers say it
        ds = f.get("reconstruction")
        mode = _attr_text(f.attrs.get("mode", ""))
        if not isinstance(ds, h5py.Dataset) or mode not in ("dynamic", "sequential"):
            raise InputError(path, not_recon)
        want = 4 if mode == "dynamic" else 3
        if len(ds.shape) != want or ds.dtype.kind != "c" or min(ds.shape) < 1:
            raise InputError(path, f"{not_recon}: 'reconstruction' is {ds.dtype} {ds.shape}, expected complex "
                                   + ("(S, T, H, W)" if mode == "dynamic" else "(S, H, W)"))
        n_slices = ds.shape[0]
        n_frames = ds.shape[1] if mode == "dynamic" else 1
        if slice_index is not None and not 0 <= slice_index < n_slices:
            raise InputError(path, f"--slice {slice_index} is outside 0..{n_slices - 1}")
        if mode == "sequential" and frames is not None and parse_frames(frames, 1) != range(1):
            raise InputError(path, "--frames: a sequential reconstruction has one (static) image per slice")
        frame_range = parse_frames(frames, n_frames)
        slices = [slice_index] if slice_index is not None else list(range(n_slices))
        try:
            sl = slice(slices[0], slices[-1] + 1)
            if mode == "dynamic":
                images = ds[sl, frame_range.start:frame_range.stop]
            else:
                images = ds[sl][:, None]
        except OSError as e:
            raise InputError(path, f"cannot read 'reconstruction' (damaged file?): {e}") from None
        attrs = {k: f.attrs[k] for k in f.attrs}
    images = np.asarray(images).astype(np.complex64, copy=False)
    if not np.all(np.isfinite(images)):
        raise InputError(path, "the reconstruction holds NaN or infinite values")
    geo = geometry_from_attrs(attrs, path)
    return Recon(path=path, images=images, mode=mode, slices=slices, frames=list(frame_range),
                 pixel_spacing=geo.get(PIXEL_SPACING), slice_thickness=geo.get(SLICE_THICKNESS),
                 frame_time=geo.get(FRAME_TIME), attrs=attrs)


# ----------------------------------------------------------------------------------
# writers
# ----------------------------------------------------------------------------------
def _spacing(recon: Recon, notes: list[str]) -> tuple[float, float, float]:
    """``(row, column, slice)`` spacing in mm, 1 mm where unknown (with a note)."""
    if recon.pixel_spacing is None:
        notes.append("pixel spacing unknown (no pixel_spacing attribute): 1 mm written")
    if recon.slice_thickness is None and len(recon.slices) > 1:
        notes.append("slice thickness unknown (no slice_thickness attribute): 1 mm written")
    row, col = recon.pixel_spacing or (1.0, 1.0)
    return float(row), float(col), float(recon.slice_thickness or 1.0)


def _frame_time(recon: Recon, notes: list[str], default: float = 1.0, unit: str = "1 s") -> float:
    if recon.frame_time is None:
        if len(recon.frames) > 1:
            notes.append(f"frame time unknown (no frame_time attribute): {unit} written")
        return default
    return float(recon.frame_time)


def _window(mag: np.ndarray) -> tuple[float, float]:
    """``(low, high)``: the 0.5th and 99.5th percentiles, the display range of a magnitude image."""
    lo, hi = (float(v) for v in np.percentile(mag, [0.5, 99.5]))
    return (lo, hi) if hi > lo else (0.0, float(mag.max()) or 1.0)


def _to_uint8(mag: np.ndarray) -> np.ndarray:
    """Magnitudes to 8-bit grey values, 0 to the 99.5th percentile (one scale for all images)."""
    hi = _window(mag)[1]
    return np.clip(np.rint(mag / hi * 255), 0, 255).astype(np.uint8)


def write_nifti(recon: Recon, out: Path, magnitude: bool, overwrite: bool, notes: list[str]) -> dict:
    """NIfTI-1 of the reconstruction: axes ``(W, H, S, T)`` (see the module docstring)."""
    nib = _module("nifti")
    row, col, thick = _spacing(recon, notes)
    data = np.abs(recon.images) if magnitude else recon.images
    data = data.astype(np.float32 if magnitude else np.complex64).transpose(3, 2, 0, 1)  # (S, T, H, W) -> (W, H, S, T)
    dynamic = recon.mode == "dynamic"
    if not dynamic:
        data = data[..., 0]
    img = nib.Nifti1Image(np.ascontiguousarray(data), np.diag([-col, -row, thick, 1.0]))
    img.header.set_xyzt_units("mm", "sec")
    if magnitude:  # the display range viewers start with
        img.header["cal_min"], img.header["cal_max"] = _window(data)
    if dynamic:
        img.header.set_zooms((col, row, thick, _frame_time(recon, notes)))
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    raw = img.to_bytes()
    if _suffix_of(out) == ".nii.gz":
        raw = gzip.compress(raw, compresslevel=6, mtime=0)
    with atomic_write(out, overwrite) as tmp:
        tmp.write_bytes(raw)
    return {"shape": list(data.shape), "axes": "W, H, slices, frames" if dynamic else "W, H, slices",
            "dtype": str(data.dtype), "zooms": [float(z) for z in img.header.get_zooms()]}


def read_cfl(base: PathLike) -> np.ndarray:
    """Read BART's ``base.cfl``/``base.hdr`` with every dimension of its header (trailing 1s kept)."""
    return cfl_io.read_cfl(base, keep_trailing=True)


def write_bart(recon: Recon, out: Path, magnitude: bool, overwrite: bool, notes: list[str]) -> dict:
    """BART files: dims 0 = H (readout), 1 = W, 10 = frames (TIME), 13 = slices (SLICE)."""
    data = np.abs(recon.images).astype(np.complex64) if magnitude else recon.images
    s, t, h, w = data.shape
    dims = [1] * 16
    dims[0], dims[1], dims[10], dims[13] = h, w, t, s
    array = data.transpose(2, 3, 1, 0).reshape(dims)  # (H, W, T, S) with singleton dims between: same memory order
    cfl, hdr = cfl_io.write_cfl(_bart_base(out), array, overwrite, min_dims=16)
    return {"shape": dims, "axes": "BART: 0 = H, 1 = W, 10 = frames, 13 = slices", "dtype": "complex64",
            "files": [str(cfl), str(hdr)]}


def _cine(recon: Recon, notes: list[str]) -> tuple[np.ndarray, float]:
    """The 8-bit frames ``(T, H, W)`` of the one exported slice and the frames per second."""
    if len(recon.slices) != 1:
        raise A2AError("a cine shows one slice: choose it with --slice")
    dt = _frame_time(recon, notes, default=1.0 / _DEFAULT_FPS, unit=f"{_DEFAULT_FPS:g} frames/s")
    return _to_uint8(np.abs(recon.images[0])), 1.0 / dt


def write_gif(recon: Recon, out: Path, overwrite: bool, notes: list[str]) -> dict:
    """Animated GIF of one slice (Pillow); every frame shown for the frame time (10 ms steps)."""
    from PIL import Image

    frames, fps = _cine(recon, notes)
    pictures = [Image.fromarray(f, mode="L") for f in frames]
    duration = max(10, int(round(1000.0 / fps / 10)) * 10)  # GIF delays are in hundredths of a second
    with atomic_write(out, overwrite) as tmp:
        pictures[0].save(tmp, format="GIF", save_all=True, append_images=pictures[1:], duration=duration, loop=0)
    return {"shape": list(frames.shape), "axes": "frames, H, W", "frame_ms": duration}


def _ffmpeg() -> Optional[str]:
    """The ffmpeg program matplotlib's writer would use, if it runs."""
    from matplotlib import animation

    if not animation.writers.is_available("ffmpeg"):
        return None
    return str(animation.FFMpegWriter.bin_path())


def write_mp4(recon: Recon, out: Path, overwrite: bool, notes: list[str]) -> dict:
    """H.264 MP4 of one slice through ffmpeg (the program matplotlib's FFMpegWriter finds)."""
    program = _ffmpeg()
    if program is None:
        raise A2AError(_NO_FFMPEG)
    frames, fps = _cine(recon, notes)
    t, h, w = frames.shape
    with atomic_write(out, overwrite) as tmp:
        cmd = [program, "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "gray", "-s", f"{w}x{h}",
               "-framerate", f"{fps:.6g}", "-i", "pipe:", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2",  # H.264 needs even sizes
               "-vcodec", "libx264", "-pix_fmt", "yuv420p", "-f", "mp4", "-y", str(tmp)]
        proc = subprocess.run(cmd, input=np.ascontiguousarray(frames).tobytes(), capture_output=True)
        if proc.returncode != 0:
            last = (proc.stderr.decode("utf-8", "replace").strip().splitlines() or ["no message"])[-1]
            raise A2AError(f"{out}: ffmpeg failed: {last}")
    return {"shape": [t, h, w], "axes": "frames, H, W", "fps": fps}


def write_png(recon: Recon, out: Path, overwrite: bool, notes: list[str]) -> dict:
    """A mosaic of magnitudes: row i is slice i, column j frame j, one grey scale for all."""
    from PIL import Image

    tiles = _to_uint8(np.abs(recon.images))  # (S, T, H, W)
    s, t, h, w = tiles.shape
    mosaic = tiles.transpose(0, 2, 1, 3).reshape(s * h, t * w)
    with atomic_write(out, overwrite) as tmp:
        Image.fromarray(np.ascontiguousarray(mosaic), mode="L").save(tmp, format="PNG")
    return {"shape": [s * h, t * w], "axes": "slices x H, frames x W", "tiles": [s, t]}


def _ds(value: float) -> str:
    """A DICOM decimal string (at most 16 characters)."""
    return f"{value:.10g}"[:16]


def _is_export_folder(path: Path) -> bool:
    return path.is_dir() and all(p.is_file() and p.suffix.lower() == ".dcm" for p in path.iterdir())


def write_dicom(recon: Recon, out: Path, magnitude: bool, overwrite: bool, notes: list[str],
                on_image: Optional[Callable[[int, int], None]] = None) -> dict:
    """A folder of MR images (one series): see the module docstring. Complete or absent, never partial."""
    _module("dicom")  # the one-line message naming the extra when pydicom is missing
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, MRImageStorage, generate_uid

    if not magnitude:
        raise A2AError("DICOM export writes magnitude images only; leave out --complex (or use NIfTI or BART for complex data)")
    check_target(out, "dicom", overwrite)
    row, col, thick = _spacing(recon, notes)
    dt = recon.frame_time
    mag = np.abs(recon.images).astype(np.float64)
    peak = float(mag.max())
    slope = float(_ds(peak / _UINT16_MAX)) if peak > 0 else 1.0
    lo, hi = _window(mag)
    created = _attr_text(recon.attrs.get("created", "")) or _dt.datetime.now(_dt.timezone.utc).isoformat()
    try:
        when = _dt.datetime.fromisoformat(created)
    except ValueError:
        when = _dt.datetime.now(_dt.timezone.utc)
    date, time = when.strftime("%Y%m%d"), when.strftime("%H%M%S")
    study, series, frame_of_ref = generate_uid(), generate_uid(), generate_uid()
    s_n, t_n, h, w = recon.images.shape
    network = _attr_text(recon.attrs.get("network", "")) or "network"
    total = s_n * t_n
    tmp = out.with_name(f".{out.name}.partial-{secrets.token_hex(4)}")
    tmp.mkdir()
    try:
        for i, s in enumerate(recon.slices):
            for j, t in enumerate(recon.frames):
                raise_if_stopped()
                meta = FileMetaDataset()
                meta.MediaStorageSOPClassUID = MRImageStorage
                meta.MediaStorageSOPInstanceUID = generate_uid()
                meta.TransferSyntaxUID = ExplicitVRLittleEndian
                meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
                ds = Dataset()
                ds.file_meta = meta
                ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
                ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame_of_ref
                ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Anonymous", "A2A", "", ""
                ds.StudyDate = ds.SeriesDate = ds.ContentDate = date
                ds.StudyTime = ds.SeriesTime = ds.ContentTime = time
                ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "1", "", ""
                ds.Modality, ds.SeriesNumber, ds.Manufacturer = "MR", 1, "a2a"
                ds.SoftwareVersions = f"a2a {__version__}"
                ds.SeriesDescription = f"a2a {network} reconstruction"[:64]
                ds.ImageComments = f"{recon.path.name}: slice {s}, frame {t}"
                ds.PositionReferenceIndicator = ""
                ds.InstanceNumber = 1 + i * t_n + j
                ds.ImageType = ["DERIVED", "SECONDARY"]
                ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions, ds.MRAcquisitionType = "RM", "NONE", "", "2D"
                ds.EchoTime, ds.EchoTrainLength = "", ""
                ds.RepetitionTime = ""
                ds.SliceThickness = _ds(thick)
                ds.SpacingBetweenSlices = _ds(thick)
                ds.SliceLocation = _ds(s * thick)
                ds.ImagePositionPatient = ["0", "0", _ds(s * thick)]
                ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
                ds.PixelSpacing = [_ds(row), _ds(col)]
                if dt is not None and recon.mode == "dynamic":
                    ds.TriggerTime = _ds(t * dt * 1000.0)  # ms after the first frame
                if recon.mode == "dynamic":
                    ds.TemporalPositionIdentifier, ds.NumberOfTemporalPositions = j + 1, t_n
                    ds.CardiacNumberOfImages = t_n
                ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
                ds.Rows, ds.Columns = h, w
                ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
                ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", _ds(slope), "US"
                ds.WindowCenter, ds.WindowWidth = _ds((lo + hi) / 2), _ds(max(hi - lo, slope))
                pixels = np.clip(np.rint(mag[i, j] / slope), 0, _UINT16_MAX).astype("<u2")
                ds.PixelData = pixels.tobytes()
                ds.save_as(tmp / f"slice{s:03d}_frame{t:04d}.dcm", enforce_file_format=True)
                if on_image is not None:
                    on_image(i * t_n + j + 1, total)
        raise_if_stopped()
        _publish_folder(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"shape": [s_n, t_n, h, w], "axes": "one file per slice and frame, H rows x W columns",
            "files": total, "rescale_slope": slope, "window": [lo, hi]}


def _bart_base(out: Path) -> Path:
    return out.with_suffix("") if out.suffix.lower() in (".cfl", ".hdr") else out


def check_target(out: Path, kind: str, overwrite: bool) -> None:
    """Refuse an output that exists (without ``overwrite``) or cannot be written, before anything is read."""
    if kind == "dicom":
        if out.exists():
            if not out.is_dir():
                raise InputError(out, "exists and is not a folder; a DICOM export is a folder")
            if not overwrite:
                raise OutputExistsError(out, "already exists; use the overwrite option (--overwrite) to replace it")
            if not _is_export_folder(out):  # --overwrite replaces a DICOM series, never a folder of other files
                raise InputError(out, "holds files other than .dcm files; not replaced, choose another name")
        paths = [out]
    elif kind == "bart":
        base = _bart_base(out)
        paths = [base.with_name(base.name + ".cfl"), base.with_name(base.name + ".hdr")]
    else:
        paths = [out]
    for p in paths:
        if kind != "dicom" and p.is_dir():
            raise InputError(p, "is a directory; give a file name for the output")
        if kind != "dicom" and p.exists() and not overwrite:
            raise OutputExistsError(p, "already exists; use the overwrite option (--overwrite) to replace it")
        if not p.parent.is_dir():
            raise InputError(p, f"the output directory {p.parent} does not exist")
        if not os.access(p.parent, os.W_OK | os.X_OK):
            raise InputError(p, f"cannot write in the folder {p.parent} (permission denied)")


def _publish_folder(tmp: Path, out: Path, overwrite: bool) -> None:
    """Rename the complete folder ``tmp`` onto ``out``; an old export under ``out`` is removed only after."""
    if not out.exists():
        os.rename(tmp, out)  # fails if another process created ``out`` meanwhile: nothing is lost
        return
    if not overwrite:
        raise OutputExistsError(out, "already exists; use the overwrite option (--overwrite) to replace it")
    old = out.with_name(f".{out.name}.old-{secrets.token_hex(4)}")
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


# ----------------------------------------------------------------------------------
# the command's entry point
# ----------------------------------------------------------------------------------
def export(
    recon_path: PathLike, out: PathLike, fmt: Optional[str] = None, magnitude: Optional[bool] = None,
    slice_index: Optional[int] = None, frames: Optional[str] = None, overwrite: bool = False,
    on_image: Optional[Callable[[int, int], None]] = None,
) -> dict:
    """Export ``recon_path`` (an ``a2a reconstruct`` output) to ``out``; returns a summary for ``--json``.

    ``magnitude`` None: the format's default (complex for BART, magnitude otherwise);
    False (``--complex``) is allowed for NIfTI and BART only. ``slice_index`` None:
    every slice (the cines show slice 0). ``notes`` in the summary say what was
    assumed (unknown spacing or timing).
    """
    recon_path, out = Path(recon_path), Path(out)
    kind = format_for(out, fmt)
    if magnitude is False and kind not in ("nifti", "bart"):
        raise A2AError(f"--complex: {kind} export writes magnitude images only (complex data: NIfTI or BART)")
    if magnitude is None:
        magnitude = kind != "bart"
    require_packages(kind)  # before anything is read
    if out.resolve() == recon_path.resolve():
        raise InputError(out, "the output would overwrite the input file; choose another name")
    check_target(out, kind, overwrite)  # before anything is read
    if kind in ("gif", "mp4") and slice_index is None:
        slice_index = 0
    recon = load_recon(recon_path, slice_index, frames)
    notes: list[str] = []
    if kind == "nifti":
        info = write_nifti(recon, out, magnitude, overwrite, notes)
    elif kind == "dicom":
        info = write_dicom(recon, out, magnitude, overwrite, notes, on_image)
    elif kind == "bart":
        info = write_bart(recon, out, magnitude, overwrite, notes)
    elif kind == "gif":
        info = write_gif(recon, out, overwrite, notes)
    elif kind == "mp4":
        info = write_mp4(recon, out, overwrite, notes)
    else:
        info = write_png(recon, out, overwrite, notes)
    return {"input": str(recon_path), "output": str(out), "format": kind, "magnitude": bool(magnitude),
            "slices": recon.slices, "frames": [recon.frames[0], recon.frames[-1] + 1],
            "pixel_spacing": recon.pixel_spacing, "slice_thickness": recon.slice_thickness,
            "frame_time": recon.frame_time, "notes": notes, **info}
