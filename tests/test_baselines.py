"""The compressed-sensing baselines of the benchmarks (BART ``pics``, sigpy fallback)."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from a2a_cli.metrics import psnr
from a2a_cli.simulate import coil_sensitivities, fft2c, line_masks, phantom_static

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ is not an installed package
from benchmarks import baselines

BACKENDS = [pytest.param("bart", marks=pytest.mark.skipif(shutil.which("bart") is None, reason="bart not installed")),
            pytest.param("sigpy", marks=pytest.mark.slow)]


def _static_case(coils: int, seed: int = 0, size: int = 32):
    x = phantom_static(size, size, rng=seed)
    m = line_masks(8, size, acceleration=size / 6, centre_lines=4, rng=seed)  # (T, W): 20 of 32 lines together
    maps = coil_sensitivities(coils, size, size, rng=seed) if coils > 1 else None
    img = x[None] * maps if maps is not None else x[None]
    k = np.broadcast_to(fft2c(img), (8,) + img.shape) * m[:, None, None, :]
    k = k if coils > 1 else k[:, 0]
    return k.astype(np.complex64), m, maps, x


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("coils", [1, 4])
def test_sequential_cs_beats_zero_filled_and_keeps_units(name, coils):
    k, m, maps, x = _static_case(coils)
    zf = baselines.zero_filled(k, m, maps, mode="sequential")
    out = baselines.reconstruct(k, m, maps, mode="sequential", regulariser="tv", weight=0.01, backend_name=name)
    assert out.shape == x.shape and out.dtype == np.complex64
    assert psnr(x, out) > psnr(x, zf) + 1.0
    # the result is in the data's units: scaling the data scales the image
    out2 = baselines.reconstruct(1e6 * k, m, maps, mode="sequential", regulariser="tv", weight=0.01, backend_name=name)
    np.testing.assert_allclose(np.abs(out2) / 1e6, np.abs(out), atol=2e-3 * np.abs(out).max())


def test_dynamic_shape_and_tv_time_beats_zero_filled():
    k, m, _, x = _static_case(1, seed=1)
    name = baselines.backend()
    out = baselines.reconstruct(k, m, None, mode="dynamic", regulariser="tv-t", weight=0.03, iterations=60, backend_name=name)
    assert out.shape == k.shape
    zf = baselines.zero_filled(k, m, None, mode="dynamic")
    ref = np.broadcast_to(x, k.shape)
    assert psnr(ref, out) > psnr(ref, zf) + 1.0


@pytest.mark.skipif(shutil.which("bart") is None, reason="bart not installed")
@pytest.mark.parametrize("regulariser", ["llr", "llr+tv/3+tv-t", "tv/10+tv-t+f-t/10", "tv/10+tv-t+f-t/3"])
def test_bart_low_rank_and_temporal_fourier_forms_beat_zero_filled_on_a_still_sequence(regulariser):
    k, m, _, x = _static_case(1, seed=1)  # one image in every frame: rank 1 through time, one temporal frequency
    out = baselines.reconstruct(k, m, None, mode="dynamic", regulariser=regulariser, weight=0.01, iterations=60,
                                backend_name="bart")
    ref = np.broadcast_to(x, k.shape)
    assert out.shape == k.shape
    assert psnr(ref, out) > psnr(ref, baselines.zero_filled(k, m, None, mode="dynamic")) + 3.0
    assert regulariser in baselines.REGULARISERS["bart"]["dynamic"]  # tuned by default


@pytest.mark.parametrize("name", BACKENDS)
def test_tune_picks_from_the_grid_and_checks_convergence(name):
    data = [_static_case(1, seed=s)[:3] + (_static_case(1, seed=s)[3],) for s in (2,)]
    best = baselines.tune(data, "sequential", regularisers=("tv",), weights=(1e-4, 1e-2, 10.0), iterations=60, backend_name=name)
    assert best.regulariser == "tv" and best.weight == 1e-2  # a huge weight flattens the image, a tiny one denoises nothing
    assert len(best.table) == 3 and best.psnr == max(p for _, _, p in best.table)
    assert best.backend == name
    # the convergence check is the winner rerun with twice the iterations
    assert best.doubled_psnr == pytest.approx(baselines._score(data, "sequential", "tv", 1e-2, 120, name), abs=0.05)  # sigpy is not bit-reproducible
    if name == "bart":  # BART's pics converges in 60 iterations here; sigpy's solver needs far more (1.2 dB apart at 300)
        assert abs(best.doubled_psnr - best.psnr) < 1.0


def test_bad_shapes_are_refused():
    k, m, maps, _ = _static_case(4)
    with pytest.raises(ValueError, match="coil maps"):
        baselines.reconstruct(k, m, None, mode="sequential", regulariser="tv", weight=0.01)
    with pytest.raises(ValueError, match="mask shape"):
        baselines.reconstruct(k, m[:, :-1], maps, mode="sequential", regulariser="tv", weight=0.01)


@pytest.mark.skipif(shutil.which("bart") is None, reason="bart not installed")
def test_plain_sense_unfolds_equispaced_lines_with_coils():
    # every 2nd line plus 4 centre lines, the same in every frame: aliasing that only the coils can unfold
    size, x = 32, phantom_static(32, 32, rng=3)
    maps = coil_sensitivities(4, size, size, rng=3)
    lines = np.zeros(size, bool)
    lines[::2] = True
    lines[size // 2 - 2: size // 2 + 2] = True
    m = np.broadcast_to(lines, (2, size))
    k = (np.broadcast_to(fft2c(x[None] * maps), (2, 4, size, size)) * lines).astype(np.complex64)
    zf = baselines.zero_filled(k, m, maps, mode="sequential")
    out = baselines.reconstruct(k, m, maps, mode="sequential", regulariser="l2", weight=1e-4, iterations=100, backend_name="bart")
    assert out.shape == x.shape
    assert psnr(x, out) > psnr(x, zf) + 10.0  # noiseless, exact maps: SENSE is close to exact
    with pytest.raises(ValueError, match="needs dynamic data"):
        baselines.reconstruct(k, m, maps, mode="sequential", regulariser="tv-t", weight=0.01, backend_name="bart")


@pytest.mark.parametrize("coils", [1, 3])
def test_dynamic_object_case_breathes_and_is_sampled_per_frame(tmp_path, coils):
    from a2a_cli.data import inspect_file, read_slice
    from benchmarks.cases import breathe, write_dynamic_object_case

    x = np.zeros((16, 16), np.complex64)
    x[4:12, 6:10] = 1 + 1j
    still = breathe(x, np.zeros(3))
    assert still.shape == (3, 16, 16) and np.allclose(still, x, atol=1e-5)  # no displacement: the object itself
    moved = breathe(x, np.array([0.3]))[0]
    rows = np.abs(x).sum(1), np.abs(moved).sum(1)
    assert (np.arange(16) * rows[1]).sum() / rows[1].sum() < (np.arange(16) * rows[0]).sum() / rows[0].sum() - 0.5  # moved up

    path = write_dynamic_object_case(tmp_path / "c.h5", "head", slices=1, seed=3, size=32, frames=6, coils=coils,
                                     snr_db=None)
    info = inspect_file(path)
    assert (info.n_slices, info.frames, info.height, info.width) == (1, 6, 32, 32)
    assert (info.coils or 1) == coils
    k, m, maps, ref = baselines.sample_arrays(read_slice(path, 0))
    assert ref.shape == (6, 32, 32) and not np.allclose(ref[0], ref[3])  # a video that moves
    lines = np.asarray(m).reshape(6, -1, 32).any(1)  # (T, W)
    assert len({tuple(r) for r in lines}) > 1  # each frame its own lines
    img = ref[:, None] * maps if coils > 1 else ref
    expected = fft2c(img) * (lines[:, None, None, :] if coils > 1 else lines[:, None, :])
    np.testing.assert_allclose(k, expected, atol=1e-4 * np.abs(expected).max())  # noiseless: exactly M_t F S x_t
