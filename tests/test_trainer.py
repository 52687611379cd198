"""The training package's contracts: run-directory names, stop requests, the time budget,
the run's own generator, and validation without the reflection ensemble."""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch

from a2a_cli.data import KspaceDataset
from a2a_cli.models import build_model
from a2a_cli.models.base import ReconstructionNet
from a2a_cli.physics import DynamicMRI
from a2a_cli.simulate import write_case
from a2a_cli.splitting import Artifact2ArtifactLoss
from a2a_cli.training import RunDir, StopRequest, TrainConfig, catching_stop_signals, train, validate
from a2a_cli.training import budget as budget_module
from a2a_cli.training import trainer as trainer_module
from a2a_cli.training.budget import TimeBudget

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"channels": 4, "depth": 2}


@pytest.fixture(scope="module")
def scan(tmp_path_factory) -> Path:
    return write_case(tmp_path_factory.mktemp("data") / "scan.h5", slices=2, frames=4, height=8, width=8,
                      centre_lines=2, acceleration=2, seed=1)


def config(scan: Path, out: Path, **changes) -> TrainConfig:
    values = dict(train=[str(scan)], out=str(out), model="cnn2dt", model_options=dict(TINY), device="cpu",
                  loss="a2a", patience=None, val_every=1000, save_every=1e9)
    return TrainConfig(**(values | changes))


# -- the run directory ---------------------------------------------------------------------------------


def test_run_directory_names_are_the_documented_ones(tmp_path):
    run = RunDir(tmp_path / "run")
    assert [p.name for p in run.outputs()] == ["last.pt", "best.pt", "config.json", "metrics.jsonl", "loss.png"]
    assert (run.last, run.best, run.config, run.metrics, run.plot) == tuple(run.outputs())
    assert not run.holds_run() and run.saved_config() is None
    assert run.prepare() is True and run.path.is_dir()
    (run.path / ".last.pt.partial-0badc0de").write_bytes(b"cut")  # a write killed half-way
    (run.path / "notes.txt").write_text("mine")
    run.write_config({"seed": 3})
    assert run.prepare() is False
    assert sorted(p.name for p in run.path.iterdir()) == ["config.json", "notes.txt"]
    assert json.loads(run.saved_config().read_text()) == {"seed": 3}
    for path in run.outputs():
        path.write_text("x")
    run.clear()  # --overwrite: the run's files go, the user's stay
    assert sorted(p.name for p in run.path.iterdir()) == ["notes.txt"]
    run.discard(remove_dir=True)  # not empty: the directory stays
    assert run.path.is_dir()


def test_training_writes_exactly_the_run_files(tmp_path, scan):
    summary = train(config(scan, tmp_path / "run", steps=2), log=lambda m: None)
    run = RunDir(tmp_path / "run")
    assert {p.name for p in run.path.iterdir()} == set(RunDir.FILES)
    assert summary["best"] == str(run.best) and summary["last"] == str(run.last)


# -- stop requests --------------------------------------------------------------------------------------


def test_stop_signals_are_recorded_and_the_old_handlers_come_back():
    stop, seen = StopRequest(), []
    before = signal.getsignal(signal.SIGTERM)
    with catching_stop_signals(stop, then=seen.append):
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
    assert stop.signum == signal.SIGTERM and seen == [signal.SIGTERM, signal.SIGINT]
    assert signal.getsignal(signal.SIGTERM) is before
    stop.clear()
    assert not stop


def test_a_pending_stop_interrupts_training_before_its_first_step(tmp_path, scan):
    from a2a_cli.errors import Stopped

    stop = StopRequest()
    stop.request(signal.SIGINT)
    with pytest.raises(Stopped) as info:
        train(config(scan, tmp_path / "run", steps=3), log=lambda m: None, stop=stop)
    assert info.value.signum == signal.SIGINT
    assert not (tmp_path / "run").exists()  # nothing was trained: nothing is left


# -- the time budget -------------------------------------------------------------------------------------


def test_time_budget_keeps_the_measured_validation_in_reserve():
    now = [100.0]
    budget = TimeBudget(30.0, clock=lambda: now[0])
    now[0] = 120.0
    assert budget.elapsed() == 20.0 and not budget.up()
    with budget.validation():
        now[0] = 125.0
    assert budget.reserve == 5.0 and budget.up()  # 25 s spent + 5 s for the final validation
    with budget.validation():
        now[0] = 126.0
    assert budget.reserve == 1.0 and not budget.up()  # the latest measurement counts


