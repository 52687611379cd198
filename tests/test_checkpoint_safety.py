"""Checkpoints never run code when loaded, and a checkpoint that does not fit is refused clearly."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from a2a_cli.checkpoints import FORMAT, FORMAT_VERSION, load_checkpoint, save_checkpoint, sha256_of
from a2a_cli.cli import app
from a2a_cli.errors import A2AError, InputError
from a2a_cli.models import build_model
from a2a_cli.simulate import write_case

TINY = {"channels": 4, "depth": 2}


class RunsShell:
    """Unpickling this calls ``os.system``: the classic hostile checkpoint."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


class RunsPython:
    """Unpickling this calls ``exec`` on Python source that writes a file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def tiny_net(**options) -> torch.nn.Module:
    return build_model("cnn2dt", **(TINY | options))


def payload(net: torch.nn.Module, **changes) -> dict:
    """The dictionary :func:`save_checkpoint` writes, with some entries changed."""
    p = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "a2a_version": "0.1.0",
        "model": net.name,
        "model_config": json.dumps(net.config, sort_keys=True),
        "mode": "dynamic",
        "state_dict": {k: v.detach().clone() for k, v in net.state_dict().items()},
    }
    p.update(changes)
    return p


@pytest.fixture(scope="module")
def scan(tmp_path_factory) -> Path:
    return write_case(tmp_path_factory.mktemp("data") / "scan.h5", slices=1, frames=4, height=8, width=8,
                      centre_lines=2, acceleration=2, seed=3)


def run_cli(args: list[str]):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result, result.stdout + result.stderr


def assert_clean_refusal(result, text: str, *words: str) -> None:
    assert result.exit_code == 2, text
    assert "Traceback" not in text
    for word in words:
        assert word in text, (word, text)


@pytest.mark.parametrize("evil", [RunsShell, RunsPython])
def test_pickled_code_is_refused_and_never_runs(tmp_path, scan, evil):
    marker = tmp_path / "MARKER"
    ckpt = tmp_path / "evil.pt"
    torch.save(payload(tiny_net(), extra={"note": evil(marker)}), ckpt)

    # the file really is hostile: the unsafe loader runs its code
    torch.load(ckpt, weights_only=False)
    assert marker.exists()
    marker.unlink()

    with pytest.raises(InputError) as info:
        load_checkpoint(ckpt)
    assert "refused" in str(info.value) and "pickled" in str(info.value) and ckpt.name in str(info.value)
    assert not marker.exists()

    out = tmp_path / "out"
    result, text = run_cli(["reconstruct", ckpt, scan, "--out", out, "--device", "cpu"])
    assert_clean_refusal(result, text, "evil.pt", "refused", "pickled")
    assert not marker.exists()
    assert not list(out.glob("*")) if out.exists() else True

    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(ckpt.read_bytes())
    result, text = run_cli(["train", scan, "--out", run, "--resume", "--model", "cnn2dt", "--device", "cpu", "--steps", "3"])
    assert_clean_refusal(result, text, "last.pt", "refused", "pickled")
    assert not marker.exists()
    assert sorted(p.name for p in run.iterdir()) == ["last.pt"]  # nothing was written next to it


def test_whole_file_pickle_is_refused(tmp_path):
    """A checkpoint whose top-level object is hostile (not a dict) is refused too."""
    marker = tmp_path / "MARKER"
    ckpt = tmp_path / "evil.pt"
    torch.save(RunsShell(marker), ckpt)
    with pytest.raises(InputError, match="refused"):
        load_checkpoint(ckpt)
    assert not marker.exists()


def test_good_checkpoint_round_trip(tmp_path):
    net = tiny_net()
    path = tmp_path / "good.pt"
    save_checkpoint(path, net, "dynamic", training=None)
    ckpt = load_checkpoint(path)
    assert ckpt.model_name == "cnn2dt" and ckpt.mode == "dynamic" and ckpt.sha256 == sha256_of(path)
    rebuilt = ckpt.build_model()
    for key, value in net.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value)
    assert [p.name for p in tmp_path.iterdir()] == ["good.pt"]  # no temporary file left


def _bad(net: torch.nn.Module) -> dict:
    """name -> (payload, words the message must hold)."""
    wide = tiny_net(channels=8)
    sd = payload(net)["state_dict"]
    first = next(iter(sd))
    nan_sd = {k: v.clone() for k, v in sd.items()}
    nan_sd[first].view(-1)[0] = float("nan")
    return {
        "newer version": (payload(net, format_version=FORMAT_VERSION + 1), ["format version 2", "newer"]),
        "version not a number": (payload(net, format_version="1"), ["format version", "not valid"]),
        "version zero": (payload(net, format_version=0), ["format version 0", "not valid"]),
        "not a2a": (payload(net, format="something-else"), ["not an a2a checkpoint"]),
        "unknown model": (payload(net, model="resnet"), ["unknown network 'resnet'", "cnn2dt"]),
        "config too wide": (payload(net, model_config=json.dumps(wide.config)), ["do not fit", "shape mismatch", "in the file but"]),
        "weights of another net": (payload(net, model="unet"), ["cannot rebuild network 'unet'", "depth"]),
        "unknown option": (payload(net, model_config=json.dumps(net.config | {"colour": 3})), ["cannot rebuild", "colour"]),
        "bad option value": (payload(net, model_config=json.dumps(net.config | {"depth": "deep"})), ["cannot rebuild"]),
        "config not json": (payload(net, model_config="{channels: 4"), ["not valid JSON"]),
        "bad mode": (payload(net, mode="static"), ["mode 'static'"]),
        "missing weight": (payload(net, state_dict={k: v for k, v in sd.items() if k != first}), ["missing", first]),
        "extra weight": (payload(net, state_dict=sd | {"ghost.weight": torch.zeros(2)}), ["does not have", "ghost.weight"]),
        "NaN weight": (payload(net, state_dict=nan_sd), ["NaN or Inf", first]),
        "no state dict": (payload(net, state_dict=[1, 2]), ["'state_dict'"]),
        "training step negative": (payload(net, training={"optimizer": {"state": {}, "param_groups": []}, "step": -1,
                                                          "epoch": 0, "batch_in_epoch": 0}), ["'step'", "-1"]),
        "training no optimizer": (payload(net, training={"step": 1, "epoch": 0, "batch_in_epoch": 0}), ["optimizer"]),
        "training bad rng": (payload(net, training={"optimizer": {"state": {}, "param_groups": []}, "step": 1, "epoch": 0,
                                                    "batch_in_epoch": 0, "rng": [torch.zeros(3, dtype=torch.uint8)]}), ["random state"]),
    }


@pytest.mark.parametrize("case", list(_bad(tiny_net())))
def test_mismatched_checkpoint_is_refused_with_the_reason(tmp_path, case):
    content, words = _bad(tiny_net())[case]
    path = tmp_path / "bad.pt"
    torch.save(content, path)
    with pytest.raises(InputError) as info:
        load_checkpoint(path).build_model()
    message = str(info.value)
    assert "bad.pt" in message
    for word in words:
        assert word in message, (word, message)


@pytest.mark.parametrize("case", ["newer version", "unknown model", "config too wide"])
def test_mismatched_checkpoint_through_the_cli(tmp_path, scan, case):
    content, words = _bad(tiny_net())[case]
    path = tmp_path / "bad.pt"
    torch.save(content, path)
    result, text = run_cli(["reconstruct", path, scan, "--out", tmp_path / "out", "--device", "cpu"])
    assert_clean_refusal(result, text, "bad.pt", *words)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04" + b"\x00" * 40])
def test_damaged_files_are_refused(tmp_path, content):
    path = tmp_path / "damaged.pt"
    path.write_bytes(content)
    with pytest.raises(InputError, match=r"damaged.pt: (not a readable checkpoint|refused: not a plain checkpoint)"):
        load_checkpoint(path)


def test_plain_pickle_with_code_is_refused(tmp_path):
    """A pickle written by ``pickle.dump`` (not ``torch.save``) is refused as well."""
    import pickle

    marker = tmp_path / "MARKER"
    path = tmp_path / "plain.pt"
    with open(path, "wb") as f:
        pickle.dump({"format": FORMAT, "x": RunsShell(marker)}, f)
    with pytest.raises(InputError, match="refused"):
        load_checkpoint(path)
    assert not marker.exists()


def test_truncated_checkpoint_is_refused(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, tiny_net(), "dynamic")
    data = path.read_bytes()
    for cut in (len(data) // 3, len(data) - 100):
        path.write_bytes(data[:cut])
        with pytest.raises(InputError, match="last.pt"):
            load_checkpoint(path)


def test_missing_checkpoint_and_directory(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_checkpoint(tmp_path / "nothing.pt")
    with pytest.raises(InputError, match="not a file"):
        load_checkpoint(tmp_path)


def test_nan_weights_are_never_saved_over_a_good_checkpoint(tmp_path):
    net = tiny_net()
    path = tmp_path / "last.pt"
    save_checkpoint(path, net, "dynamic")
    before = sha256_of(path)
    with torch.no_grad():
        next(iter(net.parameters())).view(-1)[0] = float("inf")
    with pytest.raises(A2AError, match="NaN or Inf"):
        save_checkpoint(path, net, "dynamic")
    assert sha256_of(path) == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_hostile_config_is_checked_without_allocating(tmp_path):
    """A config asking for a gigantic network is refused from its shapes, before any allocation."""
    net = tiny_net()
    path = tmp_path / "huge.pt"
    torch.save(payload(net, model_config=json.dumps(net.config | {"channels": 4_000_000})), path)
    with pytest.raises(InputError, match="shape mismatch"):
        load_checkpoint(path)
