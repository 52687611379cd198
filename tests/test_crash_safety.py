"""Crash safety: killed, interrupted or diverging runs never lose the last good checkpoint.

The subprocess tests run the real command line (``python -m a2a_cli``) and kill it at
different moments; each costs an interpreter start with PyTorch, so there are few.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import typer
import torch

from cli_runner import invoke
from a2a_cli.checkpoints import load_checkpoint, save_checkpoint, sha256_of
from a2a_cli.data import write_a2a_file
from a2a_cli.errors import InputError
from a2a_cli.models import build_model
from a2a_cli.simulate import write_case
from a2a_cli.training import RunDir

# one thread: the machine's cores are shared with the rest of the suite
ENV = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COLUMNS": "200"}
TRAIN_OPTIONS = [
    "--model", "cnn2dt", "--model-option", "channels=4", "--model-option", "depth=2",
    "--val-every", "1000", "--patience", "0", "--device", "cpu", "--save-every", "0", "--grad-clip", "1.0",
]
RUN_FILES = set(RunDir.FILES)  # names pinned in tests/test_trainer.py


pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in conftest.py


@pytest.fixture(scope="module")
def scan(tmp_path_factory) -> Path:
    return write_case(tmp_path_factory.mktemp("data") / "scan.h5", slices=2, frames=4, height=8, width=8,
                      centre_lines=2, acceleration=2, seed=1)


def start_train(scan: Path, run: Path, steps: int, *extra: str) -> tuple[subprocess.Popen, Path]:
    log = run.parent / f"{run.name}-{time.monotonic_ns()}.log"
    cmd = [sys.executable, "-m", "a2a_cli", "train", str(scan), "--out", str(run), "--steps", str(steps), *TRAIN_OPTIONS, *extra]
    with open(log, "w") as f:  # a file, not a pipe: a full pipe would stall the child
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=ENV)
    return proc, log


def step_of(path: Path) -> int:
    """The step stored in a checkpoint; loading must always succeed (writes are atomic)."""
    ckpt = load_checkpoint(path)
    assert ckpt.training is not None
    return int(ckpt.training["step"])


def wait_for_step(proc: subprocess.Popen, log: Path, last: Path, above: int, timeout: float = 180) -> int:
    """Poll ``last`` until it holds a step greater than ``above``; returns that step."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"training exited ({proc.returncode}) before step {above + 1}:\n{log.read_text()}")
        if last.exists():
            step = step_of(last)
            if step > above:
                return step
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"no checkpoint past step {above} within {timeout} s:\n{log.read_text()}")


def visible(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir() if not p.name.startswith(".")}


def metrics_steps(run: Path) -> list[int]:
    import json

    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]



# what stops each process of one run, and how many steps after a fresh checkpoint it comes;
# a single chain (rather than one run per signal) keeps the interpreter start-ups few
INTERRUPTIONS = [(signal.SIGKILL, 0), (signal.SIGINT, 1), (signal.SIGKILL, 3), (signal.SIGTERM, 2), (signal.SIGKILL, 6)]


