"""The training loss: one object for every sequence length of a run, and validation.

Every loss follows one contract (:mod:`a2a_cli.splitting`, :mod:`a2a_cli.ssdu`):
``split = loss.split(y, physics, generator=g)`` draws a split as a value,
``x_net = net(split.y_input, split.physics_input)`` reconstructs from its input part,
``loss(x_net, split)`` scores the output on the held-out part, and
``loss.evaluate(net, y, physics)`` is the deterministic validation score.
"""
from __future__ import annotations

import contextlib
from typing import Mapping, Optional, Union

import torch

from ..config import TrainConfig
from ..data import KspaceDataset
from ..errors import InputError
from ..nufft import RadialMRI, is_radial_mask
from ..physics import DynamicMRI, MRIPhysics, SequentialMRI
from ..splitting import Artifact2ArtifactLoss, Phase2PhaseLoss
from ..ssdu import SSDULoss
from .data import item_batch
from .options import SSDU_FRAMES_PER_STEP

__all__ = ["SplittingLoss", "make_loss", "make_physics", "physics_of", "validate"]

SplittingLoss = Union[Artifact2ArtifactLoss, Phase2PhaseLoss, SSDULoss]


def make_physics(mode: str, mask: torch.Tensor, coil_maps: Optional[torch.Tensor] = None) -> MRIPhysics:
    """The operator for a batch: ``mask`` ``(B, 1, T, H, W)``, optional complex maps ``(B, N, H, W)``;
    a radial sampling tensor ``(B, 4, T, spokes, samples)`` gives :class:`~a2a_cli.nufft.RadialMRI`."""
    if is_radial_mask(mask):
        return RadialMRI(mask, coil_maps, sequential=mode == "sequential")  # type: ignore[return-value]
    cls = DynamicMRI if mode == "dynamic" else SequentialMRI
    return cls(mask=mask, coil_maps=coil_maps)


def physics_of(mode: str, batch: dict) -> MRIPhysics:
    """:func:`make_physics` for a batch dict (``mask``, optional ``coil_maps``)."""
    return make_physics(mode, batch["mask"], batch.get("coil_maps"))


def make_loss(cfg: TrainConfig, dynamic: bool, frame_counts: Mapping[int, str], device: torch.device) -> SplittingLoss:
    """The run's loss (``cfg.loss``: a2a, p2p or ssdu), checked against every sequence length of the data
    (``frame_counts``: each length, and a file that has it, named in the message).

    A split size that does not fit is reported now, before the run directory is made.
    """
    counts = sorted(frame_counts)
    try:
        if cfg.loss == "ssdu":
            return SSDULoss(loss_fraction=cfg.ssdu_fraction, repeats=cfg.ssdu_masks,
                            frames_per_step=SSDU_FRAMES_PER_STEP if dynamic else None)
        if cfg.loss == "p2p":
            loss: SplittingLoss = Phase2PhaseLoss(dynamic_model=dynamic, device=device)
        else:
            sizes = list(cfg.split_size)
            shuffle = (not dynamic and not cfg.neighbours_only) if cfg.shuffle_frames is None else cfg.shuffle_frames
            loss = Artifact2ArtifactLoss(
                split_size=None if not sizes else sizes[0] if len(sizes) == 1 else tuple(sizes),
                dynamic_model=dynamic, all_pairs=cfg.all_pairs, neighbours_only=cfg.neighbours_only,
                shuffle_frames=shuffle, device=device,
            )
    except ValueError as exc:
        raise InputError(frame_counts[counts[0]], f"sequences of {counts[0]} frames: {exc}") from None
    for frames in counts:
        try:
            loss.check_frames(frames)
        except ValueError as exc:
            raise InputError(frame_counts[frames], f"sequences of {frames} frames: {exc}") from None
    return loss


def _one_pass(net: torch.nn.Module) -> contextlib.AbstractContextManager:
    """The network without its reflection ensemble, where it has one (validation only ranks checkpoints)."""
    single = getattr(net, "single_pass", None)
    return single() if single is not None else contextlib.nullcontext()


@torch.no_grad()
def validate(loss: SplittingLoss, net: torch.nn.Module, dataset: KspaceDataset, mode: str, device: torch.device,
             rank: int = 0, world: int = 1) -> float:
    """Mean deterministic self-supervised loss over every slice of ``dataset`` (no ground truth).

    The network runs once per input (no reflection ensemble: eight times cheaper, and
    validation only ranks checkpoints). With ``world`` > 1 every rank scores the slices
    ``rank::world`` and the sums are gathered, so all ranks get the very same value
    (their early-stopping and best-checkpoint decisions, which lead to collectives,
    cannot diverge). Every rank must call it; pass the bare network, not the DDP
    wrapper, so that uneven slice counts per rank are fine.
    """
    total, count = 0.0, 0
    with _one_pass(net):
        for i in range(rank, len(dataset), world):
            item = item_batch(dataset[i], device)
            total += float(loss.evaluate(net, item["kspace"], physics_of(mode, item)))
            count += 1
    if world > 1:
        # all_gather and a sum in rank order: bit-identical on every rank, unlike some all_reduce algorithms
        mine = torch.tensor([total, float(count)], dtype=torch.float64, device=device)
        parts = [torch.empty_like(mine) for _ in range(world)]
        torch.distributed.all_gather(parts, mine)
        total, count = (float(v) for v in sum(p.cpu() for p in parts))
    return total / max(count, 1)
