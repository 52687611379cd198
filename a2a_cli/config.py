"""Every option and configuration key of the command line: its type, range and default, checked in one place.

:class:`TrainConfig` is the single source of the training defaults. Each of its fields
carries a :class:`~a2a_cli.checks.Check` (its type, range, finiteness and choices) in the field's
metadata; the options of the other commands (``reconstruct``, ``inspect-mask``,
``simulate``, ``convert``) are described by the same :class:`Check` in :data:`OPTIONS`.
Values from the command line, from a TOML file and from a saved run all go through
:func:`check_value`, so a bad value is refused before any work starts, with a message
naming where it came from:

* the command line: ``--lr: must be a finite number > 0, got nan``;
* a TOML file: ``run.toml: key 'lr': must be a finite number > 0, got nan``.

:func:`merge_train_config` builds the run's configuration once, in this order (later
wins): defaults < TOML file < saved run (``config.json``, on ``--resume``) < command line.

>>> check_value(CHECKS["lr"], 0.01)
0.01
>>> check_value(CHECKS["lr"], float("nan"))
Traceback (most recent call last):
    ...
a2a_cli.checks.ValueProblem: must be a finite number > 0 and <= 10, got nan
>>> train_config({"train": ["a.h5"], "out": "run", "steps": 5}).steps
5
"""
from __future__ import annotations

import tomllib
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

from .checks import Check, ValueProblem, check_device, check_value
from .errors import A2AError, InputError

__all__ = [
    "Check", "ValueProblem", "TrainConfig", "CHECKS", "OPTIONS", "check_value", "check_options",
    "train_config", "load_toml", "merge_train_config", "check_device", "MAX_SEED",
]

#: Seeds are used by torch, numpy and the line assignment alike: 32 bits suit them all.
MAX_SEED = 2**32 - 1


def _model_names() -> Sequence[str]:
    from .models import MODELS

    return sorted(MODELS)


def _f(default: Any, check: Check) -> Any:
    """A dataclass field with a default and its :class:`Check`."""
    if callable(default) and not isinstance(default, (str, int, float, bool)):
        return field(default_factory=default, metadata={"check": check})
    return field(default=default, metadata={"check": check})


