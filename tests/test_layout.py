"""Every command says how it read a file; inspect-mask warns where a shape is ambiguous."""
from __future__ import annotations

import json

import h5py
import pytest
from typer.testing import CliRunner

from a2a_cli.cli import app
from a2a_cli.data import describe_layout, inspect_file, layout_warning, read_mask
from a2a_cli.simulate import write_case

runner = CliRunner()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("layout")
    single = write_case(d / "single.h5", slices=2, frames=8, height=16, width=32, seed=1)
    multi = write_case(d / "multi.h5", slices=1, frames=8, height=16, width=16, coils=4, seed=2)
    # the same multi-coil slice stored without its `coils` attribute: (T, N, H, W) looks like (S, T, H, W)
    bare = d / "bare.h5"
    with h5py.File(multi, "r") as f, h5py.File(bare, "w") as g:
        g["kspace"] = f["kspace"][0]
    return {"single": single, "multi": multi, "bare": bare, "dir": d}


def test_describe_layout_names_every_axis_and_its_source(files):
    line = describe_layout(inspect_file(files["single"]))
    assert line.startswith("single.h5: read as 2 slices (kspace axis 0) x 8 frames (axis 1) x 1 coil (no 'coils' attribute)")
    assert "H 16 (readout) x W 32 (phase encode); dynamic (attribute acquisition); mask stored" in line
    line = describe_layout(inspect_file(files["multi"]))
    assert "read as 1 slice (kspace axis 0)" in line and "x 4 coils (attribute coils)" in line and "; coil maps " in line
    line = describe_layout(inspect_file(files["bare"]))
    assert "8 slices (kspace axis 0) x 4 frames (axis 1)" in line and "default: no 'acquisition' attribute" in line


def test_layout_warning_only_where_coils_are_plausible(files):
    info = inspect_file(files["bare"])
    warning = layout_warning(info, read_mask(files["bare"]))
    assert warning is not None and "coils = 4" in warning and str(files["bare"]) in warning
    # frames that sample different lines cannot be coils of one slice
    single = inspect_file(files["single"])
    assert layout_warning(single, read_mask(files["single"])) is None
    assert layout_warning(inspect_file(files["multi"])) is None  # the attribute settles it


def test_inspect_mask_prints_and_reports_the_interpretation(files):
    result = runner.invoke(app, ["inspect-mask", str(files["bare"]), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["interpretation"] == describe_layout(inspect_file(files["bare"]))
    assert "coils = 4" in report["layout_warning"]
    result = runner.invoke(app, ["inspect-mask", str(files["single"])], env={"COLUMNS": "300"})
    assert result.exit_code == 0
    assert "single.h5: read as 2 slices" in result.output and "has no 'coils' attribute" not in result.output


def test_train_and_reconstruct_print_the_interpretation(files, tmp_path, one_thread):
    run = tmp_path / "run"
    opts = ["--model-option", "channels=4", "--model-option", "depth=2", "--device", "cpu", "--steps", "1", "--val-every", "1"]
    result = runner.invoke(app, ["train", str(files["single"]), "--out", str(run), *opts], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "single.h5: read as 2 slices (kspace axis 0) x 8 frames" in result.output
    result = runner.invoke(app, ["reconstruct", str(run / "best.pt"), str(files["single"]), "--out", str(tmp_path / "r")],
                           env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "single.h5: read as 2 slices (kspace axis 0) x 8 frames" in result.output
