"""Multi-coil data: operators, coil sensitivity estimation, the file format, training and reconstruction."""
import json

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from typer.testing import CliRunner

from a2a_cli import DynamicMRI, SequentialMRI, fft2c, to_complex
from a2a_cli.cli import app
from a2a_cli.coils import (
    calibration_region,
    coil_compression_matrix,
    compress_coils,
    estimate_maps,
    normalise_maps,
)
from a2a_cli.errors import InputError
from a2a_cli.data import KspaceDataset, ShapeBatchSampler, inspect_file, read_slice, write_a2a_file
from a2a_cli.models import build_model
from a2a_cli.reconstruction import run_network, zero_filled
from a2a_cli.simulate import add_noise, coil_sensitivities, ifft2c, phantom_dynamic, write_case
from a2a_cli.splitting import Artifact2ArtifactLoss


pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in conftest.py


def _inner(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() * b.double()).sum())


def _maps(b: int, n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Smooth simulated coil maps ``(B, N, H, W)`` with ``sum_c |S_c|^2 = 1``."""
    return torch.stack([torch.from_numpy(coil_sensitivities(n, h, w, rng=seed + i)) for i in range(b)])


def _line_mask(b: int, t: int, w: int, seed: int = 0, p: float = 0.3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    m = (torch.rand(b, 1, t, 1, w, generator=g) < p).float()
    m[..., w // 2 - 1:w // 2 + 1] = 1  # the centre in every frame
    return m


# ---------------------------------------------------------------------------------------------
# 1. operators
# ---------------------------------------------------------------------------------------------
def test_multicoil_adjointness_dynamic_sequential_static():
    b, t, n, h, w = 2, 5, 8, 12, 10
    maps = _maps(b, n, h, w)
    dyn = DynamicMRI(mask=_line_mask(b, t, w), coil_maps=maps)
    x, y = torch.randn(b, 2, t, h, w), torch.randn(b, 2, t, n, h, w)
    assert dyn.A(x).shape == y.shape
    assert _inner(dyn.A(x), y) == pytest.approx(_inner(x, dyn.A_adjoint(y)), rel=1e-4)

    seq = SequentialMRI(mask=_line_mask(b, t, w, seed=1), coil_maps=maps)
    xs = torch.randn(b, 2, h, w)
    assert seq.A(xs).shape == y.shape
    assert _inner(seq.A(xs), y) == pytest.approx(_inner(xs, seq.A_adjoint(y)), rel=1e-4)
    # y_{t,c} = M_t F (S_c x): the definition, written out
    z = to_complex(xs)[:, None, None] * maps[:, None]  # (B, 1, N, H, W)
    expected = _line_mask(b, t, w, seed=1)[:, 0, :, None] * fft2c(z)
    assert torch.allclose(to_complex(seq.A(xs)), expected, atol=1e-5)

    static = DynamicMRI(mask=_line_mask(b, 1, w)[:, :, 0], coil_maps=maps)  # one image
    ys = torch.randn(b, 2, n, h, w)
    assert _inner(static.A(xs), ys) == pytest.approx(_inner(xs, static.A_adjoint(ys)), rel=1e-4)


def test_data_consistency_keeps_measured_samples():
    torch.manual_seed(3)
    b, t, n, h, w = 2, 4, 8, 16, 16
    # incoherent maps make the normal equations well conditioned, so CG converges quickly
    maps = torch.randn(b, n, h, w, dtype=torch.complex64)
    maps = maps / maps.abs().pow(2).sum(1, keepdim=True).sqrt()
    mask = _line_mask(b, t, w, seed=2)
    y = DynamicMRI(mask=mask, coil_maps=maps)(torch.randn(b, 2, t, h, w))
    z = torch.randn(b, 2, t, h, w)
    residuals = []
    for iterations in (5, 10, 30):
        phys = DynamicMRI(mask=mask, coil_maps=maps, cg_iterations=iterations)
        dc = phys.prox_l2(z, y, 0.0)
        residuals.append(float((phys(dc) - y).norm() / y.norm()))  # A dc = y on the measured samples
    assert residuals[0] > residuals[1] > residuals[2]
    assert residuals[2] < 1e-3
    # smooth (simulated) maps: slower, but the default 10 iterations still move far towards y
    smooth = DynamicMRI(mask=mask, coil_maps=_maps(b, n, h, w, seed=5))
    y = smooth(torch.randn(b, 2, t, h, w))
    assert (smooth(smooth.prox_l2(z, y, 0.0)) - y).norm() < 0.1 * (smooth(z) - y).norm()


def test_images_live_on_the_support_of_the_maps():
    """Where no coil sees anything nothing is measured: DC returns zero there, not the prior's guess."""
    b, t, n, h, w = 1, 4, 4, 12, 12
    maps = _maps(b, n, h, w, seed=8)
    maps[..., :3, :] = 0  # e.g. ESPIRiT's crop outside the object
    phys = DynamicMRI(mask=_line_mask(b, t, w), coil_maps=maps)
    x = torch.randn(b, 2, t, h, w)
    x[..., :3, :] = 0
    y, z = phys(x), torch.randn(b, 2, t, h, w)
    for lam in (0.0, 0.5):
        out = phys.prox_l2(z, y, lam)
        assert bool((out[..., :3, :] == 0).all()) and out[..., 3:, :].abs().sum() > 0
    net = build_model("unrolled", channels=8, depth=3).eval()
    with torch.no_grad():
        assert bool((net(y, phys)[..., :3, :] == 0).all())


def test_data_consistency_is_frame_wise():
    """CG inner products are per frame: a frame's DC result does not depend on the other frames."""
    b, t, n, h, w = 1, 6, 4, 12, 12
    maps = _maps(b, n, h, w, seed=7)
    mask = _line_mask(b, t, w, seed=3)
    phys = DynamicMRI(mask=mask, coil_maps=maps)
    x = torch.randn(b, 2, t, h, w)
    x[:, :, 3:] *= 100  # very different frames: a shared CG step size would couple them
    y, z = phys(x), torch.randn(b, 2, t, h, w)
    whole = phys.prox_l2(z, y, 0.1)
    part = DynamicMRI(mask=mask[:, :, :3], coil_maps=maps).prox_l2(z[:, :, :3], y[:, :, :3], 0.1)
    assert torch.allclose(whole[:, :, :3], part, atol=1e-5 * float(part.abs().max()))


def test_windowed_reconstruction_equals_whole_sequence_with_coils():
    torch.manual_seed(0)
    b, t, n, h, w = 1, 8, 4, 16, 16
    maps = _maps(b, n, h, w, seed=9)
    mask = _line_mask(b, t, w, seed=4)
    y = DynamicMRI(mask=mask, coil_maps=maps)(torch.randn(b, 2, t, h, w))
    net = build_model("unrolled", channels=8, depth=3, share_window=2).eval()
    whole = run_network(net, "dynamic", y, mask, maps, frames_per_batch=None)
    windowed = run_network(net, "dynamic", y, mask, maps, frames_per_batch=4)
    assert torch.allclose(whole, windowed, atol=1e-5 * float(whole.abs().max()))


def test_zero_filled_baseline_is_the_coil_combined_adjoint():
    b, t, n, h, w = 1, 4, 8, 16, 16
    maps, mask = _maps(b, n, h, w), _line_mask(b, t, w)
    x = torch.randn(b, 2, t, h, w)
    phys = DynamicMRI(mask=mask, coil_maps=maps)
    y = phys(x)
    assert torch.allclose(zero_filled("dynamic", y, mask, maps), phys.A_adjoint(y))
    full = DynamicMRI(mask=torch.ones_like(mask), coil_maps=maps)
    # fully sampled: S^H F^H F S x = x because sum_c |S_c|^2 = 1
    assert torch.allclose(zero_filled("dynamic", full(x), torch.ones_like(mask), maps), x, atol=1e-4)
    seq = SequentialMRI(mask=mask, coil_maps=maps)
    xs = torch.randn(b, 2, h, w)
    ys = seq(xs)
    y_avg, static = seq.time_average(ys)
    assert torch.allclose(zero_filled("sequential", ys, mask, maps), static.A_adjoint(y_avg))


def test_splitting_loss_trains_on_multicoil_batches():
    torch.manual_seed(1)
    b, t, n, h, w = 2, 4, 4, 16, 16
    maps, mask = _maps(b, n, h, w, seed=11), _line_mask(b, t, w, seed=5)
    phys = DynamicMRI(mask=mask, coil_maps=maps)
    y = phys(torch.randn(b, 2, t, h, w))
    net = build_model("unrolled", channels=8, depth=3, iterations=1, share_window=2)
    loss = Artifact2ArtifactLoss((2, t, h, w), split_size=2)
    model = loss.adapt_model(net)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(2):
        value = loss(model(y, phys), y, phys, model)
        opt.zero_grad()
        value.backward()
        grads = [p.grad for p in net.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        assert any(float(g.abs().sum()) > 0 for g in grads)
        opt.step()
    assert torch.isfinite(loss.evaluate(model, y, phys))


# ---------------------------------------------------------------------------------------------
# 2. coil sensitivity estimation and compression
# ---------------------------------------------------------------------------------------------
T, N, H, W = 8, 8, 64, 64


@pytest.fixture(scope="module")
def coil_case():
    """A breathing phantom seen by 8 simulated coils (30 dB), 24 centre lines sampled in the time average."""
    x = phantom_dynamic(H, W, T, rng=3)
    maps = coil_sensitivities(N, H, W, rng=4)
    k_full = fft2c(torch.from_numpy(x[:, None] * maps)).numpy()
    centre = np.arange(W // 2 - 12, W // 2 + 12)
    lines = np.zeros((T, W), bool)
    rng = np.random.default_rng(0)
    for t in range(T):
        lines[t, centre[t::T]] = True  # 3 centre lines per frame: together the 24
        lines[t, rng.choice(W, 6, replace=False)] = True
    m = lines[:, None, None, :]
    y = add_noise(k_full * m, 30.0, rng=1, mask=m)
    obj = np.abs(x).mean(0) > 0.05 * np.abs(x).max()
    return x, maps, k_full, y, lines, obj


def _combined_nrmse(est: np.ndarray, x: np.ndarray, k_full: np.ndarray, obj: np.ndarray) -> float:
    """NRMSE inside the object of ``S_est^H F^-1 k_full`` against ``x``, after the best global phase."""
    comb = (np.conj(est)[None] * ifft2c(k_full)).sum(1)
    comb = comb * np.exp(1j * np.angle((np.conj(comb) * x)[:, obj].sum()))
    return float(np.linalg.norm((comb - x)[:, obj]) / np.linalg.norm(x[:, obj]))


def test_calibration_region_is_the_fully_sampled_centre(coil_case):
    *_, lines, _ = coil_case
    sampled = np.broadcast_to(lines.any(0)[None], (H, W))
    rows, cols = calibration_region(sampled, max_size=24)
    assert (cols.start, cols.stop) == (W // 2 - 12, W // 2 + 12) and rows.stop - rows.start == 24


@pytest.mark.parametrize("method,tolerance", [("espirit", 0.05), ("lowres", 0.1)])
def test_estimated_maps_give_the_true_combined_image(coil_case, method, tolerance):
    x, true, k_full, y, lines, obj = coil_case
    est, used = estimate_maps(torch.from_numpy(y), torch.from_numpy(lines[:, None, :]), method=method)
    assert used == method and est.shape == (N, H, W)
    est = est.numpy()
    assert _combined_nrmse(est, x, k_full, obj) < tolerance
    # normalised where the maps are non-zero, which is (almost) all of the object
    energy = (np.abs(est[:, obj]) ** 2).sum(0)
    assert np.allclose(energy[energy > 0], 1, atol=1e-4) and (energy > 0).mean() > 0.98
    # with the true maps the same measure is exact: the error above is the estimate's
    assert _combined_nrmse(true, x, k_full, obj) < 1e-5


def test_espirit_falls_back_to_lowres_when_the_centre_is_small(coil_case):
    x, _, k_full, _, _, obj = coil_case
    lines = np.zeros((T, W), bool)
    lines[:, W // 2 - 2:W // 2 + 2] = True  # 4 centre lines: fewer than 2 kernels (12)
    for t in range(T):
        lines[t, np.random.default_rng(t).choice(W, 8, replace=False)] = True
    y = (k_full * lines[:, None, None, :]).astype(np.complex64)
    est, used = estimate_maps(torch.from_numpy(y), torch.from_numpy(lines[:, None, :]))
    assert used == "lowres"
    assert _combined_nrmse(est.numpy(), x, k_full, obj) < 0.1


def test_map_phase_convention_is_independent_of_per_pixel_phase():
    true = torch.from_numpy(coil_sensitivities(6, 24, 24, rng=2))
    scrambled = true * torch.exp(1j * torch.rand(24, 24) * 6.28)  # what an eigen-solver may return
    assert torch.allclose(normalise_maps(scrambled), true, atol=1e-5)


def test_coil_compression_keeps_the_energy_of_smooth_maps(coil_case):
    x, true, k_full, *_ = coil_case
    k = torch.from_numpy(k_full.astype(np.complex64))  # (T, N, H, W)
    kc, u = compress_coils(k, 4, coil_axis=1, return_matrix=True)
    assert kc.shape == (T, 4, H, W)
    assert float(kc.abs().pow(2).sum() / k.abs().pow(2).sum()) >= 0.95
    assert torch.allclose(u @ u.conj().T, torch.eye(4, dtype=u.dtype), atol=1e-5)
    # the model stays exact: virtual maps U S see the virtual coils' data
    maps_v = torch.einsum("vc,chw->vhw", u, torch.from_numpy(true))
    assert torch.allclose(fft2c(torch.from_numpy(x)[:, None] * maps_v), kc, atol=1e-4)
    assert torch.allclose(coil_compression_matrix(k, 8, coil_axis=1).abs().pow(2).sum(0), torch.ones(8), atol=1e-5)
    with pytest.raises(ValueError):
        compress_coils(k, 9, coil_axis=1)


# ---------------------------------------------------------------------------------------------
# 3. files
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mc_file(tmp_path_factory):
    return write_case(tmp_path_factory.mktemp("mc") / "mc.h5", coils=8, slices=2, frames=4, height=32, width=32,
                      acceleration=3, centre_lines=4, seed=5)


def test_write_case_coils_round_trip(mc_file):
    info = inspect_file(mc_file)
    assert (info.coils, info.sensitivity, info.frame_shape, info.n_slices) == (8, "espirit", (4, 32, 32), 2)
    with h5py.File(mc_file) as f:
        assert f["kspace"].shape == (2, 4, 8, 32, 32) and int(f.attrs["coils"]) == 8
        assert "sensitivity_maps" not in f and f["true_sensitivity_maps"].shape == (2, 8, 32, 32)
        true = f["true_sensitivity_maps"][1]
    sample = read_slice(mc_file, 1)
    assert sample.kspace.shape == (1, 2, 4, 8, 32, 32)
    assert sample.mask.shape == (1, 1, 4, 32, 32)
    assert sample.coil_maps.shape == (1, 8, 32, 32) and sample.coil_maps.dtype == torch.complex64
    assert sample.reference.shape == (1, 2, 4, 32, 32)
    assert sample.sensitivity in ("espirit", "lowres")
    # the k-space is the coil data of the reference: y = M F S x (+ noise)
    x = to_complex(sample.reference)[0]
    clean = sample.mask[0, 0][:, None] * fft2c(x[:, None] * torch.from_numpy(true))
    ky = to_complex(sample.kspace)[0]
    assert float((ky - clean).norm() / clean.norm()) < 0.1  # 30 dB noise
    # the mask is shared by the coils: unmeasured samples are zero in every coil
    assert bool((ky[sample.mask[0, 0][:, None].expand_as(ky) == 0] == 0).all())
    assert read_slice(mc_file, 0, sensitivity="lowres").sensitivity == "lowres"


def test_stored_sensitivity_maps_are_used(tmp_path, mc_file):
    with h5py.File(mc_file) as f:
        k, mask, ref, true = f["kspace"][()], f["mask"][()], f["reference"][()], f["true_sensitivity_maps"][()]
    path = write_a2a_file(tmp_path / "stored.h5", k, mask=mask, reference=ref, coils=8, sensitivity_maps=true,
                          complex_style="compound")
    info = inspect_file(path)
    assert info.sensitivity == "stored"
    sample = read_slice(path, 1)
    assert sample.sensitivity == "stored"
    assert np.array_equal(sample.coil_maps[0].numpy(), true[1])
    # estimation can still be asked for
    assert read_slice(path, 1, sensitivity="espirit").sensitivity in ("espirit", "lowres")
    # one slice (T, N, H, W): told apart from (S, T, H, W) by the attribute coils
    single = write_a2a_file(tmp_path / "single.h5", k[0], mask=mask[0], coils=8, sensitivity_maps=true[0])
    s_info = inspect_file(single)
    assert (s_info.n_slices, s_info.frames, s_info.coils) == (1, 4, 8)
    assert torch.equal(read_slice(single, 0).coil_maps[0], torch.from_numpy(true[0]))


def test_coil_axis_errors(tmp_path, mc_file):
    with h5py.File(mc_file) as f:
        k, true = f["kspace"][()], f["true_sensitivity_maps"][()]
    bad = tmp_path / "no_attr.h5"
    write_a2a_file(bad, k)  # 5D without the attribute coils
    with pytest.raises(InputError, match="coils"):
        inspect_file(bad)
    wrong = write_a2a_file(tmp_path / "wrong.h5", k, attrs={"coils": 4})
    with pytest.raises(InputError, match="coils=4"):
        inspect_file(wrong)
    maps_only = write_a2a_file(tmp_path / "maps.h5", k[:, :, 0], extra={"sensitivity_maps": true})
    with pytest.raises(InputError, match="sensitivity_maps"):
        inspect_file(maps_only)
    bad_maps = write_a2a_file(tmp_path / "bad_maps.h5", k, coils=8, sensitivity_maps=true[:, :4])
    with pytest.raises(InputError, match="sensitivity_maps"):
        inspect_file(bad_maps)
    with pytest.raises(InputError, match="no 'sensitivity_maps'"):
        read_slice(mc_file, 0, sensitivity="stored")
    # a coil axis of one coil is plain single-coil data
    one = write_a2a_file(tmp_path / "one.h5", k[:, :, :1], coils=1)
    assert inspect_file(one).coils is None and read_slice(one, 0).kspace.shape == (1, 2, 4, 32, 32)


def test_dataset_items_and_batches(tmp_path, mc_file):
    single = write_case(tmp_path / "single.h5", slices=1, frames=4, height=32, width=32, acceleration=3, seed=1)
    ds = KspaceDataset([mc_file, single])
    item = ds[0]
    assert item["kspace"].shape == (2, 4, 8, 32, 32) and item["coil_maps"].shape == (8, 32, 32)
    assert "coil_maps" not in ds[2]
    assert torch.equal(ds[0]["coil_maps"], item["coil_maps"]) and len(ds.coil_maps) == 1  # estimated once, then kept
    # batches never mix coil counts (they could not be stacked)
    sampler = ShapeBatchSampler(ds, batch_size=3, shuffle=False)
    batches = list(sampler)
    assert sorted(map(sorted, batches)) == [[0, 1], [2]]
    batch = next(iter(DataLoader(ds, batch_sampler=[[0, 1]])))
    assert batch["kspace"].shape == (2, 2, 4, 8, 32, 32) and batch["coil_maps"].shape == (2, 8, 32, 32)


# ---------------------------------------------------------------------------------------------
# 4. end to end on the command line
# ---------------------------------------------------------------------------------------------
def test_simulate_train_reconstruct_multicoil(tmp_path):
    def run(*args):
        result = CliRunner().invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, result.stdout + result.stderr
        return result

    size = ["--frames", "4", "--height", "24", "--width", "24", "--acceleration", "3", "--centre-lines", "4"]
    run("simulate", tmp_path / "train.h5", "--coils", "8", "--slices", "1", "--seed", "1", *size)
    run("simulate", tmp_path / "test.h5", "--coils", "8", "--slices", "1", "--seed", "2", *size)
    report = json.loads(run("inspect-mask", tmp_path / "test.h5", "--json").stdout)
    assert report["coils"] == 8 and report["sensitivity"] == "espirit"
    run("train", tmp_path / "train.h5", "--out", tmp_path / "run", "--steps", "2", "--val-every", "2",
        "--model-option", "channels=8", "--model-option", "depth=3")
    res = run("reconstruct", tmp_path / "run" / "best.pt", tmp_path / "test.h5", "--out", tmp_path / "rec", "--json")
    table = json.loads(res.stdout)
    text = json.dumps(table)
    assert "psnr_network" in text and "psnr_zero_filled" in text
    with h5py.File(tmp_path / "rec" / "test_recon.h5") as f:
        assert f["reconstruction"].shape == (1, 4, 24, 24)  # coil-combined
        assert int(f.attrs["coils"]) == 8 and f.attrs["sensitivity"] in ("espirit", "lowres")
        assert np.isfinite(f["reconstruction"][()]).all()


def test_convert_compresses_coils_and_keeps_the_model_exact(tmp_path, mc_file):
    runner = CliRunner()
    out = tmp_path / "vc.h5"
    result = runner.invoke(app, ["convert", str(mc_file), str(out), "--virtual-coils", "3"])
    assert result.exit_code == 0, result.output
    with h5py.File(out) as f:
        assert f["kspace"].shape == (2, 4, 3, 32, 32) and int(f.attrs["coils"]) == 3
        assert int(f.attrs["compressed_from_coils"]) == 8 and f["sensitivity_maps"].shape == (2, 3, 32, 32)
    for s in range(2):
        full, comp = read_slice(mc_file, s), read_slice(out, s)
        assert comp.coil_maps.shape == (1, 3, 32, 32)
        # smooth maps: three virtual coils keep almost all of the signal energy
        assert comp.kspace.pow(2).sum() > 0.9 * full.kspace.pow(2).sum()
        # y' - A' x = U (y - A x) with orthonormal rows U: the compressed data fits the same
        # image through the compressed maps at least as well as the full data fits it
        x = full.reference
        r_full = DynamicMRI(mask=full.mask, coil_maps=full.coil_maps)(x) - full.kspace
        r_comp = DynamicMRI(mask=comp.mask, coil_maps=comp.coil_maps)(x) - comp.kspace
        assert r_comp.norm() <= r_full.norm() * (1 + 1e-4)
    # user errors: too many virtual coils, or a single-coil file; nothing is written
    bad = runner.invoke(app, ["convert", str(mc_file), str(tmp_path / "x.h5"), "--virtual-coils", "8"])
    assert bad.exit_code == 2 and "give a number from 1 to 7" in bad.output and not (tmp_path / "x.h5").exists()
    single = write_case(tmp_path / "single.h5", slices=1, frames=4, height=16, width=16, seed=1)
    bad = runner.invoke(app, ["convert", str(single), str(tmp_path / "y.h5"), "--virtual-coils", "2"])
    assert bad.exit_code == 2 and "needs multi-coil data" in bad.output and not (tmp_path / "y.h5").exists()


def test_convert_refuses_virtual_coils_that_overflow_float32(tmp_path):
    # eight identical coils near the float32 limit: the one dominant virtual coil is sqrt(8) times larger
    rng = np.random.default_rng(0)
    one = (rng.standard_normal((2, 1, 16, 16)) + 1j * rng.standard_normal((2, 1, 16, 16))).astype(np.complex64)
    one *= np.float32(2e38) / np.abs(one).max()
    k = np.repeat(one, 8, axis=1)[None]  # (S, T, N, H, W)
    mask = np.ones((1, 2, 16), np.uint8)
    src = write_a2a_file(tmp_path / "huge.h5", k, mask=mask, coils=8,
                         sensitivity_maps=np.full((1, 8, 16, 16), 8 ** -0.5, np.complex64))
    out = tmp_path / "vc.h5"
    bad = CliRunner().invoke(app, ["convert", str(src), str(out), "--virtual-coils", "2"])
    assert bad.exit_code == 2 and "overflows complex64" in bad.output and "huge.h5" in bad.output
    assert not out.exists() and list(tmp_path.iterdir()) == [src]
    # the same file at an ordinary scale converts
    ok = write_a2a_file(tmp_path / "ok.h5", k / np.float32(1e30), mask=mask, coils=8,
                        sensitivity_maps=np.full((1, 8, 16, 16), 8 ** -0.5, np.complex64))
    assert CliRunner().invoke(app, ["convert", str(ok), str(out), "--virtual-coils", "2"]).exit_code == 0
