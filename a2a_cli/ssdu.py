"""Self-supervision by splitting k-space: SSDU (Yaman et al., MRM 2020).

Where every frame samples the same k-space (the commonest clinical Cartesian cine) or
there is one frame (a static scan), Artifact2Artifact has nothing to learn: every
target chunk repeats its input. SSDU splits the *samples* instead of the frames. At
each step each frame's measured samples are divided at random into an *input set*
(the network sees only these, its data consistency included) and a *loss set* (the
network output is scored on these only). At reconstruction the network sees every
sample.

The partition is drawn per sample of the batch and shared by its frames: a k-space
location (a whole phase-encode line for a line mask, a point for a 2D mask) is either
held out in every frame that measures it or in none, so the loss set cannot reach the
network through view sharing between frames either. One exception: a dynamic sequence
whose frames sample different locations is partitioned frame by frame, and a location
that several frames measure is never held out in all of them. There another frame's
sample of a held-out location is another state of the moving object, not the loss set's
data, and a location held out in every frame would never reach the network's
(view-shared) input in training while it always does at reconstruction: a network
trained that way overwrites it (16.3 dB against 25.3 dB with this rule,
benchmarks/SSDU.md). About ``loss_fraction`` of the
measured locations are held out, drawn with a Gaussian density around the k-space
centre (``selection="gaussian"``, as in the paper; ``"uniform"`` draws them evenly);
the centre itself (``centre_keep`` of the width and height) always stays in the input.

Radial data (:class:`~a2a_cli.nufft.RadialMRI`) are split by whole spokes
(:func:`partition_spokes`): every spoke crosses the centre, so there is no centre to
keep, and a spoke of another frame never coincides with a held-out one. Each frame
holds out the same number of spokes, drawn uniformly; a sequential (static) scan joins
all its spokes into one set first, so any of them may be held out. The input and loss
sets are sampling tensors of their own spokes, with their own density compensation.

The draw is a value (:class:`SSDUSplit`), returned by :meth:`SSDULoss.split` and
passed back to the loss; nothing is stored on the network:

>>> import torch
>>> from a2a_cli.physics import DynamicMRI
>>> _ = torch.manual_seed(0)
>>> mask = torch.zeros(1, 1, 3, 1, 16); mask[..., ::2] = 1       # the same lines in every frame
>>> physics = DynamicMRI(mask=mask)
>>> y = physics(torch.randn(2, 2, 3, 8, 16))
>>> loss = SSDULoss(loss_fraction=0.4)
>>> split = loss.split(y, physics)
>>> split.input_mask.shape, split.loss_mask.shape
(torch.Size([2, 1, 3, 1, 16]), torch.Size([2, 1, 3, 1, 16]))
>>> bool(((split.input_mask + split.loss_mask) == (mask != 0).float()).all())  # disjoint, and they cover the mask
True
>>> net = lambda y, physics: physics.A_adjoint(y)                # any network(y, physics)
>>> value = loss(net(split.y_input, split.physics_input), split)
>>> bool(value > 0)
True
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch
from torch import nn

from .errors import A2AError
from .nufft import RadialMRI, density_weighted_mse, is_radial_mask, select_spokes
from .physics import DynamicMRI, MRIPhysics, is_sequential

__all__ = ["SSDUError", "SSDUSplit", "SSDULoss", "partition_masks", "partition_spokes", "SELECTIONS"]

Metric = Union[nn.Module, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]

#: How the loss set is drawn among the measured locations.
SELECTIONS = ("gaussian", "uniform")

#: Seed of the fixed partitions that make the validation loss deterministic.
VALIDATION_SEED = 20200


class SSDUError(A2AError, ValueError):
    """An SSDU setting that does not fit the data (bad fraction, too few samples)."""


@dataclass(frozen=True)
class SSDUSplit:
    """One step's partition of the measured samples, and what the network and the loss need.

    Every tensor has ``repeats * B`` samples (the ``repeats`` partitions of one sample
    are consecutive: ``b * repeats + k``). Masks are float 0/1 ``(B*K, 1, T, H, W)``;
    k-space ``(B*K, 2, T, H, W)`` (``(B*K, 2, T, N, H, W)`` with N coils). Radial: the
    masks are the sampling tensors of the input and loss spokes ``(B*K, 4, T, k, samples)``
    and the k-space holds those spokes only (a sequential scan: one static set, no T axis).
    """

    y_input: torch.Tensor  # the input-set samples (zero elsewhere)
    physics_input: MRIPhysics  # the operator on the input set (the network's data consistency uses it)
    y_loss: torch.Tensor  # the loss-set samples (zero elsewhere)
    physics_loss: MRIPhysics  # the operator on the loss set (the loss applies it to the network output)
    input_mask: torch.Tensor
    loss_mask: torch.Tensor
    repeats: int = 1


def _check_fraction(value: float, name: str, upper: float) -> float:
    value = float(value)
    if not 0.0 < value < upper:
        raise SSDUError(f"{name} must be between 0 and {upper} (exclusive), got {value}")
    return value


def _centre_weights(h: int, w: int, lines: bool, selection: str, centre_keep: float, device) -> torch.Tensor:
    """Selection weight of every location, ``(W,)`` for lines or ``(H*W,)`` for points; 0 in the kept centre."""
    dw = (torch.arange(w, device=device, dtype=torch.float32) - w // 2) / (w / 2)  # -1 .. 1 across k-space
    if lines:
        r2 = dw**2
        keep = dw.abs() <= centre_keep + 1e-6
    else:
        dh = (torch.arange(h, device=device, dtype=torch.float32) - h // 2) / (h / 2)
        r2 = (dh[:, None] ** 2 + dw[None, :] ** 2).reshape(-1)
        keep = r2 <= centre_keep**2 + 1e-6
    if selection == "gaussian":
        # the density of Yaman et al.: a Gaussian of standard deviation a quarter of the width
        # (half the normalised radius), highest next to the kept centre
        weights = torch.exp(-r2 / (2 * 0.5**2))
    else:
        weights = torch.ones_like(r2)
    return torch.where(keep, torch.zeros_like(weights), weights)


def partition_masks(
    mask: torch.Tensor,
    loss_fraction: float = 0.4,
    selection: str = "gaussian",
    centre_keep: float = 0.08,
    generator: Optional[torch.Generator] = None,
    per_frame: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a sampling mask into ``(input_mask, loss_mask)``, both float 0/1 ``(B, 1, T, H, W)``.

    ``mask`` is ``(B, C, T, H, W)`` (any non-zero value is a sample; the channel axis is
    reduced to one). For each sample the measured locations (the union over frames:
    phase-encode lines when every frame is constant along H, points otherwise) outside
    the kept centre (``|k_w| <= centre_keep * W/2``, for points the ellipse of that
    radius in both axes) are candidates; ``round(loss_fraction * measured)`` of them are
    drawn without replacement (``selection`` weights) and held out in every frame that
    measures them. With ``per_frame`` (a moving object) a sample whose frames measure
    different locations is partitioned frame by frame instead, and a location that several
    of its frames measure is never held out in all of them. The two masks are disjoint and
    sum to the measured mask.

    >>> m = torch.zeros(1, 1, 2, 4, 20); m[..., ::2] = 1; m[..., 9:12] = 1
    >>> inp, out = partition_masks(m, 0.4, centre_keep=0.1, generator=torch.Generator().manual_seed(0))
    >>> int(out[0, 0, 0, 0].sum()), bool(inp[0, 0, :, :, 9:12].all())   # 5 of 12 lines; centre kept
    (5, True)
    """
    if mask.ndim != 5:
        raise SSDUError(f"SSDU needs a 5D mask (B, C, T, H, W), got shape {tuple(mask.shape)}")
    if selection not in SELECTIONS:
        raise SSDUError(f"selection must be one of {', '.join(SELECTIONS)}, got {selection!r}")
    _check_fraction(loss_fraction, "loss_fraction", 1.0)
    measured = (mask != 0).any(dim=1, keepdim=True)  # (B, 1, T, H, W)
    b, _, t, h, w = measured.shape
    loss_mask = torch.zeros(measured.shape, dtype=torch.float32, device=mask.device)
    for i in range(b):
        m = measured[i, 0]  # (T, H, W)
        lines = bool((m == m[:, :1, :]).all())
        frame_by_frame = per_frame and bool((m != m[:1]).any())
        groups = [m[j:j + 1] for j in range(t)] if frame_by_frame else [m]
        held = torch.cat([_hold_out(g, lines, loss_fraction, selection, centre_keep, generator) for g in groups])
        if frame_by_frame:
            held = _keep_one_occurrence(m, held, generator)
        loss_mask[i, 0] = held
    input_mask = measured.float() - loss_mask
    return input_mask, loss_mask


