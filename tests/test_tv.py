"""Total-variation reconstruction (a2a_cli.tv) and the networks' ``init="tv"``."""
from __future__ import annotations

import math
import time

import pytest
import torch

from a2a_cli import tv
from a2a_cli.models import build_model
from a2a_cli.physics import DynamicMRI, SequentialMRI, to_complex
from a2a_cli.simulate import coil_sensitivities
from a2a_cli.tv import (FOURIER_GRID, LOW_RANK_GRID, REWEIGHT_GRID, SPATIAL_GRID, TEMPORAL_GRID, TVWeights, gradient,
                        gradient_adjoint, operator_norm, select_weights, tv_reconstruct)

pytestmark = pytest.mark.usefixtures("one_thread")


def _blocks(frames: int = 6, size: int = 24) -> torch.Tensor:
    """A piecewise-constant complex object drifting one pixel every other frame: ``(1, 2, T, H, W)``."""
    x = torch.zeros(1, 2, frames, size, size)
    for t in range(frames):
        shift = t // 2
        x[:, 0, t, 4 + shift:14 + shift, 5:15] = 1.0
        x[:, 1, t, 12:20, 10 + shift:18 + shift] = 0.6
    return x


def _lines(frames: int, size: int, every: int = 3, centre: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(1, 1, frames, 1, size)
    for t in range(frames):
        mask[..., t, :, int(torch.randint(every, (1,), generator=g)) + t % every::every] = 1
    c = size // 2
    mask[..., c - centre // 2:c + (centre + 1) // 2] = 1
    return mask


def _noisy(physics, x: torch.Tensor, sigma: float = 0.01, seed: int = 1) -> torch.Tensor:
    y = physics(x)
    g = torch.Generator().manual_seed(seed)
    return physics(physics.A_adjoint(y + sigma * torch.randn(y.shape, generator=g)))  # noise on measured samples only


def test_gradient_adjoint_is_the_adjoint():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 3, 5, 7, dtype=torch.complex64, generator=g)
    gs, gt = (torch.randn(2, 2, 3, 5, 7, dtype=torch.complex64, generator=g),
              torch.randn(2, 3, 5, 7, dtype=torch.complex64, generator=g))
    a, b = gradient(z)
    lhs = (a.conj() * gs).sum() + (b.conj() * gt).sum()
    rhs = (z.conj() * gradient_adjoint(gs, gt)).sum()
    assert torch.allclose(lhs, rhs, rtol=1e-4, atol=1e-4)
    # the last row, column and frame carry no difference (Neumann boundary)
    assert float(a[:, 0, :, -1].abs().max()) == 0 and float(b[:, -1].abs().max()) == 0


def test_operator_norm_of_a_cartesian_operator_is_one():
    physics = DynamicMRI(mask=_lines(4, 16))
    assert 1.0 <= operator_norm(physics, (1, 2, 4, 16, 16)) <= 1.05


def test_without_weights_it_fits_the_measured_samples():
    x = _blocks()
    physics = DynamicMRI(mask=_lines(6, 24))
    y = physics(x)
    z = tv_reconstruct(physics, y, 0.0, 0.0, iterations=200)
    assert float((physics(z) - y).abs().max()) < 1e-3


@pytest.mark.parametrize("coils", [0, 4])
def test_tv_beats_least_squares_on_a_piecewise_constant_object(coils):
    x = _blocks()
    maps = None
    if coils:
        maps = torch.as_tensor(coil_sensitivities(coils, 24, 24, rng=0))[None].to(torch.complex64)
    physics = DynamicMRI(mask=_lines(6, 24), coil_maps=maps)
    y = _noisy(physics, x)
    def err(z: torch.Tensor) -> float:
        return float((z - x).pow(2).mean())

    shared = physics.view_sharing(y)
    least_squares = tv_reconstruct(physics, y, 0.0, 0.0, x0=shared)
    tv = tv_reconstruct(physics, y, 0.005, 0.05, x0=shared)
    assert err(tv) < 0.5 * err(least_squares)
    if not coils:
        assert err(tv) < 0.5 * err(shared)
    # the result is the objective's minimiser, not the start: the zero-filled start gets there too
    assert err(tv_reconstruct(physics, y, 0.005, 0.05, iterations=1500)) < 1.2 * err(tv)


def test_reweighted_tv_keeps_edges_sharper_and_cross_validation_finds_it(monkeypatch):
    x = _blocks(frames=8)
    physics = DynamicMRI(mask=_lines(8, 24, seed=4))
    y, shared, err = _unit_problem(physics, x)
    plain = tv_reconstruct(physics, y, 0.02, 0.02, x0=shared)
    assert torch.equal(plain, tv_reconstruct(physics, y, 0.02, 0.02, x0=shared, reweight=0.0))
    reweighted = tv_reconstruct(physics, y, 0.02, 0.02, x0=shared, reweight=1.0)
    assert err(reweighted) < 0.5 * err(plain)
    # the rounds: four of a twelfth of the iterations cost what one of a third does, and get further
    # (measured: 4.23e-5 against 4.43e-5 here; 9.7e-5 against 7.4e-4 on the mask of seed 5)
    with monkeypatch.context() as m:
        m.setattr(tv, "REWEIGHT_ROUNDS", 1)
        m.setattr(tv, "REWEIGHT_SHARE", 1 / 3)
        one_round = tv_reconstruct(physics, y, 0.02, 0.02, x0=shared, reweight=1.0)
    assert err(reweighted) < 0.97 * err(one_round)
    w = select_weights([(physics, y)], iterations=150)
    assert w.reweight > 0
    chosen = tv_reconstruct(physics, y, w.spatial, w.temporal, x0=shared, low_rank=w.low_rank, fourier=w.fourier,
                            reweight=w.reweight)
    # against plain TV at the best of the weights it tried, by the truth (the walks need not try the plain solve)
    plain = min(err(tv_reconstruct(physics, y, *row[:2], x0=shared, low_rank=row[2], fourier=row[3]))
                for row in {row[:4] for row in w.table})
    assert err(chosen) < 0.5 * plain  # measured: 3.2e-5 against 1.5e-4
    with pytest.raises(ValueError, match="TV weights"):
        tv_reconstruct(physics, y, 0.01, 0.01, iterations=1, reweight=-1.0)


def test_tv_reconstruct_rejects_bad_weights():
    physics = DynamicMRI(mask=_lines(2, 8))
    y = physics(torch.ones(1, 2, 2, 8, 8))
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="TV weights"):
            tv_reconstruct(physics, y, bad, 0.0, iterations=1)


