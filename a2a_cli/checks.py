"""The validation vocabulary: how one value is checked (:class:`Check`), and what is wrong with it (:class:`ValueProblem`).

A leaf module (nothing from this package is imported), so that the command-line
configuration (:mod:`a2a_cli.config`) and the network options
(:mod:`a2a_cli.models.cost`) can share it.

>>> check_value(Check("float", low=0, low_open=True, high=10), 0.01)
0.01
>>> check_value(Check("str", choices=("a", "b")), "c")
Traceback (most recent call last):
    ...
a2a_cli.checks.ValueProblem: must be one of a, b, got 'c'
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

__all__ = ["Check", "ValueProblem", "check_value", "check_device"]


class ValueProblem(ValueError):
    """What is wrong with one value (without saying where it came from)."""


@dataclass(frozen=True)
class Check:
    """How one option or key is checked.

    ``kind``: ``"int"``, ``"float"``, ``"bool"``, ``"str"``, ``"path"``, ``"int_list"``,
    ``"path_list"``, ``"dict"`` or ``"device"``. ``low``/``high`` bound numbers (and every
    item of an ``int_list``); ``low_open`` makes the lower bound strict. ``optional``
    allows None. ``choices`` lists the allowed strings (a callable is asked for them
    when first needed, so that importing this module stays cheap). ``flag`` is the
    command-line spelling (``--split-size``).
    """

    kind: str
    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False
    optional: bool = False
    choices: Sequence[str] | Callable[[], Sequence[str]] | None = None
    flag: str = ""
    help: str = ""

    def allowed(self) -> Optional[Sequence[str]]:
        """The allowed strings, or None when any string goes."""
        return self.choices() if callable(self.choices) else self.choices

    def describe(self) -> str:
        """What a good value looks like, e.g. ``a finite number > 0``."""
        if self.kind in ("int", "int_list"):
            noun = "an integer" if self.kind == "int" else "a list of integers"
        elif self.kind == "float":
            noun = "a finite number"
        elif self.kind == "bool":
            return "true or false"
        elif self.kind in ("str", "device") and self.allowed():
            return "one of " + ", ".join(self.allowed())
        elif self.kind == "device":
            return "auto, cpu, cuda or cuda:N"
        elif self.kind == "path_list":
            return "a list of file names"
        elif self.kind == "dict":
            return "a table of KEY = VALUE"
        else:
            return "a text value"
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {_num(self.low)}")
        if self.high is not None and self.high < 2**31 - 1:  # a bound against overflow only is not worth saying
            parts.append(f"<= {_num(self.high)}")
        each = " (each)" if self.kind == "int_list" and parts else ""
        return noun + (" " + " and ".join(parts) if parts else "") + each


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else f"{v:g}"


def _shown(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _as_int(value: Any, check: Check) -> int:
    # bool is an int to Python, never to a user; a float is taken only when it is whole
    if isinstance(value, bool):
        raise ValueProblem(f"must be {check.describe()}, got {_shown(value)}")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise ValueProblem(f"must be {check.describe()}, got {_shown(value)}")
        value = int(value)
    if not isinstance(value, int):
        try:  # numpy integers
            import numpy as np

            if isinstance(value, np.integer):
                value = int(value)
        except ImportError:  # pragma: no cover
            pass
    if not isinstance(value, int):
        raise ValueProblem(f"must be {check.describe()}, got {_shown(value)}")
    _in_range(value, check)
    return value


def _in_range(value: float, check: Check) -> None:
    if check.low is not None and (value <= check.low if check.low_open else value < check.low):
        bound = f"> {_num(check.low)}" if check.low_open else f"at least {_num(check.low)}"
        raise ValueProblem(f"must be {bound}, got {_shown(value)}")
    if check.high is not None and value > check.high:
        raise ValueProblem(f"must be at most {_num(check.high)}, got {_shown(value)}")


def check_value(check: Check, value: Any) -> Any:
    """``value`` converted to the checked type; raises :class:`ValueProblem` saying what is wrong.

    >>> check_value(Check("int", low=1), 3.0), check_value(Check("float", low=0, low_open=True), 2)
    (3, 2.0)
    >>> check_value(Check("int", low=0, high=2**32 - 1), 2**64)
    Traceback (most recent call last):
        ...
    a2a_cli.checks.ValueProblem: must be at most 4294967295, got 18446744073709551616
    """
    if value is None:
        if check.optional:
            return None
        raise ValueProblem(f"must be {check.describe()}, not empty")
    kind = check.kind
    if kind == "int":
        return _as_int(value, check)
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueProblem(f"must be {check.describe()}, got {_shown(value)}")
        try:
            number = float(value)
        except OverflowError:  # an int past the float range
            raise ValueProblem(f"must be {check.describe()}, got {_shown(value)}") from None
        if not math.isfinite(number):
            raise ValueProblem(f"must be {check.describe()}, got {_shown(number)}")
        _in_range(number, check)
        return number
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueProblem(f"must be true or false, got {_shown(value)}")
        return value
    if kind in ("str", "path", "device"):
        if isinstance(value, os.PathLike) and kind == "path":
            value = os.fspath(value)
        if not isinstance(value, str):
            raise ValueProblem(f"must be {check.describe()}, got {_shown(value)}")
        if "\x00" in value:
            raise ValueProblem("must not contain a NUL character")
        if kind == "path" and not value:
            raise ValueProblem("must be a file name, got an empty string")
        if kind == "device":
            return check_device(value)
        allowed = check.allowed()
        if allowed is not None and value not in allowed:
            raise ValueProblem(f"must be one of {', '.join(allowed)}, got {_shown(value)}")
        return value
    if kind in ("int_list", "path_list"):
        if isinstance(value, (str, bytes, dict)) or not isinstance(value, (list, tuple)):
            raise ValueProblem(f"must be {check.describe()}, got {_shown(value)}")
        item = Check("int", low=check.low, high=check.high) if kind == "int_list" else Check("path")
        out = []
        for i, v in enumerate(value):
            try:
                out.append(check_value(item, v))
            except ValueProblem as exc:
                raise ValueProblem(f"item {i + 1}: {exc}") from None
        return out
    if kind == "dict":
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ValueProblem(f"must be {check.describe()}, got {_shown(value)}")
        return dict(value)
    raise AssertionError(f"unknown check kind {kind!r}")  # a programming error, not a user's


def check_device(name: str) -> str:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` naming a device this machine has; returned unchanged.

    >>> check_device("cpu")
    'cpu'
    >>> check_device("tpu")
    Traceback (most recent call last):
        ...
    a2a_cli.checks.ValueProblem: must be auto, cpu, cuda or cuda:N, got 'tpu'
    """
    if name in ("auto", "cpu"):
        return name
    if name != "cuda" and not (name.startswith("cuda:") and name[5:].isdigit() and name[5:].isascii()):
        raise ValueProblem(f"must be auto, cpu, cuda or cuda:N, got {_shown(name)}")
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise ValueProblem(f"{name} was asked for, but PyTorch sees no CUDA device on this machine; use cpu or auto")
    if name != "cuda" and int(name[5:]) >= count:
        raise ValueProblem(f"{name} does not exist: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    return name
