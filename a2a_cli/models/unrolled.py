"""Unrolled network (MoDL-style): a small CNN prior alternating with data consistency.

>>> import torch
>>> from a2a_cli.physics import DynamicMRI
>>> mask = torch.zeros(1, 1, 4, 1, 16); mask[..., ::4] = 1; mask[..., 7:9] = 1
>>> physics = DynamicMRI(mask=mask)
>>> y = physics(torch.randn(1, 2, 4, 16, 16))
>>> net = UnrolledNet(iterations=2, channels=8)
>>> x = net(y, physics)
>>> x.shape
torch.Size([1, 2, 4, 16, 16])
>>> bool(torch.allclose(physics(x), y, atol=1e-5))    # lam = 0: exact data consistency
True
>>> soft = UnrolledNet(learn_lambda=True)
>>> round(float(soft.lam.detach()), 3)                 # starts at 0.05 when lam is 0
0.05
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..physics import MRIPhysics
from .base import ConvStack, ReconstructionNet, unfold_time
from .cnn import stack_neighbours

__all__ = ["UnrolledNet"]

#: Starting value of a learnt lambda when none (0) is given: close to hard data consistency.
DEFAULT_LEARNT_LAMBDA = 0.05


class UnrolledNet(ReconstructionNet):
    """``x <- prox_l2(x + cnn(x), y, lam)``, repeated ``iterations`` times from ``x0``.

    The prior is a residual CNN (``depth`` 3x3 layers of ``channels`` features, ReLU),
    shared by all iterations; all frames go through it in one batch. It is frame-wise by
    default; with ``neighbours = k`` it sees frames ``t-k .. t+k`` as extra input channels
    (as ``cnn2dt`` does) and refines frame ``t`` from them. The data
    consistency step solves ``argmin_x ||A x - y||^2 + lam ||x - z||^2``: ``lam = 0`` (default)
    keeps the measured samples exactly. With ``learn_lambda`` lam is a learnt positive scalar
    (softplus-parametrised) starting at ``lam`` (or 0.05 if ``lam`` is 0). Lam is
    dimensionless: the data are normalised before the network.
    Input/output layouts: see :mod:`a2a_cli.models.base`.
    """

    name = "unrolled"

    def __init__(
        self,
        iterations: int = 2,
        channels: int = 32,
        depth: int = 5,
        lam: float = 0.0,
        learn_lambda: bool = False,
        init: str = "view_sharing",
        share_window: Optional[int] = None,
        flip_ensemble: bool = False,
        shared_dc: bool = False,
        neighbours: int = 0,
    ):
        super().__init__(init=init, share_window=share_window, flip_ensemble=flip_ensemble, shared_dc=shared_dc)
        iterations, lam, neighbours = int(iterations), float(lam), int(neighbours)
        if iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {iterations}")
        if lam < 0 or not math.isfinite(lam):
            raise ValueError(f"lam must be a finite number >= 0, got {lam}")
        if neighbours < 0:
            raise ValueError(f"neighbours must be >= 0, got {neighbours}")
        self.iterations = iterations
        self.learn_lambda = bool(learn_lambda)
        self.neighbours = neighbours
        if neighbours:
            # frames are mixed: one scale per sample, and each iteration reaches k frames further
            self.frame_wise = False
            self.temporal_context = neighbours * iterations
        self.prior = ConvStack(2 * (2 * neighbours + 1), 2, channels=int(channels), depth=int(depth))
        if self.learn_lambda:
            start = lam if lam > 0 else DEFAULT_LEARNT_LAMBDA
            # inverse softplus, written to stay finite for large starting values
            raw = start + math.log(-math.expm1(-start))
            self.lam_raw = nn.Parameter(torch.tensor(raw, dtype=torch.float32))
        else:
            self.register_buffer("lam_raw", None)
            self._lam = lam
        self.config = dict(
            iterations=iterations,
            channels=int(channels),
            depth=int(depth),
            lam=lam,
            learn_lambda=self.learn_lambda,
            init=init,
            share_window=self.share_window,
            flip_ensemble=self.flip_ensemble,
            **self.common_config,
        )
        if neighbours:
            self.config["neighbours"] = neighbours

    @property
    def lam(self) -> float | torch.Tensor:
        """The data-consistency weight (a tensor when learnt)."""
        return F.softplus(self.lam_raw) if self.learn_lambda else self._lam

    def reconstruct(self, x0: torch.Tensor, y: torch.Tensor, physics: MRIPhysics) -> torch.Tensor:
        lam = self.lam
        x = x0
        for _ in range(self.iterations):
            x = x + unfold_time(self.prior(stack_neighbours(x, self.neighbours)), x.shape[0])
            x = physics.prox_l2(x, y, lam)
        return x
