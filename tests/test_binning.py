"""Respiratory self-gating of radial data and the `a2a bin` command."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from a2a_cli.binning import bin_spokes, centre_samples, respiratory_signal
from a2a_cli.cli import app
from a2a_cli.radial import simulate_radial

runner = CliRunner()
FRAMES, SPOKES = 64, 4


@pytest.fixture(scope="module")
def breathing(tmp_path_factory):
    return simulate_radial(tmp_path_factory.mktemp("bin") / "free.h5", slices=2, frames=FRAMES, size=32,
                           spokes=SPOKES, coils=4, seed=11)


def test_self_gating_recovers_the_simulated_breathing_curve(breathing):
    with h5py.File(breathing) as f:
        for s in range(2):
            k, traj, true = f["kspace"][s], f["trajectory"][s], f["true_breathing"][s]
            signal = respiratory_signal(centre_samples(k, traj), low=2 / (FRAMES * SPOKES), high=1 / SPOKES)
            per_frame = signal.reshape(FRAMES, SPOKES).mean(axis=1)
            assert np.corrcoef(per_frame, true)[0, 1] >= 0.9


def test_bins_have_equal_counts_and_ordered_amplitudes():
    rng = np.random.default_rng(0)
    signal = rng.standard_normal(103)
    labels = bin_spokes(signal, 10)
    assert [int((labels == b).sum()) for b in range(10)] == [10] * 10 and int((labels == -1).sum()) == 3
    means = [signal[labels == b].mean() for b in range(10)]
    assert means == sorted(means)


def test_bin_command_writes_a_radial_file_of_bins(breathing, tmp_path):
    out, plot = tmp_path / "binned.h5", tmp_path / "curve.png"
    result = runner.invoke(app, ["bin", str(breathing), str(out), "--bins", "8", "--plot", str(plot), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["spokes_per_bin"] == FRAMES * SPOKES // 8
    with h5py.File(out) as f, h5py.File(breathing) as g:
        assert f["kspace"].shape == (2, 8, 4, FRAMES * SPOKES // 8, 32)
        assert f["trajectory"].shape == (2, 8, FRAMES * SPOKES // 8, 32, 2)
        # a bin's spokes are spokes of the input, unchanged
        first = f["kspace"][0, 3, :, 0]
        flat = g["kspace"][0].transpose(0, 2, 1, 3).reshape(-1, 4, 32)
        assert np.isclose(np.abs(flat - first[None]).sum(axis=(1, 2)), 0).any()
        # the reference of a bin is the mean of its spokes' frames: bins follow the breathing
        true = g["true_breathing"][0]
        labels = f["bin_of_spoke"][0]
        depth = [true[np.repeat(np.arange(FRAMES), SPOKES)[labels == b]].mean() for b in range(8)]
        assert np.corrcoef(depth, np.arange(8))[0, 1] > 0.9
    assert plot.stat().st_size > 0
    again = runner.invoke(app, ["bin", str(breathing), str(out)])
    assert again.exit_code == 2 and "exists" in again.output


def test_bin_refuses_cartesian_files(tmp_path):
    from a2a_cli.simulate import write_case

    cart = write_case(tmp_path / "cart.h5", slices=1, frames=4, height=16, width=16)
    result = runner.invoke(app, ["bin", str(cart), str(tmp_path / "o.h5")])
    assert result.exit_code == 2 and "radial" in result.output
    assert not (tmp_path / "o.h5").exists()


@pytest.mark.parametrize("case", ["plot is the input", "plot is the output", "plot under a file", "too many bins"])
def test_bin_checks_every_output_before_any_work(breathing, tmp_path, case):
    """No output may replace the input, none is written when another is refused, and messages name the file."""
    victim = tmp_path / "victim.h5"
    victim.write_bytes(breathing.read_bytes())
    out = tmp_path / "binned.h5"
    plot = {"plot is the input": victim, "plot is the output": out,
            "plot under a file": victim / "curve.png"}.get(case, tmp_path / "curve.png")
    bins = str(FRAMES * SPOKES + 1) if case == "too many bins" else "4"
    before = victim.read_bytes()
    result = runner.invoke(app, ["bin", str(victim), str(out), "--bins", bins, "--plot", str(plot), "--overwrite"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    named = {"plot is the input": "victim.h5", "plot is the output": "binned.h5", "plot under a file": "curve.png",
             "too many bins": "victim.h5"}[case]
    assert named in result.output
    assert victim.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["victim.h5"]


def test_bin_makes_the_folders_of_its_outputs(breathing, tmp_path):
    out, plot = tmp_path / "a" / "binned.h5", tmp_path / "b" / "c" / "curve.png"
    result = runner.invoke(app, ["bin", str(breathing), str(out), "--bins", "4", "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    assert out.is_file() and plot.is_file()