@pytest.fixture
def fake_clock(monkeypatch):
    """A clock that only moves when told: each training step takes 1 s, each validated slice 5 s."""
    now = [0.0]
    monkeypatch.setattr(budget_module, "_now", lambda: now[0])
    real_validate, real_step = trainer_module.validate, trainer_module.Trainer.step

    def slow_validate(loss, net, dataset, *args, **kwargs):
        now[0] += 5.0 * len(dataset)
        return real_validate(loss, net, dataset, *args, **kwargs)

    def slow_step(self, batch):
        now[0] += 1.0
        return real_step(self, batch)

    monkeypatch.setattr(trainer_module, "validate", slow_validate)
    monkeypatch.setattr(trainer_module.Trainer, "step", slow_step)
    return now


def test_time_limit_holds_back_the_final_validation(tmp_path, scan, fake_clock):
    """One slice is timed first (5 s: the two slices' validation is estimated at 10 s); the run stops
    after step 5 (10 s spent + 10 s held back reach the 20 s limit) and its final validation ends
    at 20 s. Without the reserve it would train 15 steps and end at 30 s."""
    summary = train(config(scan, tmp_path / "run", steps=100, time_limit=20.0), log=lambda m: None)
    assert summary["stopped_by"] == "time limit"
    assert summary["steps"] == 5 and summary["seconds"] == 20.0
    records = [json.loads(line) for line in RunDir(tmp_path / "run").metrics.read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5]
    assert summary["best_val_loss"] is not None  # the final weights were validated


def test_time_limit_reserves_the_measured_validation(tmp_path, scan, fake_clock):
    """Validations every 3 steps take 10 s: after step 6 (31 s spent, 10 s held back) another
    validation could pass the 40 s limit, so the run stops there; without the reserve it would
    validate again at step 9 and end at 44 s."""
    summary = train(config(scan, tmp_path / "run", steps=100, val_every=3, time_limit=40.0), log=lambda m: None)
    assert summary["stopped_by"] == "time limit"
    assert summary["steps"] == 6 and summary["seconds"] == 31.0


# -- randomness and validation --------------------------------------------------------------------------


def test_every_split_is_drawn_from_the_runs_own_generator(tmp_path, scan, monkeypatch):
    generators = []
    real_split = Artifact2ArtifactLoss.split

    def spy(self, y, physics, generator=None):
        generators.append(generator)
        return real_split(self, y, physics, generator=generator)

    monkeypatch.setattr(Artifact2ArtifactLoss, "split", spy)
    train(config(scan, tmp_path / "a", steps=3), log=lambda m: None)
    assert len(generators) == 3 and all(isinstance(g, torch.Generator) for g in generators)
    assert len({id(g) for g in generators}) == 1
    first = torch.load(RunDir(tmp_path / "a").last, weights_only=True)["state_dict"]
    # the same seed gives the same run whatever the global RNG did in between
    torch.manual_seed(1234)
    torch.rand(1000)
    train(config(scan, tmp_path / "b", steps=3), log=lambda m: None)
    second = torch.load(RunDir(tmp_path / "b").last, weights_only=True)["state_dict"]
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_validation_runs_without_the_reflection_ensemble(scan, monkeypatch):
    passes = []
    real_once = ReconstructionNet._forward_once

    def counting(self, y, physics, scale=None):
        passes.append(1)
        return real_once(self, y, physics, scale)

    monkeypatch.setattr(ReconstructionNet, "_forward_once", counting)
    net = build_model("cnn2dt", flip_ensemble=True, **TINY)
    dataset = KspaceDataset([str(scan)])
    loss = Artifact2ArtifactLoss(split_size=2)
    value = validate(loss, net, dataset, "dynamic", torch.device("cpu"))
    assert len(passes) == len(dataset) * 2  # one pass per input chunk (T=4: two chunks), not eight
    assert net.flip_ensemble is True  # the ensemble is back for reconstruction
    passes.clear()
    with torch.no_grad():
        item = dataset[0]
        net.eval()(item["kspace"][None], DynamicMRI(mask=item["mask"][None]))
    assert len(passes) == 8
    assert value > 0
