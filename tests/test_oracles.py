"""a2a against independent implementations: scikit-image's SSIM, files written by the
``ismrmrd`` package, and sigpy's ESPIRiT.

Each oracle is a test dependency (``pip install -e '.[test]'``); a missing one is an
error, never a skip.
"""
from __future__ import annotations

import json

import ismrmrd
import ismrmrd.xsd as xsd
import numpy as np
import pytest
import sigpy.mri.app as sigpy_app
import torch
from skimage.metrics import structural_similarity
from typer.testing import CliRunner

from a2a_cli import metrics
from a2a_cli.cli import app
from a2a_cli.coils import estimate_maps
from a2a_cli.data import inspect_file, read_slice
from a2a_cli.metrics import ssim
from a2a_cli.physics import fft2c, to_complex

# -- SSIM against scikit-image ----------------------------------------------------------------------


def skimage_ssim(reference: np.ndarray, estimate: np.ndarray, data_range: float | None = None) -> float:
    """scikit-image's SSIM with the settings of :func:`a2a_cli.metrics.ssim`, frame by frame, averaged.

    Ours: 11x11 Gaussian window of sigma 1.5, K1 0.01, K2 0.03, population (co)variances,
    mean over the valid window positions, data range max |reference| over all frames.
    scikit-image with ``gaussian_weights`` filters with an 11-tap Gaussian (truncated at
    3.5 sigma) and averages after cropping the 5-pixel border: the same valid positions.
    """
    ref, est = np.abs(reference), np.abs(estimate)
    peak = float(ref.max()) if data_range is None else data_range
    frames = zip(ref.reshape(-1, *ref.shape[-2:]), est.reshape(-1, *est.shape[-2:]))
    return float(np.mean([
        structural_similarity(r, e, data_range=peak, gaussian_weights=True, sigma=metrics.WINDOW_SIGMA,
                              use_sample_covariance=False, K1=metrics.K1, K2=metrics.K2)
        for r, e in frames]))


def _phantom(t: int, h: int, w: int) -> np.ndarray:
    """A moving ellipse with an inner disc on a gradient, complex with a smooth phase, ``(T, H, W)``."""
    y, x = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    out = []
    for k in range(t):
        shift = 0.1 * k
        body = ((x - shift) / 0.7) ** 2 + (y / 0.5) ** 2 < 1
        out.append((0.3 + 0.2 * x) * body + 0.6 * ((x - shift) ** 2 + (y - 0.1) ** 2 < 0.05))
    return np.asarray(out) * np.exp(1j * (0.5 * x + 0.3 * y))


def test_ssim_settings_match_the_implementation():
    assert (metrics.WINDOW_SIZE, metrics.WINDOW_SIGMA, metrics.K1, metrics.K2) == (11, 1.5, 0.01, 0.03)
    assert int(3.5 * metrics.WINDOW_SIGMA + 0.5) * 2 + 1 == metrics.WINDOW_SIZE  # scikit-image's Gaussian width


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ssim_matches_skimage_on_random_images(seed):
    rng = np.random.default_rng(seed)
    shape = (3, 20 + 7 * seed, 33 - 5 * seed)
    ref = rng.random(shape) * 10.0 ** (seed - 1)  # scale-free: any data range
    est = ref + 0.2 * ref.std() * rng.standard_normal(shape)
    assert ssim(ref, est) == pytest.approx(skimage_ssim(ref, est), abs=1e-10)
    assert ssim(ref, est, data_range=2 * ref.max()) == pytest.approx(skimage_ssim(ref, est, 2 * ref.max()), abs=1e-10)


@pytest.mark.parametrize("degrade", ["noise", "blur", "shift", "scale"])
def test_ssim_matches_skimage_on_structured_images(degrade):
    ref = _phantom(4, 48, 40)
    rng = np.random.default_rng(3)
    if degrade == "noise":
        est = ref + 0.05 * (rng.standard_normal(ref.shape) + 1j * rng.standard_normal(ref.shape))
    elif degrade == "blur":
        est = (ref + np.roll(ref, 1, -1) + np.roll(ref, -1, -1) + np.roll(ref, 1, -2) + np.roll(ref, -1, -2)) / 5
    elif degrade == "shift":
        est = np.roll(ref, 2, axis=-1)
    else:
        est = 0.7 * ref * np.exp(1j)  # a global phase is ignored, a scale is not
    value = ssim(ref, est)
    assert value == pytest.approx(skimage_ssim(ref, est), abs=1e-10)
    assert 0.0 < value < 1.0
    assert ssim(ref, ref * np.exp(2j)) == pytest.approx(1.0, abs=1e-12) == skimage_ssim(ref, ref)