def _assert_local_minimum(w: TVWeights) -> None:
    """No candidate one grid step from the chosen one scored lower (the search's final descent solves them all cold)."""
    chosen = {row[:5]: row[-1] for row in w.table}[tuple(w.as_list())]
    grids = (SPATIAL_GRID, TEMPORAL_GRID, LOW_RANK_GRID, FOURIER_GRID, REWEIGHT_GRID)
    steps = [[abs(g.index(a) - g.index(b)) for g, a, b in zip(grids, row[:5], w.as_list())] for row in w.table]
    neighbours = [row for row, d in zip(w.table, steps) if sorted(d) == [0, 0, 0, 0, 1]]
    assert len(neighbours) >= 4 and all(row[-1] >= chosen for row in neighbours)


def test_cross_validation_picks_weights_that_help_and_is_deterministic():
    x = _blocks(frames=8)
    physics = DynamicMRI(mask=_lines(8, 24, seed=3))
    y = _noisy(physics, x, sigma=0.02)
    s = float(to_complex(physics.view_sharing(y)).abs().mean())
    problem = (physics, y / s)
    w = select_weights([problem], iterations=150)
    assert w == select_weights([problem], iterations=150)
    assert w.spatial > 0 and w.temporal > 0 and len(w.table) >= 3
    _assert_local_minimum(w)
    def err(z: torch.Tensor) -> float:
        return float((z - x / s).pow(2).mean())

    shared = physics.view_sharing(y) / s
    chosen = tv_reconstruct(physics, y / s, w.spatial, w.temporal, x0=shared, low_rank=w.low_rank)
    assert err(chosen) < 0.6 * err(shared)
    # static data: only the spatial weight is chosen
    static = select_weights([(physics.with_mask(physics.mask[:, :, :1]), (y / s)[:, :, :1])],
                            dynamic=False, iterations=100)
    assert static.temporal == 0 and static.spatial > 0


