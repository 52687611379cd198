"""Training: ``a2a train`` as a library.

The modules, each with one job:

* :mod:`~a2a_cli.training.trainer`: the :class:`Trainer` (set-up, step, validation,
  checkpoints, the loop) and :func:`train`, which builds one and runs it.
* :mod:`~a2a_cli.training.options`: the defaults a run resolves (loss, mode, budget, device, network options).
* :mod:`~a2a_cli.training.losses`: the run's loss object and the validation score.
* :mod:`~a2a_cli.training.data`: batches, coil compression, readout crops, cached slices.
* :mod:`~a2a_cli.training.rundir`: the names of every file in a run directory.
* :mod:`~a2a_cli.training.stop`: SIGINT/SIGTERM as a stop request shared with the command line.
* :mod:`~a2a_cli.training.budget`: the clock and ``--time-limit``.
* :mod:`~a2a_cli.training.records`: the per-step metrics log and its plot.
* :mod:`~a2a_cli.training.distributed`: the collectives of a ``torchrun`` run.
"""
from ..config import TrainConfig
from .errors import Interrupted, TrainingError
from .losses import make_loss, make_physics, validate
from .options import (
    DEFAULT_STEPS,
    DEFAULT_TIME_LIMIT,
    RADIAL_TIME_LIMIT,
    SSDU_FRAMES_PER_STEP,
    apply_default_budget,
    augment_enabled,
    auto_split_size,
    check_model_options,
    default_model_options,
    pick_device,
    resolve_loss,
    resolve_mode,
)
from .rundir import RunDir
from .stop import StopRequest, catching_stop_signals
from .trainer import Trainer, train

__all__ = [
    "DEFAULT_STEPS",
    "DEFAULT_TIME_LIMIT",
    "RADIAL_TIME_LIMIT",
    "SSDU_FRAMES_PER_STEP",
    "Interrupted",
    "RunDir",
    "StopRequest",
    "TrainConfig",
    "Trainer",
    "TrainingError",
    "apply_default_budget",
    "augment_enabled",
    "auto_split_size",
    "catching_stop_signals",
    "check_model_options",
    "default_model_options",
    "make_loss",
    "make_physics",
    "pick_device",
    "resolve_loss",
    "resolve_mode",
    "train",
    "validate",
]
