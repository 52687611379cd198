"""Tests of the simulator: determinism, sampling patterns, motion, noise level, files."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from a2a_cli import physics
from a2a_cli.errors import A2AError
from a2a_cli.data import centre_line_indices, inspect_file, read_slice
from a2a_cli.simulate import (
    SAMPLE_CASES,
    add_noise,
    breathing_curve,
    fft2c,
    line_masks,
    measured_snr_db,
    phantom_dynamic,
    phantom_static,
    write_case,
)

SMALL = {"frames": 8, "height": 32, "width": 32, "acceleration": 4.0, "centre_lines": 2}


def read_all(path):
    with h5py.File(path) as f:
        return {name: f[name][()] for name in ("kspace", "mask", "reference")}, dict(f.attrs)


def test_write_case_is_deterministic(tmp_path):
    a = write_case(tmp_path / "a.h5", slices=2, seed=5, **SMALL)
    b = write_case(tmp_path / "b.h5", slices=2, seed=5, **SMALL)
    c = write_case(tmp_path / "c.h5", slices=2, seed=6, **SMALL)
    assert a.read_bytes() == b.read_bytes()
    da, attrs = read_all(a)
    dc, _ = read_all(c)
    assert not np.array_equal(da["mask"], dc["mask"]) and not np.array_equal(da["reference"], dc["reference"])
    assert not np.array_equal(da["mask"][0], da["mask"][1])  # each slice its own pattern
    assert not np.array_equal(da["reference"][0], da["reference"][1])  # and its own anatomy
    assert json.loads(attrs["simulation"])["seed"] == 5 and attrs["acquisition"] == "dynamic"


@pytest.mark.parametrize("mode", ["dynamic", "sequential"])
def test_write_case_layout_and_physics(tmp_path, mode):
    path = write_case(tmp_path / "x.h5", mode=mode, slices=2, snr_db=None, **SMALL)
    data, attrs = read_all(path)
    t, h, w = SMALL["frames"], SMALL["height"], SMALL["width"]
    assert data["kspace"].shape == (2, t, h, w) and data["kspace"].dtype == np.complex64
    assert data["mask"].shape == (2, t, w) and data["mask"].dtype == np.uint8
    assert data["reference"].shape == ((2, t, h, w) if mode == "dynamic" else (2, h, w))
    info = inspect_file(path)
    assert (info.mode, info.n_slices, info.mask_source, info.reference_static) == (mode, 2, "stored", mode == "sequential")
    # noiseless k-space is exactly the forward model of the a2a physics operator
    sample = read_slice(path, 1)
    op = physics.DynamicMRI(sample.mask) if mode == "dynamic" else physics.SequentialMRI(sample.mask)
    assert torch.allclose(op.A(sample.reference), sample.kspace, atol=1e-5)


def test_masks_disjoint_apart_from_centre():
    frames, width, centre = 6, 64, 4
    m = line_masks(frames, width, acceleration=8, centre_lines=centre, rng=3)
    is_centre = np.isin(np.arange(width), centre_line_indices(width, centre))
    assert m[:, is_centre].all()
    assert (m[:, ~is_centre].sum(axis=0) <= 1).all()  # every other line in at most one frame
    assert (m.sum(axis=1) == 8).all()


def test_masks_cover_kspace_block_by_block():
    # 16 frames of 13 lines cannot be disjoint in 64 lines: blocks of 60 // 9 = 6 frames
    # never repeat a line and measure 54 of the 60 non-centre lines
    m = line_masks(16, 64, acceleration=5, centre_lines=4, rng=0)
    assert (m.sum(axis=1) == 13).all()
    is_centre = np.isin(np.arange(64), centre_line_indices(64, 4))
    block = 60 // 9
    for start in range(0, 16, block):
        counts = m[start:start + block, ~is_centre].sum(axis=0)
        assert (counts <= 1).all()
        assert counts.sum() == 9 * min(block, 16 - start)
    assert m.any(axis=0).mean() > 0.95  # over all frames nearly every line is measured
    # each frame's lines are spread: one per band of 6 neighbouring chosen lines
    assert np.diff(np.flatnonzero(m[0] & ~is_centre)).max() <= 2 * block + 6


@pytest.mark.parametrize("acceleration,width", [(3.0, 64), (5.0, 64), (8.0, 128), (4.0, 96)])
def test_acceleration_about_as_asked(acceleration, width):
    m = line_masks(16, width, acceleration=acceleration, centre_lines=4, rng=1)
    achieved = width / m.sum(axis=1).mean()
    assert abs(achieved - acceleration) / acceleration < 0.1
    assert m.sum(axis=1).max() <= round(width / acceleration)


def test_masks_differ_between_seeds_and_are_reproducible():
    masks = [line_masks(8, 64, 5, 4, rng=seed) for seed in range(5)]
    assert all(not np.array_equal(masks[i], masks[j]) for i in range(5) for j in range(i))
    np.testing.assert_array_equal(masks[2], line_masks(8, 64, 5, 4, rng=2))
    np.testing.assert_array_equal(line_masks(8, 64, 5, 4), line_masks(8, 64, 5, 4))  # None means seed 0


def test_centre_only_masks():
    m = line_masks(4, 32, acceleration=16, centre_lines=4, rng=0)  # 2 lines asked, 4 centre lines kept
    assert (m.sum(axis=1) == 4).all()


def test_periodic_motion_repeats_exactly():
    x = phantom_dynamic(32, 32, 12, motion="periodic", period=4, rng=2)
    for t in range(4, 12):
        np.testing.assert_array_equal(x[t], x[t - 4])
    assert not np.array_equal(x[0], x[2])  # it does move within a period
    d = breathing_curve(16, "periodic")  # default period: frames // 2
    np.testing.assert_array_equal(d[:8], d[8:])


def test_respiratory_motion():
    x = phantom_dynamic(64, 64, 24, motion="respiratory", rng=4)
    diffs = [np.abs(x[t] - x[0]).mean() for t in range(1, 24)]
    assert max(diffs) > 0.01  # organs move
    spine = np.abs(x[:, 40:56, 30:34])  # spine below the kidneys' level: fixed
    assert np.abs(spine - spine[0]).max() < 1e-6
    d = breathing_curve(48, "respiratory", rng=4)
    assert d.min() >= 0 and d.max() < 0.2
    for period in range(2, 12):  # does not simply repeat
        assert not np.allclose(d[period:], d[:-period], atol=1e-3)
    peaks = [d[i] for i in range(1, 47) if d[i] >= d[i - 1] and d[i] >= d[i + 1] and d[i] > 0.03]
    assert len(peaks) >= 3 and max(peaks) - min(peaks) > 0.01  # breaths of varying depth
    still = phantom_dynamic(32, 32, 4, motion="none", rng=1)
    assert all(np.array_equal(still[0], f) for f in still)


def test_phantom_content():
    x = phantom_static(64, 64, rng=0)
    assert x.dtype == np.complex64 and np.abs(x).max() < 1.5
    assert np.abs(x[0, 0]) == 0 and np.abs(x[32, 32]) > 0.1  # background empty, body not
    assert len(np.unique(np.round(np.abs(x), 2))) > 20  # several tissues
    body = np.abs(x) > 0.2
    phase = np.angle(x[body] * np.conj(x[body].mean()))
    assert phase.std() > 0.05  # smooth but non-constant phase
    assert not np.array_equal(x, phantom_static(64, 64, rng=1))


@pytest.mark.parametrize("snr_db", [10.0, 30.0])
def test_add_noise_level(snr_db):
    k = fft2c(phantom_static(64, 64, rng=0))
    m = line_masks(1, 64, 4, 4, rng=0)[0]
    clean = k * m
    noisy = add_noise(clean, snr_db, rng=1)
    assert abs(measured_snr_db(clean, noisy) - snr_db) < 0.3
    np.testing.assert_array_equal(noisy[:, ~m], 0)  # unsampled lines stay empty
    np.testing.assert_array_equal(add_noise(clean, None), clean)


def test_write_case_snr(tmp_path):
    path = write_case(tmp_path / "n.h5", mode="sequential", slices=2, snr_db=30.0, **SMALL)
    data, _ = read_all(path)
    for s in range(2):
        m = data["mask"][s].astype(bool)[:, None, :]
        clean = np.broadcast_to(fft2c(data["reference"][s]), m.shape[:1] + data["reference"].shape[1:]) * m
        assert abs(measured_snr_db(clean, data["kspace"][s]) - 30.0) < 0.5
        # sequential frames are noisy copies of one image: shared centre lines get independent noise
        c = centre_line_indices(SMALL["width"], 2)
        assert not np.array_equal(data["kspace"][s, 0][:, c], data["kspace"][s, 1][:, c])


def test_validation(tmp_path):
    with pytest.raises(A2AError, match="mode"):
        write_case(tmp_path / "x.h5", mode="static")  # type: ignore[arg-type]
    with pytest.raises(A2AError, match="motion"):
        breathing_curve(4, "jerky")  # type: ignore[arg-type]
    with pytest.raises(A2AError, match="acceleration"):
        line_masks(4, 16, acceleration=0.5)
    write_case(tmp_path / "x.h5", slices=1, **SMALL)
    with pytest.raises(A2AError, match="exists"):
        write_case(tmp_path / "x.h5", slices=1, **SMALL)


def test_simulate_command(tmp_path):
    from typer.testing import CliRunner

    from a2a_cli.cli import app

    out = tmp_path / "cli.h5"
    args = ["simulate", str(out), "--mode", "sequential", "--slices", "1", "--frames", "4", "--height", "16",
            "--width", "16", "--seed", "3", "--complex-style", "float2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    info = inspect_file(out)
    assert (info.mode, info.complex_style, info.frame_shape) == ("sequential", "float2", (4, 16, 16))
    result = CliRunner().invoke(app, ["simulate", str(out)])
    assert result.exit_code == 2 and "already exists" in result.output


def test_sample_case_settings():
    # the sequential samples must stay undersampled after combining frames (see SAMPLE_CASES)
    for kw in SAMPLE_CASES.values():
        m = line_masks(16, 64, kw.get("acceleration", 5.0), 4, rng=0)
        covered = m.any(axis=0).mean()
        assert covered < 0.6 if kw["mode"] == "sequential" else covered > 0.95
