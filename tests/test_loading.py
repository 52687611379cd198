"""Loading many files with DataLoader worker processes: own HDF5 handles per worker, one slice per item."""
from __future__ import annotations

import os
import pickle

import numpy as np
import torch
from torch.utils.data import DataLoader

from a2a_cli.data import KspaceDataset, ShapeBatchSampler, read_slice
from a2a_cli.simulate import write_case


class _Traced(KspaceDataset):
    """Also reports which process read the item and which files it holds open."""

    def __getitem__(self, i: int) -> dict:
        item = super().__getitem__(i)
        item["pid"] = os.getpid()
        item["owner"] = self._pid
        item["open"] = len(self._handles)
        return item


def _files(tmp_path, n: int = 6) -> list:
    return [write_case(tmp_path / f"f{k}.h5", slices=1 + k % 3, frames=4, height=16, width=16, seed=k) for k in range(n)]


def test_workers_over_many_files(tmp_path):
    paths = _files(tmp_path)
    ds = _Traced(paths, max_open_files=2)
    ds[0]  # the parent holds a handle when the workers fork: they must not share it
    parent_handles = dict(ds._handles)
    sampler = ShapeBatchSampler(ds, batch_size=1, seed=0)
    loader = DataLoader(ds, batch_sampler=sampler, num_workers=2)
    seen, pids = [], set()
    for batch in loader:
        f, s = batch["file"][0], int(batch["slice"][0])
        seen.append((f, s))
        pid = int(batch["pid"][0])
        pids.add(pid)
        assert pid != os.getpid() and int(batch["owner"][0]) == pid  # the worker reset the handles to its own
        assert 1 <= int(batch["open"][0]) <= 2  # at most max_open_files handles per worker
        expected = read_slice(f, s)  # one slice per item, as read on its own
        torch.testing.assert_close(batch["kspace"][0], expected.kspace[0])
        torch.testing.assert_close(batch["mask"][0], expected.mask[0])
    assert sorted(seen) == sorted(ds.items) and len(seen) == sum(1 + k % 3 for k in range(6))
    assert len(pids) == 2
    assert ds._handles == parent_handles and all(h.id.valid for h in ds._handles.values())  # parent's untouched


def test_dataset_pickles_without_handles(tmp_path):
    """Spawned workers get a pickled dataset: no handles travel, they reopen on first use."""
    ds = KspaceDataset(_files(tmp_path, 3), max_open_files=1)
    first = ds[0]
    assert len(ds._handles) == 1
    clone = pickle.loads(pickle.dumps(ds))
    assert len(clone._handles) == 0
    for i in range(len(clone)):
        np.testing.assert_array_equal(clone[i]["kspace"].numpy(), ds[i]["kspace"].numpy())
    assert len(clone._handles) == 1  # LRU: one open file at a time
    np.testing.assert_array_equal(first["kspace"].numpy(), clone[0]["kspace"].numpy())
