"""The ``a2a`` command line: parse options, call the library, print with rich. No maths here."""
from __future__ import annotations

import functools
import json
import os
import signal
import sys
from enum import Enum
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__
from .errors import A2AError, InputError, Stopped, clear_stop, pending_stop, quiet_swallowed_stops, request_stop
from .training import Interrupted, RunDir, StopRequest, catching_stop_signals

app = typer.Typer(
    name="a2a",
    help="Self-supervised (Artifact2Artifact) reconstruction of undersampled dynamic MRI from HDF5 k-space.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
out = Console()

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1
#: Set to 1 to let unexpected exceptions through with their traceback (the test suite does).
DEBUG_ENV = "A2A_DEBUG"


class Mode(str, Enum):
    dynamic = "dynamic"
    sequential = "sequential"


class Assignment(str, Enum):
    random = "random"
    interleaved = "interleaved"


class Method(str, Enum):
    auto = "auto"
    network = "network"
    tv = "tv"


def _shown(text: object) -> str:
    """``text`` printable on any terminal: bytes of a file name that are not UTF-8 shown as ``\\xNN``.

    >>> _shown(os.fsdecode(b"caf\\xe9.h5"))
    'caf\\\\xe9.h5'
    """
    return str(text).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _fail(message: str, code: int = EXIT_USER_ERROR) -> None:
    # escaped: file names and messages may hold "[...]", which rich would read as markup
    err.print(f"[bold red]error:[/] {escape(_shown(message))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _one_line(exc: BaseException) -> str:
    """``Type: first line of the message``, at most 200 characters."""
    text = str(exc).strip().splitlines()
    first = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return first if len(first) <= 200 else first[:197] + "..."


def _save_traceback() -> str:
    """Write the traceback being handled to a new file (in ``A2A_TRACEBACK_DIR`` or the temporary folder); its name."""
    import tempfile
    import time
    import traceback

    folder = os.environ.get("A2A_TRACEBACK_DIR") or tempfile.gettempdir()
    try:
        fd, name = tempfile.mkstemp(prefix=f"a2a-traceback-{time.strftime('%Y%m%d-%H%M%S')}-", suffix=".txt", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as f:
            f.write(f"a2a {__version__}\ncommand: {sys.argv!r}\n\n{traceback.format_exc()}")
        return name
    except OSError as exc:  # nowhere to write: say so instead of failing again
        return f"nowhere ({folder}: {exc.strerror or exc})"


#: The command's stop request: set by SIGINT and SIGTERM, read by the training loop.
STOP = StopRequest()


def _stop_now(signum: int) -> None:
    """Outside the training loop a stop signal unwinds at once; nothing is published after it."""
    request_stop(signum)
    raise Stopped(signum)


def _stopped(signum: int) -> None:
    sig = signal.Signals(signum)
    _fail(f"stopped by {sig.name}; no output file was left half-written", 128 + sig)


def user_errors(fn: Callable) -> Callable:
    """Turn library errors into one clean message and exit code 2 (no traceback).

    SIGINT and SIGTERM outside the training loop (which saves a checkpoint first) stop the
    command through an exception: nothing half-written is left, and the exit code is
    128 + the signal number.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        clear_stop()
        STOP.clear()
        try:
            with quiet_swallowed_stops(), catching_stop_signals(STOP, then=_stop_now):
                return fn(*args, **kwargs)
        except Interrupted as exc:
            err.print(f"[yellow]{escape(str(exc))}[/]", highlight=False, soft_wrap=True)
            raise typer.Exit(128 + int(exc.signum))
        except KeyboardInterrupt as exc:
            _stopped(exc.signum if isinstance(exc, Stopped) else signal.SIGINT)
        except A2AError as exc:
            if (signum := pending_stop()) is not None:  # a stop raised inside a reader, reported as its error
                _stopped(signum)
            _fail(str(exc))
        except MemoryError:
            _fail("out of memory: use --frames-per-batch, a smaller --batch-size or fewer slices per file", 1)
        except (typer.Exit, typer.Abort, typer.exceptions.TyperException):
            raise
        except Exception as exc:
            if (signum := pending_stop()) is not None:
                # the stop's exception was raised inside a C extension (h5py, torch), which
                # reported it as an error of its own (h5py: TypeError): it is still the stop
                _stopped(signum)
            # last resort: one line and the traceback in a file; A2A_DEBUG=1 (set by the test
            # suite) lets the exception through, so that a real bug fails its test
            if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
                raise
            _fail(f"internal error ({_one_line(exc)}); full traceback saved to {_save_traceback()}; "
                  f"please report it (set {DEBUG_ENV}=1 to see it here)", EXIT_INTERNAL_ERROR)
        finally:
            clear_stop()
            STOP.clear()

    return wrapper


def _version(value: bool) -> None:
    if value:
        out.print(f"a2a {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """a2a: train a reconstruction network without ground truth, then reconstruct full sequences."""


def _split_options(frames: Optional[int], assignment: Assignment, centre_lines: int, seed: int):
    from .data import SplitOptions

    if frames is None:
        return None
    return SplitOptions(frames=frames, assignment=assignment.value, centre_lines=centre_lines, seed=seed)


def _parse_model_options(items: List[str]) -> dict:
    opts: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise A2AError(f"--model-option expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            opts[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            opts[key.strip()] = value
    return opts


def _is_default(ctx: typer.Context, param: str) -> bool:
    """True when the user did not give ``param`` on the command line."""
    source = ctx.get_parameter_source(param)
    return source is None or source.name in ("DEFAULT", "DEFAULT_MAP")


TRAIN_EPILOG = """
**Examples**

    a2a train sample_data/dynamic_train.h5 --out runs/demo

    a2a train study/*.h5 --val heldout.h5 --out runs/study --steps 3000 --split-size 4

    a2a train scans/*.h5 --out runs/study --resume

    a2a train knee_stack.h5 --out runs/knee --loss ssdu --ssdu-masks 4

    a2a train scans/*.h5 --out runs/cs --model tv    # compressed sensing alone, weights chosen from the data

    a2a train scans/*.h5 --out runs/net --no-tv      # the network alone

    torchrun --nproc-per-node 2 -m a2a_cli train study/*.h5 --out runs/ddp

    a2a train study/*.h5 --out runs/ddp --nproc 2 --workers 2
"""


@app.command(epilog=TRAIN_EPILOG)
@user_errors
def train(
    ctx: typer.Context,
    data: List[Path] = typer.Argument(..., help="Training k-space files (HDF5).", show_default=False),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Run directory: config, metrics, loss plot, checkpoints."),
    val: List[Path] = typer.Option([], "--val", help="Held-out file(s) scored with the self-supervised loss (repeat the option). Without it the training files are scored."),
    mode: Optional[Mode] = typer.Option(None, help="dynamic (video) or sequential (static image); default: the files' `acquisition` attribute."),
    model: str = typer.Option("unrolled", help="Network: unrolled, unet or cnn2dt; or tv: no network, compressed sensing with total variation whose weights the run chooses by k-space cross-validation."),
    model_option: List[str] = typer.Option([], "--model-option", help="Network setting KEY=VALUE, e.g. iterations=3 (repeatable)."),
    tv: Optional[bool] = typer.Option(None, "--tv/--no-tv", help="Also choose the weights of compressed sensing (spatial TV, TV along time, and, for dynamic data, a locally low-rank term and an l1 term on the temporal spectrum) by k-space cross-validation (within the time budget), so that `a2a reconstruct` can blend, per file, the network and compressed sensing in the proportion that best predicts held-out k-space samples. Default: on. The search takes at most 85% of a bounded run's time budget (then the best weights tried so far), the network trains for the rest.", show_default=False),
    loss: str = typer.Option("auto", help="a2a (Artifact2Artifact: split in time), p2p (Phase2Phase), ssdu (split k-space: for the same lines in every frame, or one frame) or auto (ssdu for sequential data; otherwise a2a where the masks allow temporal splitting, else ssdu)."),
    ssdu_fraction: float = typer.Option(0.2, "--ssdu-fraction", help="ssdu: fraction of the measured samples held out for the loss at each step (0.2 measured better than the paper's 0.4: benchmarks/SSDU.md)."),
    ssdu_masks: int = typer.Option(1, "--ssdu-masks", help="ssdu: partitions per slice and step (multi-mask SSDU when > 1)."),
    split_size: List[int] = typer.Option([], "--split-size", help="Frames per chunk (repeat for a random choice per step); default: T/2."),
    all_pairs: bool = typer.Option(False, "--all-pairs", help="Score each input chunk against all other chunks (lower-variance loss)."),
    neighbours_only: bool = typer.Option(False, "--neighbours-only", help="Targets only from the chunks next to the input chunk (less motion between them)."),
    shuffle_frames: Optional[bool] = typer.Option(None, "--shuffle-frames/--no-shuffle-frames", help="Chunks from a random ordering of the frames at every step (static objects only); default: on in sequential mode, off in dynamic mode.", show_default=False),
    augment: Optional[bool] = typer.Option(None, "--augment/--no-augment", help="Train on randomly mirrored and conjugated data (exact symmetries of the measurement) and average the reconstruction over them; default: on in sequential mode with temporal splitting (a2a, p2p), off otherwise.", show_default=False),
    steps: Optional[int] = typer.Option(None, help="Optimizer steps (upper bound); default when neither --epochs nor --time-limit is given: 800 (dynamic) or 3000 (sequential), or 240 s of training, whichever comes first.", show_default=False),
    epochs: Optional[int] = typer.Option(None, help="Passes over the training slices (upper bound)."),
    time_limit: Optional[float] = typer.Option(None, "--time-limit", help="Stop after this many seconds."),
    lr: float = typer.Option(1e-3, help="Adam learning rate."),
    batch_size: int = typer.Option(1, "--batch-size", help="Slices per step (slices of equal shape are batched together)."),
    val_every: int = typer.Option(100, "--val-every", help="Steps between validations."),
    patience: Optional[int] = typer.Option(5, help="Stop after this many validations without improvement (0: never)."),
    grad_clip: Optional[float] = typer.Option(None, "--grad-clip", help="Clip the gradient norm to this value."),
    save_every: float = typer.Option(30.0, "--save-every", help="Seconds between checkpoints of the last state."),
    seed: int = typer.Option(0, help="Random seed."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    workers: int = typer.Option(0, help="DataLoader worker processes."),
    amp: bool = typer.Option(False, "--amp", help="bfloat16 autocast (CUDA)."),
    frames: Optional[int] = typer.Option(None, help="fastMRI-style static files: split the sampled lines into this many frames."),
    assignment: Assignment = typer.Option(Assignment.random, help="How lines are assigned to frames (with --frames)."),
    centre_lines: int = typer.Option(0, "--centre-lines", help="Centre lines shared by every frame (with --frames)."),
    mask_file: Optional[Path] = typer.Option(None, "--mask", help="CMRxRecon: sampling mask file (`*_mask*.mat`) for every input; default: the mask file beside each input."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run in --out."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML file with the same keys (command-line values win)."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
    nproc: int = typer.Option(1, "--nproc", help="Train with this many processes (DistributedDataParallel; one per GPU on CUDA): re-runs this command under torchrun."),
) -> None:
    """Train a network with the self-supervised splitting loss on k-space files."""
    from .config import check_options
    from .training import check_model_options

    cfg, options_from = _train_config(ctx)
    check_options(nproc=nproc)
    # the network options are named where they came from: the command line, the saved run or --config
    check_model_options(cfg.model, cfg.model_options, options_from)
    if nproc > 1 and "RANK" in os.environ:
        raise A2AError("--nproc cannot be used under torchrun (torchrun already starts the processes)")
    _check_run_dir(cfg, config, resume, overwrite)
    if nproc > 1:
        raise typer.Exit(_relaunch_distributed(nproc))
    show = int(os.environ.get("RANK", "0")) == 0
    summary = _train_with_progress(cfg, resume, show)
    if json_out and show:  # one summary, not one per rank
        out.print_json(json.dumps(summary), ensure_ascii=True)
    elif show:
        err.print(
            f"[green]done[/]: {summary['steps']} steps in {summary['seconds']:.0f} s (stopped by {summary['stopped_by']}); "
            f"best checkpoint {summary['best']}",
            highlight=False, soft_wrap=True,
        )


#: ``train`` options whose configuration key has another name
_TRAIN_KEY_OF = {"data": "train", "out_dir": "out", "model_option": "model_options", "mask_file": "mask"}
#: ``train`` options that are not configuration keys
_NOT_CONFIG = {"resume", "overwrite", "config", "json_out", "nproc"}


def _train_config(ctx: typer.Context) -> tuple[Any, Optional[Path]]:
    """The run's configuration from the ``train`` options (:func:`a2a_cli.config.merge_train_config`),
    and the file the network options came from (None: the command line)."""
    from .config import merge_train_config

    p = ctx.params
    values = {_TRAIN_KEY_OF.get(name, name): value for name, value in p.items() if name not in _NOT_CONFIG}
    values |= {
        "train": [str(v) for v in p["data"]], "out": str(p["out_dir"]), "val": [str(v) for v in p["val"]],
        "mode": p["mode"].value if p["mode"] else None, "model_options": _parse_model_options(p["model_option"]),
        "split_size": list(p["split_size"]), "patience": p["patience"] or None, "assignment": p["assignment"].value,
        "mask": str(p["mask_file"]) if p["mask_file"] is not None else None,
    }
    given = {_TRAIN_KEY_OF.get(name, name) for name in p if name not in _NOT_CONFIG and not _is_default(ctx, name)}
    saved = RunDir(p["out_dir"]).saved_config() if p["resume"] else None
    # defaults < --config < the saved run (--resume) < the command line, every value checked
    cfg = merge_train_config(values, given, toml=p["config"], saved=saved)
    return cfg, None if "model_options" in given else saved or p["config"]


def _check_run_dir(cfg: Any, config: Optional[Path], resume: bool, overwrite: bool) -> None:
    """Refuse a run directory that is a file, holds an input of the run, or holds a run (unless
    ``--resume`` or ``--overwrite``, which clears the previous run's files)."""
    from .paths import check_output_folder, refuse_outputs_over_inputs

    run = RunDir(cfg.out)
    if run.path.exists() and not run.path.is_dir():
        raise InputError(run.path, "--out must be a run directory, but this is a file; choose another --out")
    # the run writes these names: none of them may be an input of the run
    inputs = [*cfg.train, *cfg.val, *([config] if config is not None else []), *([cfg.mask] if cfg.mask else [])]
    refuse_outputs_over_inputs(run.outputs(), inputs, "is an input of this run and would be overwritten by its output; choose another --out")
    check_output_folder(run.config, "--out")  # the run directory, or the folder it is made in, must be writable
    # only rank 0 looks at the run directory: another rank could find the files rank 0 has just written
    if int(os.environ.get("RANK", "0")) == 0 and run.holds_run() and not resume:
        if not overwrite:
            raise A2AError(f"{run.path} already holds a run: pass --resume to continue it or --overwrite to start again")
        run.clear()


class _TrainingBar:
    """The training progress bar: step, loss, validation loss and the rate of this session's steps."""

    def __init__(self, bar: Any, total: Optional[int]):
        import time

        self.bar, self.clock = bar, time.monotonic
        self.task = bar.add_task("train", total=total, loss="-", val="-", rate="-")
        self.started, self.first_step = self.clock(), None

    def __call__(self, event: dict) -> None:
        if self.first_step is None:  # a resumed run counts its rate from where it resumed
            self.first_step = event["step"] - 1
        rate = (event["step"] - self.first_step) / max(self.clock() - self.started, 1e-9)
        val_txt = "-" if event["val_loss"] is None else f"{event['val_loss']:.4g}"
        self.bar.update(self.task, completed=event["step"], total=event["total"], loss=f"{event['loss']:.4g}",
                        val=val_txt, rate=f"{rate:.1f}")


def _train_with_progress(cfg: Any, resume: bool, show: bool) -> dict:
    """Run :func:`a2a_cli.training.train` under a progress bar (rank 0 only); its summary."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from .training import train as run_training

    columns = [
        TextColumn("[bold]train"), BarColumn(), TextColumn("step {task.completed}/{task.total}"),
        TextColumn("loss {task.fields[loss]}"), TextColumn("val {task.fields[val]}"),
        TextColumn("{task.fields[rate]} it/s"), TimeElapsedColumn(), TimeRemainingColumn(),
    ]
    # --model tv takes no steps: its set-up (the weights' cross-validation) logs its own lines
    with Progress(*columns, console=err, disable=not show or cfg.model == "tv", transient=False) as bar:
        return run_training(cfg, resume=resume, progress=_TrainingBar(bar, cfg.steps), stop=STOP,
                            log=lambda m: err.print(m, highlight=False, soft_wrap=True))


def _without_option(args: List[str], name: str) -> List[str]:
    """``args`` without ``name VALUE`` and ``name=VALUE``.

    >>> _without_option(["a.h5", "--nproc", "2", "--steps=3", "--nproc=4"], "--nproc")
    ['a.h5', '--steps=3']
    """
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == name:
            skip = True
        elif not arg.startswith(name + "="):
            kept.append(arg)
    return kept


def _relaunch_distributed(nproc: int) -> int:
    """Run this ``train`` command again, without ``--nproc``, as ``nproc`` torchrun processes; returns their exit status.

    The standard launcher (standalone rendezvous on this machine) sets RANK, WORLD_SIZE
    and LOCAL_RANK, which :func:`a2a_cli.training.train` reads.
    """
    import subprocess

    argv = sys.argv[1:]
    if "train" not in argv:
        raise A2AError("--nproc: the train command line was not found to re-run; use "
                       "`torchrun --nproc-per-node N -m a2a_cli train ...` instead")
    args = _without_option(argv[argv.index("train") + 1:], "--nproc")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "a2a_cli", "train", *args]
    proc = subprocess.Popen(cmd)

    def forward(signum: int) -> None:
        # Ctrl-C reaches the workers directly (same process group): wait for their checkpoint
        # instead of dying first; a SIGTERM to this process is passed on to the launcher.
        if signum == signal.SIGTERM:
            proc.send_signal(signum)

    with catching_stop_signals(STOP, then=forward):
        code = proc.wait()
    return 128 - code if code < 0 else code  # killed by signal N: the shell's 128 + N


RECON_EPILOG = """
**Examples**

    a2a reconstruct runs/demo/best.pt sample_data/dynamic_test.h5 --out recon/

    a2a reconstruct runs/demo/best.pt scans/*.h5 --out recon/ --json --overwrite

    a2a reconstruct runs/demo/best.pt long_scan.h5 --out recon/ --frames-per-batch 32 --preview cine.gif

    a2a reconstruct runs/demo/best.pt scans/*.h5 --out recon/ --export .nii.gz

    a2a reconstruct runs/demo/best.pt scans/*.h5 --out recon/ --method network
"""


@app.command(epilog=RECON_EPILOG)
@user_errors
def reconstruct(
    checkpoint: Path = typer.Argument(..., help="Checkpoint written by `a2a train` (best.pt or last.pt).", show_default=False),
    data: List[Path] = typer.Argument(..., help="k-space files to reconstruct.", show_default=False),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Output directory: one <name>_recon.h5 per input."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    frames_per_batch: Optional[int] = typer.Option(None, "--frames-per-batch", help="Run the network over windows of this many frames (bounded memory for long sequences; same result). Default: windows only when a whole sequence would not fit in memory; 0: never."),
    preview: Optional[Path] = typer.Option(None, "--preview", help="Write a picture (.png, or .gif for a dynamic sequence) of the first file."),
    preview_slice: int = typer.Option(0, "--preview-slice", help="Slice shown in the preview."),
    preview_frame: int = typer.Option(0, "--preview-frame", help="Frame shown in a PNG preview."),
    frames: Optional[int] = typer.Option(None, help="fastMRI-style static files: split the sampled lines into this many frames."),
    assignment: Assignment = typer.Option(Assignment.random, help="How lines are assigned to frames (with --frames)."),
    centre_lines: int = typer.Option(0, "--centre-lines", help="Centre lines shared by every frame (with --frames)."),
    seed: int = typer.Option(0, help="Seed of the line assignment (with --frames)."),
    mask_file: Optional[Path] = typer.Option(None, "--mask", help="CMRxRecon: sampling mask file (`*_mask*.mat`) for every input; default: the mask file beside each input."),
    json_out: bool = typer.Option(False, "--json", help="Print the quality table as JSON on stdout."),
    export_suffix: Optional[str] = typer.Option(None, "--export", help="Also export each output beside it: a suffix of `a2a export` (.nii.gz, .cfl, .gif, .png, ...) or dicom (a folder NAME_recon_dicom).", show_default=False),
    adapt: Optional[int] = typer.Option(None, "--adapt", metavar="STEPS", help="Fine-tune a copy of the network on each slice for STEPS self-supervised steps before reconstructing it (scan-specific; 0: off). Default: 200 in sequential mode, 0 in dynamic mode and for radial files."),
    method: Method = typer.Option(Method.auto, "--method", help="network, tv (the TV compressed sensing whose weights training chose beside the network) or auto: per file, the blend a x network + (1 - a) x tv, a in [0, 1], that best predicts k-space samples held out of that file (a = 0 keeps TV alone, 1 the network alone; the network when the checkpoint holds no TV weights)."),
) -> None:
    """Reconstruct full sequences (no splitting) with a trained network; report quality when a reference is stored."""
    from .config import check_options
    from .data import inspect_file
    from .paths import check_output_folder, output_folders, refuse_outputs_over_inputs
    from .reconstruction import load_for_inference, output_path
    from .training import pick_device

    check_options(device=device, frames_per_batch=frames_per_batch, preview_slice=preview_slice,
                  preview_frame=preview_frame, frames=frames, centre_lines=centre_lines, seed=seed)
    if adapt is not None and adapt < 0:
        raise A2AError(f"--adapt: must be a number of steps >= 0, got {adapt}")
    inputs = [Path(p) for p in data]
    targets = [output_path(p, out_dir) for p in inputs]
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise InputError(out_dir, "--out must be a directory for the outputs, but this is a file")
    check_output_folder(targets[0], "--out")
    every_input = [*inputs, checkpoint, mask_file]
    refuse_outputs_over_inputs(targets, every_input, "this output path is also an input file; choose another --out directory")
    for target in targets:
        if target.exists() and not overwrite:
            raise InputError(target, "output exists; pass --overwrite to replace it")
    seen: dict[Path, Path] = {}
    for source, target in zip(inputs, targets):
        if target in seen:
            raise InputError(source, f"has the same file name as {seen[target]}, so both would be written to {target.name}; "
                                     "reconstruct them separately (another --out)")
        seen[target] = source
    exports = _export_targets(targets, export_suffix, overwrite)
    if preview is not None:
        if preview.suffix.lower() not in (".png", ".gif"):
            raise A2AError("--preview must end in .png or .gif")
        refuse_outputs_over_inputs([preview], every_input, "--preview names an input file, which is never overwritten; choose another name")
        refuse_outputs_over_inputs([preview], targets, "--preview names one of the reconstructions; choose another name")
        if preview.exists() and not overwrite:
            raise InputError(preview, "preview exists; pass --overwrite to replace it")
        check_output_folder(preview, "--preview")
    dev = pick_device(device)
    ckpt, net = load_for_inference(checkpoint, dev)
    split = _split_options(frames, assignment, centre_lines, seed)
    if preview is not None:  # the picture's slice and frame are checked before anything is written
        first = inspect_file(inputs[0], split=split, mask_file=mask_file)
        if preview_slice >= first.n_slices:
            raise InputError(inputs[0], f"--preview-slice {preview_slice} is outside 0..{first.n_slices - 1}")
        if ckpt.mode == "dynamic" and preview.suffix.lower() == ".png" and preview_frame >= first.frames:
            raise InputError(inputs[0], f"--preview-frame {preview_frame} is outside 0..{first.frames - 1}")
        if ckpt.mode != "dynamic" and preview.suffix.lower() == ".gif":
            raise A2AError("a .gif preview needs dynamic data; use .png")
    with output_folders([preview], [out_dir]):
        table = _reconstruct_all(ckpt, net, inputs, out_dir, dev, overwrite, frames_per_batch, split, mask_file,
                                 {"slice": preview_slice} if preview is not None else None, exports, adapt,
                                 method.value)
        if preview is not None:
            _write_preview(preview, table.pop("_keep"), ckpt.mode, preview_frame)
    table.pop("_keep", None)
    if json_out:
        out.print_json(json.dumps(table), ensure_ascii=True)
    else:
        _print_quality(table)


def _reconstruct_all(ckpt, net, inputs: list, out_dir: Path, dev, overwrite: bool, frames_per_batch: Optional[int],
                     split, mask_file: Optional[Path], keep: Optional[dict], exports: List[tuple[Path, str]],
                     adapt: Optional[int], method: str = "auto") -> dict:
    """Reconstruct every input with a progress bar; the quality table (``_keep``: the preview's images)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .reconstruction import overall, reconstruct_file

    results = []
    with Progress(TextColumn("[bold]reconstruct {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("slices"), TimeElapsedColumn(), console=err) as bar:
        tuning = bar.add_task("fine-tuning on the slice", total=None, visible=False)
        fitting = bar.add_task("network / TV blend: hold-out rounds", total=None, visible=False)
        for i, source in enumerate(inputs):
            task = bar.add_task(escape(_shown(source.name)), total=None)
            res = reconstruct_file(
                ckpt, net, source, out_dir, dev, overwrite=overwrite, frames_per_batch=frames_per_batch,
                split=split, on_slice=lambda d, n, t=task: bar.update(t, completed=d, total=n),
                keep=keep if i == 0 else None, mask_file=mask_file,
                log=lambda m: bar.console.print(escape(m), style="dim", highlight=False, soft_wrap=True),
                adapt_steps=adapt,  # None: the default for the file (reconstruct_file)
                on_adapt_step=lambda k, n: bar.update(tuning, completed=k % n, total=n, visible=k < n),
                method=method,
                on_fit_round=lambda k, n: bar.update(fitting, completed=k, total=n, visible=k < n),
            )
            results.append(res)
            if exports:
                from .export import export as run_export

                run_export(res.output, exports[i][0], fmt=exports[i][1], overwrite=overwrite)
    table = {"files": [r.summary() for r in results], "overall": overall(results), "checkpoint": str(ckpt.path),
             "network": ckpt.model_name, "mode": ckpt.mode, "_keep": keep}
    if exports:
        table["exports"] = [str(p) for p, _ in exports]
    return table


def _export_targets(targets: List[Path], suffix: Optional[str], overwrite: bool) -> List[tuple[Path, str]]:
    """Where ``reconstruct --export SUFFIX`` writes, checked before any work: the format, its packages, no clobbering."""
    if suffix is None:
        return []
    from .export import check_target, export_target, require_packages

    exports = [export_target(t, suffix) for t in targets]
    require_packages(exports[0][1])
    for path, kind in exports:
        if path.parent.is_dir():  # the --out directory may not exist yet
            check_target(path, kind, overwrite)
    return exports


def _write_preview(path: Path, keep: dict, mode: str, frame: int) -> None:
    import numpy as np

    from .plots import save_preview

    if not keep or "network" not in keep:
        raise A2AError(f"--preview-slice {keep.get('slice') if keep else '?'} is not a slice of the first file")
    rec, zf, ref = keep["network"], keep["zero_filled"], keep.get("reference")
    gif = path.suffix.lower() == ".gif"
    if mode == "dynamic" and not gif:
        if not 0 <= frame < rec.shape[0]:
            raise A2AError(f"--preview-frame {frame} is outside 0..{rec.shape[0] - 1}")
        rec, zf, ref = rec[frame], zf[frame], None if ref is None else ref[frame]
    if gif and mode != "dynamic":
        raise A2AError("a .gif preview needs dynamic data; use .png")
    panels = {}
    if ref is not None:
        panels["reference"] = ref
    panels["zero-filled"] = zf
    panels["a2a"] = rec
    if ref is not None:
        panels["error x5"] = 5 * (np.abs(rec) - np.abs(ref))
    save_preview(path, panels)
    err.print(f"preview written to {_shown(path)}", highlight=False, markup=False)


def _method_label(row: dict) -> str:
    """What reconstructed a file, for the table: ``network``, ``tv`` or ``blend 0.42`` (the network's share)."""
    if row.get("method") == "blend" and row.get("network_weight") is not None:
        return f"blend {row['network_weight']:.2f}"
    return str(row.get("method"))


def _fmt(v: Optional[float], digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _print_quality(table: dict) -> None:
    t = Table(title=f"a2a reconstruction ({table['network']}, {table['mode']})")
    for col in ("file", "slices", "method", "PSNR zero-filled", "PSNR a2a", "SSIM zero-filled", "SSIM a2a", "s/frame"):
        t.add_column(col, justify="left" if col == "file" else "right", no_wrap=col == "file")
    for r in table["files"]:
        t.add_row(escape(_shown(Path(r["file"]).name)), str(r["slices"]), _method_label(r), _fmt(r["psnr_zero_filled"]),
                  _fmt(r["psnr_network"]), _fmt(r["ssim_zero_filled"], 3), _fmt(r["ssim_network"], 3),
                  _fmt(r["seconds_per_frame"], 4))
    o = table["overall"]
    if len(table["files"]) > 1:
        t.add_row("[bold]overall", str(o["slices"]), "", _fmt(o["psnr_zero_filled"]), _fmt(o["psnr_network"]),
                  _fmt(o["ssim_zero_filled"], 3), _fmt(o["ssim_network"], 3), "")
    out.print(t)
    for r in table["files"]:
        out.print(f"wrote {_shown(r['output'])}", highlight=False, soft_wrap=True, markup=False)
    if o["psnr_network"] is None:
        out.print("(no reference stored in the inputs: quality not measured)")


INSPECT_EPILOG = """
**Examples**

    a2a inspect-mask sample_data/dynamic_train.h5

    a2a inspect-mask scan.h5 --split-size 4 --split-size 8 --png mask.png

    a2a inspect-mask scan.h5 --json
"""


@app.command("inspect-mask", epilog=INSPECT_EPILOG)
@user_errors
def inspect_mask(
    data: Path = typer.Argument(..., help="k-space file (HDF5).", show_default=False),
    split_size: List[int] = typer.Option([], "--split-size", help="Split sizes to assess (default: every divisor of T leaving two or more chunks)."),
    slice_index: int = typer.Option(0, "--slice", help="Slice whose mask is shown."),
    png: Optional[Path] = typer.Option(None, "--png", help="Write a picture of the sampling pattern."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --png file."),
    frames: Optional[int] = typer.Option(None, help="fastMRI-style static files: split the sampled lines into this many frames."),
    assignment: Assignment = typer.Option(Assignment.random, help="How lines are assigned to frames (with --frames)."),
    centre_lines: int = typer.Option(0, "--centre-lines", help="Centre lines shared by every frame (with --frames)."),
    seed: int = typer.Option(0, help="Seed of the line assignment (with --frames)."),
    mask_file: Optional[Path] = typer.Option(None, "--mask", help="CMRxRecon: sampling mask file (`*_mask*.mat`); default: the mask file beside the input."),
) -> None:
    """Show whether a file's sampling pattern suits splitting in time, and which loss to train with."""
    from .config import check_options
    from .data import describe_layout, inspect_file, layout_warning, read_slice
    from .masks import mask_report, render_text, save_mask_png
    from .paths import check_output_folder, output_folders, refuse_outputs_over_inputs
    from .training.options import SEQUENTIAL_LOSS_REASON, ssdu_for_sequential

    check_options(split_size=list(split_size), slice_index=slice_index, frames=frames, centre_lines=centre_lines, seed=seed)
    if png is not None:  # checked before any work
        refuse_outputs_over_inputs([png], [data, mask_file], "--png names an input file, which is never overwritten; choose another name")
        if png.suffix.lower() != ".png":
            raise A2AError("--png must end in .png (the picture is written as PNG)")
        if png.exists() and not overwrite:
            raise InputError(png, "exists; pass --overwrite to replace it")
        check_output_folder(png, "--png")
    split = _split_options(frames, assignment, centre_lines, seed)
    info = inspect_file(data, split=split, mask_file=mask_file)
    if not 0 <= slice_index < info.n_slices:
        raise InputError(data, f"--slice {slice_index} is outside 0..{info.n_slices - 1}")
    if info.layout == "radial":
        from .radial import spoke_report_of

        report = spoke_report_of(data, info, slice_index, list(split_size) or None, png, overwrite)
        if ssdu_for_sequential(info.mode):  # what `train --loss auto` does (training.options.resolve_loss)
            report["recommended_loss"], report["loss_reason"] = "ssdu", SEQUENTIAL_LOSS_REASON
        if json_out:
            out.print_json(json.dumps(report))
        else:
            from .radial_report import print_spoke_report

            print_spoke_report(report, out)
        return
    # the slice as training reads it: k-space that does not fit its mask (axes swapped, wrong mask) is refused
    sample = read_slice(data, slice_index, split=split, info=info, allow_empty_frames=True, mask_file=mask_file,
                        sensitivity="lowres")
    mask = sample.mask[0, 0].numpy().astype(bool)  # (T, H, W)
    report = mask_report(mask, split_sizes=list(split_size) or None)
    report["file"] = str(data)
    report["slice"] = slice_index
    report["interpretation"] = describe_layout(info)
    report["layout_warning"] = layout_warning(info, mask)
    report["mask_source"] = info.mask_source
    report["coils"] = getattr(info, "coils", None)
    # where the coil maps will come from: "stored", "espirit" (low-resolution fallback per slice) or "lowres"
    report["sensitivity"] = getattr(info, "sensitivity", None) or ("estimated" if (getattr(info, "coils", None) or 1) > 1 else None)
    if report["temporal_splitting"]["fit"] and ssdu_for_sequential(info.mode):
        # what `train --loss auto` does (training.options.resolve_loss)
        report["recommended_loss"] = "ssdu"
        report["loss_reason"] = SEQUENTIAL_LOSS_REASON
    if png is not None:
        with output_folders([png]):
            save_mask_png(mask, png)
    if json_out:
        out.print_json(json.dumps(report), ensure_ascii=True)
        return
    _print_mask_report(report, render_text(mask))
    out.print(report["interpretation"], highlight=False, soft_wrap=True)
    if report["layout_warning"]:
        err.print(f"[yellow]warning:[/] {escape(report['layout_warning'])}", highlight=False, soft_wrap=True)
    if png is not None:
        err.print(f"picture written to {_shown(png)}", highlight=False, markup=False)


def _print_mask_report(r: dict, picture: str) -> None:
    from rich.panel import Panel

    colour = {"ok": "green", "warning": "yellow", "unusable": "red"}.get(r.get("verdict"), "white")
    out.print(Panel(picture, title=f"{escape(_shown(Path(r['file']).name))}: phase-encode lines (x) against time (y)", expand=False), highlight=False)
    u = r.get("union", {})
    out.print(
        f"shape {tuple(r.get('shape', ()))}, {r.get('orientation')}, mask {r.get('mask_source')}"
        + (f", {r['coils']} coils (maps: {r.get('sensitivity')})" if (r.get("coils") or 1) > 1 else "") + "; "
        f"union of all frames: acceleration {_fmt(u.get('acceleration'))}, coverage {_fmt(100 * (u.get('fraction') or 0), 0)}%",
        highlight=False,
    )
    frames = r.get("frames", [])
    if frames:
        acc = [f.get("acceleration") for f in frames if f.get("acceleration")]
        if acc:
            out.print(f"per frame: acceleration {min(acc):.1f} to {max(acc):.1f}", highlight=False)
    t = Table(title="split sizes")
    for col in ("split size", "chunks", "chunk acceleration", "centre in every chunk", "verdict", "warnings"):
        t.add_column(col)
    for s in r.get("splits", []):
        accs = [a for a in s.get("chunk_acceleration", []) if a]
        acc_txt = f"{min(accs):.1f}-{max(accs):.1f}" if accs else "-"
        t.add_row(str(s.get("split_size")), str(s.get("n_chunks")), acc_txt, str(s.get("centre_in_every_chunk")),
                  s.get("verdict", ""), "; ".join(s.get("warnings", [])))
    out.print(t)
    for w in r.get("warnings", []):
        out.print(f"[yellow]warning:[/] {w}", highlight=False)
    rec = r.get("recommended_split_size")
    fitness = r.get("temporal_splitting") or {}
    if r.get("recommended_loss") == "ssdu" and not fitness.get("fit"):
        out.print(f"[bold red]verdict: unfit for temporal splitting[/] ({fitness.get('reason')}); recommended --loss ssdu", highlight=False)
        return
    out.print(f"[bold {colour}]verdict: {r.get('verdict')}[/]" + (f" (recommended --split-size {rec})" if rec else ""), highlight=False)
    if r.get("loss_reason"):
        out.print(f"recommended --loss {r['recommended_loss']}: {r['loss_reason']}", highlight=False)


CONVERT_EPILOG = """
**Examples**

    a2a convert AccFactor04/P001/cine_sax.mat cine_sax_acc04.h5

    a2a convert FullSample/P001/cine_sax.mat cine_sax_kt8.h5 --mask Mask_Task2/P001/cine_sax_mask_ktGaussian8.mat

    a2a convert ocmr_cine.h5 ocmr_a2a.h5 --overwrite

    a2a convert multicoil.h5 multicoil_8vc.h5 --virtual-coils 8

    a2a convert ksp.cfl radial.h5 --trajectory traj.cfl --image-size 128 128

    a2a convert radial_ismrmrd.h5 radial.h5
"""


@app.command(epilog=CONVERT_EPILOG)
@user_errors
def convert(
    source: Path = typer.Argument(..., help="Input: CMRxRecon .mat, ISMRMRD raw data, fastMRI or a2a HDF5.", show_default=False),
    target: Path = typer.Argument(..., help="Output a2a file (HDF5).", show_default=False),
    mask_file: Optional[Path] = typer.Option(None, "--mask", help="CMRxRecon: sampling mask file (`*_mask*.mat`); default: the mask file beside the input."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
    frames: Optional[int] = typer.Option(None, help="fastMRI-style static files: split the sampled lines into this many frames."),
    assignment: Assignment = typer.Option(Assignment.random, help="How lines are assigned to frames (with --frames)."),
    centre_lines: int = typer.Option(0, "--centre-lines", help="Centre lines shared by every frame (with --frames)."),
    seed: int = typer.Option(0, help="Seed of the line assignment (with --frames)."),
    virtual_coils: Optional[int] = typer.Option(None, "--virtual-coils", help="Compress the coils of each slice to this many virtual coils (SVD; sensitivity maps compressed alike), for faster training and reconstruction."),
    trajectory: Optional[Path] = typer.Option(None, "--trajectory", help="BART radial k-space (IN is a .cfl/.hdr array): its trajectory array (`bart traj` units)."),
    image_size: Optional[Tuple[int, int]] = typer.Option(None, "--image-size", help="BART radial arrays: the image grid H W (default: twice the largest coordinate)."),
) -> None:
    """Write the a2a file of any supported input (slice by slice; the output appears only when complete)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from .config import check_options
    from .data import convert as convert_file, detect
    from .paths import check_output_folder, output_folders, refuse_outputs_over_inputs

    check_options(frames=frames, centre_lines=centre_lines, seed=seed, virtual_coils=virtual_coils)
    bart = trajectory is not None or source.suffix in (".cfl", ".hdr")
    # a BART array is two files (.cfl data, .hdr header): neither may be replaced
    inputs = [p.with_suffix(x) for p in (source, trajectory) if p is not None and p.suffix in (".cfl", ".hdr") for x in (".cfl", ".hdr")]
    refuse_outputs_over_inputs([target], [source, trajectory, *inputs, mask_file], "the output would replace an input file (the data, its --mask or --trajectory); choose another name")
    check_output_folder(target, "the output")
    if image_size is not None and not bart:
        raise A2AError("--image-size is for BART radial arrays (with --trajectory); other inputs carry their image size")
    with output_folders([target]):  # created for the output, removed again if the conversion fails
        if bart:
            from .radial_convert import convert_bart

            if trajectory is None:
                raise A2AError("BART k-space needs its trajectory: --trajectory traj.cfl")
            written = convert_bart(source, trajectory, target, image_size=image_size, overwrite=overwrite)
            err.print(f"wrote {written} (input format: BART radial)", highlight=False, soft_wrap=True)
            return
        split = _split_options(frames, assignment, centre_lines, seed)
        kind = detect(source)  # a missing or non-HDF5 input fails here, before the progress bar
        if kind == "ismrmrd":
            import h5py

            from .radial_convert import convert_ismrmrd, ismrmrd_has_trajectories

            with h5py.File(source, "r") as f:
                radial = ismrmrd_has_trajectories(f)
            if radial:
                written = convert_ismrmrd(source, target, overwrite=overwrite)
                err.print(f"wrote {written} (input format: ISMRMRD radial)", highlight=False, soft_wrap=True)
                return
        with Progress(TextColumn(f"[bold]convert {escape(_shown(source.name))}"), BarColumn(), MofNCompleteColumn(), TextColumn("slices"), console=err) as bar:
            task = bar.add_task("convert", total=None)
            written = convert_file(source, target, mask_file=mask_file, split=split, overwrite=overwrite,
                                   on_slice=lambda d, n: bar.update(task, completed=d, total=n), virtual_coils=virtual_coils)
        err.print(f"wrote {_shown(written)} (input format: {kind})", highlight=False, soft_wrap=True, markup=False)


EXPORT_EPILOG = """
**Examples**

    a2a export recon/scan_recon.h5 scan.nii.gz

    a2a export recon/scan_recon.h5 scan_dicom --format dicom

    a2a export recon/scan_recon.h5 scan.cfl

    a2a export recon/scan_recon.h5 scan_complex.nii --complex --slice 0

    a2a export recon/scan_recon.h5 cine.gif --slice 3 --frames 0:20

The format follows OUT's suffix: .nii/.nii.gz (NIfTI), .cfl/.hdr (BART), .gif, .mp4, .png;
--format dicom writes a folder of DICOM files.
"""


class ExportFormat(str, Enum):
    nifti = "nifti"
    dicom = "dicom"
    bart = "bart"
    gif = "gif"
    mp4 = "mp4"
    png = "png"


@app.command(epilog=EXPORT_EPILOG)
@user_errors
def export(
    recon: Path = typer.Argument(..., help="Reconstruction written by `a2a reconstruct` (NAME_recon.h5).", show_default=False),
    target: Path = typer.Argument(..., help="Output file (or folder, for DICOM).", show_default=False),
    fmt: Optional[ExportFormat] = typer.Option(None, "--format", help="Output format; default: from OUT's suffix.", show_default=False),
    magnitude: Optional[bool] = typer.Option(None, "--magnitude/--complex", help="Magnitude or complex values (complex: NIfTI and BART only); default: complex for BART, magnitude otherwise.", show_default=False),
    slice_index: Optional[int] = typer.Option(None, "--slice", help="Export this slice only (cines: the slice shown, default 0).", show_default=False),
    frames: Optional[str] = typer.Option(None, "--frames", help="Frames A:B (A to B - 1) or one frame N; default: all.", show_default=False),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
) -> None:
    """Write a reconstruction in a format that viewers open: NIfTI, DICOM, BART, GIF/MP4 cine, PNG mosaic."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from .export import export as run_export
    from .paths import output_folders

    with output_folders([target]), Progress(TextColumn(f"[bold]export {escape(recon.name)}"), BarColumn(), MofNCompleteColumn(), console=err, transient=True) as bar:
        task = bar.add_task("export", total=None)
        summary = run_export(recon, target, fmt.value if fmt else None, magnitude, slice_index, frames, overwrite,
                             on_image=lambda d, n: bar.update(task, completed=d, total=n))
    for note in summary["notes"]:
        err.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    if json_out:
        out.print_json(json.dumps(summary))
    else:
        err.print(f"wrote {summary['output']} ({summary['format']}, {summary['axes']})", highlight=False, soft_wrap=True)


BIN_EPILOG = """
**Examples**

    a2a bin free_breathing.h5 binned.h5 --bins 10 --plot curve.png

    a2a bin scan.h5 binned.h5 --bins 8 --band 0.002 0.05 --json
"""


@app.command("bin", epilog=BIN_EPILOG)
@user_errors
def bin_(
    source: Path = typer.Argument(..., help="Radial a2a file (free-breathing, golden angle).", show_default=False),
    target: Path = typer.Argument(..., help="Output: radial file with one frame per respiratory bin.", show_default=False),
    bins: int = typer.Option(10, "--bins", help="Number of respiratory bins (frames of the output)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write the respiratory curve and the bins as a PNG."),
    band: Optional[Tuple[float, float]] = typer.Option(None, "--band", help="Pass band of the self-gating signal in cycles per spoke (default: one cycle per half sequence to one per frame)."),
    json_out: bool = typer.Option(False, "--json", help="Print a summary as JSON on stdout."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
) -> None:
    """Respiratory self-gating: sort the spokes of a radial file into bins of breathing amplitude."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from .atomic import check_output
    from .binning import bin_file
    from .paths import check_output_folder, output_folders, refuse_outputs_over_inputs, same_file

    low, high = band if band is not None else (None, None)
    # every output checked before any work: none may replace the input or the other, or be left half-made
    refuse_outputs_over_inputs([target, plot], [source], "would overwrite the input file; choose another name")
    if plot is not None:
        if same_file(plot, target):
            raise InputError(plot, "--plot names the output file; choose another name")
        if plot.suffix.lower() != ".png":
            raise InputError(plot, "--plot must end in .png (the curve is written as PNG)")
    for p, option in ((target, "the output"), (plot, "--plot")):
        if p is not None:
            check_output_folder(p, option)  # a folder that cannot be made, or that we may not write in
    with output_folders([target, plot]), Progress(TextColumn("[bold]bin"), BarColumn(), MofNCompleteColumn(), TextColumn("slices"), console=err) as bar:
        for p in (target, plot):
            if p is not None:
                check_output(p, overwrite)  # a directory, or an existing file
        task = bar.add_task("bin", total=None)
        summary = bin_file(source, target, bins=bins, plot=plot, low=low, high=high, overwrite=overwrite,
                           on_slice=lambda d, n: bar.update(task, completed=d, total=n))
    if json_out:
        out.print_json(json.dumps(summary))
    else:
        err.print(f"wrote {target}: {bins} bins of {summary['spokes_per_bin']} spokes per slice"
                  + (f", curve in {plot}" if plot else ""), highlight=False)


SIM_EPILOG = """
**Examples**

    a2a simulate dyn.h5 --mode dynamic --slices 4 --frames 16 --seed 1

    a2a simulate seq.h5 --mode sequential --acceleration 6 --seed 2

    a2a simulate periodic.h5 --motion periodic --period 8
"""


@app.command(epilog=SIM_EPILOG)
@user_errors
def simulate(
    path: Path = typer.Argument(..., help="Output HDF5 file.", show_default=False),
    mode: Mode = typer.Option(Mode.dynamic, help="dynamic (moving phantom) or sequential (static image)."),
    slices: int = typer.Option(2, help="Number of slices."),
    frames: int = typer.Option(16, help="Frames per slice (T)."),
    height: int = typer.Option(64, help="Readout size H."),
    width: int = typer.Option(64, help="Phase-encode size W."),
    acceleration: float = typer.Option(5.0, help="Acceleration per frame."),
    centre_lines: int = typer.Option(4, "--centre-lines", help="Centre lines shared by every frame."),
    snr: float = typer.Option(30.0, "--snr", help="Signal-to-noise ratio in dB."),
    motion: str = typer.Option("respiratory", help="respiratory, periodic or none."),
    period: Optional[int] = typer.Option(None, help="Frames per motion cycle (periodic motion)."),
    coils: int = typer.Option(1, help="Receive coils (1: single coil)."),
    seed: int = typer.Option(0, help="Random seed (different seeds give different sampling patterns)."),
    complex_style: str = typer.Option("complex", "--complex-style", help="How complex data is stored: complex, compound or float2."),
    trajectory: str = typer.Option("cartesian", "--trajectory", help="cartesian (line masks) or radial (golden-angle spokes, an a2a radial file)."),
    spokes: int = typer.Option(8, "--spokes", help="Spokes per frame (--trajectory radial; height = width, samples per spoke = height)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing file."),
) -> None:
    """Write a synthetic test case with its ground truth as `reference`.

    Example: `a2a simulate radial.h5 --trajectory radial --coils 4 --spokes 8 --height 128 --width 128`
    """
    from .config import check_options
    from .paths import check_output_folder, output_folders
    from .simulate import write_case

    check_options(slices=slices, sim_frames=frames, height=height, width=width, acceleration=acceleration,
                  centre_lines=centre_lines, snr=snr, motion=motion, period=period, coils=coils, seed=seed,
                  complex_style=complex_style)
    if centre_lines > width:
        raise A2AError(f"--centre-lines: must be at most the width ({width}), got {centre_lines}")
    if period is not None and motion != "periodic":
        raise A2AError(f"--period sets the cycle of periodic motion; with --motion {motion} it would do nothing: add --motion periodic")
    if acceleration > width:
        raise A2AError(f"--acceleration: must be at most the width ({width}), got {acceleration:g}")
    samples = slices * frames * height * width * coils
    limit = _simulate_limit()
    if samples > limit:
        raise A2AError(f"--slices x --frames x --height x --width x --coils = {samples} complex samples "
                       f"({samples * 8 / 2**30:.1f} GiB), more than the limit of {limit}; set A2A_MAX_SLICE_SAMPLES to raise it")
    check_output_folder(path, "the output")
    if trajectory == "radial":
        from .radial import simulate_radial

        if not 1 <= spokes <= 100_000:
            raise A2AError(f"--spokes: must be an integer from 1 to 100000, got {spokes}")

        if height != width:
            raise A2AError("--trajectory radial simulates square images: give --height equal to --width")
        with output_folders([path]):
            written = simulate_radial(path, mode=mode.value, slices=slices, frames=frames, size=height, spokes=spokes,
                                      coils=coils, snr_db=snr, motion=motion, period=period, seed=seed, overwrite=overwrite)
        err.print(f"wrote {written}", highlight=False)
        return
    if trajectory != "cartesian":
        raise A2AError(f"--trajectory must be cartesian or radial, got {trajectory!r}")

    kwargs = dict(mode=mode.value, slices=slices, frames=frames, height=height, width=width,
                  acceleration=acceleration, centre_lines=centre_lines, snr_db=snr, motion=motion, period=period,
                  seed=seed, complex_style=complex_style, overwrite=overwrite)
    if coils != 1:
        kwargs["coils"] = coils
    try:
        with output_folders([path]):
            written = write_case(path, **kwargs)
    except TypeError as exc:
        raise A2AError(f"unsupported simulation option: {exc}") from None
    except ValueError as exc:
        raise A2AError(str(exc)) from None
    err.print(f"wrote {_shown(written)}", highlight=False, markup=False)


def _simulate_limit() -> int:
    """At most as many samples as one slice may hold on reading (``A2A_MAX_SLICE_SAMPLES``): simulate holds them all in memory."""
    from .headers import MAX_SLICE_SAMPLES_ENV, _DEFAULT_MAX_SLICE_SAMPLES, _limit

    return _limit(MAX_SLICE_SAMPLES_ENV, _DEFAULT_MAX_SLICE_SAMPLES)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
