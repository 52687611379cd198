"""Inference: the trained network on the full sequence of each slice, metrics, output files.

At reconstruction time nothing is split: the network sees every frame of a slice
(``(1, 2, T, H, W)`` k-space). Long sequences can be processed in windows of frames
(``frames_per_batch``) that are stitched so that the result equals the whole-sequence
result: windows start on multiples of the network's view-sharing block and carry the
frames its temporal receptive field needs on each side.

A checkpoint whose training also chose the weights of TV compressed sensing (``a2a
train``'s default) offers a second method. ``method="auto"`` (the default) keeps, for
each file, the convex combination ``a * network + (1 - a) * TV`` that best predicts
k-space samples held out of the file itself (:func:`choose_blend`): no ground truth, and
on data the network was not trained on. ``a`` is 0 (TV alone) where the network predicts
nothing TV does not, 1 where TV adds nothing; in between, averaging two estimators whose
errors differ beats both (benchmarks/RESULTS.md).
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from . import __version__
from .checkpoints import Checkpoint, load_checkpoint, stored_tv_weights
from .errors import A2AError, InputError, raise_if_stopped
from .geometry import read_geometry
from .data import FileInfo, ReconstructionWriter, Sample, SplitOptions, describe_layout, inspect_file, read_slice
from .data.layout import mode_conflict
from .metrics import psnr, ssim
from .holdout import Blend, fit_blend, spread_problems
from .models.base import ReconstructionNet, window_geometry
from .models.cost import bytes_per_frame
from .paths import attr_path, same_file
from .physics import DynamicMRI, SequentialMRI, normalise_measurement, rescale, to_complex
from .ssdu import SSDUError
from .training.data import central_readout_band


#: Memory one forward pass may use on the CPU when ``frames_per_batch`` is not given.
CPU_WINDOW_BYTES = 1 << 30
#: What ``method`` may say: the network, compressed sensing, or the blend of both that predicts held-out samples best.
METHODS = ("auto", "network", "tv")


def _window_plan(frames: int, frames_per_batch: int, block: int, context: int) -> tuple[int, int]:
    """``(step, pad)``: windows keep ``step`` frames (a multiple of ``block``) and carry ``pad`` frames per side."""
    step = max(block, (frames_per_batch // block) * block)
    pad = math.ceil(context / block) * block if context else 0  # keep the view-sharing blocks aligned
    return step, pad


def memory_budget(device: torch.device) -> int:
    """Bytes a forward pass may use: half the free GPU memory, or :data:`CPU_WINDOW_BYTES`."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free // 2)
    return CPU_WINDOW_BYTES


