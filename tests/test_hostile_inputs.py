"""Hostile or careless input: every option, configuration, header and path is refused with one line
naming the option or the file, exit code 2, before any work, and nothing is written.

The cases are grouped by class: option values, network options and checkpoint configurations,
TOML configurations, scanner headers, paths, and the promises the README makes (no output
over an input, checks before the first write, no non-finite output, the last-resort handler).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cli_runner import invoke
from a2a_cli import config as cfgmod
from a2a_cli.checkpoints import FORMAT, FORMAT_VERSION, save_checkpoint
from a2a_cli.cli import app
from a2a_cli.errors import A2AError, InputError
from a2a_cli.data import inspect_file, write_a2a_file
from a2a_cli.models import build_model
from a2a_cli.models.cost import NetworkTooCostly, check_network, estimate_cost

runner = CliRunner()
T, H, W = 4, 8, 8
TINY_NET = {"channels": 4, "depth": 2}
FEW = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# ----------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------

def files_under(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (hidden ones too) with its contents: nothing may appear or change."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[str(p.relative_to(root))] = p.read_bytes()
        elif p.is_dir():
            out[str(p.relative_to(root)) + "/"] = b""
    return out


def refused(args: list, words: list[str], root: Path, env: dict | None = None) -> str:
    """Run ``args``; assert exit code 2, one ``error:`` line holding ``words``, and no file written under ``root``."""
    before = files_under(root)
    code, text = invoke(args, env)
    # a progress bar drawn before the problem showed up is not a message, nor is the
    # line saying how a file was read (printed as soon as it was inspected)
    lines = [line for line in text.strip().splitlines() if line.strip() and "━" not in line and ": read as " not in line]
    assert code == 2, text
    assert "Traceback" not in text, text
    assert len(lines) == 1 and lines[0].startswith("error: "), text
    for word in words:
        assert word in text, (word, text)
    assert files_under(root) == before, "a refused command wrote or changed a file"
    return text


def lines_mask(t: int = T, w: int = W) -> np.ndarray:
    m = np.zeros((t, w), np.uint8)
    for frame in range(t):
        m[frame, frame::t] = 1
    m[:, w // 2] = 1
    return m


def a2a_scan(path: Path, scale: float = 4.0) -> Path:
    m = lines_mask()
    rng = np.random.default_rng(0)
    k = (rng.standard_normal((1, T, H, W)) + 1j * rng.standard_normal((1, T, H, W))).astype(np.complex64)
    k = (k / np.abs(k).max() * scale).astype(np.complex64) * m[None, :, None, :]
    return write_a2a_file(path, k, mask=m[None], acquisition="dynamic")


def checkpoint_payload(net: torch.nn.Module, **changes) -> dict:
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "a2a_version": "0", "model": net.name,
               "model_config": json.dumps(net.config, sort_keys=True), "mode": "dynamic",
               "state_dict": {k: v.detach().clone() for k, v in net.state_dict().items()}}
    payload.update(changes)
    return payload


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """Inputs shared by the cases (read-only): a scan, a checkpoint, a scan near the float32 limit."""
    d = tmp_path_factory.mktemp("hostile_inputs")
    scan = a2a_scan(d / "scan.h5")
    ckpt = d / "net.pt"
    save_checkpoint(ckpt, build_model("cnn2dt", **TINY_NET), "dynamic")
    return {"dir": d, "scan": scan, "ckpt": ckpt, "huge_values": a2a_scan(d / "huge_values.h5", scale=3e38)}


# ----------------------------------------------------------------------------------
# 1. option values
# ----------------------------------------------------------------------------------
TRAIN_BAD = [
    (["--lr", "nan"], ["--lr", "finite", "nan"]),
    (["--lr", "-1"], ["--lr", "> 0"]),
    (["--lr", "0"], ["--lr", "> 0"]),
    (["--lr", "inf"], ["--lr", "finite"]),
    (["--lr", "1e6"], ["--lr", "at most"]),
    (["--workers", "-1"], ["--workers", "at least 0"]),
    (["--seed", "-1"], ["--seed", "at least 0"]),
    (["--seed", str(2**64)], ["--seed", "at most"]),
    (["--device", "cuda:7"], ["--device", "cuda:7"]),
    (["--device", "tpu"], ["--device", "auto, cpu, cuda or cuda:N"]),
    (["--time-limit", "nan"], ["--time-limit", "finite"]),
    (["--time-limit", "0"], ["--time-limit", "> 0"]),
    (["--steps", "0"], ["--steps", "at least 1"]),
    (["--epochs", "-3"], ["--epochs", "at least 1"]),
    (["--batch-size", "0"], ["--batch-size", "at least 1"]),
    (["--val-every", "0"], ["--val-every", "at least 1"]),
    (["--grad-clip", "nan"], ["--grad-clip", "finite"]),
    (["--grad-clip", "-2"], ["--grad-clip", "> 0"]),
    (["--save-every", "-1"], ["--save-every", "at least 0"]),
    (["--split-size", "0"], ["--split-size", "at least 1"]),
    (["--patience", "-1"], ["--patience", "at least 0"]),
    (["--frames", "0"], ["--frames", "at least 1"]),
    (["--centre-lines", "-1"], ["--centre-lines", "at least 0"]),
    (["--model", "resnet"], ["--model", "resnet", "unrolled"]),
    (["--loss", "l2"], ["--loss", "a2a, p2p"]),
    (["--nproc", "0"], ["--nproc", "at least 1"]),
]


@pytest.mark.parametrize("extra,words", TRAIN_BAD, ids=[" ".join(a) for a, _ in TRAIN_BAD])
def test_train_option_values_are_refused_before_any_work(world, tmp_path, extra, words):
    if extra[:2] == ["--device", "cuda:7"] and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    refused(["train", world["scan"], "--out", tmp_path / "run", "--steps", "1", *extra], words, tmp_path)
    assert not (tmp_path / "run").exists()


def test_device_that_does_not_exist_is_named_with_what_there_is(world, tmp_path):
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    text = refused(["reconstruct", world["ckpt"], world["scan"], "--out", tmp_path / "r", "--device", f"cuda:{count}"],
                   ["--device", f"cuda:{count}"], tmp_path)
    assert ("no CUDA device" in text) if count == 0 else (f"{count} CUDA device" in text)


OTHER_BAD = [
    (["reconstruct", "CKPT", "SCAN", "--out", "OUT", "--frames-per-batch", "-1"], ["--frames-per-batch", "at least 0"]),
    (["reconstruct", "CKPT", "SCAN", "--out", "OUT", "--preview-slice", "-1"], ["--preview-slice", "at least 0"]),
    (["reconstruct", "CKPT", "SCAN", "--out", "OUT", "--preview-frame", "-1"], ["--preview-frame", "at least 0"]),
    (["reconstruct", "CKPT", "SCAN", "--out", "OUT", "--seed", "-5"], ["--seed"]),
    (["reconstruct", "CKPT", "SCAN", "--out", "OUT", "--device", "gpu"], ["--device", "gpu"]),
    (["inspect-mask", "SCAN", "--split-size", "0"], ["--split-size", "at least 1"]),
    (["simulate", "OUT/s.h5", "--period", "4"], ["--period", "--motion periodic"]),
    (["inspect-mask", "SCAN", "--slice", "-1"], ["--slice", "at least 0"]),
    (["inspect-mask", "SCAN", "--frames", "0"], ["--frames", "at least 1"]),
    (["convert", "SCAN", "OUT/c.h5", "--virtual-coils", "0"], ["--virtual-coils", "at least 1"]),
    (["convert", "SCAN", "OUT/c.h5", "--seed", "-1"], ["--seed"]),
    (["simulate", "OUT/s.h5", "--snr", "10000"], ["--snr", "at most 200"]),
    (["simulate", "OUT/s.h5", "--snr", "nan"], ["--snr", "finite"]),
    (["simulate", "OUT/s.h5", "--slices", "0"], ["--slices", "at least 1"]),
    (["simulate", "OUT/s.h5", "--frames", "0"], ["--frames", "at least 1"]),
    (["simulate", "OUT/s.h5", "--height", "2"], ["--height", "at least 4"]),
    (["simulate", "OUT/s.h5", "--acceleration", "nan"], ["--acceleration", "finite"]),
    (["simulate", "OUT/s.h5", "--acceleration", "0.5"], ["--acceleration", "at least 1"]),
    (["simulate", "OUT/s.h5", "--acceleration", "500"], ["--acceleration", "width"]),
    (["simulate", "OUT/s.h5", "--coils", "0"], ["--coils", "at least 1"]),
    (["simulate", "OUT/s.h5", "--motion", "wobble"], ["--motion", "respiratory"]),
    (["simulate", "OUT/s.h5", "--complex-style", "polar"], ["--complex-style", "float2"]),
    (["simulate", "OUT/s.h5", "--motion", "periodic", "--period", "0"], ["--period", "at least 1"]),
    (["simulate", "OUT/s.h5", "--slices", "10000", "--height", "16384", "--width", "16384"], ["complex samples", "A2A_MAX_SLICE_SAMPLES"]),
]


@pytest.mark.parametrize("args,words", OTHER_BAD, ids=[" ".join(a[:1] + a[-2:]) for a, _ in OTHER_BAD])
def test_other_commands_option_values_are_refused_before_any_work(world, tmp_path, args, words):
    names = {"CKPT": world["ckpt"], "SCAN": world["scan"]}
    args = [names.get(a, a.replace("OUT", str(tmp_path / "out"))) for a in args]
    refused(args, words, tmp_path)
    assert not (tmp_path / "out").exists()


def test_command_line_defaults_are_the_train_config_defaults():
    """TrainConfig is the one source of the training defaults: the train command shows the same ones."""
    from dataclasses import MISSING, fields

    import typer.main

    params = {p.name: p.default for p in typer.main.get_command(app).commands["train"].params}
    checked = 0
    for f in fields(cfgmod.TrainConfig):
        if f.name in params and f.default is not MISSING:
            shown = getattr(params[f.name], "value", params[f.name])  # an Enum's value
            assert shown == f.default, (f.name, shown, f.default)
            checked += 1
    assert checked >= 20


@FEW
@given(value=st.one_of(st.floats(max_value=0.0), st.just(math.nan), st.just(math.inf), st.floats(min_value=10.001, allow_infinity=True)))
def test_any_learning_rate_outside_the_range_is_refused(world, tmp_path, value):
    refused(["train", world["scan"], "--out", tmp_path / "run", "--lr", repr(value)], ["--lr"], tmp_path)


@FEW
@given(seed=st.one_of(st.integers(max_value=-1), st.integers(min_value=cfgmod.MAX_SEED + 1)))
def test_any_seed_outside_32_bits_is_refused(world, tmp_path, seed):
    refused(["inspect-mask", world["scan"], "--seed", str(seed), "--frames", "2"], ["--seed"], tmp_path)


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(cfgmod.CHECKS)), value=st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)))
def test_every_key_either_accepts_a_value_of_its_kind_or_names_the_problem(name, value):
    """A value is converted to its field's type within range, or refused with a ValueProblem: never anything else."""
    check = cfgmod.CHECKS[name]
    try:
        out = cfgmod.check_value(check, value)
    except cfgmod.ValueProblem as exc:
        assert str(exc)
        return
    if out is None:
        assert check.optional
    elif check.kind == "float":
        assert isinstance(out, float) and math.isfinite(out)
        assert check.low is None or out >= check.low
    elif check.kind == "int":
        assert type(out) is int and (check.low is None or out >= check.low) and (check.high is None or out <= check.high)
    elif check.kind == "bool":
        assert isinstance(out, bool)


