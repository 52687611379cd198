"""k-space splitting (SSDU): the partition, the loss, `--loss auto`, static files, inspect-mask."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cli_runner import invoke
from a2a_cli.data import KspaceDataset, read_slice, write_a2a_file
from a2a_cli.masks import mask_report, splitting_fitness
from a2a_cli.models import build_model
from a2a_cli.physics import DynamicMRI, SequentialMRI
from a2a_cli.simulate import add_noise, fft2c, phantom_dynamic, phantom_static
from a2a_cli.ssdu import SSDUError, SSDULoss, partition_masks
from a2a_cli.training import TrainConfig, resolve_loss

runner = CliRunner()
SMALL = ["--model-option", "channels=8", "--model-option", "depth=3", "--device", "cpu", "--val-every", "2"]



def fixed_lines(frames: int, width: int, every: int = 4, centre: int = 8) -> np.ndarray:
    """bool ``(T, W)``: every ``every``-th line plus ``centre`` centre lines, the same in every frame."""
    m = np.zeros(width, bool)
    m[::every] = True
    m[width // 2 - centre // 2: width // 2 + centre // 2] = True
    return np.broadcast_to(m, (frames, width)).copy()


def varying_lines(frames: int, width: int, every: int = 4) -> np.ndarray:
    m = np.zeros((frames, width), bool)
    for t in range(frames):
        m[t, t % every::every] = True
    m[:, width // 2 - 2: width // 2 + 2] = True
    return m


def as_physics_mask(lines: np.ndarray, batch: int = 1) -> torch.Tensor:
    """``(T, W)`` -> float ``(B, 1, T, 1, W)``."""
    return torch.from_numpy(lines).float()[None, None, :, None, :].expand(batch, 1, -1, 1, -1).contiguous()


# -- the partition ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fixed lines", "varying lines", "points"])
def test_partition_is_disjoint_and_covers_the_measured_samples(kind):
    g = torch.Generator().manual_seed(1)
    if kind == "fixed lines":
        mask = as_physics_mask(fixed_lines(4, 32), batch=3)
    elif kind == "varying lines":
        mask = as_physics_mask(varying_lines(4, 32), batch=3)
    else:
        mask = (torch.rand(3, 1, 2, 24, 32, generator=g) < 0.3).float()
        mask[..., 10:14, 14:18] = 1
    inp, out = partition_masks(mask, 0.4, generator=g)
    measured = (mask != 0).float().expand_as(inp)
    assert set(torch.unique(inp).tolist()) <= {0.0, 1.0} and set(torch.unique(out).tolist()) <= {0.0, 1.0}
    assert not (inp * out).any()  # disjoint
    assert torch.equal(inp + out, measured)  # together exactly the measured samples
    # about 40 % of every sample's measured locations are held out (of the union over
    # frames: for masks that change in time the share of a frame's samples varies)
    low, high = (0.35, 0.45) if kind != "varying lines" else (0.2, 0.6)
    for b in range(3):
        frac = float(out[b].sum() / measured[b].sum())
        assert low < frac < high, frac
    if kind != "points":
        # whole lines: constant along the readout axis
        assert torch.equal(out, out[..., :1, :].expand_as(out))
    else:
        assert not torch.equal(out, out[..., :1, :].expand_as(out))  # points, not lines


def test_partition_is_shared_by_the_frames():
    # a location held out in one frame is held out in every frame that measures it,
    # so the input set cannot carry it over from another frame (view sharing)
    mask = as_physics_mask(varying_lines(6, 32), batch=2)
    inp, out = partition_masks(mask, 0.4, generator=torch.Generator().manual_seed(3))
    held = out.amax(dim=2, keepdim=True)
    assert not (inp * held).any()


def test_dynamic_masks_that_change_in_time_are_partitioned_frame_by_frame():
    # a moving object: another frame's sample of a held-out line is another state, not the
    # loss set's data; a line held out in every frame would never reach the (view-shared)
    # input in training while it always does at reconstruction
    lines = varying_lines(8, 32)
    y = torch.randn(2, 2, 8, 16, 32)
    g = torch.Generator().manual_seed(5)
    split = SSDULoss(0.4).split(y, DynamicMRI(mask=as_physics_mask(lines, 2)), generator=g)
    inp, out = split.input_mask, split.loss_mask
    measured = as_physics_mask(lines, 2).expand_as(inp)
    assert torch.equal(inp + out, measured) and not (inp * out).any()
    per_frame = out[:, 0, :, 0].sum(-1) / measured[:, 0, :, 0].sum(-1)  # (B, T): each frame's own share
    assert ((per_frame > 0.05) & (per_frame < 0.55)).all(), per_frame
    assert out.sum() / measured.sum() > 0.15
    # frames that measure the same line hold it out independently...
    both = measured[:, 0, :, 0].sum(1) > 1  # (B, W): lines measured in several frames
    mixed = (out[:, 0, :, 0].amax(1) > 0) & (inp[:, 0, :, 0].amax(1) > 0) & both
    assert mixed.any()
    # ...but never all of them: such a line always reaches some frame's input
    assert (inp[:, 0, :, 0].amax(1) >= both.float()).all()
    # in a batch, a sample whose frames measure the same lines keeps one partition for its frames
    mixed_mask = torch.cat([as_physics_mask(lines), as_physics_mask(fixed_lines(8, 32))])
    split = SSDULoss(0.4).split(y, DynamicMRI(mask=mixed_mask), generator=g)
    fixed_held = split.loss_mask[1:].amax(dim=2, keepdim=True)
    assert not (split.input_mask[1:] * fixed_held).any()
    # a static object (sequential) keeps one partition for all frames
    split = SSDULoss(0.4).split(y, SequentialMRI(mask=as_physics_mask(lines, 2)), generator=g)
    held = split.loss_mask.amax(dim=2, keepdim=True)
    assert not (split.input_mask * held).any()


def test_centre_stays_in_the_input():
    mask = as_physics_mask(fixed_lines(1, 64, every=4, centre=8), batch=1)
    centre = slice(28, 36)  # the 8 centre lines
    kept = []
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        inp, out = partition_masks(mask, 0.4, generator=g)
        kept.append(float(inp[0, 0, 0, 0, centre].mean()))
        # the innermost lines never go to the loss set
        assert inp[0, 0, 0, 0, 30:35].all()
    assert min(kept) >= 5 / 8  # most of the centre, in every draw
    # the loss set still reaches the centre sometimes (Gaussian selection favours it)
    assert np.mean(kept) < 1.0


def test_partition_refuses_too_few_samples():
    mask = torch.zeros(1, 1, 1, 1, 16)
    mask[..., 8] = 1
    with pytest.raises(SSDUError, match="too few"):
        partition_masks(mask, 0.4)
    with pytest.raises(SSDUError, match="loss_fraction"):
        SSDULoss(loss_fraction=1.2)
    with pytest.raises(SSDUError, match="repeats"):
        SSDULoss(repeats=0)


# -- the loss set never reaches the network -----------------------------------------------


def _data(mode: str, coils: int, frames: int = 4, size: int = 16, batch: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lines = fixed_lines(frames, size, every=2, centre=4)
    mask = as_physics_mask(lines, batch)
    maps = None
    if coils > 1:
        maps = torch.randn(batch, coils, size, size, dtype=torch.complex64, generator=g)
        maps = maps / maps.abs().pow(2).sum(1, keepdim=True).sqrt()
    if mode == "dynamic":
        physics = DynamicMRI(mask=mask, coil_maps=maps)
        x = torch.randn(batch, 2, frames, size, size, generator=g)
    else:
        physics = SequentialMRI(mask=mask, coil_maps=maps)
        x = torch.randn(batch, 2, size, size, generator=g)
    return physics(x), physics


@pytest.mark.parametrize("model", ["unrolled", "unet", "cnn2dt"])
@pytest.mark.parametrize("mode,frames", [("dynamic", 4), ("sequential", 4), ("sequential", 1)])
@pytest.mark.parametrize("coils", [1, 3])
def test_loss_set_never_reaches_the_network(model, mode, frames, coils, one_thread):
    torch.manual_seed(0)
    y, physics = _data(mode, coils, frames=frames)
    net = build_model(model, channels=4, depth=2) if model != "unet" else build_model(model, channels=4)
    loss = SSDULoss(repeats=2)
    y = y.clone().requires_grad_(True)
    split = loss.split(y, physics, generator=torch.Generator().manual_seed(5))
    x_net = net(split.y_input, split.physics_input)
    assert x_net.shape[0] == 2 * y.shape[0]
    # gradient check: the network output depends on no loss-set sample of y
    (grad,) = torch.autograd.grad(x_net.square().sum(), y, retain_graph=True)
    loss_m = split.loss_mask.reshape(y.shape[0], 2, *split.loss_mask.shape[1:]).amax(1)  # any of the 2 partitions
    in_m = split.input_mask.reshape(y.shape[0], 2, *split.input_mask.shape[1:])
    only_loss = loss_m * (1 - in_m.amax(1))  # held out in both partitions
    lm = only_loss.unsqueeze(3) if y.ndim == 6 else only_loss
    assert only_loss.sum() > 0
    assert float((grad * lm).abs().sum()) == 0.0
    assert float(grad.abs().sum()) > 0  # while the input set does reach it
    # perturbing the loss-set k-space of the first partition leaves its output unchanged
    first = (split.loss_mask.unsqueeze(3) if y.ndim == 6 else split.loss_mask)[::2]
    noisy = y.detach() + 100 * torch.randn_like(y) * first
    split2 = loss.split(noisy, physics, generator=torch.Generator().manual_seed(5))
    assert torch.equal(split2.input_mask, split.input_mask)
    out2 = net(split2.y_input, split2.physics_input).detach()
    assert torch.allclose(out2[::2], x_net.detach()[::2], atol=1e-5)
    assert not torch.allclose(split2.y_loss[::2], split.y_loss.detach()[::2])  # the perturbation is there
    # and the loss trains the network: finite, positive, with gradients on the weights
    value = loss(x_net, split)
    value.backward()
    assert torch.isfinite(value) and value > 0
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_loss_is_zero_for_the_truth_and_validation_is_deterministic(one_thread):
    y, physics = _data("dynamic", 1)
    x_true = physics.A_adjoint(y)  # fully determined: every frame measures every 2nd line

    class Oracle(torch.nn.Module):
        def forward(self, y, physics):
            return x_true.repeat_interleave(y.shape[0] // x_true.shape[0], 0)

    loss = SSDULoss()
    split = loss.split(y, physics)
    # the loss scores the network on the held-out samples: an output that matches them costs nothing
    assert float(loss(Oracle()(split.y_input, split.physics_input), split)) < 1e-10
    net = build_model("unrolled", channels=4, depth=2)
    a, b = loss.evaluate(net, y, physics), loss.evaluate(net, y, physics)
    assert float(a) == float(b) and float(a) > 0
    assert net.training  # the mode is restored


# -- `--loss auto` and inspect-mask ------------------------------------------------------


def _write(path: Path, lines: np.ndarray, slices: int = 2, seed: int = 0, acquisition="dynamic") -> Path:
    t, w = lines.shape
    rng = np.random.default_rng(seed)
    k = np.zeros((slices, t, w, w), np.complex64)
    for s in range(slices):
        x = phantom_dynamic(w, w, t, rng=rng)
        k[s] = add_noise(fft2c(x) * lines[:, None, :], 30.0, rng, mask=lines[:, None, :])
    return write_a2a_file(path, k, mask=np.broadcast_to(lines, (slices, t, w)), acquisition=acquisition)


def test_auto_picks_ssdu_for_a_time_invariant_mask_and_a2a_for_a_varying_one(tmp_path):
    fixed = _write(tmp_path / "fixed.h5", fixed_lines(8, 32))
    varying = _write(tmp_path / "varying.h5", varying_lines(8, 32))
    said = []
    cfg = TrainConfig(train=[str(fixed)], out=str(tmp_path / "run"))
    assert resolve_loss(cfg, KspaceDataset([fixed]), log=said.append) == "ssdu"
    assert len(said) == 1 and "ssdu" in said[0] and "same k-space" in said[0]
    said.clear()
    assert resolve_loss(cfg, KspaceDataset([varying]), log=said.append) == "a2a"
    assert len(said) == 1 and "a2a" in said[0]
    # an explicit choice is kept
    assert resolve_loss(TrainConfig(train=[], out="", loss="p2p"), KspaceDataset([fixed]), log=said.append) == "p2p"


def test_auto_picks_ssdu_for_sequential_data_and_inspect_mask_says_so(tmp_path):
    # a static object: temporal splitting is fit, but any split of its lines is valid and SSDU measured better
    seq = _write(tmp_path / "seq.h5", varying_lines(8, 32), slices=1, acquisition="sequential")
    said = []
    cfg = TrainConfig(train=[str(seq)], out=str(tmp_path / "run"))
    assert resolve_loss(cfg, KspaceDataset([seq]), log=said.append, mode="sequential") == "ssdu"
    assert len(said) == 1 and "sequential" in said[0] and "static" in said[0]
    assert resolve_loss(cfg, KspaceDataset([seq]), log=said.append, mode="dynamic") == "a2a"
    code, text = invoke(["inspect-mask", seq, "--json"])
    assert code == 0, text
    report = json.loads(text)
    assert report["recommended_loss"] == "ssdu" and report["temporal_splitting"]["fit"] is True
    assert "static" in report["loss_reason"]
    code, text = invoke(["inspect-mask", seq])
    assert "recommended --loss ssdu" in text and "unfit" not in text


def test_splitting_fitness_values():
    assert splitting_fitness(fixed_lines(8, 32)) == {
        "fit": False, "own_fraction": 0.0, "recommended_loss": "ssdu",
        "reason": splitting_fitness(fixed_lines(8, 32))["reason"]}
    f = splitting_fitness(varying_lines(8, 32))
    assert f["fit"] and f["own_fraction"] > 0.5 and f["recommended_loss"] == "a2a"
    single = splitting_fitness(fixed_lines(1, 32))
    assert (single["fit"], single["recommended_loss"]) == (False, "ssdu")
    assert splitting_fitness(np.zeros((4, 8), bool))["recommended_loss"] is None
    r = mask_report(varying_lines(8, 32))
    assert r["recommended_loss"] == "a2a" and r["temporal_splitting"]["fit"]
    assert not any("unfit" in w for w in r["warnings"])


def test_inspect_mask_says_unfit_and_recommends_ssdu(tmp_path):
    fixed = _write(tmp_path / "fixed.h5", fixed_lines(8, 32), slices=1)
    code, text = invoke(["inspect-mask", fixed])
    assert code == 0, text
    assert "unfit for temporal splitting" in text and "--loss ssdu" in text
    assert "recommended --split-size" not in text
    code, text = invoke(["inspect-mask", fixed, "--json"])
    assert code == 0, text
    report = json.loads(text)
    assert report["recommended_loss"] == "ssdu"
    assert report["temporal_splitting"]["fit"] is False and report["temporal_splitting"]["own_fraction"] == 0.0
    varying = _write(tmp_path / "varying.h5", varying_lines(8, 32), slices=1)
    code, text = invoke(["inspect-mask", varying, "--json"])
    assert json.loads(text)["recommended_loss"] == "a2a"
    code, text = invoke(["inspect-mask", varying])
    assert "unfit" not in text and "verdict" in text


# -- static files: no --frames, SSDU by default ----------------------------------------------


def _static_file(path: Path, slices: int = 2, size: int = 24, seed: int = 0) -> Path:
    """A fastMRI-style ``(slices, H, W)`` file (no acquisition attribute) with a reference."""
    rng = np.random.default_rng(seed)
    lines = fixed_lines(1, size, every=3, centre=4)[0]
    xs = np.stack([phantom_static(size, size, rng=rng) for _ in range(slices)])
    k = add_noise(fft2c(xs) * lines, 30.0, rng, mask=np.broadcast_to(lines, xs.shape))
    return write_a2a_file(path, k, mask=lines.astype(np.uint8), reference=xs, acquisition=None)


@pytest.mark.slow
def test_static_file_trains_with_ssdu_and_reconstructs(tmp_path, one_thread):
    data = _static_file(tmp_path / "knee.h5")
    sample = read_slice(data, 0)  # no frames option needed: one frame per slice
    assert sample.kspace.shape == (1, 2, 1, 24, 24)
    run = tmp_path / "run"
    code, text = invoke(["train", data, "--out", run, "--steps", "4", *SMALL])
    assert code == 0, text
    assert "loss: ssdu" in text and "single frame" in text
    config = json.loads((run / "config.json").read_text())
    assert (config["loss"], config["mode"]) == ("ssdu", "sequential")
    # no reflections by default with SSDU (they stay on for temporal splitting in sequential mode)
    from a2a_cli.checkpoints import load_checkpoint
    assert load_checkpoint(run / "best.pt").build_model().flip_ensemble is False
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()][-1] == 4
    code, text = invoke(["reconstruct", run / "best.pt", data, "--out", tmp_path / "recon", "--device", "cpu", "--json"])
    assert code == 0, text
    with h5py.File(tmp_path / "recon" / "knee_recon.h5") as f:
        recon = f["reconstruction"][()]
    assert recon.shape == (2, 24, 24) and np.isfinite(recon).all()
    # SSDU's default network: 5 iterations with a learnt (soft) data-consistency weight, which
    # starts near hard consistency: the measured lines stay close to the measurement
    assert {k: config["model_options"][k] for k in ("iterations", "learn_lambda")} == {"iterations": 5, "learn_lambda": True}
    lines = fixed_lines(1, 24, every=3, centre=4)[0]
    measured = sample.kspace[0, 0, 0].numpy() + 1j * sample.kspace[0, 1, 0].numpy()
    error = np.linalg.norm(fft2c(recon[0])[:, lines] - measured[:, lines]) / np.linalg.norm(measured[:, lines])
    assert error < 0.1, error


@pytest.mark.slow
def test_dynamic_time_invariant_multicoil_trains_with_auto(tmp_path, one_thread):
    from a2a_cli.simulate import coil_sensitivities

    lines = fixed_lines(4, 16, every=2, centre=4)
    rng = np.random.default_rng(0)
    maps = coil_sensitivities(3, 16, 16, rng=1)
    x = phantom_dynamic(16, 16, 4, rng=rng)
    k = fft2c(x[:, None] * maps) * lines[:, None, None, :]
    data = write_a2a_file(tmp_path / "mc.h5", k[None], mask=lines[None], coils=3,
                          sensitivity_maps=maps[None], acquisition="dynamic")
    run = tmp_path / "run"
    code, text = invoke(["train", data, "--out", run, "--steps", "3", "--ssdu-masks", "2", *SMALL])
    assert code == 0, text
    assert "loss: ssdu" in text
    code, text = invoke(["train", data, "--out", tmp_path / "bad", "--loss", "ssdu", "--ssdu-fraction", "1.5"])
    assert code == 2 and "--ssdu-fraction" in text


def test_dynamic_window_of_frames(one_thread):
    y, physics = _data("dynamic", 1, frames=6)
    loss = SSDULoss(frames_per_step=4)
    split = loss.split(y, physics, generator=torch.Generator().manual_seed(2))
    assert split.y_input.shape[2] == 4 and split.input_mask.shape[2] == 4
    start = next(s for s in range(3) if torch.equal(split.y_input + split.y_loss, y[:, :, s:s + 4]))
    assert 0 <= start <= 2
    # sequential data are never cut: every frame measures the same object
    y_s, phys_s = _data("sequential", 1, frames=6)
    assert loss.split(y_s, phys_s).y_input.shape[2] == 6
    # validation scores every frame
    net = build_model("unrolled", channels=4, depth=2)
    assert torch.isfinite(loss.evaluate(net, y, physics))


def test_ssdu_defaults_of_the_unrolled_network():
    from a2a_cli.training import default_model_options

    cfg = TrainConfig(train=["a.h5"], out="run", loss="ssdu")
    assert cfg.ssdu_fraction == 0.2
    assert default_model_options(cfg, None, "sequential") == {"iterations": 5, "learn_lambda": True}
    # radial data: the learnt weight starts higher
    assert default_model_options(cfg, None, "sequential", radial=True) == {"iterations": 5, "learn_lambda": True, "lam": 0.5}
    # what the user gives wins; other losses and networks keep their own defaults
    cfg = TrainConfig(train=["a.h5"], out="run", loss="ssdu", model_options={"iterations": 2})
    assert default_model_options(cfg, None, "sequential") == {"iterations": 2, "learn_lambda": True}
    cfg = TrainConfig(train=["a.h5"], out="run", loss="ssdu", model="unet")
    assert default_model_options(cfg, None, "sequential") == {}
    cfg = TrainConfig(train=["a.h5"], out="run", loss="p2p")
    assert "iterations" not in default_model_options(cfg, None, "dynamic")


def test_dynamic_cartesian_networks_keep_the_view_shared_samples_by_default():
    from a2a_cli.training import default_model_options

    cfg = TrainConfig(train=["a.h5"], out="run", loss="ssdu")
    assert default_model_options(cfg, None, "dynamic")["shared_dc"] is True
    assert "shared_dc" not in default_model_options(cfg, None, "sequential")
    assert "shared_dc" not in default_model_options(cfg, None, "dynamic", radial=True)
    # the user's choice wins, and a start without view sharing has nothing to keep
    cfg = TrainConfig(train=["a.h5"], out="run", loss="ssdu", model_options={"shared_dc": False})
    assert default_model_options(cfg, None, "dynamic")["shared_dc"] is False
    cfg = TrainConfig(train=["a.h5"], out="run", loss="ssdu", model_options={"init": "adjoint"})
    assert "shared_dc" not in default_model_options(cfg, None, "dynamic")


# -- radial data: whole spokes ---------------------------------------------------------------


def _radial(sequential: bool, frames: int = 4, spokes: int = 6, size: int = 16, coils: int = 2, batch: int = 2):
    from a2a_cli.nufft import RadialMRI, golden_angle_trajectory, radial_dcf, sampling_tensor

    g = torch.Generator().manual_seed(3)
    masks = []
    for b in range(batch):  # every sample starts at its own point of the golden-angle sequence
        traj = golden_angle_trajectory(frames, spokes, size, size, first=b * frames * spokes)
        masks.append(sampling_tensor(traj, radial_dcf(traj)))
    maps = torch.randn(batch, coils, size, size, dtype=torch.complex64, generator=g)
    maps = maps / maps.abs().pow(2).sum(1, keepdim=True).sqrt()
    physics = RadialMRI(torch.stack(masks), maps, sequential=sequential)
    shape = (batch, 2, size, size) if sequential else (batch, 2, frames, size, size)
    x = torch.randn(*shape, generator=g)
    return x, physics(x), physics


def _spoke_coordinates(m: torch.Tensor) -> torch.Tensor:
    """Every spoke's coordinates ``(B, spokes, 2 * samples)`` of a sampling tensor (4D or 5D)."""
    return m[:, 1:3].movedim(1, -2).reshape(m.shape[0], -1, 2 * m.shape[-1])