# -- ISMRMRD files written by the ismrmrd package -----------------------------------------------------

H, W, COILS, FRAMES, SLICES = 16, 12, 3, 4, 2
CENTRE = 5  # the encoding limits' centre line: lands on column W // 2 = 6


def _header(encoded_x: int, recon_x: int) -> str:
    def space(x: int) -> xsd.encodingSpaceType:
        return xsd.encodingSpaceType(matrixSize=xsd.matrixSizeType(x=x, y=W, z=1),
                                     fieldOfView_mm=xsd.fieldOfViewMm(x=2.0 * x, y=2.0 * W, z=8.0))

    enc = xsd.encodingType(
        encodedSpace=space(encoded_x), reconSpace=space(recon_x), trajectory=xsd.trajectoryType.CARTESIAN,
        encodingLimits=xsd.encodingLimitsType(kspace_encoding_step_1=xsd.limitType(minimum=0, maximum=W - 2, center=CENTRE)),
    )
    header = xsd.ismrmrdHeader(experimentalConditions=xsd.experimentalConditionsType(H1resonanceFrequency_Hz=63_870_000))
    header.encoding.append(enc)
    return xsd.ToXML(header)


def _acquisition(data: np.ndarray, col: int, frame: int, slice_: int) -> ismrmrd.Acquisition:
    acq = ismrmrd.Acquisition.from_array(data.astype(np.complex64))
    acq.idx.kspace_encode_step_1 = col - W // 2 + CENTRE
    acq.idx.phase = frame
    acq.idx.slice = slice_
    acq.center_sample = data.shape[1] // 2
    return acq


