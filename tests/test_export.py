"""Export of reconstructions (NIfTI, DICOM, BART, GIF, PNG, MP4) and the geometry that travels into them."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from cli_runner import invoke
from a2a_cli import export as ex
from a2a_cli import data as a2a_data
from a2a_cli.cli import app
from a2a_cli.geometry import read_geometry
from a2a_cli.data import ReconstructionWriter
from a2a_cli.simulate import write_case

try:  # the optional extra (pip install 'a2a-cli[export]'); scripts/setup.sh installs it
    import nibabel as nib
except ImportError:
    nib = None
try:
    import pydicom
except ImportError:
    pydicom = None
from PIL import Image as PIL

needs_nibabel = pytest.mark.skipif(nib is None, reason="nibabel (the export extra) is not installed")
needs_pydicom = pytest.mark.skipif(pydicom is None, reason="pydicom (the export extra) is not installed")

runner = CliRunner()
S, T, H, W = 2, 5, 6, 8
SPACING, FRAME_TIME = [1.5, 2.0], 0.04



def lines_of(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def make_recon(path: Path, mode: str = "dynamic", attrs: dict | None = None, seed: int = 0) -> np.ndarray:
    """A small reconstruction file written by the project's own writer; returns its complex data."""
    rng = np.random.default_rng(seed)
    shape = (S, T, H, W) if mode == "dynamic" else (S, H, W)
    x = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    base = {"mode": mode, "network": "unrolled"}
    base.update({"pixel_spacing": SPACING, "frame_time": FRAME_TIME} if attrs is None else attrs)
    with ReconstructionWriter(path, S, shape[1:], base, extra=("zero_filled",)) as w:
        for s in range(S):
            w.write(s, x[s])
            w.write(s, x[s], name="zero_filled")
    return x


@pytest.fixture
def recon(tmp_path) -> tuple[Path, np.ndarray]:
    path = tmp_path / "scan_recon.h5"
    return path, make_recon(path)


