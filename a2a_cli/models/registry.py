"""Network registry: rebuild a network from the ``(name, config)`` pair stored in a checkpoint.

>>> net = build_model("unrolled", iterations=3, channels=8)
>>> type(net).__name__, net.config["iterations"]
('UnrolledNet', 3)
>>> type(build_model(net.name, **net.config)).__name__
'UnrolledNet'
>>> count_parameters(build_model("unrolled"))
28930
>>> build_model("resnet")
Traceback (most recent call last):
    ...
ValueError: unknown model 'resnet'; valid names: cnn2dt, tv, unet, unrolled
"""
from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from .cnn import Conv2dtNet
from .unet import ResidualUNet
from .tvmodel import TVModel
from .unrolled import UnrolledNet

__all__ = ["MODELS", "build_model", "count_parameters"]

#: Registry name -> reconstruction network class.
MODELS: dict[str, type[nn.Module]] = {cls.name: cls for cls in (ResidualUNet, Conv2dtNet, UnrolledNet, TVModel)}


def build_model(name: str, **config: Any) -> nn.Module:
    """Build the network registered as ``name`` with constructor arguments ``config``.

    Raises ``ValueError`` naming the valid choices for an unknown name or unknown options.
    """
    cls = MODELS.get(name)
    if cls is None:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(sorted(MODELS))}")
    params = inspect.signature(cls).parameters
    unknown = sorted(set(config) - set(params))
    if unknown:
        raise ValueError(
            f"unknown option(s) for model {name!r}: {', '.join(unknown)}; valid options: {', '.join(params)}"
        )
    return cls(**config)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable, by default) scalar parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