# ----------------------------------------------------------------------------------
# 2. network options and checkpoint configurations
# ----------------------------------------------------------------------------------
NET_BAD = [
    ("unrolled", "channels=1000000", ["parameters", "A2A_MAX_PARAMETERS"]),
    ("unrolled", "depth=1e400", ["depth", "integer"]),
    ("unrolled", "iterations=1000000000", ["operations per 256x256 frame", "A2A_MAX_FRAME_OPS"]),
    ("unrolled", "channels=abc", ["channels", "integer", "'abc'"]),
    ("unrolled", "depth=NaN", ["depth", "nan"]),
    ("unrolled", "lam=-1", ["lam", "at least 0"]),
    ("unrolled", "share_window=0", ["share_window", "at least 1"]),
    ("unrolled", "init=magic", ["init", "view_sharing"]),
    ("unrolled", "flip_ensemble=\"yes\"", ["flip_ensemble", "true or false"]),
    ("unet", "scales=40", ["scales", "at most 30"]),
    ("unet", "channels=4096", ["A2A_MAX_"]),
    ("cnn2dt", "neighbours=-1", ["neighbours", "at least 0"]),
    ("cnn2dt", "colour=3", ["unknown option", "colour"]),
]


@pytest.mark.parametrize("model,option,words", NET_BAD, ids=[f"{m} {o}" for m, o, _ in NET_BAD])
def test_network_options_are_checked_and_costed_before_building(world, tmp_path, model, option, words):
    refused(["train", world["scan"], "--out", tmp_path / "run", "--model", model, "--model-option", option,
             "--device", "cpu"], ["--model-option", *words], tmp_path)


