"""Every command says how it read a file; inspect-mask warns where a shape is ambiguous."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from a2a_cli.cli import app
from a2a_cli.data import describe_layout, inspect_file, layout_warning, read_mask, read_slice
from a2a_cli.data.layout import check_mask_matches
from a2a_cli.errors import InputError
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
    # --no-tv: the weight search is tested elsewhere and would cost most of this run's time
    opts = ["--model-option", "channels=4", "--model-option", "depth=2", "--device", "cpu", "--steps", "1", "--val-every", "1",
            "--no-tv"]
    result = runner.invoke(app, ["train", str(files["single"]), "--out", str(run), *opts], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "single.h5: read as 2 slices (kspace axis 0) x 8 frames" in result.output
    result = runner.invoke(app, ["reconstruct", str(run / "best.pt"), str(files["single"]), "--out", str(tmp_path / "r")],
                           env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "single.h5: read as 2 slices (kspace axis 0) x 8 frames" in result.output


def _frames_by_coils(tmp_path, name, coils_attr: bool, acquisition: str | None, with_mask: bool):
    """A multi-coil cine slice (T, N, H, W) = (6, 6, 8, 12): frame t measures columns 3j + t % 3 and the centre."""
    rng = np.random.default_rng(0)
    t, n, h, w = 6, 6, 8, 12
    mask = np.zeros((t, w), bool)
    for i in range(t):
        mask[i, i % 3::3] = True
    mask[:, 5:7] = True
    k = (rng.standard_normal((t, n, h, w)) + 1j * rng.standard_normal((t, n, h, w))).astype(np.complex64)
    k *= mask[:, None, None, :]
    path = tmp_path / name
    with h5py.File(path, "w") as f:
        f["kspace"] = k
        if with_mask:
            f["mask"] = mask.astype(np.uint8)
        if coils_attr:
            f.attrs["coils"] = n
        if acquisition is not None:
            f.attrs["acquisition"] = acquisition
    return path


def test_the_coils_attribute_is_never_read_as_fastmri(tmp_path):
    """A 4D file with ``coils`` and a protocol name as acquisition is an a2a file: refused as one, not read as
    fastMRI slices (which would turn frames into static slices)."""
    path = _frames_by_coils(tmp_path, "cine.h5", coils_attr=True, acquisition="cine", with_mask=False)
    result = runner.invoke(app, ["inspect-mask", str(path)])
    assert result.exit_code != 0
    assert "must be 'dynamic' or 'sequential'" in result.output and "cine.h5" in result.output
    assert "Traceback" not in result.output
    fixed = _frames_by_coils(tmp_path, "cine_dyn.h5", coils_attr=True, acquisition="dynamic", with_mask=False)
    assert "1 slice (no slice axis) x 6 frames (axis 0) x 6 coils" in describe_layout(inspect_file(fixed))


def test_a_mask_that_does_not_fit_the_kspace_is_refused(tmp_path):
    """Coils read as frames (the attribute forgotten): half the lines the mask marks hold zeros in every 'frame'."""
    bad = _frames_by_coils(tmp_path, "forgot.h5", coils_attr=False, acquisition=None, with_mask=True)
    with pytest.raises(InputError, match="lines .* that the mask marks as measured hold only zeros") as e:
        read_slice(bad, 0)
    assert "forgot.h5" in str(e.value)
    result = runner.invoke(app, ["inspect-mask", str(bad)])
    assert result.exit_code != 0 and "hold only zeros" in result.output and "Traceback" not in result.output
    # the same data stored as a2a expects it is read, and every measured sample is kept
    good = _frames_by_coils(tmp_path, "good.h5", coils_attr=True, acquisition="dynamic", with_mask=True)
    sample = read_slice(good, 0, sensitivity="lowres")
    with h5py.File(good, "r") as f:
        k = f["kspace"][()]
    kept = sample.kspace[0, 0].numpy() + 1j * sample.kspace[0, 1].numpy()
    np.testing.assert_array_equal(kept, k)


def test_a_few_empty_marked_lines_are_let_through():
    """Zero-padded edges marked as measured (here 1 of 6 lines per frame) are not a mismatch."""
    mask = np.zeros((2, 4, 6), bool)
    mask[..., :] = True
    k = np.ones((2, 4, 6), np.complex64)
    k[..., 0] = 0
    check_mask_matches(k, mask, Path("edge.h5"), 0)
    k[..., 1] = 0
    with pytest.raises(InputError, match="4 of the 12 lines"):
        check_mask_matches(k, mask, Path("edge.h5"), 0)


def test_coils_first_kspace_is_refused(tmp_path):
    """(coils, frames, H, W) stored as if it were (frames, coils, H, W): the 'coils' of a frame differ, which
    receive coils never do; the same data in a2a's order is read."""
    good = _frames_by_coils(tmp_path, "good.h5", coils_attr=True, acquisition="dynamic", with_mask=True)
    swapped = tmp_path / "swapped.h5"
    with h5py.File(good, "r") as f, h5py.File(swapped, "w") as g:
        g["kspace"] = f["kspace"][()].transpose(1, 0, 2, 3)
        g["mask"] = f["mask"][()]
        g.attrs.update(f.attrs)
    with pytest.raises(InputError, match="swapped.h5: slice 0: the coils of a frame hold different k-space lines"):
        read_slice(swapped, 0, sensitivity="lowres")
    read_slice(good, 0, sensitivity="lowres")
