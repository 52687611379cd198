"""Compressed sensing as a model: the TV (and locally low-rank) reconstruction alone, weights chosen from the data.

``a2a train FILES --model tv`` learns nothing by gradient: its set-up chooses the two TV
weights (spatial, temporal and low-rank) by k-space cross-validation on the training slices (:func:`a2a_cli.tv.select_weights`)
and the checkpoint keeps them; ``a2a reconstruct`` then solves the TV problem
(:func:`a2a_cli.tv.tv_reconstruct`) on every slice. It is the strong classical baseline
that the networks must beat, run by the same commands on the same files, with no ground
truth and no hand tuning.

>>> import torch
>>> from a2a_cli.physics import DynamicMRI
>>> from a2a_cli.tv import TVWeights
>>> mask = torch.zeros(1, 1, 4, 1, 16)
>>> for t in range(4):
...     mask[:, :, t, :, t::4] = 1
>>> physics = DynamicMRI(mask=mask)
>>> x = torch.zeros(1, 2, 4, 16, 16); x[:, 0, :, 4:12, 4:12] = 1
>>> model = TVModel()
>>> model.set_tv_weights(TVWeights(0.01, 0.1))
>>> out = model(physics(x), physics)
>>> out.shape, sum(p.numel() for p in model.parameters())
(torch.Size([1, 2, 4, 16, 16]), 0)
"""
from __future__ import annotations

from typing import Optional

import torch

from ..physics import MRIPhysics
from .base import ReconstructionNet

__all__ = ["TVModel"]


class TVModel(ReconstructionNet):
    """The ``init="tv"`` image itself: no trainable parameters (``share_window``: the view-sharing start's blocks)."""

    name = "tv"

    def __init__(self, share_window: Optional[int] = None):
        super().__init__(init="tv", share_window=share_window)
        self.config = dict(share_window=self.share_window)

    def reconstruct(self, x0: torch.Tensor, y: torch.Tensor, physics: MRIPhysics) -> torch.Tensor:
        return x0
