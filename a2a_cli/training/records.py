"""The metrics log of a run (``metrics.jsonl``: one JSON object per step) and its loss plot."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional, TextIO

from ..atomic import atomic_write

__all__ = ["MetricsLog", "read_records"]


def read_records(path: Path) -> list[dict]:
    """The records of a metrics file; a line cut by a kill is skipped."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a kill
            continue
    return out


class MetricsLog:
    """Appends one record per step to ``path`` (flushed at once, so a kill loses at most a line).

    ``resume_at``: the step of the checkpoint a resumed run starts from; records logged
    after it (before a kill) are dropped, as those steps are done again.
    """

    def __init__(self, path: Path, resume_at: Optional[int] = None):
        self.path = path
        self.records: list[dict] = []
        if resume_at is not None:
            self.records = [r for r in read_records(path) if isinstance(r.get("step"), int) and r["step"] <= resume_at]
            with atomic_write(path, overwrite=True) as tmp:
                Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in self.records))
        self._file: Optional[TextIO] = open(path, "a" if resume_at is not None else "w")

    def append(self, record: dict) -> None:
        self.records.append(record)
        assert self._file is not None
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def plot(self, path: Path, log: Callable[[str], None]) -> None:
        """Draw the loss curves to ``path``; a failure is a warning, never the run's end."""
        if not self.records:
            return
        try:
            from ..plots import save_loss_plot  # matplotlib loads slowly: only when a plot is drawn

            save_loss_plot(self.records, path)
        except Exception as exc:  # a plot must never cost the run
            log(f"warning: could not draw {path}: {exc}")