def test_cost_limits_are_raised_by_the_environment(monkeypatch):
    options = {"channels": 4096, "depth": 3}
    with pytest.raises(NetworkTooCostly, match="A2A_MAX_PARAMETERS"):
        check_network("unrolled", options)
    monkeypatch.setenv("A2A_MAX_PARAMETERS", str(10**9))
    monkeypatch.setenv("A2A_MAX_FRAME_OPS", str(10**16))
    monkeypatch.setenv("A2A_MAX_FRAME_MEMORY", str(10**12))
    cost = check_network("unrolled", options)
    assert cost.parameters == 2 * 4096 * 9 + 4096 + 4096 * 4096 * 9 + 4096 + 4096 * 2 * 9 + 2
    monkeypatch.setenv("A2A_MAX_PARAMETERS", "lots")
    with pytest.raises(A2AError, match="A2A_MAX_PARAMETERS must be a positive integer"):
        check_network("unrolled", {})


@pytest.mark.parametrize("name,options", [("unrolled", {}), ("unrolled", {"channels": 8, "depth": 3, "learn_lambda": True}),
                                          ("unet", {"channels": 4, "scales": 2}), ("cnn2dt", {"neighbours": 2, "channels": 5})])
def test_parameter_estimate_is_exact(name, options):
    assert estimate_cost(name, options).parameters == sum(p.numel() for p in build_model(name, **options).parameters())


CKPT_BAD = {
    # 10^9 unrolled iterations share one set of weights: the file fits, the cost does not
    "10^9 iterations": ("unrolled", {"iterations": 10**9}, ["refused", "operations", "A2A_MAX_FRAME_OPS"]),
    "depth 10^9": ("cnn2dt", {"depth": 10**9}, ["shape mismatch", "parameters"]),
    "channels text": ("cnn2dt", {"channels": "wide"}, ["cannot rebuild", "channels"]),
    "depth infinite": ("cnn2dt", {"depth": 1e400}, ["cannot rebuild", "depth"]),
    "share_window negative": ("cnn2dt", {"share_window": -4}, ["cannot rebuild", "share_window"]),
}


@pytest.mark.parametrize("case", list(CKPT_BAD))
def test_checkpoint_configuration_is_costed_before_reconstruct_builds_anything(world, tmp_path, case):
    name, change, words = CKPT_BAD[case]
    net = build_model(name, **TINY_NET)
    ckpt = tmp_path / "hostile.pt"
    torch.save(checkpoint_payload(net, model_config=json.dumps(net.config | change)), ckpt)
    refused(["reconstruct", ckpt, world["scan"], "--out", tmp_path / "r", "--device", "cpu"], ["hostile.pt", *words], tmp_path)
    assert not (tmp_path / "r").exists()


# ----------------------------------------------------------------------------------
# 3. TOML configurations
# ----------------------------------------------------------------------------------
TOML_BAD = {
    "string for a number": ('lr = "fast"\n', ["key 'lr'", "'fast'"]),
    "scalar for a list": ("split_size = 4\n", ["key 'split_size'", "list of integers"]),
    "list item not an int": ('split_size = [2, "x"]\n', ["key 'split_size'", "item 2"]),
    "train is a list": ("train = [1, 2]\n", ["key 'train'", "item 1"]),
    "array of tables": ("[[train]]\nsteps = 2\n", ["key 'train'", "item 1"]),
    "seed 2^64": (f"seed = {2**64 - 1}\n", ["key 'seed'", "at most 4294967295"]),
    "unknown mode": ('mode = "static"\n', ["key 'mode'", "dynamic, sequential"]),
    "unknown key": ("stepz = 3\n", ["unknown key 'stepz'", "steps"]),
    "nan lr": ("lr = nan\n", ["key 'lr'", "finite"]),
    "inf time limit": ("time_limit = inf\n", ["key 'time_limit'", "finite"]),
    "bool as text": ('amp = "yes"\n', ["key 'amp'", "true or false"]),
    "negative patience": ("patience = -1\n", ["key 'patience'", "at least 0"]),
    "device number": ("device = 7\n", ["key 'device'"]),
    "model options not a table": ('model_options = "wide"\n', ["key 'model_options'", "table"]),
    "model option of the wrong type": ('model_options = {channels = "x"}\n', ["key 'model_options'", "channels"]),
    "network too costly": ("model_options = {channels = 1000000}\n", ["key 'model_options'", "A2A_MAX_PARAMETERS"]),
    "network option unknown": ('model = "unet"\nmodel_options = {iterations = 3}\n', ["key 'model_options'", "unknown option 'iterations'"]),
    "not TOML": ("steps = = 3\n", ["not valid TOML"]),
}


