"""Inference: the trained network on the full sequence of each slice, metrics, output files.

At reconstruction time nothing is split: the network sees every frame of a slice
(``(1, 2, T, H, W)`` k-space). Long sequences can be processed in windows of frames
(``frames_per_batch``) that are stitched so that the result equals the whole-sequence
result: windows start on multiples of the network's view-sharing block and carry the
frames its temporal receptive field needs on each side.
"""
from __future__ import annotations

import datetime as _dt
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from . import __version__
from .checkpoints import Checkpoint, load_checkpoint
from .errors import A2AError, InputError
from .io import ReconstructionWriter, Sample, SplitOptions, inspect_file, read_slice
from .metrics import psnr, ssim
from .physics import DynamicMRI, SequentialMRI, to_complex


def _window_geometry(net: torch.nn.Module) -> tuple[int, int]:
    """``(block, context)``: windows must start on multiples of ``block`` and carry ``context`` extra frames per side."""
    config = getattr(net, "config", {}) or {}
    block = 1
    if config.get("init", "adjoint") == "view_sharing":
        block = int(config.get("share_window") or 0)  # 0: the whole sequence is one block
    context = int(getattr(net, "temporal_context", 0))
    return block, context


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
    ``frames_per_batch`` (dynamic mode) the frames go through the network in windows.
    """
    net.eval()
    if mode == "sequential":
        y_avg, static = SequentialMRI(mask=mask, coil_maps=coil_maps).time_average(kspace)
        return net(y_avg, static)
    frames = kspace.shape[2]
    if not frames_per_batch or frames_per_batch >= frames:
        return net(kspace, DynamicMRI(mask=mask, coil_maps=coil_maps))
    block, context = _window_geometry(net)
    if block == 0:
        raise A2AError(
            "this network shares k-space over the whole sequence, so it cannot be run in windows: "
            "leave --frames-per-batch out"
        )
    step = max(block, (frames_per_batch // block) * block)
    pad = math.ceil(context / block) * block if context else 0  # keep the view-sharing blocks aligned
    pieces = []
    for start in range(0, frames, step):
        stop = min(start + step, frames)
        lo, hi = max(0, start - pad), min(frames, stop + pad)
        sub = net(kspace[:, :, lo:hi], DynamicMRI(mask=mask[:, :, lo:hi], coil_maps=coil_maps))
        pieces.append(sub[:, :, start - lo:stop - lo])
    return torch.cat(pieces, dim=2)


def zero_filled(mode: str, kspace: torch.Tensor, mask: torch.Tensor, coil_maps: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The no-learning baseline: per-frame adjoint (dynamic) or the pseudo-inverse of all frames (sequential)."""
    if mode == "sequential":
        return SequentialMRI(mask=mask, coil_maps=coil_maps).A_dagger(kspace)
    phys = DynamicMRI(mask=mask, coil_maps=coil_maps)
    return phys.A_adjoint(kspace) if coil_maps is None else phys.A_dagger(kspace)


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

    def summary(self) -> dict:
        def mean(v):
            return float(np.mean(v)) if v else None

        return {
            "file": self.source,
            "output": self.output,
            "slices": self.slices,
            "seconds": round(self.seconds, 3),
            "seconds_per_frame": round(self.seconds / max(1, self.frames), 5),
            "psnr_zero_filled": mean(self.psnr_zero_filled),
            "psnr_network": mean(self.psnr_network),
            "ssim_zero_filled": mean(self.ssim_zero_filled),
            "ssim_network": mean(self.ssim_network),
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
) -> FileResult:
    """Reconstruct every slice of ``source`` into ``OUT_DIR/<stem>_recon.h5`` (atomically).

    ``keep`` (a dict) receives ``{"slice": i}``-selected arrays for a preview: the
    reference, zero-filled and network images of slice ``keep["slice"]``.
    """
    source = Path(source)
    target = output_path(source, out_dir)
    if target.resolve() == source.resolve():
        raise InputError(source, "the output would overwrite the input file; choose another --out directory")
    info = inspect_file(source, split=split)
    mode = checkpoint.mode
    if info.mode != mode and info.layout == "a2a":
        raise InputError(source, f"the file's acquisition is {info.mode!r} but the checkpoint was trained for {mode!r}")
    frame_shape = (info.frames, info.height, info.width) if mode == "dynamic" else (info.height, info.width)
    attrs = {
        "source_file": str(source.resolve()),
        "checkpoint_file": str(Path(checkpoint.path).resolve()),
        "checkpoint_sha256": checkpoint.sha256,
        "a2a_version": __version__,
        "mode": mode,
        "network": checkpoint.model_name,
        "network_config": __import__("json").dumps(checkpoint.model_config, sort_keys=True),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    result = FileResult(source=str(source), output=str(target), slices=info.n_slices, seconds=0.0, frames=0)
    with ReconstructionWriter(target, info.n_slices, frame_shape, attrs, overwrite=overwrite, extra=("zero_filled",)) as writer:
        for s in range(info.n_slices):
            sample: Sample = read_slice(source, s, split=split, info=info)
            y = sample.kspace.to(device)
            mask = sample.mask.to(device)
            maps = getattr(sample, "coil_maps", None)
            maps = maps.to(device) if maps is not None else None
            t0 = time.perf_counter()
            rec = run_network(net, mode, y, mask, maps, frames_per_batch)
            if device.type == "cuda":
                torch.cuda.synchronize()
            result.seconds += time.perf_counter() - t0
            result.frames += info.frames
            zf = zero_filled(mode, y, mask, maps)
            rec_c, zf_c = _complex(rec), _complex(zf)
            writer.write(s, rec_c)
            writer.write(s, zf_c, name="zero_filled")
            if sample.reference is not None:
                ref_c = _complex(sample.reference)
                if ref_c.shape != rec_c.shape:
                    raise InputError(source, f"reference shape {ref_c.shape} does not match the reconstruction {rec_c.shape}")
                result.psnr_zero_filled.append(psnr(ref_c, zf_c))
                result.psnr_network.append(psnr(ref_c, rec_c))
                result.ssim_zero_filled.append(ssim(ref_c, zf_c))
                result.ssim_network.append(ssim(ref_c, rec_c))
            if keep is not None and keep.get("slice", 0) == s:
                keep.update({"reference": None if sample.reference is None else _complex(sample.reference),
                             "zero_filled": zf_c, "network": rec_c})
            if on_slice is not None:
                on_slice(s + 1, info.n_slices)
    return result


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
