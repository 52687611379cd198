"""Scan-specific fine-tuning at reconstruction time (``a2a reconstruct --adapt STEPS``).

Before a slice is reconstructed, a copy of the trained network is trained for a few
steps on that slice alone, self-supervised, as zero-shot self-supervised learning
does: at every step the slice's measurements (one per frame and phase-encode line)
are split at random into an input set, which the network reconstructs from, and a
target set, on which its output is scored in k-space. For a static object
(sequential mode) any such split is valid; in dynamic mode a frame's target lines
belong to the same frame, so the target is consistent as well. The network keeps its
input samples (data consistency), so only the lines the input lacks carry signal.
Each step also draws a random exact reflection of the data (as ``--augment`` does).

Like training, the fine-tuning compresses more than six coils to six virtual coils
(:mod:`a2a_cli.training.data`); the tuned network then reconstructs the slice with every
coil. Unlike training, it sees the whole image: on a 180 x 230 8-coil study slice, bands of
64 readout rows made 200 steps 2.7 times cheaper but lost 0.6 dB (benchmarks/REALSIZE.md).

Radial data (a sampling tensor ``(1, 4, T, spokes, samples)`` as the mask) are split by
whole spokes instead (:func:`a2a_cli.ssdu.partition_spokes`), without reflections, which
would embed new Toeplitz kernels at every step.

Layouts (:mod:`a2a_cli.physics`): ``kspace`` ``(1, 2, T, H, W)`` or ``(1, 2, T, N, H, W)``,
``mask`` ``(1, 1, T, H, W)``, ``coil_maps`` complex ``(1, N, H, W)`` or None.

>>> import torch
>>> from a2a_cli.models import build_model
>>> from a2a_cli.physics import SequentialMRI
>>> mask = torch.zeros(1, 1, 4, 16, 16); mask[..., 7:9] = 1
>>> for t in range(4): mask[:, :, t, :, [t, 4 + t, 10 + t]] = 1
>>> y = SequentialMRI(mask=mask)(torch.randn(1, 2, 16, 16))
>>> net = build_model("unrolled", channels=4, depth=2, iterations=1)
>>> tuned, losses = adapt_network(net, "sequential", y, mask, steps=3)
>>> len(losses), tuned is not net
(3, True)
"""
from __future__ import annotations

import copy
from collections.abc import Callable

import torch

from .nufft import RadialMRI, is_radial_mask
from .physics import DynamicMRI, Reflection, SequentialMRI, to_complex
from .ssdu import SSDULoss
from .training.data import auto_virtual_coils, compress_item

__all__ = [
    "DEFAULT_ADAPT_LR",
    "DEFAULT_ADAPT_STEPS",
    "DEFAULT_INPUT_FRACTION",
    "adapt_network",
    "default_adapt_steps",
    "scan_loss",
    "split_loss",
    "split_measurements",
    "spoke_split_loss",
]

#: Fine-tuning steps per slice when ``--adapt`` is not given, by mode. Sequential: 200 steps
#: gained +0.3 to +3.5 dB (mean +1.3) on the held-out files of five varied Cartesian cases
#: (benchmarks/RESULTS.md), at the cost of 200 training steps per slice. Dynamic: +0.67 dB on a
#: validation file, but 85 s per 16-frame 64x64 slice on 2 CPU cores, so off unless asked.
DEFAULT_ADAPT_STEPS = {"dynamic": 0, "sequential": 200}
#: Radial files: off unless asked (a NUFFT-based step costs about a second at 128 x 128 on 2 CPU cores).
DEFAULT_RADIAL_ADAPT_STEPS = 0

#: Share of the measurements given to the network's input at each step (the rest are targets).
DEFAULT_INPUT_FRACTION = 0.8
#: Adam learning rate of the fine-tuning: below the training rate, as the weights start trained
#: (on validation files 3e-4 beat 1e-3 after 50 and after 200 steps: benchmarks/RESULTS.md).
DEFAULT_ADAPT_LR = 3e-4