def test_cross_validation_stops_at_its_deadline_with_the_best_so_far():
    x = _blocks(frames=6)
    physics = DynamicMRI(mask=_lines(6, 24, seed=4))
    y = _noisy(physics, x, sigma=0.02)
    s = float(to_complex(physics.view_sharing(y)).abs().mean())
    # a deadline already past: the first candidate is solved, no other
    w = select_weights([(physics, y / s)], iterations=30, deadline=time.monotonic() - 1.0)
    assert not w.complete and len(w.table) == 1
    assert (w.spatial, w.temporal, w.low_rank, w.fourier) == w.table[0][:4]
    full = select_weights([(physics, y / s)], iterations=30, deadline=time.monotonic() + 3600.0)
    assert full.complete and len(full.table) > 1
    assert w.table[0] in full.table  # the same first candidate, the same score


def _tv_net(weights=(0.005, 0.05)):
    net = build_model("unrolled", init="tv", channels=4, depth=2)
    net.set_tv_weights(TVWeights(*weights))
    return net.eval()


def test_tv_init_network_is_scale_equivariant_and_keeps_its_weights(tmp_path):
    x = _blocks()
    physics = DynamicMRI(mask=_lines(6, 24))
    y = _noisy(physics, x)
    net = _tv_net((0.005, 0.05, 0.1))  # with the low-rank term: its threshold refers to normalised data too
    with torch.no_grad():
        out = net(y, physics)
        for factor in (1e-12, 1e12):
            scaled = net(y * factor, physics)
            assert torch.allclose(scaled / factor, out, rtol=1e-3, atol=1e-4 * float(out.abs().max()))
    # the weights travel with the state dict, so a checkpoint rebuilds the same network
    again = build_model("unrolled", **net.config)
    assert not again.tv_chosen
    again.load_state_dict(net.state_dict())
    assert again.tv_chosen and torch.equal(again.tv_weights, net.tv_weights)
    with torch.no_grad():
        assert torch.allclose(again.eval()(y, physics), out)
    # checkpoints from before the low-rank and temporal-spectrum terms and the reweighting hold two to four
    # weights: the missing are 0
    from a2a_cli.checkpoints import load_checkpoint, save_checkpoint

    save_checkpoint(tmp_path / "old.pt", net, "dynamic")
    for kept, expected in ((2, [0.005, 0.05, 0.0, 0.0, 0.0]), (3, [0.005, 0.05, 0.1, 0.0, 0.0]),
                           (4, [0.005, 0.05, 0.1, 0.02, 0.0])):
        payload = torch.load(tmp_path / "old.pt", weights_only=True)
        payload["state_dict"]["tv_weights"] = torch.tensor([0.005, 0.05, 0.1, 0.02])[:kept]
        torch.save(payload, tmp_path / f"old{kept}.pt")
        assert load_checkpoint(tmp_path / f"old{kept}.pt").build_model().tv_weights.tolist() == pytest.approx(expected)


def _unit_problem(physics, x: torch.Tensor):
    """Noisy data of ``x`` scaled to unit mean magnitude, their view-shared image, and the squared error of an image at that scale."""
    y = _noisy(physics, x, sigma=0.01)
    s = float(to_complex(physics.view_sharing(y)).abs().mean())
    return y / s, physics.view_sharing(y) / s, lambda z: float((z - x / s).pow(2).mean())


def _textured_low_rank(frames: int = 8, size: int = 24) -> torch.Tensor:
    """A noise-like texture whose pixels follow two temporal profiles: rank 2 through time, no flat pieces."""
    g = torch.Generator().manual_seed(5)
    a, b = torch.rand(2, size, size, generator=g)
    t = torch.arange(frames, dtype=torch.float32)
    seq = a * (1 + 0.5 * torch.cos(t / 2))[:, None, None] + b * (0.5 * torch.sin(t / 3))[:, None, None]
    return torch.stack((seq, 0.3 * seq), 0)[None]  # (1, 2, T, H, W)