def hidden_left(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


# ----------------------------------------------------------------------------------
# NIfTI
# ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["out.nii", "out.nii.gz"])
@needs_nibabel
def test_nifti_round_trip_values_shape_zooms(recon, tmp_path, name):
    path, x = recon
    code, text = invoke(["export", path, tmp_path / name])
    assert code == 0, text
    img = nib.load(tmp_path / name)
    assert img.shape == (W, H, S, T)
    np.testing.assert_allclose(img.get_fdata(), np.abs(x).transpose(3, 2, 0, 1), rtol=1e-6)
    assert img.get_data_dtype() == np.float32
    # columns, rows, slices (1 mm: unknown, with a note), frame time in s
    np.testing.assert_allclose(img.header.get_zooms(), [2.0, 1.5, 1.0, FRAME_TIME], rtol=1e-6)
    assert img.header.get_xyzt_units() == ("mm", "sec")
    assert 0 < img.header["cal_max"] <= np.abs(x).max()  # the display range
    assert "slice thickness unknown" in text
    assert hidden_left(tmp_path) == []


@needs_nibabel
def test_nifti_complex_slice_and_frames(recon, tmp_path):
    path, x = recon
    code, text = invoke(["export", path, tmp_path / "c.nii", "--complex", "--slice", "1", "--frames", "1:3"])
    assert code == 0, text
    img = nib.load(tmp_path / "c.nii")
    assert img.get_data_dtype() == np.complex64 and img.shape == (W, H, 1, 2)
    np.testing.assert_array_equal(np.asanyarray(img.dataobj), x[1:2, 1:3].transpose(3, 2, 0, 1))


@needs_nibabel
def test_nifti_unknown_geometry_is_1mm_1s_with_notes(tmp_path):
    path = tmp_path / "g_recon.h5"
    make_recon(path, attrs={})
    code, text = invoke(["export", path, tmp_path / "g.nii"])
    assert code == 0, text
    assert nib.load(tmp_path / "g.nii").header.get_zooms() == (1.0, 1.0, 1.0, 1.0)
    assert "pixel spacing unknown" in text and "frame time unknown" in text


@needs_nibabel
def test_nifti_sequential_is_3d(tmp_path):
    path = tmp_path / "seq_recon.h5"
    x = make_recon(path, mode="sequential")
    code, text = invoke(["export", path, tmp_path / "s.nii.gz"])
    assert code == 0, text
    img = nib.load(tmp_path / "s.nii.gz")
    assert img.shape == (W, H, S)
    np.testing.assert_allclose(img.get_fdata(), np.abs(x).transpose(2, 1, 0), rtol=1e-6)


# ----------------------------------------------------------------------------------
# DICOM
# ----------------------------------------------------------------------------------
@needs_pydicom
def test_dicom_round_trip(recon, tmp_path):
    path, x = recon
    out = tmp_path / "series"
    code, text = invoke(["export", path, out, "--format", "dicom"])
    assert code == 0, text
    files = sorted(out.iterdir())
    assert len(files) == S * T and hidden_left(tmp_path) == []
    mag = np.abs(x)
    slope = None
    seen = set()
    studies, series, sops = set(), set(), set()
    for p in files:
        ds = pydicom.dcmread(p)
        assert ds.SOPClassUID == pydicom.uid.MRImageStorage and ds.Modality == "MR"
        assert (ds.Rows, ds.Columns) == (H, W) and ds.pixel_array.shape == (H, W)
        assert [float(v) for v in ds.PixelSpacing] == SPACING
        n = int(ds.InstanceNumber) - 1
        s, t = divmod(n, T)
        seen.add(n)
        assert p.name == f"slice{s:03d}_frame{t:04d}.dcm"
        assert float(ds.SliceLocation) == pytest.approx(s * 1.0)
        assert float(ds.TriggerTime) == pytest.approx(t * FRAME_TIME * 1000)
        slope = float(ds.RescaleSlope)
        values = pydicom.pixels.apply_rescale(ds.pixel_array, ds)
        np.testing.assert_allclose(values, mag[s, t], atol=slope / 2 + 1e-6 * mag.max())
        assert float(ds.WindowWidth) > 0
        studies.add(ds.StudyInstanceUID)
        series.add(ds.SeriesInstanceUID)
        sops.add(ds.SOPInstanceUID)
    assert seen == set(range(S * T))
    assert len(studies) == 1 and len(series) == 1 and len(sops) == S * T
    assert slope == pytest.approx(mag.max() / 65535, rel=1e-6)  # the full 16-bit range is used


@needs_pydicom
def test_dicom_refuses_complex_and_existing_folder(recon, tmp_path):
    path, _ = recon
    out = tmp_path / "series"
    code, text = invoke(["export", path, out, "--format", "dicom", "--complex"])
    assert code == 2 and len(lines_of(text)) == 1 and "magnitude" in text and not out.exists()
    assert invoke(["export", path, out, "--format", "dicom"])[0] == 0
    first = pydicom.dcmread(out / "slice000_frame0000.dcm").SeriesInstanceUID
    code, text = invoke(["export", path, out, "--format", "dicom"])
    assert code == 2 and "already exists" in text and len(lines_of(text)) == 1
    assert pydicom.dcmread(out / "slice000_frame0000.dcm").SeriesInstanceUID == first
    code, text = invoke(["export", path, out, "--format", "dicom", "--overwrite"])
    assert code == 0, text
    assert pydicom.dcmread(out / "slice000_frame0000.dcm").SeriesInstanceUID != first
    assert len(list(out.iterdir())) == S * T and hidden_left(tmp_path) == []
    # a folder holding anything but .dcm files is never replaced
    (out / "notes.txt").write_text("keep")
    code, text = invoke(["export", path, out, "--format", "dicom", "--overwrite"])
    assert code == 2 and (out / "notes.txt").read_text() == "keep"


@needs_pydicom
def test_dicom_folder_complete_or_absent(recon, tmp_path, monkeypatch):
    path, _ = recon
    out = tmp_path / "series"
    real = pydicom.dataset.Dataset.save_as
    calls = []

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise OSError("disk full")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pydicom.dataset.Dataset, "save_as", failing)
    with pytest.raises(OSError):
        ex.export(path, out, fmt="dicom")
    assert not out.exists() and hidden_left(tmp_path) == []


# ----------------------------------------------------------------------------------
# BART
# ----------------------------------------------------------------------------------
def bart_dims(x: np.ndarray) -> list[int]:
    s, t, h, w = x.shape
    dims = [1] * 16
    dims[0], dims[1], dims[10], dims[13] = h, w, t, s
    return dims


