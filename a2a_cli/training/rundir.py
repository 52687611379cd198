"""The run directory of ``a2a train``: every file name it holds, in one place.

>>> run = RunDir("runs/demo")
>>> run.last.as_posix(), run.best.name, run.config.name, run.metrics.name, run.plot.name
('runs/demo/last.pt', 'best.pt', 'config.json', 'metrics.jsonl', 'loss.png')
>>> sorted(p.name for p in run.outputs())
['best.pt', 'config.json', 'last.pt', 'loss.png', 'metrics.jsonl']
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Optional

from ..atomic import atomic_write

__all__ = ["RunDir"]


class RunDir:
    """A training run's directory: checkpoints, configuration, metrics log and loss plot.

    Files are written atomically (:func:`a2a_cli.atomic.atomic_write`), through hidden
    ``.NAME.partial-XXXXXXXX`` temporary names that a killed process may leave behind.
    """

    LAST = "last.pt"  #: the latest state, with everything needed to resume
    BEST = "best.pt"  #: the state with the lowest validation loss
    CONFIG = "config.json"  #: the run's configuration (read back by ``--resume``)
    METRICS = "metrics.jsonl"  #: one JSON line per step
    PLOT = "loss.png"  #: the loss curves
    #: every file a run writes
    FILES = (LAST, BEST, CONFIG, METRICS, PLOT)
    #: the temporary files of interrupted atomic writes
    PARTIAL_GLOB = ".*.partial-*"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def last(self) -> Path:
        return self.path / self.LAST

    @property
    def best(self) -> Path:
        return self.path / self.BEST

    @property
    def config(self) -> Path:
        return self.path / self.CONFIG

    @property
    def metrics(self) -> Path:
        return self.path / self.METRICS

    @property
    def plot(self) -> Path:
        return self.path / self.PLOT

    def outputs(self) -> list[Path]:
        """Every file a run writes here."""
        return [self.path / name for name in self.FILES]

    def holds_run(self) -> bool:
        """True if the directory exists and is not empty."""
        return self.path.is_dir() and any(self.path.iterdir())

    def saved_config(self) -> Optional[Path]:
        """The run's ``config.json`` if there is one."""
        return self.config if self.config.is_file() else None

    def clear(self) -> None:
        """Remove a previous run's files (``--overwrite``); other files are left alone."""
        for path in self.outputs():
            path.unlink(missing_ok=True)

    def prepare(self) -> bool:
        """Make the directory and remove temporary files left by a killed process; True if it was made."""
        made = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        for stale in self.path.glob(self.PARTIAL_GLOB):  # left by a process killed mid-write (SIGKILL)
            stale.unlink(missing_ok=True)
        return made

    def write_config(self, values: dict[str, Any]) -> None:
        """Write ``config.json`` atomically."""
        with atomic_write(self.config, overwrite=True) as tmp:
            Path(tmp).write_text(json.dumps(values, indent=2) + "\n")

    def discard(self, remove_dir: bool) -> None:
        """Remove what a failed new run wrote before its first checkpoint (and the directory if it made it)."""
        for path in (self.config, self.metrics, self.plot):
            path.unlink(missing_ok=True)
        if remove_dir:
            with contextlib.suppress(OSError):  # not empty: someone else put files there
                self.path.rmdir()