def test_low_rank_term_reconstructs_what_tv_cannot_and_cross_validation_finds_it():
    x = _textured_low_rank()
    mask = torch.zeros(1, 1, 8, 1, 24)  # every 4th line, shifted each frame: together the frames measure every line
    for t in range(8):
        mask[..., t, :, t % 4::4] = 1
    mask[..., 11:13] = 1
    physics = DynamicMRI(mask=mask)
    y, shared, err = _unit_problem(physics, x)
    w = select_weights([(physics, y)], iterations=150)
    assert w.low_rank > 0
    tv_only = min((row for row in w.table if row[2] == 0), key=lambda row: row[-1])  # the best TV the search tried
    with_lr = tv_reconstruct(physics, y, w.spatial, w.temporal, x0=shared, low_rank=w.low_rank)
    without = tv_reconstruct(physics, y, tv_only[0], tv_only[1], x0=shared)
    assert err(with_lr) < 0.75 * err(without)  # measured: 0.0070 against 0.0104
    # deterministic: the blocks' random shifts come from a fixed seed
    assert torch.equal(with_lr, tv_reconstruct(physics, y, w.spatial, w.temporal, x0=shared, low_rank=w.low_rank))
    with pytest.raises(ValueError, match="TV weights"):
        tv_reconstruct(physics, y, 0.01, 0.01, iterations=1, low_rank=-1.0)


def test_tv_init_network_without_weights_says_so_and_other_inits_refuse_them():
    physics = DynamicMRI(mask=_lines(2, 8))
    y = physics(torch.ones(1, 2, 2, 8, 8))
    net = build_model("unrolled", init="tv", channels=4, depth=2)
    with pytest.raises(ValueError, match="never chosen"):
        net(y, physics)
    with pytest.raises(ValueError, match="init='tv'"):
        build_model("unrolled", channels=4, depth=2).set_tv_weights(TVWeights(0.1, 0.1))


def test_tv_init_works_in_sequential_mode():
    x = _blocks(frames=1)[:, :, 0]
    mask = _lines(6, 24, every=4)
    physics = SequentialMRI(mask=mask)
    y = physics(x)
    net = _tv_net((0.005, 0.0))
    with torch.no_grad():
        out = net(y, physics)
    assert out.shape == x.shape
    assert float((out - x).pow(2).mean()) < float((physics.A_dagger(y) - x).pow(2).mean())


# -- the command line: --model tv ---------------------------------------------------------------------


def test_model_tv_trains_no_steps_and_reconstructs_above_zero_filled(tmp_path):
    import h5py
    from cli_runner import invoke

    from a2a_cli.checkpoints import load_checkpoint
    from a2a_cli.simulate import write_case

    train = write_case(tmp_path / "train.h5", slices=2, frames=8, height=32, width=32, seed=3)
    test = write_case(tmp_path / "test.h5", slices=1, frames=8, height=32, width=32, seed=4)
    code, text = invoke(["train", train, "--out", tmp_path / "run", "--model", "tv", "--json"])
    assert code == 0, text
    assert "TV: spatial TV weight" in text and "nothing to train" in text
    ckpt = load_checkpoint(tmp_path / "run" / "best.pt")
    weights = ckpt.build_model().tv_weights
    assert ckpt.model_name == "tv" and bool(torch.isfinite(weights).all()) and float(weights[:2].min()) > 0 and float(weights[2]) >= 0
    import json

    summary = json.loads(text[text.index("{"):])
    assert summary["tv_weights"] == pytest.approx([float(v) for v in weights])  # the model's own weights, said in --json
    code, text = invoke(["reconstruct", tmp_path / "run" / "best.pt", test, "--out", tmp_path / "rec", "--json"])
    assert code == 0, text
    with h5py.File(tmp_path / "rec" / "test_recon.h5") as f:
        assert f["reconstruction"].shape[:2] == (1, 8)
    scores = json.loads(text[text.index("{"):])["overall"]
    assert scores["psnr_network"] > scores["psnr_zero_filled"] + 3
    # sequential data: the default per-slice fine-tuning has nothing to tune and is skipped
    seq = write_case(tmp_path / "seq.h5", mode="sequential", slices=1, frames=8, height=32, width=32, seed=5)
    code, text = invoke(["train", seq, "--out", tmp_path / "seqrun", "--model", "tv"])
    assert code == 0, text
    code, text = invoke(["reconstruct", tmp_path / "seqrun" / "best.pt", seq, "--out", tmp_path / "seqrec"])
    assert code == 0, text


