"""k-space splitting (SSDU) where temporal splitting has nothing to learn: quality of the default.

Run by hand (not part of the test suite), from the repository root:

    python benchmarks/ssdu.py --out bench_ssdu

Two cases, 64x64, data made with the project's simulator (a new object for every slice,
SNR 30 dB), a held-out test file that no method trains on or is tuned on:

* ``dynamic-same-lines``: a breathing abdomen, T = 16, every 4th phase-encode line plus the 8
  centre lines, the same lines in every frame (as in clinical Cartesian cine);
  4 training files x 2 slices.
* ``single-frame``: a static abdomen as a fastMRI-style ``(slices, H, W)`` file (no
  ``--frames``), the same kind of mask; 4 training files x 8 slices.

* ``single-frame-random``: as ``single-frame`` with fastMRI's random mask instead: the 8
  centre lines plus 8 random other lines (acceleration 4), a new draw for every slice.

``--coils N`` (N > 1) makes the multi-coil versions (``<case>-Ncoil``), as the scans these
patterns come from are acquired (CMRxRecon cine: 10 coils; fastMRI knee: 15; brain: 4 to 20):
every slice gets its own smooth receive array (:func:`a2a_cli.simulate.coil_sensitivities`),
``y_c = M F S_c x + n`` with the mask shared by the coils, and the files carry the attribute
``coils`` and no usable maps (the true ones are kept as ``true_sensitivity_maps``, which readers
ignore, as :func:`a2a_cli.simulate.write_case` does), so every method works with the maps a2a
estimates from the slice's own centre (:mod:`a2a_cli.data.coil_maps`): zero-filled is the
coil-combined adjoint ``sum_c conj(S_c) F^H y_c`` with them, BART ``pics`` gets them as its
sensitivities, and a plain SENSE row (BART ``pics`` with a small l2 weight, tuned) is added.
The dynamic case is an a2a file ``(S, T, N, H, W)``; the single-frame ones are fastMRI
multi-coil stacks ``(S, N, H, W)`` marked by a protocol name, as fastMRI's files are.

Each slice's grid of every 4th line starts at its own offset (0 to 3), as fastMRI's
equispaced masks do; ``--offsets fixed`` puts it at 0 in every slice and file, as the
CMRxRecon masks do (then no file measures the lines between the grid lines outside the
centre, and k-space splitting learns them only from the centre lines).

Rows: zero-filled, compressed sensing (``benchmarks/baselines.py`` when present: BART
``pics`` with TV and with wavelets, weight tuned on a training file, the best kept;
otherwise sigpy TV tuned on a training slice), a2a's untouched default (``a2a train FILES
--out RUN``, which picks its loss with ``--loss auto`` and stops by itself), optional
variants (``--variants``), and the default network trained supervised on the ground truth
for as many steps as the default took (the ceiling). PSNR/SSIM on magnitude against the
noiseless reference, mean over the test file's slices. A validation file (``val.h5``, its
own seed) serves to tune settings: ``--score-on val`` reports on it instead of the test file.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from a2a_cli.data import inspect_file, read_slice, write_a2a_file  # noqa: E402
from a2a_cli.simulate import add_noise, coil_sensitivities, fft2c, phantom_dynamic, phantom_static  # noqa: E402
from quality import cs_reconstruct, fit_supervised, results_table, run_measured, score, tune_cs  # noqa: E402

SIZE, FRAMES, EVERY, CENTRE, SNR = 64, 16, 4, 8, 30.0
CASES = {
    # name: (mode, training files, slices per file, test slices, seed)
    "dynamic-same-lines": ("dynamic", 4, 2, 2, 14000),
    "single-frame": ("static", 4, 8, 8, 15000),
    "single-frame-random": ("static", 4, 8, 8, 16000),
}


def fixed_lines(width: int = SIZE, every: int = EVERY, centre: int = CENTRE, offset: int = 0) -> np.ndarray:
    """bool ``(W,)``: every ``every``-th line (from ``offset``) plus ``centre`` lines around the k-space centre."""
    m = np.zeros(width, bool)
    m[offset::every] = True
    m[width // 2 - centre // 2: width // 2 + centre // 2] = True
    return m


def random_lines(rng: np.random.Generator, width: int = SIZE, acceleration: float = EVERY, centre: int = CENTRE) -> np.ndarray:
    """bool ``(W,)``: the ``centre`` centre lines plus random others, ``width / acceleration`` in all (fastMRI's random mask)."""
    m = fixed_lines(width, every=width + 1, centre=centre, offset=width)  # the centre lines only
    others = np.flatnonzero(~m)
    m[rng.choice(others, size=int(round(width / acceleration)) - centre, replace=False)] = True
    return m


#: the attribute that marks a multi-coil fastMRI stack ``(S, N, H, W)`` (fastMRI stores its protocol there)
FASTMRI_PROTOCOL = "AXT2"


def write_file(path: Path, mode: str, slices: int, seed: int, offsets: str = "varied", random: bool = False,
               coils: int = 1) -> Path:
    """One file of a case: a new object per slice (drawn from ``(seed, slice)``).

    ``offsets="varied"``: each slice's line grid starts at its own offset (0..3), as
    fastMRI's equispaced masks do; ``"fixed"``: offset 0 in every slice and file, as in
    the CMRxRecon masks. ``coils`` > 1: see :func:`write_multicoil`.
    """
    if path.exists():
        return path
    if coils > 1:
        return write_multicoil(path, mode, slices, seed, _masks(slices, seed, offsets, random), coils)
    masks = _masks(slices, seed, offsets, random)
    if mode == "dynamic":
        ks, refs = [], []
        for s in range(slices):
            rng = np.random.default_rng([seed, s])
            x = phantom_dynamic(SIZE, SIZE, FRAMES, "respiratory", rng=rng)
            m = np.broadcast_to(masks[s], (FRAMES, 1, SIZE))
            ks.append(add_noise(fft2c(x) * m, SNR, rng, mask=m))
            refs.append(x)
        return write_a2a_file(path, np.stack(ks), mask=np.broadcast_to(masks[:, None], (slices, FRAMES, SIZE)),
                              reference=np.stack(refs), acquisition="dynamic")
    xs = np.stack([phantom_static(SIZE, SIZE, rng=np.random.default_rng([seed, s])) for s in range(slices)])
    k = np.stack([add_noise(fft2c(x) * masks[s], SNR, np.random.default_rng([seed, s, 1]), mask=np.broadcast_to(masks[s], x.shape))
                  for s, x in enumerate(xs)])
    # fastMRI-style: (slices, H, W), a line mask per slice (S, H, W), no acquisition attribute
    full = np.broadcast_to(masks[:, None, :], xs.shape).astype(np.uint8)
    return write_a2a_file(path, k, mask=full, reference=xs, acquisition=None)


def _masks(slices: int, seed: int, offsets: str, random: bool) -> np.ndarray:
    """bool ``(S, W)``: each slice's lines (the same draws with any number of coils)."""
    if random:
        return np.stack([random_lines(np.random.default_rng([seed, s, 2])) for s in range(slices)])
    return np.stack([fixed_lines(offset=int(np.random.default_rng([seed, s, 2]).integers(EVERY)) if offsets == "varied" else 0)
                     for s in range(slices)])


def write_multicoil(path: Path, mode: str, slices: int, seed: int, masks: np.ndarray, coils: int) -> Path:
    """A multi-coil file: the single-coil case's objects and lines seen by ``coils`` receive coils.

    Each slice has its own coil array (:func:`a2a_cli.simulate.coil_sensitivities`, drawn
    from ``(seed, slice, 3)``); noise at the case's SNR over the sampled samples of all
    coils. Dynamic: an a2a file, k-space ``(S, T, N, H, W)``, mask ``(S, T, W)``. Static:
    a fastMRI multi-coil stack, k-space ``(S, N, H, W)``, mask ``(S, H, W)``. The true maps
    go to ``true_sensitivity_maps`` ``(S, N, H, W)``, which readers ignore.
    """
    ks, refs, maps = [], [], []
    for s in range(slices):
        rng = np.random.default_rng([seed, s])
        smap = coil_sensitivities(coils, SIZE, SIZE, np.random.default_rng([seed, s, 3]))
        if mode == "dynamic":
            x = phantom_dynamic(SIZE, SIZE, FRAMES, "respiratory", rng=rng)
            m = np.broadcast_to(masks[s], (FRAMES, 1, 1, SIZE))
            ks.append(add_noise(fft2c(x[:, None] * smap) * m, SNR, rng, mask=np.broadcast_to(m, (FRAMES, coils, SIZE, SIZE))))
        else:
            x = phantom_static(SIZE, SIZE, rng=rng)
            m = np.broadcast_to(masks[s], (coils, SIZE, SIZE))
            ks.append(add_noise(fft2c(x * smap) * m, SNR, np.random.default_rng([seed, s, 1]), mask=m))
        refs.append(x)
        maps.append(smap)
    extra = {"true_sensitivity_maps": np.stack(maps)}
    if mode == "dynamic":
        return write_a2a_file(path, np.stack(ks), mask=np.broadcast_to(masks[:, None], (slices, FRAMES, SIZE)),
                              reference=np.stack(refs), acquisition="dynamic", coils=coils, extra=extra)
    full = np.broadcast_to(masks[:, None, :], (slices, SIZE, SIZE)).astype(np.uint8)
    # no ``coils`` attribute: that is a2a's mark of a coil axis, and fastMRI files are marked by their protocol
    return write_a2a_file(path, np.stack(ks), mask=full, reference=np.stack(refs), acquisition=FASTMRI_PROTOCOL,
                          extra=extra)


def make_case(root: Path, name: str, offsets: str = "varied", coils: int = 1) -> dict:
    mode, n_train, per_file, test_slices, seed = CASES[name]
    label = name if offsets == "varied" else f"{name}-fixed-offset"
    label = label if coils == 1 else f"{label}-{coils}coil"
    d = root / "data" / label
    d.mkdir(parents=True, exist_ok=True)
    random = name.endswith("-random")
    train = [write_file(d / f"train{i}.h5", mode, per_file, seed + i, offsets, random, coils) for i in range(n_train)]
    val = write_file(d / "val.h5", mode, test_slices, seed + 50, offsets, random, coils)
    test = write_file(d / "test.h5", mode, test_slices, seed + 100, offsets, random, coils)
    return {"name": label, "mode": "dynamic" if mode == "dynamic" else "sequential", "train": train, "val": val, "test": test,
            "coils": coils}


# ----------------------------------------------------------------------------- compressed sensing
def _baselines_module():
    """``benchmarks/baselines.py`` (the shared compressed-sensing baselines), or None where absent."""
    if not (ROOT / "benchmarks" / "baselines.py").exists():
        return None
    return importlib.import_module("baselines")


#: ``--cs-grid coarse``: four weights on one training slice (the full tuning of dynamic data takes
#: about 50 weights x 3 regularisers of 16-frame BART runs)
COARSE_WEIGHTS = [1e-3, 3e-3, 1e-2, 3e-2]
#: plain SENSE (BART ``pics`` with an l2 weight only): the weights tried, from "tiny" up
SENSE_WEIGHTS = [1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]


def _regularisers(mod, case: dict) -> tuple[str, ...] | None:
    """The regularisers tuned: baselines' defaults, plus spatial TV per frame for multi-coil dynamic data
    (whose lines are the same in every frame, so a per-frame prior is the natural SENSE companion)."""
    if case.get("coils", 1) > 1 and case["mode"] == "dynamic" and mod.backend() == "bart":
        return ("tv",) + tuple(mod.REGULARISERS["bart"]["dynamic"])
    return None


def cs_row(case: dict, target: Path, coarse: bool = False, regularisers: tuple[str, ...] | None = None,
           weights: list[float] | None = None, label: str = "compressed sensing") -> dict:
    """The best compressed sensing: ``benchmarks/baselines.py`` (BART ``pics``, regulariser and
    weight tuned on the slices of the first training file) if present, else sigpy TV.

    Multi-coil slices carry the coil maps a2a estimates (``read_slice``), which BART gets
    as its sensitivities.
    """
    mod = _baselines_module()
    if mod is not None:
        info = inspect_file(case["train"][0])
        n = 1 if coarse else min(info.n_slices, 2)
        tuning = [mod.sample_arrays(read_slice(case["train"][0], i)) for i in range(n)]
        regularisers = regularisers or _regularisers(mod, case)
        setting = mod.tune(tuning, mode=case["mode"], regularisers=regularisers,
                           weights=weights or (COARSE_WEIGHTS if coarse else None))
        p_all, s_all, secs, frames = score(
            case["mode"], target, lambda smp: mod.reconstruct(*mod.sample_arrays(smp)[:3], mode=case["mode"], setting=setting))
        return {"method": f"{label} ({setting.label()}, tuned on a training file; "
                          f"{setting.iterations} iterations, {setting.doubled_psnr:.2f} dB with twice as many "
                          f"against {setting.psnr:.2f} dB on the tuning slices)",
                "psnr": p_all, "ssim": s_all, "recon_s_per_frame": round(secs / frames, 5),
                "tuning": [list(t) for t in setting.table]}
    lam, tv = tune_cs(case)
    p, s, secs, frames = score(case["mode"], target, lambda smp: cs_reconstruct(case["mode"], smp, lam, tv))
    return {"method": f"compressed sensing, TV over {tv} (sigpy, lambda {lam:g} tuned on a training slice)",
            "psnr": p, "ssim": s, "recon_s_per_frame": round(secs / frames, 5)}


def sense_row(case: dict, target: Path) -> dict | None:
    """Plain SENSE with the estimated maps (BART ``pics``, l2 weight tuned over :data:`SENSE_WEIGHTS`);
    None without BART or coils."""
    mod = _baselines_module()
    if case.get("coils", 1) == 1 or mod is None or mod.backend() != "bart":
        return None
    return cs_row(case, target, regularisers=("l2",), weights=SENSE_WEIGHTS, label="SENSE")


def zero_filled_row(case: dict, target: Path) -> dict:
    from a2a_cli.physics import DynamicMRI, SequentialMRI, to_complex

    def zf(smp):
        if smp.coil_maps is not None:  # coil-combined adjoint sum_c conj(S_c) F^H y_c with the estimated maps
            mod = importlib.import_module("baselines")
            return mod.zero_filled(*mod.sample_arrays(smp)[:3], mode=case["mode"])
        if case["mode"] == "dynamic":
            return to_complex(DynamicMRI(mask=smp.mask).A_adjoint(smp.kspace))[0].numpy()
        return to_complex(SequentialMRI(mask=smp.mask).A_dagger(smp.kspace))[0].numpy()

    p, s, secs, frames = score(case["mode"], target, zf)
    row = {"method": "zero-filled", "psnr": p, "ssim": s, "recon_s_per_frame": round(secs / frames, 5)}
    if case.get("coils", 1) > 1:
        smp = read_slice(target, 0)
        row["method"] = f"zero-filled (coil-combined adjoint, maps estimated by a2a: {smp.sensitivity})"
    return row


# ----------------------------------------------------------------------------- learned rows
def learned_row(case: dict, label: str, extra: list[str], root: Path, target: Path) -> dict:
    slug = "".join(c if c.isalnum() else "_" for c in label)
    run = root / "runs" / case["name"] / slug
    if run.exists():
        shutil.rmtree(run)
    run.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "a2a_cli", "train", *map(str, case["train"]), "--out", str(run), *extra]
    return _train_and_score(label, cmd, run, target)


