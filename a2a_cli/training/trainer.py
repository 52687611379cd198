"""The training loop: self-supervised splitting loss, validation, checkpoints, resume.

Runs in one process or under ``torchrun`` (DistributedDataParallel; gloo on CPU, NCCL
on CUDA). Only rank 0 writes files and shows progress. Data flows one way:
files -> :class:`~a2a_cli.data.KspaceDataset` -> physics -> loss split -> network ->
loss -> optimiser -> checkpoint.

Every random choice of a step (readout crop, reflection, split) is drawn from the run's
own generator, seeded from ``--seed`` (and the rank) and saved in every checkpoint, so a
resumed run continues exactly as the uninterrupted one would have.
"""
from __future__ import annotations

import math
import signal
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Optional

import torch

from ..checkpoints import Checkpoint, load_checkpoint, save_checkpoint, stored_tv_weights
from ..config import TrainConfig
from ..errors import A2AError, InputError, Stopped
from ..data import KspaceDataset, ShapeBatchSampler
from ..models import build_model, count_parameters
from ..models.base import ReconstructionNet, as_dynamic
from ..physics import Reflection
from ..holdout import spread_problems
from ..tv import SEARCH_SLICES, TVWeights, select_weights, unit_scale
from .budget import TimeBudget
from .data import (PreparedDataset, auto_crop_rows, auto_virtual_coils, batches, central_readout_band, item_batch,
                   log_layouts, random_readout_crop, to_device, warn_unsampled)
from .distributed import Ranks
from .errors import Interrupted, TrainingError
from .losses import make_loss, physics_of, validate
from .options import (RADIAL_TIME_LIMIT, apply_default_budget, apply_radial_defaults, augment_enabled,
                      check_model_options, default_model_options, pick_device, resolve_loss, resolve_mode)
from .records import MetricsLog
from .rundir import RunDir
from .stop import StopRequest, catching_stop_signals

__all__ = ["Position", "Trainer", "train"]


#: The share of a bounded run's time budget the TV weight search may take (the network trains for
#: the rest). Cartesian searches took 54 to 95 s of 240 with two weights; with the low-rank weight
#: the quick start's took 130 s and the 180x230 dynamic scan's 218 s, near its end of 204 s; with
#: four weights the scan's took 184 s and the quick start's reached the end (22 candidates, weights
#: one grid step from the whole search's, 0.36 dB lower). The radial dynamic one took
#: 119 s of 570 with three weights since its ADMM solver (457 s before). A search cut short keeps
#: weights that lost 1 to 2 dB, more than a network gains from its last minutes (benchmarks/RADIAL.md).
TV_SHARE = 0.85


def _quiet(_message: str) -> None:
    """The log of ranks other than 0."""


