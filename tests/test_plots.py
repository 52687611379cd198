"""Tests of the figures (a2a_cli.plots): valid files, atomic writes, no leftovers."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from a2a_cli.atomic import atomic_write
from a2a_cli.plots import GIF_MAGICS, PNG_MAGIC, save_loss_plot, save_preview, smooth


def sequence(t: int = 4, h: int = 12, w: int = 10) -> np.ndarray:
    """A complex (T, H, W) series whose bright square moves one pixel per frame."""
    z = np.full((t, h, w), 0.1 + 0.05j)
    for i in range(t):
        z[i, 3:7, i:i + 4] = 1j
    return z


def test_loss_plot(tmp_path):
    records = [{"step": s, "loss": 1.0 / (1 + s) + 0.01 * (s % 3)} for s in range(1, 40)]
    records += [{"step": s, "val_loss": 1.2 / (1 + s)} for s in range(5, 40, 5)]
    records += [{"step": 40, "lr": 1e-3}, {"step": 41, "loss": float("nan")}, "not a record"]
    path = tmp_path / "loss.png"
    save_loss_plot(records, path)
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert os.listdir(tmp_path) == ["loss.png"]


def test_loss_plot_without_values_and_with_zero_loss(tmp_path):
    save_loss_plot([], tmp_path / "empty.png")
    save_loss_plot([{"step": 1, "loss": 0.0}, {"step": 2, "loss": -1.0}], tmp_path / "linear.png")
    for name in ("empty.png", "linear.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC


def test_smooth_follows_a_step_and_has_no_start_bias():
    values = np.r_[np.ones(50), np.zeros(50)]
    s = smooth(values, window=5)
    assert s[0] == pytest.approx(1.0)  # bias-corrected: no pull towards zero at the start
    assert s[49] == pytest.approx(1.0) and s[-1] == pytest.approx(0.0, abs=1e-3)
    assert 0.0 < s[52] < 1.0


def test_png_preview(tmp_path):
    ref = sequence()[0]
    panels = {
        "reference": ref,
        "zero-filled": 0.5 * ref,
        "a2a": torch.from_numpy(ref * 0.9),
        "error x5": 5 * np.abs(ref - 0.9 * ref),
    }
    path = tmp_path / "preview.png"
    save_preview(path, panels)
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > im.size[1]  # panels side by side
    assert os.listdir(tmp_path) == ["preview.png"]


def test_gif_preview_has_one_frame_per_time_point(tmp_path):
    z = sequence(t=5)
    path = tmp_path / "preview.gif"
    save_preview(path, {"reference": z, "a2a": 0.9 * z, "mean": np.abs(z).mean(0)}, fps=5)
    assert path.read_bytes()[:6] in GIF_MAGICS
    with Image.open(path) as im:
        assert im.format == "GIF"
        assert im.n_frames == 5
        assert im.info.get("duration") == 200
    assert os.listdir(tmp_path) == ["preview.gif"]


def test_preview_rejects_bad_panels(tmp_path):
    with pytest.raises(ValueError, match="2D"):
        save_preview(tmp_path / "p.png", {"reference": sequence()})
    with pytest.raises(ValueError, match="common T"):
        save_preview(tmp_path / "p.gif", {"a": sequence(t=3), "b": sequence(t=4)})
    with pytest.raises(ValueError):
        save_preview(tmp_path / "p.png", {})
    assert os.listdir(tmp_path) == []


def test_failure_while_writing_leaves_no_file(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    def broken_savefig(self, fname, **kwargs):
        with open(fname, "wb") as f:
            f.write(PNG_MAGIC)  # a partial file under the temporary name
        raise RuntimeError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(RuntimeError, match="disk full"):
        save_preview(tmp_path / "preview.png", {"reference": sequence()[0]})
    with pytest.raises(RuntimeError, match="disk full"):
        save_loss_plot([{"step": 1, "loss": 1.0}], tmp_path / "loss.png")
    assert os.listdir(tmp_path) == []


def test_gif_failure_leaves_no_file(tmp_path, monkeypatch):
    def broken_save(self, fp, *args, **kwargs):
        with open(fp, "wb") as f:
            f.write(b"GIF89a")
        raise OSError("interrupted")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="interrupted"):
        save_preview(tmp_path / "preview.gif", {"reference": sequence()})
    assert os.listdir(tmp_path) == []


def test_failure_keeps_an_existing_file(tmp_path):
    path = tmp_path / "out.png"
    path.write_bytes(b"old")
    with pytest.raises(KeyError):
        with atomic_write(path, overwrite=True) as tmp:
            with open(tmp, "wb") as f:
                f.write(b"new")
            raise KeyError("boom")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.png"]


def test_import_does_not_load_matplotlib():
    code = "import sys, a2a_cli.plots, a2a_cli.metrics, a2a_cli.masks; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