def test_model_tv_on_radial_files(tmp_path):
    import json

    from cli_runner import invoke

    from a2a_cli.radial import simulate_radial

    train = simulate_radial(tmp_path / "radial.h5", slices=1, frames=4, size=24, spokes=6, coils=2, seed=0)
    test = simulate_radial(tmp_path / "radial_test.h5", slices=1, frames=4, size=24, spokes=6, coils=2, seed=1)
    code, text = invoke(["train", train, "--out", tmp_path / "run", "--model", "tv"])
    assert code == 0, text
    assert "TV: spatial TV weight" in text
    code, text = invoke(["reconstruct", tmp_path / "run" / "best.pt", test, "--out", tmp_path / "rec", "--json"])
    assert code == 0, text
    scores = json.loads(text[text.index("{"):])["overall"]
    assert scores["psnr_network"] > scores["psnr_zero_filled"] + 3  # above per-frame gridding


def test_radial_cross_validation_chooses_weights_that_help(tmp_path):
    from a2a_cli.data import read_slice
    from a2a_cli.radial import simulate_radial
    from a2a_cli.training import make_physics

    path = simulate_radial(tmp_path / "cv.h5", slices=1, frames=4, size=24, spokes=6, coils=2, seed=2)
    s = read_slice(path, 0)
    physics = make_physics("dynamic", s.mask, s.coil_maps)
    start = physics.view_sharing(s.kspace)
    scale = float(to_complex(start).abs().mean())
    w = select_weights([(physics, s.kspace / scale)], iterations=60)
    assert w.spatial > 0 and w.temporal > 0
    _assert_local_minimum(w)
    assert len({row[2] for row in w.table}) > 1  # the low-rank weight was searched too
    ref = to_complex(s.reference).abs()

    def err(x: torch.Tensor) -> float:  # on magnitudes: estimated coil maps fix the phase their own way
        return float((to_complex(x).abs() - ref).square().mean())

    chosen = tv_reconstruct(physics, s.kspace, w.spatial, w.temporal, x0=start)
    assert err(chosen) < 0.7 * err(start)  # better than the sliding-window gridding it starts from


def _radial_problem(tmp_path, frames: int = 4, spokes: int = 6):
    from a2a_cli.data import read_slice
    from a2a_cli.radial import simulate_radial
    from a2a_cli.training import make_physics

    path = simulate_radial(tmp_path / "r.h5", slices=1, frames=frames, size=24, spokes=spokes, coils=2, seed=3)
    s = read_slice(path, 0)
    physics = make_physics("dynamic", s.mask, s.coil_maps)
    start = physics.view_sharing(s.kspace)
    scale = float(to_complex(start).abs().mean())
    return physics, s.kspace / scale, start / scale


def _objective(physics, y, x, spatial: float, temporal: float) -> float:
    """The radial problem of :func:`tv_reconstruct`: ``1/2 ||W^(1/2) (A x - y)||^2`` plus anisotropic TV."""
    from a2a_cli.tv import RADIAL_DCF_POWER

    r = to_complex(physics.A(x) - y)  # (1, T, N, spokes, samples)
    power = r.abs().square().reshape(r.shape[1], r.shape[2], -1) * physics.data_weights(1, RADIAL_DCF_POWER)[:, None]
    gs, gt = gradient(to_complex(x))
    return 0.5 * float(power.sum()) + spatial * float(gs.abs().sum()) + temporal * float(gt.abs().sum())


def test_radial_data_weights_are_relative_density_compensation_to_a_power(tmp_path):
    physics, _, _ = _radial_problem(tmp_path)
    _, dcf, sampled, _ = physics._frames(1)
    measured = sampled > 0
    full, root, none = (physics.data_weights(1, p) for p in (1.0, 0.5, 0.0))
    assert torch.equal(none, sampled)
    assert float(full[measured].mean()) == pytest.approx(1.0, rel=1e-5)
    assert torch.allclose(full, dcf * sampled / dcf[measured].mean())
    assert torch.allclose(root, full.sqrt(), atol=1e-6)


