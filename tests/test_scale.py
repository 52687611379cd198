"""Training and reconstruction do not depend on the scale the scanner stored k-space at."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from a2a_cli.physics import measurement_scale, normalise_measurement
from a2a_cli.reconstruction import load_for_inference, reconstruct_file
from a2a_cli.simulate import write_case
from a2a_cli.training import TrainConfig, train

SCALES = (1e-15, 1.0, 1e15)
SMALL = {"channels": 8, "depth": 3}


def _scaled_copy(src, dst, factor: float):
    with h5py.File(src, "r") as f, h5py.File(dst, "w") as g:
        for key, value in f.attrs.items():
            g.attrs[key] = value
        for name in f:
            data = f[name][()]
            g[name] = (data * factor).astype(data.dtype) if name in ("kspace", "reference") else data
    return dst


def test_measurement_scale_is_proportional_and_finite():
    torch.manual_seed(0)
    y = torch.randn(2, 2, 4, 3, 8, 8)  # multi-coil (B, 2, T, N, H, W)
    mask = (torch.rand(1, 1, 4, 1, 8) > 0.5).float()
    base = measurement_scale(y, mask)
    assert base.shape == (2,)
    for c in SCALES:
        s = measurement_scale(y * c, mask)
        assert torch.isfinite(s).all()
        assert torch.allclose(s / c, base, rtol=1e-5)
        yn, _ = normalise_measurement(y * c, mask)
        assert torch.allclose(yn, y / base.reshape(-1, 1, 1, 1, 1, 1), rtol=1e-4, atol=1e-6)
    assert torch.equal(measurement_scale(torch.zeros(1, 2, 4, 8, 8), mask), torch.ones(1))


@pytest.mark.parametrize("mode,coils", [("dynamic", 1), ("sequential", 3)])
def test_scaled_copies_train_and_reconstruct_alike(tmp_path, one_thread, mode, coils):
    src = write_case(tmp_path / "scan.h5", mode=mode, slices=1, frames=8, height=24, width=24,
                     acceleration=4, seed=5, coils=coils)
    recons = {}
    for c in SCALES:
        scan = _scaled_copy(src, tmp_path / f"scan_{c:g}.h5", c)
        run = tmp_path / f"run_{c:g}"
        cfg = TrainConfig(train=[str(scan)], out=str(run), model_options=dict(SMALL), steps=3, val_every=3,
                          device="cpu", seed=1)
        summary = train(cfg, log=lambda _msg: None)
        assert summary["steps"] == 3 and summary["best_val_loss"] is not None
        ckpt, net = load_for_inference(run / "best.pt", torch.device("cpu"))
        (tmp_path / f"out_{c:g}").mkdir()
        # sequential reconstruction fine-tunes on the scan by default: that must not depend on the scale either
        result = reconstruct_file(ckpt, net, scan, tmp_path / f"out_{c:g}", torch.device("cpu"),
                                  adapt_steps=3 if mode == "sequential" else 0)
        with h5py.File(result.output, "r") as f:
            rec = f["reconstruction"][()]
        assert np.isfinite(rec).all()
        recons[c] = rec / c  # back to the unit-scale copy's units
    ref = recons[1.0]
    for c in (1e-15, 1e15):
        err = np.linalg.norm(recons[c] - ref) / np.linalg.norm(ref)
        assert err < 1e-3, (c, err)
