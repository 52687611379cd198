"""Importers: CMRxRecon .mat (MATLAB v7.3), ISMRMRD raw data, fastMRI multi-coil; ``a2a convert``.

Every test writes its input in the published layout (MATLAB's reversed axes,
compound complex, a 512-byte user block; ISMRMRD acquisition tables with an XML
header) and checks that the importer gives the same tensors as the a2a file of the
same data.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from a2a_cli import data as a2a_data
from a2a_cli.errors import InputError
from a2a_cli.data import KspaceDataset, SplitOptions, inspect_file, read_mask, read_slice, write_a2a_file
from a2a_cli.simulate import ifft2c

NT, NZ, NY, NX = 4, 2, 12, 16  # frames, slices, phase-encode (ky), readout (kx)


# ----------------------------------------------------------------------------------
# writing files in the published layouts
# ----------------------------------------------------------------------------------
def _matlab_header() -> bytes:
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    head = text.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"
    return head.ljust(512, b"\x00")


def write_mat(path: Path, variables: dict[str, np.ndarray]) -> Path:
    """A MATLAB v7.3 file: HDF5 with a 512-byte user block; complex as a real/imag compound.

    Arrays are given in h5py order (MATLAB's axes reversed).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w", userblock_size=512, libver="earliest") as f:
        for name, value in variables.items():
            value = np.asarray(value)
            if np.iscomplexobj(value):
                data = np.empty(value.shape, dtype=[("real", "<f4"), ("imag", "<f4")])
                data["real"], data["imag"] = value.real, value.imag
                cls = "single"
            else:
                data, cls = value.astype(np.float64), "double"
            ds = f.create_dataset(name, data=data)
            ds.attrs.create("MATLAB_class", np.bytes_(cls))
    with open(path, "r+b") as fh:
        fh.write(_matlab_header())
    return path


def cine(nc: int, seed: int = 0) -> np.ndarray:
    """Fully sampled cine k-space, h5py order ``(nt, nz, nc, ny, nx)``."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((NT, NZ, nc, NY, NX)) + 1j * rng.standard_normal((NT, NZ, nc, NY, NX))).astype(np.complex64)


def line_mask(per_frame: bool, seed: int = 0) -> np.ndarray:
    """0/1 mask of ky lines, h5py order ``(ny, nx)`` or ``(nt, ny, nx)``: constant along nx."""
    rng = np.random.default_rng(seed)
    lines = rng.random((NT if per_frame else 1, NY)) < 0.4
    lines[:, NY // 2] = True
    m = np.repeat(lines[:, :, None], NX, axis=2).astype(np.float64)
    return m if per_frame else m[0]


def to_a2a(z: np.ndarray) -> np.ndarray:
    """``(..., ny, nx)`` -> ``(..., H=nx, W=ny)``."""
    return np.swapaxes(z, -1, -2)


def complex_of(t: torch.Tensor) -> np.ndarray:
    return (t[0, 0] + 1j * t[0, 1]).numpy()


def assert_same(a, b) -> None:
    assert a.kspace.shape == b.kspace.shape and a.mask.shape == b.mask.shape
    torch.testing.assert_close(a.kspace, b.kspace, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(a.mask, b.mask)
    assert (a.reference is None) == (b.reference is None)
    if a.reference is not None:
        torch.testing.assert_close(a.reference, b.reference, rtol=1e-4, atol=1e-5)


def a2a_twin(path: Path, full: np.ndarray, mask_tw: np.ndarray, with_reference: bool) -> Path:
    """The a2a file of single-coil cine ``full`` (h5py order, nc = 1) under line mask ``(nt|1, ny)``."""
    k = to_a2a(full[:, :, 0]).transpose(1, 0, 2, 3)  # (S, T, H, W)
    m = np.broadcast_to(mask_tw, (NT, NY)).astype(bool)
    ref = ifft2c(k) if with_reference else None
    return write_a2a_file(path, k * m[None, :, None, :], mask=m, reference=ref)


# ----------------------------------------------------------------------------------
# CMRxRecon
# ----------------------------------------------------------------------------------
def test_cmrxrecon_2023_mask_file_beside_and_full_sample_reference(tmp_path):
    full = cine(1)
    m = line_mask(per_frame=False)
    root = tmp_path / "MultiCoil" / "Cine" / "TrainingSet"
    data = write_mat(root / "AccFactor04" / "P001" / "cine_sax.mat", {"kspace_sub04": full * m})
    write_mat(root / "AccFactor04" / "P001" / "cine_sax_mask.mat", {"mask04": m})
    write_mat(root / "FullSample" / "P001" / "cine_sax.mat", {"kspace_full": full})
    assert a2a_data.detect(data) == "cmrxrecon"
    info = inspect_file(data)
    assert (info.layout, info.mode, info.n_slices, info.frame_shape) == ("cmrxrecon", "dynamic", NZ, (NT, NX, NY))
    assert info.has_reference and info.mask_source == "stored"
    twin = a2a_twin(tmp_path / "twin.h5", full, m[:, 0][None], with_reference=True)
    for s in range(NZ):
        assert_same(read_slice(data, s), read_slice(twin, s))
    np.testing.assert_array_equal(read_mask(data, slice_index=1), read_mask(twin, slice_index=1))


def test_cmrxrecon_2023_mask_in_data_file_multicoil(tmp_path):
    full = cine(3)
    m = line_mask(per_frame=False)
    data = write_mat(tmp_path / "cine_lax.mat", {"kspace_sub08": full * m, "mask08": m, "kspace_full": full})
    info = inspect_file(data)
    assert info.coils == 3 and info.frame_shape == (NT, NX, NY)
    sample = read_slice(data, 1)
    assert sample.kspace.shape == (1, 2, NT, 3, NX, NY) and sample.mask.shape == (1, 1, NT, NX, NY)
    expected = to_a2a(full[:, 1] * m)  # (T, N, H, W)
    np.testing.assert_allclose(complex_of(sample.kspace), expected, atol=1e-6)
    assert sample.reference.shape == (1, 2, NT, NX, NY)
    assert sample.coil_maps.shape == (1, 3, NX, NY) and sample.coil_maps.is_complex()
    assert sample.sensitivity in ("espirit", "lowres")
    # the reference is the coil combination sum conj(S) x / sum |S|^2 of the full data's coil images
    s = sample.coil_maps[0].numpy()
    images = ifft2c(to_a2a(full[:, 1]))
    combined = (np.conj(s)[None] * images).sum(axis=1) / np.maximum((np.abs(s) ** 2).sum(axis=0), 1e-30) * ((np.abs(s) ** 2).sum(axis=0) > 0)
    np.testing.assert_allclose(complex_of(sample.reference), combined, rtol=1e-3, atol=1e-4)
    # the a2a twin: kspace (S, T, N, H, W) with the attribute coils = N, the same maps stored
    k = np.stack([to_a2a(full[:, z] * m) for z in range(NZ)])
    first = read_slice(data, 0)
    maps = np.stack([first.coil_maps[0].numpy(), s])
    twin = write_a2a_file(tmp_path / "twin.h5", k, mask=np.broadcast_to(m[:, 0], (NZ, NT, NY)),
                          reference=np.stack([complex_of(first.reference), complex_of(sample.reference)]),
                          attrs={"coils": 3})
    with h5py.File(twin, "r+") as f:
        f.create_dataset("sensitivity_maps", data=maps)
    other = read_slice(twin, 1)
    assert_same(sample, other)
    torch.testing.assert_close(sample.coil_maps, other.coil_maps)


def test_cmrxrecon_2024_kus_with_mask_in_published_mask_folder(tmp_path):
    full = cine(1, seed=1)
    m = line_mask(per_frame=True, seed=1)
    val = tmp_path / "Cine" / "ValidationSet"
    data = write_mat(val / "UnderSample_Task2" / "P003" / "cine_sax_kus_ktUniform8.mat", {"kus": full * m[:, None, None]})
    write_mat(val / "Mask_Task2" / "P003" / "cine_sax_mask_ktUniform8.mat", {"mask": m})
    info = inspect_file(data)
    assert not info.has_reference and info.mask_source == "stored"
    twin = a2a_twin(tmp_path / "twin.h5", full, m[:, :, 0], with_reference=False)
    assert_same(read_slice(data, 0), read_slice(twin, 0))
    # the same mask file given explicitly
    assert_same(read_slice(data, 1, mask_file=val / "Mask_Task2" / "P003" / "cine_sax_mask_ktUniform8.mat"), read_slice(twin, 1))


def test_cmrxrecon_phase_encode_axis_follows_the_mask(tmp_path):
    """Lines constant along ny (not nx) make nx the phase-encode axis: no transpose."""
    full = cine(1, seed=2)
    lines = np.zeros(NX, bool)
    lines[[0, 3, NX // 2, 11]] = True
    m = np.broadcast_to(lines[None, :], (NY, NX)).astype(np.float64)
    data = write_mat(tmp_path / "cine_sax.mat", {"kspace_sub10": full * m, "mask10": m})
    info = inspect_file(data)
    assert info.frame_shape == (NT, NY, NX)
    sample = read_slice(data, 0)
    np.testing.assert_allclose(complex_of(sample.kspace), (full[:, 0, 0] * m), atol=1e-6)
    assert sample.mask[0, 0, 0, 0].numpy().astype(bool).tolist() == lines.tolist()


def test_cmrxrecon_full_sample_needs_a_mask_and_then_is_its_own_reference(tmp_path):
    full = cine(1, seed=3)
    data = write_mat(tmp_path / "FullSample" / "P001" / "cine_sax.mat", {"kspace_full": full})
    with pytest.raises(InputError, match="--mask") as e:
        inspect_file(data)
    assert str(data) in str(e.value)
    m = line_mask(per_frame=True, seed=3)
    mask_file = write_mat(tmp_path / "Mask_Task2" / "P001" / "cine_sax_mask_ktGaussian4.mat", {"mask": m})
    twin = a2a_twin(tmp_path / "twin.h5", full, m[:, :, 0], with_reference=True)
    ds = KspaceDataset([data], mask_file=mask_file)
    assert len(ds) == NZ and ds.shapes[0] == (NT, NX, NY)
    assert_same(ds.read(1), read_slice(twin, 1))
    item = ds[0]
    torch.testing.assert_close(item["kspace"], read_slice(twin, 0).kspace[0])


def test_cmrxrecon_without_any_mask_uses_the_nonzero_samples(tmp_path):
    full = cine(1, seed=4)
    m = line_mask(per_frame=True, seed=4)
    data = write_mat(tmp_path / "cine_sax_kus_ktUniform4.mat", {"kus": full * m[:, None, None]})
    info = inspect_file(data)
    assert info.mask_source == "derived" and info.frame_shape == (NT, NX, NY)
    twin = a2a_twin(tmp_path / "twin.h5", full, m[:, :, 0], with_reference=False)
    assert_same(read_slice(data, 1), read_slice(twin, 1))


@pytest.mark.parametrize(
    "variables, problem",
    [
        ({"kspace_sub04": cine(1)[:, 0]}, "expected 5 axes"),
        ({"kspace_sub04": cine(1), "mask04": np.ones((NY + 1, NX))}, "does not fit"),
        ({"kspace_sub04": cine(1), "mask04": np.full((NY, NX), 2.0)}, "other than 0 and 1"),
        ({"kspace_sub04": cine(1), "kspace_sub08": cine(1)}, "several undersampled"),
    ],
)
def test_cmrxrecon_bad_files_name_the_file_and_problem(tmp_path, variables, problem):
    data = write_mat(tmp_path / "cine_sax.mat", variables)
    with pytest.raises(InputError, match=problem) as e:
        inspect_file(data)
    assert str(data) in str(e.value)


def test_mask_option_is_refused_for_files_with_their_own_mask(tmp_path):
    k = np.ones((NT, 8, 8), np.complex64)
    a2a = write_a2a_file(tmp_path / "a.h5", k)
    with pytest.raises(InputError, match="only for CMRxRecon"):
        inspect_file(a2a, mask_file=tmp_path / "m.mat")


# ----------------------------------------------------------------------------------
# ISMRMRD
# ----------------------------------------------------------------------------------
ISMRMRD_XML = """<?xml version="1.0"?>
<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD">
  <encoding>
    <encodedSpace><matrixSize><x>{hx}</x><y>{wy}</y><z>1</z></matrixSize></encodedSpace>
    <reconSpace><matrixSize><x>{rx}</x><y>{wy}</y><z>1</z></matrixSize></reconSpace>
    <encodingLimits>
      <kspace_encoding_step_1><minimum>0</minimum><maximum>{ymax}</maximum><center>{yc}</center></kspace_encoding_step_1>
    </encodingLimits>
    <trajectory>cartesian</trajectory>
  </encoding>
</ismrmrdHeader>"""


def write_ismrmrd(path: Path, kspace: np.ndarray, lines: np.ndarray, rx: int, ky_centre: int, noise: bool = True) -> Path:
    """ISMRMRD raw file of k-space ``(S, T, N, HX, W)`` sampled on lines ``(S, T, W)`` (shuffled order)."""
    s_n, t_n, n, hx, w = kspace.shape
    idx_t = np.dtype([(name, "<u2") for name in ("kspace_encode_step_1", "kspace_encode_step_2", "average", "slice",
                                                  "contrast", "phase", "repetition", "set", "segment")] + [("user", "<u2", (8,))])
    head_t = np.dtype([("version", "<u2"), ("flags", "<u8"), ("number_of_samples", "<u2"), ("available_channels", "<u2"),
                       ("active_channels", "<u2"), ("center_sample", "<u2"), ("idx", idx_t)])
    vf = h5py.vlen_dtype(np.float32)
    acq_t = np.dtype([("head", head_t), ("traj", vf), ("data", vf)])
    rows = []
    if noise:
        rows.append((1 << 18, 0, 0, 0, np.ones(n * hx * 2, np.float32) * 99))
    for s in range(s_n):
        for t in range(t_n):
            for col in np.flatnonzero(lines[s, t]):
                data = np.ascontiguousarray(kspace[s, t, :, :, col]).view(np.float32).ravel()  # (N, HX) complex -> interleaved
                rows.append((0, s, t, col - w // 2 + ky_centre, data))
    order = np.random.default_rng(0).permutation(len(rows))
    table = np.zeros(len(rows), acq_t)
    for i, j in enumerate(order):
        flags, s, t, ky, data = rows[j]
        h = table[i]["head"]
        h["flags"], h["number_of_samples"], h["active_channels"], h["available_channels"] = flags, hx, n, n
        h["center_sample"] = hx // 2
        h["idx"]["slice"], h["idx"]["phase"], h["idx"]["kspace_encode_step_1"] = s, t, ky
        table[i]["data"] = data
        table[i]["traj"] = np.zeros(0, np.float32)
    xml = ISMRMRD_XML.format(hx=hx, wy=w, rx=rx, ymax=w - 1, yc=ky_centre)
    with h5py.File(path, "w") as f:
        g = f.create_group("dataset")
        g.create_dataset("data", data=table)
        g.create_dataset("xml", data=np.array([xml], dtype=h5py.string_dtype()))
    return path


def _ismrmrd_case(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    s_n, t_n, hx, w = 2, 4, 16, 10
    k = (rng.standard_normal((s_n, t_n, n, hx, w)) + 1j * rng.standard_normal((s_n, t_n, n, hx, w))).astype(np.complex64)
    lines = rng.random((s_n, t_n, w)) < 0.5
    lines[..., w // 2] = True
    return k, lines


def _crop_readout(k: np.ndarray, rx: int) -> np.ndarray:
    """Centred crop of the readout (axis -2) to ``rx`` in image space."""
    hx = k.shape[-2]
    img = np.fft.fftshift(np.fft.ifft(np.fft.ifftshift(k, axes=-2), axis=-2, norm="ortho"), axes=-2)
    img = img[..., hx // 2 - rx // 2: hx // 2 - rx // 2 + rx, :]
    return np.fft.fftshift(np.fft.fft(np.fft.ifftshift(img, axes=-2), axis=-2, norm="ortho"), axes=-2)


def test_ismrmrd_single_coil_matches_a2a_with_readout_crop_and_noise_skipped(tmp_path):
    k, lines = _ismrmrd_case(1)
    lines[..., :2] = False  # partial Fourier: ky 0..7 with the centre at ky 3 fill columns 2..9
    raw = write_ismrmrd(tmp_path / "ocmr.h5", k, lines, rx=8, ky_centre=3)
    assert a2a_data.detect(raw) == "ismrmrd"
    info = inspect_file(raw)
    assert (info.layout, info.n_slices, info.frame_shape, info.coils) == ("ismrmrd", 2, (4, 8, 10), None)
    expected = _crop_readout(k[:, :, 0], 8) * lines[:, :, None, :]
    twin = write_a2a_file(tmp_path / "twin.h5", expected, mask=lines)
    for s in range(2):
        assert_same(read_slice(raw, s), read_slice(twin, s))
    np.testing.assert_array_equal(read_mask(raw, slice_index=1), read_mask(twin, slice_index=1))


def test_ismrmrd_multicoil_tensors(tmp_path):
    k, lines = _ismrmrd_case(3, seed=1)
    raw = write_ismrmrd(tmp_path / "ocmr.h5", k, lines, rx=16, ky_centre=5, noise=False)
    sample = read_slice(raw, 1)
    assert sample.kspace.shape == (1, 2, 4, 3, 16, 10) and sample.reference is None
    assert sample.coil_maps.shape == (1, 3, 16, 10)
    np.testing.assert_allclose(complex_of(sample.kspace), k[1] * lines[1][:, None, None, :], atol=1e-6)
    np.testing.assert_array_equal(sample.mask[0, 0, :, 0].numpy().astype(bool), lines[1])


def test_ismrmrd_bad_header_is_an_input_error(tmp_path):
    k, lines = _ismrmrd_case(1)
    raw = write_ismrmrd(tmp_path / "ocmr.h5", k, lines, rx=16, ky_centre=5)
    with h5py.File(raw, "r+") as f:
        del f["dataset/xml"]
        f["dataset"].create_dataset("xml", data=np.array(["<ismrmrdHeader><broken"], dtype=h5py.string_dtype()))
    with pytest.raises(InputError, match="not valid XML") as e:
        inspect_file(raw)
    assert str(raw) in str(e.value)


# ----------------------------------------------------------------------------------
# fastMRI multi-coil
# ----------------------------------------------------------------------------------
def write_fastmri_multicoil(path: Path, kspace: np.ndarray, mask: np.ndarray | None = None) -> Path:
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", data=kspace.astype(np.complex64))
        f.create_dataset("ismrmrd_header", data=np.bytes_("<ismrmrdHeader/>"))
        if mask is not None:
            f.create_dataset("mask", data=mask.astype(np.float32))
        f.attrs["acquisition"] = "CORPD_FBK"
    return path


def test_fastmri_multicoil_splits_like_single_coil(tmp_path):
    rng = np.random.default_rng(5)
    s_n, h, w = 2, 8, 12
    k = (rng.standard_normal((s_n, 1, h, w)) + 1j * rng.standard_normal((s_n, 1, h, w))).astype(np.complex64)
    lines = np.ones(w, bool)
    lines[[1, 4, 9]] = False
    data = write_fastmri_multicoil(tmp_path / "file1000.h5", k * lines, mask=lines)
    assert a2a_data.detect(data) == "fastmri"
    split = SplitOptions(frames=3, assignment="random", centre_lines=2, seed=1)
    assert inspect_file(data).frame_shape == (1, h, w)  # without the frames option: one frame per slice
    info = inspect_file(data, split=split)
    assert (info.layout, info.mode, info.frame_shape) == ("fastmri", "sequential", (3, h, w))
    single = write_a2a_file(tmp_path / "single.h5", k[:, 0] * lines, mask=lines, acquisition=None)
    for s in range(s_n):
        assert_same(read_slice(data, s, split=split), read_slice(single, s, split=split))

    k3 = np.repeat(k, 3, axis=1) * np.arange(1, 4)[None, :, None, None]
    multi = write_fastmri_multicoil(tmp_path / "file1001.h5", k3)
    sample = read_slice(multi, 0, split=split)
    assert sample.kspace.shape == (1, 2, 3, 3, h, w)
    frames = sample.mask[0, 0].numpy().astype(bool)
    assert not (frames.sum(axis=0) == 0).any()  # derived mask: every sample in some frame
    np.testing.assert_allclose(complex_of(sample.kspace), k3[0][None] * frames[:, None], atol=1e-6)


# ----------------------------------------------------------------------------------
# conversion
# ----------------------------------------------------------------------------------
def undersampled_cine(tmp_path, coils: int, seed: int):
    """A CMRxRecon undersampled cine (``kus`` and ``kspace_full``) with its mask file beside it."""
    full = cine(coils, seed=seed)
    m = line_mask(per_frame=True, seed=seed)
    data = write_mat(tmp_path / "cine_sax_kus_ktUniform8.mat", {"kus": full * m[:, None, None], "kspace_full": full})
    write_mat(tmp_path / "cine_sax_mask_ktUniform8.mat", {"mask": m})
    return data


def test_convert_writes_an_equivalent_a2a_file(tmp_path):
    data = undersampled_cine(tmp_path, coils=1, seed=6)
    out = a2a_data.convert(data, tmp_path / "out.h5")
    assert a2a_data.detect(out) == "a2a"
    with h5py.File(out) as f:
        assert f["kspace"].shape == (NZ, NT, NX, NY) and f.attrs["source_format"] == "cmrxrecon"
    for s in range(NZ):
        assert_same(read_slice(out, s), read_slice(data, s))
    with pytest.raises(InputError, match="already exists"):
        a2a_data.convert(data, out)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_cli_convert_and_mask_option(tmp_path):
    from typer.testing import CliRunner

    from a2a_cli.cli import app

    full = cine(1, seed=7)
    m = line_mask(per_frame=True, seed=7)
    data = write_mat(tmp_path / "cine_sax.mat", {"kspace_full": full})
    mask_file = write_mat(tmp_path / "masks" / "cine_sax_mask_ktGaussian8.mat", {"mask": m})
    runner = CliRunner()
    res = runner.invoke(app, ["inspect-mask", str(data), "--json"])
    assert res.exit_code == 2 and "--mask" in res.output
    res = runner.invoke(app, ["inspect-mask", str(data), "--mask", str(mask_file), "--json"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["convert", str(data), str(tmp_path / "c.h5"), "--mask", str(mask_file)])
    assert res.exit_code == 0, res.output
    assert_same(read_slice(tmp_path / "c.h5", 1), read_slice(data, 1, mask_file=mask_file))


def test_convert_multicoil_stores_coil_axis_and_maps(tmp_path):
    data = undersampled_cine(tmp_path, coils=3, seed=8)
    out = a2a_data.convert(data, tmp_path / "out.h5")
    with h5py.File(out) as f:
        assert f["kspace"].shape == (NZ, NT, 3, NX, NY) and f.attrs["coils"] == 3
        assert f["sensitivity_maps"].shape == (NZ, 3, NX, NY)
    assert inspect_file(out).sensitivity == "stored"
    a, b = read_slice(data, 1), read_slice(out, 1)
    assert_same(a, b)
    torch.testing.assert_close(a.coil_maps, b.coil_maps)
