"""Running a2a's commands in-process for the tests: one helper, shared by the test files."""
from __future__ import annotations

import os

from typer.testing import CliRunner

from a2a_cli.cli import app

runner = CliRunner()


def invoke(args: list, env: dict | None = None) -> tuple[int, str]:
    """``(exit code, output)`` of ``a2a ARGS`` on a wide terminal (no wrapped messages).

    An exception that escapes the command is a bug, not an answer (``A2A_DEBUG=1`` from
    ``conftest.py`` lets it through): it is raised here, so the test fails with its traceback.
    """
    args = [os.fspath(a) if isinstance(a, os.PathLike) else str(a) for a in args]
    result = runner.invoke(app, args, env={"COLUMNS": "400", **(env or {})})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output
