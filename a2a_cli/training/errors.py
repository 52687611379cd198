"""The errors a training run ends with (both are reported as one line by the command line)."""
from __future__ import annotations

import signal
from pathlib import Path

from ..errors import A2AError

__all__ = ["TrainingError", "Interrupted"]


class TrainingError(A2AError):
    """Training cannot go on (non-finite loss, bad configuration)."""


class Interrupted(A2AError):
    """Training was stopped by a signal after saving a checkpoint.

    >>> str(Interrupted(signal.SIGTERM, 3, Path("run/last.pt")))
    'stopped by SIGTERM at step 3; checkpoint saved to run/last.pt (continue with --resume)'
    """

    def __init__(self, signum: int, step: int, path: Path):
        self.signum = signum
        super().__init__(
            f"stopped by {signal.Signals(signum).name} at step {step}; checkpoint saved to {path} "
            f"(continue with --resume)"
        )
