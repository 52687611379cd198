"""Reconstruction quality and speed of a2a against what a user would run instead.

Run by hand (not part of the test suite), from the repository root, in the project's
virtual environment with the benchmark extra (``pip install -c constraints.txt -e '.[bench]'``):

    python benchmarks/quality.py --out bench_out --budget 60 --blind-spot dynamic,sequential

For each case (data made by ``a2a simulate`` with fixed seeds; the test file is never
trained on) it prints and writes (``results.md``, ``results.json``) one row per method:
zero-filled, view sharing, compressed sensing (sigpy, regularisation weight tuned on a
training slice), a2a with each network and loss variant at the same wall-clock training
budget, a2a's untouched default, and the same network trained supervised on the ground
truth (the ceiling). Every learned row is a separate ``python -m a2a_cli`` process, so its
peak resident memory is its own.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from a2a_cli.data import inspect_file, read_slice, write_a2a_file  # noqa: E402
from a2a_cli.metrics import psnr, ssim  # noqa: E402
from a2a_cli.simulate import add_noise, fft2c, write_case  # noqa: E402

CASES = {
    # name: simulate options shared by its files
    "dynamic": dict(mode="dynamic", motion="respiratory", acceleration=5.0),
    "periodic": dict(mode="dynamic", motion="periodic", period=8, acceleration=5.0),
    "sequential": dict(mode="sequential", acceleration=10.67),
}
CASE_SEEDS = {"dynamic": 1000, "periodic": 2000, "sequential": 3000}  # a case's data never depends on which others run
TRAIN_FILES, SLICES_PER_FILE, TEST_SLICES = 4, 2, 2

# name -> (extra `a2a train` arguments, which cases)
METHODS: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "a2a unrolled, default settings": ([], ("dynamic", "periodic", "sequential")),
    "a2a unrolled, all pairs": (["--all-pairs"], ("dynamic", "periodic", "sequential")),
    "a2a unrolled, split 4, neighbours only": (["--split-size", "4", "--neighbours-only"], ("dynamic", "periodic")),
    "a2a unet": (["--model", "unet"], ("dynamic", "periodic", "sequential")),
    "a2a cnn2dt": (["--model", "cnn2dt"], ("dynamic", "periodic", "sequential")),
    "a2a cnn2dt, no data consistency": (["--model", "cnn2dt", "--model-option", "data_consistency=false"], ("dynamic", "sequential")),
    "a2a unrolled, zero-filled input": (["--model-option", "init=adjoint"], ("dynamic",)),
    "a2a unrolled, consecutive chunks (as in RARE)": (["--no-shuffle-frames"], ("sequential",)),
    "a2a unrolled, no reflections": (["--no-augment"], ("sequential",)),
    "a2a unrolled, reflections": (["--augment"], ("dynamic", "periodic")),
    "p2p unrolled (Phase2Phase)": (["--loss", "p2p"], ("dynamic", "periodic", "sequential")),
}


def run_measured(cmd: list[str], log: Path) -> tuple[int, float, float]:
    """Run ``cmd``; return (exit code, seconds, peak RSS in MB) of that process alone."""
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return code, time.perf_counter() - t0, usage.ru_maxrss / 1024.0


def case_options(name: str, size: int) -> dict:
    """``write_case`` options of a case at ``size`` x ``size``.

    The sequential case keeps the fraction of lines that its frames measure together (about
    56 %): 4 centre lines plus 2 new lines per frame per 64 columns.
    """
    opts = dict(CASES[name], height=size, width=size)
    if name == "sequential" and size != 64:
        opts["acceleration"] = size / (4 + 2 * size / 64)
    return opts


def make_case(root: Path, name: str, seed0: int, size: int = 64) -> dict:
    """Write the training files and the held-out test file of one case."""
    opts = case_options(name, size)
    d = root / "data" / (name if size == 64 else f"{name}-{size}")
    d.mkdir(parents=True, exist_ok=True)
    train = []
    for i in range(TRAIN_FILES):
        p = d / f"train{i}.h5"
        if not p.exists():
            write_case(p, slices=SLICES_PER_FILE, seed=seed0 + i, **opts)
        train.append(p)
    test = d / "test.h5"
    if not test.exists():
        write_case(test, slices=TEST_SLICES, seed=seed0 + 100, **opts)
    return {"name": name, "mode": opts["mode"], "train": train, "test": test}


def same_pattern_copy(case: dict, root: Path) -> dict:
    """The case again with one sampling pattern in every training file (the blind-spot experiment)."""
    d = root / "data" / f"{case['name']}-same-pattern"
    d.mkdir(parents=True, exist_ok=True)
    first = read_slice(case["train"][0], 0)
    mask = first.mask[0, 0].numpy().astype(bool)  # (T, H, W)
    rng = np.random.default_rng(7)
    train = []
    for i, src in enumerate(case["train"]):
        p = d / f"train{i}.h5"
        if not p.exists():
            info = inspect_file(src)
            ks, refs = [], []
            for s in range(info.n_slices):
                ref = _complex(read_slice(src, s).reference)
                clean = fft2c(ref) * mask
                ks.append(add_noise(clean, 30.0, rng, mask=mask) * mask)
                refs.append(ref)
            write_a2a_file(p, np.stack(ks).astype(np.complex64), mask=np.stack([mask] * len(ks)),
                           reference=np.stack(refs), acquisition=case["mode"])
        train.append(p)
    return dict(case, name=f"{case['name']}-same-pattern", train=train)


def _complex(t) -> np.ndarray:
    a = t[0].numpy()
    return (a[0] + 1j * a[1]).astype(np.complex64)


# ----------------------------------------------------------------------------- baselines
def baseline_images(mode: str, sample, method: str, lam: float = 0.0, tv: str = "t") -> np.ndarray:
    """Zero-filled, view sharing or compressed sensing of one slice (complex numpy)."""
    from a2a_cli.physics import DynamicMRI, SequentialMRI, to_complex

    y, m = sample.kspace, sample.mask
    if method == "zero-filled":
        phys = DynamicMRI(mask=m) if mode == "dynamic" else SequentialMRI(mask=m)
        x = phys.A_adjoint(y) if mode == "dynamic" else phys.A_dagger(y)
        return to_complex(x)[0].numpy()
    if method == "view sharing":
        return to_complex(DynamicMRI(mask=m).view_sharing(y))[0].numpy()
    if method == "cs":
        return cs_reconstruct(mode, sample, lam, tv)
    raise ValueError(method)


def cs_reconstruct(mode: str, sample, lam: float, tv: str, iterations: int = 150) -> np.ndarray:
    """Compressed sensing with total variation (sigpy's primal-dual solver).

    Dynamic: TV along time (``tv="t"``) or along time and space (``"txy"``) of the
    frame series. Sequential: spatial TV of the static image from the time-averaged k-space.
    Data are scaled so that the zero-filled image peaks at 1, which makes ``lam`` portable.
    """
    import sigpy as sp

    y = _complex(sample.kspace)
    m = sample.mask[0, 0].numpy().astype(bool)
    if mode == "sequential":
        count = m.sum(0)
        y = np.where(count > 0, (y * m).sum(0) / np.maximum(count, 1), 0)
        m = count > 0
        axes = (0, 1)
    else:
        m = np.broadcast_to(m, y.shape)
        axes = (0,) if tv == "t" else (0, 1, 2)
    shape = y.shape
    scale = np.abs(np.fft.ifft2(np.fft.ifftshift(y * m, axes=(-2, -1)), norm="ortho")).max() or 1.0
    A = sp.linop.Multiply(shape, m.astype(np.complex64)) * sp.linop.FFT(shape, axes=(-2, -1), center=True)
    G = sp.linop.FiniteDifference(shape, axes=axes)
    proxg = sp.prox.L1Reg(G.oshape, lam)
    x = sp.app.LinearLeastSquares(A, (y * m / scale).astype(np.complex64), proxg=proxg, G=G,
                                  max_iter=iterations, show_pbar=False).run()
    return np.asarray(x) * scale


def score(mode: str, path: Path, fn) -> tuple[float, float, float, int]:
    """Mean PSNR/SSIM of ``fn(sample)`` over the slices of ``path``; seconds per slice; frames."""
    info = inspect_file(path)
    p, s, secs = [], [], 0.0
    for i in range(info.n_slices):
        smp = read_slice(path, i)
        t0 = time.perf_counter()
        img = fn(smp)
        secs += time.perf_counter() - t0
        ref = _complex(smp.reference)
        p.append(psnr(ref, img))
        s.append(ssim(ref, img))
    return float(np.mean(p)), float(np.mean(s)), secs / info.n_slices, info.frames


def tune_cs(case: dict) -> tuple[float, str]:
    """Regularisation weight (and TV axes) with the best PSNR on the first training slice."""
    smp = read_slice(case["train"][0], 0)
    ref = _complex(smp.reference)
    best = (-1.0, 0.0, "t")
    for tv in (("t", "txy") if case["mode"] == "dynamic" else ("xy",)):
        for lam in (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0):
            val = psnr(ref, cs_reconstruct(case["mode"], smp, lam, tv))
            if val > best[0]:
                best = (val, lam, tv)
    return best[1], best[2]


# ----------------------------------------------------------------------------- learned rows
def learned_row(case: dict, label: str, extra: list[str], root: Path, budget: float | None) -> dict:
    run = root / "runs" / case["name"] / label.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
    if run.exists():
        shutil.rmtree(run)
    cmd = [sys.executable, "-m", "a2a_cli", "train", *map(str, case["train"]), "--out", str(run), "--device", "cpu"]
    if budget is not None:
        cmd += ["--time-limit", str(budget), "--steps", "1000000", "--patience", "0"]
    cmd += extra
    return _train_and_score(case, label, cmd, run)


def supervised_row(case: dict, root: Path, budget: float) -> dict:
    run = root / "runs" / case["name"] / "supervised"
    if run.exists():
        shutil.rmtree(run)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--supervised-worker", str(run), "--mode", case["mode"],
           "--budget", str(budget), *map(str, case["train"])]
    return _train_and_score(case, "supervised unrolled (ground truth, ceiling)", cmd, run)


def _train_and_score(case: dict, label: str, cmd: list[str], run: Path) -> dict:
    run.parent.mkdir(parents=True, exist_ok=True)
    code, secs, rss = run_measured(cmd, run.parent / f"{run.name}.train.log")
    if code != 0:
        return {"method": label, "error": f"training exited {code}; see {run.parent / (run.name + '.train.log')}"}
    steps, per_step = _steps(run / "metrics.jsonl")
    out = run / "recon"
    rcmd = [sys.executable, "-m", "a2a_cli", "reconstruct", str(run / "best.pt"), str(case["test"]), "--out", str(out),
            "--json", "--overwrite", "--device", "cpu"]
    log = run.parent / f"{run.name}.recon.log"
    code, _, rss_r = run_measured(rcmd, log)
    if code != 0:
        return {"method": label, "error": f"reconstruction exited {code}; see {log}"}
    text = log.read_text()
    table = json.loads(text[text.index("{"):])
    f = table["files"][0]
    return {"method": label, "psnr": f["psnr_network"], "ssim": f["ssim_network"], "steps": steps,
            "s_per_step": per_step, "train_s": round(secs, 1), "recon_s_per_frame": f["seconds_per_frame"],
            "peak_rss_mb": round(max(rss, rss_r), 0)}


def _steps(path: Path) -> tuple[int, float | None]:
    if not path.exists():
        return 0, None
    recs = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    if not recs:
        return 0, None
    return recs[-1]["step"], round(recs[-1]["time"] / max(1, recs[-1]["step"]), 4)


def supervised_worker(run: Path, mode: str, budget: float, files: list[str]) -> None:
    """Train the default network on the ground truth (MSE to the reference) for ``budget`` seconds.

    As the default does: in sequential mode on randomly reflected data, with the
    reconstruction averaged over the reflections.
    """
    import torch

    from a2a_cli.data import KspaceDataset
    from a2a_cli.models import build_model
    from a2a_cli.training import auto_split_size

    torch.manual_seed(0)
    ds = KspaceDataset(files)
    augment = mode == "sequential"
    net = build_model("unrolled", share_window=2 * auto_split_size(ds.shapes[0][0]), flip_ensemble=augment)
    fit_supervised(net, [ds.read(i) for i in range(len(ds))], mode, run, budget=budget, augment=augment)


def fit_supervised(net, samples: list, mode: str, run: Path, steps: int | None = None, budget: float | None = None,
                   augment: bool = False) -> None:
    """Train ``net`` on the ground truth (MSE to each sample's reference) until ``steps`` steps or
    ``budget`` seconds, on randomly reflected data with ``augment``; write ``best.pt`` and
    ``metrics.jsonl`` to ``run``, as an a2a run does (the supervised ceiling of the benchmarks)."""
    import torch

    from a2a_cli.checkpoints import save_checkpoint
    from a2a_cli.physics import Reflection
    from a2a_cli.training import make_physics

    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    run.mkdir(parents=True, exist_ok=True)
    start, step, log = time.monotonic(), 0, []
    while (steps is None or step < steps) and (budget is None or time.monotonic() - start < budget):
        smp = samples[int(torch.randint(len(samples), (1,)))]
        phys, y, ref = make_physics(mode, smp.mask, smp.coil_maps), smp.kspace, smp.reference
        if augment:
            g = Reflection.random()
            phys, y, ref = g.physics_of(phys), g.kspace(y), g.image(ref)
        loss = torch.nn.functional.mse_loss(net(y, phys), ref)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        log.append({"step": step, "loss": loss.item(), "time": time.monotonic() - start})
    save_checkpoint(run / "best.pt", net, mode)
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in log) + "\n")


# ----------------------------------------------------------------------------- report
def results_table(results: dict) -> list[str]:
    """Markdown lines: one table per case, one row per method (an ``error`` row where a method failed)."""
    lines: list[str] = []
    for case, rows in results.items():
        lines += [f"### {case}", "", "| method | PSNR (dB) | SSIM | steps | s/step | train s | recon s/frame | peak RSS (MB) |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            if "error" in r:
                lines.append(f"| {r['method']} | error: {r['error']} | | | | | | |")
                continue
            def f(k, d=2):
                v = r.get(k)
                return "-" if v is None else (f"{v:.{d}f}" if isinstance(v, float) else str(v))
            lines.append(f"| {r['method']} | {f('psnr')} | {f('ssim', 3)} | {f('steps')} | {f('s_per_step', 3)} | "
                         f"{f('train_s', 0)} | {f('recon_s_per_frame', 4)} | {f('peak_rss_mb', 0)} |")
        lines.append("")
    return lines


def markdown(results: dict, meta: dict) -> str:
    lines = [f"Machine: {meta['machine']}. Training budget per learned row: {meta['budget']} s of wall clock "
             f"(the default row stops by itself). Data: {meta['data']}.", ""]
    return "\n".join(lines + results_table(results))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("bench_out"))
    ap.add_argument("--budget", type=float, default=90.0, help="wall-clock training seconds per learned row")
    ap.add_argument("--cases", default="dynamic,periodic,sequential")
    ap.add_argument("--size", type=int, default=64, help="image height and width of the simulated cases")
    ap.add_argument("--methods", default="all", help="labels separated by ';', 'all', or 'none'")
    ap.add_argument("--no-default", action="store_true", help="skip the untouched-default row")
    ap.add_argument("--no-supervised", action="store_true")
    ap.add_argument("--blind-spot", default="", help="cases (comma-separated) also trained on one sampling pattern for every file")
    ap.add_argument("--supervised-worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("files", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.supervised_worker:
        supervised_worker(args.supervised_worker, args.mode, args.budget, args.files)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict]] = {}
    for k, name in enumerate(args.cases.split(",")):
        case = make_case(args.out, name, seed0=CASE_SEEDS[name], size=args.size)
        rows = []
        for method in (["zero-filled", "view sharing"] if case["mode"] == "dynamic" else ["zero-filled"]):
            p, s, secs, frames = score(case["mode"], case["test"], lambda smp, m=method: baseline_images(case["mode"], smp, m))
            rows.append({"method": method, "psnr": p, "ssim": s, "recon_s_per_frame": round(secs / frames, 5)})
        lam, tv = tune_cs(case)
        p, s, secs, frames = score(case["mode"], case["test"], lambda smp: baseline_images(case["mode"], smp, "cs", lam, tv))
        rows.append({"method": f"compressed sensing, TV over {tv} (sigpy, lambda {lam:g} tuned on a training slice)",
                     "psnr": p, "ssim": s, "recon_s_per_frame": round(secs / frames, 5)})
        _report(rows[-3:] if len(rows) >= 3 else rows)
        if not args.no_default:
            rows.append(learned_row(case, "a2a default (no options)", [], args.out, None))
            _report(rows[-1:])
        chosen = METHODS if args.methods == "all" else ({} if args.methods == "none" else
                                                        {m: METHODS[m] for m in args.methods.split(";")})
        for label, (extra, cases) in chosen.items():
            if name in cases:
                rows.append(learned_row(case, label, extra, args.out, args.budget))
                _report(rows[-1:])
        if name in args.blind_spot.split(","):
            same = same_pattern_copy(case, args.out)
            rows.append(learned_row(same, "a2a cnn2dt, same pattern in every training file", ["--model", "cnn2dt"], args.out, args.budget))
            rows.append(learned_row(same, "a2a cnn2dt no DC, same pattern in every training file",
                                    ["--model", "cnn2dt", "--model-option", "data_consistency=false"], args.out, args.budget))
            _report(rows[-2:])
        if not args.no_supervised:
            rows.append(supervised_row(case, args.out, args.budget))
            _report(rows[-1:])
        results[name] = rows
    meta = {
        "machine": f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
                   f"torch {__import__('torch').__version__} (CPU), {__import__('torch').get_num_threads()} threads",
        "budget": args.budget,
        "data": f"{args.size}x{args.size}, T=16, {TRAIN_FILES} training files x {SLICES_PER_FILE} slices, held-out test file of {TEST_SLICES} slices, "
                "SNR 30 dB, 4 shared centre lines, a different pattern per slice",
    }
    (args.out / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2, default=str))
    md = markdown(results, meta)
    (args.out / "results.md").write_text(md)
    print(md)


def _report(rows: list[dict]) -> None:
    for r in rows:
        print(json.dumps(r, default=str), flush=True)


if __name__ == "__main__":
    main()
