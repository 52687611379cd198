"""Checkpoint files: safe to load (no pickled code), validated, written atomically.

A checkpoint is a ``torch.save`` of a dictionary that holds only tensors and plain
Python values (str, int, float, bool, None, lists, dicts). It is read back with
``torch.load(weights_only=True)``, so a file carrying a pickled object is refused
before anything in it can run.

Keys: ``format`` ("a2a-checkpoint"), ``format_version``, ``a2a_version``, ``model``
(registry name), ``model_config`` (JSON text of the constructor arguments), ``mode``
("dynamic" | "sequential"), ``state_dict`` and, for resuming, ``training`` (optimizer
state, step, epoch, position in the epoch, best validation loss, and under ``rng`` the
state of the run's own random generator, one per rank: :mod:`a2a_cli.training.trainer`).

Loading checks, in this order, and stops at the first problem with a message that
names the file and what does not match: the file is a torch file whose pickle
holds only allowed types; the format and its version; the entries' types; the
network name; its configuration (the network is built on PyTorch's ``meta``
device, which allocates nothing, and every weight's name and shape is compared with
the file's); the weights are finite; the training state, if any, is well formed.
Only then are the weights put into a real network (:meth:`Checkpoint.build_model`).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import torch

from . import __version__
from .errors import A2AError, InputError
from .atomic import atomic_write

if TYPE_CHECKING:
    from .tv import TVWeights

FORMAT = "a2a-checkpoint"
FORMAT_VERSION = 1

# torch.load's weights-only unpickler names the class or function a pickle asks for
# ("GLOBAL posix.system") and stops there, before calling anything
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


@dataclass
class Checkpoint:
    """A loaded checkpoint: the network's recipe and weights, plus training state if any."""

    path: Path
    model_name: str
    model_config: dict
    mode: str
    state_dict: dict
    sha256: str
    a2a_version: str = ""
    training: Optional[dict] = None
    extra: dict = field(default_factory=dict)

    def build_model(self) -> torch.nn.Module:
        """Rebuild the network and load its weights (raises InputError on any mismatch)."""
        model = _construct(self.path, self.model_name, self.model_config)
        _check_weights_fit(self.path, self.model_name, model.state_dict(), self.state_dict)
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as exc:  # the shapes were checked; anything left is reported as is
            first = str(exc).strip().splitlines()
            raise InputError(self.path, f"weights do not fit network {self.model_name!r}: {' '.join(first[:3])}") from None
        return model


def stored_tv_weights(checkpoint: Optional[Checkpoint]) -> Optional[TVWeights]:
    """The compressed-sensing weights that training chose beside the network (``extra["tv_weights"]``), or None.

    Raises :class:`~a2a_cli.errors.InputError` when the entry is there but is not two to five finite
    weights >= 0 (spatial, temporal and, since those terms, low_rank, fourier and reweight; missing ones are 0).
    """
    from .tv import TVWeights

    value = None if checkpoint is None else checkpoint.extra.get("tv_weights")
    if value is None:
        return None
    ok = (isinstance(value, (list, tuple)) and len(value) in (2, 3, 4, 5)
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0 for v in value))
    if not ok:
        raise InputError(checkpoint.path, f"checkpoint entry 'tv_weights' must be two to five finite weights >= 0, got {value!r}")
    return TVWeights(*(float(v) for v in value))


def sha256_of(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _non_finite(state_dict: dict) -> list[str]:
    """Names of the floating-point tensors that hold NaN or Inf."""
    return [
        name for name, value in state_dict.items()
        if isinstance(value, torch.Tensor) and (value.is_floating_point() or value.is_complex())
        and not bool(torch.isfinite(value).all())
    ]


def save_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    mode: str,
    training: Optional[dict] = None,
    extra: Optional[dict] = None,
) -> None:
    """Write ``model`` (which must carry ``name`` and ``config``) atomically to ``path``.

    Refuses (:class:`~a2a_cli.errors.A2AError`) weights holding NaN or Inf, so that a
    diverged network never replaces a good checkpoint.
    """
    state_dict = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    bad = _non_finite(state_dict)
    if bad:
        raise A2AError(
            f"not saving {path}: the weights hold NaN or Inf ({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}); "
            "the previous checkpoint is kept"
        )
    payload: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "a2a_version": __version__,
        "model": model.name,
        "model_config": json.dumps(model.config, sort_keys=True),
        "mode": mode,
        "state_dict": state_dict,
    }
    if training is not None:
        payload["training"] = training
    if extra:
        payload["extra"] = extra
    with atomic_write(path, overwrite=True) as tmp:
        torch.save(payload, tmp)