@pytest.mark.parametrize("frames", [4, 1])
def test_radial_tv_solves_the_root_density_weighted_problem(tmp_path, frames):
    """Radial data (a sequence, or one image as sequential data become) are fitted with each sample
    weighted by the square root of its density compensation, by ADMM: without TV the solution satisfies
    the normal equations A^H W A x = A^H W y; with TV its 30 iterations come within 1 % of 300 in
    objective, far below the start."""
    from a2a_cli.tv import ADMM_ITERATIONS, RADIAL_DCF_POWER

    physics, y, start = _radial_problem(tmp_path, frames, spokes=20)  # more samples than pixels per frame
    weights = physics.data_weights(1, RADIAL_DCF_POWER)
    ls = to_complex(tv_reconstruct(physics, y, 0.0, 0.0, x0=start, iterations=100))
    ahy = physics._adjoint_complex(to_complex(y), weights=weights)
    gap = (physics.normal(ls, weights=weights) - ahy).abs().norm() / ahy.abs().norm()
    assert float(gap) < 1e-3
    # the unweighted and the density-compensated least-squares problems have other solutions
    for other in (physics.data_weights(1, 0.0), physics.data_weights(1, 1.0)):
        rhs = physics._adjoint_complex(to_complex(y), weights=other)
        assert float((physics.normal(ls, weights=other) - rhs).abs().norm() / rhs.abs().norm()) > 3 * float(gap)

    s, t = 0.01, (0.05 if frames > 1 else 0.0)
    x = tv_reconstruct(physics, y, s, t, x0=start)
    long = tv_reconstruct(physics, y, s, t, x0=start, iterations=10 * ADMM_ITERATIONS)
    f = _objective(physics, y, x, s, t)
    assert f <= 1.01 * _objective(physics, y, long, s, t)
    assert f < 0.5 * _objective(physics, y, start, s, t)


def test_cartesian_tv_weights_lines_by_their_spacing_where_frames_leave_lines_out(monkeypatch):
    """A mask that measures the same lines in every frame (every 3rd plus the centre) is fitted with each line
    weighted by its spacing: the solution's weighted objective is below that of the unweighted solve; where the
    frames together measure every line the weights are all 1 and nothing changes."""
    import a2a_cli.tv as tv

    x = _blocks()
    same = _lines(6, 24, every=3, centre=4)[:, :, :1].expand(1, 1, 6, 1, 24).clone()
    physics = DynamicMRI(mask=same)
    y = _noisy(physics, x)
    weights = tv.line_weights(same, tv.CARTESIAN_DCF_POWER)
    assert weights is not None and float(weights.max()) > 1.5 * float(weights.min())

    def objective(z):
        r = (to_complex(physics.A(z) - y).abs().square() * weights[:, :, None, :]).sum()
        gs, gt = gradient(to_complex(z))
        return 0.5 * float(r) + 0.005 * float(gs.abs().sum()) + 0.05 * float(gt.abs().sum())

    weighted = tv_reconstruct(physics, y, 0.005, 0.05, x0=physics.view_sharing(y))
    monkeypatch.setattr(tv, "CARTESIAN_DCF_POWER", 0.0)
    plain = tv_reconstruct(physics, y, 0.005, 0.05, x0=physics.view_sharing(y))
    assert objective(weighted) < objective(plain)

    varying = _lines(6, 24, every=3, centre=2)  # each frame its own offset: together every line
    assert bool(varying.amax(2).all())
    assert bool((tv.line_weights(varying, 1.0) == 1).all())


def test_radial_low_rank_term_helps_on_a_low_rank_sequence(tmp_path):
    from a2a_cli.data import read_slice
    from a2a_cli.radial import simulate_radial
    from a2a_cli.training import make_physics

    path = simulate_radial(tmp_path / "lr.h5", slices=1, frames=8, size=24, spokes=6, coils=2, seed=3)
    s = read_slice(path, 0)
    physics = make_physics("dynamic", s.mask, s.coil_maps)  # golden-angle spokes, 2 coils
    x = _textured_low_rank(frames=8, size=24)
    y = physics(x)
    scale = float(to_complex(physics.view_sharing(y)).abs().mean())

    def err(z: torch.Tensor) -> float:
        return float((z - x / scale).pow(2).mean())

    tv = tv_reconstruct(physics, y / scale, 0.001, 0.01)
    low_rank = tv_reconstruct(physics, y / scale, 0.0, 0.0, low_rank=0.2)
    assert err(low_rank) < 0.9 * err(tv)  # measured: 0.090 against 0.111
    assert torch.equal(low_rank, tv_reconstruct(physics, y / scale, 0.0, 0.0, low_rank=0.2))  # fixed block shifts


