"""Windowed reconstruction (``frames_per_batch``) gives the whole-sequence result.

What holds (single-coil and multi-coil data, float32, CPU):

* frame-wise networks (``unrolled``, ``unet``), ``init=adjoint`` or ``init=view_sharing``
  with a ``share_window``: equal to float rounding (relative error ~1e-7) for any window,
  whether or not it divides T, because windows start on view-sharing blocks;
* ``cnn2dt`` (looks at ``neighbours`` frames each side, one intensity scale per
  sequence): windows carry the neighbours as overlap and the whole sequence's scale is
  fixed for every window, so it is equal to float rounding too. Without the overlap
  the window edges differ (checked below), and without the fixed scale every frame
  differs by about 1e-2 (relative).
"""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from a2a_cli import reconstruction
from a2a_cli.checkpoints import save_checkpoint
from a2a_cli.cli import app
from a2a_cli.errors import A2AError
from a2a_cli.models import build_model
from a2a_cli.physics import DynamicMRI
from a2a_cli.reconstruction import auto_frames_per_batch, run_network
from a2a_cli.simulate import write_case

T, N = 12, 16


def _data(frames: int = T, seed: int = 0, coils: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    g = torch.Generator().manual_seed(seed)
    lines = (torch.rand(1, 1, frames, 1, N, generator=g) < 0.35).float()
    lines[..., N // 2] = 1
    mask = lines.expand(1, 1, frames, N, N).contiguous()
    x = torch.randn(1, 2, frames, N, N, generator=g)
    x[:, :, frames // 2:] *= 4  # frames of different brightness: a per-window scale would show
    maps = None
    if coils:
        maps = torch.randn(1, coils, N, N, generator=g, dtype=torch.complex64)
        maps = maps / maps.abs().pow(2).sum(1, keepdim=True).sqrt()
    return DynamicMRI(mask=mask, coil_maps=maps)(x), mask, maps


def _net(name: str, **options) -> torch.nn.Module:
    torch.manual_seed(1)
    net = build_model(name, channels=8, **options)
    with torch.no_grad():  # move away from the near-identity start, so that mistakes show
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return net.eval()


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


NETWORKS = [
    ("unrolled", {"init": "adjoint"}),
    ("unrolled", {"init": "view_sharing", "share_window": 3}),
    ("unrolled", {"init": "view_sharing", "share_window": 5}),  # T = 12 is no multiple of 5
    ("unet", {"init": "adjoint", "scales": 2}),
    ("cnn2dt", {"neighbours": 1, "init": "adjoint"}),
    ("cnn2dt", {"neighbours": 3, "init": "view_sharing", "share_window": 4}),
]


@pytest.mark.parametrize("name,options", NETWORKS, ids=lambda v: v if isinstance(v, str) else "-".join(f"{k}={w}" for k, w in v.items()))
def test_windows_equal_whole_sequence(name, options):
    y, mask, _ = _data()
    net = _net(name, **options)
    whole = run_network(net, "dynamic", y, mask)
    for frames_per_batch in (1, 4, 5):  # dividing T = 12 or not (and rounded down to whole blocks)
        windowed = run_network(net, "dynamic", y, mask, frames_per_batch=frames_per_batch)
        assert windowed.shape == whole.shape
        assert _rel(windowed, whole) < 1e-5, (frames_per_batch, _rel(windowed, whole))
    assert "intensity_scale" not in vars(net)  # the fixed scale of a cnn2dt run was taken away again


def test_windows_equal_whole_sequence_multicoil():
    y, mask, maps = _data(coils=3)
    for name, options in (("unrolled", {"share_window": 3}), ("cnn2dt", {"neighbours": 1, "share_window": 3})):
        net = _net(name, **options)
        whole = run_network(net, "dynamic", y, mask, maps)
        assert _rel(run_network(net, "dynamic", y, mask, maps, frames_per_batch=4), whole) < 1e-5


def test_cnn2dt_needs_its_overlap():
    """Windows without the neighbour frames differ at their edges: the overlap is what makes them equal."""
    y, mask, _ = _data()
    net = _net("cnn2dt", neighbours=1, init="adjoint")
    whole = run_network(net, "dynamic", y, mask)
    net.temporal_context = 0
    cut = run_network(net, "dynamic", y, mask, frames_per_batch=4)
    inner = [0, 1, 2, 5, 6, 9, 10, 11]  # frames whose neighbours lie in their window (0-3, 4-7, 8-11) or past the sequence ends
    edges = [3, 4, 7, 8]
    assert _rel(cut[:, :, inner], whole[:, :, inner]) < 1e-5
    assert _rel(cut[:, :, edges], whole[:, :, edges]) > 1e-3


def test_whole_sequence_view_sharing_cannot_be_windowed():
    y, mask, _ = _data()
    net = _net("unrolled", init="view_sharing")  # share_window None: one block of all frames
    with pytest.raises(A2AError, match="whole sequence"):
        run_network(net, "dynamic", y, mask, frames_per_batch=4)
    assert auto_frames_per_batch(net, tuple(y.shape), budget=1) is None  # never windowed automatically


def test_automatic_window_fits_the_budget_and_keeps_the_result():
    y, mask, _ = _data(frames=40)
    net = _net("cnn2dt", neighbours=1, share_window=4)
    per_frame = reconstruction.bytes_per_frame(net, N, N)
    assert auto_frames_per_batch(net, tuple(y.shape), budget=40 * per_frame) is None  # fits: whole sequence
    window = auto_frames_per_batch(net, tuple(y.shape), budget=17 * per_frame)
    assert window == 8  # kept frames, whole blocks of 4; plus one block of overlap each side: 16 <= 17
    assert _rel(run_network(net, "dynamic", y, mask, frames_per_batch=window), run_network(net, "dynamic", y, mask)) < 1e-5


def test_cli_frames_per_batch_gives_the_same_file(tmp_path, monkeypatch):
    src = write_case(tmp_path / "long.h5", slices=2, frames=T, height=N, width=N, seed=3)
    ckpt = tmp_path / "net.pt"
    save_checkpoint(ckpt, _net("unrolled", share_window=3), "dynamic")
    runner = CliRunner()

    def recon(out: str, *extra: str) -> tuple[np.ndarray, dict]:
        res = runner.invoke(app, ["reconstruct", str(ckpt), str(src), "--out", str(tmp_path / out), "--device", "cpu", "--json", *extra])
        assert res.exit_code == 0, res.output
        with h5py.File(tmp_path / out / "long_recon.h5") as f:
            return f["reconstruction"][()], f["zero_filled"][()]

    whole, zf = recon("whole", "--frames-per-batch", "0")
    windowed, zf_w = recon("windowed", "--frames-per-batch", "5")  # rounded to 3 (share_window): 4 windows
    assert windowed.shape == whole.shape == (2, T, N, N)
    np.testing.assert_allclose(windowed, whole, rtol=0, atol=1e-5 * np.abs(whole).max())
    np.testing.assert_array_equal(zf_w, zf)
    # no --frames-per-batch and a sequence too large for the budget: windows chosen automatically
    monkeypatch.setattr(reconstruction, "CPU_WINDOW_BYTES", 5 * reconstruction.bytes_per_frame(build_model("unrolled", channels=8), N, N))
    res = runner.invoke(app, ["reconstruct", str(ckpt), str(src), "--out", str(tmp_path / "auto"), "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    import json

    assert json.loads(res.stdout)["files"][0]["frames_per_batch"] == 3
    with h5py.File(tmp_path / "auto" / "long_recon.h5") as f:
        np.testing.assert_allclose(f["reconstruction"][()], whole, rtol=0, atol=1e-5 * np.abs(whole).max())
