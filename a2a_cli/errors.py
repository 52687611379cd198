"""Errors that the command line reports as one clean message (exit code 2), and stop signals."""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, Iterator

_WORKER_TRACEBACK = "Original Traceback (most recent call last)"


def _original_message(message: str) -> str:
    """The error's own message, when ``message`` is a DataLoader worker's report.

    A DataLoader re-raises an error from a worker process as ``type(error)(text)``,
    where ``text`` holds the worker's traceback; its last line is
    ``module.Class: the original message``.

    >>> _original_message("Caught X.\\nOriginal Traceback (most recent call last):\\n  ...\\na2a_cli.errors.InputError: a.h5: bad")
    'a.h5: bad'
    >>> _original_message("plain")
    'plain'
    """
    if _WORKER_TRACEBACK not in message:
        return message
    last = message.rstrip().splitlines()[-1]
    head, sep, rest = last.partition(": ")
    if sep and "." in head and " " not in head:  # a qualified class name
        return rest
    return last


class A2AError(Exception):
    """A problem the user can fix: reported without a traceback."""

    def __init__(self, *args: object):
        if len(args) == 1 and isinstance(args[0], str):
            args = (_original_message(args[0]),)
        super().__init__(*args)


class InputError(A2AError, ValueError):
    """A bad input file: the message names the file and the problem.

    >>> str(InputError("scan.h5", "dataset 'kspace' is missing"))
    "scan.h5: dataset 'kspace' is missing"

    Built from one message only (as a DataLoader does when it re-raises a worker's
    error), the file is the part before the first ``": "``.
    """

    def __init__(self, path: str | os.PathLike, problem: str | None = None):
        if problem is None:
            message = _original_message(str(path))
            path, sep, problem = message.partition(": ")
            if not sep:
                path, problem = "", message
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class Stopped(KeyboardInterrupt):
    """A stop signal (SIGINT or SIGTERM) raised as an exception, so the program unwinds like Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = int(signum)


# Python drops an exception raised inside a finalizer or weakref callback ("Exception
# ignored in ..."), so a signal handler's exception can be lost. The signal is also kept
# here and checked where it matters: before a file is made visible, and between slices.
_stop_signals: list[int] = []


def request_stop(signum: int) -> None:
    """Record that the process was asked to stop; ``a2a_cli.atomic.atomic_write`` then publishes nothing."""
    _stop_signals.append(int(signum))


def clear_stop() -> None:
    """Forget recorded stop requests (at the start and end of a command)."""
    _stop_signals.clear()


@contextlib.contextmanager
def quiet_swallowed_stops() -> Iterator[None]:
    """Within the block, a :class:`Stopped` that Python swallows (raised by a signal handler
    while a finalizer or weakref callback ran) prints nothing instead of "Exception ignored"
    and a traceback: the stop is recorded (:func:`request_stop`) and acted on by
    :func:`raise_if_stopped`. Other unraisable exceptions are reported as before.
    """
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if not (isinstance(unraisable.exc_type, type) and issubclass(unraisable.exc_type, Stopped)):
            previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous


def pending_stop() -> int | None:
    """The first stop signal recorded since :func:`clear_stop`, or None."""
    return _stop_signals[0] if _stop_signals else None


def raise_if_stopped() -> None:
    """Raise :class:`Stopped` if a stop was requested, even if its first exception was swallowed."""
    if _stop_signals:
        raise Stopped(_stop_signals[0])