def _read_payload(path: Path, map_location: str | torch.device) -> Any:
    """``torch.load`` with the weights-only unpickler; every failure is an InputError."""
    try:
        with warnings.catch_warnings():
            # torch warns about foreign pickle protocols before refusing them: our message says it all
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        found = _GLOBAL.search(text)
        if found:
            raise InputError(
                path,
                f"refused: the checkpoint holds pickled Python objects ({found.group(1)}), which could run code "
                "when loaded; only tensors and plain values are accepted, and nothing in it was run",
            ) from None
        reasons = [line.strip() for line in text.splitlines() if "Unsupported" in line or "WeightsUnpickler" in line]
        reason = next((r for r in reasons if r and not r.endswith(":")), text.strip().splitlines()[0] if text.strip() else "")
        raise InputError(
            path,
            "refused: not a plain checkpoint (its pickle holds instructions the safe loader does not accept: "
            f"pickled Python objects or a damaged file); nothing in it was run [{reason[:160]}]",
        ) from None
    except MemoryError:
        raise InputError(path, "not a readable checkpoint: it declares more data than fits in memory") from None
    except Exception as exc:  # torch reports damage with many exception types (zip, EOF, KeyError...)
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise InputError(path, f"not a readable checkpoint (truncated, damaged or not a torch file): {first}") from None


def _construct(path: Path, name: str, config: dict, device: str | torch.device | None = None) -> torch.nn.Module:
    """Build network ``name`` from ``config`` (on ``device``), reporting a bad config as an InputError."""
    from .models import build_model

    try:
        if device is None:
            return build_model(name, **config)
        with torch.device(device):
            return build_model(name, **config)
    except MemoryError:
        raise InputError(path, f"the configuration of network {name!r} asks for more memory than there is: {config}") from None
    except Exception as exc:  # a constructor fed bad values may raise anything
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise InputError(path, f"cannot rebuild network {name!r} from the stored configuration {config}: {first}") from None


def _check_cost(path: Path, name: str, config: dict, state_dict: dict) -> None:
    """Refuse a stored configuration that is malformed or past the cost limits, before anything is built.

    Building even on the meta device runs the constructor, so a depth of 10^9 would hang
    there; and 10^9 unrolled iterations share one set of weights, so they fit any file.
    """
    from .models.cost import NetworkTooCostly, check_network, estimate_cost

    try:
        cost = estimate_cost(name, config)
    except NetworkTooCostly as exc:
        raise InputError(path, f"cannot rebuild network {name!r} from the stored configuration {config}: {exc}") from None
    held = sum(v.numel() for v in state_dict.values() if isinstance(v, torch.Tensor))
    try:
        check_network(name, config)
    except NetworkTooCostly as exc:
        if cost.parameters != held:  # the configuration does not describe these weights at all
            raise InputError(
                path, f"the weights do not fit network {name!r} built from the stored configuration; shape mismatch: "
                      f"the configuration makes {cost.parameters:,} parameters, the file holds {held:,}",
            ) from None
        raise InputError(path, f"refused: {exc}") from None


def _upgrade(state_dict: dict) -> dict:
    """Weights written by an earlier a2a, in today's layout: the compressed-sensing weights of an
    ``init="tv"`` network were ``(spatial, temporal)`` before the locally low-rank term,
    ``(spatial, temporal, low_rank)`` before the temporal-spectrum term and four weights before
    the reweighting (0 for the terms missing)."""
    return {k: torch.cat((v, v.new_zeros(5 - v.numel()))) if k == "tv_weights" and v.ndim == 1 and v.numel() in (2, 3, 4) else v
            for k, v in state_dict.items()}


def _shape(t: torch.Tensor) -> str:
    return "(" + ", ".join(str(s) for s in t.shape) + ")"


def _check_weights_fit(path: Path, name: str, expected: dict, stored: dict) -> None:
    """Compare the names and shapes of the network's weights (``expected``) with the file's."""
    missing = [k for k in expected if k not in stored]
    unexpected = [k for k in stored if k not in expected]
    wrong = [
        f"{k!r} is {_shape(stored[k])} in the file but {_shape(expected[k])} in the network"
        for k in expected if k in stored and tuple(stored[k].shape) != tuple(expected[k].shape)
    ]
    if not (missing or unexpected or wrong):
        return

    def listed(items: list[str]) -> str:
        return ", ".join(items[:4]) + (f" and {len(items) - 4} more" if len(items) > 4 else "")

    problems = []
    if wrong:
        problems.append(f"shape mismatch: {listed(wrong)}")
    if missing:
        problems.append(f"weights missing from the file: {listed(missing)}")
    if unexpected:
        problems.append(f"weights the network does not have: {listed(unexpected)}")
    raise InputError(
        path,
        f"the weights do not fit network {name!r} built from the stored configuration; " + "; ".join(problems),
    )