@pytest.mark.parametrize("case", list(TOML_BAD))
def test_toml_config_is_validated_key_by_key(world, tmp_path, case):
    text, words = TOML_BAD[case]
    toml = tmp_path / "run.toml"
    toml.write_text(text)
    refused(["train", world["scan"], "--out", tmp_path / "run", "--config", toml, "--steps", "1"], ["run.toml", *words], tmp_path)


@pytest.mark.parametrize("case", ["directory", "not utf-8", "missing"])
def test_unreadable_toml_config_is_named(world, tmp_path, case):
    toml = tmp_path / "run.toml"
    if case == "directory":
        toml.mkdir()
    elif case == "not utf-8":
        toml.write_bytes(b'mode = "dyn\xe9mique"\n')
    words = {"directory": ["is a directory"], "not utf-8": ["not UTF-8"], "missing": ["not found"]}[case]
    refused(["train", world["scan"], "--out", tmp_path / "run", "--config", toml], ["run.toml", *words], tmp_path)


@FEW
@given(key=st.sampled_from(["steps", "epochs", "batch_size", "val_every", "workers", "seed", "frames"]),
       value=st.one_of(st.integers(max_value=-1), st.floats(allow_nan=True).filter(lambda v: not float(v).is_integer()),
                       st.text(alphabet="abc xyz-", min_size=1, max_size=5), st.booleans()))
def test_any_bad_integer_in_a_toml_file_names_the_file_and_key(world, tmp_path, key, value):
    toml = tmp_path / "cfg.toml"
    literal = json.dumps(value) if not isinstance(value, float) else ("nan" if math.isnan(value) else repr(value).replace("inf", "inf"))
    toml.write_text(f"{key} = {literal}\n")
    try:
        refused(["train", world["scan"], "--out", tmp_path / "run", "--config", toml], ["cfg.toml", f"key '{key}'"], tmp_path)
    finally:
        toml.unlink()


_ANY = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                 st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6), st.lists(st.integers(-3, 3), max_size=3),
                 st.dictionaries(st.sampled_from(["channels", "depth", "colour"]), st.integers(-2, 9), max_size=2))


@settings(max_examples=40, deadline=None)
@given(values=st.dictionaries(st.sampled_from(sorted(cfgmod.CHECKS) + ["stepz"]), _ANY, max_size=6))
def test_any_config_is_either_fully_checked_or_refused_naming_the_key(values):
    """A whole configuration (as a TOML file gives it) builds a TrainConfig whose every field passes its check, or is refused naming a key."""
    values = {"train": ["a.h5"], "out": "run"} | values
    origin = Path("cfg.toml")
    try:
        cfg = cfgmod.train_config(values, origin)
    except A2AError as exc:
        assert str(exc).startswith("cfg.toml: "), str(exc)
        assert any(f"'{key}'" in str(exc) for key in values), str(exc)
        return
    for name, check in cfgmod.CHECKS.items():
        value = getattr(cfg, name)
        assert cfgmod.check_value(check, value) == value  # already of its type and in range


def test_merge_order_defaults_toml_saved_run_command_line(tmp_path):
    toml = tmp_path / "a.toml"
    toml.write_text("steps = 7\nlr = 0.002\nbatch_size = 3\nseed = 9\n")
    saved = tmp_path / "config.json"
    saved.write_text(json.dumps({"steps": 11, "lr": 0.004, "model": "cnn2dt", "obsolete_key": 1}))
    cfg = cfgmod.merge_train_config({"train": ["x.h5"], "out": "o", "lr": 1e-3, "steps": 5, "seed": 0},
                                    given={"train", "out", "steps"}, toml=toml, saved=saved)
    assert (cfg.steps, cfg.lr, cfg.batch_size, cfg.seed, cfg.model, cfg.val_every) == (5, 0.004, 3, 9, "cnn2dt", 100)
    saved.write_text(json.dumps({"lr": "nan"}))
    with pytest.raises(InputError, match=r"config.json: key 'lr'"):
        cfgmod.merge_train_config({"train": ["x.h5"], "out": "o"}, given=set(), saved=saved)


# ----------------------------------------------------------------------------------
# 4. scanner headers
# ----------------------------------------------------------------------------------
XML = """<?xml version="1.0"?>
<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD"><encoding>
<encodedSpace><matrixSize><x>{x}</x><y>{y}</y><z>1</z></matrixSize></encodedSpace>
<reconSpace><matrixSize><x>{x}</x><y>{y}</y><z>1</z></matrixSize></reconSpace>
</encoding></ismrmrdHeader>"""


def ismrmrd_file(path: Path, x="8", y="8", xml_as_group: bool = False, rows: int = 4, declared_rows: int | None = None) -> Path:
    idx_t = np.dtype([(n, "<u2") for n in ("kspace_encode_step_1", "kspace_encode_step_2", "slice", "contrast", "phase", "repetition", "set")])
    head_t = np.dtype([("flags", "<u8"), ("number_of_samples", "<u2"), ("active_channels", "<u2"), ("center_sample", "<u2"), ("idx", idx_t)])
    acq_t = np.dtype([("head", head_t), ("data", h5py.vlen_dtype(np.float32))])
    with h5py.File(path, "w") as f:
        g = f.create_group("dataset")
        if declared_rows is None:
            table = np.zeros(rows, acq_t)
            for i in range(rows):
                table[i]["head"]["number_of_samples"], table[i]["head"]["active_channels"] = 8, 1
                table[i]["head"]["idx"]["kspace_encode_step_1"] = i
                table[i]["data"] = np.ones(16, np.float32)
            g.create_dataset("data", data=table)
        else:
            g.create_dataset("data", shape=(declared_rows,), dtype=acq_t, chunks=(1024,))
        if xml_as_group:
            g.create_group("xml")
        else:
            g.create_dataset("xml", data=np.array([XML.format(x=x, y=y)], dtype=h5py.string_dtype()))
    return path


