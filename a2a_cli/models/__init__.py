"""Reconstruction networks: every one is called as ``net(y, physics)`` and returns the image.

Layouts: dynamic ``y`` ``(B, 2, T, H, W)`` (``(B, 2, T, N, H, W)`` multi-coil) -> ``x``
``(B, 2, T, H, W)``; with a 4D-mask physics ``y`` ``(B, 2, H, W)`` -> ``x`` ``(B, 2, H, W)``;
a ``SequentialMRI`` time series is averaged first and gives ``(B, 2, H, W)``.

* ``"unrolled"`` (:class:`UnrolledNet`): CNN prior and data consistency, twice; the default.
* ``"unet"`` (:class:`ResidualUNet`): residual frame-wise U-Net, then data consistency.
* ``"cnn2dt"`` (:class:`Conv2dtNet`): 2D CNN on neighbouring frames, then data consistency.
* ``"tv"`` (:class:`TVModel`): no network: compressed sensing with total variation, its
  weights chosen by k-space cross-validation when training starts.

:class:`AutoEncoder` and :class:`TimeAgnosticNet` are toy networks for examples.
"""
from .base import INITS, ReconstructionNet, WindowGeometry, fold_time, unfold_time, window_geometry
from .cnn import Conv2dtNet
from .registry import MODELS, build_model, count_parameters
from .simple import AutoEncoder, TimeAgnosticNet
from .tvmodel import TVModel
from .unet import ResidualUNet
from .unrolled import UnrolledNet

__all__ = [
    "AutoEncoder",
    "TimeAgnosticNet",
    "ReconstructionNet",
    "ResidualUNet",
    "Conv2dtNet",
    "UnrolledNet",
    "TVModel",
    "MODELS",
    "build_model",
    "count_parameters",
    "INITS",
    "fold_time",
    "unfold_time",
    "WindowGeometry",
    "window_geometry",
]
