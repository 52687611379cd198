"""Atomic file output: write to a hidden temporary name beside the target, then rename.

An interrupted command (error, signal, kill) never leaves a file that looks complete, and
an existing file is replaced only when asked.
"""
from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Iterator

from .errors import InputError, raise_if_stopped

__all__ = ["OutputExistsError", "atomic_write", "check_output"]

PathLike = str | os.PathLike


class OutputExistsError(InputError):
    """The output file exists and overwriting was not asked for."""


def check_output(path: Path, overwrite: bool) -> None:
    """Refuse an output path that is a directory, exists (without ``overwrite``) or has no folder."""
    if path.is_dir():
        raise InputError(path, "is a directory; give a file name for the output")
    if path.exists() and not overwrite:
        raise OutputExistsError(path, "already exists; use the overwrite option (--overwrite) to replace it")
    if not path.parent.is_dir():
        raise InputError(path, f"the output directory {path.parent} does not exist")


@contextlib.contextmanager
def atomic_write(path: PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` if the block succeeds.

    The temporary name is hidden (``.name.partial-XXXXXXXX``) and does not exist when
    the block starts. On any exception it is deleted, so an interrupted run never
    leaves a file that looks complete. Raises :class:`OutputExistsError` if ``path``
    exists and ``overwrite`` is false.

    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_write(out) as tmp:
    ...     _ = tmp.write_text("done")
    >>> out.read_text(), sorted(p.name for p in out.parent.iterdir())
    ('done', ['a.txt'])
    """
    path = Path(path)
    check_output(path, overwrite)
    tmp = path.with_name(f".{path.name}.partial-{secrets.token_hex(4)}")
    try:
        yield tmp
        raise_if_stopped()  # never publish a file written while a stop was pending
        if not tmp.exists():
            raise FileNotFoundError(f"{tmp}: nothing was written to the temporary file")
        if path.exists() and not overwrite:  # appeared while we were writing
            raise OutputExistsError(path, "already exists; use the overwrite option (--overwrite) to replace it")
        with contextlib.suppress(OSError):  # flush to disk before the rename makes it visible
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
