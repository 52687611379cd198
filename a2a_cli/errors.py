"""Errors that the command line reports as one clean message (exit code 2)."""
from __future__ import annotations

import os


class A2AError(Exception):
    """A problem the user can fix: reported without a traceback."""


class InputError(A2AError, ValueError):
    """A bad input file: the message names the file and the problem.

    >>> str(InputError("scan.h5", "dataset 'kspace' is missing"))
    "scan.h5: dataset 'kspace' is missing"
    """

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
