"""Tests of the data layer: file format, lazy reading, validation, writers, sampler."""
from __future__ import annotations

import pickle
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader

import a2a_cli
from a2a_cli.atomic import OutputExistsError, atomic_write
from a2a_cli.data import a2a_file as data_a2a_file
from a2a_cli.data import dataset as data_dataset
from a2a_cli.errors import A2AError, InputError
from a2a_cli.data import (
    KspaceDataset,
    ReconstructionWriter,
    ShapeBatchSampler,
    SplitOptions,
    centre_line_indices,
    inspect_file,
    mask_is_lines,
    read_mask,
    read_slice,
    split_lines,
    write_a2a_file,
)
from a2a_cli.simulate import add_noise, fft2c, line_masks, phantom_dynamic, phantom_static, write_case

T, H, W = 4, 16, 16


def simulated(mode: str, slices: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Small simulated data: kspace (S, T, H, W), line masks (S, T, W), reference."""
    rng = np.random.default_rng(seed)
    ks, ms, refs = [], [], []
    for _ in range(slices):
        x = phantom_dynamic(H, W, T, rng=rng) if mode == "dynamic" else phantom_static(H, W, rng=rng)
        m = line_masks(T, W, acceleration=4, centre_lines=2, rng=rng)
        k = np.broadcast_to(fft2c(x), (T, H, W)) * m[:, None, :]
        ks.append(add_noise(k, 30.0, rng, mask=m[:, None, :]))
        ms.append(m)
        refs.append(x)
    return np.stack(ks), np.stack(ms), np.stack(refs)


def complex_of(t: torch.Tensor) -> np.ndarray:
    """(1, 2, ...) float tensor -> complex numpy (...)."""
    return (t[0, 0] + 1j * t[0, 1]).numpy().astype(np.complex64)


# ----------------------------------------------------------------------------------
# 1. round trips
# ----------------------------------------------------------------------------------
@pytest.mark.parametrize("style", ["complex", "compound", "float2"])
@pytest.mark.parametrize("mode", ["dynamic", "sequential"])
@pytest.mark.parametrize("slices", [None, 3])  # None: 3D single-slice layout
@pytest.mark.parametrize("mask_kind", ["lines", "full", None])
def test_round_trip(tmp_path, style, mode, slices, mask_kind):
    k, m, ref = simulated(mode, slices or 1)
    full_mask = np.broadcast_to(m[:, :, None, :], k.shape)
    stored = {"lines": m, "full": full_mask, None: None}[mask_kind]
    if slices is None:
        k, ref = k[0], ref[0]
        stored = None if stored is None else stored[0]
    path = write_a2a_file(tmp_path / "case.h5", k, mask=stored, reference=ref, acquisition=mode, complex_style=style)

    info = inspect_file(path)
    assert (info.layout, info.mode, info.n_slices, info.frame_shape) == ("a2a", mode, slices or 1, (T, H, W))
    assert info.complex_style == style and info.has_reference
    assert info.mask_source == ("derived" if mask_kind is None else "stored")
    assert info.reference_static == (mode == "sequential")
    k4 = k if slices else k[None]
    r4 = ref if slices else ref[None]
    for s in range(slices or 1):
        sample = read_slice(path, s)
        assert sample.kspace.shape == (1, 2, T, H, W) and sample.kspace.dtype == torch.float32
        assert sample.mask.shape == (1, 1, T, H, W)
        assert sample.slice_index == s and sample.file == str(path)
        np.testing.assert_array_equal(complex_of(sample.kspace), k4[s])
        np.testing.assert_array_equal(sample.mask[0, 0].numpy().astype(bool), full_mask[s])
        expected_ref_shape = (1, 2, T, H, W) if mode == "dynamic" else (1, 2, H, W)
        assert sample.reference.shape == expected_ref_shape
        np.testing.assert_array_equal(complex_of(sample.reference), r4[s])
        np.testing.assert_array_equal(read_mask(path, slice_index=s), full_mask[s])


@pytest.mark.parametrize("style", ["complex", "compound", "float2"])
def test_write_case_round_trip(tmp_path, style):
    path = write_case(tmp_path / "c.h5", mode="dynamic", slices=2, frames=T, height=H, width=W, seed=3, complex_style=style)
    with h5py.File(path) as f:
        assert f.attrs["acquisition"] == "dynamic"
        mask = f["mask"][()].astype(bool)
    ref = write_case(tmp_path / "ref.h5", mode="dynamic", slices=2, frames=T, height=H, width=W, seed=3)
    with h5py.File(ref) as f:
        k, r = f["kspace"][()], f["reference"][()]
    for s in range(2):
        sample = read_slice(path, s)
        np.testing.assert_array_equal(complex_of(sample.kspace), k[s])
        np.testing.assert_array_equal(complex_of(sample.reference), r[s])
        assert np.array_equal(sample.mask[0, 0, :, 0].numpy().astype(bool), mask[s])


@pytest.mark.parametrize("names", [("r", "i"), ("re", "im"), ("Real", "Imag")])
def test_compound_field_names_and_float64(tmp_path, names):
    k, m, _ = simulated("dynamic", 1)
    data = np.empty(k.shape, dtype=[(names[0], "<f8"), (names[1], "<f8")])
    data[names[0]], data[names[1]] = k.real, k.imag
    path = tmp_path / "c.h5"
    with h5py.File(path, "w") as f:
        f["kspace"] = data
    sample = read_slice(path, 0)  # 4D without the acquisition attribute: dynamic
    assert inspect_file(path).mode == "dynamic"
    np.testing.assert_array_equal(complex_of(sample.kspace), k[0])


def test_real_reference_and_mask_types(tmp_path):
    k, m, ref = simulated("dynamic", 2)
    path = tmp_path / "c.h5"
    with h5py.File(path, "w") as f:
        f["kspace"] = k
        f["mask"] = m.astype(np.float64)  # MATLAB-style double 0/1 mask
        f["reference"] = np.abs(ref).astype(np.float32)
    sample = read_slice(path, 1)
    np.testing.assert_allclose(sample.reference[0, 0].numpy(), np.abs(ref[1]))
    assert float(sample.reference[0, 1].abs().max()) == 0.0
    np.testing.assert_array_equal(sample.mask[0, 0, :, 0].numpy().astype(bool), m[1])


def test_samples_outside_stored_mask_are_ignored(tmp_path):
    k, m, _ = simulated("dynamic", 1)
    noisy = k + 0.5  # non-zero everywhere
    path = write_a2a_file(tmp_path / "c.h5", noisy, mask=m)
    got = complex_of(read_slice(path, 0).kspace)
    full = np.broadcast_to(m[:, :, None, :], k.shape)[0]
    np.testing.assert_array_equal(got[~full], 0)
    np.testing.assert_array_equal(got[full], noisy[0][full])


def test_mask_is_lines(tmp_path):
    k, m, _ = simulated("dynamic", 1)
    path = write_a2a_file(tmp_path / "c.h5", k)
    assert mask_is_lines(read_mask(path))
    mask = read_mask(path)
    mask[0, 0, 0] = ~mask[0, 0, 0]
    assert not mask_is_lines(mask)


# ----------------------------------------------------------------------------------
# 2. lazy reading
# ----------------------------------------------------------------------------------
def test_reads_one_slice_at_a_time(tmp_path, monkeypatch):
    s, t, h, w = 40, 8, 64, 64
    rng = np.random.default_rng(0)
    m = rng.random((s, t, w)) < 0.25
    k = ((rng.standard_normal((s, t, h, w)) + 1j * rng.standard_normal((s, t, h, w))) * m[:, :, None, :]).astype(np.complex64)
    path = write_a2a_file(tmp_path / "big.h5", k, mask=m)
    slice_bytes = t * h * w * 8

    largest = []
    original = h5py.Dataset.__getitem__

    def recording(self, sel):
        out = original(self, sel)
        largest.append(np.asarray(out).nbytes)
        return out

    monkeypatch.setattr(h5py.Dataset, "__getitem__", recording)
    info = inspect_file(path)
    ds = KspaceDataset([path])
    read_slice(path, 0, info=info)  # warm up imports and caches before measuring
    tracemalloc.start()
    try:
        for i in range(s):
            sample = read_slice(path, i, info=info)
            assert torch.equal(sample.kspace[0, 0], torch.from_numpy(k[i].real))
            item = ds[i]
            assert item["kspace"].shape == (2, t, h, w)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        ds.close()
    assert max(largest) <= slice_bytes  # no h5py read returned more than one slice
    assert peak < 8 * slice_bytes < k.nbytes / 4  # the whole file (10 MB) was never in memory


# ----------------------------------------------------------------------------------
# 3. bad inputs
# ----------------------------------------------------------------------------------
def good_file(tmp_path: Path, name: str = "scan.h5") -> Path:
    k, m, ref = simulated("dynamic", 2)
    return write_a2a_file(tmp_path / name, k, mask=m, reference=ref)


def expect_error(path: Path, words: list[str], call=None) -> InputError:
    with pytest.raises(InputError) as e:
        (call or inspect_file)(path)
    message = str(e.value)
    assert path.name in message
    for word in words:
        assert word in message, message
    return e.value


def write_raw(path: Path, **datasets) -> Path:
    with h5py.File(path, "w") as f:
        for name, value in datasets.items():
            if name == "attrs":
                f.attrs.update(value)
            else:
                f[name] = value
    return path


def test_missing_file(tmp_path):
    expect_error(tmp_path / "nothere.h5", ["not found"])
    expect_error(tmp_path / "nothere.h5", ["not found"], lambda p: read_slice(p, 0))


def test_not_hdf5(tmp_path):
    path = tmp_path / "notes.h5"
    path.write_text("this is not HDF5")
    expect_error(path, ["not an HDF5 file"])


def test_directory(tmp_path):
    (tmp_path / "dir.h5").mkdir()
    expect_error(tmp_path / "dir.h5", ["directory"])


def test_truncated(tmp_path):
    path = good_file(tmp_path, "cut.h5")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    expect_error(path, ["truncated"])


def test_missing_kspace(tmp_path):
    path = write_raw(tmp_path / "nok.h5", image=np.zeros((2, 2), np.complex64))
    expect_error(path, ["no dataset 'kspace'", "image"])


def test_kspace_is_a_group(tmp_path):
    path = tmp_path / "group.h5"
    with h5py.File(path, "w") as f:
        f.create_group("kspace")
    expect_error(path, ["group"])


@pytest.mark.parametrize("shape", [(64, 64), (2, 2, 4, 8, 8), (8,)])
def test_wrong_ndim(tmp_path, shape):
    path = write_raw(tmp_path / "ndim.h5", kspace=np.ones(shape, np.complex64))
    expect_error(path, ["dimensions", str(shape).replace(",)", ")")])


@pytest.mark.parametrize("dtype,word", [(np.float32, "real-valued"), (np.int16, "integers"), (np.uint8, "integers")])
def test_real_valued_kspace(tmp_path, dtype, word):
    path = write_raw(tmp_path / "real.h5", kspace=np.ones((4, 8, 8), dtype), attrs={"acquisition": "dynamic"})
    expect_error(path, [word, "complex"])


def test_compound_without_complex_fields(tmp_path):
    data = np.zeros((2, 4, 8, 8), dtype=[("a", "<f4"), ("b", "<f4")])
    path = write_raw(tmp_path / "compound.h5", kspace=data)
    expect_error(path, ["compound", "real/imag"])


def test_string_dataset(tmp_path):
    expect_error(write_raw(tmp_path / "str.h5", kspace="hello"), ["text"])
    path = write_raw(tmp_path / "strmask.h5", kspace=np.ones((2, 4, 8, 8), np.complex64), mask="oops")
    expect_error(path, ["'mask'", "text"])


def test_zero_size(tmp_path):
    path = tmp_path / "zero.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", shape=(2, 0, 8, 8), dtype=np.complex64)
    expect_error(path, ["zero-size"])


def test_empty_dataspace(tmp_path):
    path = write_raw(tmp_path / "null.h5", kspace=h5py.Empty("f4"))
    expect_error(path, ["empty"])


@pytest.mark.parametrize("mask_shape", [(4, 15), (3, 4, 16), (2, 4, 16, 15)])
def test_mask_shape_mismatch(tmp_path, mask_shape):
    k, _, _ = simulated("dynamic", 2)
    path = write_raw(tmp_path / "mask.h5", kspace=k, mask=np.ones(mask_shape, np.uint8))
    expect_error(path, ["'mask' has shape", "does not fit", "(T, W) = (4, 16)"])


def test_reference_shape_mismatch(tmp_path):
    k, _, ref = simulated("dynamic", 2)
    path = write_raw(tmp_path / "ref.h5", kspace=k, reference=ref[:, :, :8])
    expect_error(path, ["'reference' has shape", "does not fit"])


def test_mask_values(tmp_path, monkeypatch):
    k, m, _ = simulated("dynamic", 2)
    bad = m.astype(np.uint8)
    bad[1, 2, 3] = 2
    path = write_raw(tmp_path / "values.h5", kspace=k, mask=bad)
    expect_error(path, ["other than 0 and 1", "2"])
    # large masks are checked when each slice is read
    monkeypatch.setattr(data_a2a_file, "_MASK_CHECK_LIMIT", 0)
    read_slice(path, 0)
    expect_error(path, ["slice 1", "other than 0 and 1"], lambda p: read_slice(p, 1))
    path2 = write_raw(tmp_path / "dtype.h5", kspace=k, mask=m.astype(np.complex64))
    expect_error(path2, ["'mask'", "data type"])


@pytest.mark.parametrize("value,word", [(np.nan, "NaN"), (np.inf, "Inf"), (complex(0, -np.inf), "Inf")])
def test_non_finite(tmp_path, value, word):
    k, m, _ = simulated("dynamic", 2)
    k[1, 0, 3, 3] = value
    path = write_a2a_file(tmp_path / "nan.h5", k, mask=m)
    read_slice(path, 0)  # the other slice is fine
    err = expect_error(path, ["slice 1", word], lambda p: read_slice(p, 1))
    assert "1 " + word in err.problem


def test_empty_frame(tmp_path):
    k, m, _ = simulated("dynamic", 1)
    m[0, 2] = False
    k[0, 2] = 0
    path = write_a2a_file(tmp_path / "empty.h5", k, mask=m)
    expect_error(path, ["slice 0", "frame(s) 2", "no k-space samples"], lambda p: read_slice(p, 0))
    sample = read_slice(path, 0, allow_empty_frames=True)
    assert float(sample.mask[0, 0, 2].sum()) == 0 and float(sample.mask[0, 0, 1].sum()) > 0
    assert not read_mask(path)[2].any()
    # derived masks too
    path2 = write_a2a_file(tmp_path / "empty2.h5", k)
    expect_error(path2, ["no k-space samples"], lambda p: read_slice(p, 0))


def test_slice_out_of_range(tmp_path):
    path = good_file(tmp_path)
    expect_error(path, ["slice 2 does not exist", "2 slices"], lambda p: read_slice(p, 2))
    expect_error(path, ["slice -1"], lambda p: read_mask(p, slice_index=-1))


def test_fastmri_without_frames_reads_single_frames(tmp_path):
    # a (slices, H, W) stack without the frames option: every slice is one frame
    k, _, _ = simulated("sequential", 1)
    path = write_a2a_file(tmp_path / "knee.h5", k[0], acquisition=None)  # T slices of (H, W)
    info = inspect_file(path)
    assert (info.layout, info.mode, info.n_slices, info.frame_shape) == ("fastmri", "sequential", T, (1, H, W))
    sample = read_slice(path, 2)
    assert sample.kspace.shape == (1, 2, 1, H, W)
    assert np.array_equal(complex_of(sample.kspace)[0], k[0, 2])
    assert np.array_equal(sample.mask[0, 0, 0].numpy() != 0, k[0, 2] != 0)
    assert len(KspaceDataset([path])) == T


def test_static_4d_rejected(tmp_path):
    k, _, _ = simulated("dynamic", 2)
    path = write_a2a_file(tmp_path / "multicoil.h5", k, acquisition="static")
    expect_error(path, ["static", "4D", "multi-coil"], lambda p: inspect_file(p, SplitOptions(4)))


def test_dataset_reports_bad_file_first(tmp_path):
    good = good_file(tmp_path, "good.h5")
    bad = write_raw(tmp_path / "bad.h5", kspace=np.ones((2, 4, 8, 8), np.float32))
    expect_error(bad, ["real-valued"], lambda p: KspaceDataset([good, p]))


def test_split_options_validation():
    with pytest.raises(A2AError, match="frames"):
        SplitOptions(0)
    with pytest.raises(A2AError, match="assignment"):
        SplitOptions(4, "sometimes")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------
# 4. atomic writes
# ----------------------------------------------------------------------------------
def test_atomic_write_failure_leaves_nothing(tmp_path):
    out = tmp_path / "out.h5"
    with pytest.raises(ZeroDivisionError):
        with atomic_write(out) as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(".out.h5.partial-")
            tmp.write_bytes(b"half")
            1 / 0
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_overwrite(tmp_path):
    out = tmp_path / "out.txt"
    out.write_text("old")
    with pytest.raises(OutputExistsError) as e:
        with atomic_write(out) as tmp:
            tmp.write_text("new")
    assert "out.txt" in str(e.value) and "overwrite" in str(e.value)
    assert isinstance(e.value, InputError) and out.read_text() == "old"
    with atomic_write(out, overwrite=True) as tmp:
        tmp.write_text("new")
    assert out.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    with pytest.raises(InputError, match="does not exist"):
        with atomic_write(tmp_path / "nodir" / "x.txt"):
            pass


def test_reconstruction_writer(tmp_path):
    out = tmp_path / "recon.h5"
    rng = np.random.default_rng(0)
    data = (rng.standard_normal((2, T, H, W)) + 1j * rng.standard_normal((2, T, H, W))).astype(np.complex64)
    attrs = {"source": tmp_path / "scan.h5", "checkpoint": "model.pt", "checkpoint_sha256": "ab" * 32, "mode": "dynamic",
             "network": {"name": "cnn", "depth": 5}, "skip": None}
    with ReconstructionWriter(out, n_slices=2, frame_shape=(T, H, W), attrs=attrs, extra=("zero_filled",)) as w:
        w.write(1, torch.from_numpy(data[1]))
        w.write(0, data[0])
        # the network's real layout (1, 2, T, H, W) is accepted too
        w.write(0, torch.stack((torch.from_numpy(data[0].real), torch.from_numpy(data[0].imag)))[None], name="zero_filled")
        w.write(1, data[1], name="zero_filled")
        assert not out.exists()
    with h5py.File(out) as f:
        rec = f["reconstruction"]
        assert rec.dtype == np.complex64 and rec.shape == (2, T, H, W)
        assert rec.chunks == (1, 1, H, W) and rec.compression == "gzip"
        np.testing.assert_array_equal(rec[()], data)
        np.testing.assert_array_equal(f["zero_filled"][()], data)
        assert f.attrs["source"] == str(tmp_path / "scan.h5") and f.attrs["checkpoint_sha256"] == "ab" * 32
        assert f.attrs["a2a_version"] == a2a_cli.__version__ and f.attrs["created"][:2] == "20"
        assert "cnn" in f.attrs["network"] and "skip" not in f.attrs
    with pytest.raises(OutputExistsError):
        ReconstructionWriter(out, 2, (T, H, W), {})
    with ReconstructionWriter(out, 1, (H, W), {"mode": "sequential", "a2a_version": "x"}, overwrite=True) as w:
        w.write(0, data[0, 0])
    with h5py.File(out) as f:
        assert f["reconstruction"].shape == (1, H, W) and f["reconstruction"].chunks == (1, H, W)
        assert f.attrs["a2a_version"] == "x" and "zero_filled" not in f


def test_reconstruction_writer_failures_leave_nothing(tmp_path):
    out = tmp_path / "recon.h5"
    with pytest.raises(KeyboardInterrupt):
        with ReconstructionWriter(out, 2, (H, W), {}) as w:
            w.write(0, np.zeros((H, W), np.complex64))
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match="slices missing"):
        with ReconstructionWriter(out, 2, (H, W), {}) as w:
            w.write(0, np.zeros((H, W), np.complex64))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="expected complex"):
        with ReconstructionWriter(out, 1, (H, W), {}) as w:
            w.write(0, np.zeros((H, W), np.float32))
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------
# 5. fastMRI-style static files and splitting
# ----------------------------------------------------------------------------------
def fastmri_file(tmp_path: Path, mask: str | None = "W", acquisition: str | None = None) -> tuple[Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    k = np.stack([fft2c(phantom_static(H, W, rng=rng)) for _ in range(3)]).astype(np.complex64)
    lines = rng.random(W) < 0.6
    lines[centre_line_indices(W, 2)] = True
    k = k * lines
    stored = {"W": lines, "HW": np.broadcast_to(lines, (H, W)), None: None}[mask]
    path = write_a2a_file(tmp_path / "knee.h5", k, mask=stored, acquisition=acquisition)
    return path, k, lines


@pytest.mark.parametrize("assignment", ["random", "interleaved"])
@pytest.mark.parametrize("mask", ["W", "HW", None])
def test_fastmri_split(tmp_path, assignment, mask):
    path, k, lines = fastmri_file(tmp_path, mask)
    split = SplitOptions(frames=3, assignment=assignment, centre_lines=2, seed=1)
    info = inspect_file(path, split)
    assert (info.layout, info.mode, info.mask_source, info.n_slices, info.frame_shape) == ("fastmri", "sequential", "split", 3, (3, H, W))
    centre = np.zeros(W, bool)
    centre[centre_line_indices(W, 2)] = True
    for s in range(3):
        sample = read_slice(path, s, split)
        m = sample.mask[0, 0].numpy().astype(bool)
        assert mask_is_lines(m)
        frames = m[:, 0, :]
        assert (frames.sum(axis=0) == np.where(centre, 3, lines)).all()  # disjoint apart from centre
        np.testing.assert_array_equal(frames.any(axis=0), lines)  # union = the sampled lines
        counts = frames.sum(axis=1)
        assert counts.max() - counts.min() <= 1
        np.testing.assert_array_equal(complex_of(sample.kspace), (k[s] * m).astype(np.complex64))
        np.testing.assert_array_equal(read_mask(path, split, s), m)


def test_fastmri_split_determinism_and_assignment(tmp_path):
    path, _, lines = fastmri_file(tmp_path, acquisition="CORPD_FBK")  # fastMRI protocol name
    split = SplitOptions(frames=4, assignment="random", centre_lines=2, seed=7)
    a, b = read_mask(path, split, 0), read_mask(path, split, 0)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, read_mask(path, SplitOptions(4, "random", 2, seed=8), 0))
    assert not np.array_equal(a, read_mask(path, split, 1))  # each slice its own pattern
    inter = read_mask(path, SplitOptions(4, "interleaved", 2), 0)[:, 0, :]
    rest = np.flatnonzero(lines & ~np.isin(np.arange(W), centre_line_indices(W, 2)))
    for j, line in enumerate(rest):
        assert inter[j % 4, line] and inter[:, line].sum() == 1
    # a2a files store their own frames: the split options are refused, never silently ignored
    good = good_file(tmp_path)
    assert inspect_file(good).mask_source == "stored"
    with pytest.raises(InputError, match=r"scan\.h5.*stores its own frames.*leave --frames out"):
        inspect_file(good, split)


@settings(max_examples=40, deadline=None)
@given(
    lines=st.lists(st.booleans(), min_size=1, max_size=40),
    frames=st.integers(1, 8),
    centre=st.integers(0, 6),
    assignment=st.sampled_from(["random", "interleaved"]),
    seed=st.integers(0, 3),
)
def test_split_lines_properties(lines, frames, centre, assignment, seed):
    lines = np.array(lines)
    out = split_lines(lines, SplitOptions(frames, assignment, centre, seed))
    is_centre = np.isin(np.arange(lines.size), centre_line_indices(lines.size, centre))
    np.testing.assert_array_equal(out.any(axis=0), lines)
    np.testing.assert_array_equal(out.sum(axis=0), np.where(is_centre & lines, frames, lines.astype(int)))
    own = out[:, ~is_centre].sum(axis=1)
    assert own.max() - own.min() <= 1


# ----------------------------------------------------------------------------------
# 6. dataset and sampler
# ----------------------------------------------------------------------------------
def mixed_files(tmp_path: Path) -> list[Path]:
    a = write_case(tmp_path / "a.h5", slices=3, frames=4, height=16, width=16, acceleration=4, centre_lines=2, seed=1)
    b = write_case(tmp_path / "b.h5", slices=2, frames=6, height=16, width=12, acceleration=4, centre_lines=2, seed=2)
    c = write_case(tmp_path / "c.h5", slices=2, frames=4, height=16, width=16, acceleration=4, centre_lines=2, seed=3)
    return [a, b, c]


def test_dataset(tmp_path, monkeypatch):
    paths = mixed_files(tmp_path)
    ds = KspaceDataset(paths)
    assert len(ds) == 7 and ds.mode == "dynamic" and len(ds.infos) == 3
    assert ds.items[3] == (str(paths[1]), 0) and ds.shapes[3] == (6, 16, 12) and ds.shapes[0] == (4, 16, 16)
    item = ds[4]
    assert item["kspace"].shape == (2, 6, 16, 12) and item["mask"].shape == (1, 6, 16, 12)
    assert (item["file"], item["slice"]) == (str(paths[1]), 1)
    assert torch.equal(item["kspace"], read_slice(paths[1], 1).kspace[0])
    assert ds.read(4).reference.shape == (1, 2, 6, 16, 12)
    handle = ds._handles[str(paths[1])]
    ds[3]
    assert ds._handles[str(paths[1])] is handle  # reused in the same process
    monkeypatch.setattr(data_dataset.os, "getpid", lambda: -1)  # as if in a forked worker
    ds[3]
    assert ds._handles[str(paths[1])] is not handle and len(ds._handles) == 1
    monkeypatch.undo()
    clone = pickle.loads(pickle.dumps(ds))
    assert torch.equal(clone[0]["kspace"], ds[0]["kspace"])
    small = KspaceDataset(paths, max_open_files=1)
    for i in range(len(small)):
        small[i]
        assert len(small._handles) == 1
    small.close()
    ds.close()
    assert ds._handles == {}
    assert torch.equal(ds[0]["mask"], clone[0]["mask"])  # reopens after close


def test_dataset_mixed_modes(tmp_path):
    a = write_case(tmp_path / "d.h5", mode="dynamic", slices=1, frames=4, height=16, width=16, acceleration=4)
    b = write_case(tmp_path / "s.h5", mode="sequential", slices=1, frames=4, height=16, width=16, acceleration=4)
    ds = KspaceDataset([a, b])
    assert ds.mode is None and [i.mode for i in ds.infos] == ["dynamic", "sequential"]
    assert KspaceDataset([b]).mode == "sequential"
    with pytest.raises(A2AError, match="no input files"):
        KspaceDataset([])


def test_dataloader_with_workers(tmp_path):
    paths = mixed_files(tmp_path)
    ds = KspaceDataset(paths)
    ds[0]  # a handle open in the parent before the workers fork
    sampler = ShapeBatchSampler(ds, batch_size=2, seed=0)
    loader = DataLoader(ds, batch_sampler=sampler, num_workers=2)
    seen = []
    for batch in loader:
        assert batch["kspace"].ndim == 5 and batch["mask"].shape[1] == 1
        seen += list(zip(batch["file"], batch["slice"].tolist()))
    assert sorted(seen) == sorted(ds.items)


def test_batch_sampler_homogeneous_and_complete():
    shapes = [(4, 16, 16)] * 7 + [(6, 16, 12)] * 4 + [(4, 8, 8)] * 2
    shapes = [shapes[i] for i in np.random.default_rng(0).permutation(len(shapes))]
    sampler = ShapeBatchSampler(shapes, batch_size=3, seed=1)
    orders = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) == 3 + 2 + 1
        assert all(len({shapes[i] for i in b}) == 1 and 1 <= len(b) <= 3 for b in batches)
        flat = [i for b in batches for i in b]
        assert sorted(flat) == list(range(len(shapes)))
        orders.append(flat)
    assert orders[0] != orders[1]
    sampler.set_epoch(0)
    assert [i for b in sampler for i in b] == orders[0]  # deterministic per epoch
    plain = ShapeBatchSampler(shapes, batch_size=3, shuffle=False)
    assert [i for b in plain for i in b] == sorted(range(len(shapes)), key=lambda i: (list(dict.fromkeys(shapes)).index(shapes[i]), i))
    dropped = ShapeBatchSampler(shapes, batch_size=3, drop_last=True)
    assert all(len(b) == 3 for b in dropped) and len(list(dropped)) == len(dropped) == 2 + 1


@pytest.mark.parametrize("replicas,drop_last", [(2, False), (3, False), (4, False), (3, True)])
def test_batch_sampler_sharding(replicas, drop_last):
    shapes = [(4, 16, 16)] * 10 + [(6, 16, 12)] * 5
    for epoch in (0, 1):
        per_rank = []
        for rank in range(replicas):
            sampler = ShapeBatchSampler(shapes, batch_size=2, seed=3, num_replicas=replicas, rank=rank, drop_last=drop_last)
            sampler.set_epoch(epoch)
            batches = list(sampler)
            assert len(batches) == len(sampler)
            assert all(len({shapes[i] for i in b}) == 1 for b in batches)
            per_rank.append([i for b in batches for i in b])
        flat = [i for r in per_rank for i in r]
        assert len(flat) == len(set(flat))  # ranks are disjoint
        counts = [len(ShapeBatchSampler(shapes, 2, num_replicas=replicas, rank=r, drop_last=drop_last)) for r in range(replicas)]
        if drop_last:
            assert len(set(counts)) == 1
        else:
            assert sorted(flat) == list(range(len(shapes)))  # and cover every item once
            assert max(counts) - min(counts) <= 1
    with pytest.raises(A2AError):
        ShapeBatchSampler(shapes, 2, num_replicas=2, rank=2)


def test_integer_reference_is_real(tmp_path):
    k, _, ref = simulated("sequential", 1)
    path = write_raw(tmp_path / "intref.h5", kspace=k, reference=(np.abs(ref) * 1000).astype(np.uint16))
    sample = read_slice(path, 0)
    assert sample.reference.shape == (1, 2, H, W) and float(sample.reference[0, 0].max()) > 100
    static = write_raw(tmp_path / "static.h5", kspace=k, reference=np.zeros((1, H, W), np.complex64))
    assert inspect_file(static).reference_static  # (S, H, W) reference for (S, T, H, W) k-space