def auto_frames_per_batch(net: torch.nn.Module, shape: tuple[int, ...], budget: int) -> Optional[int]:
    """The window for a sequence of ``shape`` ``(B, 2, T, ..., H, W)`` that keeps a forward pass under ``budget`` bytes.

    None (the whole sequence at once) when it fits, or when the network is not
    known to give the same result in windows: only :class:`ReconstructionNet`
    networks, whose frames depend on each other only through view-sharing blocks
    and ``temporal_context`` neighbours (and the intensity scale, which
    :func:`run_network` then passes as the whole sequence's), qualify.
    """
    block, context = window_geometry(net)
    if not isinstance(net, ReconstructionNet) or block == 0:
        return None
    frames, height, width = shape[2], shape[-2], shape[-1]
    coils = shape[3] if len(shape) == 6 else 1  # (B, 2, T, N, H, W)
    per_frame = bytes_per_frame(net, height, width, coils) * shape[0]
    if frames * per_frame <= budget:
        return None
    _, pad = _window_plan(frames, block, block, context)
    step = max(block, (budget // per_frame - 2 * pad) // block * block)
    return step if step < frames else None


def _sequence_scale(net: ReconstructionNet, kspace: torch.Tensor, mask: torch.Tensor, coil_maps: Optional[torch.Tensor], step: int) -> torch.Tensor:
    """The whole-sequence intensity scale of a network that is not frame-wise, window by window.

    That scale is a mean over all frames: the frame-weighted mean of the windows'
    means (windows start on view-sharing blocks, so each frame's initial image is the
    whole-sequence one).
    """
    frames = kspace.shape[2]
    total = None
    for start in range(0, frames, step):
        stop = min(start + step, frames)
        physics = _operator("dynamic", mask[:, :, start:stop], coil_maps)
        s = net.intensity_scale(net.initial_image(kspace[:, :, start:stop], physics)) * (stop - start)
        total = s if total is None else total + s
    return total / frames


def _operator(mode: str, mask: torch.Tensor, coil_maps: Optional[torch.Tensor]):
    """The measurement operator of a slice: Cartesian as ``mode`` says, or radial for a radial sampling tensor."""
    from .training import make_physics

    return make_physics(mode, mask, coil_maps)


@torch.no_grad()
def run_network(
    net: torch.nn.Module,
    mode: str,
    kspace: torch.Tensor,
    mask: torch.Tensor,
    coil_maps: Optional[torch.Tensor] = None,
    frames_per_batch: Optional[int] = None,
) -> torch.Tensor:
    """The network's reconstruction of one batch of full sequences.

    ``kspace`` ``(B, 2, T, H, W)`` (or ``(B, 2, T, N, H, W)``), ``mask`` ``(B, 1, T, H, W)``.
    Returns ``(B, 2, T, H, W)`` (dynamic) or ``(B, 2, H, W)`` (sequential). With
    ``frames_per_batch`` (dynamic mode) the frames go through the network in windows
    of that many frames (rounded down to whole view-sharing blocks), each with its
    ``temporal_context`` neighbours, and the kept frames are stitched. For the
    networks of :mod:`a2a_cli.models` the result equals the whole-sequence one up to
    float rounding: a network that is not frame-wise (``cnn2dt``) gets the whole
    sequence's intensity scale, computed in a first pass over the windows.
    ``frames_per_batch`` None or 0, or not less than T: the whole sequence at once.

    The network runs on k-space divided by its :func:`~a2a_cli.physics.measurement_scale`
    (as in training) and the result is scaled back: the output is in the input's units.
    """
    net.eval()
    kspace, scale = normalise_measurement(kspace, mask)
    return rescale(_run_network(net, mode, kspace, mask, coil_maps, frames_per_batch), scale)


def _run_network(net: torch.nn.Module, mode: str, kspace: torch.Tensor, mask: torch.Tensor,
                 coil_maps: Optional[torch.Tensor], frames_per_batch: Optional[int]) -> torch.Tensor:
    if mode == "sequential":
        y_avg, static = _operator(mode, mask, coil_maps).time_average(kspace)
        return net(y_avg, static)
    frames = kspace.shape[2]
    if not frames_per_batch or frames_per_batch >= frames:
        return net(kspace, _operator(mode, mask, coil_maps))
    block, context = window_geometry(net)
    if block == 0:
        raise A2AError(
            "this network shares k-space over the whole sequence, so it cannot be run in windows: "
            "leave --frames-per-batch out"
        )
    step, pad = _window_plan(frames, frames_per_batch, block, context)
    options = {}
    if isinstance(net, ReconstructionNet) and not net.frame_wise:
        options["scale"] = _sequence_scale(net, kspace, mask, coil_maps, step)
    out = None
    for start in range(0, frames, step):
        stop = min(start + step, frames)
        lo, hi = max(0, start - pad), min(frames, stop + pad)
        sub = net(kspace[:, :, lo:hi], _operator(mode, mask[:, :, lo:hi], coil_maps), **options)
        if out is None:  # filled in place: no list of pieces and no concatenated copy
            out = sub.new_empty(sub.shape[:2] + (frames,) + sub.shape[3:])
        out[:, :, start:stop] = sub[:, :, start - lo:stop - lo]
    return out


def zero_filled(mode: str, kspace: torch.Tensor, mask: torch.Tensor, coil_maps: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The no-learning baseline: the zero-filled, coil-combined adjoint ``S^H F^H y``.

    Dynamic: per frame. Sequential: of the time-averaged k-space (each location
    averaged over the frames that sampled it), which for one coil is the pseudo-inverse
    of all frames. With coil maps no iterative (SENSE) unfolding is done: that would
    be a reconstruction, not a baseline.
    """
    from .nufft import is_radial_mask

    if is_radial_mask(mask):
        # radial: the density-compensated gridding (the zero-filled image of non-Cartesian data)
        if mode == "sequential":
            y_all, static = _operator(mode, mask, coil_maps).time_average(kspace)
            return static.gridding(y_all)
        return _operator(mode, mask, coil_maps).gridding(kspace)
    if mode == "sequential":
        y_avg, static = SequentialMRI(mask=mask, coil_maps=coil_maps).time_average(kspace)
        return static.A_adjoint(y_avg)
    return DynamicMRI(mask=mask, coil_maps=coil_maps).A_adjoint(kspace)


@dataclass
class FileResult:
    """What reconstructing one input file produced."""

    source: str
    output: str
    slices: int
    seconds: float
    frames: int
    psnr_zero_filled: list[float] = field(default_factory=list)
    psnr_network: list[float] = field(default_factory=list)
    ssim_zero_filled: list[float] = field(default_factory=list)
    ssim_network: list[float] = field(default_factory=list)
    frames_per_batch: Optional[int] = None  # the window used (None: whole sequences)
    method: str = "network"  # "network", "tv" or "blend": what reconstructed the file
    holdout: Optional[dict] = None  # the held-out k-space errors of network, tv and blend, when method="auto" fitted it
    network_weight: Optional[float] = None  # the blend's share of the network (1: network, 0: TV)

    def summary(self) -> dict:
        def mean(v):
            return float(np.mean(v)) if v else None

        return {
            "file": self.source,
            "output": self.output,
            "slices": self.slices,
            "seconds": round(self.seconds, 3),
            "seconds_per_frame": round(self.seconds / max(1, self.frames), 5),
            "frames_per_batch": self.frames_per_batch,
            "psnr_zero_filled": mean(self.psnr_zero_filled),
            "psnr_network": mean(self.psnr_network),
            "ssim_zero_filled": mean(self.ssim_zero_filled),
            "ssim_network": mean(self.ssim_network),
            "method": self.method,
            "network_weight": self.network_weight,
            "holdout_error": self.holdout,
        }


def output_path(source: str | Path, out_dir: str | Path) -> Path:
    """Where the reconstruction of ``source`` goes: ``OUT_DIR/<stem>_recon.h5``."""
    return Path(out_dir) / f"{Path(source).stem}_recon.h5"


def _complex(x: torch.Tensor) -> np.ndarray:
    return to_complex(x.detach().float().cpu())[0].numpy().astype(np.complex64)


def reconstruct_file(
    checkpoint: Checkpoint,
    net: torch.nn.Module,
    source: str | Path,
    out_dir: str | Path,
    device: torch.device,
    overwrite: bool = False,
    frames_per_batch: Optional[int] = None,
    split: Optional[SplitOptions] = None,
    on_slice: Optional[Callable[[int, int], None]] = None,
    keep: Optional[dict] = None,
    mask_file: Optional[str | Path] = None,
    log: Optional[Callable[[str], None]] = None,
    adapt_steps: Optional[int] = 0,
    on_adapt_step: Optional[Callable[[int, int], None]] = None,
    method: str = "auto",
    on_fit_round: Optional[Callable[[int, int], None]] = None,
) -> FileResult:
    """Reconstruct every slice of ``source`` into ``OUT_DIR/<stem>_recon.h5`` (atomically).

    Slices are read, reconstructed and written one at a time, so memory does not grow
    with the number of slices. ``frames_per_batch`` None: windows chosen by
    :func:`auto_frames_per_batch` when a whole sequence would not fit the device's
    :func:`memory_budget` (same result); 0: always whole sequences.
    ``log`` receives one line saying how the file was read.
    ``keep`` (a dict) receives ``{"slice": i}``-selected arrays for a preview: the
    reference, zero-filled and network images of slice ``keep["slice"]``.
    ``adapt_steps`` > 0: each slice is reconstructed by a copy of ``net`` fine-tuned on
    it (:func:`a2a_cli.adapt.adapt_network`); the time counts as reconstruction time.
    None: the default for this checkpoint's mode and this file's layout
    (:func:`a2a_cli.adapt.default_adapt_steps`).
    ``on_adapt_step(step, steps)`` is called after every fine-tuning step.
    ``method``: one of :data:`METHODS` (:func:`choose_blend`; compressed sensing is not fine-tuned).
    ``on_fit_round(k, rounds)`` is called after each hold-out round of ``method="auto"``'s fit.
    """
    source = Path(source)
    target = output_path(source, out_dir)
    if same_file(target, source):
        raise InputError(source, "the output would overwrite the input file; choose another --out directory")
    info = inspect_file(source, split=split, mask_file=mask_file)
    geometry = read_geometry(source)  # a bad geometry attribute is refused before any work
    if log is not None:
        log(describe_layout(info))
    mode = checkpoint.mode
    conflict = mode_conflict(info, mode)
    if conflict:
        raise InputError(source, f"{conflict}: the checkpoint was trained for {mode!r}")
    frame_shape = (info.frames, info.height, info.width) if mode == "dynamic" else (info.height, info.width)
    if adapt_steps is None:
        from .adapt import default_adapt_steps

        adapt_steps = default_adapt_steps(mode, radial=info.layout == "radial")
    result = FileResult(source=str(source), output=str(target), slices=info.n_slices, seconds=0.0, frames=0)
    began = time.perf_counter()
    weight, result.holdout, tv_net = _resolve_method(checkpoint, net, method, source, info, device, split, mask_file, log,
                                                     on_fit_round)
    result.seconds += time.perf_counter() - began  # the choice is part of the reconstruction's cost
    result.network_weight = weight
    result.method = "network" if weight == 1.0 else "tv" if weight == 0.0 else "blend"
    runs = []  # (share, how a slice is reconstructed)
    if weight > 0:
        runs.append((weight, _SliceRun(net, mode, device, frames_per_batch, adapt_steps, on_adapt_step)))
    if weight < 1:
        # a --model tv checkpoint's own net is the TV reconstruction
        runs.append((1.0 - weight, _SliceRun(tv_net if tv_net is not None else net, mode, device, frames_per_batch, 0, None,
                                             zero_filled=weight == 0)))
    methods: set[str] = set()
    attrs = _output_attrs(checkpoint, source, info, runs[0][1].adapt_steps if weight > 0 else 0, geometry) | {
        "method": result.method, "network_weight": float(weight)}
    with ReconstructionWriter(target, info.n_slices, frame_shape, attrs, overwrite=overwrite, extra=("zero_filled",)) as writer:
        for s in range(info.n_slices):
            raise_if_stopped()
            sample: Sample = read_slice(source, s, split=split, info=info, mask_file=mask_file)
            if getattr(sample, "coil_maps", None) is not None:
                methods.add(getattr(sample, "sensitivity", None) or "estimated")
            rec_c = zf_c = None
            for share, run in runs:
                part, zf = run(sample, s, result)
                rec_c = share * part if rec_c is None else rec_c + share * part
                zf_c = zf if zf is not None else zf_c
            rec_c = rec_c.astype(np.complex64)
            result.frames += info.frames
            _check_finite_output(source, s, rec_c, zf_c, sample.kspace)
            writer.write(s, rec_c)
            writer.write(s, zf_c, name="zero_filled")
            ref_c = None if sample.reference is None else _complex(sample.reference)
            if ref_c is not None:
                _score(source, result, ref_c, rec_c, zf_c)
            if keep is not None and keep.get("slice", 0) == s:
                keep.update({"reference": ref_c, "zero_filled": zf_c, "network": rec_c})
            if on_slice is not None:
                on_slice(s + 1, info.n_slices)
        if methods:  # what the slices used (estimation may fall back per slice), e.g. "espirit,lowres"
            writer.set_attr("sensitivity", ",".join(sorted(methods)))
    return result


def _resolve_method(checkpoint: Checkpoint, net: torch.nn.Module, method: str, source: Path, info: FileInfo,
                    device: torch.device, split: Optional[SplitOptions], mask_file: Optional[str | Path],
                    log: Optional[Callable[[str], None]],
                    on_round: Optional[Callable[[int, int], None]] = None
                    ) -> tuple[float, Optional[dict], Optional[ReconstructionNet]]:
    """``(the network's share, held-out errors or None, the TV model or None)`` for one file."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    tv_net = tv_alternative(checkpoint, net, device)
    if checkpoint.model_name == "tv":
        if method == "network":
            raise InputError(checkpoint.path, "--method network: this checkpoint holds no network (--model tv)")
        return 0.0, None, None  # the checkpoint's own model is the TV reconstruction
    if method == "tv" and tv_net is None:
        raise InputError(checkpoint.path, "--method tv: this checkpoint holds no TV weights (trained with --no-tv or by an "
                         "older a2a); use --method network, or train with --model tv")
    if method != "auto" or tv_net is None:
        return (0.0 if method == "tv" else 1.0), None, tv_net
    blend = choose_blend(net, tv_net, checkpoint.mode, source, info, device, split, mask_file, on_round)
    if blend is None:
        if log is not None:
            log("method: network (too few samples in this file to hold some out and compare it with TV)")
        return 1.0, None, tv_net
    if log is not None:
        scores = ", ".join(f"{k} {v:.4g}" for k, v in blend.errors.items())
        kept = {0.0: "compressed sensing (tv)", 1.0: "network"}.get(blend.weight, f"blend: {blend.weight:.2f} x network + "
                                                                    f"{1 - blend.weight:.2f} x compressed sensing (tv)")
        log(f"method: {kept}, the best predictor of held-out k-space samples of this file over {blend.rounds} "
            f"rounds (relative error: {scores})")
    return blend.weight, blend.errors, tv_net


def tv_alternative(checkpoint: Checkpoint, net: torch.nn.Module, device: torch.device) -> Optional[ReconstructionNet]:
    """The TV compressed sensing that training chose beside the network (None if it did not), ready to run."""
    weights = stored_tv_weights(checkpoint)
    if weights is None:
        return None
    from .models.tvmodel import TVModel

    model = TVModel(share_window=net.share_window if isinstance(net, ReconstructionNet) else None)
    model.set_tv_weights(weights)
    return model.to(device).eval()


def choose_blend(net: torch.nn.Module, tv_net: torch.nn.Module, mode: str, source: Path, info: FileInfo,
                 device: torch.device, split: Optional[SplitOptions] = None,
                 mask_file: Optional[str | Path] = None,
                 on_round: Optional[Callable[[int, int], None]] = None) -> Optional[Blend]:
    """The share of the network in ``a * network + (1 - a) * TV`` that best predicts samples held
    out of the file (:func:`a2a_cli.holdout.fit_blend`); None where too few samples can be held out.

    Scored on slices spread over the file (:func:`~a2a_cli.holdout.spread_problems`; tall images on
    their central band of readout rows, as training sees them). The file is
    one the network was (normally) not trained on, so neither method has seen the held-out samples.
    The network is scored as trained, before any ``--adapt`` fine-tuning: fine-tuned on each
    fold's input first, it predicted the held-out samples of a static head phantom better
    than TV while its image was 2.8 dB worse (benchmarks/RESULTS.md).
    """
    def load(i: int):
        sample = read_slice(source, i, split=split, info=info, mask_file=mask_file)
        item = {"kspace": sample.kspace.to(device), "mask": sample.mask.to(device),
                "coil_maps": getattr(sample, "coil_maps", None)}
        if item["coil_maps"] is not None:
            item["coil_maps"] = item["coil_maps"].to(device)
        band = central_readout_band(item)  # tall images: as training and the TV weights' choice see them
        # image rows scored: the band's, else the image's (a radial mask's rows are spokes, not pixels)
        rows = band["mask"].shape[-2] if band is not item else info.height
        mask, maps = band["mask"], band["coil_maps"]
        y = normalise_measurement(band["kspace"], mask)[0]
        coils = maps.shape[1] if maps is not None else 1
        pixels = (1 if mode == "sequential" else info.frames) * coils * rows * info.width
        sizes.append(pixels)
        return _operator(mode, mask, maps), y, pixels

    sizes: list[int] = []
    net.eval()
    try:
        problems = spread_problems(info.n_slices, load)
        return fit_blend(net, tv_net, problems, pixels=sum(sizes), on_round=on_round)
    except SSDUError:  # too few samples to hold any out: nothing to compare on
        return None


def _output_attrs(checkpoint: Checkpoint, source: Path, info: FileInfo, adapt_steps: int, geometry: dict) -> dict:
    """The attributes of a reconstruction file: where it came from, and what the input records."""
    return {
        # names that are not UTF-8 are stored as their bytes: nothing is lost
        "source_file": attr_path(source),
        "checkpoint_file": attr_path(checkpoint.path),
        "checkpoint_sha256": checkpoint.sha256,
        "a2a_version": __version__,
        "mode": checkpoint.mode,
        "network": checkpoint.model_name,
        "network_config": json.dumps(checkpoint.model_config, sort_keys=True),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        # the output is coil-combined; these say what it was combined from
        "coils": int(getattr(info, "coils", None) or 1),
        "sensitivity": getattr(info, "sensitivity", None) or "none",
        # pixel spacing and frame time, when the input records them, so that exports carry them
        **geometry,
        "adapt_steps": int(adapt_steps),
    }


@dataclass
class _SliceRun:
    """How every slice of a file is reconstructed: the network (fine-tuned per slice or not) and the windows."""

    net: torch.nn.Module
    mode: str
    device: torch.device
    frames_per_batch: Optional[int]
    adapt_steps: int
    on_adapt_step: Optional[Callable[[int, int], None]]
    zero_filled: bool = True  # False: another run of the same slices gives the zero-filled image

    def __call__(self, sample: Sample, index: int, result: FileResult) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """The network's and the zero-filled (None unless ``zero_filled``) images of one slice; the time, frames
        and window go into ``result``."""
        y, mask = sample.kspace.to(self.device), sample.mask.to(self.device)
        maps = getattr(sample, "coil_maps", None)
        maps = maps.to(self.device) if maps is not None else None
        window = self.frames_per_batch
        if window is None and self.mode == "dynamic":
            window = auto_frames_per_batch(self.net, tuple(y.shape), memory_budget(self.device))
        result.frames_per_batch = window or None
        t0 = time.perf_counter()
        use = self.net
        if self.adapt_steps:
            from .adapt import adapt_network

            steps, on_step = self.adapt_steps, self.on_adapt_step
            report = None if on_step is None else (lambda k, _loss: on_step(k, steps))
            # on unit-scale k-space, as in training (the network's output does not depend on the scale)
            use, _ = adapt_network(self.net, self.mode, normalise_measurement(y, mask)[0], mask, maps, steps=steps,
                                   seed=index, on_step=report)
        rec = run_network(use, self.mode, y, mask, maps, window)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        result.seconds += time.perf_counter() - t0
        return _complex(rec), _complex(zero_filled(self.mode, y, mask, maps)) if self.zero_filled else None


def _score(source: Path, result: FileResult, ref: np.ndarray, rec: np.ndarray, zf: np.ndarray) -> None:
    """Add the PSNR and SSIM of the network's and the zero-filled images against the reference to ``result``."""
    if ref.shape != rec.shape:
        raise InputError(source, f"reference shape {ref.shape} does not match the reconstruction {rec.shape}")
    result.psnr_zero_filled.append(psnr(ref, zf))
    result.psnr_network.append(psnr(ref, rec))
    result.ssim_zero_filled.append(ssim(ref, zf))
    result.ssim_network.append(ssim(ref, rec))


def _check_finite_output(source: Path, index: int, rec: np.ndarray, zf: np.ndarray, kspace: torch.Tensor) -> None:
    """Refuse to write a slice whose reconstruction is not finite (input values near the float32 limit overflow)."""
    if np.isfinite(rec).all() and np.isfinite(zf).all():
        return
    peak = float(kspace.abs().max())
    raise InputError(
        source,
        f"slice {index}: the reconstruction holds NaN or Inf: k-space values up to {peak:.3g} overflow float32 "
        f"arithmetic (limit {np.finfo(np.float32).max:.3g}); rescale the data (e.g. divide it by its maximum) and try again",
    )


def overall(results: list[FileResult]) -> dict:
    """Mean metrics over every slice of every file (slices weigh equally)."""
    def pool(attr):
        values = [v for r in results for v in getattr(r, attr)]
        return float(np.mean(values)) if values else None

    return {
        "files": len(results),
        "slices": sum(r.slices for r in results),
        "psnr_zero_filled": pool("psnr_zero_filled"),
        "psnr_network": pool("psnr_network"),
        "ssim_zero_filled": pool("ssim_zero_filled"),
        "ssim_network": pool("ssim_network"),
        "seconds": round(sum(r.seconds for r in results), 3),
    }


def load_for_inference(path: str | Path, device: torch.device) -> tuple[Checkpoint, torch.nn.Module]:
    """Load a checkpoint and its network, ready for :func:`reconstruct_file`."""
    ckpt = load_checkpoint(path)
    net = ckpt.build_model().to(device)
    net.eval()
    return ckpt, net
