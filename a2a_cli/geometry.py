"""Pixel spacing, slice thickness and frame time: read from an input file, carried into its reconstruction.

A k-space file knows nothing of millimetres or seconds, but viewers need both. Three
optional file attributes carry them, on a2a input files and on the ``<name>_recon.h5``
files that ``a2a reconstruct`` writes (it copies them from the input):

===================  =====================  ===============================================================
attribute            value                  meaning
===================  =====================  ===============================================================
``pixel_spacing``    two floats, mm         ``(row, column)``: the distance between rows (along H, the
                                            readout) and between columns (along W, the phase encode),
                                            as DICOM's PixelSpacing; one float: square pixels
``slice_thickness``  float, mm              slice thickness (slices are taken as contiguous)
``frame_time``       float, s               time from one frame to the next
===================  =====================  ===============================================================

Where the input has no such attribute, an ISMRMRD header (``/dataset/xml`` of raw
data, ``ismrmrd_header`` of fastMRI files) supplies what it records:
``encodedSpace/fieldOfView_mm`` divided by ``encodedSpace/matrixSize`` (x: rows,
y: columns; the readout crop keeps the spacing), ``fieldOfView_mm/z`` as the slice
thickness, and ``sequenceParameters/TR`` (ms) as the frame time. Scanners differ in
what they record as TR (for a segmented cine it can be the time of one line rather
than of one frame): set ``frame_time`` on the a2a file (``a2a convert``, then h5py)
when the header's value is not the frame interval.
"""
from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Mapping

import h5py
import numpy as np

from .errors import InputError

__all__ = ["PIXEL_SPACING", "SLICE_THICKNESS", "FRAME_TIME", "GEOMETRY_ATTRS", "geometry_from_attrs",
           "ismrmrd_geometry", "read_geometry"]

PIXEL_SPACING = "pixel_spacing"
SLICE_THICKNESS = "slice_thickness"
FRAME_TIME = "frame_time"
GEOMETRY_ATTRS = (PIXEL_SPACING, SLICE_THICKNESS, FRAME_TIME)


#: the plausible range of each geometry attribute: outside it a value is a unit mistake (um, ms) or damage,
#: and no viewer's header can hold it (NIfTI's float32 zooms, GIF's 16-bit delays)
PLAUSIBLE = {"mm": (1e-4, 1e4), "s": (1e-6, 600.0)}


def _positive(value: Any, count: int | None, unit: str = "mm") -> list[float] | float | None:
    """``value`` as a finite float in the plausible range of ``unit`` (``count`` None) or a list of ``count``
    of them; None if not."""
    if isinstance(value, (bytes, str)):
        return None
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None
    if count is not None and arr.size == 1:
        arr = np.repeat(arr, count)  # one spacing: square pixels
    low, high = PLAUSIBLE[unit]
    if arr.size != (count or 1) or not np.all(np.isfinite(arr)) or not np.all((arr >= low) & (arr <= high)):
        return None
    return [float(v) for v in arr] if count is not None else float(arr[0])


def geometry_from_attrs(attrs: Mapping[str, Any], path: str | os.PathLike) -> dict[str, Any]:
    """The geometry attributes present in ``attrs``, checked; an :class:`InputError` names a bad one.

    >>> geometry_from_attrs({"pixel_spacing": 1.5, "frame_time": 0.04, "other": 1}, "a.h5")
    {'pixel_spacing': [1.5, 1.5], 'frame_time': 0.04}
    >>> geometry_from_attrs({"frame_time": -1}, "a.h5")
    Traceback (most recent call last):
    ...
    a2a_cli.errors.InputError: a.h5: the attribute frame_time must be a number of s from 1e-06 to 600, got -1
    """
    out: dict[str, Any] = {}
    for key, count, unit in ((PIXEL_SPACING, 2, "mm (row, column)"), (SLICE_THICKNESS, None, "mm"), (FRAME_TIME, None, "s")):
        if key not in attrs:
            continue
        base = unit.split()[0]
        value = _positive(attrs[key], count, base)
        if value is None:
            what = "one or two numbers" if count else "a number"
            raw = attrs[key].tolist() if isinstance(attrs[key], np.ndarray) else attrs[key]
            low, high = PLAUSIBLE[base]
            raise InputError(path, f"the attribute {key} must be {what} of {unit} from {low:g} to {high:g}, got {raw!r}")
        out[key] = value
    return out


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _xml_float(root: ET.Element, path: str) -> float | None:
    node: ET.Element | None = root
    for part in path.split("/"):
        node = next((c for c in node if _local(c.tag) == part), None) if node is not None else None
    if node is None or node.text is None:
        return None
    try:
        value = float(node.text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


def ismrmrd_geometry(xml_text: str | bytes) -> dict[str, Any]:
    """What an ISMRMRD header records of the geometry (see the module docstring); {} if nothing or not XML.

    >>> ismrmrd_geometry('''<ismrmrdHeader><encoding><encodedSpace>
    ...   <matrixSize><x>256</x><y>128</y><z>1</z></matrixSize>
    ...   <fieldOfView_mm><x>600</x><y>300</y><z>8</z></fieldOfView_mm></encodedSpace></encoding>
    ...   <sequenceParameters><TR>40</TR></sequenceParameters></ismrmrdHeader>''')
    {'pixel_spacing': [2.34375, 2.34375], 'slice_thickness': 8.0, 'frame_time': 0.04}
    """
    if isinstance(xml_text, bytes):
        xml_text = xml_text.decode("utf-8", "replace")
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError:
        return {}
    out: dict[str, Any] = {}
    enc = next((c for c in root if _local(c.tag) == "encoding"), None)
    if enc is not None:
        fov = [_xml_float(enc, f"encodedSpace/fieldOfView_mm/{a}") for a in "xyz"]
        size = [_xml_float(enc, f"encodedSpace/matrixSize/{a}") for a in "xy"]
        if fov[0] and fov[1] and size[0] and size[1]:
            out[PIXEL_SPACING] = [fov[0] / size[0], fov[1] / size[1]]
        if fov[2]:
            out[SLICE_THICKNESS] = fov[2]
    tr = _xml_float(root, "sequenceParameters/TR")
    if tr:
        out[FRAME_TIME] = tr / 1000.0
    # a header's implausible value (damage, another unit) is dropped: unknown geometry is written as such
    return {k: v for k, v in out.items() if _positive(v, 2 if k == PIXEL_SPACING else None, "s" if k == FRAME_TIME else "mm") is not None}


def _header_text(f: h5py.File) -> str | bytes | None:
    g = f.get("dataset")
    ds = g.get("xml") if isinstance(g, h5py.Group) else f.get("ismrmrd_header")
    if not isinstance(ds, h5py.Dataset):
        return None
    raw = ds[()]
    if isinstance(raw, np.ndarray):
        raw = raw.reshape(-1)[0] if raw.size else b""
    return raw if isinstance(raw, (str, bytes)) else None


def read_geometry(path: str | os.PathLike) -> dict[str, Any]:
    """Pixel spacing, slice thickness and frame time of an input file, as far as it records them.

    The file's attributes (checked: a bad value is an :class:`InputError`) win over
    its ISMRMRD header. Returns a dict with some of :data:`GEOMETRY_ATTRS`; {} for a
    file that records none (or is not HDF5: the readers report that).
    """
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            out = geometry_from_attrs(f.attrs, path)
            text = _header_text(f)
    except (OSError, KeyError):
        return {}
    if text is not None:
        for key, value in ismrmrd_geometry(text).items():
            out.setdefault(key, value)
    return out
