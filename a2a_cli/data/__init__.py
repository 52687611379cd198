"""The data layer: reading k-space files of every supported layout, the Dataset, and writers.

Modules (each with one job):

* :mod:`~a2a_cli.data.hdf5`: HDF5 helpers (opening with clear errors, complex data);
* :mod:`~a2a_cli.data.layout`: :class:`FileInfo`, :class:`Sample`, :class:`SplitOptions`;
* :mod:`~a2a_cli.data.reader`: the reader registry and :func:`inspect_file`,
  :func:`read_slice`, :func:`read_mask`;
* one reader per layout: :mod:`~a2a_cli.data.a2a_file` (the a2a file format, and
  single-coil fastMRI-style files), :mod:`~a2a_cli.data.radial_file`,
  :mod:`~a2a_cli.data.cmrxrecon`, :mod:`~a2a_cli.data.ismrmrd`, :mod:`~a2a_cli.data.fastmri`;
* :mod:`~a2a_cli.data.coil_maps`: coil-map estimation as a cached step after reading;
* :mod:`~a2a_cli.data.dataset`: :class:`KspaceDataset`, :class:`ShapeBatchSampler`;
* :mod:`~a2a_cli.data.writers`, :mod:`~a2a_cli.data.convert`: writing a2a files.

Tensor layouts (see :mod:`a2a_cli.physics`): a :class:`Sample` holds k-space float32
``(1, 2, T, H, W)`` (channel 0 real, 1 imaginary; T frames, H readout, W phase encode,
k-space centred), mask float32 ``(1, 1, T, H, W)`` (0/1, shared by the coils), reference
``(1, 2, T, H, W)`` (dynamic) or ``(1, 2, H, W)`` (static) or None. Multi-coil k-space is
``(1, 2, T, N, H, W)`` (coils after T) with coil maps complex64 ``(1, N, H, W)``. Radial
slices hold k-space ``(1, 2, T, N, spokes, samples)`` and the sampling tensor
``(1, 4, T, spokes, samples)`` instead of a mask. Dataset items drop the leading 1;
batches put B there.

>>> from a2a_cli.data import SplitOptions, split_lines
>>> split_lines(np.ones(4, bool), SplitOptions(2, "interleaved")).astype(int)
array([[1, 0, 1, 0],
       [0, 1, 0, 1]])
"""
from __future__ import annotations

import numpy as np  # noqa: F401  (the doctest above)

from .coil_maps import CoilMaps
from .convert import convert
from .dataset import KspaceDataset, ShapeBatchSampler
from .layout import (
    SINGLE_FRAME, FileInfo, Sample, SensitivityChoice, SplitOptions, centre_line_indices, describe_layout,
    layout_warning, split_lines, with_sensitivity,
)
from .reader import FORMATS, detect, inspect_file, mask_is_lines, read_mask, read_slice
from .writers import ReconstructionWriter, write_a2a_file

__all__ = [
    "FileInfo", "Sample", "SplitOptions", "SINGLE_FRAME", "SensitivityChoice", "centre_line_indices", "split_lines",
    "describe_layout", "layout_warning", "with_sensitivity", "inspect_file", "read_slice", "read_mask",
    "mask_is_lines", "detect", "FORMATS", "CoilMaps", "KspaceDataset", "ShapeBatchSampler", "ReconstructionWriter",
    "write_a2a_file", "convert",
]
