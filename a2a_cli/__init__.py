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

import importlib
from typing import Any

#: where each public name lives: imported on first use, so that starting the command line
#: (``a2a --help``, and Ctrl-C while it starts) does not wait for torch
_PUBLIC = {
    "DynamicMRI": "physics", "SequentialMRI": "physics", "fft2c": "physics", "ifft2c": "physics",
    "to_complex": "physics", "to_real": "physics",
    "Artifact2ArtifactLoss": "splitting", "Phase2PhaseLoss": "splitting", "SSDULoss": "ssdu",
    "AutoEncoder": "models", "TimeAgnosticNet": "models", "ResidualUNet": "models", "Conv2dtNet": "models",
    "UnrolledNet": "models", "build_model": "models",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
        globals()[name] = value  # later look-ups are plain attribute reads
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