def _beating(frames: int = 16, size: int = 24) -> torch.Tensor:
    """A disc on a textured background whose radius beats twice per sequence: few temporal frequencies."""
    g = torch.Generator().manual_seed(6)
    background = 0.3 + 0.2 * torch.rand(size, size, generator=g)
    yy, xx = torch.meshgrid(torch.arange(size) - size / 2, torch.arange(size) - size / 2, indexing="ij")
    radius = (torch.hypot(yy, xx))[None]
    beat = 5 + 2 * torch.cos(4 * math.pi * torch.arange(frames) / frames)[:, None, None]
    seq = background + torch.sigmoid(2 * (beat - radius))
    return torch.stack((seq, 0.2 * seq), 0)[None]  # (1, 2, T, H, W)


def test_temporal_spectrum_term_reconstructs_a_beat_and_cross_validation_finds_it():
    x = _beating(size=32)
    physics = DynamicMRI(mask=_lines(16, 32, every=4, centre=2))
    y, shared, err = _unit_problem(physics, x)
    w = select_weights([(physics, y)], iterations=150)
    assert w.fourier > 0
    without = min((row for row in w.table if row[3] == 0), key=lambda row: row[-1])  # the best the search tried without it
    with_f = tv_reconstruct(physics, y, w.spatial, w.temporal, x0=shared, low_rank=w.low_rank, fourier=w.fourier)
    other = tv_reconstruct(physics, y, *without[:2], x0=shared, low_rank=without[2])
    assert err(with_f) < 0.85 * err(other)  # measured: 0.00085 against 0.00112
    with pytest.raises(ValueError, match="TV weights"):
        tv_reconstruct(physics, y, 0.01, 0.01, iterations=1, fourier=-1.0)
    # one frame has no temporal spectrum: the term is left out
    one = physics.with_mask(physics.mask[:, :, :1])
    assert torch.equal(tv_reconstruct(one, y[:, :, :1], 0.01, 0.0, iterations=20, fourier=1.0),
                       tv_reconstruct(one, y[:, :, :1], 0.01, 0.0, iterations=20))


def test_radial_solver_minimises_the_temporal_spectrum_term_it_is_given(tmp_path):
    from a2a_cli.data import read_slice
    from a2a_cli.radial import simulate_radial
    from a2a_cli.training import make_physics
    from a2a_cli.tv import RADIAL_DCF_POWER, temporal_spectrum

    path = simulate_radial(tmp_path / "beat.h5", slices=1, frames=16, size=24, spokes=5, coils=2, seed=3)
    smp = read_slice(path, 0)
    physics = make_physics("dynamic", smp.mask, smp.coil_maps)
    x = _beating(frames=16, size=24)
    y = physics(x)
    y = y / float(to_complex(physics.view_sharing(y)).abs().mean())
    k = to_complex(y)
    weights = physics.data_weights(1, RADIAL_DCF_POWER)
    rhs = physics._adjoint_complex(k, weights=weights)
    spatial, temporal, fourier = 0.001, 0.01, 0.05

    def objective(image: torch.Tensor) -> float:  # the ADMM's objective
        z = to_complex(image)
        gs, gt = gradient(z)
        data = 0.5 * float((z.conj() * physics.normal(z, weights=weights)).real.sum()) - float((z.conj() * rhs).real.sum())
        data += 0.5 * float((weights.reshape(k.shape[1], 1, -1) * k[0].abs().pow(2).reshape(k.shape[1], k.shape[2], -1)).sum())
        return data + spatial * float(gs.abs().sum()) + temporal * float(gt.abs().sum()) \
            + fourier * float(temporal_spectrum(z).abs().sum())

    without = tv_reconstruct(physics, y, spatial, temporal)
    with_f = tv_reconstruct(physics, y, spatial, temporal, fourier=fourier)
    assert objective(with_f) < 0.9 * objective(without)  # measured: 47.0 against 56.0 (zero image: 6992)


