"""Varied benchmark data: objects, textures, sampling densities, coils (numpy; nothing downloaded).

Objects (complex ``(H, W)`` images with a smooth phase and shading, drawn from a seed):

* ``abdomen``: the simulator's phantom (:func:`a2a_cli.simulate.phantom_static`);
* ``head``: a Shepp-Logan-like head whose ellipses are jittered in place, size and intensity;
* ``texture``: a crop of a natural texture or photograph bundled with scikit-image
  (brick, grass, gravel, camera, moon, coins), randomly flipped and rotated;
* ``brain``: a synthetic axial brain slice: scalp, skull, CSF, a folded cortex with
  sulci, white matter, deep grey nuclei, ventricles and the interhemispheric fissure.

:func:`write_sequential_case` samples a static object by T frames of phase-encode
lines (:func:`a2a_cli.simulate.line_masks`: the centre lines in every frame plus
``new_lines`` others per frame, a different pattern per slice), adds noise at a given
SNR and writes an a2a file. With coils the maps (:func:`a2a_cli.simulate.coil_sensitivities`)
are stored as ``sensitivity_maps`` (given, not estimated), so a2a and the baselines
see the same maps. :func:`write_dynamic_object_case` makes any of these objects breathe
(a smooth displacement field driven by :func:`a2a_cli.simulate.breathing_curve`) and samples
each frame by its own lines, as :func:`a2a_cli.simulate.write_case` does for its phantom.

>>> brain_image(32, np.random.default_rng(0)).shape
(32, 32)
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from a2a_cli.data import write_a2a_file
from a2a_cli.simulate import (
    add_noise,
    breathing_curve,
    coil_sensitivities,
    fft2c,
    line_masks,
    phantom_static,
)

__all__ = ["OBJECTS", "abdomen_image", "brain_image", "head_image", "texture_image", "breathe", "write_sequential_case",
           "write_dynamic_object_case"]


def _grid(size: int, oversample: int = 1) -> tuple[np.ndarray, np.ndarray]:
    n = size * oversample
    c = (np.arange(n) + 0.5) / n * 2 - 1
    return np.meshgrid(c, c, indexing="ij")


def _down(img: np.ndarray, oversample: int) -> np.ndarray:
    n = img.shape[0] // oversample
    return img.reshape(n, oversample, n, oversample).mean(axis=(1, 3))


def _smooth_field(yy: np.ndarray, xx: np.ndarray, rng: np.random.Generator, low: float, high: float, terms: int = 6) -> np.ndarray:
    """A random field of plane waves with ``low`` to ``high`` cycles per field of view, in about [-1, 1]."""
    f = np.zeros_like(yy)
    for _ in range(terms):
        k = rng.uniform(low, high)
        a = rng.uniform(0, np.pi)
        f += np.cos(np.pi * k * (np.cos(a) * yy + np.sin(a) * xx) + rng.uniform(0, 2 * np.pi))
    return f / math.sqrt(terms / 2)


def _complexify(mag: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Smooth shading and a smooth low-order phase, as MR images have."""
    yy, xx = _grid(mag.shape[0])
    shading = 1.0 + 0.1 * _smooth_field(yy, xx, rng, 0.3, 1.0, 3)
    c = rng.uniform(-1.0, 1.0, size=5)
    phase = rng.uniform(-np.pi, np.pi) + c[0] * xx + c[1] * yy + c[2] * xx * yy + c[3] * xx**2 + c[4] * yy**2
    return (mag * shading * np.exp(1j * phase)).astype(np.complex64)


def abdomen_image(size: int, rng: np.random.Generator) -> np.ndarray:
    """The simulator's abdomen at end-expiration."""
    return phantom_static(size, size, rng)


# modified Shepp-Logan: value, a (x half-axis), b (y half-axis), x0, y0, angle (degrees)
_SHEPP_LOGAN = [
    (1.0, 0.69, 0.92, 0.0, 0.0, 0), (-0.8, 0.6624, 0.874, 0.0, -0.0184, 0), (-0.2, 0.11, 0.31, 0.22, 0.0, -18),
    (-0.2, 0.16, 0.41, -0.22, 0.0, 18), (0.1, 0.21, 0.25, 0.0, 0.35, 0), (0.1, 0.046, 0.046, 0.0, 0.1, 0),
    (0.1, 0.046, 0.046, 0.0, -0.1, 0), (0.1, 0.046, 0.023, -0.08, -0.605, 0), (0.1, 0.023, 0.023, 0.0, -0.606, 0),
    (0.1, 0.023, 0.046, 0.06, -0.605, 0),
]


