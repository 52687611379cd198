"""File names handled safely: link loops, names that are not UTF-8, outputs that would replace inputs.

Every command checks its outputs with these before any work starts:

* :func:`safe_resolve` turns a loop of symbolic links into an :class:`~a2a_cli.errors.InputError`;
* :func:`refuse_outputs_over_inputs` refuses an output that is one of the inputs (the same
  path, a link to it, or a hard link), masks and coil maps included;
* :func:`check_output_folder` refuses an output whose folder cannot be made (a file is in
  the way) and :func:`output_folders` creates it for the command's work, removing it again if
  the command fails;
* :func:`attr_path` gives a file name to store in HDF5 without loss: text when the name is
  valid UTF-8, its raw bytes otherwise.

>>> attr_path(Path("/data/scan.h5"))
'/data/scan.h5'
>>> attr_path(Path(os.fsdecode(b"/data/caf\\xe9.h5")))
np.bytes_(b'/data/caf\\xe9.h5')
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterable, Iterator, Optional

import numpy as np

from .errors import InputError

__all__ = ["safe_resolve", "same_file", "refuse_outputs_over_inputs", "check_output_folder", "make_folders", "make_output_folder",
           "remove_empty_folders", "output_folders", "attr_path"]

PathLike = str | os.PathLike


def safe_resolve(path: PathLike) -> Path:
    """The absolute path with links followed; a loop of symbolic links is an :class:`InputError`."""
    try:
        return Path(path).resolve()
    except (RuntimeError, OSError):  # RuntimeError: "Symlink loop" (Python < 3.13)
        raise InputError(path, "cannot be resolved: a loop of links (symbolic links that lead back to themselves)") from None


def same_file(a: PathLike, b: PathLike) -> bool:
    """True when ``a`` and ``b`` name the same file: the same path after links, or hard links to one file."""
    if safe_resolve(a) == safe_resolve(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist (yet)
        return False


def refuse_outputs_over_inputs(outputs: Iterable[Optional[PathLike]], inputs: Iterable[Optional[PathLike]], problem: str) -> None:
    """Raise :class:`InputError` (``OUTPUT: problem``) if an output is one of the inputs (None entries are skipped)."""
    ins = [i for i in inputs if i is not None]
    for out in outputs:
        if out is None:
            continue
        if any(same_file(out, i) for i in ins):
            raise InputError(out, problem)


def check_output_folder(path: PathLike, option: str) -> None:
    """Refuse, before any work, an output file whose folder cannot exist: a file stands where a folder must be."""
    path = Path(path)
    if path.exists() and path.is_dir():
        raise InputError(path, f"is a directory; give a file name for {option}")
    parent = safe_resolve(path).parent
    for ancestor in (parent, *parent.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                raise InputError(path, f"{option}: cannot create its folder, {ancestor} is a file")
            if not os.access(ancestor, os.W_OK | os.X_OK):
                raise InputError(path, f"{option}: cannot write in the folder {ancestor} (permission denied)")
            return


def make_folders(folder: PathLike) -> list[Path]:
    """Create ``folder`` and its missing parents; returns those created, deepest last (for :func:`remove_empty_folders`)."""
    folder = Path(folder)
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    return list(reversed(missing))


def make_output_folder(path: PathLike) -> list[Path]:
    """Create the folder of output file ``path`` (after :func:`check_output_folder`); returns the folders created."""
    return make_folders(Path(path).parent)


def remove_empty_folders(folders: Iterable[Path]) -> None:
    """Remove the ``folders`` a failed command created, deepest first, if nothing was put in them."""
    for folder in reversed(list(folders)):
        try:
            folder.rmdir()
        except OSError:  # not empty (a complete output, or someone else's file): keep it
            pass


@contextlib.contextmanager
def output_folders(files: Iterable[Optional[PathLike]] = (), folders: Iterable[PathLike] = ()) -> Iterator[None]:
    """Create the missing folders of the output ``files`` and the output ``folders`` for the block.

    Every command creates the folders its outputs need; if the block fails, those it created and
    left empty are removed again (a failed command leaves nothing behind).
    """
    created: list[Path] = []
    try:
        for f in files:
            if f is not None:
                created += make_output_folder(f)
        for folder in folders:
            created += make_folders(folder)
        yield
    except BaseException:
        remove_empty_folders(created)
        raise


def attr_path(path: PathLike) -> str | np.bytes_:
    """The absolute path of ``path`` for an HDF5 attribute: ``str``, or the raw ``bytes`` of a name that is not UTF-8."""
    text = str(safe_resolve(path))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes, kept by Python as surrogate escapes
        return np.bytes_(os.fsencode(text))  # a byte string in HDF5: read back as these very bytes
    return text