def test_a_warm_start_continues_the_solve_exactly_and_starts_nearby_weights_close(tmp_path):
    x = _beating(frames=8, size=24)
    physics = DynamicMRI(mask=_lines(8, 24, every=4, centre=2))
    y, shared, err = _unit_problem(physics, x)
    weights = dict(spatial=0.002, temporal=0.01, fourier=0.01)
    state: dict = {}
    tv_reconstruct(physics, y, iterations=40, x0=shared, state=state, **weights)
    continued = tv_reconstruct(physics, y, iterations=40, x0=shared, state=state, **weights)
    straight = tv_reconstruct(physics, y, iterations=80, x0=shared, **weights)
    assert torch.allclose(continued, straight, atol=1e-5)
    # from the iterates of nearby weights, 30 iterations get nearer the converged image than 30 from the start
    tv_reconstruct(physics, y, 0.003, 0.01, x0=shared, fourier=0.01, state=(near := {}))
    converged = tv_reconstruct(physics, y, iterations=1000, x0=shared, **weights)
    warm = tv_reconstruct(physics, y, iterations=30, x0=shared, state=near, **weights)
    cold = tv_reconstruct(physics, y, iterations=30, x0=shared, **weights)
    assert float((warm - converged).norm()) < 0.5 * float((cold - converged).norm())
    # the radial solver, likewise
    radial, yr, start = _radial_problem(tmp_path)
    state = {}
    tv_reconstruct(radial, yr, 0.002, 0.01, iterations=5, x0=start, fourier=0.01, state=state)
    continued = tv_reconstruct(radial, yr, 0.002, 0.01, iterations=5, x0=start, fourier=0.01, state=state)
    assert torch.allclose(continued, tv_reconstruct(radial, yr, 0.002, 0.01, iterations=10, x0=start, fourier=0.01),
                          atol=1e-5)


def test_a_warm_started_search_chooses_as_well_for_fewer_iterations(monkeypatch):
    import a2a_cli.tv as tv

    x = _beating(size=24)
    physics = DynamicMRI(mask=_lines(16, 24, every=4, centre=2))
    y, _, _ = _unit_problem(physics, x)
    spent = []
    solve = tv.tv_reconstruct
    monkeypatch.setattr(tv, "tv_reconstruct", lambda *a, **k: spent.append(a[4]) or solve(*a, **k))
    monkeypatch.setattr(tv, "WARM_SHARE", 1 / 3)
    cold = select_weights([(physics, y)], iterations=150)
    assert set(spent) == {150}  # a problem this small is searched cold
    cold_spent, spent[:] = sum(spent), []
    monkeypatch.setattr(tv, "WARM_MIN_SAMPLES", 0)
    warm = select_weights([(physics, y)], iterations=150)
    assert warm.as_list() == cold.as_list()
    # the first candidate and the final descent's are solved cold, the others from their nearest
    assert spent[0] == 150 and set(spent) == {50, 150} and spent.count(50) > spent.count(150)
    # measured: 6800 against 7050 iterations (4000 against 4950 before the reweighting's walk, whose
    # second solves are not counted here)
    assert sum(spent) < cold_spent
    chosen = tuple(cold.as_list())  # its score in the table is a cold solve's, as in the cold search
    assert {row[:5]: row[-1] for row in warm.table}[chosen] == {row[:5]: row[-1] for row in cold.table}[chosen]


@pytest.mark.parametrize("solves", [3, 10])  # the warm walks here end after 12 candidates
def test_a_warm_started_search_cut_by_its_deadline_keeps_its_best(monkeypatch, solves):
    import a2a_cli.tv as tv

    x = _beating(size=24)
    physics = DynamicMRI(mask=_lines(16, 24, every=4, centre=2))
    y, _, _ = _unit_problem(physics, x)
    monkeypatch.setattr(tv, "WARM_MIN_SAMPLES", 0)
    clock = iter(range(10**6))  # one tick per deadline check: before every candidate after the first
    monkeypatch.setattr(tv.time, "monotonic", lambda: float(next(clock)))
    w = select_weights([(physics, y)], iterations=60, deadline=solves - 1.5)
    assert not w.complete and len(w.table) == solves
    # cut during the warm walks: the lowest warm score wins, not only the first (cold) candidate
    assert {row[:5]: row[-1] for row in w.table}[tuple(w.as_list())] == min(row[-1] for row in w.table)
