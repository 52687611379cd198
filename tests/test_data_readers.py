"""The data layer's structure: the reader registry, and coil maps as a separate, cached step."""
from __future__ import annotations

import inspect as pyinspect
from pathlib import Path

import h5py
import numpy as np
import torch

from a2a_cli.coils import estimate_maps
from a2a_cli.data import CoilMaps, KspaceDataset, SplitOptions, inspect_file, read_slice
from a2a_cli.data import coil_maps as coil_maps_module
from a2a_cli.data.reader import READERS, Reader, reader_of
from a2a_cli.radial import simulate_radial
from a2a_cli.simulate import write_case


def _multicoil(tmp_path: Path) -> Path:
    return write_case(tmp_path / "mc.h5", coils=4, slices=2, frames=4, height=24, width=24, acceleration=3,
                      centre_lines=6, seed=3)


def test_every_reader_has_the_protocol_and_names_itself(tmp_path):
    members = [n for n, v in vars(Reader).items() if callable(v) and not n.startswith("_")]
    assert sorted(members) == ["detect", "inspect", "read_mask", "read_reference", "read_sample"]
    for reader in READERS:
        for name in members:
            params = list(pyinspect.signature(getattr(reader, name)).parameters)
            assert params == list(pyinspect.signature(getattr(Reader, name)).parameters)[1:], (reader.NAME, name)
    assert [r.NAME for r in READERS][-1] == "a2a"  # the fallback comes last
    cart = inspect_file(_multicoil(tmp_path))
    radial = inspect_file(simulate_radial(tmp_path / "radial.h5", slices=1, frames=2, size=16, spokes=4, coils=1))
    assert (cart.reader, radial.reader) == ("a2a", "radial")
    assert reader_of(cart).NAME == "a2a" and reader_of(radial).NAME == "radial"


def test_read_slice_estimates_the_maps_of_the_masked_slice(tmp_path):
    path = _multicoil(tmp_path)
    sample = read_slice(path, 1)
    k = torch.complex(sample.kspace[0, 0], sample.kspace[0, 1])  # (T, N, H, W)
    mask = sample.mask[0, 0] > 0
    with h5py.File(path) as f:
        raw = f["kspace"][1]
    assert np.array_equal(k.numpy(), np.where(mask.numpy()[:, None], raw, 0))  # zero outside the mask
    expected, method = estimate_maps(k, mask)
    assert sample.coil_maps.shape == (1, 4, 24, 24) and sample.sensitivity == method
    assert torch.equal(sample.coil_maps[0], expected)


def test_coil_maps_are_estimated_once_per_slice_in_a_dataset(tmp_path, monkeypatch):
    path = _multicoil(tmp_path)
    calls = []
    real = coil_maps_module.estimate_slice_maps

    def counting(sample, info):
        calls.append((sample.file, sample.slice_index))
        return real(sample, info)

    monkeypatch.setattr(coil_maps_module, "estimate_slice_maps", counting)
    ds = KspaceDataset(path)
    first = [ds[i]["coil_maps"] for i in range(len(ds))]
    again = [ds[i]["coil_maps"] for i in range(len(ds))]
    assert calls == [(str(path), 0), (str(path), 1)] and len(ds.coil_maps) == 2
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    # a step without a cache estimates on every call; one given to the dataset is used
    ds_fresh = KspaceDataset(path, coil_maps=CoilMaps(cache=False))
    ds_fresh[0], ds_fresh[0]
    assert len(calls) == 4 and len(ds_fresh.coil_maps) == 0
    # stored maps are read, never estimated
    ds.close(), ds_fresh.close()
    with h5py.File(path, "a") as f:
        f["sensitivity_maps"] = f["true_sensitivity_maps"][()]
    stored = read_slice(path, 0)
    assert stored.sensitivity == "stored" and len(calls) == 4
    with h5py.File(path) as f:
        assert np.array_equal(stored.coil_maps[0].numpy(), f["sensitivity_maps"][0])


def test_split_static_files_estimate_from_all_the_slice_samples(tmp_path):
    rng = np.random.default_rng(2)
    s_n, n, h, w = 1, 4, 24, 24
    k = (rng.standard_normal((s_n, n, h, w)) + 1j * rng.standard_normal((s_n, n, h, w))).astype(np.complex64)
    lines = rng.random(w) < 0.6
    lines[w // 2 - 4:w // 2 + 4] = True
    path = tmp_path / "file1.h5"
    with h5py.File(path, "w") as f:
        f["kspace"] = k * lines
        f["mask"] = lines.astype(np.float32)
        f["ismrmrd_header"] = np.bytes_("<ismrmrdHeader/>")
        f.attrs["acquisition"] = "CORPD_FBK"
    sample = read_slice(path, 0, split=SplitOptions(frames=3, centre_lines=2, seed=1))
    assert sample.kspace.shape == (1, 2, 3, n, h, w)
    union = np.broadcast_to(lines, (h, w)).copy()
    expected, _ = estimate_maps(torch.from_numpy(np.where(union, k[0], 0))[None], torch.from_numpy(union)[None])
    assert torch.equal(sample.coil_maps[0], expected)
