"""The input path shared by every reconstruction network.

A reconstruction network is called as ``net(y, physics)`` and returns the image:

* dynamic: ``physics`` a :class:`~a2a_cli.physics.DynamicMRI` with a 5D mask, ``y`` of shape
  ``(B, 2, T, H, W)`` (``(B, 2, T, N, H, W)`` with N coils) -> ``x`` ``(B, 2, T, H, W)``;
* static: a ``DynamicMRI`` with a 4D mask ``(B, C, H, W)``, ``y`` ``(B, 2, H, W)``
  (``(B, 2, N, H, W)``) -> ``x`` ``(B, 2, H, W)``;
* sequential: a :class:`~a2a_cli.physics.SequentialMRI` with ``y`` ``(B, 2, T, H, W)``: the
  time series is first collapsed with ``physics.time_average(y)``, then treated as static.

Static data is handled as a sequence of one frame, so each network only implements the
dynamic case (:meth:`ReconstructionNet.reconstruct`).

>>> x = torch.randn(2, 2, 3, 8, 8)                   # (B, C, T, H, W)
>>> fold_time(x).shape                                # frames folded into the batch
torch.Size([6, 2, 8, 8])
>>> bool(torch.equal(unfold_time(fold_time(x), 2), x))
True
>>> bool(torch.equal(fold_time(x)[4], x[1, :, 1]))    # sample-major order: (b, t) -> b*T + t
True
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, ClassVar, Iterator, NamedTuple, Optional

import torch
from torch import nn

from ..physics import MRIPhysics, Reflection, is_sequential
from ..tv import TVWeights, tv_reconstruct, unit_scale

__all__ = ["INITS", "ReconstructionNet", "as_dynamic", "WindowGeometry", "window_geometry", "fold_time", "unfold_time", "ConvStack"]

#: Ways to form the initial image from the measurements.
INITS = ("view_sharing", "adjoint", "tv")
#: Where ``shared_dc`` starts the data consistency on the view-shared samples: 3/4 of the way to them.
SHARED_START = 0.75


class WindowGeometry(NamedTuple):
    """How a network's frames depend on each other, which says how a sequence may be cut into windows.

    ``block``: windows must start on multiples of it (the view-sharing block; 0: the whole
    sequence is one block, so it cannot be windowed). ``context``: frames each output
    frame depends on beyond its block, on each side (carried as overlap).
    """

    block: int
    context: int


def window_geometry(net: nn.Module) -> WindowGeometry:
    """The :class:`WindowGeometry` of any network: its own for a :class:`ReconstructionNet`, else frame by frame.

    >>> from a2a_cli.models import build_model
    >>> window_geometry(build_model("cnn2dt", neighbours=2, share_window=4))
    WindowGeometry(block=4, context=2)
    >>> window_geometry(build_model("unrolled")).block   # view sharing over the whole sequence
    0
    """
    if isinstance(net, ReconstructionNet):
        return net.window
    return WindowGeometry(block=1, context=int(getattr(net, "temporal_context", 0)))


def fold_time(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, T, H, W)`` -> ``(B*T, C, H, W)``: frames become batch entries."""
    b, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(b * t, c, h, w)


def unfold_time(x: torch.Tensor, batch: int) -> torch.Tensor:
    """Inverse of :func:`fold_time`: ``(B*T, C, H, W)`` -> ``(B, C, T, H, W)``."""
    bt, c, h, w = x.shape
    return x.reshape(batch, bt // batch, c, h, w).transpose(1, 2)


class ConvStack(nn.Sequential):
    """Plain 2D CNN: ``depth`` 3x3 convolutions with ReLU between them, on ``(N, C, H, W)``.

    ``in_channels -> channels -> ... -> channels -> out_channels``. The last layer starts
    small so that a residual network built on it starts close to the identity (its input
    image), while still passing gradients to every layer from the first step.
    """

    def __init__(self, in_channels: int, out_channels: int, channels: int = 32, depth: int = 5):
        if depth < 2:
            raise ValueError(f"depth must be at least 2, got {depth}")
        if channels < 1:
            raise ValueError(f"channels must be positive, got {channels}")
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
        last = nn.Conv2d(channels, out_channels, 3, padding=1)
        with torch.no_grad():
            last.weight.mul_(0.1)
            last.bias.zero_()
        layers.append(last)
        super().__init__(*layers)


def _check_common(init: str, share_window: Optional[int]) -> Optional[int]:
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}; got {init!r}")
    if share_window is not None:
        share_window = int(share_window)
        if share_window < 1:
            raise ValueError(f"share_window must be a positive number of frames or None, got {share_window}")
    return share_window


