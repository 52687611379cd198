"""The network, TV compressed sensing, and the per-file choice between them (``--method auto``).

Run by hand from the repository root (not part of the test suite), on case folders that hold
``train*.h5`` and ``test.h5`` (made by ``seqbench_data.py``, ``ssdu.py``, ``quality.py`` or
``realsize.py``)::

    python benchmarks/methods.py --out bench_methods CASE=DIR [CASE=DIR ...]
    python benchmarks/methods.py --out bench_methods --reuse RUN CASE=DIR   # score an existing run

For each case: ``a2a train DIR/train*.h5 --out OUT/runs/CASE`` with no option (it also chooses
the TV weights, within its time budget), then ``a2a reconstruct`` of ``DIR/test.h5`` three
times: ``--method auto`` (the default: the blend of the two fitted to held-out samples),
``--method network`` and ``--method tv``. The table says the network's share in what auto
kept, the held-out k-space errors it fitted, and the PSNR / SSIM of each against the
reference, so that one sees what the blend, fitted without ground truth, gained or lost
against the better of the two. Rows go to ``OUT/methods.json`` and ``OUT/methods.md``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _a2a(*args: str) -> str:
    """Run ``python -m a2a_cli ARGS``; its standard output (the JSON table). Fails loudly."""
    proc = subprocess.run([sys.executable, "-m", "a2a_cli", *args], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"a2a {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return proc.stdout


def run_case(name: str, folder: Path, out: Path, reuse: Path | None = None) -> dict:
    """Train (unless ``reuse``) and reconstruct one case three ways; one row of the table."""
    run = reuse if reuse is not None else out / "runs" / name
    row: dict = {"case": name}
    if reuse is None:
        began = time.monotonic()
        summary = json.loads(_a2a("train", *map(str, sorted(folder.glob("train*.h5"))), "--out", str(run),
                                  "--overwrite", "--json"))
        row |= {"train_seconds": round(time.monotonic() - began, 1), "steps": summary["steps"],
                "tv_weights": summary.get("tv_weights")}
    for method in ("auto", "network", "tv"):
        began = time.monotonic()
        table = json.loads(_a2a("reconstruct", str(run / "best.pt"), str(folder / "test.h5"), "--out",
                                str(out / "recon" / name / method), "--overwrite", "--json", "--method", method))
        f = table["files"][0]
        row[method] = {"psnr": f["psnr_network"], "ssim": f["ssim_network"], "seconds": round(time.monotonic() - began, 1)}
        row["zero_filled"] = f["psnr_zero_filled"]
        if method == "auto":
            row["chosen"], row["holdout_error"] = f["method"], f["holdout_error"]
            row["network_weight"] = f.get("network_weight")
    best = max(("network", "tv"), key=lambda m: row[m]["psnr"])
    row["gain_over_better_db"] = round(row["auto"]["psnr"] - row[best]["psnr"], 2)
    return row


def report(rows: list[dict]) -> str:
    """The markdown table of ``rows``."""
    lines = ["| case | zero-filled | network | TV | **auto** | network's share | held-out error network / TV / blend | "
             "auto - the better of the two |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        h = r.get("holdout_error") or {}
        errors = " / ".join(f"{h[k]:.4f}" for k in ("network", "tv", "blend") if k in h) or "-"
        share = r.get("network_weight")
        lines.append(f"| {r['case']} | {r['zero_filled']:.2f} | {r['network']['psnr']:.2f} | {r['tv']['psnr']:.2f} | "
                     f"**{r['auto']['psnr']:.2f}** | {'-' if share is None else f'{share:.2f}'} | {errors} | "
                     f"{r['gain_over_better_db']:+.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="+", help="CASE=DIR: a name and a folder holding train*.h5 and test.h5")
    parser.add_argument("--out", type=Path, required=True, help="Folder for runs, reconstructions and the table.")
    parser.add_argument("--reuse", type=Path, help="An existing run folder (one case): score it instead of training.")
    args = parser.parse_args(argv)
    results = args.out / "methods.json"
    rows = json.loads(results.read_text()) if results.exists() else []
    for spec in args.cases:
        name, _, folder = spec.partition("=")
        if not folder:
            parser.error(f"{spec!r}: expected CASE=DIR")
        row = run_case(name, Path(folder), args.out, args.reuse)
        rows = [r for r in rows if r["case"] != name] + [row]
        args.out.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps(rows, indent=1))
        (args.out / "methods.md").write_text(report(rows))
        print(report([row]), end="", flush=True)


if __name__ == "__main__":
    main()