def a2a_with_coils(path: Path, coils) -> Path:
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", data=np.ones((T, 2, H, W), np.complex64))
        f.attrs["acquisition"] = "dynamic"
        f.attrs["coils"] = coils
    return path


HEADER_BAD = {
    "matrix size not a number": (lambda p: ismrmrd_file(p, x="abc"), ["matrixSize/x", "'abc'"]),
    "matrix size 1e999": (lambda p: ismrmrd_file(p, y="1e999"), ["matrixSize/y", "'1e999'"]),
    "matrix size negative": (lambda p: ismrmrd_file(p, x="-8"), ["matrixSize/x", "'-8'"]),
    "matrix size fraction": (lambda p: ismrmrd_file(p, x="8.5"), ["matrixSize/x", "8.5"]),
    "matrix size huge": (lambda p: ismrmrd_file(p, x="1048576", y="1048576"), ["complex samples", "A2A_MAX_SLICE_SAMPLES"]),
    "xml is a group": (lambda p: ismrmrd_file(p, xml_as_group=True), ["/dataset/xml", "not a dataset"]),
    "acquisition table huge": (lambda p: ismrmrd_file(p, declared_rows=2**40), ["acquisition table", "A2A_MAX_SLICE_SAMPLES"]),
    "coils NaN": (lambda p: a2a_with_coils(p, np.float32("nan")), ["attribute coils", "nan"]),
    "coils text": (lambda p: a2a_with_coils(p, "2"), ["attribute coils"]),
    "coils fraction": (lambda p: a2a_with_coils(p, 2.5), ["attribute coils", "2.5"]),
    "coils huge": (lambda p: a2a_with_coils(p, 2**40), ["attribute coils"]),
}


@pytest.mark.parametrize("case", list(HEADER_BAD))
def test_scanner_header_fields_go_through_one_checked_conversion(tmp_path, case):
    make, words = HEADER_BAD[case]
    path = make(tmp_path / "raw.h5")
    refused(["inspect-mask", path], ["raw.h5", *words], tmp_path)
    refused(["convert", path, tmp_path / "out.h5"], ["raw.h5", *words], tmp_path)


def test_cmrxrecon_declared_size_is_refused_before_allocating(tmp_path):
    path = tmp_path / "cine_sax.mat"
    with h5py.File(path, "w") as f:
        cplx = np.dtype([("real", "<f4"), ("imag", "<f4")])
        f.create_dataset("kus", shape=(12, 4, 64, 4096, 4096), dtype=cplx, chunks=(1, 1, 1, 64, 64))
    refused(["inspect-mask", path], ["cine_sax.mat", "A2A_MAX_SLICE_SAMPLES"], tmp_path)


def test_fastmri_declared_mask_size_is_refused_before_allocating(tmp_path):
    path = tmp_path / "knee.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", data=np.ones((1, 2, 8, 8), np.complex64))
        f.create_dataset("ismrmrd_header", data=np.bytes_("<ismrmrdHeader/>"))
        f.attrs["acquisition"] = "CORPD_FBK"
    # a mask that fits the shape rule (S, H, W) only if the k-space is declared as large: rewrite both, declared only
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", shape=(40000, 2, 4096, 4096), dtype=np.complex64, chunks=(1, 1, 64, 64))
        f.create_dataset("mask", shape=(40000, 4096, 4096), dtype=np.float32, chunks=(1, 64, 64))
        f.create_dataset("ismrmrd_header", data=np.bytes_("<ismrmrdHeader/>"))
        f.attrs["acquisition"] = "CORPD_FBK"
    refused(["inspect-mask", path, "--frames", "2"], ["knee.h5", "'mask'", "A2A_MAX_SLICE_SAMPLES"], tmp_path)


# ----------------------------------------------------------------------------------
# 5. paths
# ----------------------------------------------------------------------------------
def test_symlink_loop_as_input_and_as_output(world, tmp_path):
    loop = tmp_path / "loop.h5"
    loop.symlink_to(loop)
    refused(["inspect-mask", loop], ["loop.h5", "loop of links"], tmp_path)
    refused(["convert", world["scan"], loop], ["loop.h5", "loop of links"], tmp_path)


def _external_link(path: Path) -> Path:
    with h5py.File(path, "w") as f:
        f["kspace"] = h5py.ExternalLink("gone.h5", "/kspace")
        f.attrs["acquisition"] = "dynamic"
    return path


def _loop(path: Path) -> Path:
    path.symlink_to(path)
    return path


PATH_BAD = {
    "input is a directory": (["inspect-mask", "DIR"], ["is a directory"]),
    "training data is a link loop": (["train", "LOOP", "--out", "OUT", "--steps", "1"], ["loop.h5", "loop of links"]),
    "config is a link loop": (["train", "SCAN", "--out", "OUT", "--config", "LOOP"], ["loop.h5", "cannot be read"]),
    "--out under a file": (["reconstruct", "CKPT", "SCAN", "--out", "FILE/sub"], ["is a file"]),
    "kspace is an external link to a missing file": (["inspect-mask", "EXTERNAL"], ["external.h5"]),
}