def as_dynamic(y: torch.Tensor, physics: MRIPhysics) -> tuple[torch.Tensor, MRIPhysics, bool]:
    """The dynamic problem every network solves: ``(y, physics, static)``.

    Sequential data are first collapsed with ``physics.time_average``; one image
    (a 4D mask) becomes a sequence of one frame (``static`` True).
    """
    if is_sequential(physics):
        y, physics = physics.time_average(y)
    static = physics.mask.ndim == 4
    if static:
        # one image is a sequence of one frame: a single code path for both cases
        y = y.unsqueeze(2)
        physics = physics.with_mask(physics.mask.unsqueeze(2))
    return y, physics, static


class ReconstructionNet(nn.Module):
    """Base class: ``forward(y, physics, scale=None) -> x`` with the initial image and intensity scaling.

    Subclasses implement :meth:`reconstruct` on dynamic, normalised data and store their
    constructor arguments in ``self.config`` so that ``build_model(cls.name, **config)``
    rebuilds them. What a sequence cut into windows needs to know (view-sharing blocks,
    frames of context) the network says itself, in :attr:`window`.

    ``init="view_sharing"`` (default) starts from the zero-filled adjoint of the view-shared
    k-space: each frame's unsampled locations are filled with the k-space averaged over the
    frames (all of them, or blocks of ``share_window`` frames) that sampled them. It keeps
    every measured sample and was measured far better than the plain zero-filled adjoint
    (``init="adjoint"``, ``physics.A_adjoint(y)``), which stays available.

    ``flip_ensemble`` averages the eval-mode output over the eight exact reflections of the
    data (:class:`~a2a_cli.physics.Reflection`: mirror in H and W, conjugation). Every
    variant keeps the measured samples, so the average does too; it costs eight passes and
    pays off for networks trained on reflected data (``a2a train --augment``).

    ``init="tv"`` starts from the total-variation regularised reconstruction
    (:func:`~a2a_cli.tv.tv_reconstruct`, compressed sensing, started from view sharing)
    whose weights training chose by k-space cross-validation
    (:meth:`set_tv_weights`; they are kept in the state dict). The network then refines
    what compressed sensing would give.

    ``shared_dc`` (Cartesian dynamic data, with ``init="view_sharing"``) makes the data
    consistency draw on the view-shared samples as well as the frame's own
    (:meth:`~a2a_cli.physics.DynamicMRI.with_shared_samples`): each step moves the image's
    k-space a learnt fraction of the way (starting at 3/4) to the samples that other frames
    of the block measured, and the network alone fills what no frame measured. Without
    it, a network trained by splitting nearly disjoint frames overwrote the better shared
    samples at reconstruction: every self-supervised target is a sample removed from the
    input, and there it was the sequence's only sample, so training inputs have holes the
    whole sequence does not (benchmarks/RESULTS.md, "Dynamic mode and view sharing").
    """

    name: ClassVar[str] = ""
    #: Networks that treat every frame separately scale every frame by its own statistic,
    #: so that a frame's reconstruction does not depend on the other frames of the batch.
    frame_wise: ClassVar[bool] = True
    #: Frames on each side that one output frame depends on (beyond view sharing), so
    #: that windowed reconstruction can carry enough context.
    temporal_context: int = 0

    def __init__(self, init: str = "view_sharing", share_window: Optional[int] = None, flip_ensemble: bool = False,
                 shared_dc: bool = False):
        super().__init__()
        self.share_window = _check_common(init, share_window)
        self.init = init
        self.flip_ensemble = bool(flip_ensemble)
        self.shared_dc = bool(shared_dc)
        if self.shared_dc:
            # a logit: the shared samples' weight starts at 3 to 1 against the network's estimate
            self.shared_logit = nn.Parameter(torch.tensor(math.log(SHARED_START / (1 - SHARED_START))))
        if init == "tv":
            # (spatial, temporal, low_rank, fourier, reweight); NaN until training chooses them
            self.register_buffer("tv_weights", torch.full((5,), math.nan))
        self.config: dict[str, Any] = {}

    def set_tv_weights(self, weights: TVWeights) -> None:
        """Set the weights of the ``init="tv"`` reconstruction (chosen by :func:`~a2a_cli.tv.select_weights`)."""
        if self.init != "tv":
            raise ValueError(f"set_tv_weights needs init='tv', this network has init={self.init!r}")
        self.tv_weights.copy_(torch.tensor(weights.as_list()))

    @property
    def tv_chosen(self) -> bool:
        """Whether an ``init="tv"`` network has its weights (always True for other inits)."""
        return self.init != "tv" or bool(torch.isfinite(self.tv_weights).all())

    @property
    def shared_fraction(self) -> torch.Tensor:
        """How far the data consistency moves the image towards the view-shared samples (learnt, 0 to 1)."""
        return torch.sigmoid(self.shared_logit)

    @property
    def common_config(self) -> dict[str, Any]:
        """Options of the base class that a subclass's ``config`` carries only when set
        (checkpoints written before an option existed rebuild unchanged)."""
        return {"shared_dc": True} if self.shared_dc else {}

    @property
    def window(self) -> WindowGeometry:
        """The network's :class:`WindowGeometry`: view-sharing blocks of ``share_window`` frames, ``temporal_context`` each side."""
        block = 1
        if self.init in ("view_sharing", "tv"):
            block = int(self.share_window or 0)  # None: the whole sequence is one block
        return WindowGeometry(block=block, context=int(self.temporal_context))

    # -- input path -------------------------------------------------------------------
    def initial_image(self, y: torch.Tensor, physics: MRIPhysics) -> torch.Tensor:
        """The image the network refines, ``(B, 2, T, H, W)``, from dynamic ``y`` and a 5D-mask ``physics``."""
        if self.init == "adjoint":
            return physics.A_adjoint(y)
        shared = physics.view_sharing(y, window=self.share_window)
        if self.init == "tv":
            if not self.tv_chosen:
                raise ValueError("init='tv': the TV weights were never chosen (set_tv_weights)")
            s = unit_scale(shared)  # the weights refer to data at unit mean magnitude
            spatial, temporal, low_rank, fourier, reweight = (float(v) for v in self.tv_weights)
            return tv_reconstruct(physics, y / (s.unsqueeze(3) if y.ndim == 6 else s), spatial, temporal,
                                  x0=shared / s, low_rank=low_rank, fourier=fourier, reweight=reweight) * s
        return shared

    def intensity_scale(self, x0: torch.Tensor) -> torch.Tensor:
        """Mean magnitude of ``x0`` ``(B, 2, T, H, W)``: per frame ``(B, 1, T, 1, 1)`` or per sample ``(B, 1, 1, 1, 1)``.

        Detached, and 1 where the image is zero, so that scaling the data by any factor
        scales the reconstruction by the same factor.
        """
        mag = torch.sqrt(x0[:, 0] ** 2 + x0[:, 1] ** 2).detach()  # (B, T, H, W)
        s = mag.mean(dim=(2, 3)) if self.frame_wise else mag.mean(dim=(1, 2, 3)).unsqueeze(1)
        s = torch.where(s > torch.finfo(s.dtype).tiny, s, torch.ones_like(s))
        return s.reshape(s.shape[0], 1, s.shape[1], 1, 1)

    @contextlib.contextmanager
    def single_pass(self) -> Iterator["ReconstructionNet"]:
        """Within the block, eval mode runs one pass instead of the reflection ensemble.

        For scores that only rank checkpoints (training's validation): the ensemble
        costs eight passes. ``flip_ensemble`` comes back on exit.
        """
        saved, self.flip_ensemble = self.flip_ensemble, False
        try:
            yield self
        finally:
            self.flip_ensemble = saved

    def forward(self, y: torch.Tensor, physics: MRIPhysics, scale: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Reconstruct ``x`` from ``y``; layouts in the module docstring.

        ``scale``: the intensity scale to divide the data by (``(B, 1, T, 1, 1)`` or
        ``(B, 1, 1, 1, 1)``); None: :meth:`intensity_scale` of this input's initial image.
        Given, it lets a sequence cut into windows be reconstructed with the whole
        sequence's scale.
        """
        if self.flip_ensemble and not self.training:
            total = None
            for g in Reflection.all():  # reflections keep every magnitude, hence the scale
                x = g.image(self._forward_once(g.kspace(y), g.physics_of(physics), scale))
                total = x if total is None else total + x
            return total / 8
        return self._forward_once(y, physics, scale)

    def _forward_once(self, y: torch.Tensor, physics: MRIPhysics, scale: Optional[torch.Tensor] = None) -> torch.Tensor:
        y, physics, static = as_dynamic(y, physics)
        x0 = self.initial_image(y, physics)
        s = self.intensity_scale(x0) if scale is None else scale
        s_y = s.unsqueeze(3) if y.ndim == 6 else s  # coil axis at dim 3
        if self.shared_dc and self.init == "view_sharing" and hasattr(physics, "with_shared_samples"):
            physics = physics.with_shared_samples(y, window=self.share_window, fraction=self.shared_fraction, scale=s_y)
        x = self.reconstruct(x0 / s, y / s_y, physics) * s
        return x.squeeze(2) if static else x

    def reconstruct(self, x0: torch.Tensor, y: torch.Tensor, physics: MRIPhysics) -> torch.Tensor:
        """Refine the normalised initial image ``x0`` ``(B, 2, T, H, W)`` given normalised ``y``."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config.items())
