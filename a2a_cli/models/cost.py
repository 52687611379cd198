"""What a network configuration costs, worked out before the network is built.

A configuration comes from ``--model-option`` or from a checkpoint's stored
``model_config``; either may ask for far more than a machine can give (a million
channels, a depth of 10^9, 10^9 unrolled iterations that share one set of weights and
so fit any checkpoint). :func:`check_network` checks every option's type and range,
estimates the network's cost with one small function per family, and refuses a
configuration past the limits, with the numbers, before anything is allocated.

The estimates (float32, one frame of :data:`REFERENCE_SIZE` pixels):

* ``parameters``: exact for the networks of this package;
* ``memory``: bytes of the activations a training step keeps for one frame (every
  feature map of every layer and iteration, as back-propagation needs them);
* ``operations``: floating-point operations of one forward pass over one frame
  (2 per multiply-add of the convolutions; eight passes with ``flip_ensemble``).

Limits (environment variables, positive integers): ``A2A_MAX_PARAMETERS`` (default
10^8), ``A2A_MAX_FRAME_MEMORY`` (bytes, default 8 GiB) and ``A2A_MAX_FRAME_OPS``
(default 10^13). The default networks sit at least a hundred times below each.

>>> cost = estimate_cost("unrolled", {})
>>> cost.parameters                      # the default network (see registry.count_parameters)
28930
>>> cost.operations == 2 * 2 * 9 * (2 * 32 + 3 * 32 * 32 + 32 * 2) * 256 * 256
True
>>> check_network("unrolled", {"iterations": 10**9})
Traceback (most recent call last):
    ...
a2a_cli.models.cost.NetworkTooCostly: network 'unrolled' with {'iterations': 1000000000} is past the cost limits: 3.5e+16 bytes of training memory per 256x256 frame (limit 8.6e+09, A2A_MAX_FRAME_MEMORY); 3.8e+18 operations per 256x256 frame (limit 1e+13, A2A_MAX_FRAME_OPS); set those environment variables to raise the limits
"""
from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..checks import Check, ValueProblem, check_value
from ..errors import A2AError

if TYPE_CHECKING:  # the estimates need no torch
    from torch import nn

__all__ = [
    "Cost", "NetworkTooCostly", "estimate_cost", "check_network", "check_option_types", "limits", "REFERENCE_SIZE",
    "bytes_per_frame",
]

#: The frame the per-frame limits refer to (height, width).
REFERENCE_SIZE = (256, 256)

_BIG = 2**31 - 1

#: The type and range of every network option (the same name means the same thing in every network).
OPTION_CHECKS: dict[str, Check] = {
    "iterations": Check("int", low=1, high=_BIG),
    "channels": Check("int", low=1, high=_BIG),
    "depth": Check("int", low=2, high=_BIG),
    "neighbours": Check("int", low=0, high=_BIG),
    "scales": Check("int", low=0, high=30),
    "lam": Check("float", low=0, high=1e12),
    "learn_lambda": Check("bool"),
    "data_consistency": Check("bool"),
    "flip_ensemble": Check("bool"),
    "shared_dc": Check("bool"),
    "init": Check("str", choices=("view_sharing", "adjoint", "tv")),
    "share_window": Check("int", low=1, high=_BIG, optional=True),
}

LIMITS = {
    "parameters": ("A2A_MAX_PARAMETERS", 10**8),
    "memory": ("A2A_MAX_FRAME_MEMORY", 8 * 2**30),
    "operations": ("A2A_MAX_FRAME_OPS", 10**13),
}


class NetworkTooCostly(A2AError):
    """A network configuration past a cost limit (or with a value of the wrong type)."""


@dataclass(frozen=True)
class Cost:
    """Estimated cost of a network: ``parameters``, and per :data:`REFERENCE_SIZE` frame ``memory`` (bytes) and ``operations``."""

    parameters: int
    memory: int
    operations: int


def _conv(cin: int, cout: int, k: int = 3) -> tuple[int, int]:
    """``(parameters, multiply-adds per output pixel)`` of a ``k x k`` convolution with bias."""
    return cin * cout * k * k + cout, cin * cout * k * k


def _conv_stack(cin: int, cout: int, channels: int, depth: int) -> tuple[int, int, int]:
    """``(parameters, multiply-adds per pixel, feature values kept per pixel)`` of :class:`~a2a_cli.models.base.ConvStack`."""
    (p_in, m_in), (p_mid, m_mid), (p_out, m_out) = _conv(cin, channels), _conv(channels, channels), _conv(channels, cout)
    middle = depth - 2  # arithmetic, never a list: depth may be 10^9
    return p_in + middle * p_mid + p_out, m_in + middle * m_mid + m_out, channels * (depth - 1) + cout


def _unrolled(o: Mapping[str, Any]) -> tuple[int, int, int]:
    p, macs, kept = _conv_stack(2 * (2 * o.get("neighbours", 0) + 1), 2, o.get("channels", 32), o.get("depth", 5))
    it = o.get("iterations", 2)
    return p + (1 if o.get("learn_lambda") else 0), macs * it, (kept + 4) * it


def _cnn2dt(o: Mapping[str, Any]) -> tuple[int, int, int]:
    p, macs, kept = _conv_stack(2 * (2 * o.get("neighbours", 1) + 1), 2, o.get("channels", 32), o.get("depth", 5))
    return p, macs, kept + 4