@pytest.mark.parametrize("case", list(PATH_BAD))
def test_bad_paths_are_named(world, tmp_path, case):
    args, words = PATH_BAD[case]
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    names = {"DIR": tmp_path / "dir", "LOOP": _loop(tmp_path / "loop.h5"), "OUT": tmp_path / "run", "SCAN": world["scan"],
             "CKPT": world["ckpt"], "FILE/sub": tmp_path / "file" / "sub", "EXTERNAL": _external_link(tmp_path / "external.h5")}
    refused([names.get(a, a) for a in args], words, tmp_path)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_odd_file_names_in_a_real_process(world, tmp_path):
    """Through a real terminal encoding: a name that is not UTF-8 is shown, not a crash, and stored as its bytes."""
    import subprocess
    import sys

    odd = bytes(tmp_path) + b"/\xff\xfe.h5"
    env = dict(os.environ, OMP_NUM_THREADS="1", LC_ALL="C.UTF-8", PYTHONIOENCODING="utf-8")
    env.pop("A2A_DEBUG", None)
    run = subprocess.run([sys.executable, "-m", "a2a_cli", "inspect-mask", odd], capture_output=True, env=env)
    assert run.returncode == 2 and b"Traceback" not in run.stderr, run.stderr
    assert b"\\xff\\xfe.h5: file not found" in run.stderr, run.stderr
    Path(os.fsdecode(odd)).write_bytes(Path(world["scan"]).read_bytes())
    out = tmp_path / "converted.h5"
    run = subprocess.run([sys.executable, "-m", "a2a_cli", "convert", odd, out], capture_output=True, env=env)
    assert run.returncode == 0, run.stderr
    with h5py.File(out) as f:
        assert f.attrs["source_file"] == odd


def test_soft_link_cycle_inside_the_hdf5_file(tmp_path):
    path = tmp_path / "cycle.h5"
    with h5py.File(path, "w") as f:
        f["kspace"] = h5py.SoftLink("/other")
        f["other"] = h5py.SoftLink("/kspace")
        f.attrs["acquisition"] = "dynamic"
    refused(["inspect-mask", path], ["cycle.h5"], tmp_path)


def test_file_name_that_is_not_utf8_is_stored_losslessly(world, tmp_path):
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9.h5"))
    try:
        odd.write_bytes(Path(world["scan"]).read_bytes())
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    code, text = invoke(["convert", odd, tmp_path / "converted.h5"])
    assert code == 0, text
    with h5py.File(tmp_path / "converted.h5") as f:
        assert f.attrs["source_file"] == os.fsencode(odd)
    code, text = invoke(["reconstruct", world["ckpt"], odd, "--out", tmp_path / "r", "--device", "cpu"])
    assert code == 0, text
    with h5py.File(Path(os.fsdecode(bytes(tmp_path) + b"/r/caf\xe9_recon.h5"))) as f:
        assert f.attrs["source_file"] == os.fsencode(odd)


def test_png_and_preview_into_a_missing_folder_are_created(world, tmp_path):
    code, text = invoke(["inspect-mask", world["scan"], "--png", tmp_path / "new" / "deeper" / "mask.png"])
    assert code == 0 and (tmp_path / "new" / "deeper" / "mask.png").is_file(), text
    code, text = invoke(["reconstruct", world["ckpt"], world["scan"], "--out", tmp_path / "r", "--device", "cpu",
                         "--preview", tmp_path / "pics" / "p.png"])
    assert code == 0 and (tmp_path / "pics" / "p.png").is_file(), text


def test_every_output_file_into_a_missing_folder_is_created_and_a_failure_removes_it(world, tmp_path):
    """The positional outputs make their folders as --out, --png and --preview do; a command that fails leaves none."""
    code, text = invoke(["simulate", tmp_path / "s" / "sim.h5", "--slices", "1", "--frames", "4", "--height", "16",
                         "--width", "16"])
    assert code == 0 and (tmp_path / "s" / "sim.h5").is_file(), text
    code, text = invoke(["convert", world["scan"], tmp_path / "c" / "d" / "converted.h5"])
    assert code == 0 and (tmp_path / "c" / "d" / "converted.h5").is_file(), text
    code, text = invoke(["reconstruct", world["ckpt"], world["scan"], "--out", tmp_path / "r", "--device", "cpu"])
    assert code == 0, text
    code, text = invoke(["export", tmp_path / "r" / "scan_recon.h5", tmp_path / "e" / "f" / "scan.cfl"])
    assert code == 0 and (tmp_path / "e" / "f" / "scan.cfl").is_file() and (tmp_path / "e" / "f" / "scan.hdr").is_file(), text
    not_hdf5 = tmp_path / "notes.h5"
    not_hdf5.write_text("not HDF5")
    refused(["convert", not_hdf5, tmp_path / "gone" / "deeper" / "x.h5"], ["notes.h5"], tmp_path)
    refused(["export", not_hdf5, tmp_path / "gone" / "x.nii"], ["notes.h5"], tmp_path)
    assert not (tmp_path / "gone").exists()