def write_ismrmrd(path, encoded_x: int = H, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A Cartesian multi-coil cine written with ``ismrmrd``: returns the k-space ``(S, T, N, encoded_x, W)``
    as a2a should read it (repeats averaged, unsampled lines zero) and the line mask ``(S, T, W)``.

    Besides the imaging lines it holds a noise scan (skipped by readers) and one line acquired
    twice (averaged by readers).
    """
    rng = np.random.default_rng(seed)
    kspace = np.zeros((SLICES, FRAMES, COILS, encoded_x, W), np.complex64)
    lines = rng.random((SLICES, FRAMES, W)) < 0.4
    lines[..., W // 2] = True
    lines[..., 0] = False  # column 0 would need kspace_encode_step_1 = -1: never acquired
    with ismrmrd.Dataset(str(path), "dataset", create_if_needed=True) as ds:
        ds.write_xml_header(_header(encoded_x, H))
        noise = ismrmrd.Acquisition.from_array(rng.standard_normal((COILS, encoded_x)).astype(np.complex64))
        noise.set_flag(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
        ds.append_acquisition(noise)
        for s, t, col in zip(*np.nonzero(lines)):
            data = (rng.standard_normal((COILS, encoded_x)) + 1j * rng.standard_normal((COILS, encoded_x))).astype(np.complex64)
            kspace[s, t, :, :, col] = data
            ds.append_acquisition(_acquisition(data, col, t, s))
        again = (rng.standard_normal((COILS, encoded_x)) + 1j * rng.standard_normal((COILS, encoded_x))).astype(np.complex64)
        ds.append_acquisition(_acquisition(again, W // 2, 1, 0))  # a second average of one line
        kspace[0, 1, :, :, W // 2] = (kspace[0, 1, :, :, W // 2] + again) / 2
    return kspace, lines


def _slice_kspace(sample) -> np.ndarray:
    """``(T, N, H, W)`` complex from a Sample's ``(1, 2, T, N, H, W)``."""
    return to_complex(sample.kspace)[0].numpy()


def test_ismrmrd_file_is_read_as_written(tmp_path):
    path = tmp_path / "cine.h5"
    kspace, lines = write_ismrmrd(path)
    info = inspect_file(path)
    assert (info.layout, info.mode, info.n_slices, info.frames, info.height, info.width, info.coils) == (
        "ismrmrd", "dynamic", SLICES, FRAMES, H, W, COILS)
    assert not info.has_reference
    for s in range(SLICES):
        sample = read_slice(path, s, info=info)
        assert tuple(sample.kspace.shape) == (1, 2, FRAMES, COILS, H, W)
        assert tuple(sample.mask.shape) == (1, 1, FRAMES, H, W)
        np.testing.assert_array_equal(sample.mask[0, 0].numpy(), np.broadcast_to(lines[s][:, None, :], (FRAMES, H, W)))
        np.testing.assert_allclose(_slice_kspace(sample), kspace[s], rtol=0, atol=1e-6)
        assert sample.coil_maps is not None and tuple(sample.coil_maps.shape) == (1, COILS, H, W)


def test_ismrmrd_readout_oversampling_is_removed(tmp_path):
    path = tmp_path / "oversampled.h5"
    kspace, lines = write_ismrmrd(path, encoded_x=2 * H, seed=1)
    info = inspect_file(path)
    assert (info.height, info.width) == (H, W)  # reconSpace x
    # the centred H rows of the image along the readout, back in k-space (centred, orthonormal FFTs)
    image = np.fft.fftshift(np.fft.ifft(np.fft.ifftshift(kspace, axes=-2), axis=-2, norm="ortho"), axes=-2)
    cropped = image[..., H // 2:H // 2 + H, :]
    expected = np.fft.fftshift(np.fft.fft(np.fft.ifftshift(cropped, axes=-2), axis=-2, norm="ortho"), axes=-2)
    for s in range(SLICES):
        sample = read_slice(path, s, info=info)
        np.testing.assert_allclose(_slice_kspace(sample), expected[s], rtol=0, atol=1e-5)
        np.testing.assert_array_equal(sample.mask[0, 0, :, 0].numpy(), lines[s])


def test_inspect_mask_reports_the_ismrmrd_mask(tmp_path):
    path = tmp_path / "cine.h5"
    _, lines = write_ismrmrd(path, seed=2)
    res = CliRunner().invoke(app, ["inspect-mask", str(path), "--slice", "1", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["shape"] == [FRAMES, H, W]
    assert report["orientation"] == "lines" and report["mask_source"] == "stored" and report["coils"] == COILS
    assert [f["samples"] for f in report["frames"]] == lines[1].sum(axis=1).tolist()
    assert report["never_sampled_lines"] == np.flatnonzero(~lines[1].any(axis=0)).tolist()


# -- ESPIRiT against sigpy ---------------------------------------------------------------------------


def _multicoil_phantom(n: int = 48) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smooth complex maps of 5 coils ``(5, n, n)`` (``sum |S|^2 = 1``), the object ``(n, n)`` and its support."""
    y, x = np.meshgrid(np.linspace(-1, 1, n), np.linspace(-1, 1, n), indexing="ij")
    centres = [(-1.2, 0.0), (1.2, 0.0), (0.0, -1.2), (0.0, 1.2), (0.9, 0.9)]
    maps = np.stack([np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / 1.5) * np.exp(1j * (0.8 * x - 0.5 * y + c))
                     for c, (cy, cx) in enumerate(centres)])
    maps /= np.sqrt((np.abs(maps) ** 2).sum(0))
    support = (x / 0.8) ** 2 + (y / 0.65) ** 2
    obj = (support < 1) * (1 + 0.5 * np.cos(3 * x) + 0.3 * ((x - 0.2) ** 2 + y ** 2 < 0.1)) * np.exp(0.4j * y)
    return maps, obj, support


def test_espirit_maps_match_sigpy():
    maps, obj, support = _multicoil_phantom()
    kspace = fft2c(torch.tensor(maps * obj, dtype=torch.complex64))  # (N, H, W), one fully sampled frame
    ours, method = estimate_maps(kspace[None], torch.ones(1, *kspace.shape[-2:]))
    assert method == "espirit"
    ours = ours.numpy()
    # the same calibration region, kernel, singular-value threshold and eigenvalue crop as ours
    theirs = sigpy_app.EspiritCalib(kspace.numpy(), calib_width=24, kernel_width=6, thresh=0.02, crop=0.8,
                                    show_pbar=False).run()
    assert theirs.shape == ours.shape
    inside = support < 0.8
    inner = (ours.conj() * theirs).sum(0)  # per pixel: 1 in magnitude when they agree up to a phase
    assert np.abs(inner[inside]).min() > 1 - 1e-4
    phase = inner / np.maximum(np.abs(inner), 1e-12)
    assert np.abs(ours * phase - theirs)[:, inside].max() < 1e-3
    # and both find the true sensitivities (up to a phase) inside the object
    assert np.abs((ours.conj() * maps).sum(0))[inside].min() > 0.999
    # both drop the same pixels outside the object (no consistent coil signal there)
    kept_ours, kept_theirs = np.abs(ours).sum(0) > 0, np.abs(theirs).sum(0) > 0
    assert (kept_ours == kept_theirs).mean() > 0.99 and kept_ours[inside].all()
