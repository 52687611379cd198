"""Radial benchmark: golden-angle multi-coil cases, a2a's default against the usual baselines.

Cases (simulated with ``a2a simulate --trajectory radial``: the breathing abdomen phantom, 4
coils, SNR 30 dB, 128 x 128, 16 frames of 8 golden-angle spokes of 128 samples):

* dynamic: the breathing phantom, reconstructed frame by frame;
* sequential: a static phantom measured by the same time series of spokes.

Rows, all scored on a held-out file (magnitude PSNR/SSIM against the simulated image):

* gridding: density-compensated adjoint of each frame (dynamic) or of all spokes (sequential);
* sliding window (dynamic): gridding of all 16 frames' spokes, the radial view sharing;
* iterative SENSE: density-weighted CG (10 iterations) of each frame / of all spokes;
* compressed sensing: BART ``pics`` with total variation over time (dynamic, ``-R T:1024:0:lambda``)
  or space (sequential, ``-R T:3:0:lambda``), lambda tuned for PSNR on a training slice;
* a2a default: ``a2a train TRAIN_FILES --out RUN`` exactly as a user runs it (it stops by itself);
* supervised ceiling: the same network trained on the ground truth for a fixed budget.

Usage: ``python benchmarks/radial.py --out bench_radial [--case dynamic] [--supervised-budget 300]
[--skip cs] [--variant ssdu="--loss ssdu"]``.
Results go to ``OUT/radial_results.json`` (merged across runs) and are printed as markdown.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from a2a_cli.data import inspect_file, read_slice  # noqa: E402
from a2a_cli.metrics import psnr, ssim  # noqa: E402

SIZE, FRAMES, SPOKES, COILS = 128, 16, 8, 4
CASES = {
    "dynamic": {"train": [1, 2], "test": 9},
    "sequential": {"train": [3, 4], "test": 10},
}
LAMBDAS = (0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1)
CS_ITERATIONS = 100


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def make_files(root: Path, mode: str) -> dict:
    from a2a_cli.radial import simulate_radial

    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    spec = CASES[mode]
    files = {}
    for role, seeds in (("train", spec["train"]), ("test", [spec["test"]])):
        files[role] = []
        for seed in seeds:
            path = data / f"{mode}_{role}_{seed}.h5"
            if not path.exists():
                simulate_radial(path, mode=mode, slices=2, frames=FRAMES, size=SIZE, spokes=SPOKES, coils=COILS, seed=seed)
            files[role].append(path)
    return files


def _c(t) -> np.ndarray:
    a = t[0].detach().numpy()
    return (a[0] + 1j * a[1]).astype(np.complex64)


def _physics(mode: str, sample):
    from a2a_cli.training import make_physics

    return make_physics(mode, sample.mask, sample.coil_maps)


def gridding(mode: str, sample) -> np.ndarray:
    from a2a_cli.reconstruction import zero_filled

    return _c(zero_filled(mode, sample.kspace, sample.mask, sample.coil_maps))


def sliding_window(mode: str, sample) -> np.ndarray:
    return _c(_physics("dynamic", sample).view_sharing(sample.kspace))


def iterative_sense(mode: str, sample) -> np.ndarray:
    phys = _physics(mode, sample)
    phys.cg_iterations = 10
    if mode == "sequential":
        y, static = phys.time_average(sample.kspace)
        static.cg_iterations = 10
        return _c(static.A_dagger(y))
    return _c(phys.A_dagger(sample.kspace))


#: spatial TV and TV along time as two terms: the temporal weight over the spatial one
_TWO_TERMS = {"tv/10+tv-t": 10.0, "tv/3+tv-t": 3.0}
#: the two TV terms plus an l1 term on the temporal spectrum (``-R F``, as in benchmarks/baselines.py):
#: spatial TV's and the spectrum's fractions of the temporal TV weight
_SPECTRUM_TERMS = {"tv/3+tv-t+f-t/3": (3.0, 3.0), "tv/3+tv-t+f-t/10": (3.0, 10.0), "tv/3+tv-t+f-t/30": (3.0, 30.0)}
#: BART total-variation flags tried per case (the best on the training slice is kept):
#: sequential TV over space (bits 0, 1); dynamic TV over time (bit 10), over space and time, and
#: spatial TV and TV along time as two terms, the spatial weight a tenth or a third of the temporal,
#: and those two with an l1 term on the temporal spectrum.
TV_FLAGS = {"sequential": (3,), "dynamic": (1024, 1027, *_TWO_TERMS, *_SPECTRUM_TERMS)}


def bart_cs(mode: str, sample, lam: float, flags: int | str | None = None) -> np.ndarray:
    """BART pics with TV over ``flags`` (default: time for dynamic, space for sequential; or one of
    ``_TWO_TERMS``: spatial TV at a fraction of ``lam`` plus TV along time; or one of ``_SPECTRUM_TERMS``:
    those two and the temporal spectrum's l1 norm; or ``"llr"``, dynamic: locally low rank), -S (re-scaled)."""
    from a2a_cli.cfl import read_cfl, write_cfl

    k = _c(sample.kspace)  # (T, N, spokes, samples)
    m = sample.mask[0].numpy()
    maps = sample.coil_maps[0].numpy()
    t, n, sp, sa = k.shape
    h, w = maps.shape[-2:]
    traj = np.zeros((3, sa, sp, t), np.complex64)
    traj[0], traj[1] = m[1].transpose(2, 1, 0), m[2].transpose(2, 1, 0)
    ksp = k.transpose(3, 2, 1, 0)[None]  # (1, samples, spokes, N, T)
    if mode == "sequential":  # every spoke of the static image in one frame
        ksp = ksp.transpose(0, 1, 2, 4, 3).reshape(1, sa, sp * t, n)
        traj = traj.reshape(3, sa, sp * t)
        reg = f"T:{flags or 3}:0:{lam}"
    else:
        ksp = ksp.reshape(1, sa, sp, n, 1, 1, 1, 1, 1, 1, t)
        traj = traj.reshape(3, sa, sp, 1, 1, 1, 1, 1, 1, 1, t)
        reg = f"T:{flags or 1024}:0:{lam}"
        if flags in _TWO_TERMS:
            reg = [f"T:3:0:{lam / _TWO_TERMS[flags]:.6g}", f"T:1024:0:{lam}"]
        elif flags in _SPECTRUM_TERMS:
            spatial, spectrum = _SPECTRUM_TERMS[flags]
            reg = [f"T:3:0:{lam / spatial:.6g}", f"T:1024:0:{lam}", f"F:1024:0:{lam / spectrum:.6g}"]
        elif flags == "llr":  # locally low rank, 8x8 blocks through time (BART's default -b 8); needs ADMM (-m)
            reg = f"L:3:3:{lam}"
    with tempfile.TemporaryDirectory() as d:
        write_cfl(f"{d}/k", ksp)
        write_cfl(f"{d}/t", traj)
        write_cfl(f"{d}/s", maps.transpose(1, 2, 0)[:, :, None, :])
        regs = [x for r in (reg if isinstance(reg, list) else [reg]) for x in ("-R", r)]
        admm = ["-m"] if flags == "llr" else []  # with FISTA, BART 0.8 aborts on this term and a trajectory
        subprocess.run(["bart", "pics", *admm, "-S", "-i", str(CS_ITERATIONS), *regs, "-t", f"{d}/t", f"{d}/k", f"{d}/s", f"{d}/o"],
                       check=True, capture_output=True)
        out = read_cfl(f"{d}/o")
    if mode == "sequential":
        return out.reshape(h, w)
    return np.moveaxis(out.reshape(h, w, t), -1, 0)


def score(path: Path, fn) -> dict:
    info = inspect_file(path)
    p, s, secs = [], [], 0.0
    for i in range(info.n_slices):
        smp = read_slice(path, i)
        t0 = time.perf_counter()
        img = fn(smp)
        secs += time.perf_counter() - t0
        ref = _c(smp.reference)
        p.append(psnr(ref, img))
        s.append(ssim(ref, img))
    return {"psnr": float(np.mean(p)), "ssim": float(np.mean(s)), "s_per_slice": round(secs / info.n_slices, 2)}


def tune_cs(mode: str, train: Path) -> tuple[tuple[float, int], dict]:
    """The ``(lambda, TV flags)`` of the best PSNR on the first slice of ``train``, and every score."""
    smp = read_slice(train, 0)
    ref = _c(smp.reference)
    scores = {(lam, flags): psnr(ref, bart_cs(mode, smp, lam, flags)) for flags in TV_FLAGS[mode] for lam in LAMBDAS}
    return max(scores, key=scores.get), scores


def run_cmd(cmd: list[str], log: Path) -> tuple[int, float, float]:
    """Run ``cmd``; ``(exit code, wall seconds, CPU seconds)`` (CPU: user + system of the child):
    on a shared machine the CPU time says what the run costs, the wall time what it waited."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        code = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=_env()).returncode
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return code, time.perf_counter() - t0, cpu


def learned(mode: str, files: dict, run: Path, label: str, train_cmd: list[str]) -> dict:
    run.parent.mkdir(parents=True, exist_ok=True)
    code, secs, cpu = run_cmd(train_cmd, run.parent / f"{run.name}.train.log")
    if code != 0:
        return {"method": label, "error": f"training exited {code}"}
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    out = run / "recon"
    rlog = run.parent / f"{run.name}.recon.log"
    code, _, _ = run_cmd([sys.executable, "-m", "a2a_cli", "reconstruct", str(run / "best.pt"), str(files["test"][0]),
                       "--out", str(out), "--json", "--overwrite", "--device", "cpu"], rlog)
    if code != 0:
        return {"method": label, "error": f"reconstruction exited {code}"}
    text = rlog.read_text()
    f = json.loads(text[text.index("{"):])["files"][0]
    return {"method": label, "psnr": f["psnr_network"], "ssim": f["ssim_network"], "steps": recs[-1]["step"],
            "s_per_step": round(recs[-1]["time"] / max(1, recs[-1]["step"]), 2), "train_s": round(secs, 1),
            "train_cpu_s": round(cpu, 1), "cpu_s_per_step": round(cpu / max(1, recs[-1]["step"]), 2),
            "recon_s_per_frame": f["seconds_per_frame"]}


def supervised_worker(run: Path, mode: str, budget: float, files: list[str], options: dict | None = None) -> None:
    """The default network (``options``: the default run's; None: the Artifact2Artifact ones)
    trained on the ground truth for ``budget`` seconds."""
    import torch

    from a2a_cli.data import KspaceDataset
    from a2a_cli.models import build_model
    from a2a_cli.training import auto_split_size

    from quality import fit_supervised  # noqa: E402 (benchmarks/ is on the path when run as a script)
    from ssdu import seen_by_estimated_maps  # noqa: E402

    torch.manual_seed(0)
    ds = KspaceDataset(files)
    if options is None:
        options = {"share_window": 2 * auto_split_size(ds.shapes[0][0])}
    net = build_model("unrolled", **options)
    # the reference as the estimated maps see it: against the raw reference the loss would chase
    # the phase that the maps estimated from the data fix their own way
    fit_supervised(net, [seen_by_estimated_maps(ds.read(i)) for i in range(len(ds))], mode, run, budget=budget)


def run_case(mode: str, root: Path, supervised_budget: float, skip: set[str],
             variants: list[tuple[str, str]] = ()) -> list[dict]:
    files = make_files(root, mode)
    test = files["test"][0]
    rows = []

    def row(label, fn):
        r = {"method": label, **score(test, fn)}
        print(json.dumps(r), flush=True)
        rows.append(r)

    row("gridding (density-compensated adjoint)", lambda s: gridding(mode, s))
    if mode == "dynamic":
        row(f"sliding window (gridding of all {FRAMES} frames)", lambda s: sliding_window(mode, s))
    row("iterative SENSE (10 CG iterations)", lambda s: iterative_sense(mode, s))
    if "cs" not in skip:
        (lam, flags), scores = tune_cs(mode, files["train"][0])
        tv = {3: "space", 1024: "time", 1027: "space and time"}[flags]
        row(f"compressed sensing: BART pics, TV over {tv}, lambda {lam:g} tuned on a training slice",
            lambda s: bart_cs(mode, s, lam, flags))
        rows[-1]["tuning"] = {f"T:{f}:0:{k:g}": round(v, 2) for (k, f), v in scores.items()}
    if "a2a" not in skip:
        run = root / "runs" / mode / "default"
        cmd = [sys.executable, "-m", "a2a_cli", "train", *map(str, files["train"]), "--out", str(run), "--overwrite", "--device", "cpu"]
        r = learned(mode, files, run, "a2a default (`a2a train FILES --out RUN`)", cmd)
        print(json.dumps(r), flush=True)
        rows.append(r)
    for label, extra in variants:
        run = root / "runs" / mode / label
        cmd = [sys.executable, "-m", "a2a_cli", "train", *map(str, files["train"]), "--out", str(run), "--overwrite",
               "--device", "cpu", *shlex.split(extra)]
        r = learned(mode, files, run, f"a2a `{extra}`", cmd)
        print(json.dumps(r), flush=True)
        rows.append(r)
    if "supervised" not in skip:
        run = root / "runs" / mode / "supervised"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--supervised-worker", str(run), "--case", mode,
               "--supervised-budget", str(supervised_budget), *map(str, files["train"])]
        default_config = root / "runs" / mode / "default" / "config.json"
        if default_config.exists():  # the very network the default trained
            cmd += ["--model-options", json.dumps(json.loads(default_config.read_text())["model_options"])]
        r = learned(mode, files, run, f"supervised ceiling (ground truth, {supervised_budget:g} s)", cmd)
        print(json.dumps(r), flush=True)
        rows.append(r)
    return rows


def markdown(results: dict) -> str:
    lines = []
    for case, rows in results.items():
        lines += [f"### {case}", "", "| method | PSNR (dB) | SSIM | s/slice | steps | s/step | train s | train CPU s |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            if "error" in r:
                lines.append(f"| {r['method']} | error: {r['error']} | | | | | | |")
                continue
            lines.append(f"| {r['method']} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r.get('s_per_slice', '')} | "
                         f"{r.get('steps', '')} | {r.get('s_per_step', '')} | {r.get('train_s', '')} | {r.get('train_cpu_s', '')} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench_radial"))
    ap.add_argument("--case", choices=sorted(CASES), action="append")
    ap.add_argument("--supervised-budget", type=float, default=300.0)
    ap.add_argument("--skip", action="append", default=[], choices=["cs", "a2a", "supervised"])
    ap.add_argument("--variant", action="append", default=[], metavar="LABEL=ARGS",
                    help="also train with these extra `a2a train` arguments (row label LABEL)")
    ap.add_argument("--supervised-worker", type=Path)
    ap.add_argument("--model-options", type=json.loads, default=None)
    ap.add_argument("files", nargs="*")
    args = ap.parse_args()
    if args.supervised_worker is not None:
        supervised_worker(args.supervised_worker, args.case[0], args.supervised_budget, args.files, args.model_options)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    store = args.out / "radial_results.json"
    results = json.loads(store.read_text()) if store.exists() else {}
    for mode in args.case or sorted(CASES):
        variants = [tuple(v.split("=", 1)) for v in args.variant]
        rows = run_case(mode, args.out, args.supervised_budget, set(args.skip), variants)
        # rows of other methods measured by earlier runs are kept
        kept = [r for r in results.get(mode, []) if r["method"] not in {x["method"] for x in rows}]
        results[mode] = kept + rows
        store.write_text(json.dumps(results, indent=1))
    print(markdown(results))


if __name__ == "__main__":
    main()
