"""Distributed training: 2 CPU processes (gloo) under torchrun, through the CLI and the library."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from a2a_cli import cli
from a2a_cli.data import ShapeBatchSampler
from a2a_cli.simulate import write_case
from a2a_cli.training import RunDir

HERE = Path(__file__).parent
RUN_FILES = set(RunDir.FILES)  # names pinned in tests/test_trainer.py
TINY = ["--model-option", "channels=8", "--model-option", "depth=3", "--model-option", "iterations=1"]


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    return env


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> list[str]:
    """5 slices of 12 frames, 32x32, in two files: 2 ranks get 3 batches each (one padded)."""
    d = tmp_path_factory.mktemp("ddp_data")
    return [str(write_case(d / "a.h5", slices=3, frames=12, height=32, width=32, seed=1)),
            str(write_case(d / "b.h5", slices=2, frames=12, height=32, width=32, seed=2))]


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_torchrun_two_ranks_train_resume_and_agree(tmp_path, data):
    """``torchrun -m a2a_cli``-style workers (tests/_ddp_worker.py runs the CLI in each rank):
    weights equal on both ranks and in the checkpoint, sharded data, different chunk draws,
    and a 4 + 2 step resumed run ends with the very weights of a straight 6-step run."""
    result, run, straight = tmp_path / "result.json", tmp_path / "run", tmp_path / "straight"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone",
           str(HERE / "_ddp_worker.py"), str(result), str(run), str(straight), *data]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(result.read_text())
    assert report["world"] == 2

    # one set of run files, written by rank 0 only (no per-rank copies, no leftovers)
    assert {p.name for p in run.iterdir()} == RUN_FILES
    assert {p.name for p in straight.iterdir()} == RUN_FILES

    for phase in ("fresh", "resumed", "straight"):
        ranks = report[phase]["ranks"]
        assert ranks[0]["digest"] == ranks[1]["digest"], phase  # DDP kept the replicas equal
        assert ranks[0]["draws"] != ranks[1]["draws"], phase  # each rank draws its own chunks
    assert report["checkpoint_digest"] == report["resumed"]["ranks"][0]["digest"]
    assert report["fresh"]["ranks"][0]["digest"] != report["resumed"]["ranks"][0]["digest"]
    # exact resume: RNG states per rank, optimiser and sampler position restored
    assert report["resumed"]["ranks"][0]["digest"] == report["straight"]["ranks"][0]["digest"]

    # epoch 0 sharding: 5 slices, 2 ranks, 3 batches each, every slice seen, one padded repeat
    epoch0 = [r["batches"][:3] for r in report["fresh"]["ranks"]]
    assert all(len(b) == 3 for b in epoch0)
    seen = [i for rank in epoch0 for batch in rank for i in batch]
    assert sorted(set(seen)) == list(range(5)) and len(seen) == 6
    assert not set(i for b in epoch0[0] for i in b) & set(i for b in epoch0[1][:2] for i in b)

    records = _metrics(run)
    assert [r["step"] for r in records] == list(range(1, 7))
    assert all(math.isfinite(r["loss"]) for r in records)
    assert all(math.isfinite(r["val_loss"]) for r in records if "val_loss" in r)
    assert report["straight"]["summary"]["steps"] == 6


@pytest.mark.slow
def test_nproc_option_relaunches_under_torchrun(tmp_path, data):
    """``a2a train --nproc 2`` re-runs itself as ``torchrun -m a2a_cli train``; with DataLoader workers."""
    run = tmp_path / "run"
    a2a = Path(sys.executable).parent / "a2a"
    # a small file of its own (2 slices of 8 frames): the weight search under torchrun costs most of this run's time
    small = str(write_case(tmp_path / "small.h5", slices=2, frames=8, height=32, width=32, seed=3))
    cmd = [str(a2a), "train", small, "--out", str(run), "--steps", "3", "--val-every", "3", *TINY,
           "--split-size", "4", "--device", "cpu", "--nproc", "2", "--workers", "1", "--json"]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert {p.name for p in run.iterdir()} == RUN_FILES
    summary = json.loads(proc.stdout)  # printed once (rank 0), not once per rank
    assert summary["steps"] == 3 and math.isfinite(summary["last_loss"])
    assert [r["step"] for r in _metrics(run)] == [1, 2, 3]
    saved = json.loads((run / "config.json").read_text())
    assert saved["workers"] == 1 and "nproc" not in saved
    state = torch.load(run / "last.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in state["state_dict"])  # the bare network, not the DDP wrapper
    # the compressed-sensing weights were chosen (every rank searches the same way; rank 0 saves them)
    tv = state["extra"]["tv_weights"]
    assert len(tv) == 5 and all(math.isfinite(v) and v >= 0 for v in tv) and tv[0] > 0


def test_relaunch_command_and_exit_code(monkeypatch):
    """The re-launch drops --nproc, uses the standard launcher, and returns the launcher's exit status."""
    seen = {}

    class FakePopen:
        def __init__(self, cmd):
            seen["cmd"] = cmd

        def wait(self):
            return 3

        def send_signal(self, signum):  # pragma: no cover - not reached
            pass

    monkeypatch.setattr(subprocess, "Popen", FakePopen)
    monkeypatch.setattr(sys, "argv", ["a2a", "train", "x.h5", "--nproc", "4", "--out", "r", "--nproc=4"])
    assert cli._relaunch_distributed(4) == 3
    assert seen["cmd"][1:] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=4",
                               "-m", "a2a_cli", "train", "x.h5", "--out", "r"]


def test_nproc_refused_under_torchrun(tmp_path, monkeypatch, data):
    from typer.testing import CliRunner

    monkeypatch.setenv("RANK", "0")
    res = CliRunner().invoke(cli.app, ["train", data[0], "--out", str(tmp_path / "r"), "--nproc", "2"])
    assert res.exit_code == 2 and "torchrun" in res.output


@pytest.mark.parametrize("items,replicas,batch", [(5, 2, 1), (15, 4, 2), (1, 3, 1), (7, 3, 3)])
def test_padded_sampler_gives_every_rank_the_same_count(items, replicas, batch):
    shapes = [(4, 8, 8)] * items
    per_rank = [list(ShapeBatchSampler(shapes, batch, seed=1, num_replicas=replicas, rank=r, pad=True)) for r in range(replicas)]
    counts = {len(b) for b in per_rank} | {len(ShapeBatchSampler(shapes, batch, num_replicas=replicas, rank=r, pad=True)) for r in range(replicas)}
    assert len(counts) == 1 and counts.pop() >= 1
    flat = [i for rank in per_rank for b in rank for i in b]
    assert set(flat) == set(range(items))  # every item once per epoch, plus at most replicas - 1 repeated batches
    n_batches = sum(len(r) for r in per_rank)
    assert n_batches - math.ceil(items / batch) < replicas
