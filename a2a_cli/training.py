"""The training loop: self-supervised splitting loss, validation, checkpoints, resume.

Runs in one process or under ``torchrun`` (DistributedDataParallel; gloo on CPU, NCCL
on CUDA). Only rank 0 writes files and shows progress. Data flows one way:
files -> :class:`~a2a_cli.data.KspaceDataset` -> physics -> adapted network -> loss ->
optimiser -> checkpoint.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import torch

from .checkpoints import load_checkpoint, save_checkpoint
from .config import TrainConfig, check_device, ValueProblem  # TrainConfig: re-exported for older imports
from .errors import A2AError, InputError, raise_if_stopped
from .atomic import atomic_write
from .data import KspaceDataset, ShapeBatchSampler, describe_layout
from .models import build_model, count_parameters
from .physics import DynamicMRI, MRIPhysics, Reflection, SequentialMRI, normalise_measurement
from .splitting import Artifact2ArtifactLoss, Phase2PhaseLoss
from .training_data import PreparedDataset, auto_crop_rows, auto_virtual_coils, random_readout_crop
from .ssdu import SSDULoss


class TrainingError(A2AError):
    """Training cannot go on (non-finite loss, bad configuration)."""


class Interrupted(A2AError):
    """Training was stopped by a signal after saving a checkpoint."""

    def __init__(self, signum: int, step: int, path: Path):
        self.signum = signum
        super().__init__(
            f"stopped by {signal.Signals(signum).name} at step {step}; checkpoint saved to {path} "
            f"(continue with --resume)"
        )


#: Steps when nothing else bounds the run. A sequential step handles one image, not a
#: video, and is about five times cheaper; with reflected data it needs more of them
#: (benchmarks/RESULTS.md).
DEFAULT_STEPS = {"dynamic": 800, "sequential": 3000}
#: Seconds after which a default run on radial files stops (with the best checkpoint so far).
RADIAL_TIME_LIMIT = 480.0

#: Training seconds when nothing bounds the run: the default stops at DEFAULT_STEPS or
#: after this long, whichever comes first. Aimed at one large scan (180x230, 8 coils) in
#: five minutes on two CPU cores with set-up and the final validation (benchmarks/REALSIZE.md).
DEFAULT_TIME_LIMIT = 240.0


def apply_default_budget(cfg: "TrainConfig", mode: str) -> None:
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


#: SSDU in dynamic mode trains on a random window of this many frames per step: the cost
#: of an Artifact2Artifact step with the default chunk of T/2 = 8 frames.
SSDU_FRAMES_PER_STEP = 8


def augment_enabled(cfg: "TrainConfig", mode: str) -> bool:
    """Whether training sees randomly reflected data (default: sequential mode with temporal splitting only).

    SSDU trains without them by default: its defaults were tuned so, and the eight-fold
    reflection average would multiply the cost of every validation and reconstruction.
    """
    if cfg.augment is None:
        return mode == "sequential" and cfg.loss != "ssdu"
    return bool(cfg.augment)


def auto_split_size(frames: int) -> int:
    """The default chunk length: the largest divisor of ``frames`` that leaves two or more chunks.

    Large chunks make the network's input cover most of k-space, which measured best.

    >>> auto_split_size(16), auto_split_size(15), auto_split_size(7)
    (8, 5, 1)
    """
    for s in range(frames // 2, 0, -1):
        if frames % s == 0:
            return s
    raise TrainingError(f"a sequence of {frames} frame(s) cannot be split into two chunks")


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
    from .models.cost import NetworkTooCostly, check_network

    try:
        check_network(model, options)
    except NetworkTooCostly as exc:
        if origin is not None:
            raise InputError(origin, f"key 'model_options': {exc}") from None
        raise TrainingError(f"--model-option: {exc}") from None


def make_physics(mode: str, mask: torch.Tensor, coil_maps: Optional[torch.Tensor] = None) -> MRIPhysics:
    """The operator for a batch: ``mask`` ``(B, 1, T, H, W)``, optional complex maps ``(B, N, H, W)``;
    a radial sampling tensor ``(B, 4, T, spokes, samples)`` gives :class:`~a2a_cli.nufft.RadialMRI`."""
    from .nufft import RadialMRI, is_radial_mask

    if is_radial_mask(mask):
        return RadialMRI(mask, coil_maps, sequential=mode == "sequential")  # type: ignore[return-value]
    cls = DynamicMRI if mode == "dynamic" else SequentialMRI
    return cls(mask=mask, coil_maps=coil_maps)


class _Losses:
    """One splitting loss (and adapted network) per sequence length met in the data."""

    def __init__(self, cfg: TrainConfig, net: torch.nn.Module, dynamic: bool, device: torch.device):
        self.cfg, self.net, self.dynamic, self.device = cfg, net, dynamic, device
        self._by_frames: dict[int, tuple[torch.nn.Module, torch.nn.Module]] = {}

    def split_sizes(self, frames: int) -> list[int]:
        return list(self.cfg.split_size) or [auto_split_size(frames)]

    def get(self, shape: tuple[int, ...]) -> tuple[torch.nn.Module, torch.nn.Module]:
        """``(loss, adapted_model)`` for k-space of shape ``(C, T, ...)``."""
        frames = shape[1]
        if frames not in self._by_frames:
            size = (shape[0], frames, shape[-2], shape[-1])
            try:
                if self.cfg.loss == "ssdu":
                    # k-space splitting needs no wrapper: the step feeds the network the input set
                    ssdu = SSDULoss(loss_fraction=self.cfg.ssdu_fraction, repeats=self.cfg.ssdu_masks,
                                    frames_per_step=SSDU_FRAMES_PER_STEP if self.dynamic else None)
                    self._by_frames[frames] = (ssdu, self.net)
                    return self._by_frames[frames]
                if self.cfg.loss == "p2p":
                    loss = Phase2PhaseLoss(size, dynamic_model=self.dynamic, device=self.device)
                else:
                    sizes = self.split_sizes(frames)
                    loss = Artifact2ArtifactLoss(
                        size,
                        split_size=sizes[0] if len(sizes) == 1 else tuple(sizes),
                        dynamic_model=self.dynamic,
                        all_pairs=self.cfg.all_pairs,
                        neighbours_only=self.cfg.neighbours_only,
                        shuffle_frames=(not self.dynamic and not self.cfg.neighbours_only) if self.cfg.shuffle_frames is None else self.cfg.shuffle_frames,
                        device=self.device,
                    )
            except ValueError as exc:
                raise TrainingError(f"sequences of {frames} frames: {exc}") from None
            self._by_frames[frames] = (loss, loss.adapt_model(self.net))
        return self._by_frames[frames]


def resolve_loss(cfg: TrainConfig, dataset: KspaceDataset, log: Callable[[str], None] = print, limit: int = 32) -> str:
    """The loss to train with: ``cfg.loss``, or for ``auto`` the one the masks call for.

    ``auto`` picks Artifact2Artifact when temporal splitting is fit for most of the (first
    ``limit``) training slices' masks, k-space splitting (SSDU) when it is not (the same
    k-space in every frame, or a single frame; :func:`a2a_cli.masks.splitting_fitness`),
    and logs one line saying which and why.
    """
    if cfg.loss != "auto":
        return cfg.loss
    from .data import read_mask
    from .masks import splitting_fitness

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
    fit = [v for v in verdicts if v["fit"]]
    own = min(v["own_fraction"] for v in fit)
    log(f"loss: a2a (Artifact2Artifact), as --loss auto found temporal splitting fit for {len(fit)} of "
        f"{len(verdicts)} slice masks (chunks carry at least {own:.0%} samples of their own)")
    return "a2a"


def default_model_options(cfg: TrainConfig, dataset: KspaceDataset, mode: str = "dynamic") -> dict:
    """The network's options: the view-sharing block tied to the training chunk length,
    and the reflection ensemble at reconstruction when training sees reflected data."""
    options = dict(cfg.model_options)
    if augment_enabled(cfg, mode) and "flip_ensemble" not in options:
        options["flip_ensemble"] = True
    if cfg.loss == "a2a" and options.get("init", "view_sharing") == "view_sharing" and "share_window" not in options:
        chunk = max(cfg.split_size) if cfg.split_size else auto_split_size(dataset.shapes[0][0])
        # Blocks of two chunks (one input and one target chunk's worth of frames): within a
        # training chunk this is the chunk itself; at reconstruction it fills each frame from
        # twice as many frames, which measured better (benchmarks/RESULTS.md) while keeping
        # the block bounded for long free-breathing sequences.
        options["share_window"] = 2 * chunk
    return options


def _dist_info() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from the torchrun environment."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def _batches(dataset, sampler: ShapeBatchSampler, start_epoch: int, skip: int, loader_args: dict) -> Iterator[tuple[int, int, dict]]:
    """Endless ``(epoch, index_in_epoch, batch)``; resumes ``skip`` batches into ``start_epoch``
    without reading the skipped batches (the sampler's order is a function of seed and epoch)."""
    epoch = start_epoch
    while True:
        sampler.set_epoch(epoch)
        order = list(sampler)[skip:]
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=order, **loader_args)
        for i, batch in enumerate(loader, start=skip):
            yield epoch, i, batch
        epoch += 1
        skip = 0