def default_adapt_steps(mode: str, radial: bool = False) -> int:
    """Fine-tuning steps per slice that ``a2a reconstruct`` uses without ``--adapt``.

    >>> default_adapt_steps("dynamic"), default_adapt_steps("sequential"), default_adapt_steps("sequential", radial=True)
    (0, 200, 0)
    """
    return DEFAULT_RADIAL_ADAPT_STEPS if radial else DEFAULT_ADAPT_STEPS.get(mode, 0)


def split_measurements(mask: torch.Tensor, fraction: float, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a ``(B, 1, T, H, W)`` mask into disjoint input and target masks, line by line and frame by frame.

    Every measured (frame, phase-encode line) goes to the input with probability
    ``fraction``, else to the target; whole readout lines stay together. Where a sample's
    frames all measure the same lines, one draw serves every frame: a target line kept in
    another frame's input would reach the network through view sharing (on a dynamic
    8-coil validation file 100 steps then lost 0.41 dB instead of gaining 0.10,
    benchmarks/SSDU.md). The union of the two is ``mask``.

    >>> m = torch.ones(1, 1, 2, 4, 8)
    >>> a, b = split_measurements(m, 0.5, torch.Generator().manual_seed(0))
    >>> bool(torch.equal(a + b, m)), bool((a * b).sum() == 0), bool(torch.equal(a[:, :, 0], a[:, :, 1]))
    (True, True, True)
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be between 0 and 1, got {fraction}")
    lines = mask.amax(dim=-2, keepdim=True)  # (B, 1, T, 1, W)
    draw = torch.rand(lines.shape, generator=generator, device="cpu").to(mask.device) < fraction
    same = (lines == lines[:, :, :1]).all(dim=(1, 2, 3, 4))  # (B,): the same lines in every frame
    draw = torch.where(same.reshape(-1, 1, 1, 1, 1), draw[:, :, :1].expand_as(draw), draw)
    inp = mask * draw.to(mask.dtype)
    return inp, mask - inp


def _physics(mode: str, mask: torch.Tensor, coil_maps: torch.Tensor | None):
    return (SequentialMRI if mode == "sequential" else DynamicMRI)(mask=mask, coil_maps=coil_maps)


def split_loss(
    net: torch.nn.Module, mode: str, kspace: torch.Tensor, m_in: torch.Tensor, m_tg: torch.Tensor,
    coil_maps: torch.Tensor | None = None, reflection: Reflection | None = None,
) -> torch.Tensor:
    """``||M_target (A x) - y_target||^2 / ||y_target||^2`` for ``x = net(y_input)`` (0 when the target is empty).

    Relative, so independent of the data's scale. ``reflection`` (default: none) is applied
    to the data and both masks first.
    """
    coil_axis = kspace.ndim == 6  # (B, 2, T, N, H, W): one mask for every coil
    y_in = kspace * (m_in.unsqueeze(3) if coil_axis else m_in)
    y_tg = kspace * (m_tg.unsqueeze(3) if coil_axis else m_tg)
    phys_in, phys_tg = _physics(mode, m_in, coil_maps), _physics(mode, m_tg, coil_maps)
    if reflection is not None:
        y_in, y_tg = reflection.kspace(y_in), reflection.kspace(y_tg)
        phys_in, phys_tg = reflection.physics_of(phys_in), reflection.physics_of(phys_tg)
    x = net(y_in, phys_in)
    energy = to_complex(y_tg).abs().pow(2).sum()
    if float(energy) == 0.0:
        return x.sum() * 0.0
    return to_complex(phys_tg.A(x) - y_tg).abs().pow(2).sum() / energy


