"""Scan-specific fine-tuning at reconstruction time (``a2a reconstruct --adapt STEPS``)."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from a2a_cli.adapt import (
    adapt_network,
    default_adapt_steps,
    scan_loss,
    split_measurements,
)
from a2a_cli.cli import app
from a2a_cli.data import read_slice
from a2a_cli.models import build_model
from a2a_cli.physics import SequentialMRI, to_complex
from a2a_cli.reconstruction import run_network
from a2a_cli.simulate import write_case

runner = CliRunner()


@pytest.fixture(scope="module")
def seq_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("adapt")
    return write_case(d / "seq.h5", mode="sequential", slices=1, frames=8, height=32, width=32, acceleration=32 / 6, seed=3)


def _small_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("unrolled", channels=8, depth=3, iterations=1)


def test_split_is_a_partition_of_whole_measured_lines():
    mask = torch.zeros(1, 1, 4, 8, 16)
    mask[..., [1, 5, 7, 8, 12]] = 1
    inp, tgt = split_measurements(mask, 0.6, torch.Generator().manual_seed(1))
    assert torch.equal(inp + tgt, mask) and float((inp * tgt).sum()) == 0
    # readout lines are never cut: every column is fully in or fully out
    assert torch.equal(inp.amax(dim=-2, keepdim=True).expand_as(inp), inp)
    assert 0 < float(inp.sum()) < float(mask.sum())
    with pytest.raises(ValueError, match="fraction"):
        split_measurements(mask, 1.0)


def test_adapt_lowers_the_loss_on_the_scan_and_leaves_the_network_alone(seq_file, one_thread):
    smp = read_slice(seq_file, 0)
    net = _small_net()
    before = [p.detach().clone() for p in net.parameters()]
    start = scan_loss(net, "sequential", smp.kspace, smp.mask)
    tuned, losses = adapt_network(net, "sequential", smp.kspace, smp.mask, steps=80, lr=3e-3, seed=0)
    assert len(losses) == 80 and all(np.isfinite(losses))
    # scored on the same fixed splits: a fresh network has much to learn from its own scan
    assert scan_loss(tuned, "sequential", smp.kspace, smp.mask) < 0.95 * start
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(net.parameters(), tuned.parameters()))
    assert not tuned.training


def test_adapted_output_shape_and_measured_samples_kept(seq_file, one_thread):
    smp = read_slice(seq_file, 0)
    tuned, _ = adapt_network(_small_net(), "sequential", smp.kspace, smp.mask, steps=5, seed=0)
    x = run_network(tuned, "sequential", smp.kspace, smp.mask)
    assert x.shape == (1, 2, 32, 32)
    y_avg, static = SequentialMRI(mask=smp.mask).time_average(smp.kspace)
    measured = static.mask.expand_as(y_avg) > 0
    # hard data consistency: the averaged measured samples come back exactly
    torch.testing.assert_close(static.A(x)[measured], y_avg[measured], atol=1e-5, rtol=1e-4)


def test_adapt_is_invariant_to_the_data_scale(seq_file, one_thread):
    smp = read_slice(seq_file, 0)
    outs = []
    for scale in (1.0, 1e6):
        tuned, _ = adapt_network(_small_net(), "sequential", smp.kspace * scale, smp.mask, steps=5, seed=0)
        outs.append(to_complex(run_network(tuned, "sequential", smp.kspace * scale, smp.mask))[0] / scale)
    torch.testing.assert_close(outs[0], outs[1], atol=1e-4 * float(outs[0].abs().max()), rtol=1e-3)


@pytest.mark.slow
def test_reconstruct_adapt_option_end_to_end(seq_file, tmp_path):
    run = tmp_path / "run"
    train = runner.invoke(app, ["train", str(seq_file), "--out", str(run), "--steps", "2", "--model-option", "channels=4",
                                "--model-option", "depth=2", "--device", "cpu"])
    assert train.exit_code == 0, train.output
    for steps in ("0", "3"):
        res = runner.invoke(app, ["reconstruct", str(run / "best.pt"), str(seq_file), "--out", str(tmp_path / f"r{steps}"),
                                  "--adapt", steps, "--device", "cpu", "--json", "--method", "network"])
        assert res.exit_code == 0, res.output
        with h5py.File(tmp_path / f"r{steps}" / "seq_recon.h5") as f:
            assert int(f.attrs["adapt_steps"]) == int(steps)
    bad = runner.invoke(app, ["reconstruct", str(run / "best.pt"), str(seq_file), "--out", str(tmp_path / "bad"), "--adapt", "-1"])
    assert bad.exit_code == 2 and "--adapt" in bad.output
    assert not (tmp_path / "bad" / "seq_recon.h5").exists()


def test_default_steps_are_known_per_mode():
    assert default_adapt_steps("dynamic") == 0
    assert default_adapt_steps("sequential") == 200


def test_adapt_on_a_radial_scan_splits_spokes_and_lowers_its_loss(tmp_path, one_thread):
    from a2a_cli.adapt import spoke_split_loss
    from a2a_cli.radial import simulate_radial

    path = simulate_radial(tmp_path / "rad.h5", mode="sequential", slices=1, frames=4, size=24, spokes=6, coils=2, seed=2)
    smp = read_slice(path, 0)
    net = _small_net()

    def fixed_loss(model) -> float:  # the same five spoke splits for both networks
        g = torch.Generator().manual_seed(7)
        with torch.no_grad():
            return sum(float(spoke_split_loss(model.eval(), "sequential", smp.kspace, smp.mask, smp.coil_maps, generator=g))
                       for _ in range(5))

    start = fixed_loss(net)
    tuned, losses = adapt_network(net, "sequential", smp.kspace, smp.mask, smp.coil_maps, steps=30, lr=3e-3)
    assert len(losses) == 30 and all(np.isfinite(losses))
    assert fixed_loss(tuned) < 0.95 * start
    # reconstruct: radial files are not fine-tuned by default, and --adapt works on them
    run = tmp_path / "run"
    opts = ["--steps", "2", "--model-option", "channels=4", "--model-option", "depth=2", "--val-every", "2"]
    # --no-tv: the network reconstructs (--method auto could otherwise keep compressed sensing, never fine-tuned)
    assert runner.invoke(app, ["train", str(path), "--out", str(run), "--loss", "ssdu", "--no-tv", *opts]).exit_code == 0
    for extra, steps in (([], 0), (["--adapt", "3"], 3)):
        result = runner.invoke(app, ["reconstruct", str(run / "best.pt"), str(path), "--out", str(tmp_path / "rec"),
                                     "--overwrite", *extra])
        assert result.exit_code == 0, result.output
        with h5py.File(tmp_path / "rec" / "rad_recon.h5") as f:
            assert f.attrs["adapt_steps"] == steps and np.isfinite(f["reconstruction"][()]).all()


class _CoilCounter(torch.nn.Module):
    """A network that records the coil count of the operator it is given (then acts as the unrolled net)."""

    def __init__(self):
        super().__init__()
        self.inner = _small_net()
        self.coils: list[int] = []

    def forward(self, y, physics):
        self.coils.append(physics.coil_maps.shape[1])
        return self.inner(y, physics)


def test_adapt_fine_tunes_many_coils_on_virtual_coils_and_keeps_the_whole_image(tmp_path, one_thread):
    path = write_case(tmp_path / "mc.h5", mode="sequential", slices=1, frames=4, height=24, width=24,
                      acceleration=3.0, coils=8, seed=5)
    smp = read_slice(path, 0)
    assert smp.kspace.shape[3] == 8
    tuned, losses = adapt_network(_CoilCounter(), "sequential", smp.kspace, smp.mask, smp.coil_maps, steps=3)
    assert tuned.coils == [6, 6, 6] and len(losses) == 3  # compressed as in training (more than 6 coils)
    tuned, _ = adapt_network(_CoilCounter(), "sequential", smp.kspace, smp.mask, smp.coil_maps, steps=2, virtual_coils=0)
    assert tuned.coils == [8, 8]
    # the tuned network still reconstructs the slice from every coil, at full size
    out = run_network(tuned, "sequential", smp.kspace, smp.mask, smp.coil_maps)
    assert tuned.coils[-1] == 8 and out.shape[-2:] == (24, 24)


def test_split_of_the_same_lines_in_every_frame_is_shared_by_the_frames():
    mask = torch.zeros(2, 1, 6, 4, 32)
    mask[0, ..., ::3] = 1  # sample 0: the same lines in every frame
    mask[1, ..., 14:18] = 1  # sample 1: 4 centre lines in every frame, and lines of each frame's own
    for t in range(6):
        mask[1, :, t, :, t:14:6] = 1
    inp, tgt = split_measurements(mask, 0.5, torch.Generator().manual_seed(2))
    assert torch.equal(inp + tgt, mask) and float((inp * tgt).sum()) == 0
    # no target line of sample 0 is in any frame's input (view sharing would hand it over)
    assert float((inp[0].amax(dim=1, keepdim=True) * tgt[0]).sum()) == 0
    assert 0 < float(tgt[0].sum()) < float(mask[0].sum())
    # sample 1 (frames that differ) is still split frame by frame: some centre line is input in
    # one frame and target in another (a shared draw would put each in one set in every frame)
    centre_in = inp[1, 0, :, 0, 14:18]  # (T, 4)
    assert bool(((centre_in.amax(dim=0) == 1) & (centre_in.amin(dim=0) == 0)).any())
