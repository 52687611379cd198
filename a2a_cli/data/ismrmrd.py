"""The reader of ISMRMRD raw data (e.g. OCMR): Cartesian 2D cine, multi-slice, multi-coil.

Slices are read as the tensors of :class:`~a2a_cli.data.layout.Sample`: k-space
``(1, 2, T, N, H, W)`` float32 for N > 1 coils (``(1, 2, T, H, W)`` for one), mask
``(1, 1, T, H, W)``; coil maps are estimated afterwards (:mod:`a2a_cli.data.coil_maps`).
H is the readout axis, W the phase-encode axis, k-space centred (DC at ``(H // 2, W // 2)``).

ISMRMRD raw data (e.g. OCMR)
----------------------------

``/dataset/xml`` holds the header (``encoding/encodedSpace/matrixSize`` x, y;
``reconSpace/matrixSize`` x; ``encodingLimits/kspace_encoding_step_1/center``).
``/dataset/data`` is a compound of acquisitions with ``head`` (``flags``,
``number_of_samples``, ``active_channels``, ``center_sample``, ``idx`` with
``kspace_encode_step_1``, ``kspace_encode_step_2``, ``slice``, ``phase``,
``repetition``, ``contrast``, ``set``) and ``data`` (float32 ``(channels * samples *
2)``: channel-major, interleaved real/imaginary). Noise, calibration-only,
navigator, phase-correction, feedback, dummy and surface-coil-correction scans are
skipped. Frames are the cardiac ``phase`` counter, or ``repetition`` when the phase
does not vary (both varying: ``(repetition, phase)`` pairs in order). Line
``kspace_encode_step_1 = center`` lands on column W // 2; sample ``center_sample``
on row H // 2. The readout oversampling is removed (the centred reconSpace x of the
readout, in image space), so H = reconSpace x and W = encodedSpace y.
Repeated (line, frame) acquisitions are averaged. The mask is the set of acquired
(line, frame) pairs. No reference."""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import h5py
import numpy as np
import torch

from ..errors import InputError
from ..fft import fftc, ifftc
from ..headers import header_int, read_whole
from .layout import FileInfo, Sample, SplitOptions, format_info, format_sample

__all__ = ["NAME", "SKIP_MASK", "detect", "inspect", "read_sample", "read_reference", "read_mask", "read_header", "xml_int"]

NAME = "ismrmrd"
PathLike = str | os.PathLike

# ISMRMRD acquisition flags (1-based bit numbers) of scans that are not image lines:
# noise measurement, parallel calibration only, navigator, phase correction,
# HP feedback, dummy scan, RT feedback, surface coil correction, phase stabilisation
# (reference).
_SKIP_BITS = (19, 20, 23, 24, 26, 27, 28, 29, 30, 31)
#: The flag bits of acquisitions that are not image lines (noise, calibration, navigators, ...).
SKIP_MASK = sum(1 << (b - 1) for b in _SKIP_BITS)


def detect(f: h5py.File) -> bool:
    """Whether ``f`` holds ISMRMRD raw data (``/dataset`` with ``data`` and ``xml``)."""
    g = f.get("dataset")
    return isinstance(g, h5py.Group) and "data" in g and "xml" in g


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def xml_int(root: ET.Element, path: str, file: Path, low: int = 1) -> int | None:
    """The integer at ``path`` under ``root`` (None when absent), through the checked :func:`~a2a_cli.headers.header_int`."""
    node: ET.Element | None = root
    for part in path.split("/"):
        node = next((c for c in node if _local(c.tag) == part), None) if node is not None else None
    if node is None or node.text is None or not node.text.strip():
        return None
    return header_int(node.text, file, f"the ISMRMRD header field encoding/{path}", low=low)


def read_header(f: h5py.File, path: Path) -> ET.Element:
    xml = f["dataset"]["xml"]
    if not isinstance(xml, h5py.Dataset) or xml.shape is None:
        raise InputError(path, "/dataset/xml is not a dataset holding the ISMRMRD header text")
    if xml.dtype.names or (xml.dtype.kind not in "SUOa" and h5py.check_string_dtype(xml.dtype) is None):
        raise InputError(path, f"/dataset/xml holds {xml.dtype}, not the ISMRMRD header text")
    raw = read_whole(xml, path, "the ISMRMRD header /dataset/xml")
    if isinstance(raw, np.ndarray):
        raw = raw.reshape(-1)[0] if raw.size else b""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise InputError(path, f"the ISMRMRD header /dataset/xml is not valid XML: {e}") from None
    enc = next((c for c in root if _local(c.tag) == "encoding"), None)
    if enc is None:
        raise InputError(path, "the ISMRMRD header /dataset/xml has no <encoding> section")
    return enc