@dataclass
class Position:
    """Where a run stands: saved in every checkpoint and restored on ``--resume``."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of ``epoch`` already trained on
    best_val: float = math.inf
    bad_vals: int = 0  # validations in a row without improvement


class Trainer:
    """One training run: :meth:`setup` (data, network, optimiser, resume), then :meth:`fit`.

    ``progress(event)`` is called on rank 0 after every step with ``{"step", "total",
    "loss", "val_loss", "best_val"}``. ``stop`` is the request that SIGINT and SIGTERM
    set (shared with the command line); the loop checks it between steps.
    """

    def __init__(self, cfg: TrainConfig, resume: bool = False, progress: Optional[Callable[[dict], None]] = None,
                 log: Callable[[str], None] = print, stop: Optional[StopRequest] = None):
        self.cfg, self.resume, self.progress = cfg, resume, progress
        self.ranks = Ranks.from_env()
        self.log = log if self.ranks.main else _quiet
        self.run = RunDir(cfg.out)
        self.stop = stop if stop is not None else StopRequest()
        self.pos = Position()
        self.owns_group = False
        self.metrics: Optional[MetricsLog] = None
        self.state: Optional[Checkpoint] = None
        self.budget: Optional[TimeBudget] = None

    # -- set-up ------------------------------------------------------------------------------------
    def setup(self) -> None:
        """Read the data, resolve the defaults, build (or restore) the network and the optimiser."""
        self._setup_device()
        self._setup_data()
        self._load_resume_state()
        self._setup_network()
        self._setup_optimisation()

    def _setup_device(self) -> None:
        self.device = pick_device(self.cfg.device)
        if self.ranks.distributed and self.device.type == "cuda":
            self.device = torch.device("cuda", self.ranks.local_rank)
            torch.cuda.set_device(self.device)
        self.owns_group = self.ranks.distributed and not torch.distributed.is_initialized()
        if self.owns_group:
            torch.distributed.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    def _setup_data(self) -> None:
        cfg = self.cfg
        split = cfg.split_options()
        dataset = KspaceDataset(cfg.train, split=split, mask_file=cfg.mask)
        if len(dataset) == 0:
            raise TrainingError("the training files hold no slices")
        val_set = KspaceDataset(cfg.val, split=split, mask_file=cfg.mask) if cfg.val else None
        self.mode = resolve_mode(cfg, dataset, val_set)
        log_layouts([*dataset.infos, *(val_set.infos if val_set is not None else [])], self.log)
        self.radial = radial = any(info.layout == "radial" for info in dataset.infos)
        unbounded = cfg.steps is None and cfg.epochs is None and cfg.time_limit is None
        if radial:
            apply_radial_defaults(cfg)
        # many coils: train on fewer virtual coils (exact model, cheaper steps); items are cached in memory
        self.coils = max(k[3] for k in dataset.batch_keys)
        try:
            self.virtual = auto_virtual_coils(self.coils, cfg.virtual_coils)
            auto_crop_rows(max(s[1] for s in dataset.shapes), cfg.crop_rows)
        except (ValueError, TypeError) as exc:
            raise TrainingError(f"virtual_coils / crop_rows: {exc}") from None
        cfg.loss = resolve_loss(cfg, dataset, self.log, mode=self.mode)
        self.dataset = PreparedDataset(dataset, self.virtual)
        self.val_set = PreparedDataset(val_set, self.virtual) if val_set is not None else None
        apply_default_budget(cfg, self.mode)
        if radial and unbounded:
            # NUFFT-based steps cost seconds on a CPU: the default radial run stops at its own time budget
            cfg.time_limit = RADIAL_TIME_LIMIT
        self.augment = augment_enabled(cfg, self.mode)

    def _load_resume_state(self) -> None:
        if not self.resume:
            return
        last = self.run.last
        if not last.is_file():
            raise InputError(last, "no checkpoint to resume from (run without --resume first)")
        self.state = load_checkpoint(last)
        if self.state.training is None:
            raise InputError(last, "the checkpoint holds no training state to resume from")
        if self.state.model_name != self.cfg.model:
            raise TrainingError(f"--resume: the run in {self.run.path} trains {self.state.model_name!r}, not {self.cfg.model!r}")

    def _setup_network(self) -> None:
        cfg, fresh = self.cfg, self.state is None
        torch.manual_seed(cfg.seed + 1000 * self.ranks.rank)  # the weights' initialisation
        if fresh:
            cfg.model_options = default_model_options(cfg, self.dataset, self.mode, radial=self.radial)
            check_model_options(cfg.model, cfg.model_options)
        try:
            net = build_model(cfg.model, **cfg.model_options) if fresh else self.state.build_model()
        except (ValueError, TypeError) as exc:
            if isinstance(exc, A2AError):
                raise
            raise TrainingError(f"--model {cfg.model} with options {cfg.model_options}: {exc}") from None
        self.net = net.to(self.device)
        if fresh:
            self.log(f"network {cfg.model}: {count_parameters(net):,} parameters, mode {self.mode}, device {self.device}")
            if self.virtual is not None:
                self.log(f"training on {self.virtual} virtual coils (SVD compression of {self.coils}; reconstruction uses all coils)")
            if isinstance(net, ReconstructionNet) and not net.tv_chosen:
                net.set_tv_weights(select_tv_weights(self.dataset, self.mode, net.share_window, self.device, self.log,
                                                     self.stop))
        self.train_net: torch.nn.Module = self.net
        self.learns = count_parameters(net) > 0  # --model tv: the set-up above chose everything
        # compressed sensing beside the network: reconstruction blends the two as held-out samples say
        self.tv_weights = None if fresh else stored_tv_weights(self.state)
        self.tv_due = (fresh and self.learns and cfg.tv is not False and isinstance(net, ReconstructionNet)
                       and net.init != "tv")
        if self.ranks.distributed and self.learns:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_net = torch.nn.parallel.DistributedDataParallel(self.net, device_ids=ids)

    def _setup_optimisation(self) -> None:
        cfg, rank = self.cfg, self.ranks.rank
        params = [p for p in self.net.parameters() if p.requires_grad]
        self.optimiser = torch.optim.Adam(params, lr=cfg.lr) if params else None
        frames: dict[int, str] = {}  # every sequence length, and the first file that has it (for messages)
        for data in [self.dataset, *([self.val_set] if self.val_set is not None else [])]:
            for (path, _), shape in zip(data.items, data.shapes):
                frames.setdefault(shape[0], path)
        self.loss = make_loss(cfg, self.mode == "dynamic", frames, self.device)
        # the run's own random draws; ranks differ so that each draws its own splits
        self.generator = torch.Generator().manual_seed(cfg.seed + 1000 * rank)
        if self.state is not None:
            self._restore(self.state.training)
        # pad: every rank takes the same number of steps per epoch, so the DDP gradient syncs
        # and the per-step collectives pair up, and --epochs means the same on every rank
        self.sampler = ShapeBatchSampler(self.dataset, cfg.batch_size, shuffle=True, seed=cfg.seed,
                                         num_replicas=self.ranks.world, rank=rank, pad=self.ranks.distributed)
        # a generator of its own: a DataLoader otherwise draws its worker seed from the global RNG
        self.loader_args = {"num_workers": cfg.workers, "pin_memory": self.device.type == "cuda",
                            "generator": torch.Generator().manual_seed(cfg.seed + 1000 * rank)}
        self.total = cfg.steps
        if cfg.epochs is not None:
            by_epochs = cfg.epochs * len(self.sampler)
            self.total = by_epochs if self.total is None else min(self.total, by_epochs)
        self.autocast = torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=cfg.amp)

    def _restore(self, training: dict) -> None:
        """Optimiser, position and random state from a checkpoint's training state."""
        try:
            if self.optimiser is not None:
                self.optimiser.load_state_dict(training["optimizer"])
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise InputError(self.run.last, f"the optimizer state does not fit this network: {exc}") from None
        self.pos = Position(int(training["step"]), int(training["epoch"]), int(training["batch_in_epoch"]),
                            float(training.get("best_val", math.inf)), int(training.get("bad_vals", 0)))
        rng = training.get("rng")
        if isinstance(rng, list) and self.ranks.rank < len(rng):
            self.generator.set_state(rng[self.ranks.rank])
        self.log(f"resuming {self.run.path} at step {self.pos.step}")

    # -- one step, validation, checkpoints ---------------------------------------------------------------
    def step(self, batch: dict) -> float:
        """One optimiser step on ``batch`` (as the DataLoader gives it); returns the loss (mean over ranks).

        Raises :class:`TrainingError`, without taking the step, if the loss or the gradient is not finite.
        """
        batch = to_device(batch, self.device)
        rows = auto_crop_rows(batch["mask"].shape[-2], self.cfg.crop_rows)
        if rows is not None:  # a random band of readout rows: exact data, a fraction of the cost
            batch = random_readout_crop(batch, rows, self.generator)
        y, physics = batch["kspace"], physics_of(self.mode, batch)
        if self.augment:
            # an exact symmetry of the measurement: more varied data, same noise statistics
            g = Reflection.random(self.generator)
            y, physics = g.kspace(y), g.physics_of(physics)
        # the network sees the split's input part only; the loss scores the held-out part
        split = self.loss.split(y, physics, generator=self.generator)
        self.train_net.train()
        with self.autocast:
            x_net = self.train_net(split.y_input, split.physics_input)
        loss = self.loss(x_net.float(), split)
        # every rank sees the mean, so a non-finite loss stops them all
        loss_value = self.ranks.mean(loss.item(), self.device)
        if not math.isfinite(loss_value):
            raise TrainingError(self._not_finite("loss", loss_value, batch, "without saving this state"))
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        # measured even without clipping: a finite loss can still give NaN/Inf
        # gradients, and one such step would turn every weight into NaN
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.cfg.grad_clip or math.inf))
        if not math.isfinite(grad_norm):
            raise TrainingError(self._not_finite("gradient", grad_norm, batch, "without taking this step"))
        self.optimiser.step()
        self.pos.step += 1
        return loss_value

    def _not_finite(self, what: str, value: float, batch: dict, outcome: str) -> str:
        last = self.run.last
        return (f"the {what} became {value} at step {self.pos.step + 1} (file {batch['file'][0]}, slice "
                f"{int(batch['slice'][0])}); stopped {outcome}, the last good checkpoint is "
                f"{last if last.exists() else 'not written yet'}. Try a lower --lr or --grad-clip.")

    def validate(self) -> float:
        """The validation loss of the current weights (every rank gets the same value); a better one
        is kept as the best checkpoint. Its duration is held in reserve by the time budget."""
        assert self.budget is not None
        with self.budget.validation():
            value = validate(self.loss, self.net, self.val_set if self.val_set is not None else self.dataset,
                             self.mode, self.device, self.ranks.rank, self.ranks.world)
        if value < self.pos.best_val:
            self.pos.best_val, self.pos.bad_vals = value, 0
            self.checkpoint(self.run.best)
        else:
            self.pos.bad_vals += 1
        return value

    def _estimate_validation(self) -> None:
        """Time the validation of one slice, so that a time-limited run holds back the cost of its
        final validation before it has validated once (real validations then replace the estimate)."""
        assert self.budget is not None
        dataset = self.val_set if self.val_set is not None else self.dataset
        share = math.ceil(len(dataset) / self.ranks.world)  # the slices this rank scores
        began = self.budget.now()
        validate(self.loss, self.net, [dataset[self.ranks.rank % len(dataset)]], self.mode, self.device)
        self.budget.reserve = (self.budget.now() - began) * share

    def checkpoint(self, path) -> None:
        """Save the network and the training state to ``path`` (rank 0); every rank must call it."""
        training = {
            "optimizer": self.optimiser.state_dict() if self.optimiser is not None else {"state": {}, "param_groups": []},
            "step": self.pos.step,
            "epoch": self.pos.epoch,
            "batch_in_epoch": self.pos.batch_in_epoch,
            "best_val": self.pos.best_val,
            "bad_vals": self.pos.bad_vals,
            "rng": self.ranks.gather(self.generator.get_state()),  # one state per rank
        }
        if self.ranks.main:
            extra = {"tv_weights": self.tv_weights.as_list()} if self.tv_weights else None
            save_checkpoint(path, self.net, self.mode, training=training, extra=extra)
        self.ranks.barrier()  # no rank leaves (e.g. on a signal) before the checkpoint is on disk

    # -- the loop -------------------------------------------------------------------------------------
    def fit(self) -> dict:
        """Train until the step, epoch or time budget, early stopping or a stop signal; returns a summary.

        Raises :class:`Interrupted` (after saving a checkpoint) on SIGINT or SIGTERM.
        """
        if self.total is not None and self.pos.step >= self.total:
            raise TrainingError(f"the run in {self.run.path} already reached step {self.pos.step} of {self.total}: "
                                "raise --steps to train longer")
        made_dir = self._open_run()
        discard = False
        self.budget = TimeBudget(self.cfg.time_limit)
        try:
            with catching_stop_signals(self.stop):
                if self.stop:  # a stop during set-up whose exception was swallowed
                    raise Stopped(self.stop.signum)
                if not self.learns:
                    # nothing to train (--model tv): the set-up chose everything, and there are no
                    # checkpoints to rank, so no validation (for TV it costs a solve per slice)
                    stopped = "nothing to train"
                    self.checkpoint(self.run.best)
                else:
                    if self.tv_due:  # inside the time budget: the default run stops on time all the same
                        self._choose_tv_beside()
                    if self.cfg.time_limit is not None:
                        self._estimate_validation()
                    stopped, validated = self._loop()
                    if not validated:  # the best checkpoint is chosen on a validation of the final weights too
                        self.validate()
                self.checkpoint(self.run.last)
        except BaseException:
            # a new run that fails before its first checkpoint (unreadable slice, NaN at once)
            # leaves nothing behind, so that running it again needs no --overwrite
            discard = self.state is None and not self.run.last.exists() and not self.run.best.exists()
            raise
        finally:
            self._close_run(discard, made_dir)
        return self._summary(stopped)

    def _choose_tv_beside(self) -> None:
        """Choose the TV weights that reconstruction compares the network with; data too sparse
        to hold samples out of only skip it (the network does not need it)."""
        from ..ssdu import SSDUError

        self.tv_due = False
        assert self.budget is not None
        # the search may take a share of a bounded run; the network trains for the rest
        deadline = None if self.budget.limit is None else self.budget.start + TV_SHARE * self.budget.limit
        try:
            self.tv_weights = select_tv_weights(self.dataset, self.mode, self.net.share_window, self.device, self.log,
                                                self.stop, deadline)
        except SSDUError as exc:
            self.log(f"TV: skipped, reconstruction will use the network alone ({exc})")

    def _open_run(self) -> bool:
        """Rank 0: make the run directory, write the configuration, open the metrics log; True if the directory is new."""
        if not self.ranks.main:
            return False
        made = self.run.prepare()
        self.run.write_config(asdict(self.cfg) | {"mode": self.mode})
        if self.state is None:
            warn_unsampled(self.dataset, self.log, mirrored=self.augment)
        self.metrics = MetricsLog(self.run.metrics, resume_at=self.pos.step if self.state is not None else None)
        return made

    def _close_run(self, discard: bool, made_dir: bool) -> None:
        if self.metrics is None:
            return
        self.metrics.close()
        if discard:
            self.run.discard(remove_dir=made_dir)
        else:
            self.metrics.plot(self.run.plot, self.log)

    def _loop(self) -> tuple[str, bool]:
        """Steps until a bound; returns (what stopped it, whether the final weights were validated)."""
        assert self.budget is not None
        cfg, budget = self.cfg, self.budget
        last_save = budget.now()
        it = batches(self.dataset, self.sampler, self.pos.epoch, self.pos.batch_in_epoch, self.loader_args)
        val_loss, validated = None, True
        while self.total is None or self.pos.step < self.total:
            epoch, index, batch = next(it)
            loss_value = self.step(batch)
            self.pos.epoch, self.pos.batch_in_epoch = epoch, index + 1
            record: dict[str, Any] = {"step": self.pos.step, "epoch": epoch, "loss": loss_value,
                                      "time": round(budget.elapsed(), 3)}
            validated = self.pos.step % cfg.val_every == 0 or self.pos.step == self.total
            if validated:
                val_loss = record["val_loss"] = self.validate()
            self._report(record, val_loss)
            # every rank must take the same decisions, or the collectives in checkpoint() deadlock
            save_due, interrupted, time_up = self.ranks.any_of(
                [budget.now() - last_save >= cfg.save_every, bool(self.stop), budget.up()], self.device)
            if interrupted:
                self.checkpoint(self.run.last)
                raise Interrupted(self.stop.signum if self.stop else signal.SIGTERM, self.pos.step, self.run.last)
            if save_due:
                self.checkpoint(self.run.last)
                last_save = budget.now()
            if validated and cfg.patience is not None and self.pos.bad_vals >= cfg.patience:
                return "early stopping", validated
            if time_up:
                return "time limit", validated
        return "steps", validated

    def _report(self, record: dict, val_loss: Optional[float]) -> None:
        if self.metrics is None:
            return
        self.metrics.append(record)
        if self.progress is not None:
            self.progress({"step": self.pos.step, "total": self.total, "loss": record["loss"], "val_loss": val_loss,
                           "best_val": self.pos.best_val})

    def _summary(self, stopped: str) -> dict:
        records = self.metrics.records if self.metrics is not None else []
        assert self.budget is not None
        return {
            "run_dir": str(self.run.path),
            "steps": self.pos.step,
            "stopped_by": stopped,
            "seconds": round(self.budget.elapsed(), 2),
            "last_loss": records[-1]["loss"] if records else None,
            "best_val_loss": self.pos.best_val if math.isfinite(self.pos.best_val) else None,
            "best": str(self.run.best),
            "last": str(self.run.last),
            "mode": self.mode,
            "model": self.cfg.model,
            # compressed sensing chosen beside the network (reconstruct --method auto|tv), or as the model (--model tv)
            "tv_weights": self._chosen_tv_weights(),
        }

    def _chosen_tv_weights(self) -> Optional[list[float]]:
        """``[spatial, temporal, low_rank, fourier, reweight]`` weights of the run: beside the network, or the model's own (``init="tv"``)."""
        if self.tv_weights:
            return self.tv_weights.as_list()
        if isinstance(self.net, ReconstructionNet) and self.net.init == "tv":
            return [float(v) for v in self.net.tv_weights]
        return None

    def close(self) -> None:
        """Release the process group this trainer started (left alive, it slows the exit by seconds)."""
        # no barrier here: after an error on one rank the others may sit in another
        # collective (torchrun stops them); checkpoint() already waits for rank 0's write
        if self.owns_group and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def select_tv_weights(dataset: Any, mode: str, share_window: Optional[int], device: torch.device,
                      log: Callable[[str], None] = print, stop: Optional[StopRequest] = None,
                      deadline: Optional[float] = None) -> TVWeights:
    """The TV weights of :func:`~a2a_cli.tv.tv_reconstruct` for this data, by k-space cross-validation
    on training slices (:func:`~a2a_cli.holdout.spread_problems`, up to :data:`~a2a_cli.tv.SEARCH_SLICES`:
    a large scan costs one slice).

    Tall images are scored on their central band of readout rows, as training crops them
    (:func:`~a2a_cli.training.data.auto_crop_rows`: the exact data of those rows, a fraction of
    the cost), normalised by the whole image's scale, to which the weights refer.

    ``deadline`` (:func:`time.monotonic`): no new candidate after it (the best one so far wins).
    Raises :class:`~a2a_cli.errors.Stopped` between two solves once ``stop`` is requested."""
    began = time.monotonic()

    def problem(item: dict) -> tuple:
        y, physics, _ = as_dynamic(item["kspace"], physics_of(mode, item))
        return y, physics, physics.view_sharing(y, window=share_window)

    def load(i: int):
        item = item_batch(dataset[i], device)
        y, physics, shared = problem(item)
        s = unit_scale(shared)  # the weights refer to data at unit mean magnitude
        band = central_readout_band(item)
        if band is not item:
            y, physics, shared = problem(band)
        coils = item["coil_maps"].shape[1] if item.get("coil_maps") is not None else 1
        return physics, y / (s.unsqueeze(3) if y.ndim == 6 else s), shared[0, 0].numel() * coils

    problems = spread_problems(len(dataset), load, most=SEARCH_SLICES)
    dynamic = problems[0][0].mask.shape[2] > 1
    log(f"TV: choosing the weights of compressed sensing by k-space cross-validation on {len(problems)} training slice(s)")
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    quiet = log is _quiet  # ranks other than the first
    with Progress(TextColumn("[bold]TV weights"), BarColumn(), MofNCompleteColumn(), TextColumn("solves"),
                  TimeElapsedColumn(), console=Console(stderr=True), transient=True, disable=quiet) as bar:
        task = bar.add_task("tv", total=None)
        def solved() -> None:
            bar.advance(task)
            if stop:
                raise Stopped(stop.signum)

        weights = select_weights(problems, dynamic=dynamic, progress=solved, deadline=deadline)
    cut = "" if weights.complete else "; the search stopped at its share of the time budget, best so far"
    log(f"TV: {weights.describe()} ({len(weights.table)} candidates, {time.monotonic() - began:.0f} s{cut})")
    return weights


def train(
    cfg: TrainConfig,
    resume: bool = False,
    progress: Optional[Callable[[dict], None]] = None,
    log: Callable[[str], None] = print,
    stop: Optional[StopRequest] = None,
) -> dict:
    """Train a network as ``cfg`` says; returns a summary dict.

    ``progress(event)`` is called on rank 0 after every step (:class:`Trainer`); ``stop``
    is the stop request the signal handlers set (a new one by default). Raises
    :class:`TrainingError`, :class:`Interrupted` or :class:`~a2a_cli.errors.InputError`.
    """
    trainer = Trainer(cfg, resume=resume, progress=progress, log=log, stop=stop)
    try:
        trainer.setup()
        return trainer.fit()
    finally:
        trainer.close()
