"""Coil sensitivity maps as an explicit, cached step after a slice is read.

Readers return a multi-coil :class:`~a2a_cli.data.layout.Sample` with the file's
stored maps, or with ``coil_maps`` None when the maps must be estimated (the file has
none, or ``--sensitivity espirit|lowres`` asked for estimation). :class:`CoilMaps` fills
them in from the slice's own data, with the method ``info.sensitivity`` names, by
:func:`a2a_cli.coils.estimate_maps` (Cartesian) or :func:`a2a_cli.nufft.estimate_radial_maps`
(radial), and keeps them per ``(file, slice, method)`` so a slice is estimated once per
process (a :class:`~a2a_cli.data.KspaceDataset` reads every slice once per epoch).

Layouts: Cartesian k-space ``(1, 2, T, N, H, W)`` and mask ``(1, 1, T, H, W)``; radial
k-space ``(1, 2, T, N, spokes, samples)`` and sampling tensor ``(1, 4, T, spokes,
samples)`` (measured, trajectory H, trajectory W, dcf); maps complex64 ``(1, N, H, W)``.
Static split files (fastMRI) estimate from all the slice's samples, whatever the split.

>>> import torch
>>> from pathlib import Path
>>> from a2a_cli.data.layout import FileInfo, Sample
>>> info = FileInfo(path=Path("one.h5"), layout="a2a", mode="dynamic", n_slices=1, frames=2, height=8, width=8,
...                 has_reference=False, mask_source="derived")
>>> sample = Sample(kspace=torch.zeros(1, 2, 2, 8, 8), mask=torch.ones(1, 1, 2, 8, 8), reference=None, file="one.h5",
...                 slice_index=0)
>>> CoilMaps()(sample, info).coil_maps is None  # one coil: nothing to estimate
True
"""
from __future__ import annotations

import dataclasses

import torch

from ..coils import estimate_maps
from ..nufft import estimate_radial_maps
from .layout import FileInfo, Sample

__all__ = ["CoilMaps", "estimate_slice_maps"]


def estimate_slice_maps(sample: Sample, info: FileInfo) -> tuple[torch.Tensor, str]:
    """``(maps complex64 (1, N, H, W), method used)`` of one multi-coil slice, from its own data."""
    k = torch.complex(sample.kspace[0, 0], sample.kspace[0, 1])  # (T, N, H, W) or (T, N, spokes, samples)
    method = info.sensitivity or "espirit"
    if info.layout == "radial":
        traj = torch.stack((sample.mask[0, 1], sample.mask[0, 2]), dim=-1)  # (T, spokes, samples, 2)
        maps, used = estimate_radial_maps(k, traj, (info.height, info.width), method=method)
        return maps[None], used
    m = sample.mask[0, 0] > 0  # (T, H, W)
    if info.layout == "fastmri":
        # every frame holds the one static k-space on its own lines: estimate from their union
        first = m.to(torch.uint8).argmax(dim=0)  # a frame that sampled each location
        k = torch.gather(k, 0, first[None, None].expand(1, *k.shape[1:]))
        m = m.any(dim=0, keepdim=True)
        k = torch.where(m[:, None], k, torch.zeros((), dtype=k.dtype))
    maps, used = estimate_maps(k, m, method=method)  # type: ignore[arg-type]
    return maps.to(torch.complex64)[None], used


class CoilMaps:
    """Fill in the estimated coil maps of a :class:`~a2a_cli.data.layout.Sample`; see the module docstring.

    ``cache``: keep the maps of every slice estimated (per process; DataLoader workers
    each keep their own). ``sample`` is returned as it is when it has maps already or
    one coil.
    """

    def __init__(self, cache: bool = True):
        self._cache: dict[tuple[str, int, str], tuple[torch.Tensor, str]] | None = {} if cache else None

    def __call__(self, sample: Sample, info: FileInfo) -> Sample:
        if sample.coil_maps is not None or not info.coils:
            return sample
        key = (sample.file, int(sample.slice_index), str(info.sensitivity))
        found = self._cache.get(key) if self._cache is not None else None
        if found is None:
            found = estimate_slice_maps(sample, info)
            if self._cache is not None:
                self._cache[key] = found
        return dataclasses.replace(sample, coil_maps=found[0], sensitivity=found[1])

    def __len__(self) -> int:
        """How many slices' maps are kept."""
        return len(self._cache or {})
