"""k-space hold-out scores (a2a_cli.holdout) and the reconstruction's choice between the network and TV."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from a2a_cli.holdout import BLEND_ROUNDS, HOLDOUT_CENTRE, HOLDOUT_PIXELS, fit_blend, heldout_error, make_fold, spread_problems
from a2a_cli.physics import DynamicMRI

pytestmark = pytest.mark.usefixtures("one_thread")


def _problem(seed: int = 0, frames: int = 6, size: int = 24):
    """A drifting two-block object, every 3rd line per frame (shifted) plus 2 centre lines, light noise."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(1, 2, frames, size, size)
    for t in range(frames):
        x[:, 0, t, 4 + t // 2:14 + t // 2, 5:15] = 1.0
        x[:, 1, t, 12:20, 10:18] = 0.6
    mask = torch.zeros(1, 1, frames, 1, size)
    for t in range(frames):
        mask[..., t, :, t % 3::3] = 1
    mask[..., size // 2 - 1:size // 2 + 1] = 1
    physics = DynamicMRI(mask=mask)
    y = physics(x)
    y = y + 0.01 * torch.randn(y.shape, generator=g) * (y != 0)
    return physics, y, x


def test_folds_are_disjoint_and_cover_every_measured_line():
    physics, y, _ = _problem()
    fold = make_fold(physics, y, 0.2, torch.Generator().manual_seed(1))
    inp, out = fold.physics_in.mask, fold.physics_out.mask
    assert bool(torch.equal(inp + out, physics.mask)) and float((inp * out).sum()) == 0
    assert float(out.sum()) > 0 and bool(torch.equal(fold.y_in + fold.y_out, y))


def test_blend_errors_rank_the_truth_first_and_predicting_nothing_last():
    physics, y, x = _problem()
    shared = lambda yi, p: p.view_sharing(yi)  # noqa: E731
    first = fit_blend(lambda _y, _p: x, shared, [(physics, y)])
    assert first.errors["network"] < 0.05 < first.errors["tv"] and first.weight > 0.9
    again = fit_blend(shared, lambda _y, _p: torch.zeros_like(x), [(physics, y)])
    assert again.errors["tv"] == pytest.approx(1.0)
    assert again.errors["network"] == pytest.approx(first.errors["tv"], rel=1e-6)  # the same seed draws the same folds
    assert 0.5 < again.weight <= 1.0 and again.errors["blend"] <= again.errors["network"]  # mostly view sharing


def test_static_folds_keep_the_centre_of_k_space_and_dynamic_ones_may_hold_it_out():
    size = 64
    centre = (torch.arange(size) - size // 2).abs() <= HOLDOUT_CENTRE * size / 2  # lines 30..34
    static = torch.zeros(1, 1, 1, 1, size)
    static[..., ::2] = 1
    static[..., centre] = 1
    physics = DynamicMRI(mask=static)
    x = torch.randn(1, 2, 1, size, size)
    y = physics(x)
    held = torch.zeros(size)
    for seed in range(40):  # 3 of 34 lines per draw: drawn from all, the 5 centre lines would be hit about 18 times in 40
        fold = make_fold(physics, y, 0.1, torch.Generator().manual_seed(seed))
        assert int(fold.physics_out.mask.sum()) == 3
        held += fold.physics_out.mask[0, 0, 0, 0]
    assert float(held[centre].sum()) == 0 and int((held > 0).sum()) > 15
    # a mask with nothing outside the centre still gives a fold (drawn among all its lines)
    only = torch.zeros_like(static)
    only[..., centre] = 1
    physics = physics.with_mask(only)
    fold = make_fold(physics, physics(x), 0.2, torch.Generator().manual_seed(0))
    assert int(fold.physics_out.mask.sum()) == 1 and float((fold.physics_out.mask * only).sum()) == 1
    # frames of a moving object: a frame's centre line may be held out (other frames hold copies)
    dynamic = static.repeat(1, 1, 4, 1, 1)
    physics = DynamicMRI(mask=dynamic)
    y = physics(torch.randn(1, 2, 4, size, size))
    hits = sum(float(make_fold(physics, y, 0.1, torch.Generator().manual_seed(s)).physics_out.mask[..., centre].sum())
               for s in range(10))
    assert hits > 0


def test_radial_folds_hold_out_whole_spokes(tmp_path):
    from a2a_cli.data import read_slice
    from a2a_cli.radial import simulate_radial
    from a2a_cli.training import make_physics

    path = simulate_radial(tmp_path / "r.h5", slices=1, frames=3, size=16, spokes=8, coils=2, seed=0)
    s = read_slice(path, 0)
    physics = make_physics("dynamic", s.mask, s.coil_maps)
    fold = make_fold(physics, s.kspace, 0.25, torch.Generator().manual_seed(0))
    assert fold.y_in.shape[4] + fold.y_out.shape[4] == s.kspace.shape[4]  # spokes axis
    assert fold.y_out.shape[4] == 2
    assert heldout_error(fold, torch.zeros_like(physics.view_sharing(s.kspace))) == pytest.approx(1.0)


def test_spread_problems_stops_at_the_pixel_budget_but_takes_one_slice():
    assert spread_problems(1, lambda i: (i, None, 10**9)) == [(0, None)]
    assert [p for p, _ in spread_problems(9, lambda i: (i, None, 1), pixels=100)] == [0, 3, 5, 8]
    assert [p for p, _ in spread_problems(9, lambda i: (i, None, 1), pixels=100, most=16)] == list(range(9))
    assert [p for p, _ in spread_problems(9, lambda i: (i, None, 40), pixels=100, most=16)] == [0, 4, 8]


def test_stored_tv_weights_are_checked(tmp_path):
    from a2a_cli.checkpoints import load_checkpoint, save_checkpoint, stored_tv_weights
    from a2a_cli.errors import InputError
    from a2a_cli.models import build_model

    net = build_model("unrolled", iterations=1, channels=4)
    save_checkpoint(tmp_path / "good.pt", net, "dynamic", extra={"tv_weights": [0.003, 0.05]})
    save_checkpoint(tmp_path / "none.pt", net, "dynamic")
    save_checkpoint(tmp_path / "bad.pt", net, "dynamic", extra={"tv_weights": [0.003, float("nan")]})
    save_checkpoint(tmp_path / "low_rank.pt", net, "dynamic", extra={"tv_weights": [0.003, 0.05, 0.1]})
    save_checkpoint(tmp_path / "four.pt", net, "dynamic", extra={"tv_weights": [0.003, 0.05, 0.1, 0.02]})
    save_checkpoint(tmp_path / "five.pt", net, "dynamic", extra={"tv_weights": [0.003, 0.05, 0.1, 0.02, 0.3]})
    save_checkpoint(tmp_path / "six.pt", net, "dynamic", extra={"tv_weights": [0.003, 0.05, 0.1, 0.1, 0.1, 0.1]})
    w = stored_tv_weights(load_checkpoint(tmp_path / "good.pt"))
    assert (w.spatial, w.temporal, w.low_rank, w.fourier) == (0.003, 0.05, 0.0, 0.0)  # written before those terms: none
    # written before the temporal-spectrum term: its weight is 0
    assert stored_tv_weights(load_checkpoint(tmp_path / "low_rank.pt")).as_list() == [0.003, 0.05, 0.1, 0.0, 0.0]
    assert stored_tv_weights(load_checkpoint(tmp_path / "four.pt")).as_list() == [0.003, 0.05, 0.1, 0.02, 0.0]
    assert stored_tv_weights(load_checkpoint(tmp_path / "five.pt")).as_list() == [0.003, 0.05, 0.1, 0.02, 0.3]
    assert stored_tv_weights(load_checkpoint(tmp_path / "none.pt")) is None
    for bad in ("bad.pt", "six.pt"):
        with pytest.raises(InputError, match="tv_weights"):
            stored_tv_weights(load_checkpoint(tmp_path / bad))


@pytest.mark.parametrize("height", [32, 128])  # 128 rows: scored on the central band of 64, as training sees them
def test_choose_blend_leans_to_the_better_predictor_and_is_symmetric(tmp_path, monkeypatch, height):
    import a2a_cli.holdout as holdout
    from a2a_cli.data import inspect_file
    from a2a_cli.models.tvmodel import TVModel
    from a2a_cli.reconstruction import choose_blend
    from a2a_cli.simulate import write_case
    from a2a_cli.tv import TVWeights

    monkeypatch.setattr(holdout, "BLEND_ROUNDS", 3)  # a small file gets every round: 3 keeps the test short
    path = write_case(tmp_path / "c.h5", slices=2, frames=8, height=height, width=32, seed=7)
    good, awful = TVModel(), TVModel()
    good.set_tv_weights(TVWeights(0.005, 0.05))
    awful.set_tv_weights(TVWeights(0.3, 0.8))  # far too smooth
    info = inspect_file(path)
    first = choose_blend(good, awful, "dynamic", path, info, torch.device("cpu"))
    second = choose_blend(awful, good, "dynamic", path, info, torch.device("cpu"))
    assert first.weight > 0.7 and first.errors["network"] < first.errors["tv"]
    # the same folds with the roles swapped: the weight moves to the other side, exactly
    assert second.weight == pytest.approx(1 - first.weight, abs=1e-5)
    assert second.errors["tv"] == pytest.approx(first.errors["network"], rel=1e-5)
    assert first.errors["blend"] <= first.errors["network"] + 1e-6
    assert first.rounds == 3


def test_fit_blend_averages_two_equally_good_estimators():
    """Two estimators with independent errors of one size: the held-out fit keeps half of each,
    and the blend predicts held-out samples better than either (its error about half theirs)."""
    from a2a_cli.physics import DynamicMRI

    gen = torch.Generator().manual_seed(0)
    mask = (torch.rand(1, 1, 8, 1, 32, generator=gen) < 0.5).float()
    physics = DynamicMRI(mask=mask)
    x = torch.randn(1, 2, 8, 32, 32, generator=gen)
    e1, e2 = (0.3 * torch.randn(x.shape, generator=gen) for _ in range(2))
    blend = fit_blend(lambda y, p: x + e1, lambda y, p: x + e2, [(physics, physics(x))])
    assert blend.rounds == BLEND_ROUNDS  # a small problem: every round
    assert 0.4 < blend.weight < 0.6
    assert blend.errors["blend"] < 0.6 * min(blend.errors["network"], blend.errors["tv"])


def test_fit_blend_rounds_shrink_with_the_problem_size():
    from a2a_cli.physics import DynamicMRI

    mask = torch.ones(1, 1, 2, 1, 8)
    physics = DynamicMRI(mask=mask)
    x = torch.randn(1, 2, 2, 8, 8)
    calls = []

    def net(y, p):
        calls.append(1)
        return x

    reported = []
    blend = fit_blend(net, lambda y, p: 0 * x, [(physics, physics(x))], pixels=HOLDOUT_PIXELS,
                      on_round=lambda k, n: reported.append((k, n)))
    assert blend.rounds == BLEND_ROUNDS and len(calls) == BLEND_ROUNDS
    assert reported == [(k, BLEND_ROUNDS) for k in range(1, BLEND_ROUNDS + 1)]
    assert fit_blend(net, lambda y, p: 0 * x, [(physics, physics(x))], pixels=4 * HOLDOUT_PIXELS).rounds == 2
    assert fit_blend(net, lambda y, p: 0 * x, [(physics, physics(x))], pixels=100 * HOLDOUT_PIXELS).rounds == 2


def test_default_training_keeps_tv_weights_and_reconstruct_chooses(tmp_path):
    import h5py
    from cli_runner import invoke

    from a2a_cli.checkpoints import load_checkpoint, stored_tv_weights
    from a2a_cli.simulate import write_case

    train = write_case(tmp_path / "train.h5", slices=2, frames=8, height=32, width=32, seed=3)
    test = write_case(tmp_path / "test.h5", slices=1, frames=8, height=32, width=32, seed=4)
    code, text = invoke(["train", train, "--out", tmp_path / "run", "--steps", "3", "--json"])
    assert code == 0, text
    assert "TV: spatial TV weight" in text
    summary = json.loads(text[text.index("{"):])
    for name in ("best.pt", "last.pt"):
        w = stored_tv_weights(load_checkpoint(tmp_path / "run" / name))
        assert w is not None and w.spatial > 0 and w.temporal > 0
        assert summary["tv_weights"] == w.as_list()
    code, text = invoke(["reconstruct", tmp_path / "run" / "best.pt", test, "--out", tmp_path / "auto", "--json"])
    assert code == 0, text
    row = json.loads(text[text.index("{"):])["files"][0]
    assert set(row["holdout_error"]) == {"network", "tv", "blend"}
    # three steps of training: compressed sensing predicts the held-out samples better, and gets most of the weight
    assert row["holdout_error"]["tv"] < row["holdout_error"]["network"] and row["network_weight"] < 0.5
    assert row["method"] == ("tv" if row["network_weight"] == 0 else "blend")
    code, text = invoke(["reconstruct", tmp_path / "run" / "best.pt", test, "--out", tmp_path / "net", "--json",
                         "--method", "network"])
    assert code == 0, text
    net_row = json.loads(text[text.index("{"):])["files"][0]
    assert net_row["method"] == "network" and net_row["holdout_error"] is None and net_row["network_weight"] == 1
    assert row["psnr_network"] > net_row["psnr_network"]
    code, text = invoke(["reconstruct", tmp_path / "run" / "best.pt", test, "--out", tmp_path / "tv", "--json",
                         "--method", "tv"])
    assert code == 0, text
    assert json.loads(text[text.index("{"):])["files"][0]["network_weight"] == 0
    # what auto wrote is the blend of the two methods' images at the weight it reports
    with h5py.File(tmp_path / "auto" / "test_recon.h5") as f, h5py.File(tmp_path / "net" / "test_recon.h5") as g, \
            h5py.File(tmp_path / "tv" / "test_recon.h5") as h:
        assert f.attrs["method"] == row["method"] and f.attrs["network_weight"] == pytest.approx(row["network_weight"])
        a = row["network_weight"]
        expected = a * g["reconstruction"][()] + (1 - a) * h["reconstruction"][()]
        np.testing.assert_allclose(f["reconstruction"][()], expected, atol=1e-5 * np.abs(expected).max())
    # --no-tv: no weights, so auto reconstructs with the network and --method tv is refused
    code, text = invoke(["train", train, "--out", tmp_path / "notv", "--steps", "2", "--no-tv"])
    assert code == 0 and "TV:" not in text, text
    assert stored_tv_weights(load_checkpoint(tmp_path / "notv" / "best.pt")) is None
    code, text = invoke(["reconstruct", tmp_path / "notv" / "best.pt", test, "--out", tmp_path / "r2", "--json"])
    assert code == 0 and json.loads(text[text.index("{"):])["files"][0]["method"] == "network", text
    code, text = invoke(["reconstruct", tmp_path / "notv" / "best.pt", test, "--out", tmp_path / "r3", "--method", "tv"])
    assert code != 0 and "holds no TV weights" in text and "Traceback" not in text
    assert not (tmp_path / "r3" / "test_recon.h5").exists()


def test_radial_runs_choose_tv_beside_the_network_unless_told_not_to(tmp_path):
    from cli_runner import invoke

    from a2a_cli.checkpoints import load_checkpoint, stored_tv_weights
    from a2a_cli.radial import simulate_radial

    path = simulate_radial(tmp_path / "rad.h5", slices=1, frames=4, size=24, spokes=6, coils=2, seed=0)
    opts = ["--steps", "1", "--model-option", "channels=4", "--model-option", "depth=2"]
    code, text = invoke(["train", path, "--out", tmp_path / "notv", "--no-tv", *opts])
    assert code == 0, text
    assert "TV:" not in text and stored_tv_weights(load_checkpoint(tmp_path / "notv" / "best.pt")) is None
    code, text = invoke(["train", path, "--out", tmp_path / "tv", *opts])
    assert code == 0, text
    assert "TV: spatial TV weight" in text
    assert stored_tv_weights(load_checkpoint(tmp_path / "tv" / "best.pt")) is not None
    code, text = invoke(["reconstruct", tmp_path / "tv" / "best.pt", path, "--out", tmp_path / "rec", "--json"])
    assert code == 0, text
    row = json.loads(text[text.index("{"):])["files"][0]
    assert row["method"] in ("network", "tv", "blend") and set(row["holdout_error"]) == {"network", "tv", "blend"}
    assert 0 <= row["network_weight"] <= 1