def head_image(size: int, rng: np.random.Generator, oversample: int = 4) -> np.ndarray:
    """A Shepp-Logan-like head: each ellipse moved, resized, turned and reweighted a little, plus a few extra spots."""
    yy, xx = _grid(size, oversample)
    img = np.zeros_like(yy)
    shapes = list(_SHEPP_LOGAN)
    for _ in range(int(rng.integers(2, 5))):  # small lesions inside the brain
        shapes.append((float(rng.uniform(-0.15, 0.2)), float(rng.uniform(0.02, 0.07)), float(rng.uniform(0.02, 0.07)),
                       float(rng.uniform(-0.4, 0.4)), float(rng.uniform(-0.5, 0.5)), float(rng.uniform(0, 180))))
    skull = rng.uniform(0.92, 1.08, size=2)  # the skull and the brain inside it resize together
    for k, (v, a, b, x0, y0, ang) in enumerate(shapes):
        jit = 0.0 if k < 2 else 0.04
        v = v * rng.uniform(0.85, 1.15) if k >= 2 else v
        fa, fb = skull if k < 2 else rng.uniform(0.92, 1.08, size=2)
        a, b = a * fa, b * fb
        x0, y0 = x0 + rng.uniform(-jit, jit), y0 + rng.uniform(-jit, jit)
        t = math.radians(ang + (rng.uniform(-8, 8) if k >= 2 else 0.0))
        dx, dy = xx - x0, -(yy - y0)
        u, w = dx * math.cos(t) + dy * math.sin(t), -dx * math.sin(t) + dy * math.cos(t)
        img[(u / a) ** 2 + (w / b) ** 2 <= 1] += v
    return _complexify(np.clip(_down(img, oversample), 0, None), rng)


_TEXTURES = ("brick", "grass", "gravel", "camera", "moon", "coins")


def texture_image(size: int, rng: np.random.Generator) -> np.ndarray:
    """A crop (twice the size, averaged down) of a scikit-image picture, flipped/rotated at random, in [0.1, 1]."""
    import skimage.data

    name = _TEXTURES[int(rng.integers(len(_TEXTURES)))]
    pic = np.asarray(getattr(skimage.data, name)(), dtype=np.float64)
    pic = pic.mean(axis=-1) if pic.ndim == 3 else pic
    n = 2 * size
    y0, x0 = int(rng.integers(0, pic.shape[0] - n + 1)), int(rng.integers(0, pic.shape[1] - n + 1))
    crop = _down(pic[y0:y0 + n, x0:x0 + n], 2)
    crop = np.rot90(crop, int(rng.integers(4)))
    if rng.integers(2):
        crop = crop[:, ::-1]
    lo, hi = np.percentile(crop, 1), np.percentile(crop, 99)
    crop = 0.1 + 0.9 * np.clip((crop - lo) / max(hi - lo, 1e-6), 0, 1)
    return _complexify(np.ascontiguousarray(crop), rng)


