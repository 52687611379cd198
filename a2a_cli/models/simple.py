"""Toy networks for examples and tests: a fully connected auto-encoder and a frame-folding wrapper.

They reproduce the reference example of the Artifact2Artifact loss (an auto-encoder applied
to every frame of a tiny sequence); they are not reconstruction networks.

>>> import torch
>>> x = torch.rand(1, 2, 4, 4, 4)                     # (B, C, T, H, W)
>>> net = TimeAgnosticNet(AutoEncoder(32, 2, 2))      # 32 = 2 * 4 * 4 values per frame
>>> net(x, None).shape                                # extra arguments (e.g. physics) are ignored
torch.Size([1, 2, 4, 4, 4])
>>> AutoEncoder(32, 2, 2)(torch.rand(3, 2, 4, 4)).shape
torch.Size([3, 2, 4, 4])
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .base import fold_time, unfold_time

__all__ = ["AutoEncoder", "TimeAgnosticNet"]


class AutoEncoder(nn.Module):
    """Fully connected auto-encoder on everything but the batch axis.

    ``x`` of any shape ``(B, ...)`` with ``prod(...) == dim_input`` is flattened, encoded by
    ``Linear(dim_input, dim_mid) -> ReLU -> Linear(dim_mid, dim_hid)``, decoded by
    ``Linear(dim_hid, dim_mid) -> ReLU -> Linear(dim_mid, dim_input)`` and reshaped back.
    """

    def __init__(self, dim_input: int, dim_mid: int, dim_hid: int):
        super().__init__()
        self.dim_input = dim_input
        self.encoder = nn.Sequential(nn.Linear(dim_input, dim_mid), nn.ReLU(), nn.Linear(dim_mid, dim_hid))
        self.decoder = nn.Sequential(nn.Linear(dim_hid, dim_mid), nn.ReLU(), nn.Linear(dim_mid, dim_input))

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        """``(B, ...)`` -> ``(B, ...)``; further arguments are accepted and ignored."""
        flat = x.reshape(x.shape[0], -1)
        if flat.shape[1] != self.dim_input:
            raise ValueError(
                f"AutoEncoder expects {self.dim_input} values per sample, got {flat.shape[1]} (input shape {tuple(x.shape)})"
            )
        return self.decoder(self.encoder(flat)).reshape(x.shape)


class TimeAgnosticNet(nn.Module):
    """Apply an image network to every frame of a sequence.

    ``x`` ``(B, C, T, H, W)`` is folded to ``(B*T, C, H, W)``, passed as ``net(x, *args, **kwargs)``
    and unfolded back to ``(B, C, T, H, W)``. A 4D input ``(B, C, H, W)`` goes to ``net`` unchanged.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if x.ndim == 4:
            return self.net(x, *args, **kwargs)
        if x.ndim != 5:
            raise ValueError(f"TimeAgnosticNet expects (B, C, T, H, W) or (B, C, H, W), got shape {tuple(x.shape)}")
        return unfold_time(self.net(fold_time(x), *args, **kwargs), x.shape[0])
