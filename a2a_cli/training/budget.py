"""The run's clock and time budget (``--time-limit``), with the final validation's cost held back.

A run that stops on its time limit still validates its final weights (unless it has just
done so), so the budget keeps the measured cost of the latest validation in reserve (before
the first one, the trainer's estimate from one slice): the loop stops once the time spent
plus that reserve reaches the limit.

>>> now = [0.0]
>>> budget = TimeBudget(10.0, clock=lambda: now[0])
>>> now[0] = 6.0; budget.up()                      # no validation measured yet: nothing in reserve
False
>>> with budget.validation():
...     now[0] = 8.0                                # a validation that took 2 s
>>> budget.reserve, budget.up()                    # 8 s spent + 2 s in reserve reach the limit
(2.0, True)
>>> TimeBudget(None, clock=lambda: now[0]).up()
False
"""
from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterator, Optional

__all__ = ["TimeBudget"]


def _now() -> float:
    return time.monotonic()


class TimeBudget:
    """Seconds since the run's start against ``limit`` (None: unbounded), less the reserve for a validation."""

    def __init__(self, limit: Optional[float], clock: Optional[Callable[[], float]] = None):
        self.limit = limit
        self._clock = clock if clock is not None else _now
        self.start = self._clock()
        #: seconds the latest validation took (the final one is expected to cost the same)
        self.reserve = 0.0

    def now(self) -> float:
        """The clock's current reading (seconds, arbitrary origin)."""
        return self._clock()

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return self._clock() - self.start

    @contextlib.contextmanager
    def validation(self) -> Iterator[None]:
        """Time the block (a validation) and keep its duration in reserve."""
        began = self._clock()
        try:
            yield
        finally:
            self.reserve = self._clock() - began

    def up(self) -> bool:
        """True once the time spent plus the reserve reaches the limit."""
        return self.limit is not None and self.elapsed() + self.reserve >= self.limit