def brain_image(size: int, rng: np.random.Generator, oversample: int = 4) -> np.ndarray:
    """A synthetic axial brain slice with T2-like contrast (CSF bright, grey above white matter)."""
    yy, xx = _grid(size, oversample)
    s = rng.uniform(0.95, 1.05)
    ry, rx = 0.9 * s, 0.74 * s * rng.uniform(0.95, 1.05)
    cy, cx = rng.uniform(-0.03, 0.03), rng.uniform(-0.03, 0.03)
    dy, dx = yy - cy, xx - cx
    theta = np.arctan2(dy / ry, dx / rx)
    r = np.sqrt((dy / ry) ** 2 + (dx / rx) ** 2)  # 1 on the scalp surface
    wobble = 1 + sum(0.015 * rng.uniform(0.5, 1) * np.sin(k * theta + rng.uniform(0, 2 * np.pi)) for k in range(2, 6))
    rho = r / wobble
    img = np.zeros_like(yy)
    img[rho <= 1.0] = 0.55 * rng.uniform(0.9, 1.1)  # scalp and fat
    img[rho <= 0.93] = 0.05  # skull
    img[rho <= 0.87] = 1.0  # CSF around the brain
    brain = rho <= 0.83
    depth = rho / 0.83  # 1 at the brain surface
    gyri = _smooth_field(yy, xx, rng, 5.0, 9.0)
    cortex_inner = 0.78 + 0.07 * gyri
    gm, wm, csf = 0.68 * rng.uniform(0.93, 1.07), 0.45 * rng.uniform(0.93, 1.07), 1.0
    img[brain] = gm
    img[brain & (depth < cortex_inner)] = wm
    sulci = _smooth_field(yy, xx, rng, 6.0, 10.0)
    img[brain & (depth > 0.72) & (np.abs(sulci) < 0.09)] = csf
    img[brain & (np.abs(dx - 0.01 * np.sin(6 * dy)) < 0.012) & (dy < -0.25 * ry)] = csf  # fissure (front)
    img[brain & (np.abs(dx) < 0.012) & (dy > 0.5 * ry)] = csf  # fissure (back)
    for side in (-1, 1):  # deep grey nuclei, then the lateral ventricles
        e = ((dy - 0.05) / 0.16) ** 2 + ((dx - side * 0.2) / 0.08) ** 2
        img[e <= 1] = 0.6
        vy, vx = rng.uniform(-0.05, 0.05), side * rng.uniform(0.06, 0.1)
        e = ((dy - vy + 0.05) / (0.28 * rng.uniform(0.8, 1.2))) ** 2 + ((dx - vx) / (0.045 * rng.uniform(0.8, 1.3))) ** 2
        img[e <= 1] = csf
    for _ in range(int(rng.integers(0, 3))):  # white-matter lesions (bright on T2)
        ly, lx, lr = rng.uniform(-0.4, 0.4), rng.uniform(-0.35, 0.35), rng.uniform(0.02, 0.05)
        img[brain & (depth < 0.7) & ((dy - ly) ** 2 + (dx - lx) ** 2 <= lr**2)] = 0.85
    return _complexify(_down(img, oversample), rng)


OBJECTS: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "abdomen": abdomen_image, "head": head_image, "texture": texture_image, "brain": brain_image,
}


def write_sequential_case(
    path: str | Path, obj: str, slices: int, seed: int, size: int = 64, frames: int = 16, new_lines: int = 2,
    centre_lines: int = 4, coils: int = 1, snr_db: float = 30.0, overwrite: bool = True,
) -> Path:
    """Write ``slices`` static objects of kind ``obj``, each sampled by ``frames`` frames of lines (a2a sequential file).

    Frame t measures the ``centre_lines`` and ``new_lines`` other lines (all frames together
    ``centre_lines + frames * new_lines`` of ``size`` lines, when they fit). With ``coils`` > 1 the
    k-space is ``(S, T, N, H, W)`` and the maps are stored as ``sensitivity_maps``.
    """
    params = {"object": obj, "slices": slices, "seed": seed, "size": size, "frames": frames, "new_lines": new_lines,
              "centre_lines": centre_lines, "coils": coils, "snr_db": snr_db}
    return _write_object_case(path, params, size / (centre_lines + new_lines), motion=None, overwrite=overwrite)


