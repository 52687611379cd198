"""What a run trains with when the user did not say: the loss, the mode, the step and time
budget, reflections, radial defaults, the device and the network's options.

Every function here reads the configuration and the training files' descriptions; none
touches the data's values or the network.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import torch

from ..config import TEMPORAL_SPLIT_OPTIONS, TrainConfig, ValueProblem, check_device
from ..errors import A2AError, InputError
from ..data import KspaceDataset, read_mask
from ..masks import splitting_fitness
from ..splitting import auto_split_size
from .errors import TrainingError

__all__ = [
    "DEFAULT_STEPS",
    "DEFAULT_TIME_LIMIT",
    "RADIAL_TIME_LIMIT",
    "SSDU_FRAMES_PER_STEP",
    "SSDU_UNROLLED_OPTIONS",
    "SEQUENTIAL_LOSS_REASON",
    "apply_default_budget",
    "apply_radial_defaults",
    "augment_enabled",
    "auto_split_size",
    "check_model_options",
    "default_model_options",
    "RADIAL_SSDU_UNROLLED_OPTIONS",
    "pick_device",
    "resolve_loss",
    "resolve_mode",
    "ssdu_for_sequential",
]

#: Steps when nothing else bounds the run. A sequential step handles one image, not a
#: video, and is about five times cheaper; with reflected data it needs more of them
#: (benchmarks/RESULTS.md).
DEFAULT_STEPS = {"dynamic": 800, "sequential": 3000}
#: Seconds after which a default run on radial files stops (with the best checkpoint so far).
RADIAL_TIME_LIMIT = 570.0

#: Training seconds when nothing bounds the run: the default stops at DEFAULT_STEPS or
#: after this long, whichever comes first. Aimed at one large scan (180x230, 8 coils) in
#: five minutes on two CPU cores with set-up and the final validation (benchmarks/REALSIZE.md).
DEFAULT_TIME_LIMIT = 240.0

#: SSDU in dynamic mode trains on a random window of this many frames per step: the cost
#: of an Artifact2Artifact step with the default chunk of T/2 = 8 frames.
SSDU_FRAMES_PER_STEP = 8


#: The unrolled network's options under SSDU unless given: five iterations and a learnt
#: data-consistency weight (with ``--ssdu-fraction`` 0.2) gained 0.0 to 1.7 dB on the
#: validation files of the four SSDU cases, single- and multi-coil, and lost on none
#: (benchmarks/SSDU.md).
SSDU_UNROLLED_OPTIONS = {"iterations": 5, "learn_lambda": True}
#: The same for radial data, with the learnt weight starting at LAM: the data of a radial set is
#: noisy at high spatial frequency once density-compensated, and a weight started at 0.05 rose
#: too slowly to smooth it (benchmarks/RADIAL.md).
RADIAL_SSDU_UNROLLED_OPTIONS = {**SSDU_UNROLLED_OPTIONS, "lam": 0.5}


def apply_default_budget(cfg: TrainConfig, mode: str) -> None:
    """Bound a run that the user did not bound: ``DEFAULT_STEPS[mode]`` steps or
    :data:`DEFAULT_TIME_LIMIT` seconds, whichever comes first (in place).

    >>> cfg = TrainConfig(train=["a.h5"], out="run")
    >>> apply_default_budget(cfg, "sequential"); (cfg.steps, cfg.time_limit)
    (3000, 240.0)
    >>> cfg = TrainConfig(train=["a.h5"], out="run", steps=50)
    >>> apply_default_budget(cfg, "dynamic"); (cfg.steps, cfg.time_limit)
    (50, None)
    """
    if cfg.steps is None and cfg.epochs is None and cfg.time_limit is None:
        cfg.steps = DEFAULT_STEPS[mode]
        cfg.time_limit = DEFAULT_TIME_LIMIT


def apply_radial_defaults(cfg: TrainConfig) -> None:
    """Radial data: no reflections, shuffled chunks, readout crops or coil compression unless asked (in place).

    Every reflection and every new union of frames re-embeds the Toeplitz kernels, so
    reflections and shuffled chunks would multiply the cost of a step; readout crops and
    coil compression are Cartesian.

    >>> cfg = TrainConfig(train=["a.h5"], out="run", augment=True)
    >>> apply_radial_defaults(cfg); (cfg.augment, cfg.shuffle_frames, cfg.crop_rows, cfg.virtual_coils)
    (True, False, 0, 0)
    """
    cfg.augment = False if cfg.augment is None else cfg.augment
    cfg.shuffle_frames = False if cfg.shuffle_frames is None else cfg.shuffle_frames
    cfg.crop_rows = 0 if cfg.crop_rows is None else cfg.crop_rows
    cfg.virtual_coils = 0 if cfg.virtual_coils is None else cfg.virtual_coils


def augment_enabled(cfg: TrainConfig, mode: str) -> bool:
    """Whether training sees randomly reflected data (default: sequential mode with temporal splitting only).

    SSDU trains without them by default: its defaults were tuned so, and the eight-fold
    reflection average would multiply the cost of every validation and reconstruction.
    """
    if cfg.augment is None:
        return mode == "sequential" and cfg.loss != "ssdu"
    return bool(cfg.augment)


def pick_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda:N`` must exist (:func:`a2a_cli.config.check_device`)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(check_device(name))
    except ValueProblem as exc:
        raise A2AError(f"--device: {exc}") from None


def check_model_options(model: str, options: dict, origin: Optional[Path] = None) -> None:
    """Refuse network options of the wrong type or past the cost limits (:mod:`a2a_cli.models.cost`), before building.

    The error names ``--model-option``, or ``origin`` (the file the options came from) and its key.
    """
    from ..models.cost import NetworkTooCostly, check_network

    try:
        check_network(model, options)
    except NetworkTooCostly as exc:
        if origin is not None:
            raise InputError(origin, f"key 'model_options': {exc}") from None
        raise TrainingError(f"--model-option: {exc}") from None


#: Why ``--loss auto`` trains sequential data with SSDU (logged by ``train``, printed by ``inspect-mask``).
SEQUENTIAL_LOSS_REASON = ("the object is static, so any split of its measured lines or spokes is a valid input/target "
                          "pair, and k-space splitting measured better than temporal splitting on sequential data "
                          "(benchmarks/RESULTS.md, benchmarks/RADIAL.md)")


def ssdu_for_sequential(mode: Optional[str]) -> bool:
    """Whether ``--loss auto`` trains data of ``mode`` with SSDU even where temporal splitting
    is fit: sequential data, Cartesian or radial (:data:`SEQUENTIAL_LOSS_REASON`).

    >>> ssdu_for_sequential("sequential"), ssdu_for_sequential("dynamic")
    (True, False)
    """
    return mode == "sequential"


def resolve_loss(cfg: TrainConfig, dataset: KspaceDataset, log: Callable[[str], None] = print, limit: int = 32,
                 mode: Optional[str] = None) -> str:
    """The loss to train with: ``cfg.loss``, or for ``auto`` the one the data call for.

    ``auto`` picks k-space splitting (SSDU) for sequential data (a static object: any split
    of its measured lines or spokes between input and target is valid, and SSDU measured
    better there than temporal splitting, Cartesian and radial). Otherwise it picks Artifact2Artifact when temporal
    splitting is fit for most of the (first ``limit``) training slices' masks, SSDU when it
    is not (the same k-space in every frame, or a single frame;
    :func:`a2a_cli.masks.splitting_fitness`). It logs one line saying which and why.
    """
    if cfg.loss != "auto":
        return cfg.loss
    asked = [flag for key, flag in TEMPORAL_SPLIT_OPTIONS if getattr(cfg, key)]
    if asked:
        log(f"loss: a2a (Artifact2Artifact), as {', '.join(asked)} asks for temporal splitting")
        return "a2a"
    verdicts = []
    for path, index in dataset.items[:limit]:
        mask = read_mask(path, split=getattr(dataset, "split", None), slice_index=index,
                         mask_file=getattr(dataset, "mask_file", None))
        verdicts.append(splitting_fitness(mask))
    unfit = [v for v in verdicts if not v["fit"]]
    if len(unfit) * 2 > len(verdicts):
        reason = unfit[0]["reason"]
        log(f"loss: ssdu (k-space splitting), as --loss auto found {len(unfit)} of {len(verdicts)} slice masks "
            f"unfit for temporal splitting: {reason}")
        return "ssdu"
    if ssdu_for_sequential(mode):
        log(f"loss: ssdu (k-space splitting), as --loss auto found sequential data: {SEQUENTIAL_LOSS_REASON}")
        return "ssdu"
    fit = [v for v in verdicts if v["fit"]]
    own = min(v["own_fraction"] for v in fit)
    log(f"loss: a2a (Artifact2Artifact), as --loss auto found temporal splitting fit for {len(fit)} of "
        f"{len(verdicts)} slice masks (chunks carry at least {own:.0%} samples of their own)")
    return "a2a"


def default_model_options(cfg: TrainConfig, dataset: KspaceDataset, mode: str = "dynamic", radial: bool = False) -> dict:
    """The network's options: data consistency with the view-shared samples in dynamic
    Cartesian mode, the view-sharing block tied to the training chunk length,
    the reflection ensemble at reconstruction when training sees reflected data, and
    :data:`SSDU_UNROLLED_OPTIONS` (radial: :data:`RADIAL_SSDU_UNROLLED_OPTIONS`) for the
    unrolled network trained with SSDU. ``--model tv`` keeps the options as given."""
    options = dict(cfg.model_options)
    if cfg.model == "tv":  # no network: nothing below applies (a reflection ensemble of a convex solve is the solve)
        return options
    if cfg.loss == "ssdu" and cfg.model == "unrolled":
        options = {**(RADIAL_SSDU_UNROLLED_OPTIONS if radial else SSDU_UNROLLED_OPTIONS), **options}
    if augment_enabled(cfg, mode) and "flip_ensemble" not in options:
        options["flip_ensemble"] = True
    if mode == "dynamic" and not radial and cfg.model != "tv" and options.get("init", "view_sharing") == "view_sharing":
        # a network trained by splitting nearly disjoint frames overwrote the view-shared
        # samples (ReconstructionNet, shared_dc): with them in its data consistency it ended
        # 0.16 to 2.3 dB above view sharing, where it had ended up to 6.3 dB below
        options.setdefault("shared_dc", True)
    if cfg.loss == "a2a" and options.get("init", "view_sharing") == "view_sharing" and "share_window" not in options:
        try:
            chunk = max(cfg.split_size) if cfg.split_size else auto_split_size(dataset.shapes[0][0])
        except ValueError as exc:
            raise TrainingError(str(exc)) from None
        # Blocks of two chunks (one input and one target chunk's worth of frames): within a
        # training chunk this is the chunk itself; at reconstruction it fills each frame from
        # twice as many frames, which measured better (benchmarks/RESULTS.md) while keeping
        # the block bounded for long free-breathing sequences.
        options["share_window"] = 2 * chunk
    return options


def resolve_mode(cfg: TrainConfig, dataset: KspaceDataset, val_set: Optional[KspaceDataset] = None) -> str:
    """The run's mode: as asked (``--mode``, or the run resumed), else the training files' own (which must
    then agree).

    A training or validation file that names another mode in its ``acquisition`` attribute is
    refused (:func:`~a2a_cli.data.layout.mode_conflict`): reconstruction would refuse it too.
    """
    from ..data.layout import mode_conflict

    modes = {info.mode for info in dataset.infos}
    if cfg.mode is None and len(modes) > 1:
        raise TrainingError(f"the training files mix acquisition modes ({', '.join(sorted(modes))}): pass --mode")
    mode = cfg.mode if cfg.mode is not None else modes.pop()
    for info in [*dataset.infos, *(val_set.infos if val_set is not None else [])]:
        conflict = mode_conflict(info, mode)
        if conflict:
            raise InputError(info.path, f"{conflict}: this run trains {mode!r} (--mode, the run resumed, or the training files)")
    return mode