def _train_and_score(label: str, cmd: list[str], run: Path, target: Path) -> dict:
    log = run.parent / f"{run.name}.train.log"
    code, secs, rss = run_measured(cmd, log)
    if code != 0:
        return {"method": label, "error": f"training exited {code}; see {log}"}
    picked = next((line.strip() for line in log.read_text().splitlines() if line.startswith("loss: ")), None)
    steps, per_step = _steps(run / "metrics.jsonl")
    out = run / "recon"
    rcmd = [sys.executable, "-m", "a2a_cli", "reconstruct", str(run / "best.pt"), str(target), "--out", str(out),
            "--json", "--overwrite", "--device", "cpu"]
    rlog = run.parent / f"{run.name}.recon.log"
    code, _, rss_r = run_measured(rcmd, rlog)
    if code != 0:
        return {"method": label, "error": f"reconstruction exited {code}; see {rlog}"}
    text = rlog.read_text()
    f = json.loads(text[text.index("{"):])["files"][0]
    row = {"method": label, "psnr": f["psnr_network"], "ssim": f["ssim_network"], "steps": steps, "s_per_step": per_step,
           "train_s": round(secs, 1), "recon_s_per_frame": f["seconds_per_frame"], "peak_rss_mb": round(max(rss, rss_r), 0)}
    if picked:
        row["loss_line"] = picked
    return row