def _write_object_case(path: str | Path, params: dict, acceleration: float, motion: str | None, overwrite: bool) -> Path:
    """The objects of ``params`` (``object``, ``slices``, ``seed``, ``size``, ``frames``, ``centre_lines``,
    ``coils``, ``snr_db``), each sampled by its own lines per frame, written as an a2a file.

    ``motion`` None: one static object per slice (sequential file, ``reference`` ``(S, H, W)``); else
    it breathes (:func:`breathe`, ``motion`` as :func:`~a2a_cli.simulate.breathing_curve` takes it;
    dynamic file, ``reference`` ``(S, T, H, W)``). Per slice the draws are, in order: the object, the
    breathing curve, the lines, the noise; the coil maps come from a stream of their own.
    """
    size, frames, coils = params["size"], params["frames"], params["coils"]
    multi = coils > 1
    ks, masks, refs, maps = [], [], [], []
    for s in range(params["slices"]):
        rng = np.random.default_rng([params["seed"], s])
        x = OBJECTS[params["object"]](size, rng)
        x = x / np.abs(x).max()
        if motion is not None:
            x = breathe(x, breathing_curve(frames, motion, rng=rng))  # (T, H, W)
        m = line_masks(frames, size, acceleration, params["centre_lines"], rng)  # (T, W)
        smap = coil_sensitivities(coils, size, size, np.random.default_rng([params["seed"], s, 1])) if multi else None
        image = x[..., None, :, :] * smap if multi else x  # ([T,] [N,] H, W)
        k = fft2c(image)
        if motion is None:  # one static object: every frame sees the same k-space
            k = np.broadcast_to(k, (frames,) + k.shape)
        mm = m[:, None, None, :] if multi else m[:, None, :]
        ks.append(add_noise(k * mm, params["snr_db"], rng, mask=np.broadcast_to(mm, k.shape)))
        masks.append(m)
        refs.append(x)
        if multi:
            maps.append(smap)
    return write_a2a_file(
        path, np.stack(ks).astype(np.complex64), mask=np.stack(masks), reference=np.stack(refs).astype(np.complex64),
        acquisition="sequential" if motion is None else "dynamic", overwrite=overwrite,
        attrs={"simulation": json.dumps(params)}, coils=coils if multi else None,
        sensitivity_maps=np.stack(maps).astype(np.complex64) if multi else None,
    )


def breathe(x: np.ndarray, displacement: np.ndarray) -> np.ndarray:
    """``x`` ``(H, W)`` warped once per frame: complex ``(T, H, W)`` for ``displacement`` ``(T,)``.

    Displacement ``d`` (normalised units, 2 = field of view, as :func:`~a2a_cli.simulate.breathing_curve`
    gives) moves the bottom of the image up by ``d`` and the top by a quarter of that, and widens the
    object by ``d / 4`` of its half-width, as a diaphragm pushes the organs above it. Cubic interpolation
    of the real and imaginary parts; the edges repeat.

    >>> x = np.zeros((16, 16), np.complex64); x[6:10, 6:10] = 1
    >>> v = breathe(x, np.array([0.0, 0.25]))
    >>> v.shape, bool(np.allclose(v[0], x, atol=1e-5)), bool(np.allclose(v[1], x, atol=1e-2))
    ((2, 16, 16), True, False)
    """
    from scipy.ndimage import map_coordinates

    h, w = x.shape
    yy, xx = np.meshgrid((np.arange(h) + 0.5) / h * 2 - 1, (np.arange(w) + 0.5) / w * 2 - 1, indexing="ij")
    frames = []
    for d in displacement:
        # where each output pixel comes from: below it (the object moves up), more so lower down
        src_y = yy + d * (0.25 + 0.75 * (yy + 1) / 2)
        src_x = xx / (1 + d / 4)
        coords = np.stack(((src_y + 1) / 2 * h - 0.5, (src_x + 1) / 2 * w - 0.5))
        frames.append(map_coordinates(x.real, coords, order=3, mode="nearest")
                      + 1j * map_coordinates(x.imag, coords, order=3, mode="nearest"))
    return np.stack(frames).astype(np.complex64)


def write_dynamic_object_case(
    path: str | Path, obj: str, slices: int, seed: int, size: int = 64, frames: int = 16, acceleration: float = 5.0,
    centre_lines: int = 4, coils: int = 1, snr_db: float | None = 30.0, motion: str = "respiratory", overwrite: bool = True,
) -> Path:
    """Write ``slices`` breathing objects of kind ``obj`` (:func:`breathe`), each frame sampled by its own lines.

    Lines as :func:`a2a_cli.simulate.write_case` draws them (``acceleration``, ``centre_lines`` in every
    frame, a different pattern per slice). ``reference`` is the noiseless ``(S, T, H, W)`` video. With
    ``coils`` > 1 the k-space is ``(S, T, N, H, W)`` and the maps are stored as ``sensitivity_maps``.
    """
    params = {"object": obj, "slices": slices, "seed": seed, "size": size, "frames": frames, "acceleration": acceleration,
              "centre_lines": centre_lines, "coils": coils, "snr_db": snr_db, "motion": motion}
    return _write_object_case(path, params, acceleration, motion=motion, overwrite=overwrite)