@pytest.mark.slow
def test_killed_or_interrupted_at_any_moment_keeps_a_checkpoint_and_resumes(tmp_path, scan):
    steps = 80
    run = tmp_path / "run"
    last = run / "last.pt"
    previous = 0
    for i, (sig, extra_steps) in enumerate(INTERRUPTIONS):
        proc, log = start_train(scan, run, steps, *(["--resume"] if i else []))
        seen = wait_for_step(proc, log, last, previous)
        while seen < previous + 1 + extra_steps:
            seen = wait_for_step(proc, log, last, seen)
        proc.send_signal(sig)
        code = proc.wait(timeout=120)
        text = log.read_text()
        if i:
            assert f"resuming {run} at step {previous}" in text, text
        step = step_of(last)  # always loads: a cut-short write is never under the real name
        assert previous < step < steps and step >= seen, (previous, seen, step)
        assert visible(run) <= RUN_FILES  # leftovers of a write cut short are hidden temporary files
        if sig == signal.SIGKILL:
            assert code == -signal.SIGKILL
        else:  # saved, said so, and exited with 128 + the signal number
            assert code == 128 + sig, text
            assert "Traceback" not in text
            found = re.search(rf"stopped by {sig.name} at step (\d+); checkpoint saved to (\S+) \(continue with --resume\)", text)
            assert found, text
            assert int(found.group(1)) == step and Path(found.group(2)) == last
            assert not [p.name for p in run.iterdir() if p.name.startswith(".")]  # a clean exit leaves no temporary file
        assert metrics_steps(run)[:previous] == list(range(1, previous + 1))
        previous = step

    code, text = invoke(["train", scan, "--out", run, "--steps", steps, *TRAIN_OPTIONS, "--resume"])
    assert code == 0, text
    assert f"resuming {run} at step {previous}" in text
    final = load_checkpoint(last)
    assert final.training["step"] == steps
    assert all(bool(torch.isfinite(v).all()) for v in final.state_dict.values())
    assert metrics_steps(run) == list(range(1, steps + 1))  # every step logged once: none lost, none repeated


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_stop_signal_swallowed_by_a_finalizer_still_commits_nothing(tmp_path, capsys):
    # Python prints and drops an exception raised in a finalizer ("Exception ignored in"); a
    # signal that lands there must still stop the command before its file becomes visible.
    from a2a_cli.cli import user_errors
    from a2a_cli.errors import _stop_signals
    from a2a_cli.atomic import atomic_write

    class SignalsWhenCollected:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)

    out, swallowed = tmp_path / "recon.h5", []

    @user_errors
    def command() -> None:
        with atomic_write(out) as tmp:
            tmp.write_bytes(b"complete")
            SignalsWhenCollected()  # collected at once: the handler runs inside __del__
            swallowed.append(_stop_signals == [signal.SIGTERM])  # still running: the exception was lost

    with pytest.raises(typer.Exit) as stopped:
        command()
    assert stopped.value.exit_code == 128 + signal.SIGTERM
    assert swallowed == [True]  # the mechanism really was exercised
    assert "stopped by SIGTERM; no output file was left half-written" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    assert _stop_signals == [] and signal.getsignal(signal.SIGTERM) is not None  # handlers and state restored


@pytest.mark.parametrize("reported_as", [TypeError, InputError])
def test_a_stop_that_a_c_extension_reports_as_its_own_error_is_still_the_stop(tmp_path, capsys, monkeypatch, reported_as):
    # h5py turns an exception raised by a signal handler inside its Cython code into a
    # TypeError of its own; with a stop pending, the command still exits as stopped
    from a2a_cli.cli import user_errors
    from a2a_cli.errors import _stop_signals
    from a2a_cli.atomic import atomic_write

    monkeypatch.setenv("A2A_DEBUG", "1")  # even where real bugs are let through
    out = tmp_path / "recon.h5"

    @user_errors
    def command() -> None:
        with atomic_write(out) as tmp:
            tmp.write_bytes(b"half")
            try:
                os.kill(os.getpid(), signal.SIGTERM)
            except BaseException:
                raise reported_as("Operation not defined for data type class")

    with pytest.raises(typer.Exit) as stopped:
        command()
    assert stopped.value.exit_code == 128 + signal.SIGTERM
    assert "stopped by SIGTERM" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    assert _stop_signals == []


def test_an_error_without_a_pending_stop_is_not_taken_for_one(capsys, monkeypatch):
    from a2a_cli.cli import EXIT_INTERNAL_ERROR, user_errors

    monkeypatch.delenv("A2A_DEBUG", raising=False)

    @user_errors
    def command() -> None:
        raise TypeError("a real bug")

    with pytest.raises(typer.Exit) as failed:
        command()
    assert failed.value.exit_code == EXIT_INTERNAL_ERROR
    assert "internal error (TypeError: a real bug)" in capsys.readouterr().err


