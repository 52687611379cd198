"""Stop requests: SIGINT and SIGTERM recorded in one object that the command line and the
training loop share.

The command line installs handlers that record the signal and unwind at once (nothing
half-written is left); the training loop installs handlers that only record it, and
checks the request between steps, so that it saves a checkpoint before it stops.
:func:`catching_stop_signals` installs either kind and restores the previous handlers.

>>> stop = StopRequest()
>>> bool(stop), stop.signum
(False, None)
>>> stop.request(signal.SIGTERM); stop.request(signal.SIGINT)
>>> bool(stop), stop.signum == signal.SIGTERM        # the first signal is kept
(True, True)
>>> with catching_stop_signals(stop) as s:
...     s is stop
True
"""
from __future__ import annotations

import contextlib
import signal
from typing import Any, Callable, Iterator, Optional

__all__ = ["STOP_SIGNALS", "StopRequest", "catching_stop_signals"]

#: The signals that ask a command to stop.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Whether a stop was asked for, and by which signal (the first one received)."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None

    def request(self, signum: int) -> None:
        """Record a stop request (a later signal does not replace the first)."""
        if self.signum is None:
            self.signum = int(signum)

    def clear(self) -> None:
        """Forget the request (at the start and end of a command)."""
        self.signum = None

    def __bool__(self) -> bool:
        return self.signum is not None

    def __repr__(self) -> str:
        return f"StopRequest(signum={self.signum})"


@contextlib.contextmanager
def catching_stop_signals(
    stop: StopRequest, then: Optional[Callable[[int], Any]] = None, signals: tuple = STOP_SIGNALS
) -> Iterator[StopRequest]:
    """Within the block, ``signals`` record themselves in ``stop`` and then call ``then(signum)``
    (which may raise to unwind); the previous handlers come back on exit.

    Outside the main thread signals cannot be handled there: they are left alone.
    """

    def handler(signum: int, _frame: Any) -> None:
        stop.request(signum)
        if then is not None:
            then(signum)

    previous: dict[int, Any] = {}
    for sig in signals:
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread
            break
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