def _disc_area(m: torch.Tensor) -> torch.Tensor:
    """Sum of the density compensation per set of spokes: ``(B, T)`` or ``(B,)``."""
    return m[:, 3].sum(dim=(-1, -2))


@pytest.mark.parametrize("sequential", [False, True])
def test_radial_spokes_are_split_into_disjoint_sets_that_cover_them(sequential, one_thread):
    from a2a_cli.ssdu import partition_spokes

    _, y, physics = _radial(sequential)
    split = SSDULoss(loss_fraction=0.25).split(y, physics, generator=torch.Generator().manual_seed(1))
    if sequential:  # one static set of all 4 x 6 spokes: 6 held out, any of them
        assert split.input_mask.shape == (2, 4, 18, 16) and split.loss_mask.shape == (2, 4, 6, 16)
        assert split.y_input.shape == (2, 2, 2, 18, 16) and split.y_loss.shape == (2, 2, 2, 6, 16)
    else:  # each frame holds out round(0.25 * 6) = 2 of its 6 spokes
        assert split.input_mask.shape == (2, 4, 4, 4, 16) and split.loss_mask.shape == (2, 4, 4, 2, 16)
    traj, every = _spoke_coordinates, _spoke_coordinates(physics.mask)
    for b in range(2):  # every spoke lands in exactly one of the two sets
        both = torch.cat((traj(split.input_mask)[b], traj(split.loss_mask)[b]))
        assert both.shape == every[b].shape
        matches = (both[:, None] == every[b][None]).all(-1)
        assert bool((matches.sum(0) == 1).all()) and bool((matches.sum(1) == 1).all())
    # the input set carries its own density compensation: the same disc (per frame, or once) from fewer spokes
    whole = _disc_area(physics.mask) if not sequential else _disc_area(physics.mask).mean(-1)
    assert torch.allclose(_disc_area(split.input_mask), whole, rtol=0.05)
    with pytest.raises(SSDUError, match="2 spokes"):
        partition_spokes(physics.mask[:, :, :, :1], 0.4)


