"""The ``a2a`` console script: start the command line, quietly even when stopped while it loads.

The command line imports torch (seconds on a cold disk). Ctrl-C then would print Python's
traceback; here it ends like a stop at any later moment: one line, exit code 130, nothing written.
"""
from __future__ import annotations

import signal
import sys


def main() -> None:
    """Console-script entry point (see :func:`a2a_cli.cli.main`)."""
    try:
        from .cli import main as run
    except KeyboardInterrupt:
        sys.stderr.write("error: stopped by SIGINT while starting; nothing was written\n")
        raise SystemExit(128 + signal.SIGINT) from None
    run()
