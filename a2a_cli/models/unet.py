"""Residual 2D U-Net applied to every frame, followed by exact data consistency.

>>> import torch
>>> from a2a_cli.physics import DynamicMRI
>>> mask = torch.zeros(1, 1, 4, 1, 37); mask[..., ::3] = 1; mask[..., 17:20] = 1
>>> physics = DynamicMRI(mask=mask)
>>> y = physics(torch.randn(1, 2, 4, 50, 37))        # odd sizes are padded inside
>>> net = ResidualUNet(channels=8, scales=2)
>>> x = net(y, physics)
>>> x.shape
torch.Size([1, 2, 4, 50, 37])
>>> bool(torch.allclose(physics(x), y, atol=1e-5))    # measured samples kept as measured
True
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..physics import MRIPhysics
from .base import ReconstructionNet, fold_time, unfold_time

__all__ = ["UNet2d", "ResidualUNet"]


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.LeakyReLU(0.1, inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.LeakyReLU(0.1, inplace=True),
    )


class UNet2d(nn.Module):
    """Plain 2D U-Net on ``(N, C, H, W)`` with H and W multiples of ``2**scales``.

    ``scales`` 2x2 average-pool downsamplings, channels doubling from ``channels`` at each,
    transposed-convolution upsampling and skip connections by concatenation. No
    normalisation layers: batch statistics would couple the frames folded into the batch.
    """

    def __init__(self, in_channels: int = 2, out_channels: int = 2, channels: int = 16, scales: int = 3):
        super().__init__()
        if scales < 0:
            raise ValueError(f"scales must be >= 0, got {scales}")
        if channels < 1:
            raise ValueError(f"channels must be positive, got {channels}")
        widths = [channels * 2**i for i in range(scales + 1)]
        self.down = nn.ModuleList([_double_conv(in_channels, widths[0])])
        self.down.extend(_double_conv(widths[i - 1], widths[i]) for i in range(1, scales + 1))
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i], widths[i - 1], 2, stride=2) for i in range(scales, 0, -1))
        self.merge = nn.ModuleList(_double_conv(2 * widths[i - 1], widths[i - 1]) for i in range(scales, 0, -1))
        self.out = nn.Conv2d(widths[0], out_channels, 1)
        with torch.no_grad():
            # start near zero so that the residual network starts near its input image
            self.out.weight.mul_(0.1)
            self.out.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            if i > 0:
                x = F.avg_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        skips.pop()
        for up, merge in zip(self.up, self.merge):
            x = merge(torch.cat((up(x), skips.pop()), dim=1))
        return self.out(x)


class ResidualUNet(ReconstructionNet):
    """``x = DC(x0 + unet(x0))``: a residual 2D U-Net on every frame, then exact data consistency.

    All frames go through the U-Net in one batch ``(B*T, 2, H', W')``, where H and W are
    padded (replicate) to multiples of ``2**scales`` and cropped back. ``data_consistency``
    applies ``physics.prox_l2(x, y, 0)``, which puts the measured samples back.
    Input/output layouts: see :mod:`a2a_cli.models.base`.
    """

    name = "unet"

    def __init__(
        self,
        channels: int = 16,
        scales: int = 3,
        data_consistency: bool = True,
        init: str = "view_sharing",
        share_window: Optional[int] = None,
        flip_ensemble: bool = False,
        shared_dc: bool = False,
    ):
        super().__init__(init=init, share_window=share_window, flip_ensemble=flip_ensemble, shared_dc=shared_dc)
        self.unet = UNet2d(2, 2, channels=int(channels), scales=int(scales))
        self.scales = int(scales)
        self.data_consistency = bool(data_consistency)
        self.config = dict(
            channels=int(channels),
            scales=int(scales),
            data_consistency=self.data_consistency,
            init=init,
            share_window=self.share_window,
            flip_ensemble=self.flip_ensemble,
            **self.common_config,
        )

    def reconstruct(self, x0: torch.Tensor, y: torch.Tensor, physics: MRIPhysics) -> torch.Tensor:
        z = fold_time(x0)
        h, w = z.shape[-2:]
        m = 2**self.scales
        ph, pw = (-h) % m, (-w) % m
        pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
        out = self.unet(F.pad(z, pad, mode="replicate") if ph or pw else z)
        out = out[..., pad[2]:pad[2] + h, pad[0]:pad[0] + w]
        x = unfold_time(z + out, x0.shape[0])
        return physics.prox_l2(x, y, 0.0) if self.data_consistency else x