def test_bart_round_trip_bit_exact(recon, tmp_path):
    path, x = recon
    code, text = invoke(["export", path, tmp_path / "r.cfl"])
    assert code == 0, text
    hdr = (tmp_path / "r.hdr").read_text().splitlines()
    assert hdr[0] == "# Dimensions" and [int(v) for v in hdr[1].split()] == bart_dims(x)
    back = ex.read_cfl(tmp_path / "r")
    assert back.dtype == np.complex64 and list(back.shape) == bart_dims(x)
    got = back.reshape(H, W, T, S, order="A").transpose(3, 2, 0, 1)  # dims 0, 1, 10, 13
    assert np.array_equal(got.view(np.uint64), x.view(np.uint64))  # bit for bit
    # the file is column-major: the first H values are column 0 of frame 0, slice 0
    raw = np.fromfile(tmp_path / "r.cfl", dtype="<c8")
    assert raw.size == x.size and np.array_equal(raw[:H], x[0, 0, :, 0])
    # --magnitude: |x| with zero imaginary part
    assert invoke(["export", path, tmp_path / "m.hdr", "--magnitude"])[0] == 0
    mag = ex.read_cfl(tmp_path / "m.cfl").reshape(H, W, T, S, order="A").transpose(3, 2, 0, 1)
    np.testing.assert_array_equal(mag, np.abs(x).astype(np.complex64))