def _to_device(batch: dict, device: torch.device) -> dict:
    """The batch on ``device``, its k-space divided by each sample's :func:`measurement_scale`.

    The loss is computed in k-space units: without this, k-space stored at 1e13 gives
    infinite gradients and at 1e-9 vanishing ones. The networks are scale-equivariant,
    so training on unit-scale data learns the same weights for any stored scale.
    """
    batch = {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
    batch["kspace"], _ = normalise_measurement(batch["kspace"], batch["mask"])
    return batch


def _physics_of(mode: str, batch: dict) -> MRIPhysics:
    return make_physics(mode, batch["mask"], batch.get("coil_maps"))


@torch.no_grad()
def validate(losses: _Losses, dataset: KspaceDataset, mode: str, device: torch.device, rank: int = 0, world: int = 1) -> float:
    """Mean deterministic self-supervised loss over every slice of ``dataset`` (no ground truth).

    With ``world`` > 1 every rank scores the slices ``rank::world`` and the sums are
    gathered, so all ranks get the very same value (their early-stopping and
    best-checkpoint decisions, which lead to collectives, cannot diverge). Every rank
    must call it; it runs the bare network, not the DDP wrapper, so uneven slice
    counts per rank are fine.
    """
    total, count = 0.0, 0
    for i in range(rank, len(dataset), world):
        item = _to_device({k: (v.unsqueeze(0) if isinstance(v, torch.Tensor) else v) for k, v in dataset[i].items()}, device)
        loss, adapted = losses.get(tuple(item["kspace"].shape[1:]))
        adapted.eval()
        value = loss.evaluate(adapted, item["kspace"], _physics_of(mode, item))
        total += float(value)
        count += 1
    if world > 1:
        # all_gather and a sum in rank order: bit-identical on every rank, unlike some all_reduce algorithms
        mine = torch.tensor([total, float(count)], dtype=torch.float64, device=device)
        parts = [torch.empty_like(mine) for _ in range(world)]
        torch.distributed.all_gather(parts, mine)
        total, count = (float(v) for v in sum(p.cpu() for p in parts))
    return total / max(count, 1)


def resolve_mode(cfg: TrainConfig, dataset: KspaceDataset) -> str:
    """The run's mode: as asked, else the files' own (which must then agree)."""
    modes = {info.mode for info in dataset.infos}
    if cfg.mode is not None:
        return cfg.mode
    if len(modes) > 1:
        raise TrainingError(f"the training files mix acquisition modes ({', '.join(sorted(modes))}): pass --mode")
    return modes.pop()


def train(
    cfg: TrainConfig,
    resume: bool = False,
    progress: Optional[Callable[[dict], None]] = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Train a network as ``cfg`` says; returns a summary dict.

    ``progress(event)`` is called on rank 0 with ``{"step", "total", "loss", "val_loss", ...}``
    after every step. Raises :class:`TrainingError`, :class:`Interrupted` or
    :class:`~a2a_cli.errors.InputError`.
    """
    rank, world, local_rank = _dist_info()
    distributed = world > 1
    device = pick_device(cfg.device)
    if distributed and device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    owns_group = distributed and not torch.distributed.is_initialized()
    if owns_group:
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    out = Path(cfg.out)
    last_path, best_path = out / "last.pt", out / "best.pt"

    split = cfg.split_options()
    dataset = KspaceDataset(cfg.train, split=split, mask_file=cfg.mask)
    if len(dataset) == 0:
        raise TrainingError("the training files hold no slices")
    mode = resolve_mode(cfg, dataset)
    val_set = KspaceDataset(cfg.val, split=split, mask_file=cfg.mask) if cfg.val else None
    if rank == 0:
        _log_layouts([*dataset.infos, *(val_set.infos if val_set is not None else [])], log)
    radial = any(info.layout == "radial" for info in dataset.infos)
    unbounded = cfg.steps is None and cfg.epochs is None and cfg.time_limit is None
    if radial:
        # radial defaults: every reflection and every new union of frames re-embeds the Toeplitz
        # kernels, so reflections and shuffled chunks would multiply the cost of a step; readout
        # crops and coil compression are Cartesian
        cfg.augment = False if cfg.augment is None else cfg.augment
        cfg.shuffle_frames = False if cfg.shuffle_frames is None else cfg.shuffle_frames
        cfg.crop_rows = 0 if cfg.crop_rows is None else cfg.crop_rows
        cfg.virtual_coils = 0 if cfg.virtual_coils is None else cfg.virtual_coils
    # many coils: train on fewer virtual coils (exact model, cheaper steps); items are cached in memory
    coils = max(k[3] for k in dataset.batch_keys)
    try:
        virtual = auto_virtual_coils(coils, cfg.virtual_coils)
        auto_crop_rows(max(s[1] for s in dataset.shapes), cfg.crop_rows)
    except (ValueError, TypeError) as exc:
        raise TrainingError(f"virtual_coils / crop_rows: {exc}") from None
    cfg.loss = resolve_loss(cfg, dataset, log if rank == 0 else (lambda _m: None))
    dataset = PreparedDataset(dataset, virtual)
    if val_set is not None:
        val_set = PreparedDataset(val_set, virtual)
    apply_default_budget(cfg, mode)
    if radial and unbounded:
        # NUFFT-based steps cost seconds on a CPU: the default radial run stops at its own time budget
        cfg.time_limit = RADIAL_TIME_LIMIT

    state = None
    if resume:
        if not last_path.is_file():
            raise InputError(last_path, "no checkpoint to resume from (run without --resume first)")
        state = load_checkpoint(last_path)
        if state.training is None:
            raise InputError(last_path, "the checkpoint holds no training state to resume from")
        if state.model_name != cfg.model:
            raise TrainingError(f"--resume: the run in {out} trains {state.model_name!r}, not {cfg.model!r}")

    torch.manual_seed(cfg.seed + 1000 * rank)  # chunk draws differ between ranks
    if state is None:
        cfg.model_options = default_model_options(cfg, dataset, mode)
    if state is None:
        check_model_options(cfg.model, cfg.model_options)
    try:
        net = build_model(cfg.model, **cfg.model_options) if state is None else state.build_model()
    except (ValueError, TypeError) as exc:
        if isinstance(exc, A2AError):
            raise
        raise TrainingError(f"--model {cfg.model} with options {cfg.model_options}: {exc}") from None
    net.to(device)
    if state is None and rank == 0:
        log(f"network {cfg.model}: {count_parameters(net):,} parameters, mode {mode}, device {device}")
        if virtual is not None:
            log(f"training on {virtual} virtual coils (SVD compression of {coils}; reconstruction uses all coils)")
    train_net: torch.nn.Module = net
    if distributed:
        train_net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    optimiser = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    losses = _Losses(cfg, train_net, dynamic=(mode == "dynamic"), device=device)
    val_losses = _Losses(cfg, net, dynamic=(mode == "dynamic"), device=device)
    # a split size that does not fit the data is reported now, before the run directory is made
    for frame_shape in sorted(set(dataset.shapes)):
        losses.get((2, *frame_shape))
    for frame_shape in sorted(set(val_set.shapes) if val_set is not None else ()):
        val_losses.get((2, *frame_shape))

    step, epoch, skip, best_val, bad_vals = 0, 0, 0, math.inf, 0
    if state is not None:
        tr = state.training
        try:
            optimiser.load_state_dict(tr["optimizer"])
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise InputError(last_path, f"the optimizer state does not fit this network: {exc}") from None
        step, epoch, skip = int(tr["step"]), int(tr["epoch"]), int(tr["batch_in_epoch"])
        best_val, bad_vals = float(tr.get("best_val", math.inf)), int(tr.get("bad_vals", 0))
        rng = tr.get("rng")
        if isinstance(rng, list) and rank < len(rng):
            torch.set_rng_state(rng[rank])
        if rank == 0:
            log(f"resuming {out} at step {step}")

    # pad: every rank takes the same number of steps per epoch, so the DDP gradient syncs
    # and the per-step collectives pair up, and --epochs means the same on every rank
    sampler = ShapeBatchSampler(dataset, cfg.batch_size, shuffle=True, seed=cfg.seed, num_replicas=world, rank=rank, pad=distributed)
    # a generator of its own: a DataLoader otherwise draws its worker seed from the global
    # RNG, and the extra loader made on --resume would shift the chunk draws after it
    loader_args = {"num_workers": cfg.workers, "pin_memory": device.type == "cuda",
                   "generator": torch.Generator().manual_seed(cfg.seed + 1000 * rank)}
    batches_per_epoch = len(sampler)
    total = cfg.steps
    if cfg.epochs is not None:
        by_epochs = cfg.epochs * batches_per_epoch
        total = by_epochs if total is None else min(total, by_epochs)

    augment = augment_enabled(cfg, mode)
    made_out = not out.exists()
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        for stale in out.glob(".*.partial-*"):  # left by a process killed mid-write (SIGKILL)
            stale.unlink(missing_ok=True)
        with atomic_write(out / "config.json", overwrite=True) as tmp:
            Path(tmp).write_text(json.dumps(asdict(cfg) | {"mode": mode}, indent=2) + "\n")
        if state is None:
            _warn_unsampled(dataset, log, mirrored=augment)

    stop_signal: list[int] = []

    def _on_signal(signum, _frame):
        stop_signal.append(signum)

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, _on_signal)
        except ValueError:  # not the main thread: leave signals alone
            pass

    def training_state(batch_in_epoch: int, ep: int) -> dict:
        rngs = [torch.get_rng_state()]
        if distributed:
            gathered = [None] * world
            torch.distributed.all_gather_object(gathered, torch.get_rng_state())
            rngs = gathered
        return {
            "optimizer": optimiser.state_dict(),
            "step": step,
            "epoch": ep,
            "batch_in_epoch": batch_in_epoch,
            "best_val": best_val,
            "bad_vals": bad_vals,
            "rng": rngs,
        }

    def save(path: Path, batch_in_epoch: int, ep: int) -> None:
        st = training_state(batch_in_epoch, ep)
        if rank == 0:
            save_checkpoint(path, net, mode, training=st)
        if distributed:  # no rank leaves (e.g. on a signal) before the checkpoint is on disk
            torch.distributed.barrier()

    metrics_path = out / "metrics.jsonl"
    records: list[dict] = []
    if state is not None and rank == 0:
        # steps logged after the checkpoint (before a kill) are done again: drop their lines
        records = [r for r in _read_records(metrics_path) if isinstance(r.get("step"), int) and r["step"] <= step]
        with atomic_write(metrics_path, overwrite=True) as tmp:
            Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in records))
    metrics_file = open(metrics_path, "a" if state is not None else "w") if rank == 0 else None
    discard = False
    start = time.monotonic()
    last_save = start
    val_loss = None
    stopped = "steps"
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cfg.amp)
    it = _batches(dataset, sampler, epoch, skip, loader_args)
    index, ep, do_val = skip - 1, epoch, True
    if total is not None and step >= total:
        raise TrainingError(f"the run in {out} already reached step {step} of {total}: raise --steps to train longer")
    try:
        raise_if_stopped()  # a stop during set-up whose exception was swallowed
        while total is None or step < total:
            ep, index, batch = next(it)
            batch = _to_device(batch, device)
            rows = auto_crop_rows(batch["mask"].shape[-2], cfg.crop_rows)
            if rows is not None:  # a random band of readout rows: exact data, a fraction of the cost
                batch = random_readout_crop(batch, rows)
            y = batch["kspace"]
            physics = _physics_of(mode, batch)
            if augment:
                # an exact symmetry of the measurement: more varied data, same noise statistics
                g = Reflection.random()
                y, physics = g.kspace(y), g.physics_of(physics)
            loss_fn, adapted = losses.get(tuple(y.shape[1:]))
            adapted.train()
            if isinstance(loss_fn, SSDULoss):
                # the network sees the input set only; the loss scores the held-out set
                split_draw = loss_fn.split(y, physics)
                with autocast:
                    x_net = adapted(split_draw.y_input, split_draw.physics_input)
                loss = loss_fn(x_net.float(), split_draw)
            else:
                with autocast:
                    x_net = adapted(y, physics, update_parameters=True)
                loss = loss_fn(x_net.float(), y, physics, adapted)
            loss_value = loss.item()
            if distributed:  # every rank sees the mean, so a non-finite loss stops them all
                lt = torch.tensor([loss_value], device=device)
                torch.distributed.all_reduce(lt)
                loss_value = lt.item() / world
            if not math.isfinite(loss_value):
                raise TrainingError(
                    f"the loss became {loss_value} at step {step + 1} (file {batch['file'][0]}, slice "
                    f"{int(batch['slice'][0])}); stopped without saving this state, the last good checkpoint is "
                    f"{last_path if last_path.exists() else 'not written yet'}. Try a lower --lr or --grad-clip."
                )
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            # measured even without clipping: a finite loss can still give NaN/Inf
            # gradients, and one such step would turn every weight into NaN
            grad_norm = float(torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip or math.inf))
            if not math.isfinite(grad_norm):
                raise TrainingError(
                    f"the gradient became {grad_norm} at step {step + 1} (file {batch['file'][0]}, slice "
                    f"{int(batch['slice'][0])}); stopped without taking this step, the last good checkpoint is "
                    f"{last_path if last_path.exists() else 'not written yet'}. Try a lower --lr or --grad-clip."
                )
            optimiser.step()
            step += 1
            record = {"step": step, "epoch": ep, "loss": loss_value, "time": round(time.monotonic() - start, 3)}
            do_val = step % cfg.val_every == 0 or step == total
            if do_val:
                val_loss = validate(val_losses, val_set if val_set is not None else dataset, mode, device, rank, world)
                record["val_loss"] = val_loss
                if val_loss < best_val:
                    best_val, bad_vals = val_loss, 0
                    save(best_path, index + 1, ep)
                else:
                    bad_vals += 1
            if rank == 0:
                records.append(record)
                metrics_file.write(json.dumps(record) + "\n")
                metrics_file.flush()
                if progress is not None:
                    progress({"step": step, "total": total, "loss": loss_value, "val_loss": val_loss, "best_val": best_val})
            # every rank must take the same decisions, or the collectives in save() deadlock
            flags = [time.monotonic() - last_save >= cfg.save_every, bool(stop_signal),
                     cfg.time_limit is not None and time.monotonic() - start >= cfg.time_limit]
            if distributed:
                ft = torch.tensor([float(f) for f in flags], device=device)
                torch.distributed.all_reduce(ft, op=torch.distributed.ReduceOp.MAX)
                flags = [bool(v) for v in ft.tolist()]
            save_due, interrupted, time_up = flags
            if interrupted:
                save(last_path, index + 1, ep)
                raise Interrupted(stop_signal[0] if stop_signal else signal.SIGTERM, step, last_path)
            if save_due:
                save(last_path, index + 1, ep)
                last_save = time.monotonic()
            if do_val and cfg.patience is not None and bad_vals >= cfg.patience:
                stopped = "early stopping"
                break
            if time_up:
                stopped = "time limit"
                break
        if not do_val:  # the best checkpoint is chosen on a validation of the final weights too
            val_loss = validate(val_losses, val_set if val_set is not None else dataset, mode, device, rank, world)
            if val_loss < best_val:
                best_val, bad_vals = val_loss, 0
                save(best_path, index + 1, ep)
        save(last_path, index + 1, ep)
    except BaseException:
        # a new run that fails before its first checkpoint (unreadable slice, NaN at once)
        # leaves nothing behind, so that running it again needs no --overwrite
        discard = state is None and not last_path.exists() and not best_path.exists()
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if metrics_file is not None:
            metrics_file.close()
            if discard:
                _discard_run(out, remove_dir=made_out)
            else:
                _plot(records, out / "loss.png", log)
        # no barrier here: after an error on one rank the others may sit in another
        # collective (torchrun stops them); save() already waits for rank 0's write
        if owns_group and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()  # left alive, it slows the exit by seconds
    return {
        "run_dir": str(out),
        "steps": step,
        "stopped_by": stopped,
        "seconds": round(time.monotonic() - start, 2),
        "last_loss": records[-1]["loss"] if records else None,
        "best_val_loss": best_val if math.isfinite(best_val) else None,
        "best": str(best_path),
        "last": str(last_path),
        "mode": mode,
        "model": cfg.model,
    }


def _log_layouts(infos: list, log: Callable[[str], None]) -> None:
    """One line per file saying how it was read (``a2a inspect-mask`` also warns where a shape is ambiguous)."""
    for info in infos:
        log(describe_layout(info))


def _discard_run(out: Path, remove_dir: bool) -> None:
    """Remove what a failed new run wrote before its first checkpoint."""
    for name in ("config.json", "metrics.jsonl", "loss.png"):
        (out / name).unlink(missing_ok=True)
    if remove_dir:
        with contextlib.suppress(OSError):  # not empty: someone else put files there
            out.rmdir()


def _read_records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a kill
            continue
    return out


def _plot(records: list[dict], path: Path, log: Callable[[str], None]) -> None:
    if not records:
        return
    try:
        from .plots import save_loss_plot

        save_loss_plot(records, path)
    except Exception as exc:  # a plot must never cost the run
        log(f"warning: could not draw {path}: {exc}")


def _warn_unsampled(dataset: KspaceDataset, log: Callable[[str], None], mirrored: bool = False) -> None:
    """Warn when no training file samples some phase-encode lines (they get no training signal).

    With ``mirrored`` (training on reflected data) a line also gets signal through its
    mirror image about the k-space centre, so only lines unsampled on both sides count.
    """
    from .data import read_mask
    from .masks import never_sampled_lines_by_width

    masks = []
    for path, index in dataset.items:
        try:
            masks.append(read_mask(path, split=getattr(dataset, "split", None), slice_index=index,
                                   mask_file=getattr(dataset, "mask_file", None)))
        except InputError:
            continue
    groups = never_sampled_lines_by_width(masks)
    if mirrored:
        groups = {w: idx[np.isin((2 * (w // 2) - idx) % w, idx)] for w, idx in groups.items()}
    missing = np.unique(np.concatenate(list(groups.values()))) if groups else np.zeros(0, dtype=np.int64)
    if len(missing):
        shown = ", ".join(str(int(i)) for i in missing[:12]) + (" ..." if len(missing) > 12 else "")
        where = "in any training file, nor their mirror lines" if mirrored else "in any training file"
        log(
            f"warning: {len(missing)} phase-encode line(s) are never sampled {where} ({shown}); "
            "self-supervision gets no signal there. Train on files with varied sampling patterns."
        )
