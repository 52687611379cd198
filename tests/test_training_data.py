"""Cheaper training steps on large multi-coil scans: readout crops, coil compression,
the cached dataset, the line-mask normal operator, the default time budget."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from a2a_cli.coils import compress_coils
from a2a_cli.physics import (
    DynamicMRI,
    SequentialMRI,
    fft2c,
    ifft2c,
    to_complex,
    to_real,
)
from a2a_cli.simulate import coil_sensitivities, phantom_static
from a2a_cli.simulate import fft2c as np_fft2c
from a2a_cli.simulate import ifft2c as np_ifft2c
from a2a_cli.training import (
    DEFAULT_STEPS,
    DEFAULT_TIME_LIMIT,
    TrainConfig,
    apply_default_budget,
)
from a2a_cli.training.data import (
    PreparedDataset,
    compress_item,
    mask_is_lines,
    random_readout_crop,
    readout_crop,
)


def _line_mask(b: int, t: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    lines = (torch.rand(b, 1, t, 1, w, generator=g) > 0.6).float()
    lines[..., w // 2] = 1
    return lines.expand(b, 1, t, h, w).contiguous()


def _maps(b: int, n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.stack([coil_sensitivities(n, h, w, rng=seed + i) for i in range(b)]))


@pytest.mark.parametrize("shape", [(6, 8), (7, 9), (12, 5)])
def test_centred_fft_matches_numpy(shape):
    z = np.random.default_rng(0).standard_normal((2,) + shape) + 1j * np.random.default_rng(1).standard_normal((2,) + shape)
    assert np.allclose(fft2c(torch.from_numpy(z)).numpy(), np_fft2c(z), atol=1e-12)
    assert np.allclose(ifft2c(torch.from_numpy(z)).numpy(), np_ifft2c(z), atol=1e-12)


@pytest.mark.parametrize("width", [12, 13])
@pytest.mark.parametrize("cls", [DynamicMRI, SequentialMRI])
def test_line_normal_operator_equals_adjoint_of_forward(cls, width):
    b, t, n, h = 2, 3, 4, 10
    physics = cls(mask=_line_mask(b, t, h, width), coil_maps=_maps(b, n, h, width))
    assert physics._line_diag() is not None
    v = torch.randn((b, t, h, width) if cls is DynamicMRI else (b, h, width), dtype=torch.complex64)
    slow = physics._adjoint_complex(physics._forward_complex(v))
    fast = physics._normal_complex(v)
    assert torch.allclose(fast, slow, atol=1e-5 * float(slow.abs().max()))


def test_line_normal_operator_not_used_for_point_masks():
    mask = (torch.rand(1, 1, 2, 8, 8) > 0.5).float()
    assert DynamicMRI(mask=mask, coil_maps=_maps(1, 2, 8, 8))._line_diag() is None


def test_prox_l2_same_with_lines_and_general_path():
    """Hard data consistency gives the same image whether the mask is stored as lines or per pixel."""
    b, t, n, h, w = 1, 2, 4, 12, 10
    mask = _line_mask(b, t, h, w, seed=2)
    maps = _maps(b, n, h, w)
    x = torch.randn(b, 2, t, h, w)
    fast = DynamicMRI(mask=mask, coil_maps=maps, cg_iterations=30)
    y = fast(x)
    z = torch.randn(b, 2, t, h, w)
    general = DynamicMRI(mask=mask, coil_maps=maps, cg_iterations=30)
    general._line_diag_cache = None  # force the 2D-FFT path
    a, b_ = fast.prox_l2(z, y, 0.0), general.prox_l2(z, y, 0.0)
    # the same iterates up to float rounding (CG amplifies it a little)
    assert float((a - b_).norm() / b_.norm()) < 1e-4


@pytest.mark.parametrize("start,rows", [(0, 8), (5, 9), (10, 10)])
def test_readout_crop_keeps_kspace_consistent(start, rows):
    """The cropped data are exactly the measurement of the cropped image with the cropped maps."""
    b, t, n, h, w = 2, 3, 4, 20, 12
    mask = _line_mask(b, t, h, w)
    maps = _maps(b, n, h, w)
    x = torch.randn(b, 2, t, h, w)
    y = DynamicMRI(mask=mask, coil_maps=maps)(x)
    crop = readout_crop({"kspace": y, "mask": mask, "coil_maps": maps}, start, rows)
    assert crop["kspace"].shape == (b, 2, t, n, rows, w)
    expected = DynamicMRI(mask=crop["mask"], coil_maps=crop["coil_maps"])(x[..., start:start + rows, :])
    assert torch.allclose(crop["kspace"], expected, atol=1e-5)
    # unsampled lines stay empty: the phase-encode sampling is untouched
    assert torch.equal(crop["mask"], mask[..., start:start + rows, :])
    unsampled = (1 - crop["mask"]).unsqueeze(3)  # (B, 1, T, 1, rows, W): coils share the mask
    assert float((crop["kspace"] * unsampled).abs().max()) < 1e-5


def test_random_crop_leaves_point_masks_and_small_images_alone():
    y = torch.randn(1, 2, 2, 16, 8)
    points = {"kspace": y, "mask": (torch.rand(1, 1, 2, 16, 8) > 0.5).float()}
    assert not mask_is_lines(points["mask"])
    assert random_readout_crop(points, 8) is points
    lines = {"kspace": y, "mask": _line_mask(1, 2, 16, 8)}
    assert random_readout_crop(lines, 16) is lines
    assert random_readout_crop(lines, 6)["kspace"].shape[-2] == 6
    with pytest.raises(ValueError):
        readout_crop(lines, 12, 6)


def test_compression_keeps_the_model_exact_and_the_image_close():
    """y' = U y is the measurement of x through the maps U S: 6 virtual coils of an 8-coil
    array keep over 99 % of the signal energy, and fully sampled they still give x exactly."""
    h, w, t = 48, 40, 2
    x = torch.from_numpy(phantom_static(h, w, rng=3))
    s = torch.from_numpy(coil_sensitivities(8, h, w, rng=3))[None]
    xt = to_real(x[None]).unsqueeze(2).expand(1, 2, t, h, w).contiguous()
    for mask in (_line_mask(1, t, h, w, seed=1), torch.ones(1, 1, t, h, w)):
        y = DynamicMRI(mask=mask, coil_maps=s)(xt)
        small = compress_item({"kspace": y[0], "mask": mask[0], "coil_maps": s[0]}, 6)
        assert small["kspace"].shape == (2, t, 6, h, w) and small["coil_maps"].shape == (6, h, w)
        assert float(small["kspace"].pow(2).sum() / y.pow(2).sum()) > 0.99
        # exact model: the compressed data are the compressed maps' measurement of x
        physics = DynamicMRI(mask=mask, coil_maps=small["coil_maps"][None], cg_iterations=30)
        model = physics(xt)
        assert torch.allclose(small["kspace"][None], model, atol=1e-4 * float(model.abs().max()))
        # the matrix is the one compress_coils finds for this k-space
        k = torch.complex(y[0, 0], y[0, 1])
        assert torch.allclose(torch.complex(small["kspace"][0], small["kspace"][1]), compress_coils(k, 6, coil_axis=1), atol=1e-5)
    image = to_complex(physics.A_dagger(small["kspace"][None]))[0, 0]  # fully sampled, 6 virtual coils
    assert float((image - x).abs().norm() / x.abs().norm()) < 1e-4


class _Counting(torch.utils.data.Dataset):
    """A stand-in dataset that counts its reads."""

    def __init__(self, coils: int):
        self.reads = 0
        self.coils = coils
        self.batch_keys = [(2, 8, 6, coils)]
        self.shapes = [(2, 8, 6)]

    def __len__(self):
        return 1

    def __getitem__(self, i):
        self.reads += 1
        g = torch.Generator().manual_seed(i)
        return {"kspace": torch.randn(2, 2, self.coils, 8, 6, generator=g), "mask": torch.ones(1, 2, 8, 6),
                "coil_maps": torch.randn(self.coils, 8, 6, dtype=torch.complex64, generator=g), "file": "f", "slice": i}


def test_prepared_dataset_compresses_and_caches():
    base = _Counting(coils=8)
    ds = PreparedDataset(base, virtual_coils=4)
    first, second = ds[0], ds[0]
    assert base.reads == 1 and first is second
    assert first["kspace"].shape == (2, 2, 4, 8, 6) and first["coil_maps"].shape == (4, 8, 6)
    assert ds.batch_keys == [(2, 8, 6, 4)] and ds.shapes == [(2, 8, 6)] and len(ds) == 1
    # no budget: nothing is kept, every access reads again
    base2 = _Counting(coils=3)
    ds2 = PreparedDataset(base2, virtual_coils=4, cache_bytes=0)
    ds2[0], ds2[0]
    assert base2.reads == 2 and ds2[0]["kspace"].shape[2] == 3  # fewer coils than asked: left alone


def test_default_budget_bounds_only_unbounded_runs():
    cfg = TrainConfig(train=["a.h5"], out="run")
    apply_default_budget(cfg, "dynamic")
    assert (cfg.steps, cfg.time_limit) == (DEFAULT_STEPS["dynamic"], DEFAULT_TIME_LIMIT)
    for kw in ({"steps": 10}, {"epochs": 2}, {"time_limit": 5.0}):
        cfg = TrainConfig(train=["a.h5"], out="run", **kw)
        apply_default_budget(cfg, "sequential")
        assert cfg.time_limit == kw.get("time_limit") and cfg.steps == kw.get("steps")


@pytest.mark.slow
def test_training_on_a_tall_multicoil_file_uses_crops_and_virtual_coils(tmp_path):
    """A few steps on an 8-coil file taller than the crop: compressed, cropped, and the
    checkpoint reconstructs the whole image with all coils."""
    from a2a_cli.reconstruction import load_for_inference, reconstruct_file
    from a2a_cli.simulate import write_case
    from a2a_cli.training import train

    path = write_case(tmp_path / "tall.h5", mode="sequential", slices=1, frames=4, height=100, width=24,
                      acceleration=4, coils=8, seed=5)
    logs: list[str] = []
    summary = train(TrainConfig(train=[str(path)], out=str(tmp_path / "run"), steps=3, val_every=3), log=logs.append)
    assert summary["steps"] == 3
    assert any("6 virtual coils" in line for line in logs)
    ckpt, net = load_for_inference(summary["best"], torch.device("cpu"))
    (tmp_path / "rec").mkdir()
    result = reconstruct_file(ckpt, net, path, tmp_path / "rec", torch.device("cpu"))
    import h5py

    with h5py.File(result.output) as f:
        assert f["reconstruction"].shape == (1, 100, 24)
        assert np.isfinite(f["reconstruction"][()]).all()


def test_negative_settings_are_a_clear_error(tmp_path):
    from a2a_cli.simulate import write_case
    from a2a_cli.training import TrainingError, train

    path = write_case(tmp_path / "small.h5", mode="sequential", slices=1, frames=4, height=16, width=16,
                      acceleration=4, coils=2, seed=1)
    for key in ("virtual_coils", "crop_rows"):
        with pytest.raises(TrainingError, match=key):
            train(TrainConfig(train=[str(path)], out=str(tmp_path / "run"), steps=1, **{key: -1}), log=lambda m: None)
        assert not (tmp_path / "run").exists()


def test_central_readout_band_crops_tall_line_masks_only():
    from a2a_cli.physics import DynamicMRI
    from a2a_cli.training.data import central_readout_band

    x = torch.randn(1, 2, 2, 128, 16)
    mask = (torch.rand(1, 1, 2, 1, 16) > 0.5).float().expand(1, 1, 2, 128, 16).contiguous()
    band = central_readout_band({"kspace": DynamicMRI(mask=mask)(x), "mask": mask})
    assert band["mask"].shape[-2] == 64  # rows 32..96, the exact data of those rows
    assert torch.allclose(band["kspace"], DynamicMRI(mask=band["mask"])(x[..., 32:96, :]), atol=1e-5)
    short = {"kspace": torch.zeros(1, 2, 2, 64, 16), "mask": mask[..., :64, :]}
    assert central_readout_band(short) is short  # not tall: unchanged
    points = {"kspace": torch.zeros(1, 2, 2, 128, 16), "mask": (torch.rand(1, 1, 2, 128, 16) > 0.5).float()}
    assert central_readout_band(points) is points  # not whole lines: unchanged
    radial = {"kspace": torch.zeros(1, 2, 2, 1, 128, 16), "mask": torch.zeros(1, 4, 2, 128, 16)}
    assert central_readout_band(radial) is radial  # a radial sampling tensor: unchanged
