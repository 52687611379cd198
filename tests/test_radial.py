"""Radial (non-Cartesian) k-space: files with a trajectory are never read as Cartesian data."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from a2a_cli.cli import app
from a2a_cli.errors import InputError
from a2a_cli.data import inspect_file

runner = CliRunner()


def _ismrmrd_radial(path: Path, spokes: int = 4, samples: int = 8, coils: int = 2) -> Path:
    """A tiny ISMRMRD raw file whose acquisitions carry 2D trajectory points."""
    idx_t = np.dtype([(name, "<u2") for name in ("kspace_encode_step_1", "kspace_encode_step_2", "average", "slice",
                                                  "contrast", "phase", "repetition", "set", "segment")])
    head_t = np.dtype([("version", "<u2"), ("flags", "<u8"), ("number_of_samples", "<u2"), ("available_channels", "<u2"),
                       ("active_channels", "<u2"), ("trajectory_dimensions", "<u2"), ("center_sample", "<u2"), ("idx", idx_t)])
    vf = h5py.vlen_dtype(np.float32)
    table = np.zeros(spokes, np.dtype([("head", head_t), ("traj", vf), ("data", vf)]))
    for i in range(spokes):
        h = table[i]["head"]
        h["number_of_samples"], h["active_channels"], h["available_channels"] = samples, coils, coils
        h["trajectory_dimensions"], h["center_sample"] = 2, samples // 2
        angle = np.pi * i / spokes
        r = np.arange(samples) - samples / 2
        table[i]["traj"] = np.stack([r * np.cos(angle), r * np.sin(angle)], -1).astype(np.float32).ravel()
        table[i]["data"] = np.ones(coils * samples * 2, np.float32)
    xml = (
        '<?xml version="1.0"?><ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD"><encoding>'
        f"<encodedSpace><matrixSize><x>{samples}</x><y>{samples}</y><z>1</z></matrixSize></encodedSpace>"
        f"<reconSpace><matrixSize><x>{samples}</x><y>{samples}</y><z>1</z></matrixSize></reconSpace>"
        "<trajectory>radial</trajectory></encoding></ismrmrdHeader>"
    )
    with h5py.File(path, "w") as f:
        g = f.create_group("dataset")
        g.create_dataset("data", data=table)
        g.create_dataset("xml", data=np.array([xml], dtype=h5py.string_dtype()))
    return path


def test_ismrmrd_acquisitions_with_trajectories_are_refused(tmp_path):
    raw = _ismrmrd_radial(tmp_path / "radial_raw.h5")
    with pytest.raises(InputError, match="trajectory"):
        inspect_file(raw)
    result = runner.invoke(app, ["inspect-mask", str(raw)])
    assert result.exit_code == 2
    assert "trajectory" in result.output and "Traceback" not in result.output


def test_the_reported_file_is_read_as_radial_not_as_cartesian(tmp_path):
    """The reported case: 8 frames, 8 coils, 8 spokes of 256 samples and a trajectory, no image_size."""
    path = tmp_path / "radial.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", data=np.ones((8, 8, 8, 256), np.complex64))
        f.create_dataset("trajectory", data=np.zeros((8, 8, 256, 2), np.float32))
        f.attrs["coils"] = 8
    with pytest.raises(InputError, match="image_size"):
        inspect_file(path)
    result = runner.invoke(app, ["train", str(path), "--out", str(tmp_path / "run"), "--steps", "1"])
    assert result.exit_code == 2 and "image_size" in result.output
    assert not (tmp_path / "run").exists()
    with h5py.File(path, "a") as f:
        f.attrs["image_size"] = [128, 128]
    info = inspect_file(path)
    assert (info.layout, info.frames, info.height, info.width, info.coils) == ("radial", 8, 128, 128, 8)


# ----------------------------------------------------------------------------------
# the a2a radial file
# ----------------------------------------------------------------------------------
FRAMES, SPOKES, SIZE = 4, 6, 24


@pytest.fixture(scope="module")
def radial_file(tmp_path_factory):
    from a2a_cli.radial import simulate_radial

    return simulate_radial(tmp_path_factory.mktemp("radial") / "sim.h5", slices=2, frames=FRAMES, size=SIZE,
                           spokes=SPOKES, coils=3, seed=5)


def _copy_with(src: Path, dst: Path, drop=(), attrs=None, **datasets) -> Path:
    with h5py.File(src) as f, h5py.File(dst, "w") as g:
        for name in f:
            if name not in drop and name not in datasets:
                f.copy(name, g)
        for key, value in f.attrs.items():
            if key not in drop:
                g.attrs[key] = value
        for name, value in datasets.items():
            g.create_dataset(name, data=value)
        for key, value in (attrs or {}).items():
            g.attrs[key] = value
    return dst


def test_radial_slice_tensors(radial_file):
    from a2a_cli.data import read_slice

    info = inspect_file(radial_file)
    assert (info.layout, info.mode, info.n_slices, info.frame_shape, info.coils) == ("radial", "dynamic", 2, (FRAMES, SIZE, SIZE), 3)
    sample = read_slice(radial_file, 1)
    assert sample.kspace.shape == (1, 2, FRAMES, 3, SPOKES, SIZE)
    assert sample.mask.shape == (1, 4, FRAMES, SPOKES, SIZE)
    with h5py.File(radial_file) as f:
        traj = f["trajectory"][1]
    assert torch.equal(sample.mask[0, 1], torch.from_numpy(traj[..., 0]))
    assert float(sample.mask[0, 3].min()) > 0  # density compensation computed
    assert sample.coil_maps.shape == (1, 3, SIZE, SIZE) and sample.reference.shape == (1, 2, FRAMES, SIZE, SIZE)


def test_coil_maps_estimated_from_the_radial_data_match_the_true_maps(tmp_path):
    from a2a_cli.data import read_slice
    from a2a_cli.radial import simulate_radial

    path = simulate_radial(tmp_path / "maps.h5", slices=1, frames=16, size=48, spokes=8, coils=4, seed=3, snr_db=40.0)
    sample = read_slice(path, 0)
    with h5py.File(path) as f:
        true = torch.from_numpy(f["true_sensitivity_maps"][0])
        ref = torch.from_numpy(f["reference"][0]).abs().mean(0)
    assert sample.sensitivity == "espirit"
    obj = ref > 0.2 * ref.max()
    est = sample.coil_maps[0]
    # maps are defined up to a phase per pixel (the image takes it): align that phase first
    common = (est.conj() * true).sum(0)
    est = est * common / common.abs().clamp(min=1e-12)
    err = (est - true).abs()[:, obj]
    assert float(err.mean()) < 0.05
    assert float(err.quantile(0.9)) < 0.1


@pytest.mark.parametrize("change, message", [
    (dict(drop=("image_size",)), "image_size"),
    (dict(attrs={"image_size": [24]}), "image_size"),
    (dict(trajectory=np.zeros((FRAMES, SPOKES, SIZE - 1, 2), np.float32)), "does not fit"),
    (dict(trajectory=np.zeros((FRAMES + 1, SPOKES, SIZE, 2), np.float32)), "does not fit"),
    (dict(trajectory=np.full((FRAMES, SPOKES, SIZE, 2), 12.5, np.float32)), "beyond the k-space edge"),
    (dict(trajectory=np.full((FRAMES, SPOKES, SIZE, 2), np.nan, np.float32)), "NaN"),
    (dict(dcf=np.ones((FRAMES, SPOKES, SIZE + 1), np.float32)), "'dcf' has shape"),
    (dict(dcf=-np.ones((FRAMES, SPOKES, SIZE), np.float32)), "finite weights"),
    (dict(sensitivity_maps=np.ones((2, 2, SIZE, SIZE), np.complex64)), "'sensitivity_maps' has shape"),
    (dict(reference=np.ones((2, FRAMES, SIZE, SIZE + 1), np.complex64)), "'reference' has shape"),
])
def test_bad_radial_files_are_refused_with_one_line(radial_file, tmp_path, change, message):
    bad = _copy_with(radial_file, tmp_path / "bad.h5", **change)
    with pytest.raises(InputError, match=message):
        inspect_file(bad)
    result = runner.invoke(app, ["inspect-mask", str(bad)])
    assert result.exit_code == 2 and message.split()[0] in result.output and "Traceback" not in result.output


def test_nan_kspace_is_refused_when_read(radial_file, tmp_path):
    from a2a_cli.data import read_slice

    with h5py.File(radial_file) as f:
        k = f["kspace"][()]
    k[0, 1, 0, 0, 0] = np.nan
    bad = _copy_with(radial_file, tmp_path / "nan.h5", kspace=k)
    with pytest.raises(InputError, match="NaN"):
        read_slice(bad, 0)


@pytest.mark.slow
def test_train_and_reconstruct_a_radial_file(radial_file, tmp_path):
    run, out = tmp_path / "run", tmp_path / "rec"
    # --no-tv: radial weight searches are tested in test_tv.py and test_holdout.py (three here would cost most of the time)
    opts = ["--steps", "2", "--model-option", "channels=4", "--model-option", "depth=2", "--device", "cpu", "--val-every", "2",
            "--no-tv"]
    for loss in ("a2a", "p2p", "ssdu"):
        result = runner.invoke(app, ["train", str(radial_file), "--out", str(run), "--loss", loss, "--overwrite", *opts])
        assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["reconstruct", str(run / "best.pt"), str(radial_file), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    with h5py.File(out / "sim_recon.h5") as f:
        rec, zf = f["reconstruction"][()], f["zero_filled"][()]
    assert rec.shape == zf.shape == (2, FRAMES, SIZE, SIZE)
    assert np.isfinite(rec).all() and np.abs(rec).max() > 0


# ----------------------------------------------------------------------------------
# inspect-mask on radial files
# ----------------------------------------------------------------------------------
def test_inspect_mask_reports_spokes_golden_angle_and_nyquist_fraction(radial_file, tmp_path):
    import json

    result = runner.invoke(app, ["inspect-mask", str(radial_file), "--json", "--png", str(tmp_path / "spokes.png")])
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    assert (r["spokes_per_frame"], r["samples_per_spoke"], r["n_frames"]) == (SPOKES, SIZE, FRAMES)
    assert r["golden_angle"]["detected"] and abs(r["golden_angle"]["increment_deg"] - 111.246) < 0.01
    assert r["frame_nyquist_fraction"] == pytest.approx(SPOKES / (np.pi / 2 * SIZE))
    assert r["recommended_split_size"] == 2 and r["verdict"] == "ok"
    assert (tmp_path / "spokes.png").stat().st_size > 0


def test_the_same_spokes_in_every_frame_are_flagged():
    from a2a_cli.radial_report import spoke_report

    angle = np.arange(SPOKES) * np.pi / SPOKES
    r = np.arange(SIZE) - SIZE // 2
    one = np.stack((r[None] * np.cos(angle)[:, None], r[None] * np.sin(angle)[:, None]), -1)
    report = spoke_report(np.broadcast_to(one, (FRAMES, SPOKES, SIZE, 2)))
    assert not report["golden_angle"]["detected"]
    assert report["frames"][0]["uniformity"] == pytest.approx(1.0)
    assert all("repeat each other's spokes" in " ".join(s["warnings"]) for s in report["splits"])
    assert report["verdict"] == "warning"


# ----------------------------------------------------------------------------------
# conversion
# ----------------------------------------------------------------------------------
def _bart_arrays(radial_file, folder, kspace_scale: float = 1.0):
    """The radial file's first slice as BART arrays ``folder/ksp.cfl`` and ``folder/traj.cfl``."""
    from a2a_cli.cfl import write_cfl

    with h5py.File(radial_file) as f:
        k, traj = f["kspace"][0], f["trajectory"][0]  # (T, N, spokes, samples), (T, spokes, samples, 2)
    t, n, sp, sa = k.shape
    ksp = k.transpose(3, 2, 1, 0).reshape(1, sa, sp, n, 1, 1, 1, 1, 1, 1, t)
    tr = np.zeros((3, sa, sp, t), np.complex64)
    tr[0], tr[1] = traj[..., 0].transpose(2, 1, 0), traj[..., 1].transpose(2, 1, 0)
    write_cfl(folder / "ksp", ksp * np.complex64(kspace_scale))
    write_cfl(folder / "traj", tr.reshape(3, sa, sp, 1, 1, 1, 1, 1, 1, 1, t))
    return k, traj