@pytest.mark.slow
def test_killed_or_terminated_reconstruct_leaves_no_output(tmp_path):
    rng = np.random.default_rng(0)
    s, t, h, w = 3000, 4, 8, 8
    mask = np.zeros((s, t, w), np.uint8)
    for frame in range(t):
        mask[:, frame, frame::t] = 1
    kspace = (rng.standard_normal((s, t, h, w)) + 1j * rng.standard_normal((s, t, h, w))).astype(np.complex64)
    scan = write_a2a_file(tmp_path / "many.h5", kspace * mask[:, :, None, :], mask=mask)
    ckpt = tmp_path / "net.pt"
    save_checkpoint(ckpt, build_model("cnn2dt", channels=4, depth=2), "dynamic")
    procs = {}
    for sig in (signal.SIGKILL, signal.SIGTERM):  # side by side: interpreter start-up dominates
        out, log = tmp_path / sig.name, tmp_path / f"{sig.name}.log"
        with open(log, "w") as f:
            proc = subprocess.Popen([sys.executable, "-m", "a2a_cli", "reconstruct", str(ckpt), str(scan), "--out", str(out),
                                     "--device", "cpu"], stdout=f, stderr=subprocess.STDOUT, env=ENV)
        procs[sig] = (proc, out, log)
    # watch both at once and stop each as soon as it writes, so neither can finish unwatched
    pending, deadline = dict(procs), time.monotonic() + 180
    while pending:
        for sig, (proc, out, log) in list(pending.items()):
            assert proc.poll() is None, log.read_text()
            if out.is_dir() and any(out.glob(".many_recon.h5.partial-*")):
                proc.send_signal(sig)
                del pending[sig]
        assert time.monotonic() < deadline, "reconstruction never started writing"
        time.sleep(0.005)
    for sig, (proc, out, log) in procs.items():
        code = proc.wait(timeout=60)
        names = [p.name for p in out.iterdir()] if out.exists() else []  # a folder reconstruct made is removed on failure
        assert not (out / "many_recon.h5").exists()
        if sig == signal.SIGKILL:  # no chance to clean up: only a hidden temporary file remains
            assert code == -signal.SIGKILL
            assert names and all(n.startswith(".many_recon.h5.partial-") for n in names), names
        else:  # unwinds like Ctrl-C: the temporary file is removed too
            text = log.read_text()
            assert code == 128 + signal.SIGTERM, text
            assert "stopped by SIGTERM; no output file was left half-written" in text and "Traceback" not in text
            assert names == []


# -- numerical health -------------------------------------------------------------------------------------


def _poison(monkeypatch, run: Path, at_call: int, kind: str) -> dict:
    """Make the training loss (``kind="loss"``) or its gradient (``"gradient"``) non-finite at one call."""
    from a2a_cli import splitting

    original = splitting.Artifact2ArtifactLoss.forward
    seen = {"calls": 0}

    def forward(self, x_net, *args, **kwargs):
        seen["calls"] += 1
        value = original(self, x_net, *args, **kwargs)
        if seen["calls"] != at_call:
            return value
        seen["sha"], seen["step"] = sha256_of(run / "last.pt"), step_of(run / "last.pt")
        if kind == "loss":
            return value * float("nan")
        return value + 0 * torch.sqrt(0 * x_net.sum())  # the same value, but a NaN gradient

    monkeypatch.setattr(splitting.Artifact2ArtifactLoss, "forward", forward)
    return seen


