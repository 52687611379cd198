"""a2a: self-supervised Artifact2Artifact reconstruction of undersampled dynamic MRI."""
__version__ = "0.1.0"

from .physics import DynamicMRI, SequentialMRI, fft2c, ifft2c, to_complex, to_real

__all__ = ["__version__", "DynamicMRI", "SequentialMRI", "fft2c", "ifft2c", "to_complex", "to_real"]
