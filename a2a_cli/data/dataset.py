"""The lazy k-space Dataset and the batch sampler that keeps shapes apart.

:class:`KspaceDataset` items are ``{"kspace": (2, T, H, W), "mask": (1, T, H, W),
"file": str, "slice": int}`` float32 tensors without a batch dim (multi-coil:
``(2, T, N, H, W)`` and ``"coil_maps"`` complex64 ``(N, H, W)``; radial: the tensors of
:mod:`a2a_cli.nufft`). :class:`ShapeBatchSampler` batches items of one ``(T, H, W)``
(and coil count), so batches stack to ``(B, 2, T, H, W)``.
"""
from __future__ import annotations

import contextlib
import math
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterator, Sequence

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..errors import A2AError
from .coil_maps import CoilMaps
from .hdf5 import open_file
from .layout import FileInfo, Sample, SensitivityChoice, SplitOptions
from .reader import inspect_file, read_item

__all__ = ["KspaceDataset", "ShapeBatchSampler"]

PathLike = str | os.PathLike


class KspaceDataset(Dataset):
    """All (file, slice) pairs of several files, read lazily one slice per item.

    Every file is validated with :func:`~a2a_cli.data.inspect_file` here, so a bad file is
    reported before training starts. ``mode`` is the files' common acquisition mode
    (None if they differ; each file's own is in ``infos``). HDF5 handles are opened on
    first use in each process (DataLoader workers get their own) and at most
    ``max_open_files`` stay open at a time.

    ``dataset[i]`` is ``{"kspace": (2, T, H, W), "mask": (1, T, H, W), "file": str,
    "slice": int}`` (float32 tensors, no batch dim); multi-coil items have k-space
    ``(2, T, N, H, W)`` and ``"coil_maps"`` complex64 ``(N, H, W)`` (chosen by
    ``sensitivity``, see :func:`~a2a_cli.data.layout.with_sensitivity`). Estimated maps
    come from ``coil_maps`` (default: a :class:`~a2a_cli.data.coil_maps.CoilMaps` that
    keeps them, so each item is estimated once per process). ``items`` lists ``(path,
    slice)``, ``shapes`` the ``(T, H, W)`` of each item, ``batch_keys`` what items of one
    batch must share (``(T, H, W, N)``, N = 1 for one coil), ``infos`` the
    :class:`~a2a_cli.data.layout.FileInfo` per file.
    """

    def __init__(
        self, paths: PathLike | Sequence[PathLike], split: SplitOptions | None = None, max_open_files: int = 64,
        mask_file: PathLike | None = None, sensitivity: SensitivityChoice = "auto", coil_maps: CoilMaps | None = None,
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
                self.batch_keys.append(info.frame_shape + (int(info.coils or 1),))
                self._item_info.append(info)
        self.coil_maps = coil_maps if coil_maps is not None else CoilMaps()
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
            f = open_file(Path(path))
            self._handles[path] = f
            while len(self._handles) > self.max_open_files:
                self._handles.popitem(last=False)[1].close()
        else:
            self._handles.move_to_end(path)
        return f

    def __getitem__(self, i: int) -> dict[str, Any]:
        path, s = self.items[i]
        sample = self._read(i, with_reference=False)
        item = {"kspace": sample.kspace[0], "mask": sample.mask[0], "file": path, "slice": s}
        if sample.coil_maps is not None:
            item["coil_maps"] = sample.coil_maps[0]
        return item

    def _read(self, i: int, allow_empty_frames: bool = False, with_reference: bool = True) -> Sample:
        path, s = self.items[i]
        return read_item(self._file(path), self._item_info[i], s, self.split, self.coil_maps,
                         allow_empty_frames=allow_empty_frames, with_reference=with_reference)

    def read(self, i: int, allow_empty_frames: bool = False) -> Sample:
        """Item ``i`` as a full :class:`~a2a_cli.data.layout.Sample` (with the reference, batch dim 1)."""
        return self._read(i, allow_empty_frames=allow_empty_frames)

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