def _steps(path: Path) -> tuple[int, float | None]:
    if not path.exists():
        return 0, None
    recs = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    if not recs:
        return 0, None
    return recs[-1]["step"], round(recs[-1]["time"] / max(1, recs[-1]["step"]), 4)


def supervised_row(case: dict, root: Path, steps: int, default_run: Path, target: Path) -> dict:
    run = root / "runs" / case["name"] / "supervised"
    if run.exists():
        shutil.rmtree(run)
    run.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--supervised-worker", str(run), "--like", str(default_run),
           "--steps", str(steps), *map(str, case["train"])]
    return _train_and_score("supervised (the default's network on the ground truth, ceiling)", cmd, run, target)


def supervised_worker(run: Path, like: Path, steps: int, files: list[str]) -> None:
    """Train the network of the run ``like`` (same architecture and options) on the ground truth,
    for as many steps as that run took (a count of steps does not depend on the machine's load)."""
    import torch

    from a2a_cli.checkpoints import load_checkpoint
    from a2a_cli.data import KspaceDataset
    from a2a_cli.models import build_model

    torch.manual_seed(0)
    ckpt = load_checkpoint(like / "best.pt")
    mode = ckpt.mode
    net = build_model(ckpt.model_name, **ckpt.model_config)  # fresh weights, the default's architecture and options
    augment = bool(getattr(net, "flip_ensemble", False))
    ds = KspaceDataset(files)
    fit_supervised(net, [seen_by_estimated_maps(ds.read(i)) for i in range(len(ds))], mode, run, steps=steps, augment=augment)


