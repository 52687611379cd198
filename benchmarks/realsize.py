"""What the default costs on a scan of realistic size: 8 coils, 180x230, 8 frames.

Run by hand (not a test)::

    python benchmarks/realsize.py                           # both modes, a study of 4 slices
    python benchmarks/realsize.py --modes sequential --study-slices 0 --json out.json
    python benchmarks/realsize.py --train-option=--steps --train-option=300   # a fixed budget instead of the default

For each mode it simulates, as a user would have them:

* the **scan**: one slice, 8 coils (maps estimated from the data, as for scanner
  files), 180 x 230 (readout x phase encode), 8 frames, SNR 30 dB; sequential: 14
  lines per frame (4 shared centre lines, 84 of 230 lines in all), dynamic: 29 lines per
  frame of a breathing phantom;
* a **tuning** slice (another anatomy and pattern) on which the compressed-sensing
  weight is chosen, never on the scan itself;
* a **study** of ``--study-slices`` further slices, reconstructed with the network
  trained on the scan alone (train once, reconstruct many).

Then it runs the default ``a2a train SCAN --out RUN`` and ``a2a reconstruct`` in fresh
processes and prints: training wall time and CPU time, steps, s/step, the network's
FLOPs per step (convolutions, counted with ``torch.utils.flop_counter`` on a step's
shapes) and GFLOP/s against the machine's measured matmul and convolution peak (measured
here, before training, because the machine may be shared), PSNR of a2a, zero-filled and
compressed sensing (BART ``pics`` through ``benchmarks/baselines.py`` when it is
present, with the maps a2a estimated), and reconstruction seconds per slice.
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

import torch

from a2a_cli.simulate import write_case

HERE = Path(__file__).resolve().parent
SIZE = {"height": 180, "width": 230, "frames": 8, "coils": 8}
#: lines per frame: sequential 230/16 = 14 (84 distinct lines over 8 frames), dynamic 230/8 = 29
ACCELERATION = {"sequential": 16.0, "dynamic": 8.0}
SEEDS = {"sequential": (11, 21, 31), "dynamic": (12, 22, 32)}  # scan, tuning slice, study


def measure_peak(threads: int, repeat: int = 5) -> dict[str, float]:
    """GFLOP/s of a 1024^2 fp32 matmul and of a 3x3 32->32 convolution on 16 images of 128x128."""
    torch.set_num_threads(threads)

    def best(fn) -> float:
        fn()
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)

    a = torch.randn(1024, 1024)
    conv = torch.nn.Conv2d(32, 32, 3, padding=1)
    x = torch.randn(16, 32, 128, 128)
    with torch.no_grad():
        t_mm = best(lambda: a @ a)
        t_conv = best(lambda: conv(x))
    return {"matmul_gflops": 2 * 1024**3 / t_mm / 1e9, "conv_gflops": 2 * 9 * 32 * 32 * 16 * 128 * 128 / t_conv / 1e9}


def network_flops_per_step(run: Path, mode: str, frames: int, height: int, width: int) -> dict:
    """FLOPs of the network's convolutions in one training step (forward and backward).

    The step's image count and size come from the run's settings: the input chunk's
    frames (dynamic) or one time-averaged image (sequential), the readout crop.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from a2a_cli.models import build_model
    from a2a_cli.training import auto_split_size
    from a2a_cli.training.data import auto_crop_rows

    cfg = json.loads((run / "config.json").read_text())
    net = build_model(cfg["model"], **cfg["model_options"])
    rows = auto_crop_rows(height, cfg.get("crop_rows")) or height
    split = max(cfg["split_size"]) if cfg["split_size"] else auto_split_size(frames)
    images = split if mode == "dynamic" else 1
    x = torch.randn(images, 2, rows, width, requires_grad=True)
    counter = FlopCounterMode(display=False)
    with counter:
        net.prior(x).sum().backward()
    per_pass = counter.get_total_flops()
    iterations = int(getattr(net, "iterations", 1))
    return {"images_per_step": images, "rows": rows, "flops_per_step": per_pass * iterations}