@pytest.mark.parametrize("sequential", [False, True])
def test_radial_loss_spokes_never_reach_the_network_and_score_the_truth_at_zero(sequential, one_thread):
    torch.manual_seed(0)
    x_true, y, physics = _radial(sequential)
    net = build_model("unrolled", channels=4, depth=2, iterations=2)
    loss = SSDULoss(loss_fraction=0.3, repeats=2)
    y = y.clone().requires_grad_(True)
    split = loss.split(y, physics, generator=torch.Generator().manual_seed(5))
    x_net = net(split.y_input, split.physics_input)
    assert x_net.shape == (4, *x_true.shape[1:])
    # the network's input holds exactly the input spokes of y: a gradient reaches those, none other
    (grad_in,) = torch.autograd.grad(x_net.square().sum(), y, retain_graph=True)
    (grad_loss,) = torch.autograd.grad(split.y_loss.square().sum(), y, retain_graph=True)
    held = grad_loss != 0  # the loss spokes (of either partition)
    kept = torch.autograd.grad(split.y_input.square().sum(), y, retain_graph=True)[0] != 0
    assert bool(held.any()) and bool(kept.any())
    only_loss = held & ~kept  # held out by both partitions
    assert bool(only_loss.any()) and float(grad_in[only_loss].abs().sum()) == 0.0
    assert float(grad_in.abs().sum()) > 0
    # the loss operator scores the loss spokes: the true image costs nothing (noise-free data)
    value = loss(x_true.repeat_interleave(2, 0), split).detach()
    assert float(value) < 1e-8 * float(y.detach().square().mean())
    value = loss(x_net, split)
    value.backward()
    assert torch.isfinite(value) and value > 0
    assert all(p.grad is not None for p in net.parameters())