@pytest.mark.parametrize("kind", ["loss", "gradient"])
def test_non_finite_training_stops_naming_the_step_and_keeps_last_good(tmp_path, scan, monkeypatch, kind):
    run = tmp_path / "run"
    seen = _poison(monkeypatch, run, at_call=4, kind=kind)
    code, text = invoke(["train", scan, "--out", run, "--steps", 10, *TRAIN_OPTIONS])
    assert code == 2, text
    assert "Traceback" not in text
    assert f"the {kind} became nan at step 4" in text
    assert "last good checkpoint is" in text and "last.pt" in text
    assert seen["step"] == 3
    assert sha256_of(run / "last.pt") == seen["sha"]  # the good checkpoint was not replaced
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt.training["step"] == 3
    assert all(bool(torch.isfinite(v).all()) for v in ckpt.state_dict.values())
    assert not [p for p in run.iterdir() if p.name.startswith(".")]


def test_non_finite_first_step_of_a_new_run_leaves_nothing(tmp_path, scan, monkeypatch):
    from a2a_cli import splitting

    monkeypatch.setattr(splitting.Artifact2ArtifactLoss, "forward", lambda self, *a, **k: torch.tensor(float("inf")))
    run = tmp_path / "run"
    code, text = invoke(["train", scan, "--out", run, "--steps", 5, *TRAIN_OPTIONS])
    assert code == 2 and "the loss became inf at step 1" in text and "not written yet" in text, text
    assert not run.exists()
    # so the same command, once the problem is fixed, needs no --overwrite
    monkeypatch.undo()
    code, text = invoke(["train", scan, "--out", run, "--steps", 2, *TRAIN_OPTIONS])
    assert code == 0, text


def test_grad_clip_is_applied_and_checked(tmp_path, scan, monkeypatch):
    norms = []
    clip = torch.nn.utils.clip_grad_norm_

    def spy(parameters, max_norm, *args, **kwargs):
        norms.append(max_norm)
        return clip(parameters, max_norm, *args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    options = [o if o != "1.0" else "0.25" for o in TRAIN_OPTIONS]
    code, text = invoke(["train", scan, "--out", tmp_path / "run", "--steps", 3, *options])
    assert code == 0, text
    assert norms == [0.25] * 3
    for bad in ("0", "-1", "nan"):
        code, text = invoke(["train", scan, "--out", tmp_path / "bad", "--steps", 3, *TRAIN_OPTIONS, "--grad-clip", bad])
        assert code == 2 and "--grad-clip: must be" in text, text
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_resume_continues_exactly(tmp_path, scan):
    """Optimizer state, step count and random state are restored: 4 + 4 steps equal 8 steps."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert invoke(["train", scan, "--out", straight, "--steps", 8, *TRAIN_OPTIONS])[0] == 0
    assert invoke(["train", scan, "--out", split, "--steps", 4, *TRAIN_OPTIONS])[0] == 0
    code, text = invoke(["train", scan, "--out", split, "--steps", 8, "--resume", *TRAIN_OPTIONS])
    assert code == 0, text
    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(split / "last.pt")
    assert a.training["step"] == b.training["step"] == 8
    for key, value in a.state_dict.items():
        assert torch.equal(value, b.state_dict[key]), key
    for key, value in a.training["optimizer"]["state"].items():
        for name, tensor in value.items():
            assert torch.equal(torch.as_tensor(tensor), torch.as_tensor(b.training["optimizer"]["state"][key][name]))
    assert metrics_steps(split) == list(range(1, 9))


def test_a_swallowed_stop_prints_no_traceback_but_other_swallowed_errors_do(monkeypatch):
    from a2a_cli.errors import Stopped, quiet_swallowed_stops

    reported = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: reported.append(u.exc_type))

    class RaisesWhenCollected:
        def __init__(self, exc):
            self.exc = exc

        def __del__(self):
            raise self.exc

    with quiet_swallowed_stops():
        RaisesWhenCollected(Stopped(signal.SIGTERM))  # as a signal handler raising inside a finalizer
        assert reported == []
        RaisesWhenCollected(ValueError("a real bug"))
        assert reported == [ValueError]
    RaisesWhenCollected(Stopped(signal.SIGTERM))  # outside the block, reported as usual
    assert reported == [ValueError, Stopped]