def inspect(f: h5py.File, path: Path, split: SplitOptions | None = None, mask_file: PathLike | None = None) -> FileInfo:
    """Validate ISMRMRD raw data from its header and acquisition table (see the module docstring)."""
    if mask_file is not None:
        raise InputError(path, f"a separate mask file (--mask) is used only for CMRxRecon files; this is a {NAME} file, which carries its own sampling")
    enc = read_header(f, path)
    hx, wy = (xml_int(enc, f"encodedSpace/matrixSize/{a}", path) for a in "xy")
    z = xml_int(enc, "encodedSpace/matrixSize/z", path, low=0)
    rx = xml_int(enc, "reconSpace/matrixSize/x", path, low=0)
    if not hx or not wy:
        raise InputError(path, "the ISMRMRD header lacks encoding/encodedSpace/matrixSize x and y")
    if z is not None and z > 1:
        raise InputError(path, f"3D encoding (encoded matrix z = {z}) is not supported; only 2D (multi-slice) cine")
    centre = xml_int(enc, "encodingLimits/kspace_encoding_step_1/center", path, low=0)
    centre = wy // 2 if centre is None else centre
    ds = f["dataset"]["data"]
    if not isinstance(ds, h5py.Dataset) or not ds.dtype.names or "head" not in ds.dtype.names or "data" not in ds.dtype.names:
        raise InputError(path, "/dataset/data is not an ISMRMRD acquisition table (compound with 'head' and 'data')")
    head_names = ds.dtype["head"].names or ()
    need = ("flags", "number_of_samples", "active_channels", "idx")
    missing = [n for n in need if n not in head_names]
    if missing:
        raise InputError(path, f"ISMRMRD acquisition headers lack {', '.join(missing)}")
    try:
        heads = read_whole(ds, path, "the ISMRMRD acquisition table /dataset/data", field="head")
    except OSError as e:
        raise InputError(path, f"cannot read the acquisition headers (damaged file?): {e}") from None
    if heads.size == 0:
        raise InputError(path, "/dataset/data holds no acquisitions")
    idx = heads["idx"]
    counter = lambda name: idx[name].astype(np.int64) if name in (idx.dtype.names or ()) else np.zeros(heads.size, np.int64)  # noqa: E731
    keep = (heads["flags"].astype(np.uint64) & np.uint64(SKIP_MASK)) == 0
    if not keep.any():
        raise InputError(path, "no imaging acquisitions (all are noise, calibration or other non-imaging scans)")
    acq = np.flatnonzero(keep)
    if "trajectory_dimensions" in head_names and (heads["trajectory_dimensions"][acq] > 0).any():
        raise InputError(
            path,
            "the acquisitions carry trajectory points (non-Cartesian, e.g. radial k-space), which are not read as "
            "Cartesian lines; write the a2a radial file first: a2a convert IN OUT",
        )
    ky, sl = counter("kspace_encode_step_1")[acq], counter("slice")[acq]
    phase, rep = counter("phase")[acq], counter("repetition")[acq]
    for name in ("kspace_encode_step_2", "contrast", "set"):
        if np.unique(counter(name)[acq]).size > 1:
            raise InputError(path, f"the acquisitions have several values of '{name}'; only single-contrast 2D cine data is supported")
    channels = np.unique(heads["active_channels"][acq])
    if channels.size != 1 or channels[0] < 1:
        raise InputError(path, f"the imaging acquisitions have differing channel counts {channels.tolist()}")
    samples = heads["number_of_samples"][acq].astype(np.int64)
    centre_sample = heads["center_sample"][acq].astype(np.int64) if "center_sample" in head_names else np.zeros_like(samples)
    centre_sample = np.where(centre_sample > 0, centre_sample, samples // 2)  # 0: not set, assume a centred echo
    rows0 = hx // 2 - centre_sample  # row of each acquisition's first sample
    if (rows0 < 0).any() or (rows0 + samples > hx).any():
        raise InputError(path, f"readouts of up to {samples.max()} samples do not fit the encoded matrix x = {hx}")
    cols = ky - centre + wy // 2
    if (cols < 0).any() or (cols >= wy).any():
        raise InputError(path, f"kspace_encode_step_1 values {ky.min()}..{ky.max()} (centre {centre}) do not fit the encoded matrix y = {wy}")
    if np.unique(phase).size > 1 and np.unique(rep).size > 1:
        frame_key, frame_desc = rep * (phase.max() + 1) + phase, "(repetition, phase)"
    elif np.unique(phase).size > 1:
        frame_key, frame_desc = phase, "phase"
    else:
        frame_key, frame_desc = rep, "repetition"
    frame_values, frames = np.unique(frame_key, return_inverse=True)
    slice_values, slices = np.unique(sl, return_inverse=True)
    h = rx if rx and rx < hx else hx
    plan = {
        "acq": acq, "slice": slices, "frame": frames, "col": cols, "row0": rows0, "samples": samples,
        "encoded_x": int(hx), "crop_x": int(h), "frame_counter": frame_desc, "slice_values": slice_values.tolist(),
    }
    return format_info(path, NAME, "dynamic", slice_values.size, frame_values.size, h, wy, int(channels[0]), False, "stored", plan)


def _ismrmrd_lines(info: FileInfo, index: int) -> np.ndarray:
    sel = info.plan["slice"] == index
    m = np.zeros((info.frames, info.width), dtype=bool)
    m[info.plan["frame"][sel], info.plan["col"][sel]] = True
    return m


def read_sample(f: h5py.File, info: FileInfo, index: int, split: SplitOptions | None = None,
                allow_empty_frames: bool = False) -> Sample:
    """Slice ``index`` (checked): its acquisitions placed on the grid, repeats averaged; no coil maps."""
    plan = info.plan
    sel = np.flatnonzero(plan["slice"] == index)
    n, hx, t, w = info.coils or 1, plan["encoded_x"], info.frames, info.width
    k = np.zeros((t, n, hx, w), np.complex64)
    count = np.zeros((t, w), np.int64)
    try:
        raw = f["dataset"]["data"].fields("data")[plan["acq"][sel].tolist()]
    except OSError as e:
        raise InputError(info.path, f"slice {index}: cannot read the acquisitions (damaged file?): {e}") from None
    for j, data in zip(sel, raw):
        ns, r0 = int(plan["samples"][j]), int(plan["row0"][j])
        data = np.asarray(data, dtype=np.float32)
        if data.size != n * ns * 2:
            raise InputError(info.path, f"slice {index}: an acquisition holds {data.size} values, not channels * samples * 2 = {n * ns * 2}")
        fr, col = plan["frame"][j], plan["col"][j]
        k[fr, :, r0:r0 + ns, col] += data.view(np.complex64).reshape(n, ns)
        count[fr, col] += 1
    k /= np.maximum(count, 1)[:, None, None, :]  # repeated acquisitions (averages) are averaged
    if plan["crop_x"] < hx:
        # drop the readout oversampling: image space along the readout, keep the centre
        start = hx // 2 - plan["crop_x"] // 2
        k = fftc(ifftc(k, axes=(2,))[:, :, start:start + plan["crop_x"]], axes=(2,)).astype(np.complex64)
    lines = count > 0
    m = np.ascontiguousarray(np.broadcast_to(lines[:, None, :], info.frame_shape))
    return format_sample(info, index, k, m, allow_empty_frames)


def read_reference(f: h5py.File, info: FileInfo, index: int, coil_maps: torch.Tensor | None) -> None:
    """None: raw data hold no reference."""
    return None


def read_mask(f: h5py.File, info: FileInfo, index: int, split: SplitOptions | None = None) -> np.ndarray:
    """The bool ``(T, H, W)`` mask of slice ``index``: the acquired (line, frame) pairs."""
    return np.ascontiguousarray(np.broadcast_to(_ismrmrd_lines(info, index)[:, None, :], info.frame_shape))