def test_png_and_preview_under_a_file_are_refused_before_any_work(world, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    refused(["inspect-mask", world["scan"], "--png", blocker / "mask.png"], ["--png", "blocker is a file"], tmp_path)
    refused(["reconstruct", world["ckpt"], world["scan"], "--out", tmp_path / "r", "--device", "cpu",
             "--preview", blocker / "p.png"], ["--preview", "is a file"], tmp_path)
    assert not (tmp_path / "r").exists()


# ----------------------------------------------------------------------------------
# 6. promises
# ----------------------------------------------------------------------------------
def test_convert_never_replaces_its_own_mask(world, tmp_path):
    mask = tmp_path / "M"
    mask.write_bytes(b"the only copy of the mask")
    refused(["convert", world["scan"], mask, "--mask", mask, "--overwrite"], ["M", "replace an input"], tmp_path)
    link = tmp_path / "L.h5"
    os.link(mask, link)  # a hard link is the same file under another name
    refused(["convert", world["scan"], link, "--mask", mask, "--overwrite"], ["L.h5", "replace an input"], tmp_path)


def test_inspect_mask_png_never_replaces_the_mask_file(world, tmp_path):
    mask = tmp_path / "mask.mat"
    mask.write_bytes(b"mask")
    refused(["inspect-mask", world["scan"], "--mask", mask, "--png", mask, "--overwrite"], ["mask.mat", "input file"], tmp_path)


def test_reconstruct_outputs_never_replace_the_mask_or_each_other(world, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    mask = out / "scan_recon.h5"
    mask.write_bytes(b"mask")
    refused(["reconstruct", world["ckpt"], world["scan"], "--out", out, "--mask", mask, "--overwrite"], ["scan_recon.h5", "input"], tmp_path)
    refused(["reconstruct", world["ckpt"], world["scan"], "--out", tmp_path / "q", "--preview", tmp_path / "q" / "scan_recon.h5"],
            [".png or .gif"], tmp_path)


def test_train_never_writes_over_its_mask(world, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"mask")
    refused(["train", world["scan"], "--out", run, "--mask", run / "last.pt", "--overwrite"], ["last.pt", "is an input"], tmp_path)


@pytest.mark.parametrize("option,value,words", [("--preview-frame", "999", ["--preview-frame 999", "0..3"]),
                                                ("--preview-slice", "99", ["--preview-slice 99", "0..0"])])
def test_preview_slice_and_frame_are_checked_before_the_reconstruction_is_written(world, tmp_path, option, value, words):
    refused(["reconstruct", world["ckpt"], world["scan"], "--out", tmp_path / "r", "--device", "cpu",
             "--preview", tmp_path / "p.png", option, value], ["scan.h5", *words], tmp_path)
    assert not (tmp_path / "r").exists()


def test_values_near_the_float32_limit_never_reconstruct_to_nan_with_exit_0(world, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    refused(["reconstruct", world["ckpt"], world["huge_values"], "--out", out, "--device", "cpu"],
            ["huge_values.h5", "NaN or Inf", "rescale"], tmp_path)
    assert list(out.iterdir()) == []


def test_internal_error_is_one_line_with_the_traceback_saved(world, tmp_path, monkeypatch):
    import a2a_cli.reconstruction as rec

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(rec, "run_network", broken)
    monkeypatch.delenv("A2A_DEBUG", raising=False)
    traces = tmp_path / "traces"
    traces.mkdir()
    out = tmp_path / "r"
    code, text = invoke(["reconstruct", world["ckpt"], world["scan"], "--out", out, "--device", "cpu"],
                        env={"A2A_DEBUG": None, "A2A_TRACEBACK_DIR": str(traces)})
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert code == 1, text
    assert lines[-1].startswith("error: internal error (ZeroDivisionError: a bug); full traceback saved to "), text
    saved = list(traces.iterdir())
    assert len(saved) == 1 and str(saved[0]) in text and "ZeroDivisionError: a bug" in saved[0].read_text()
    assert "Traceback" not in text
    assert not out.exists()  # nothing half-written: no output, no temporary file, not even the folder it made


def test_internal_error_is_not_hidden_from_the_tests(world, tmp_path, monkeypatch):
    import a2a_cli.reconstruction as rec

    monkeypatch.setattr(rec, "run_network", lambda *a, **k: 1 / 0)
    result = runner.invoke(app, ["reconstruct", str(world["ckpt"]), str(world["scan"]), "--out", str(tmp_path / "r"),
                                 "--device", "cpu"], env={"A2A_DEBUG": "1"})
    assert isinstance(result.exception, ZeroDivisionError)
    assert not (tmp_path / "r").exists()


def test_good_inputs_still_work(world, tmp_path):
    """The checks refuse only what is wrong: the same commands with sound values succeed."""
    toml = tmp_path / "run.toml"
    toml.write_text('[train]\nsteps = 1\nmodel = "cnn2dt"\nmodel_options = {channels = 4, depth = 2}\nlr = 1e-3\nseed = 4294967295\n')
    code, text = invoke(["train", world["scan"], "--out", tmp_path / "run", "--config", toml, "--device", "cpu", "--split-size", "2"])
    assert code == 0, text
    assert json.loads((tmp_path / "run" / "config.json").read_text())["seed"] == cfgmod.MAX_SEED
    info = inspect_file(world["scan"])
    assert (info.frames, info.height, info.width) == (T, H, W)


def test_inspect_mask_png_must_be_named_png(world, tmp_path):
    refused(["inspect-mask", world["scan"], "--png", tmp_path / "mask.txt"], ["--png must end in .png"], tmp_path)
    assert not (tmp_path / "mask.txt").exists()


# ----------------------------------------------------------------------------------
# 7. found by walking every command with hostile inputs
# ----------------------------------------------------------------------------------
def _deny_writes_in(monkeypatch, folder: Path) -> None:
    """Make ``folder`` look read-only to the permission checks (the tests may run as root, who may write anywhere)."""
    real = os.access

    def access(path, mode, *args, **kwargs):
        if Path(path).resolve() == folder.resolve() and mode & os.W_OK:
            return False
        return real(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)


def test_a_folder_that_cannot_be_written_is_named_before_any_work(world, tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    _deny_writes_in(monkeypatch, locked)
    refused(["train", world["scan"], "--out", locked / "run", "--device", "cpu", "--steps", "1"],
            ["--out", "cannot write in the folder", "locked"], tmp_path)
    refused(["train", world["scan"], "--out", locked, "--device", "cpu", "--steps", "1", "--overwrite"],
            ["--out", "cannot write in the folder", "locked"], tmp_path)
    recon = tmp_path / "recon"
    code, text = invoke(["reconstruct", world["ckpt"], world["scan"], "--out", recon, "--device", "cpu", "--method", "network"])
    assert code == 0, text
    for name, extra in (("x.nii.gz", []), ("x.gif", []), ("dcm", ["--format", "dicom"])):
        refused(["export", recon / "scan_recon.h5", locked / name, *extra], ["cannot write in the folder", "locked"], tmp_path)


@pytest.mark.parametrize("key,value,words", [
    ("frame_time", 700.0, ["frame_time", "from 1e-06 to 600", "700"]),
    ("pixel_spacing", 1e-300, ["pixel_spacing", "mm (row, column) from 0.0001 to 10000"]),
    ("pixel_spacing", [1.0, 1e39], ["pixel_spacing"]),
    ("slice_thickness", 0.0, ["slice_thickness"]),
])
def test_implausible_geometry_is_refused_before_reconstructing(world, tmp_path, key, value, words):
    """Values no viewer's header can hold (a unit mistake) are named; nothing is reconstructed or written."""
    scan = tmp_path / "scan.h5"
    scan.write_bytes(world["scan"].read_bytes())
    with h5py.File(scan, "a") as f:
        f.attrs[key] = value
    refused(["reconstruct", world["ckpt"], scan, "--out", tmp_path / "r", "--device", "cpu"], ["scan.h5", *words], tmp_path)


def test_a_file_that_names_the_other_mode_is_refused_by_training(world, tmp_path):
    """``--mode`` or a resumed run cannot train a file whose acquisition attribute says otherwise (reconstruction
    would refuse it), but a file with no attribute is read in the mode asked for, by both commands."""
    run = tmp_path / "run"
    code, text = invoke(["train", world["scan"], "--out", run, "--device", "cpu", "--steps", "1", "--no-tv",
                         "--model", "cnn2dt", "--model-option", "channels=4", "--model-option", "depth=2"])
    assert code == 0, text
    seq = tmp_path / "seq.h5"
    seq.write_bytes(world["scan"].read_bytes())
    with h5py.File(seq, "a") as f:
        f.attrs["acquisition"] = "sequential"
    for args in (["--out", run, "--resume", "--steps", "2"], ["--out", tmp_path / "run2", "--mode", "dynamic", "--steps", "1"]):
        before = files_under(tmp_path)
        code, text = invoke(["train", seq, *args, "--device", "cpu"])
        assert code == 2 and "Traceback" not in text, text
        last = text.strip().splitlines()[-1]
        assert last.startswith("error: ") and "seq.h5: the file's acquisition is 'sequential', not 'dynamic'" in last, text
        assert files_under(tmp_path) == before
    bare = tmp_path / "bare.h5"
    bare.write_bytes(world["scan"].read_bytes())
    with h5py.File(bare, "a") as f:
        del f.attrs["acquisition"]
    run3 = tmp_path / "run3"
    code, text = invoke(["train", bare, "--out", run3, "--mode", "sequential", "--steps", "1", "--no-tv", "--device", "cpu",
                         "--model-option", "channels=4", "--model-option", "iterations=1"])
    assert code == 0, text
    code, text = invoke(["reconstruct", run3 / "best.pt", bare, "--out", tmp_path / "r3", "--device", "cpu"])
    assert code == 0, text
    with h5py.File(tmp_path / "r3" / "bare_recon.h5") as f:
        assert f.attrs["mode"] == "sequential" and f["reconstruction"].shape == (1, H, W)


def test_ctrl_c_while_the_command_line_loads_is_one_line_and_exit_130(monkeypatch, capsys):
    """The console script catches a stop that comes while torch and the command line are imported."""
    import sys

    from a2a_cli import launch

    class StopWhileImporting:
        def find_spec(self, name, path=None, target=None):
            if name == "a2a_cli.cli":
                raise KeyboardInterrupt
            return None

    monkeypatch.delitem(sys.modules, "a2a_cli.cli", raising=False)
    monkeypatch.setattr(sys, "meta_path", [StopWhileImporting(), *sys.meta_path])
    with pytest.raises(SystemExit) as stop:
        launch.main()
    assert stop.value.code == 130
    assert capsys.readouterr().err == "error: stopped by SIGINT while starting; nothing was written\n"


def test_the_public_api_loads_on_first_use():
    """``import a2a_cli`` is light; its public names still resolve (and are listed)."""
    import a2a_cli

    assert a2a_cli.UnrolledNet.__name__ == "UnrolledNet" and "SSDULoss" in dir(a2a_cli)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        a2a_cli.Nope  # noqa: B018


def test_messages_say_which_file_and_what_is_wrong(world, tmp_path):
    """Two inputs of one name are both named; a truncated reconstruction is called truncated; frames past the end
    are said to be past the end; a 4D file read as fastMRI says what made it so."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = tmp_path / "a" / "scan.h5", tmp_path / "b" / "scan.h5"
    a.write_bytes(world["scan"].read_bytes())
    b.write_bytes(world["scan"].read_bytes())
    refused(["reconstruct", world["ckpt"], a, b, "--out", tmp_path / "r", "--device", "cpu"],
            [f"{b}: has the same file name as {a}"], tmp_path)
    code, text = invoke(["reconstruct", world["ckpt"], a, "--out", tmp_path / "r", "--device", "cpu", "--method", "network"])
    assert code == 0, text
    recon = tmp_path / "r" / "scan_recon.h5"
    refused(["export", recon, tmp_path / "x.gif", "--frames", "0:99"], ["--frames 0:99 reaches past the frames of 0..3"], tmp_path)
    cut = tmp_path / "cut_recon.h5"
    cut.write_bytes(recon.read_bytes()[:3000])
    refused(["export", cut, tmp_path / "x.nii"], ["cut_recon.h5", "truncated"], tmp_path)
    odd = tmp_path / "odd.h5"
    with h5py.File(odd, "w") as f:
        f["kspace"] = np.ones((2, T, H, W), np.complex64)
        f["mask"] = lines_mask()
        f.attrs["acquisition"] = "cine"
    refused(["inspect-mask", odd], ["odd.h5", "acquisition = 'cine' (a protocol name)", "'dynamic' or 'sequential'"], tmp_path)