def _keep_one_occurrence(m: torch.Tensor, held: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    """Return to the input one random occurrence of every location that several frames measure and all of them hold out.

    ``m`` bool and ``held`` float ``(T, H, W)``. The view-shared input then covers every such
    location in training, as it does at reconstruction.
    """
    count = m.sum(dim=0)
    lost = (held.sum(dim=0) == count) & (count > 1)  # (H, W)
    if not lost.any():
        return held
    score = torch.rand(m.shape, generator=generator).to(m.device) * m  # a random measuring frame per location
    pick = torch.zeros_like(m)
    pick.scatter_(0, score.argmax(dim=0, keepdim=True), True)
    return held * ~(pick & lost)


def _hold_out(m: torch.Tensor, lines: bool, loss_fraction: float, selection: str, centre_keep: float,
              generator: Optional[torch.Generator]) -> torch.Tensor:
    """The loss set of the frames ``m`` (bool ``(T, H, W)``): locations drawn among their union, held out in all of them."""
    _, h, w = m.shape
    units = m.any(dim=(0, 1)) if lines else m.any(dim=0).reshape(-1)  # (W,) or (H*W,)
    n_units = int(units.sum())
    weights = _centre_weights(h, w, lines, selection, centre_keep, m.device) * units
    candidates = int((weights > 0).sum())
    n_loss = min(int(round(loss_fraction * n_units)), candidates)
    if n_loss < 1 or n_loss >= n_units:
        raise SSDUError(
            f"the mask measures {n_units} {'lines' if lines else 'points'} ({candidates} outside the kept centre): "
            f"too few to hold out {loss_fraction:.0%} of them for the loss and keep the rest as the input"
        )
    pick = torch.multinomial(weights.cpu(), n_loss, replacement=False, generator=generator).to(m.device)
    held = torch.zeros(units.shape, dtype=torch.bool, device=m.device)
    held[pick] = True
    held = held.reshape(1, 1, w) if lines else held.reshape(1, h, w)
    return (m & held).float()


def partition_spokes(mask: torch.Tensor, loss_fraction: float = 0.4,
                     generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Split every frame's spokes into ``(input_index, loss_index)``, long ``(B, T, k_in)`` and ``(B, T, k_loss)``.

    ``mask`` is a radial sampling tensor ``(B, 4, T, spokes, samples)``. Each frame holds out
    ``round(loss_fraction * spokes)`` spokes (at least one, and at least one stays in the
    input), drawn uniformly; the indices come sorted.

    >>> from a2a_cli.nufft import golden_angle_trajectory, radial_dcf, sampling_tensor
    >>> t = golden_angle_trajectory(2, 10, 8, 8)
    >>> m = sampling_tensor(t, radial_dcf(t))[None]
    >>> inp, out = partition_spokes(m, 0.2, torch.Generator().manual_seed(0))
    >>> inp.shape, out.shape
    (torch.Size([1, 2, 8]), torch.Size([1, 2, 2]))
    >>> sorted(inp[0, 0].tolist() + out[0, 0].tolist()) == list(range(10))   # disjoint, and they cover the frame
    True
    """
    _check_fraction(loss_fraction, "loss_fraction", 1.0)
    b, _, t, spokes, _ = mask.shape
    if spokes < 2:
        raise SSDUError(f"SSDU over spokes needs at least 2 spokes per frame to hold some out, got {spokes}")
    n_loss = min(max(int(round(loss_fraction * spokes)), 1), spokes - 1)
    order = torch.rand(b, t, spokes, generator=generator).argsort(-1).to(mask.device)
    return order[..., n_loss:].sort(-1).values, order[..., :n_loss].sort(-1).values


def _gather_spokes(y: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Spokes ``index`` ``(B, T, k)`` of radial k-space ``(B, 2, T, N, spokes, samples)``."""
    b, c, t, n, _, samples = y.shape
    gather = index[:, None, :, None, :, None].expand(b, c, t, n, index.shape[-1], samples)
    return torch.gather(y, 4, gather)


def _on_mask(y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``y`` ``(B, 2, T, [N], H, W)`` times a ``(B, 1, T, H, W)`` mask (coil axis broadcast)."""
    return y * (mask.unsqueeze(3) if y.ndim == 6 else mask)


def _repeat(t: Optional[torch.Tensor], k: int) -> Optional[torch.Tensor]:
    return t if t is None or k == 1 else t.repeat_interleave(k, dim=0)


class SSDULoss(nn.Module):
    """The SSDU loss: score the network, fed the input set, on the held-out loss set.

    ``loss_fraction`` (about 0.4) of each sample's measured locations form the loss set;
    ``repeats`` > 1 is the multi-mask variant: that many independent partitions of every
    sample per step (the batch grows ``repeats`` times; the loss is their mean).
    ``selection`` and ``centre_keep``: see :func:`partition_masks`. ``frames_per_step``
    (dynamic data only, :class:`~a2a_cli.physics.DynamicMRI`): train on a random window of
    that many consecutive frames per step, which bounds the cost of a step for long
    sequences (validation always scores every frame).

    The value is ``metric(A_loss x_net, y_loss) / mean(loss mask)``, normalised by the
    sampled fraction like :class:`~a2a_cli.splitting.Artifact2ArtifactLoss`, so the
    scale does not depend on the acceleration. ``metric`` defaults to the mean squared
    error. Works for dynamic (video output ``(B, 2, T, H, W)``), sequential and static
    (``T = 1``; image output ``(B, 2, H, W)``) data, single- and multi-coil: the loss
    operator is the given operator's class with the loss mask.
    """

    def __init__(
        self,
        loss_fraction: float = 0.4,
        repeats: int = 1,
        selection: str = "gaussian",
        centre_keep: float = 0.08,
        metric: Optional[Metric] = None,
        frames_per_step: Optional[int] = None,
    ):
        super().__init__()
        self.loss_fraction = _check_fraction(loss_fraction, "loss_fraction", 1.0)
        if isinstance(repeats, bool) or int(repeats) != repeats or repeats < 1:
            raise SSDUError(f"repeats (partitions per step) must be a positive integer, got {repeats!r}")
        self.repeats = int(repeats)
        if selection not in SELECTIONS:
            raise SSDUError(f"selection must be one of {', '.join(SELECTIONS)}, got {selection!r}")
        self.selection = selection
        self.centre_keep = _check_fraction(centre_keep, "centre_keep", 1.0)
        self.metric = nn.MSELoss() if metric is None else metric
        if frames_per_step is not None and (isinstance(frames_per_step, bool) or int(frames_per_step) < 1):
            raise SSDUError(f"frames_per_step must be a positive number of frames or None, got {frames_per_step!r}")
        self.frames_per_step = None if frames_per_step is None else int(frames_per_step)

    def check_frames(self, n_frames: int) -> None:
        """Any sequence length can be partitioned (the masks are checked at each split)."""

    def split(self, y: torch.Tensor, physics: MRIPhysics, generator: Optional[torch.Generator] = None,
              repeats: Optional[int] = None, window: bool = True) -> SSDUSplit:
        """Draw ``repeats`` (default: the configured number) partitions of every sample of ``y``.

        ``y`` ``(B, 2, T, H, W)`` or ``(B, 2, T, N, H, W)``; ``physics`` carries a 5D mask
        (batch 1 or B) and, for multi-coil data, coil maps ``(B, N, H, W)``. With
        ``frames_per_step`` and dynamic data (``window``), a random window of frames first.
        """
        if y.ndim not in (5, 6) or y.shape[1] != 2:
            raise SSDUError(f"SSDU needs k-space (B, 2, T, H, W) or (B, 2, T, N, H, W), got shape {tuple(y.shape)}")
        mask = getattr(physics, "mask", None)
        if mask is None or mask.ndim != 5:
            raise SSDUError("SSDU needs an operator with a 5D mask (B, C, T, H, W), one mask per frame")
        k = self.repeats if repeats is None else int(repeats)
        b = y.shape[0]
        if mask.shape[0] not in (1, b):
            raise SSDUError(f"the mask batch ({mask.shape[0]}) must be 1 or the batch of y ({b})")
        mask = mask.expand(b, *mask.shape[1:])
        t = y.shape[2]
        radial = bool(getattr(physics, "radial", False))
        moving = isinstance(physics, DynamicMRI) or (radial and not is_sequential(physics))
        if window and self.frames_per_step is not None and moving and t > self.frames_per_step:
            start = int(torch.randint(t - self.frames_per_step + 1, (), generator=generator))
            y = y[:, :, start:start + self.frames_per_step]
            if mask.shape[2] == t:
                mask = mask[:, :, start:start + self.frames_per_step]
        if radial:
            return self._split_spokes(y, physics, mask, generator, k)
        mask_k = _repeat(mask, k)
        per_frame = isinstance(physics, DynamicMRI) and not is_sequential(physics)  # a moving object
        input_mask, loss_mask = partition_masks(mask_k, self.loss_fraction, self.selection, self.centre_keep, generator,
                                                per_frame=per_frame)
        y_k = _repeat(y, k)
        maps = _repeat(physics.coil_maps, k)
        kind = type(physics)
        cg = getattr(physics, "cg_iterations", 10)
        return SSDUSplit(
            y_input=_on_mask(y_k, input_mask),
            physics_input=kind(mask=input_mask, coil_maps=maps, cg_iterations=cg),
            y_loss=_on_mask(y_k, loss_mask),
            physics_loss=kind(mask=loss_mask, coil_maps=maps, cg_iterations=cg),
            input_mask=input_mask,
            loss_mask=loss_mask,
            repeats=k,
        )

    def _split_spokes(self, y: torch.Tensor, physics: MRIPhysics, mask: torch.Tensor,
                      generator: Optional[torch.Generator], k: int) -> SSDUSplit:
        """:meth:`split` of radial data ``(B, 2, T, N, spokes, samples)`` by whole spokes (:func:`partition_spokes`)."""
        sequential = is_sequential(physics)
        if sequential:  # a static object: all its spokes form one set, any of them may be held out
            y, joined = physics.with_mask(mask).time_average(y)  # type: ignore[attr-defined]
            y, mask = y.unsqueeze(2), joined.mask.unsqueeze(2)
        y_k, mask_k = _repeat(y, k), _repeat(mask, k)
        inp, out = partition_spokes(mask_k, self.loss_fraction, generator)
        m_in, m_out = select_spokes(mask_k, inp), select_spokes(mask_k, out)
        y_in, y_out = _gather_spokes(y_k, inp), _gather_spokes(y_k, out)
        if sequential:  # static operators: the network's output is one image
            m_in, m_out, y_in, y_out = m_in[:, :, 0], m_out[:, :, 0], y_in[:, :, 0], y_out[:, :, 0]
        maps = _repeat(physics.coil_maps, k)
        cg = getattr(physics, "cg_iterations", 2)
        return SSDUSplit(y_input=y_in, physics_input=RadialMRI(m_in, maps, cg), y_loss=y_out,
                         physics_loss=RadialMRI(m_out, maps, cg), input_mask=m_in, loss_mask=m_out, repeats=k)

    def forward(self, x_net: torch.Tensor, split: SSDUSplit) -> torch.Tensor:
        """The loss of ``x_net = net(split.y_input, split.physics_input)``."""
        if x_net.shape[0] != split.y_loss.shape[0]:
            raise SSDUError(
                f"the network output has batch {x_net.shape[0]} but the split has {split.y_loss.shape[0]} samples; "
                "run the network on split.y_input"
            )
        if is_radial_mask(split.loss_mask) and isinstance(self.metric, nn.MSELoss) and self.metric.reduction == "mean":
            # radial spokes: each sample weighted by its density compensation (+3.6 dB on the sequential radial case)
            return density_weighted_mse(split.physics_loss.A(x_net) - split.y_loss, split.loss_mask)
        value = self.metric(split.physics_loss.A(x_net), split.y_loss)
        if value.ndim > 0:  # per-sample metrics
            value = value.mean()
        return value / torch.clamp(split.loss_mask[:, :1].mean(), min=1e-12)  # channel 0: sampled (radial too)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, y: torch.Tensor, physics: MRIPhysics, **kwargs) -> torch.Tensor:
        """Deterministic validation loss: fixed-seed partitions (the same for the same mask).

        The network runs in eval mode (restored afterwards); two partitions per sample
        lower the variance of the estimate.
        """
        generator = torch.Generator().manual_seed(VALIDATION_SEED)
        split = self.split(y, physics, generator=generator, repeats=2, window=False)
        was_training = model.training
        model.eval()
        try:
            return self(model(split.y_input, split.physics_input), split)
        finally:
            model.train(was_training)
