"""2D+t convolutional network: each frame is refined from itself and its neighbours.

Neighbouring frames enter as extra input channels of a 2D CNN, which keeps the cost of
2D convolutions (3D convolutions were measured too slow for CPU training).

>>> import torch
>>> from a2a_cli.physics import DynamicMRI
>>> mask = torch.zeros(2, 1, 6, 1, 16); mask[..., ::4] = 1; mask[..., 7:9] = 1
>>> physics = DynamicMRI(mask=mask)
>>> y = physics(torch.randn(2, 2, 6, 16, 16))
>>> net = Conv2dtNet(neighbours=1, channels=8, depth=3)
>>> x = net(y, physics)
>>> x.shape
torch.Size([2, 2, 6, 16, 16])
>>> bool(torch.allclose(physics(x), y, atol=1e-5))
True
"""
from __future__ import annotations

from typing import Optional

import torch

from ..physics import MRIPhysics
from .base import ConvStack, ReconstructionNet, fold_time, unfold_time

__all__ = ["Conv2dtNet", "stack_neighbours"]


def stack_neighbours(x: torch.Tensor, k: int) -> torch.Tensor:
    """``(B, C, T, H, W)`` -> ``(B*T, C*(2k+1), H, W)``: frames ``t-k .. t+k`` of each frame as channels.

    The sequence ends are padded by repeating the first and last frames. Channels are
    ordered ``(c, offset)``: all offsets of channel 0 first. ``k = 0`` is :func:`fold_time`.
    """
    if k == 0:
        return fold_time(x)
    b, c, t, h, w = x.shape
    offsets = torch.arange(-k, k + 1, device=x.device)
    idx = (torch.arange(t, device=x.device)[:, None] + offsets[None, :]).clamp_(0, t - 1)  # (T, 2k+1)
    z = x[:, :, idx]  # (B, C, T, 2k+1, H, W)
    return z.permute(0, 2, 1, 3, 4, 5).reshape(b * t, c * (2 * k + 1), h, w)


class Conv2dtNet(ReconstructionNet):
    """``x_t = DC(x0_t + cnn(x0_{t-k}, ..., x0_{t+k}))`` for every frame ``t``.

    A ``depth``-layer 2D CNN with ``channels`` features takes the ``2k+1`` frames around
    ``t`` as ``2*(2k+1)`` input channels (ends padded by repetition) and predicts a residual
    for frame ``t``; all frames are processed in one batch. A static image is a sequence
    of one frame. ``data_consistency`` applies exact DC, ``physics.prox_l2(x, y, 0)``.
    The intensity scale is per sample (not per frame) because frames are mixed.
    Input/output layouts: see :mod:`a2a_cli.models.base`.
    """

    name = "cnn2dt"
    frame_wise = False

    def __init__(
        self,
        neighbours: int = 1,
        channels: int = 32,
        depth: int = 5,
        data_consistency: bool = True,
        init: str = "view_sharing",
        share_window: Optional[int] = None,
        flip_ensemble: bool = False,
        shared_dc: bool = False,
    ):
        super().__init__(init=init, share_window=share_window, flip_ensemble=flip_ensemble, shared_dc=shared_dc)
        neighbours = int(neighbours)
        if neighbours < 0:
            raise ValueError(f"neighbours must be >= 0, got {neighbours}")
        self.neighbours = neighbours
        self.temporal_context = neighbours
        self.cnn = ConvStack(2 * (2 * neighbours + 1), 2, channels=int(channels), depth=int(depth))
        self.data_consistency = bool(data_consistency)
        self.config = dict(
            neighbours=neighbours,
            channels=int(channels),
            depth=int(depth),
            data_consistency=self.data_consistency,
            init=init,
            share_window=self.share_window,
            flip_ensemble=self.flip_ensemble,
            **self.common_config,
        )

    def reconstruct(self, x0: torch.Tensor, y: torch.Tensor, physics: MRIPhysics) -> torch.Tensor:
        residual = self.cnn(stack_neighbours(x0, self.neighbours))
        x = x0 + unfold_time(residual, x0.shape[0])
        return physics.prox_l2(x, y, 0.0) if self.data_consistency else x