def _unet(o: Mapping[str, Any]) -> tuple[int, int, int]:
    c, scales = o.get("channels", 16), o.get("scales", 3)
    widths = [c * 2**i for i in range(scales + 1)]
    params = macs = kept = 0
    for i, w in enumerate(widths):  # the double convolutions going down; a level has 1/4**i of the pixels
        cin = 2 if i == 0 else widths[i - 1]
        for p, m in (_conv(cin, w), _conv(w, w)):
            params, macs = params + p, macs + m / 4**i
        kept += 2 * w / 4**i
    for i in range(scales, 0, -1):  # up-convolution (2x2, stride 2), then the merging double convolution
        lo = widths[i - 1]
        for p, m in (_conv(widths[i], lo, 2), _conv(2 * lo, lo), _conv(lo, lo)):
            params, macs = params + p, macs + m / 4 ** (i - 1)
        kept += 3 * lo / 4 ** (i - 1)
    p, m = _conv(widths[0], 2, 1)
    return params + p, int(macs + m), int(kept) + 6


def _tv(o: Mapping[str, Any]) -> tuple[int, int, int]:
    # no network: a PDHG solve of TV_ITERATIONS iterations, about 30 operations and 8 values per pixel each
    from ..tv import TV_ITERATIONS

    return 0, 30 * TV_ITERATIONS, 16


#: One estimate per network family: ``options -> (parameters, multiply-adds per pixel, values kept per pixel)``.
FAMILIES: dict[str, Callable[[Mapping[str, Any]], tuple[int, int, int]]] = {
    "unrolled": _unrolled, "cnn2dt": _cnn2dt, "unet": _unet, "tv": _tv,
}


def estimate_cost(name: str, options: Mapping[str, Any]) -> Cost:
    """The :class:`Cost` of network ``name`` built with ``options`` (checked first with :func:`check_option_types`)."""
    options = check_option_types(name, options)
    params, macs, kept = FAMILIES[name](options)
    pixels = REFERENCE_SIZE[0] * REFERENCE_SIZE[1]
    passes = 8 if options.get("flip_ensemble") else 1
    return Cost(parameters=int(params), memory=int(4 * kept * pixels), operations=int(2 * macs * pixels * passes))


def check_option_types(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with every value checked and converted; unknown names and bad values raise :class:`NetworkTooCostly`."""
    from .registry import MODELS

    cls = MODELS.get(name)
    if cls is None:
        raise NetworkTooCostly(f"unknown network {name!r}; valid names: {', '.join(sorted(MODELS))}")
    if not isinstance(options, Mapping):
        raise NetworkTooCostly(f"the options of network {name!r} must be a table of KEY = VALUE, got {options!r}")
    valid = list(inspect.signature(cls).parameters)
    out = {}
    for key, value in options.items():
        if key not in valid:
            raise NetworkTooCostly(f"unknown option {key!r} for network {name!r}; valid options: {', '.join(valid)}")
        try:
            out[key] = check_value(OPTION_CHECKS[key], value)
        except ValueProblem as exc:
            raise NetworkTooCostly(f"{key} {exc}") from None
    return out


def limits() -> dict[str, int]:
    """The cost limits in force, from the environment (see the module docstring)."""
    out = {}
    for what, (env, default) in LIMITS.items():
        raw = os.environ.get(env, "").strip()
        if not raw:
            out[what] = default
            continue
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            raise A2AError(f"the environment variable {env} must be a positive integer, got {raw!r}")
        out[what] = value
    return out


def check_network(name: str, options: Mapping[str, Any]) -> Cost:
    """Check ``options`` of network ``name`` and refuse a cost past :func:`limits`; returns the :class:`Cost`."""
    cost = estimate_cost(name, options)
    h, w = REFERENCE_SIZE
    units = {"parameters": "parameters", "memory": f"bytes of training memory per {h}x{w} frame",
             "operations": f"operations per {h}x{w} frame"}
    over = [f"{getattr(cost, what):.2g} {units[what]} (limit {limit:.2g}, {LIMITS[what][0]})"
            for what, limit in limits().items() if getattr(cost, what) > limit]
    if over:
        raise NetworkTooCostly(f"network {name!r} with {dict(options)} is past the cost limits: {'; '.join(over)}; "
                               "set those environment variables to raise the limits")
    return cost


def bytes_per_frame(net: nn.Module, height: int, width: int, coils: int = 1) -> int:
    """A generous estimate of the memory one ``height x width`` frame of ``net`` takes in a no-grad forward pass.

    Measured on CPU (128x128, default networks) at 7 to 9 MB per frame, about 130
    floats per pixel for 32 (unrolled, cnn2dt) or 16 (unet) feature channels; the
    estimate takes ``5 * channels + 64`` floats per pixel, plus a few complex copies
    of the k-space of every coil. A network without a ``channels`` option counts as 32.

    >>> from a2a_cli.models import build_model
    >>> bytes_per_frame(build_model("unet"), 128, 128) / 1e6   # 16 channels
    9.437184
    """
    channels = int((getattr(net, "config", {}) or {}).get("channels", 32))
    coil_floats = 8 * coils if coils > 1 else 0
    return 4 * height * width * (5 * channels + 64 + coil_floats)
