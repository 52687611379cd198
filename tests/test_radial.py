"""Radial (non-Cartesian) k-space: files with a trajectory are never read as Cartesian data."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from a2a_cli.cli import app
from a2a_cli.errors import InputError
from a2a_cli.io import inspect_file

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


def test_a2a_file_with_a_trajectory_is_never_read_as_cartesian(tmp_path):
    """The reported case: 8 frames, 8 coils, 8 spokes of 256 samples and a trajectory."""
    path = tmp_path / "radial.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", data=np.ones((8, 8, 8, 256), np.complex64))
        f.create_dataset("trajectory", data=np.zeros((8, 8, 256, 2), np.float32))
        f.attrs["coils"] = 8
    with pytest.raises(InputError, match="trajectory"):
        inspect_file(path)
    result = runner.invoke(app, ["train", str(path), "--out", str(tmp_path / "run"), "--steps", "1"])
    assert result.exit_code == 2 and "trajectory" in result.output
    assert not (tmp_path / "run").exists()