@pytest.mark.skipif(shutil.which("bart") is None, reason="BART is not installed")
def test_bart_reads_the_export(recon, tmp_path):
    path, x = recon
    assert invoke(["export", path, tmp_path / "r.cfl"])[0] == 0
    meta = subprocess.run(["bart", "show", "-m", str(tmp_path / "r")], capture_output=True, text=True, check=True).stdout
    dims_line = next(line for line in meta.splitlines() if line.startswith("AoD:"))
    assert [int(v) for v in dims_line.split()[1:]] == bart_dims(x)
    # BART's own reader and writer: pick slice 1, frame 3 and read what BART wrote
    subprocess.run(["bart", "slice", "13", "1", "10", "3", str(tmp_path / "r"), str(tmp_path / "one")], check=True,
                   capture_output=True)
    one = ex.read_cfl(tmp_path / "one")
    assert np.array_equal(one.reshape(H, W, order="F"), x[1, 3])
    # and its text output: one line per column (dim 1), H values each
    text = subprocess.run(["bart", "show", str(tmp_path / "one")], capture_output=True, text=True, check=True).stdout
    rows = [[complex(v.replace("i", "j")) for v in line.split()] for line in text.splitlines() if line.strip()]
    np.testing.assert_allclose(np.array(rows).T, x[1, 3], rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------------
# GIF, PNG, MP4
# ----------------------------------------------------------------------------------
def test_gif_has_one_picture_per_frame(recon, tmp_path):
    path, _ = recon
    code, text = invoke(["export", path, tmp_path / "cine.gif", "--slice", "1"])
    assert code == 0, text
    with PIL.open(tmp_path / "cine.gif") as im:
        assert im.n_frames == T and im.size == (W, H)
        assert im.info["duration"] == 40  # the frame time, in ms
    code, text = invoke(["export", path, tmp_path / "part.gif", "--frames", "1:4"])
    assert code == 0, text
    with PIL.open(tmp_path / "part.gif") as im:
        assert im.n_frames == 3


def test_png_mosaic_rows_are_slices_columns_frames(tmp_path):
    path = tmp_path / "m_recon.h5"
    with ReconstructionWriter(path, S, (T, H, W), {"mode": "dynamic"}) as w:
        for s in range(S):
            w.write(s, np.stack([np.full((H, W), 1 + s * T + t, np.complex64) for t in range(T)]))
    code, text = invoke(["export", path, tmp_path / "m.png"])
    assert code == 0, text
    with PIL.open(tmp_path / "m.png") as im:
        assert im.size == (T * W, S * H)
        a = np.asarray(im).astype(float)
    tiles = a.reshape(S, H, T, W).mean(axis=(1, 3)).ravel()
    assert np.all(np.diff(tiles) > 0)  # grey rises with 1 + s * T + t: row s, column t


def test_mp4_needs_an_encoder(recon, tmp_path):
    path, _ = recon
    code, text = invoke(["export", path, tmp_path / "cine.mp4"])
    if ex._ffmpeg() is None:
        assert code == 2 and len(lines_of(text)) == 1 and "ffmpeg" in text
        assert not (tmp_path / "cine.mp4").exists()
    else:
        assert code == 0, text
        assert (tmp_path / "cine.mp4").stat().st_size > 0


# ----------------------------------------------------------------------------------
# refusals
# ----------------------------------------------------------------------------------
def test_unknown_suffix_is_refused(recon, tmp_path):
    path, _ = recon
    code, text = invoke(["export", path, tmp_path / "out.jpg"])
    assert code == 2 and len(lines_of(text)) == 1
    assert "unknown export format '.jpg'" in text and "Traceback" not in text
    assert list(tmp_path.iterdir()) == [path]


def test_non_reconstruction_files_are_refused(tmp_path):
    kspace = write_case(tmp_path / "k.h5", slices=1, frames=4, height=8, width=8)
    text_file = tmp_path / "notes_recon.h5"
    text_file.write_text("not hdf5")
    for source in (kspace, text_file, tmp_path / "missing_recon.h5"):
        code, text = invoke(["export", source, tmp_path / "o.png"])
        assert code == 2 and len(lines_of(text)) == 1, text
        assert str(source) in text
    assert "not an a2a reconstruction" in invoke(["export", kspace, tmp_path / "o.png"])[1]
    assert not (tmp_path / "o.png").exists()


def test_bad_options_are_one_line(recon, tmp_path):
    path, _ = recon
    for args, words in ((["--slice", "7"], "--slice 7"), (["--frames", "4:9"], "--frames"),
                        (["--frames", "x"], "--frames"), (["--complex"], "--complex")):
        code, text = invoke(["export", path, tmp_path / "o.gif", *args])
        assert code == 2 and len(lines_of(text)) == 1 and words in text, text
    assert not (tmp_path / "o.gif").exists()


@needs_nibabel
def test_overwrite_is_respected(recon, tmp_path):
    path, x = recon
    out = tmp_path / "o.nii.gz"
    out.write_bytes(b"old")
    code, text = invoke(["export", path, out])
    assert code == 2 and "already exists" in text and out.read_bytes() == b"old"
    code, text = invoke(["export", path, out, "--overwrite"])
    assert code == 0, text
    assert nib.load(out).shape == (W, H, S, T)
    (tmp_path / "b.cfl").write_bytes(b"old")
    code, text = invoke(["export", path, tmp_path / "b.cfl"])
    assert code == 2 and (tmp_path / "b.cfl").read_bytes() == b"old" and not (tmp_path / "b.hdr").exists()
    code, text = invoke(["export", path, path, "--format", "nifti", "--overwrite"])
    assert code == 2 and "overwrite the input" in text


@pytest.mark.parametrize("fmt, out", [("nifti", "o.nii"), ("dicom", "series")])
def test_missing_extra_names_it(recon, tmp_path, monkeypatch, fmt, out):
    path, _ = recon
    monkeypatch.setitem(sys.modules, "nibabel" if fmt == "nifti" else "pydicom", None)  # import fails
    code, text = invoke(["export", path, tmp_path / out, "--format", fmt])
    assert code == 2 and len(lines_of(text)) == 1, text
    assert "pip install 'a2a-cli[export]'" in text
    assert not (tmp_path / out).exists()


@needs_nibabel
def test_json_summary(recon, tmp_path):
    path, _ = recon
    result = runner.invoke(app, ["export", str(path), str(tmp_path / "o.nii"), "--json"])
    assert result.exit_code == 0
    summary = json.loads(result.stdout)
    assert summary["format"] == "nifti" and summary["shape"] == [W, H, S, T]
    assert summary["pixel_spacing"] == SPACING and summary["frame_time"] == FRAME_TIME


# ----------------------------------------------------------------------------------
# geometry: from the input into _recon.h5, and reconstruct --export
# ----------------------------------------------------------------------------------
def test_ismrmrd_header_geometry_and_convert_carry_it(tmp_path):
    from test_formats import _ismrmrd_case, write_ismrmrd

    k, lines = _ismrmrd_case(1)
    raw = write_ismrmrd(tmp_path / "ocmr.h5", k, lines, rx=8, ky_centre=5)
    xml = """<?xml version="1.0"?>
<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD">
  <encoding>
    <encodedSpace><matrixSize><x>16</x><y>10</y><z>1</z></matrixSize>
      <fieldOfView_mm><x>400</x><y>150</y><z>6</z></fieldOfView_mm></encodedSpace>
    <reconSpace><matrixSize><x>8</x><y>10</y><z>1</z></matrixSize></reconSpace>
    <encodingLimits><kspace_encoding_step_1><center>5</center></kspace_encoding_step_1></encodingLimits>
  </encoding>
  <sequenceParameters><TR>42.5</TR></sequenceParameters>
</ismrmrdHeader>"""
    with h5py.File(raw, "a") as f:
        del f["dataset/xml"]
        f["dataset"].create_dataset("xml", data=np.array([xml], dtype=h5py.string_dtype()))
    geo = read_geometry(raw)
    assert geo == {"pixel_spacing": [25.0, 15.0], "slice_thickness": 6.0, "frame_time": 0.0425}
    out = a2a_data.convert(raw, tmp_path / "a2a.h5")
    assert read_geometry(out) == geo


@needs_nibabel
def test_bad_geometry_attribute_is_an_input_error(tmp_path):
    path = tmp_path / "b_recon.h5"
    make_recon(path, attrs={"pixel_spacing": [1.0, -2.0]})
    code, text = invoke(["export", path, tmp_path / "o.nii"])
    assert code == 2 and len(lines_of(text)) == 1 and "pixel_spacing" in text


@pytest.mark.slow
@needs_nibabel
@needs_pydicom
def test_reconstruct_export_shortcut_carries_geometry(tmp_path):
    data = write_case(tmp_path / "dyn.h5", slices=1, frames=4, height=16, width=16, seed=1)
    with h5py.File(data, "a") as f:
        f.attrs["pixel_spacing"] = [1.25, 1.75]
        f.attrs["slice_thickness"] = 8.0
        f.attrs["frame_time"] = 0.05
    run = tmp_path / "run"
    small = ["--model-option", "channels=4", "--model-option", "depth=2", "--device", "cpu"]
    code, text = invoke(["train", data, "--out", run, "--steps", "2", *small])
    assert code == 0, text
    out = tmp_path / "recon"
    code, text = invoke(["reconstruct", run / "best.pt", data, "--out", out, "--export", ".nii.gz", "--device", "cpu"])
    assert code == 0, text
    with h5py.File(out / "dyn_recon.h5") as f:
        x = f["reconstruction"][()]
        assert list(f.attrs["pixel_spacing"]) == [1.25, 1.75] and f.attrs["frame_time"] == 0.05
    img = nib.load(out / "dyn_recon.nii.gz")
    np.testing.assert_allclose(img.get_fdata(), np.abs(x).transpose(3, 2, 0, 1), rtol=1e-6)
    np.testing.assert_allclose(img.header.get_zooms(), [1.75, 1.25, 8.0, 0.05], rtol=1e-6)
    # the export is checked before any work: it exists, so nothing is reconstructed again
    before = (out / "dyn_recon.h5").stat().st_mtime_ns
    code, text = invoke(["reconstruct", run / "best.pt", data, "--out", out, "--export", ".nii.gz", "--device", "cpu"])
    assert code == 2 and len(lines_of(text)) == 1
    assert (out / "dyn_recon.h5").stat().st_mtime_ns == before
    code, text = invoke(["reconstruct", run / "best.pt", data, "--out", out, "--export", ".jpg", "--overwrite"])
    assert code == 2 and len(lines_of(text)) == 1 and "--export" in text
    code, text = invoke(["reconstruct", run / "best.pt", data, "--out", out, "--export", "dicom", "--overwrite",
                         "--device", "cpu"])
    assert code == 0, text
    assert len(list((out / "dyn_recon_dicom").glob("*.dcm"))) == 4


def test_geometry_from_fastmri_header_and_attributes_win(tmp_path):
    xml = ("<ismrmrdHeader><encoding><encodedSpace><matrixSize><x>640</x><y>368</y><z>1</z></matrixSize>"
           "<fieldOfView_mm><x>280</x><y>161</y><z>4.5</z></fieldOfView_mm></encodedSpace></encoding></ismrmrdHeader>")
    path = tmp_path / "fastmri.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("ismrmrd_header", data=np.bytes_(xml))
    assert read_geometry(path) == {"pixel_spacing": [280 / 640, 161 / 368], "slice_thickness": 4.5}
    with h5py.File(path, "a") as f:
        f.attrs["pixel_spacing"] = 0.5  # one value: square pixels; the attribute wins over the header
    assert read_geometry(path) == {"pixel_spacing": [0.5, 0.5], "slice_thickness": 4.5}
    with h5py.File(path, "a") as f:
        del f["ismrmrd_header"]
        f.create_dataset("ismrmrd_header", data=np.bytes_("<ismrmrdHeader><broken"))
    assert read_geometry(path) == {"pixel_spacing": [0.5, 0.5]}  # a broken header adds nothing
