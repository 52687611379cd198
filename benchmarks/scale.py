"""Time and peak memory of ``a2a reconstruct`` against slices per file and frames per slice.

Run by hand (not a test)::

    python benchmarks/scale.py                      # the default sweep, a few minutes on 2 cores
    python benchmarks/scale.py --size 64 --frames 50 100 --slices 1 4 --markdown benchmarks/SCALE.md

One slice of a breathing phantom is simulated once (``--size`` square, the largest
``--frames``) and copied into the test files, so that making the data costs little. A
fresh network (``unrolled``, view sharing in blocks of ``--share-window`` frames) is
saved as a checkpoint. Every configuration then runs ``python -m a2a_cli reconstruct``
in a fresh process; its peak resident memory comes from ``os.wait4`` (that process
alone) and its wall time from the clock. ``whole`` runs the network on whole
sequences (``--frames-per-batch 0``), ``W`` on windows of W frames, ``auto`` leaves
the choice to a2a (windows only if a whole sequence would pass its memory budget).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from a2a_cli.checkpoints import save_checkpoint
from a2a_cli.models import build_model
from a2a_cli.simulate import write_case


def make_inputs(work: Path, size: int, frames: list[int], slices: list[int], slice_frames: int) -> dict[tuple[int, int], Path]:
    """Files for every (slices, frames) pair of the sweep, made from one simulated slice."""
    source = write_case(work / "source.h5", slices=1, frames=max(frames + [slice_frames]), height=size, width=size, seed=0)
    with h5py.File(source) as f:
        kspace, mask = f["kspace"][0], f["mask"][0]
    pairs = {(1, t) for t in frames} | {(s, slice_frames) for s in slices}
    paths = {}
    for s, t in sorted(pairs):
        path = work / f"s{s}_t{t}.h5"
        with h5py.File(path, "w") as f:  # uncompressed: writing the copies stays quick
            f.create_dataset("kspace", data=np.broadcast_to(kspace[:t], (s, t, size, size)), chunks=(1, 1, size, size))
            f.create_dataset("mask", data=np.broadcast_to(mask[:t], (s, t, size)))
            f.attrs["acquisition"] = "dynamic"
        paths[(s, t)] = path
    return paths


def measure(cmd: list[str]) -> tuple[float, int, str]:
    """``(wall seconds, peak RSS in MiB, stdout)`` of ``cmd`` run in a fresh process."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage (ru_maxrss in KiB on Linux)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{err.read()[-2000:]}")
        return wall, usage.ru_maxrss // 1024, out.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="image size (H = W)")
    parser.add_argument("--frames", type=int, nargs="+", default=[50, 100, 200], help="frames per slice (1 slice)")
    parser.add_argument("--slices", type=int, nargs="+", default=[1, 4, 16], help="slices per file (at --slice-frames)")
    parser.add_argument("--slice-frames", type=int, default=50, help="frames per slice in the slices sweep")
    parser.add_argument("--window", type=int, default=16, help="--frames-per-batch of the windowed runs")
    parser.add_argument("--share-window", type=int, default=4, help="view-sharing block of the network")
    parser.add_argument("--channels", type=int, default=16, help="feature channels of the unrolled network")
    parser.add_argument("--markdown", type=Path, help="also write the report to this file")
    args = parser.parse_args()

    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print("making inputs ...", file=sys.stderr)
        paths = make_inputs(work, args.size, args.frames, args.slices, args.slice_frames)
        ckpt = work / "net.pt"
        torch.manual_seed(0)
        net = build_model("unrolled", channels=args.channels, share_window=args.share_window)
        save_checkpoint(ckpt, net, "dynamic")

        _, base_rss, _ = measure([sys.executable, "-c", "import a2a_cli.cli, a2a_cli.reconstruction"])
        configs = [(1, t, w) for t in args.frames for w in ("whole", str(args.window))]
        configs += [(s, args.slice_frames, w) for s in args.slices if s != 1 for w in ("whole", str(args.window))]
        configs += [(1, max(args.frames), "auto")]
        for s, t, window in configs:
            out_dir = work / f"out_{s}_{t}_{window}"
            cmd = [sys.executable, "-m", "a2a_cli", "reconstruct", str(ckpt), str(paths[(s, t)]), "--out", str(out_dir),
                   "--device", "cpu", "--json"]
            if window != "auto":
                cmd += ["--frames-per-batch", "0" if window == "whole" else window]
            wall, rss, out = measure(cmd)
            summary = json.loads(out)["files"][0]
            rows.append({"slices": s, "frames": t, "window": window, "chosen": summary["frames_per_batch"],
                         "wall": wall, "network": summary["seconds"], "per_frame": summary["seconds_per_frame"], "rss": rss})
            print(f"  {s:>2} x {t:>3} frames, {window:>5}: {wall:6.1f} s, {rss} MiB", file=sys.stderr)

    lines = [
        "# Reconstruction: time and peak memory against slices and frames",
        "",
        f"Machine: {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), no GPU, "
        f"torch {torch.__version__} (CPU build), Python {platform.python_version()}, {platform.system()}. "
        f"Load average {load_before[0]:.1f} before the run, {os.getloadavg()[0]:.1f} after "
        "(other jobs shared the machine: times are only roughly comparable between rows).",
        "",
        f"Network: `unrolled`, {sum(p.numel() for p in net.parameters()):,} parameters (channels={args.channels}, depth 5, "
        f"2 iterations), view sharing in blocks of {args.share_window} frames, fresh weights. "
        f"Images {args.size}x{args.size}, single coil. Each row is `python -m a2a_cli reconstruct` in a fresh "
        f"process; peak RSS is that process's maximum resident memory (`os.wait4`); a process that only "
        f"imports a2a peaks at {base_rss} MiB. Window `whole` = `--frames-per-batch 0`, `auto` = no option.",
        "",
        "| slices | frames | window | frames per pass | wall time (s) | network time (s) | network s/frame | peak RSS (MiB) |",
        "|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        chosen = r["chosen"] if r["chosen"] else r["frames"]
        lines.append(f"| {r['slices']} | {r['frames']} | {r['window']} | {chosen} | {r['wall']:.1f} | {r['network']:.1f} | "
                     f"{r['per_frame']:.4f} | {r['rss']} |")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.markdown:
        args.markdown.write_text(report)


if __name__ == "__main__":
    main()
