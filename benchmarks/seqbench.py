"""Held-out quality of a2a's defaults against honest compressed sensing, on varied data.

Run by hand from the repository root (not part of the test suite)::

    python benchmarks/seqbench_data.py bench_seq                    # the files (seconds)
    python benchmarks/seqbench.py cs --out bench_seq                # zero-filled and tuned BART pics per case
    python -m a2a_cli train bench_seq/CASE/train{0,1,2,3}.h5 --out bench_seq/runs/CASE-s0 --seed 0
    python benchmarks/seqbench.py a2a --out bench_seq --adapt 0,200 # every finished run, on the test files
    python benchmarks/seqbench.py supervised --out bench_seq --budget 120
    python benchmarks/seqbench.py report --out bench_seq            # bench_seq/results.md

Cases are :data:`benchmarks.seqbench_data.CASES`. Compressed sensing (:mod:`benchmarks.baselines`)
is tuned on the two slices of the first training file; a2a trains on the four training
files; a2a's own options were chosen on the validation file; every figure reported is on
the held-out test file (mean over its slices, PSNR/SSIM on magnitude against the noiseless
reference). Each stage appends to ``OUT/results.json`` and can be rerun on its own.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from a2a_cli.data import inspect_file, read_slice  # noqa: E402
from a2a_cli.metrics import psnr, ssim  # noqa: E402
from benchmarks import baselines  # noqa: E402
from benchmarks.seqbench_data import CASES, make_case  # noqa: E402


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _save(path: Path, results: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1, default=str))
    os.replace(tmp, path)


def _slices(path: Path) -> list[tuple]:
    return [baselines.sample_arrays(read_slice(path, i)) for i in range(inspect_file(path).n_slices)]


def _scores(data: list[tuple], images: list[np.ndarray]) -> dict:
    return {"psnr": float(np.mean([psnr(d[3], x) for d, x in zip(data, images)])),
            "ssim": float(np.mean([ssim(d[3], x) for d, x in zip(data, images)]))}


def stage_cs(out: Path, cases: list[str]) -> None:
    """Zero-filled and compressed sensing (tuned on training file 0) on the validation and test files."""
    res_path = out / "results.json"
    for name in cases:
        case = make_case(out, name)
        mode = case["mode"]
        t0 = time.perf_counter()
        setting = baselines.tune(_slices(case["train"][0]), mode)
        tune_s = time.perf_counter() - t0
        row = {"mode": mode, "cs_setting": {"regulariser": setting.regulariser, "weight": setting.weight,
                                            "iterations": setting.iterations, "backend": setting.backend,
                                            "train_psnr": setting.psnr, "train_psnr_doubled_iterations": setting.doubled_psnr,
                                            "tune_s": round(tune_s, 1), "label": setting.label(),
                                            "grid": [list(t) for t in setting.table]}}
        for split in ("val", "test"):
            data = _slices(case[split])
            row[f"{split}_zero_filled"] = _scores(data, [baselines.zero_filled(d[0], d[1], d[2], mode=mode) for d in data])
            t0 = time.perf_counter()
            imgs = [baselines.reconstruct(d[0], d[1], d[2], mode=mode, setting=setting) for d in data]
            row[f"{split}_cs"] = _scores(data, imgs) | {"s_per_slice": round((time.perf_counter() - t0) / len(data), 3)}
        results = _load(res_path)
        results.setdefault(name, {}).update(row)
        _save(res_path, results)
        print(name, json.dumps({k: v for k, v in row.items() if k != "cs_setting"}), setting.label(),
              f"train {setting.psnr:.2f} / doubled {setting.doubled_psnr:.2f}", flush=True)


def stage_cs_quality(out: Path, cases: list[str]) -> None:
    """BART, tuned as above, on the files of ``benchmarks/quality.py`` (same seeds, so the same files as its tables)."""
    from benchmarks.quality import CASE_SEEDS as Q_SEEDS
    from benchmarks.quality import make_case as q_make_case

    res_path = out / "results.json"
    for name in cases:
        case = q_make_case(out / "quality", name, seed0=Q_SEEDS[name])
        mode = case["mode"]
        setting = baselines.tune(_slices(case["train"][0])[:1], mode)  # quality.py tunes on the first training slice
        data = _slices(case["test"])
        row = {"mode": mode, "cs_label": setting.label(), "train_psnr": setting.psnr, "doubled": setting.doubled_psnr,
               "test_zero_filled": _scores(data, [baselines.zero_filled(d[0], d[1], d[2], mode=mode) for d in data]),
               "test_cs": _scores(data, [baselines.reconstruct(d[0], d[1], d[2], mode=mode, setting=setting) for d in data])}
        results = _load(res_path)
        results.setdefault("quality.py", {})[name] = row
        _save(res_path, results)
        print("quality.py", name, json.dumps(row), flush=True)


def _reconstruct(run: Path, data: Path, adapt: int, recon_dir: Path) -> dict:
    cmd = [sys.executable, "-m", "a2a_cli", "reconstruct", str(run / "best.pt"), str(data), "--out", str(recon_dir),
           "--json", "--overwrite", "--device", "cpu", "--adapt", str(adapt)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip()[-500:]}
    table = json.loads(proc.stdout[proc.stdout.index("{"):])
    f = table["files"][0]
    return {"psnr": f["psnr_network"], "ssim": f["ssim_network"], "seconds_per_slice": round(f["seconds"] / f["slices"], 2),
            "wall_s": round(time.perf_counter() - t0, 1)}


def _run_info(run: Path) -> dict:
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    return {"steps": recs[-1]["step"], "train_s": recs[-1]["time"]} if recs else {}


def stage_a2a(out: Path, cases: list[str], adapts: list[int], split: str) -> None:
    """Every finished default run ``OUT/runs/CASE-sSEED`` reconstructed with each ``--adapt`` value."""
    res_path = out / "results.json"
    for name in cases:
        case = make_case(out, name)
        for run in sorted((out / "runs").glob(f"{name}-s*")):
            if not (run / "done").exists() or not (run / "best.pt").exists():
                continue
            for adapt in adapts:
                key = f"{split}_a2a_adapt{adapt}"
                results = _load(res_path)
                if run.name in results.get(name, {}).get(key, {}):
                    continue
                r = _reconstruct(run, case[split], adapt, out / "recon" / run.name / f"{split}-adapt{adapt}") | _run_info(run)
                results = _load(res_path)
                results.setdefault(name, {}).setdefault(key, {})[run.name] = r
                _save(res_path, results)
                print(name, run.name, key, json.dumps(r), flush=True)


def stage_supervised(out: Path, cases: list[str], budget: float) -> None:
    """The default network trained on the ground truth for ``budget`` s (benchmarks/quality.py's worker): the ceiling."""
    res_path = out / "results.json"
    for name in cases:
        case = make_case(out, name)
        run = out / "runs" / f"{name}-supervised"
        cmd = [sys.executable, str(ROOT / "benchmarks" / "quality.py"), "--supervised-worker", str(run), "--mode", case["mode"],
               "--budget", str(budget), *map(str, case["train"])]
        subprocess.run(cmd, check=True, cwd=ROOT)
        (run / "done").touch()
        r = _reconstruct(run, case["test"], 0, out / "recon" / run.name) | _run_info(run)
        results = _load(res_path)
        results.setdefault(name, {})["test_supervised"] = r
        _save(res_path, results)
        print(name, "supervised", json.dumps(r), flush=True)


def _mean_runs(runs: dict) -> tuple[float | None, float | None, str]:
    """Mean PSNR and SSIM over seeds, and the PSNR of each seed."""
    ok = {k: v for k, v in runs.items() if "psnr" in v}
    if not ok:
        return None, None, ""
    p = [v["psnr"] for v in ok.values()]
    each = ", ".join(f"{v:.2f}" for v in p)
    return float(np.mean(p)), float(np.mean([v["ssim"] for v in ok.values()])), each


def report(results: dict, adapts: list[int]) -> str:
    """The held-out table (markdown), one row per case."""
    head = ["case", "zero-filled", "best CS (BART pics, tuned on a training file)", "a2a default"]
    head += [f"a2a default + `--adapt {a}`" for a in adapts if a] + ["supervised ceiling", "target", "best a2a - CS"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in results.items():
        if name == "quality.py" or "test_cs" not in r:
            continue
        mode = r["mode"]
        cs = r["test_cs"]["psnr"]
        st = r["cs_setting"]
        cells = [name, f"{r['test_zero_filled']['psnr']:.2f}",
                 f"{cs:.2f} (SSIM {r['test_cs']['ssim']:.3f}; {st['regulariser']}, weight {st['weight']:.2g})"]
        best = None
        for a in [0] + [a for a in adapts if a]:
            p, q, each = _mean_runs(r.get(f"test_a2a_adapt{a}", {}))
            if p is None:
                cells.append("not run")
                continue
            n = len(each.split(","))
            cells.append(f"{p:.2f} (SSIM {q:.3f}" + (f"; seeds {each})" if n > 1 else ")"))
            best = p if best is None else max(best, p)
        sup = r.get("test_supervised", {})
        cells.append(f"{sup['psnr']:.2f}" if "psnr" in sup else "not run")
        margin = 1.5 if mode == "dynamic" else 1.0
        cells.append(f">= {cs + margin:.2f}")
        cells.append("-" if best is None else f"{best - cs:+.2f} dB")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=["cs", "cs-quality", "a2a", "supervised", "report"])
    ap.add_argument("--out", type=Path, default=Path("bench_seq"))
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--adapt", default="0", help="comma-separated --adapt values (a2a stage)")
    ap.add_argument("--split", default="test", choices=["val", "test"], help="file scored in the a2a stage")
    ap.add_argument("--budget", type=float, default=120.0, help="supervised training seconds")
    args = ap.parse_args()
    cases = args.cases.split(",")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.stage == "cs":
        stage_cs(args.out, cases)
    elif args.stage == "cs-quality":
        stage_cs_quality(args.out, cases)
    elif args.stage == "a2a":
        stage_a2a(args.out, cases, [int(a) for a in args.adapt.split(",")], args.split)
    elif args.stage == "supervised":
        stage_supervised(args.out, cases, args.budget)
    else:
        md = report(_load(args.out / "results.json"), [int(a) for a in args.adapt.split(",")])
        (args.out / "results.md").write_text(md + "\n")
        print(md)


if __name__ == "__main__":
    main()