_SEED = Check("int", low=0, high=MAX_SEED, flag="--seed")
_FRAMES = Check("int", low=1, high=100_000, optional=True, flag="--frames")
_CENTRE = Check("int", low=0, high=1_000_000, flag="--centre-lines")
_ASSIGN = Check("str", choices=("random", "interleaved"), flag="--assignment")
_DEVICE = Check("device", flag="--device")


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved as ``config.json`` in the run directory).

    Every field's metadata holds its :class:`Check`; :func:`train_config` builds a
    checked instance. Building one directly (as the library and tests do) checks nothing.
    """

    train: list[str] = field(metadata={"check": Check("path_list", flag="DATA")})
    out: str = field(metadata={"check": Check("path", flag="--out")})
    val: list[str] = _f(list, Check("path_list", flag="--val"))
    mode: Optional[str] = _f(None, Check("str", choices=("dynamic", "sequential"), optional=True, flag="--mode"))
    model: str = _f("unrolled", Check("str", choices=_model_names, flag="--model"))
    model_options: dict = _f(dict, Check("dict", flag="--model-option"))
    # also choose the weights of TV compressed sensing, so that reconstruction can blend it with the network
    # as held-out samples say; None (the default) is on: the key stays optional because earlier run
    # configurations hold null, when None meant "on for Cartesian data only"
    tv: Optional[bool] = _f(None, Check("bool", optional=True, flag="--tv"))
    # "auto": resolved from the masks when training starts (Artifact2Artifact, or SSDU where time splitting is unfit)
    loss: str = _f("auto", Check("str", choices=("a2a", "p2p", "ssdu", "auto"), flag="--loss"))
    # SSDU: fraction of the measured samples held out for the loss
    ssdu_fraction: float = _f(0.2, Check("float", low=0, low_open=True, high=0.95, flag="--ssdu-fraction"))
    # SSDU: partitions per sample and step (multi-mask SSDU when > 1)
    ssdu_masks: int = _f(1, Check("int", low=1, high=64, flag="--ssdu-masks"))
    # empty: automatic (T // 2 when T is even)
    split_size: list[int] = _f(list, Check("int_list", low=1, high=100_000, flag="--split-size"))
    all_pairs: bool = _f(False, Check("bool", flag="--all-pairs"))
    neighbours_only: bool = _f(False, Check("bool", flag="--neighbours-only"))
    # None: on for sequential mode (static object), off for dynamic
    shuffle_frames: Optional[bool] = _f(None, Check("bool", optional=True, flag="--shuffle-frames"))
    augment: Optional[bool] = _f(None, Check("bool", optional=True, flag="--augment"))  # None: sequential only
    # None: DEFAULT_STEPS[mode] unless --epochs or --time-limit bound the run
    steps: Optional[int] = _f(None, Check("int", low=1, high=10**9, optional=True, flag="--steps"))
    epochs: Optional[int] = _f(None, Check("int", low=1, high=10**7, optional=True, flag="--epochs"))
    time_limit: Optional[float] = _f(None, Check("float", low=0, low_open=True, high=10**8, optional=True, flag="--time-limit"))
    lr: float = _f(1e-3, Check("float", low=0, low_open=True, high=10, flag="--lr"))
    batch_size: int = _f(1, Check("int", low=1, high=4096, flag="--batch-size"))
    val_every: int = _f(100, Check("int", low=1, high=10**9, flag="--val-every"))
    # validations without improvement before stopping (None or 0: never)
    patience: Optional[int] = _f(5, Check("int", low=0, high=10**9, optional=True, flag="--patience"))
    grad_clip: Optional[float] = _f(None, Check("float", low=0, low_open=True, high=1e12, optional=True, flag="--grad-clip"))
    save_every: float = _f(30.0, Check("float", low=0, high=10**8, flag="--save-every"))  # seconds
    seed: int = _f(0, _SEED)
    device: str = _f("auto", _DEVICE)
    workers: int = _f(0, Check("int", low=0, high=256, flag="--workers"))
    amp: bool = _f(False, Check("bool", flag="--amp"))
    frames: Optional[int] = _f(None, _FRAMES)  # fastMRI-style static files: frames to split the lines into
    assignment: str = _f("random", _ASSIGN)
    centre_lines: int = _f(0, _CENTRE)
    mask: Optional[str] = _f(None, Check("path", optional=True, flag="--mask"))  # CMRxRecon: one mask file for every input
    # None: compress more than 6 coils to 6 virtual coils for training; 0: never
    virtual_coils: Optional[int] = _f(None, Check("int", low=0, high=1024, optional=True, flag="virtual_coils"))
    # None: train on bands of 64 readout rows when H > 96; 0: never
    crop_rows: Optional[int] = _f(None, Check("int", low=0, high=100_000, optional=True, flag="crop_rows"))

    def split_options(self):
        """The :class:`~a2a_cli.data.SplitOptions` of fastMRI-style static files, or None."""
        from .data import SplitOptions

        if self.frames is None:
            return None
        return SplitOptions(frames=self.frames, assignment=self.assignment, centre_lines=self.centre_lines, seed=self.seed)


#: The :class:`Check` of every :class:`TrainConfig` field, by field name.
CHECKS: dict[str, Check] = {f.name: f.metadata["check"] for f in fields(TrainConfig)}

#: The options of the other commands, by parameter name (the shared ones are the training ones).
OPTIONS: dict[str, Check] = {
    "seed": _SEED, "frames": _FRAMES, "centre_lines": _CENTRE, "assignment": _ASSIGN, "device": _DEVICE,
    "frames_per_batch": Check("int", low=0, high=10**6, optional=True, flag="--frames-per-batch"),
    "preview_slice": Check("int", low=0, high=10**6, flag="--preview-slice"),
    "preview_frame": Check("int", low=0, high=10**6, flag="--preview-frame"),
    "slice_index": Check("int", low=0, high=10**6, flag="--slice"),
    "split_size": CHECKS["split_size"],
    "virtual_coils": Check("int", low=1, high=1024, optional=True, flag="--virtual-coils"),
    "nproc": Check("int", low=1, high=1024, flag="--nproc"),
    # simulate
    "slices": Check("int", low=1, high=10_000, flag="--slices"),
    "sim_frames": Check("int", low=1, high=10_000, flag="--frames"),
    "height": Check("int", low=4, high=16_384, flag="--height"),
    "width": Check("int", low=4, high=16_384, flag="--width"),
    "acceleration": Check("float", low=1, high=10_000, flag="--acceleration"),
    "snr": Check("float", low=-100, high=200, flag="--snr"),
    "motion": Check("str", choices=("respiratory", "periodic", "none"), flag="--motion"),
    "period": Check("int", low=1, high=10_000, optional=True, flag="--period"),
    "coils": Check("int", low=1, high=256, flag="--coils"),
    "complex_style": Check("str", choices=("complex", "compound", "float2"), flag="--complex-style"),
}


def _option_error(check: Check, name: str, problem: ValueProblem) -> A2AError:
    return A2AError(f"{check.flag or '--' + name.replace('_', '-')}: {problem}")


def check_options(**values: Any) -> dict[str, Any]:
    """Check command-line values by parameter name (:data:`OPTIONS`, then :data:`CHECKS`); returns them converted.

    Raises :class:`~a2a_cli.errors.A2AError` naming the option, e.g. ``--preview-frame: ...``.

    >>> check_options(seed=3, frames_per_batch=None)
    {'seed': 3, 'frames_per_batch': None}
    >>> check_options(slices=0)
    Traceback (most recent call last):
        ...
    a2a_cli.errors.A2AError: --slices: must be at least 1, got 0
    """
    out = {}
    for name, value in values.items():
        check = OPTIONS.get(name) or CHECKS[name]
        try:
            out[name] = check_value(check, value)
        except ValueProblem as exc:
            raise _option_error(check, name, exc) from None
    return out


def _checked_layer(values: Mapping[str, Any], origin: Optional[Path]) -> dict[str, Any]:
    """One layer of training values, each checked; errors name ``origin`` and the key, or the option."""
    out = {}
    for key, value in values.items():
        check = CHECKS.get(key)
        if check is None:
            known = ", ".join(sorted(CHECKS))
            problem = f"unknown key {key!r}; known keys: {known}"
            raise InputError(origin, problem) if origin is not None else A2AError(problem)
        try:
            out[key] = check_value(check, value)
            if key == "model_options":
                out[key] = _checked_model_options(out[key])
        except ValueProblem as exc:
            if origin is not None:
                raise InputError(origin, f"key {key!r}: {exc}") from None
            raise _option_error(check, key, exc) from None
    return out


def _checked_model_options(options: dict[str, Any]) -> dict[str, Any]:
    """The network options with every known one type-checked (which apply to the chosen network is checked later)."""
    from .models.cost import OPTION_CHECKS

    out = dict(options)
    for name, value in options.items():
        if name in OPTION_CHECKS:
            try:
                out[name] = check_value(OPTION_CHECKS[name], value)
            except ValueProblem as exc:
                raise ValueProblem(f"{name} {exc}") from None
    return out


def train_config(values: Mapping[str, Any], origin: Optional[Path] = None) -> TrainConfig:
    """A checked :class:`TrainConfig` from ``values`` (missing keys take the defaults).

    ``origin``: the file the values came from (errors then read ``FILE: key 'lr': ...``);
    None: the command line (``--lr: ...``).
    """
    checked = _checked_layer(values, origin)
    for f in fields(TrainConfig):
        if f.default is MISSING and f.default_factory is MISSING and f.name not in checked:
            flag = f.metadata["check"].flag
            where = f"{origin}: " if origin is not None else ""
            raise A2AError(f"{where}missing value for {f.name!r} ({flag})")
    if checked.get("patience") == 0:  # 0: never stop early, as None
        checked["patience"] = None
    temporal = [flag for key, flag in TEMPORAL_SPLIT_OPTIONS if checked.get(key)]
    if temporal and checked.get("loss") in ("p2p", "ssdu"):
        where = f"{origin}: " if origin is not None else ""
        raise A2AError(f"{where}{', '.join(temporal)} shape(s) Artifact2Artifact's chunks, which --loss {checked['loss']} "
                       f"does not use; leave {'it' if len(temporal) == 1 else 'them'} out, or train with --loss a2a")
    return TrainConfig(**checked)


#: the options of Artifact2Artifact's temporal splitting: given, ``--loss auto`` trains with it
TEMPORAL_SPLIT_OPTIONS = (("split_size", "--split-size"), ("all_pairs", "--all-pairs"), ("neighbours_only", "--neighbours-only"))


def load_toml(path: Path) -> dict[str, Any]:
    """The training keys of a TOML file (its ``[train]`` table, or the top level), dashes read as underscores.

    Every way the file can be unreadable is an :class:`~a2a_cli.errors.InputError` naming it.
    """
    path = Path(path)
    try:
        if path.is_dir():
            raise InputError(path, "config file is a directory, not a TOML file")
        with open(path, "rb") as f:
            raw = f.read((1 << 20) + 1)
    except FileNotFoundError:
        raise InputError(path, "config file not found") from None
    except OSError as exc:
        raise InputError(path, f"config file cannot be read: {exc.strerror or exc}") from None
    if len(raw) > 1 << 20:
        raise InputError(path, "config file is larger than 1 MiB; is it really a TOML configuration?")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(path, f"config file is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(path, f"not valid TOML: {exc}") from None
    except RecursionError:
        raise InputError(path, "not valid TOML: nested too deeply") from None
    # a [train] table holds the keys; a top-level `train = [...]` is the list of training files
    section = data["train"] if isinstance(data.get("train"), dict) else data
    return {str(k).replace("-", "_"): v for k, v in section.items()}


def merge_train_config(
    command_line: Mapping[str, Any],
    given: Iterable[str],
    toml: Optional[Path] = None,
    saved: Optional[Path] = None,
) -> TrainConfig:
    """The run's configuration: defaults < ``toml`` < ``saved`` run < the ``given`` command-line values.

    ``command_line`` holds every command-line value (defaults included); only the keys
    in ``given`` (those the user typed) override the file layers. Each layer is checked
    as it is read, so an error names the option, or the file and key.
    """
    given = set(given)
    merged: dict[str, Any] = {}
    if toml is not None:
        merged.update(_checked_layer(load_toml(toml), toml))
    if saved is not None:
        merged.update(_checked_layer(_saved_run(saved), saved))
    cli = _checked_layer(command_line, None)
    for key, value in cli.items():
        if key in given or key not in merged:
            merged[key] = value
    return train_config(merged)


def _saved_run(path: Path) -> dict[str, Any]:
    """The keys of a run's ``config.json`` that are training keys (others were written by older versions)."""
    import json

    try:
        saved = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise InputError(path, f"is not valid JSON ({exc}); cannot resume this run") from None
    except OSError as exc:
        raise InputError(path, f"cannot be read: {exc.strerror or exc}") from None
    if not isinstance(saved, dict):
        raise InputError(path, "does not hold a run configuration (a JSON object); cannot resume this run")
    return {k: v for k, v in saved.items() if k in CHECKS}


def as_dict(cfg: TrainConfig) -> dict[str, Any]:
    """The configuration as plain values (what ``config.json`` holds)."""
    return asdict(cfg)
