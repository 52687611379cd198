"""Every malformed input is answered with one clear message (exit code 2), never a traceback,
and leaves no output behind; outputs never replace inputs or existing files unasked."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cli_runner import invoke
from a2a_cli.checkpoints import save_checkpoint, sha256_of
from a2a_cli.errors import InputError
from a2a_cli.data import SplitOptions, inspect_file, read_mask, read_slice
from a2a_cli.models import build_model
from a2a_cli.simulate import write_case

S, T, H, W = 1, 4, 8, 8
TRAIN = ["--steps", "2", "--model", "cnn2dt", "--model-option", "channels=4", "--model-option", "depth=2", "--device", "cpu"]


def lines_mask(s: int = S, t: int = T, w: int = W) -> np.ndarray:
    """0/1 ``(S, T, W)``: interleaved lines plus the centre line in every frame."""
    m = np.zeros((s, t, w), np.uint8)
    for frame in range(t):
        m[:, frame, frame::t] = 1
    m[:, :, w // 2] = 1
    return m


def kspace_for(mask: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(0)
    s, t, w = mask.shape
    k = (rng.standard_normal((s, t, H, w)) + 1j * rng.standard_normal((s, t, H, w))).astype(np.complex64)
    return k * mask[:, :, None, :]


def write_h5(path: Path, attrs: dict | None = None, **datasets) -> Path:
    with h5py.File(path, "w") as f:
        for name, value in datasets.items():
            if isinstance(value, tuple):  # (shape, dtype): declared, never written
                f.create_dataset(name, shape=value[0], dtype=value[1], chunks=(1,) * (len(value[0]) - 2) + value[0][-2:])
            else:
                f.create_dataset(name, data=value)
        for key, value in ({"acquisition": "dynamic"} | (attrs or {})).items():
            f.attrs[key] = value
    return path


def good(path: Path) -> Path:
    m = lines_mask()
    return write_h5(path, kspace=kspace_for(m), mask=m)


def with_bad_value(value: complex) -> Callable[[Path], Path]:
    def make(path: Path) -> Path:
        m = lines_mask()
        k = kspace_for(m)
        k[0, 0, 2, 0] = value  # line 0 is sampled in frame 0
        return write_h5(path, kspace=k, mask=m)
    return make


def truncated(path: Path) -> Path:
    good(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def empty_frame(path: Path) -> Path:
    m = lines_mask()
    m[0, 1] = 0
    return write_h5(path, kspace=kspace_for(m), mask=m)


def mask_with(value: int) -> Callable[[Path], Path]:
    def make(path: Path) -> Path:
        m = lines_mask()
        k = kspace_for(m)
        m[0, 2, 3] = value
        return write_h5(path, kspace=k, mask=m)
    return make


#: case -> (file maker, words the message must hold)
CASES: dict[str, tuple[Callable[[Path], Path], list[str]]] = {
    "missing file": (lambda p: p, ["file not found"]),
    "not HDF5": (lambda p: (p.write_text("kspace = [1, 2, 3]\n"), p)[1], ["not an HDF5 file"]),
    "truncated HDF5": (truncated, ["truncated"]),
    "no kspace": (lambda p: write_h5(p, data=kspace_for(lines_mask())), ["no dataset 'kspace'", "data"]),
    "wrong ndim": (lambda p: write_h5(p, kspace=np.ones((T, W), np.complex64)), ["2 dimensions", "(4, 8)"]),
    "real-valued k-space": (lambda p: write_h5(p, kspace=np.ones((S, T, H, W), np.float32)), ["real-valued", "complex"]),
    "integer k-space": (lambda p: write_h5(p, kspace=np.ones((S, T, H, W), np.int16)), ["integers", "complex"]),
    "strings for k-space": (lambda p: write_h5(p, kspace=np.array([b"a", b"b"])), ["text (strings), not numbers"]),
    "strings for mask": (lambda p: write_h5(p, kspace=kspace_for(lines_mask()), mask=np.array([b"1"] * W)),
                         ["'mask' holds text"]),
    "zero-size": (lambda p: write_h5(p, kspace=np.ones((S, 0, H, W), np.complex64)), ["zero-size", "(1, 0, 8, 8)"]),
    "huge dims": (lambda p: write_h5(p, kspace=((1, 10**9, 64, 64), np.complex64)),
                  ["1000000000 frames", "limit", "A2A_MAX_SLICE_SAMPLES"]),
    "huge slice count": (lambda p: write_h5(p, kspace=((10**9, T, H, W), np.complex64)), ["1000000000 slices", "A2A_MAX_SLICES"]),
    "mask values 2": (mask_with(2), ["values other than 0 and 1", "2"]),
    "mask shape mismatch": (lambda p: write_h5(p, kspace=kspace_for(lines_mask()), mask=lines_mask(t=3)),
                            ["'mask' has shape (1, 3, 8)", "does not fit"]),
    "reference shape mismatch": (lambda p: write_h5(p, kspace=kspace_for(lines_mask()), reference=np.ones((2, 5, 5), np.complex64)),
                                 ["'reference' has shape (2, 5, 5)", "does not fit"]),
    "NaN": (with_bad_value(np.nan), ["NaN"]),
    "Inf": (with_bad_value(np.inf), ["Inf"]),
    "kspace is a group": (lambda p: (write_h5(p), h5py.File(p, "a").create_group("kspace").file.close(), p)[2],
                          ["'kspace' is a group"]),
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "net.pt"
    save_checkpoint(path, build_model("cnn2dt", channels=4, depth=2), "dynamic")
    return path



def assert_answered(code: int, text: str, path: Path, words: list[str]) -> None:
    assert code == 2, text
    assert "Traceback" not in text, text
    assert path.name in text, text
    for word in words:
        assert word in text, (word, text)


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob("*")) if directory.exists() else []


@pytest.mark.parametrize("command", ["train", "reconstruct", "inspect-mask"])
@pytest.mark.parametrize("case", list(CASES))
def test_malformed_file_is_answered(tmp_path, checkpoint, case, command):
    make, words = CASES[case]
    data = make(tmp_path / "scan.h5")
    before = files_in(tmp_path)
    out = tmp_path / "out"
    png = tmp_path / "mask.png"
    args = {
        "train": ["train", data, "--out", out, *TRAIN],
        "reconstruct": ["reconstruct", checkpoint, data, "--out", out, "--device", "cpu"],
        "inspect-mask": ["inspect-mask", data, "--png", png],
    }[command]
    code, text = invoke(args)
    # inspect-mask reads the slice it shows as training would, so NaN k-space is refused there too
    assert_answered(code, text, data, words)
    assert files_in(out) == []  # nothing written, not even a temporary file
    assert files_in(tmp_path) == sorted(before + (["out"] if out.exists() else []))
    assert not png.exists()


def test_frame_without_samples(tmp_path, checkpoint):
    data = empty_frame(tmp_path / "gap.h5")
    code, text = invoke(["train", data, "--out", tmp_path / "run", *TRAIN])
    assert_answered(code, text, data, ["slice 0", "frame(s) 1 have no k-space samples"])
    assert not (tmp_path / "run").exists()  # the failed start left no run behind
    code, text = invoke(["inspect-mask", data])  # looking at the mask is fine, and reports the gap
    assert code == 0, text
    assert "frame 1 has no samples" in text


def test_impossible_split_size(tmp_path):
    data = write_case(tmp_path / "t16.h5", slices=1, frames=16, height=8, width=8, centre_lines=2, acceleration=2)
    run = tmp_path / "run"
    code, text = invoke(["train", data, "--out", run, *TRAIN, "--split-size", "5"])
    assert code == 2 and "Traceback" not in text, text
    assert "split_size 5 does not divide the number of frames T=16" in text and "(1, 2, 4, 8)" in text
    assert f"{data}: sequences of 16 frames" in text  # the file whose sequences cannot be split
    assert not run.exists()
    code, text = invoke(["train", data, "--out", run, *TRAIN, "--split-size", "16"])
    assert code == 2 and "at least two chunks" in text, text


def test_bad_model_option_is_answered(tmp_path):
    data = good(tmp_path / "scan.h5")
    for option, words in (("depth=1", ["depth must be at least 2"]), ("colour=3", ["unknown option", "colour"])):
        code, text = invoke(["train", data, "--out", tmp_path / "run", "--steps", "2", "--model", "cnn2dt",
                             "--model-option", option, "--device", "cpu"])
        assert code == 2 and "Traceback" not in text, text
        assert all(w in text for w in words), text
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_bad_slice_in_a_dataloader_worker_is_answered(tmp_path):
    """An error raised in a DataLoader worker process reaches the user as the same one-line message."""
    data = with_bad_value(np.nan)(tmp_path / "nan.h5")
    code, text = invoke(["train", data, "--out", tmp_path / "run", *TRAIN, "--workers", "1"])
    assert_answered(code, text, data, ["'kspace' contains", "NaN"])
    assert "Original Traceback" not in text
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_subprocesses_answer_bad_inputs(tmp_path, checkpoint):
    """The installed command, as a real process: exit code 2, message on stderr, no traceback."""
    bad_mask = mask_with(2)(tmp_path / "mask2.h5")
    nan = with_bad_value(np.nan)(tmp_path / "nan.h5")
    env = os.environ | {"OMP_NUM_THREADS": "1", "COLUMNS": "300"}
    commands = {  # commands that do not build an optimizer, whose import alone takes seconds
        "inspect-mask": ([sys.executable, "-m", "a2a_cli", "inspect-mask", str(bad_mask), "--png", str(tmp_path / "m.png")],
                         bad_mask, ["values other than 0 and 1"]),
        "reconstruct": ([sys.executable, "-m", "a2a_cli", "reconstruct", str(checkpoint), str(nan), "--out",
                         str(tmp_path / "out"), "--device", "cpu"], nan, ["slice 0: 'kspace' contains 1 NaN"]),
    }
    procs = {k: subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for k, (cmd, _, _) in commands.items()}  # side by side: interpreter start-up dominates
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        _, path, words = commands[name]
        assert proc.returncode == 2, stdout + stderr
        assert "error:" in stderr and path.name in stderr and all(w in stderr for w in words), stderr
        assert "Traceback" not in stdout + stderr
    assert files_in(tmp_path / "out") == [] and not (tmp_path / "m.png").exists()


# -- outputs never replace inputs or existing files ------------------------------------------------------


def test_reconstruct_output_never_replaces_the_input_or_an_existing_output(tmp_path, checkpoint):
    scan = good(tmp_path / "scan.h5")
    source = good(tmp_path / "case.h5")
    inside = tmp_path / "out"
    inside.mkdir()
    own = good(inside / "case_recon.h5")  # an input exactly where case.h5's output goes
    digest = sha256_of(own)
    code, text = invoke(["reconstruct", checkpoint, source, own, "--out", inside, "--device", "cpu", "--overwrite"])
    assert code == 2 and "also an input" in text and "Traceback" not in text, text
    assert sha256_of(own) == digest

    code, text = invoke(["reconstruct", checkpoint, source, "--out", inside, "--device", "cpu"])
    assert_answered(code, text, own, ["output exists", "--overwrite"])
    assert sha256_of(own) == digest
    code, text = invoke(["reconstruct", checkpoint, source, "--out", inside, "--device", "cpu", "--overwrite"])
    assert code == 0, text
    with h5py.File(own) as f:
        assert f["reconstruction"].shape == (S, T, H, W)

    odd = good(tmp_path / "frame.png")  # an input that happens to carry a picture's name
    code, text = invoke(["reconstruct", checkpoint, odd, "--out", tmp_path / "p", "--device", "cpu",
                         "--preview", odd, "--overwrite"])
    assert_answered(code, text, odd, ["names an input file"])
    assert not (tmp_path / "p").exists()
    png = tmp_path / "shot.png"
    png.write_bytes(b"mine")
    code, text = invoke(["reconstruct", checkpoint, scan, "--out", tmp_path / "q", "--device", "cpu", "--preview", png])
    assert_answered(code, text, png, ["preview exists"])
    assert png.read_bytes() == b"mine" and not (tmp_path / "q").exists()
    code, text = invoke(["reconstruct", checkpoint, scan, "--out", scan, "--device", "cpu"])
    assert_answered(code, text, scan, ["must be a directory"])


def test_inspect_mask_png_never_replaces_the_input(tmp_path):
    scan = good(tmp_path / "scan.h5")
    digest = sha256_of(scan)
    code, text = invoke(["inspect-mask", scan, "--png", scan, "--overwrite"])
    assert_answered(code, text, scan, ["never overwritten"])
    assert sha256_of(scan) == digest
    png = tmp_path / "mask.png"
    png.write_bytes(b"mine")
    code, text = invoke(["inspect-mask", scan, "--png", png])
    assert_answered(code, text, png, ["exists", "--overwrite"])
    assert png.read_bytes() == b"mine"


def test_train_out_never_replaces_an_input_or_a_run(tmp_path):
    scan = good(tmp_path / "scan.h5")
    digest = sha256_of(scan)
    for extra in ([], ["--overwrite"]):
        code, text = invoke(["train", scan, "--out", scan, *TRAIN, *extra])
        assert_answered(code, text, scan, ["must be a run directory"])
        assert sha256_of(scan) == digest
    run = tmp_path / "run"
    run.mkdir()
    config = run / "config.json"
    config.write_text("[train]\nsteps = 2\n")
    code, text = invoke(["train", scan, "--out", run, *TRAIN, "--config", config, "--overwrite"])
    assert_answered(code, text, config, ["is an input of this run"])
    assert config.read_text() == "[train]\nsteps = 2\n"
    config.unlink()
    (run / "last.pt").write_bytes(b"a previous run")
    code, text = invoke(["train", scan, "--out", run, *TRAIN])
    assert code == 2 and "already holds a run" in text, text
    assert (run / "last.pt").read_bytes() == b"a previous run"


def test_simulate_never_replaces_an_existing_file(tmp_path):
    target = tmp_path / "case.h5"
    target.write_bytes(b"precious")
    code, text = invoke(["simulate", target, "--slices", "1", "--frames", "4", "--height", "8", "--width", "8"])
    assert_answered(code, text, target, ["already exists", "--overwrite"])
    assert target.read_bytes() == b"precious"
    code, text = invoke(["simulate", tmp_path, "--slices", "1", "--frames", "4", "--height", "8", "--width", "8"])
    assert code == 2 and "is a directory" in text and "Traceback" not in text, text
    assert [p.name for p in tmp_path.iterdir()] == ["case.h5"]


def test_resume_with_damaged_run_config_is_answered(tmp_path):
    scan = good(tmp_path / "scan.h5")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{not json")
    code, text = invoke(["train", scan, "--out", run, *TRAIN, "--resume"])
    assert_answered(code, text, run / "config.json", ["not valid JSON"])


# -- property tests: random files through the readers ------------------------------------------------------

DIM = st.sampled_from([0, 1, 2, 3, 4, 5, 10**9])
VALUE_KINDS = ["c8", "c16", "f4", "f8", "i2", "u1", "b1", "compound", "compound-bad", "str"]


def _array(shape: tuple[int, ...], kind: str, rng: np.random.Generator, values: str) -> np.ndarray:
    n = int(np.prod(shape))
    base = rng.integers(0, 2, n) if values == "binary" else rng.standard_normal(n) * rng.integers(0, 2, n)
    if values == "nan" and n:
        base = base.astype(float)
        base[rng.integers(0, n)] = np.nan
    if values == "two" and n:
        base[rng.integers(0, n)] = 2
    base = base.reshape(shape)
    if kind in ("c8", "c16"):
        return (base + 1j * base[::-1] if base.ndim else base + 0j).astype(np.complex64 if kind == "c8" else np.complex128)
    if kind == "compound":
        out = np.zeros(shape, dtype=[("real", "<f4"), ("imag", "<f4")])
        out["real"] = base
        return out
    if kind == "compound-bad":
        return np.zeros(shape, dtype=[("a", "<f4"), ("b", "<i4")])
    if kind == "str":
        return np.full(shape, b"1", dtype="S1")
    if kind in ("i2", "u1"):
        return np.nan_to_num(base).astype(kind)
    if kind == "b1":
        return np.nan_to_num(base).astype(bool)
    return base.astype(kind)


@st.composite
def hdf5_layouts(draw):
    """A random file description: k-space, optional mask and reference, attributes.

    Half the files are nearly valid (3 or 4 small dimensions, complex values, masks and
    references of fitting shapes), so that the readers' success path is exercised too.
    """
    near_valid = draw(st.booleans())
    if near_valid:
        kshape = tuple(draw(st.lists(st.integers(1, 5), min_size=3, max_size=4)))
        kind = draw(st.sampled_from(["c8", "c16", "compound", "float2"]))
        values = draw(st.sampled_from(["normal", "normal", "binary", "nan"]))
        acquisition = draw(st.sampled_from([None, "dynamic", "sequential", b"sequential"]))
    else:
        ndim = draw(st.integers(0, 5))
        kshape = tuple(draw(st.lists(DIM, min_size=ndim, max_size=ndim)))
        kind = draw(st.sampled_from(VALUE_KINDS))
        values = draw(st.sampled_from(["normal", "nan", "binary"]))
        acquisition = draw(st.sampled_from([None, "dynamic", "sequential", "static", "CORPD_FBK", b"dynamic", 3]))
    plausible = [kshape[-1:], kshape[-3:-2] + kshape[-1:], kshape[:-2] + kshape[-1:], kshape[-3:], kshape[-2:], kshape]
    layout = {
        "kspace": (kshape + (2,), "f4", values) if kind == "float2" else (kshape, kind, values),
        "acquisition": acquisition,
        "split": draw(st.one_of(st.none(), st.integers(1, 4))),
        "allow_empty": draw(st.booleans()),
    }
    for name in ("mask", "reference"):
        if draw(st.booleans()):
            if near_valid:
                shape = draw(st.sampled_from(plausible))
                kinds = ["u1", "b1", "f4"] if name == "mask" else ["c8", "f4", "compound"]
                values = draw(st.sampled_from(["binary", "binary", "two"] if name == "mask" else ["normal", "normal", "nan"]))
            else:
                shape = draw(st.one_of(st.sampled_from(plausible), st.lists(DIM, max_size=4).map(tuple)))
                kinds = ["u1", "b1", "f4", "i2", "c8", "str"] if name == "mask" else VALUE_KINDS
                values = draw(st.sampled_from(["binary", "two", "nan", "normal"]))
            layout[name] = (shape, draw(st.sampled_from(kinds)), values)
    return layout


def _write_layout(path: Path, layout: dict, seed: int) -> None:
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        for name in ("kspace", "mask", "reference"):
            if name not in layout:
                continue
            shape, kind, values = layout[name]
            if max(shape, default=0) > 10_000 or np.prod(shape, dtype=float) > 10_000:  # declared, never written
                dtype = _array((1,) * len(shape), kind, rng, values).dtype
                f.create_dataset(name, shape=shape, dtype=dtype, chunks=(1,) * len(shape), maxshape=(None,) * len(shape))
            else:
                f.create_dataset(name, data=_array(shape, kind, rng, values))
        if layout["acquisition"] is not None:
            f.attrs["acquisition"] = layout["acquisition"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layout=hdf5_layouts(), seed=st.integers(0, 2**16))
def test_property_readers_return_right_shapes_or_input_error(tmp_path, layout, seed):
    path = tmp_path / "random.h5"
    path.unlink(missing_ok=True)
    _write_layout(path, layout, seed)
    split = SplitOptions(frames=layout["split"]) if layout["split"] else None
    try:
        info = inspect_file(path, split)
    except InputError as e:
        assert "random.h5" in str(e)
        event("refused by inspect_file")
        return
    t, h, w = info.frame_shape
    assert info.n_slices >= 1 and min(t, h, w) >= 1
    for index in sorted({0, info.n_slices - 1}):
        try:
            sample = read_slice(path, index, split, allow_empty_frames=layout["allow_empty"])
        except InputError as e:
            assert "random.h5" in str(e)
            event("refused by read_slice")
            continue
        event("read")
        assert tuple(sample.kspace.shape[:3]) == (1, 2, t) and tuple(sample.kspace.shape[-2:]) == (h, w)
        assert tuple(sample.mask.shape) == (1, 1, t, h, w)
        assert bool(torch.isfinite(sample.kspace).all())
        assert set(torch.unique(sample.mask).tolist()) <= {0.0, 1.0}
        if sample.reference is not None:
            assert tuple(sample.reference.shape[-2:]) == (h, w)
        mask = read_mask(path, split, index)
        assert mask.shape == (t, h, w) and mask.dtype == bool