def seen_by_estimated_maps(smp):
    """The sample with its reference as the estimated maps see it, ``x * sum_c conj(S_est_c) S_true_c``.

    Estimated maps fix each slice's phase (and, outside the support, magnitude) their own way,
    so the coil-combined image they model is the reference times that map; against the raw
    reference a supervised loss would chase an unreachable phase (up to pi on some slices).
    Single-coil samples, and files without ``true_sensitivity_maps``, are returned as they are.
    Reference layout ``(1, 2, [T,] H, W)``; maps ``(N, H, W)``.
    """
    import dataclasses

    import h5py
    import torch

    if smp.coil_maps is None or smp.reference is None:
        return smp
    with h5py.File(smp.file, "r") as f:
        if "true_sensitivity_maps" not in f:
            return smp
        true = np.asarray(f["true_sensitivity_maps"][smp.slice_index])
    gain = (np.conj(smp.coil_maps[0].numpy()) * true).sum(axis=0)  # (H, W)
    ref = smp.reference[0].numpy()
    seen = (ref[0] + 1j * ref[1]) * gain
    return dataclasses.replace(smp, reference=torch.from_numpy(np.stack([seen.real, seen.imag])[None].astype(np.float32)))


# ----------------------------------------------------------------------------- report
def markdown(results: dict, meta: dict) -> str:
    lines = [f"Machine: {meta['machine']}. Scored on: {meta['scored_on']}.", ""]
    return "\n".join(lines + results_table(results))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("bench_ssdu"))
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--offsets", choices=("varied", "fixed"), default="varied",
                    help="line grid offset: its own per slice (fastMRI equispaced) or 0 everywhere (CMRxRecon)")
    ap.add_argument("--coils", type=int, default=1,
                    help="receive coils (> 1: the multi-coil versions of the cases, '<case>-Ncoil', maps estimated by a2a)")
    ap.add_argument("--score-on", choices=("test", "val"), default="test", help="held-out test file, or the validation file (for tuning)")
    ap.add_argument("--variants", default="", help="extra rows: 'label=ARGS;label=ARGS' (ARGS passed to a2a train)")
    ap.add_argument("--cs-grid", choices=("full", "coarse"), default="full",
                    help="compressed-sensing tuning: the full grid of baselines.tune, or 4 weights on one slice")
    ap.add_argument("--cs-regularisers", default="", help="compressed sensing: only these baselines.py regularisers (comma-separated)")
    ap.add_argument("--cs-weights", default="", help="compressed sensing: only these weights (comma-separated; a refinement around a coarse grid's best)")
    ap.add_argument("--tag", default="", help="suffix of the results file names (runs in parts)")
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--no-default", action="store_true")
    ap.add_argument("--no-supervised", action="store_true")
    ap.add_argument("--supervised-worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--like", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=1000, help="supervised steps when the default row is not run in the same call (--no-default)")
    ap.add_argument("files", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.supervised_worker:
        supervised_worker(args.supervised_worker, args.like, args.steps, args.files)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict]] = {}
    for name in args.cases.split(","):
        case = make_case(args.out, name, args.offsets, args.coils)
        target = case[args.score_on]
        rows: list[dict] = []
        if not args.no_baselines:
            regs = tuple(args.cs_regularisers.split(",")) if args.cs_regularisers else None
            weights = [float(w) for w in args.cs_weights.split(",")] if args.cs_weights else None
            rows += [zero_filled_row(case, target),
                     cs_row(case, target, coarse=args.cs_grid == "coarse", regularisers=regs, weights=weights)]
            rows += [r for r in [sense_row(case, target)] if r is not None]
            _report(rows)
        default_run = args.out / "runs" / case["name"] / "a2a_default__no_options_"
        if not args.no_default:
            rows.append(learned_row(case, "a2a default (no options)", [], args.out, target))
            _report(rows[-1:])
        for item in filter(None, args.variants.split(";")):
            label, _, extra = item.partition("=")
            rows.append(learned_row(case, label.strip(), extra.split(), args.out, target))
            _report(rows[-1:])
        if not args.no_supervised and (default_run / "best.pt").exists():
            steps = next((r["steps"] for r in rows if r["method"] == "a2a default (no options)" and "steps" in r), args.steps)
            rows.append(supervised_row(case, args.out, steps, default_run, target))
            _report(rows[-1:])
        results[case["name"]] = rows
    meta = {
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "machine": f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
                   f"torch {__import__('torch').__version__} (CPU), {__import__('torch').get_num_threads()} threads",
        "scored_on": f"the {args.score_on} file of each case",
    }
    tag = ("" if args.score_on == "test" else "_val") + (f"_{args.tag}" if args.tag else "")
    (args.out / f"results{tag}.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2, default=str))
    md = markdown(results, meta)
    (args.out / f"results{tag}.md").write_text(md)
    print(md)


def _report(rows: list[dict]) -> None:
    for r in rows:
        print(json.dumps(r, default=str), flush=True)


if __name__ == "__main__":
    main()
