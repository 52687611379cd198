"""Run under torchrun by tests/test_distributed.py: train, resume, and report what every rank did.

Usage: ``torchrun --nproc-per-node N tests/_ddp_worker.py RESULT.json RUN_DIR STRAIGHT_DIR DATA...``

Trains 4 steps into RUN_DIR and resumes it to 6 steps, both through the command line
(as ``torchrun -m a2a_cli train`` runs it, in this process), then trains 6 steps straight
into STRAIGHT_DIR with :func:`a2a_cli.training.train`. After each run every rank's final weights are digested and gathered, with
the batches its sampler gave and the input chunks it drew; rank 0 writes all of it, and
digests of the checkpoints it wrote, to RESULT.json.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys

import torch
import torch.distributed as dist

from a2a_cli import training
from a2a_cli.checkpoints import load_checkpoint
from a2a_cli.data import ShapeBatchSampler
from a2a_cli.splitting import Artifact2ArtifactLoss


def digest(state_dict: dict) -> str:
    """SHA-256 of a state dict's names and tensor bytes."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        h.update(name.encode())
        h.update(state_dict[name].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


# -- recording hooks (installed by main(), in the torchrun worker only) ------------------
nets: list[torch.nn.Module] = []
batches: list[list[int]] = []
draws: list[list[int]] = []


def install_hooks() -> None:
    """Record the DDP-wrapped network, the sampler's batches and the chunk draws of this rank."""
    ddp, sampler_iter, draw = torch.nn.parallel.DistributedDataParallel, ShapeBatchSampler.__iter__, Artifact2ArtifactLoss._random_draw

    class RecordingDDP(ddp):
        def __init__(self, module: torch.nn.Module, *args, **kwargs):
            super().__init__(module, *args, **kwargs)
            nets.append(module)

    def recording_iter(self):
        order = list(sampler_iter(self))
        batches.extend(order)
        return iter(order)

    def recording_draw(self, batch, n_frames, device, *args, **kwargs):
        d = draw(self, batch, n_frames, device, *args, **kwargs)
        draws.append(d.input_chunks.tolist())
        return d

    torch.nn.parallel.DistributedDataParallel = RecordingDDP  # training looks it up at call time
    ShapeBatchSampler.__iter__ = recording_iter
    Artifact2ArtifactLoss._random_draw = recording_draw


def gather() -> list[dict]:
    """Every rank's final weight digest, batches and chunk draws since the last gather."""
    mine = {"digest": digest(nets[-1].state_dict()), "batches": list(batches), "draws": list(draws)}
    nets.clear(), batches.clear(), draws.clear()
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, mine)
    return gathered


def run_cli(args: list[str]) -> dict:
    """``a2a train ARGS`` in this process; returns the JSON summary it prints (rank 0) and the gathered records."""
    from a2a_cli.cli import app

    app(["train", *args], standalone_mode=False)
    return {"ranks": gather()}


def main() -> None:
    result_path, run_dir, straight_dir, *data = sys.argv[1:]
    install_hooks()
    dist.init_process_group("gloo")  # here, so that train() leaves it alive for the gathers
    cli = [*data, "--out", run_dir, "--model-option", "channels=8", "--model-option", "depth=3",
           "--model-option", "iterations=1", "--split-size", "2", "--val-every", "2", "--patience", "0",
           "--device", "cpu", "--lr", "0.01", "--no-tv"]  # the search under torchrun: test_nproc_option_...
    report: dict = {"world": dist.get_world_size()}
    report["fresh"] = run_cli([*cli, "--steps", "4"])
    report["resumed"] = run_cli([*cli, "--steps", "6", "--resume"])
    cfg = training.TrainConfig(train=data, out=straight_dir, steps=6, model="unrolled", split_size=[2], val_every=2,
                               model_options={"channels": 8, "depth": 3, "iterations": 1}, patience=None,
                               device="cpu", lr=1e-2, tv=False)
    summary = training.train(cfg, log=lambda message: None)
    report["straight"] = {"summary": summary, "ranks": gather()}
    if dist.get_rank() == 0:
        report["checkpoint_digest"] = digest(load_checkpoint(os.path.join(run_dir, "last.pt")).state_dict)
        with open(result_path, "w") as f:
            json.dump(report, f)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
