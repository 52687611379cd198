"""The few collective operations of a DistributedDataParallel run (``torchrun``), and their
single-process stand-ins: with one process every method returns its input.

Every rank must take the same decisions (stop, save, validate) in the same order, or a
collective would wait forever; these helpers make the ranks agree.

>>> ranks = Ranks(rank=0, world=1, local_rank=0)
>>> ranks.distributed, ranks.mean(2.5, torch.device("cpu")), ranks.any_of([False, True], torch.device("cpu"))
(False, 2.5, [False, True])
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["Ranks"]


@dataclass(frozen=True)
class Ranks:
    """This process's place in the run: ``rank`` of ``world`` processes, ``local_rank`` on its machine."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> "Ranks":
        """The torchrun environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); one process without it."""
        return cls(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")),
                   int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes files and shows progress."""
        return self.rank == 0

    def mean(self, value: float, device: torch.device) -> float:
        """The mean of ``value`` over the ranks (every rank gets it)."""
        if not self.distributed:
            return value
        t = torch.tensor([value], device=device)
        torch.distributed.all_reduce(t)
        return t.item() / self.world

    def any_of(self, flags: list[bool], device: torch.device) -> list[bool]:
        """Each flag, true if it is true on any rank."""
        if not self.distributed:
            return flags
        t = torch.tensor([float(f) for f in flags], device=device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return [bool(v) for v in t.tolist()]

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value`` (a picklable object), in rank order."""
        if not self.distributed:
            return [value]
        gathered: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(gathered, value)
        return gathered

    def barrier(self) -> None:
        """Wait for every rank (no-op with one process)."""
        if self.distributed:
            torch.distributed.barrier()