def spoke_split_loss(
    net: torch.nn.Module, mode: str, kspace: torch.Tensor, mask: torch.Tensor, coil_maps: torch.Tensor,
    fraction: float = DEFAULT_INPUT_FRACTION, generator: torch.Generator | None = None,
) -> torch.Tensor:
    """:func:`split_loss` of radial data ``(B, 2, T, N, spokes, samples)``: ``fraction`` of the spokes
    (of every frame; of the whole set for a static object) form the input, the rest the target."""
    physics = RadialMRI(mask, coil_maps, sequential=mode == "sequential")
    split = SSDULoss(loss_fraction=1.0 - fraction).split(kspace, physics, generator=generator)
    x = net(split.y_input, split.physics_input)
    energy = to_complex(split.y_loss).abs().pow(2).sum()
    return to_complex(split.physics_loss.A(x) - split.y_loss).abs().pow(2).sum() / torch.clamp(energy, min=1e-30)


@torch.no_grad()
def scan_loss(
    net: torch.nn.Module, mode: str, kspace: torch.Tensor, mask: torch.Tensor, coil_maps: torch.Tensor | None = None,
    splits: int = 8, fraction: float = DEFAULT_INPUT_FRACTION, seed: int = 12345,
) -> float:
    """Mean :func:`split_loss` of ``net`` (eval mode) over ``splits`` fixed random splits of one slice."""
    was_training = net.training
    net.eval()
    generator = torch.Generator().manual_seed(seed)
    total = 0.0
    for _ in range(splits):
        m_in, m_tg = split_measurements(mask, fraction, generator)
        total += float(split_loss(net, mode, kspace, m_in, m_tg, coil_maps))
    net.train(was_training)
    return total / splits


def _virtual_coils(
    kspace: torch.Tensor, coil_maps: torch.Tensor | None, virtual_coils: int | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Multi-coil ``(1, 2, T, N, H, W)`` k-space and its maps compressed as training compresses them
    (:func:`a2a_cli.training.data.auto_virtual_coils`); anything else unchanged."""
    if kspace.ndim != 6 or coil_maps is None:
        return kspace, coil_maps
    n = auto_virtual_coils(kspace.shape[3], virtual_coils)
    if n is None:
        return kspace, coil_maps
    item = compress_item({"kspace": kspace[0], "coil_maps": coil_maps[0]}, n)
    return item["kspace"].unsqueeze(0), item["coil_maps"].unsqueeze(0)


def adapt_network(
    net: torch.nn.Module, mode: str, kspace: torch.Tensor, mask: torch.Tensor, coil_maps: torch.Tensor | None = None,
    steps: int = 100, lr: float = DEFAULT_ADAPT_LR, fraction: float = DEFAULT_INPUT_FRACTION, seed: int = 0,
    reflections: bool = True, on_step: Callable[[int, float], None] | None = None,
    virtual_coils: int | None = None,
) -> tuple[torch.nn.Module, list[float]]:
    """A copy of ``net`` fine-tuned on one slice; returns ``(network in eval mode, loss per step)``.

    Each step draws a split (:func:`split_measurements`) and a reflection and takes one
    Adam step on :func:`split_loss`. ``virtual_coils``: the coils to fine-tune on, as in
    training (None: its default, :func:`a2a_cli.training.data.auto_virtual_coils`; 0: every
    coil; Cartesian data only).
    ``net`` itself is left untouched. ``steps`` 0, or a network without trainable
    parameters, returns an unchanged copy.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    tuned = copy.deepcopy(net)
    losses: list[float] = []
    if steps == 0 or not any(p.requires_grad for p in tuned.parameters()):  # --model tv: nothing to tune
        return tuned.eval(), losses
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(tuned.parameters(), lr=lr)
    tuned.train()
    radial = is_radial_mask(mask)
    if not radial:
        kspace, coil_maps = _virtual_coils(kspace, coil_maps, virtual_coils)
    with torch.enable_grad():
        for step in range(steps):
            if radial:
                loss = spoke_split_loss(tuned, mode, kspace, mask, coil_maps, fraction, generator)
            else:
                m_in, m_tg = split_measurements(mask, fraction, generator)
                g = Reflection.random(generator) if reflections else Reflection()
                loss = split_loss(tuned, mode, kspace, m_in, m_tg, coil_maps, g)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
            if on_step is not None:
                on_step(step + 1, losses[-1])
    return tuned.eval(), losses
