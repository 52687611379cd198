"""The varied benchmark cases: training, validation and held-out test files of each.

``python benchmarks/seqbench_data.py OUT`` writes ``OUT/<case>/{train0..3,val,test}.h5``.
Training files (4 x 2 slices) are what a2a trains on and what compressed sensing is
tuned on; the validation file (2 slices) is what a2a's own options were chosen on;
the test file (2 slices, its own seeds) is held out: nothing is tuned on it.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from a2a_cli.simulate import write_case  # noqa: E402
from benchmarks.cases import write_dynamic_object_case, write_sequential_case  # noqa: E402

TRAIN_FILES, SLICES = 4, 2

#: case -> (kind, options). Sequential cases: 64x64, 16 frames, 4 centre lines in every frame.
CASES: dict[str, tuple[str, dict]] = {
    # the case: 6 lines per frame, 36 of 64 lines together
    "abdomen-36": ("sequential", dict(obj="abdomen", new_lines=2)),
    # a sparser density: 5 lines per frame, 20 of 64 lines together
    "abdomen-20": ("sequential", dict(obj="abdomen", new_lines=1)),
    "head-36": ("sequential", dict(obj="head", new_lines=2)),
    # a denser density: 7 lines per frame, 52 of 64 lines together
    "texture-52": ("sequential", dict(obj="texture", new_lines=3)),
    # realistic anatomy and coil maps: 8 coils, 20 of 64 lines together
    "brain-8coil-20": ("sequential", dict(obj="brain", new_lines=1, coils=8)),
    "dynamic-respiratory": ("dynamic", dict(mode="dynamic", motion="respiratory", acceleration=5.0)),
    # dynamic, objects other than the simulator's flat phantom (benchmarks/cases.py::breathe moves them):
    # a texture at 12-13 lines per frame, a brain with 8 coils at 8 lines per frame
    "texture-dyn": ("dynamic-object", dict(obj="texture", acceleration=5.0)),
    "brain-dyn-8coil": ("dynamic-object", dict(obj="brain", acceleration=8.0, coils=8)),
}
CASE_SEEDS = {name: 5000 + 1000 * i for i, name in enumerate(CASES)}


def make_case(root: Path, name: str) -> dict:
    """Write (if missing) and return ``{"name", "mode", "train": [...], "val", "test"}``."""
    kind, opts = CASES[name]
    d = Path(root) / name
    d.mkdir(parents=True, exist_ok=True)
    seed0 = CASE_SEEDS[name]
    files = {f"train{i}": seed0 + i for i in range(TRAIN_FILES)} | {"val": seed0 + 50, "test": seed0 + 100}
    for stem, seed in files.items():
        p = d / f"{stem}.h5"
        if p.exists():
            continue
        if kind == "dynamic":
            write_case(p, slices=SLICES, seed=seed, **opts)
        elif kind == "dynamic-object":
            write_dynamic_object_case(p, slices=SLICES, seed=seed, **opts)
        else:
            write_sequential_case(p, slices=SLICES, seed=seed, **opts)
    return {"name": name, "mode": "dynamic" if kind.startswith("dynamic") else kind, "train": [d / f"train{i}.h5" for i in range(TRAIN_FILES)],
            "val": d / "val.h5", "test": d / "test.h5"}


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "bench_seq")
    for case in (sys.argv[2].split(",") if len(sys.argv) > 2 else CASES):
        print(make_case(out, case)["test"])