def test_convert_bart_arrays_gives_the_same_radial_data(radial_file, tmp_path):
    k, traj = _bart_arrays(radial_file, tmp_path)
    out = tmp_path / "from_bart.h5"
    result = runner.invoke(app, ["convert", str(tmp_path / "ksp.cfl"), str(out), "--trajectory", str(tmp_path / "traj.cfl")])
    assert result.exit_code == 0, result.output
    info = inspect_file(out)
    assert (info.layout, info.frames, info.height, info.width, info.coils) == ("radial", FRAMES, SIZE, SIZE, 3)
    with h5py.File(out) as f:
        assert np.array_equal(f["kspace"][0], k) and np.allclose(f["trajectory"][0], traj)
    missing = runner.invoke(app, ["convert", str(tmp_path / "ksp.cfl"), str(tmp_path / "x.h5")])
    assert missing.exit_code == 2 and "--trajectory" in missing.output


@pytest.mark.parametrize("case", ["output over the header", "image size 0", "image size too small", "NaN", "zeros"])
def test_convert_bart_refuses_what_it_cannot_write_as_readable(radial_file, tmp_path, case):
    """Every refusal names the file, writes nothing and leaves the inputs as they were."""
    scale = {"NaN": np.nan, "zeros": 0.0}.get(case, 1.0)
    _bart_arrays(radial_file, tmp_path, kspace_scale=scale)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    out = tmp_path / ("traj.hdr" if case == "output over the header" else "out.h5")
    size = {"image size 0": ["--image-size", "0", "0"], "image size too small": ["--image-size", "4", "4"]}.get(case, [])
    result = runner.invoke(app, ["convert", str(tmp_path / "ksp.cfl"), str(out), "--trajectory", str(tmp_path / "traj.cfl"),
                                 "--overwrite", *size])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    words = {"output over the header": "would replace an input", "image size 0": ">= 2", "image size too small": "beyond the k-space edge",
             "NaN": "NaN", "zeros": "only zeros"}[case]
    assert words in result.output
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_convert_ismrmrd_with_trajectories(tmp_path):
    raw = _ismrmrd_radial(tmp_path / "raw.h5", spokes=4, samples=8, coils=2)
    out = tmp_path / "radial.h5"
    result = runner.invoke(app, ["convert", str(raw), str(out)])
    assert result.exit_code == 0, result.output
    info = inspect_file(out)
    assert (info.layout, info.frames, info.height, info.coils) == ("radial", 1, 8, 2)
    with h5py.File(out) as f:
        assert f["kspace"].shape == (1, 1, 2, 4, 8)
        assert np.allclose(f["trajectory"][0, 0, 1, :, 0], (np.arange(8) - 4) * np.cos(np.pi / 4))
        assert np.allclose(f["kspace"][()], 1 + 1j)