def test_auto_picks_ssdu_for_radial_sequential_data_and_a2a_for_radial_dynamic_data(tmp_path):
    from a2a_cli.radial import simulate_radial

    files = {mode: simulate_radial(tmp_path / f"{mode}.h5", mode=mode, slices=1, frames=4, size=16, spokes=6, coils=2, seed=1)
             for mode in ("sequential", "dynamic")}
    said = []
    for mode, loss in (("sequential", "ssdu"), ("dynamic", "a2a")):
        cfg = TrainConfig(train=[str(files[mode])], out=str(tmp_path / "run"))
        assert resolve_loss(cfg, KspaceDataset([files[mode]]), log=said.append, mode=mode) == loss
    assert "static" in said[0] and "a2a" in said[1]
    code, text = invoke(["inspect-mask", files["sequential"], "--json"])
    assert code == 0, text
    assert json.loads(text)["recommended_loss"] == "ssdu"
    code, text = invoke(["inspect-mask", files["sequential"]])
    assert code == 0 and "recommended --loss ssdu" in text
    code, text = invoke(["inspect-mask", files["dynamic"], "--json"])
    assert code == 0 and "recommended_loss" not in json.loads(text)


def test_temporal_split_options_choose_a2a_under_auto_and_are_refused_with_other_losses(tmp_path):
    """``--split-size`` (or ``--all-pairs``, ``--neighbours-only``) is never silently ignored."""
    from a2a_cli.config import train_config
    from a2a_cli.errors import A2AError

    seq = _write(tmp_path / "seq.h5", varying_lines(8, 32), slices=1, acquisition="sequential")
    said = []
    cfg = TrainConfig(train=[str(seq)], out=str(tmp_path / "run"), split_size=[4])
    assert resolve_loss(cfg, KspaceDataset([seq]), log=said.append, mode="sequential") == "a2a"
    assert said == ["loss: a2a (Artifact2Artifact), as --split-size asks for temporal splitting"]
    for loss in ("ssdu", "p2p"):
        with pytest.raises(A2AError, match=f"--split-size, --all-pairs shape\\(s\\) Artifact2Artifact's chunks, which --loss {loss}"):
            train_config({"train": [str(seq)], "out": "run", "loss": loss, "split_size": [4], "all_pairs": True})
    assert train_config({"train": [str(seq)], "out": "run", "loss": "a2a", "split_size": [4]}).split_size == [4]