def _check_training(path: Path, training: Any) -> None:
    """The resume state must be well formed before anything is restored from it."""
    if not isinstance(training, dict):
        raise InputError(path, "checkpoint entry 'training' is not a dictionary")
    opt = training.get("optimizer")
    if not isinstance(opt, dict) or not isinstance(opt.get("state"), dict) or not isinstance(opt.get("param_groups"), list):
        raise InputError(path, "the training state holds no valid optimizer state ('state' and 'param_groups')")
    for key in ("step", "epoch", "batch_in_epoch"):
        value = training.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InputError(path, f"the training state's {key!r} is {value!r}, not a non-negative integer")
    best = training.get("best_val", math.inf)
    if isinstance(best, bool) or not isinstance(best, (int, float)) or math.isnan(best):
        raise InputError(path, f"the training state's 'best_val' is {best!r}, not a number")
    rng = training.get("rng")
    if rng is not None:
        size = torch.get_rng_state().numel()
        if not isinstance(rng, list) or not all(
            isinstance(r, torch.Tensor) and r.dtype == torch.uint8 and r.ndim == 1 and r.numel() == size for r in rng
        ):
            raise InputError(path, f"the training state's random state is not a list of {size}-byte generator states")


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read and validate a checkpoint without executing anything stored in it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint file not found" if not path.exists() else "is not a file")
    payload = _read_payload(path, map_location)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(path, "not an a2a checkpoint (no 'format': 'a2a-checkpoint' entry)")
    version = payload.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InputError(path, f"checkpoint format version {version!r} is not valid (this a2a reads version {FORMAT_VERSION})")
    if version > FORMAT_VERSION:
        raise InputError(
            path,
            f"checkpoint format version {version} is newer than this a2a understands ({FORMAT_VERSION}); "
            f"it was written by a2a {payload.get('a2a_version', '?')}: upgrade a2a to read it",
        )
    for key, kind in (("model", str), ("model_config", str), ("mode", str), ("state_dict", dict)):
        if not isinstance(payload.get(key), kind):
            raise InputError(path, f"checkpoint entry {key!r} is missing or not a {kind.__name__}")
    if payload["mode"] not in ("dynamic", "sequential"):
        raise InputError(path, f"checkpoint mode {payload['mode']!r} is not 'dynamic' or 'sequential'")
    try:
        config = json.loads(payload["model_config"])
    except json.JSONDecodeError:
        raise InputError(path, "checkpoint model_config is not valid JSON") from None
    if not isinstance(config, dict):
        raise InputError(path, "checkpoint model_config is not a JSON object")
    from .models import MODELS

    name = payload["model"]
    if name not in MODELS:
        raise InputError(path, f"unknown network {name!r}; this a2a knows {', '.join(sorted(MODELS))}")
    state_dict = payload["state_dict"]
    for key, value in state_dict.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise InputError(path, f"state_dict entry {key!r} is not a named tensor")
    state_dict = _upgrade(state_dict)
    _check_cost(path, name, config, state_dict)
    # the configuration is checked against the weights on the meta device: nothing is allocated,
    # so a hostile configuration (a huge width) cannot exhaust memory before it is refused
    skeleton = _construct(path, name, config, device="meta")
    _check_weights_fit(path, name, skeleton.state_dict(), state_dict)
    bad = _non_finite(state_dict)
    if bad:
        raise InputError(path, f"the weights hold NaN or Inf ({', '.join(bad[:3])}); this checkpoint is unusable")
    training = payload.get("training")
    if training is not None:
        _check_training(path, training)
    extra = payload.get("extra") or {}
    if not isinstance(extra, dict):
        raise InputError(path, "checkpoint entry 'extra' is not a dictionary")
    return Checkpoint(
        path=path,
        model_name=name,
        model_config=config,
        mode=payload["mode"],
        state_dict=state_dict,
        sha256=sha256_of(path),
        a2a_version=str(payload.get("a2a_version", "")),
        training=training,
        extra=extra,
    )