def run(cmd: list[str]) -> tuple[float, float, str]:
    """``(wall s, CPU s of the child, stdout)``; raises on failure."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        text = out.read()
        if status != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{err.read()[-3000:]}")
    return wall, usage.ru_utime + usage.ru_stime, text


def compressed_sensing(scan: Path, tuning: Path, mode: str) -> dict | None:
    """BART ``pics`` (sigpy without BART), weight tuned on the tuning slice; None without baselines.py."""
    sys.path.insert(0, str(HERE))
    try:
        import baselines  # benchmarks/baselines.py
    except ImportError:
        return None
    from a2a_cli.data import read_slice
    from a2a_cli.metrics import psnr

    # six weights in half decades (1e-3.5 ... 1e-1) per regulariser: the adaptive, refined
    # grid of the quality benchmark costs dozens of BART runs at this size
    best = baselines.tune([baselines.sample_arrays(read_slice(tuning, 0))], mode=mode,
                          weights=[10 ** (e / 2) for e in range(-7, -1)])
    k, m, s, ref = baselines.sample_arrays(read_slice(scan, 0))
    start = time.perf_counter()
    x = baselines.reconstruct(k, m, s, mode=mode, setting=best)
    seconds = time.perf_counter() - start
    return {"label": best.label(), "psnr": psnr(ref, x), "seconds_per_slice": seconds}


def one_mode(mode: str, work: Path, threads: int, study_slices: int, train_options: list[str], peak: dict) -> dict:
    scan_seed, tune_seed, study_seed = SEEDS[mode]
    common = {"mode": mode, "frames": SIZE["frames"], "height": SIZE["height"], "width": SIZE["width"],
              "coils": SIZE["coils"], "acceleration": ACCELERATION[mode], "overwrite": True}
    scan = write_case(work / f"{mode}_scan.h5", slices=1, seed=scan_seed, **common)
    tuning = write_case(work / f"{mode}_tune.h5", slices=1, seed=tune_seed, **common)
    study = write_case(work / f"{mode}_study.h5", slices=study_slices, seed=study_seed, **common) if study_slices else None

    env_cmd = [sys.executable, "-m", "a2a_cli"]
    run_dir = work / f"{mode}_run"
    wall, cpu, text = run(env_cmd + ["train", str(scan), "--out", str(run_dir), "--overwrite", "--json", *train_options])
    summary = json.loads(text)
    steps, seconds = summary["steps"], summary["seconds"]
    flops = network_flops_per_step(run_dir, mode, SIZE["frames"], SIZE["height"], SIZE["width"])
    s_step = seconds / max(steps, 1)
    result = {
        "mode": mode, "train_wall_s": wall, "train_cpu_s": cpu, "training_s": seconds, "steps": steps,
        "stopped_by": summary["stopped_by"], "s_per_step": s_step, **flops,
        "network_gflops": flops["flops_per_step"] / s_step / 1e9,
    }
    result["fraction_of_conv_peak"] = result["network_gflops"] / peak["conv_gflops"]

    _, _, text = run(env_cmd + ["reconstruct", str(run_dir / "best.pt"), str(scan), "--out", str(work / f"{mode}_rec"),
                                "--overwrite", "--json"])
    rec = json.loads(text)
    files = rec.get("files", [rec])[0] if isinstance(rec, dict) else rec[0]
    result.update(psnr_a2a=files["psnr_network"], psnr_zero_filled=files["psnr_zero_filled"],
                  reconstruct_s_per_slice=files["seconds"] / max(1, files["slices"]),
                  method=files.get("method"), network_weight=files.get("network_weight"))
    if study is not None:
        wall, _, text = run(env_cmd + ["reconstruct", str(run_dir / "best.pt"), str(study), "--out",
                                       str(work / f"{mode}_study_rec"), "--overwrite", "--json"])
        rec = json.loads(text)
        files = rec.get("files", [rec])[0] if isinstance(rec, dict) else rec[0]
        result["study"] = {"slices": study_slices, "psnr_a2a": files["psnr_network"],
                           "psnr_zero_filled": files["psnr_zero_filled"],
                           "network_s_per_slice": files["seconds"] / study_slices,
                           "wall_s_per_slice": wall / study_slices}
    cs = compressed_sensing(scan, tuning, mode)
    if cs is not None:
        result["compressed_sensing"] = cs
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--modes", nargs="+", default=["sequential", "dynamic"], choices=["sequential", "dynamic"])
    p.add_argument("--study-slices", type=int, default=4, help="slices of the study reconstructed with the scan's network (0: none)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (OMP_NUM_THREADS) of every a2a process")
    p.add_argument("--train-option", action="append", default=[], help="extra `a2a train` argument (repeatable)")
    p.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="image size instead of 180 230 (a quick check of the script)")
    p.add_argument("--work", type=Path, default=None, help="keep the files here (default: a temporary directory)")
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = p.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    if args.size:
        SIZE.update(height=args.size[0], width=args.size[1])
    load_before = os.getloadavg()
    peak = measure_peak(args.threads)
    results = {"machine": {"cpus": os.cpu_count(), "threads": args.threads, "torch": torch.__version__,
                           "python": platform.python_version(), "load_before": load_before, **peak}, "runs": []}
    print(f"peak ({args.threads} threads, measured now): matmul {peak['matmul_gflops']:.1f} GFLOP/s, "
          f"3x3 conv {peak['conv_gflops']:.1f} GFLOP/s; load average {load_before[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for mode in args.modes:
            r = one_mode(mode, work, args.threads, args.study_slices, args.train_option, peak)
            results["runs"].append(r)
            cs = r.get("compressed_sensing")
            print(f"\n{mode}: training {r['training_s']:.0f} s ({r['train_wall_s']:.0f} s wall with set-up, "
                  f"{r['train_cpu_s']:.0f} CPU s), {r['steps']} steps ({r['stopped_by']}), {r['s_per_step']:.3f} s/step")
            print(f"  network {r['flops_per_step'] / 1e9:.2f} GFLOP/step ({r['images_per_step']} image(s) of "
                  f"{r['rows']}x{SIZE['width']}): {r['network_gflops']:.1f} GFLOP/s = "
                  f"{100 * r['fraction_of_conv_peak']:.0f} % of the measured conv peak")
            print(f"  PSNR: a2a {r['psnr_a2a']:.2f} dB, zero-filled {r['psnr_zero_filled']:.2f} dB"
                  + (f", {cs['label']} {cs['psnr']:.2f} dB ({cs['seconds_per_slice']:.1f} s/slice)" if cs else
                     ", compressed sensing: benchmarks/baselines.py not found"))
            kept = r.get("method") if r.get("method") != "blend" else f"blend, network share {r['network_weight']:.2f}"
            print(f"  reconstruction: {r['reconstruct_s_per_slice']:.2f} s/slice ({kept})")
            if "study" in r:
                st = r["study"]
                print(f"  study of {st['slices']} slices, same network: a2a {st['psnr_a2a']:.2f} dB, zero-filled "
                      f"{st['psnr_zero_filled']:.2f} dB, {st['network_s_per_slice']:.2f} s/slice network, "
                      f"{st['wall_s_per_slice']:.2f} s/slice wall")
    results["machine"]["load_after"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
