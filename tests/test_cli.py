"""The command line end to end: train, resume, reconstruct, inspect-mask, simulate, --help."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cli_runner import invoke
from a2a_cli.checkpoints import load_checkpoint, sha256_of
from a2a_cli.cli import app
from a2a_cli.data import read_slice
from a2a_cli.metrics import psnr
from a2a_cli.physics import DynamicMRI, SequentialMRI, to_complex
from a2a_cli.simulate import write_case

runner = CliRunner()
SMALL = ["--model-option", "channels=8", "--model-option", "depth=3", "--device", "cpu", "--val-every", "2"]
ENV = dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="200")



@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("cli")
    return {
        "dir": d,
        "dyn_train": write_case(d / "dyn_train.h5", slices=2, frames=8, height=32, width=32, seed=1),
        "dyn_test": write_case(d / "dyn_test.h5", slices=1, frames=8, height=32, width=32, seed=2),
        # 8 lines per frame (4 of them the shared centre): frames that differ, as temporal splitting needs
        "seq_train": write_case(d / "seq_train.h5", mode="sequential", slices=2, frames=8, height=32, width=32,
                                acceleration=4, seed=3),
    }


def _complex(x: torch.Tensor) -> np.ndarray:
    return to_complex(x)[0].numpy()


def test_train_resume_reconstruct_dynamic(data, tmp_path):
    run = tmp_path / "run"
    # --no-tv: the network's resume is the subject (tests/test_crash_safety.py resumes runs with TV weights)
    code, text = invoke(["train", data["dyn_train"], "--out", run, "--steps", "4", "--no-tv", *SMALL])
    assert code == 0, text
    for name in ("config.json", "metrics.jsonl", "loss.png", "last.pt", "best.pt"):
        assert (run / name).is_file(), name
    config = json.loads((run / "config.json").read_text())
    assert config["mode"] == "dynamic" and config["model"] == "unrolled"
    assert config["model_options"]["share_window"] == 8  # two chunks of the automatic split size T/2
    assert load_checkpoint(run / "last.pt").training["step"] == 4
    # a second plain run refuses to replace the first
    code, text = invoke(["train", data["dyn_train"], "--out", run, "--steps", "4", *SMALL])
    assert code == 2 and "--resume" in text
    code, text = invoke(["train", data["dyn_train"], "--out", run, "--steps", "6", "--resume", "--no-tv", *SMALL])
    assert code == 0, text
    assert "resuming" in text
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt.training["step"] == 6
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 7))

    out = tmp_path / "recon"
    # the network's own reconstruction (--method auto may keep TV over a network of six steps)
    code, text = invoke(["reconstruct", run / "last.pt", data["dyn_test"], "--out", out, "--json", "--device", "cpu",
                         "--method", "network"])
    assert code == 0, text
    table = json.loads(text[text.index("{"):])
    row = table["files"][0]
    target = out / "dyn_test_recon.h5"
    assert row["output"] == str(target) and target.is_file()
    # the file holds exactly what the library computes
    net = ckpt.build_model().eval()
    sample = read_slice(data["dyn_test"], 0)
    with torch.no_grad():
        expected = _complex(net(sample.kspace, DynamicMRI(mask=sample.mask)))
    with h5py.File(target) as f:
        rec = f["reconstruction"][...]
        assert rec.shape == (1, 8, 32, 32) and rec.dtype == np.complex64
        np.testing.assert_allclose(rec[0], expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
        zf = _complex(DynamicMRI(mask=sample.mask).A_adjoint(sample.kspace))
        np.testing.assert_allclose(f["zero_filled"][0], zf, rtol=1e-4, atol=1e-6)
        assert f.attrs["checkpoint_sha256"] == sha256_of(run / "last.pt")
        assert f.attrs["mode"] == "dynamic" and f.attrs["network"] == "unrolled"
        assert f.attrs["source_file"] == str(Path(data["dyn_test"]).resolve())
    ref = _complex(sample.reference)
    assert row["psnr_network"] == pytest.approx(psnr(ref, rec[0]), abs=1e-3)
    assert row["psnr_zero_filled"] == pytest.approx(psnr(ref, zf), abs=1e-3)
    # no silent replacement of outputs
    code, text = invoke(["reconstruct", run / "last.pt", data["dyn_test"], "--out", out, "--device", "cpu"])
    assert code == 2 and "--overwrite" in text
    code, text = invoke(["reconstruct", run / "last.pt", data["dyn_test"], "--out", out, "--device", "cpu",
                         "--overwrite", "--preview", tmp_path / "p.png"])
    assert code == 0, text
    assert "PSNR" in text and (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_sequential_mode_from_the_file_attribute(data, tmp_path):
    run = tmp_path / "seq"
    code, text = invoke(["train", data["seq_train"], "--out", run, "--steps", "3", "--model", "unet",
                         "--model-option", "channels=4", "--model-option", "scales=2", "--device", "cpu"])
    assert code == 0, text
    ckpt = load_checkpoint(run / "best.pt")
    assert ckpt.mode == "sequential" and ckpt.model_name == "unet"
    code, text = invoke(["reconstruct", run / "best.pt", data["seq_train"], "--out", tmp_path / "r", "--device", "cpu",
                         "--adapt", "0", "--method", "network"])  # the trained network itself, not fine-tuned
    assert code == 0, text
    with h5py.File(tmp_path / "r" / "seq_train_recon.h5") as f:
        assert f["reconstruction"].shape == (2, 32, 32)
        sample = read_slice(data["seq_train"], 1)
        with torch.no_grad():
            y, phys = SequentialMRI(mask=sample.mask).time_average(sample.kspace)
            expected = _complex(ckpt.build_model().eval()(y, phys))
        np.testing.assert_allclose(f["reconstruction"][1], expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


def test_config_file_values_and_command_line_precedence(data, tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('steps = 3\nlr = 0.0005\nsplit_size = [2]\nmodel = "cnn2dt"\n'
                   'model_options = {channels = 4, depth = 2}\n')
    run = tmp_path / "run"
    code, text = invoke(["train", data["dyn_train"], "--out", run, "--config", cfg, "--steps", "2", "--device", "cpu",
                         "--no-tv"])  # the weight search is tested elsewhere
    assert code == 0, text
    saved = json.loads((run / "config.json").read_text())
    assert saved["steps"] == 2  # the command line wins
    assert saved["lr"] == 0.0005 and saved["split_size"] == [2] and saved["model"] == "cnn2dt"
    bad = tmp_path / "bad.toml"
    bad.write_text("stepz = 3\n")
    code, text = invoke(["train", data["dyn_train"], "--out", tmp_path / "r2", "--config", bad])
    assert code == 2 and "stepz" in text


def test_inspect_mask_text_json_and_png(data, tmp_path):
    code, text = invoke(["inspect-mask", data["dyn_train"], "--json"])
    assert code == 0, text
    report = json.loads(text[text.index("{"):])
    assert report["n_frames"] == 8 and report["orientation"] == "lines"
    assert {s["split_size"] for s in report["splits"]} == {1, 2, 4}
    assert report["verdict"] in ("ok", "warning")
    code, text = invoke(["inspect-mask", data["dyn_train"], "--split-size", "3", "--png", tmp_path / "m.png"])
    assert code == 0, text
    assert "verdict" in text and "not divisible" in text
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"


def test_simulate_is_deterministic(tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    for p in (a, b):
        code, text = invoke(["simulate", p, "--slices", "1", "--frames", "4", "--height", "16", "--width", "16", "--seed", "5"])
        assert code == 0, text
    assert sha256_of(a) == sha256_of(b)
    code, text = invoke(["simulate", a, "--slices", "1"])
    assert code == 2 and "--overwrite" in text


@pytest.mark.parametrize("command", ["train", "reconstruct", "inspect-mask", "simulate", "convert"])
def test_help_shows_options_and_examples(command):
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "Examples" in result.output and f"a2a {command}" in result.output
    assert "--" in result.output  # options are listed


@pytest.mark.slow
def test_real_subprocess_and_module_entry_point(data, tmp_path):
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "a2a_cli", "train", str(data["dyn_train"]), "--out", str(run),
                           "--steps", "2", "--json", "--no-tv", *SMALL], capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["steps"] == 2 and Path(summary["best"]).is_file()
    proc = subprocess.run([sys.executable, "-m", "a2a_cli", "inspect-mask", str(tmp_path / "missing.h5")],
                          capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode == 2 and "missing.h5" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("mode_key, flags, expect_augment, expect_steps",
                         [("seq_train", ["--loss", "a2a"], True, 3), ("seq_train", ["--loss", "a2a", "--no-augment"], False, 3),
                          ("seq_train", [], False, 3),  # --loss auto: SSDU for sequential data, without reflections
                          ("dyn_train", [], False, 2), ("dyn_train", ["--augment"], True, 2)])
def test_reflection_augmentation_and_default_steps_follow_the_mode(data, tmp_path, monkeypatch, mode_key, flags,
                                                                    expect_augment, expect_steps):
    import a2a_cli.training as training
    from a2a_cli.physics import Reflection

    # the per-mode default step counts, shrunk so that the test runs them to the end
    monkeypatch.setitem(training.DEFAULT_STEPS, "sequential", 3)
    monkeypatch.setitem(training.DEFAULT_STEPS, "dynamic", 2)
    draws = []
    real_random = Reflection.random

    def counting_random(*args, **kwargs):
        draws.append(real_random(*args, **kwargs))
        return draws[-1]

    monkeypatch.setattr(Reflection, "random", staticmethod(counting_random))
    run = tmp_path / "run"
    # --no-tv: the weight search is tested elsewhere and costs most of this run's time
    code, text = invoke(["train", data[mode_key], "--out", run, "--model-option", "channels=4", "--model-option",
                         "depth=2", "--val-every", "1", "--device", "cpu", "--no-tv", *flags])
    assert code == 0, text
    assert json.loads((run / "config.json").read_text())["steps"] == expect_steps
    assert len([json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]) == expect_steps
    assert len(draws) == (expect_steps if expect_augment else 0)  # one reflection per training step
    ckpt = load_checkpoint(run / "best.pt")
    assert ckpt.build_model().flip_ensemble is expect_augment  # reconstruction averages over the reflections
    # an explicit bound replaces the default step count
    code, text = invoke(["train", data[mode_key], "--out", tmp_path / "run2", "--model-option", "channels=4",
                         "--model-option", "depth=2", "--epochs", "1", "--device", "cpu", "--no-tv", *flags])
    assert code == 0, text
    assert json.loads((tmp_path / "run2" / "config.json").read_text())["steps"] is None


@pytest.mark.parametrize("flags, missing", [(["--no-augment"], "1, 3, 5"), ([], "1, 3, 5"), (["--loss", "a2a"], "3, 5")])
def test_train_warns_about_lines_no_training_file_samples(tmp_path, flags, missing):
    from a2a_cli.data import write_a2a_file

    t, h, w = 4, 8, 8
    mask = np.zeros((t, h, w), bool)
    for k, lines in enumerate([(0, 4), (2, 4), (4, 7), (4, 6)]):
        mask[k][:, list(lines)] = True
    # sampled: 0, 2, 4, 6, 7; never sampled: 1, 3, 5. Mirror about the centre 4: k -> (8 - k) % 8,
    # so with reflected training data line 1 learns from line 7, while 3 and 5 mirror each other
    rng = np.random.default_rng(0)
    kspace = (rng.standard_normal((t, h, w)) + 1j * rng.standard_normal((t, h, w))).astype(np.complex64) * mask
    path = write_a2a_file(tmp_path / "seq.h5", kspace, mask=mask, acquisition="sequential")
    code, text = invoke(["train", path, "--out", tmp_path / "run", "--steps", "1", "--model-option", "channels=4",
                         "--model-option", "depth=2", "--device", "cpu", *flags])
    assert code == 0, text
    assert f"warning: {len(missing.split(','))} phase-encode line(s) are never sampled" in text
    assert f"({missing})" in text


def test_train_help_defaults_are_the_config_defaults():
    # the command line passes on only what the user gave (TrainConfig holds the defaults);
    # the defaults `a2a train --help` shows must be the same values
    import dataclasses
    import enum
    import inspect

    import typer

    from a2a_cli import cli
    from a2a_cli.config import TrainConfig

    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    compared = 0
    for name, param in inspect.signature(cli.train).parameters.items():
        option = param.default
        if not isinstance(option, typer.models.OptionInfo) or name not in fields:
            continue
        field = fields[name]
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        shown = option.default.value if isinstance(option.default, enum.Enum) else option.default
        if isinstance(shown, list):
            shown, default = tuple(shown), tuple(default)
        assert shown == default, (name, shown, default)
        compared += 1
    assert compared >= 20
