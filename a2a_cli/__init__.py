"""a2a: self-supervised Artifact2Artifact reconstruction of undersampled dynamic MRI.

The public Python API: MRI operators, splitting losses and networks.

>>> import torch
>>> from a2a_cli import DynamicMRI, Artifact2ArtifactLoss, UnrolledNet
>>> mask = torch.zeros(1, 1, 8, 1, 16)
>>> for t in range(8):
...     mask[..., (2 * t) % 16] = 1
...     mask[..., 7:9] = 1
>>> physics = DynamicMRI(mask=mask)
>>> y = physics(torch.randn(1, 2, 8, 16, 16))
>>> loss = Artifact2ArtifactLoss((2, 8, 16, 16), split_size=4)
>>> model = loss.adapt_model(UnrolledNet(channels=8))
>>> l = loss(model(y, physics), y, physics, model)
>>> bool(l > 0)
True
"""
__version__ = "0.1.0"

from .models import AutoEncoder, Conv2dtNet, ResidualUNet, TimeAgnosticNet, UnrolledNet, build_model
from .physics import DynamicMRI, SequentialMRI, fft2c, ifft2c, to_complex, to_real
from .splitting import Artifact2ArtifactLoss, Phase2PhaseLoss
from .ssdu import SSDULoss

__all__ = [
    "__version__",
    "DynamicMRI",
    "SequentialMRI",
    "fft2c",
    "ifft2c",
    "to_complex",
    "to_real",
    "Artifact2ArtifactLoss",
    "Phase2PhaseLoss",
    "SSDULoss",
    "AutoEncoder",
    "TimeAgnosticNet",
    "ResidualUNet",
    "Conv2dtNet",
    "UnrolledNet",
    "build_model",
]
