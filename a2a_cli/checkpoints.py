"""Checkpoint files: safe to load (no pickled code), validated, written atomically.

A checkpoint is a ``torch.save`` of a dictionary that holds only tensors and plain
Python values (str, int, float, bool, None, lists, dicts). It is read back with
``torch.load(weights_only=True)``, so a file carrying a pickled object is refused
before anything in it can run.

Keys: ``format`` ("a2a-checkpoint"), ``format_version``, ``a2a_version``, ``model``
(registry name), ``model_config`` (JSON text of the constructor arguments), ``mode``
("dynamic" | "sequential"), ``state_dict`` and, for resuming, ``training`` (optimizer
state, step, epoch, position in the epoch, random state, best validation loss).
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from . import __version__
from .errors import InputError
from .io import atomic_write

FORMAT = "a2a-checkpoint"
FORMAT_VERSION = 1


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
        from .models import build_model

        try:
            model = build_model(self.model_name, **self.model_config)
        except (ValueError, TypeError) as exc:
            raise InputError(self.path, f"cannot rebuild network {self.model_name!r}: {exc}") from None
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()
            raise InputError(self.path, f"weights do not fit network {self.model_name!r}: {' '.join(first[:3])}") from None
        return model


def sha256_of(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    mode: str,
    training: Optional[dict] = None,
    extra: Optional[dict] = None,
) -> None:
    """Write ``model`` (which must carry ``name`` and ``config``) atomically to ``path``."""
    payload: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "a2a_version": __version__,
        "model": model.name,
        "model_config": json.dumps(model.config, sort_keys=True),
        "mode": mode,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    if training is not None:
        payload["training"] = training
    if extra:
        payload["extra"] = extra
    with atomic_write(path, overwrite=True) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read and validate a checkpoint without executing anything stored in it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint file not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise InputError(
            path,
            "refused: the checkpoint holds pickled Python objects, which could run code when loaded "
            f"(only tensors and plain values are accepted) [{str(exc).splitlines()[0][:160]}]",
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise InputError(path, f"not a readable checkpoint (truncated or not a torch file): {str(exc).splitlines()[0][:160]}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(path, "not an a2a checkpoint (no 'format': 'a2a-checkpoint' entry)")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise InputError(path, f"checkpoint format version {version!r} is newer than this a2a understands ({FORMAT_VERSION})")
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

    if payload["model"] not in MODELS:
        raise InputError(path, f"unknown network {payload['model']!r}; this a2a knows {', '.join(sorted(MODELS))}")
    for name, value in payload["state_dict"].items():
        if not isinstance(value, torch.Tensor):
            raise InputError(path, f"state_dict entry {name!r} is not a tensor")
    return Checkpoint(
        path=path,
        model_name=payload["model"],
        model_config=config,
        mode=payload["mode"],
        state_dict=payload["state_dict"],
        sha256=sha256_of(path),
        a2a_version=str(payload.get("a2a_version", "")),
        training=payload.get("training"),
        extra=payload.get("extra") or {},
    )
