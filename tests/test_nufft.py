"""The radial SENSE operator: adjointness, Toeplitz embedding, density compensation."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from a2a_cli.nufft import (RadialMRI, golden_angle_trajectory, nufft, pipe_menon_dcf, radial_dcf,
                           sampling_tensor)
from a2a_cli.physics import fft2c, to_complex, to_real

pytestmark = pytest.mark.usefixtures("one_thread")
H = W = 24


def _operator(frames=3, spokes=5, coils=2, sequential=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    traj = golden_angle_trajectory(frames, spokes, H, H)
    mask = sampling_tensor(traj, radial_dcf(traj))[None]
    maps = torch.randn(1, coils, H, W, dtype=torch.complex64, generator=g)
    return RadialMRI(mask, maps, sequential=sequential), g


@pytest.mark.parametrize("sequential", [False, True])
def test_forward_and_adjoint_are_adjoint(sequential):
    physics, g = _operator(sequential=sequential)
    x = torch.randn(1, 2, *(() if sequential else (3,)), H, W, generator=g)
    y = torch.randn(1, 2, 3, 2, 5, H, generator=g)
    lhs, rhs = float((physics.A(x) * y).sum()), float((x * physics.A_adjoint(y)).sum())
    assert lhs == pytest.approx(rhs, rel=1e-4)


def test_on_a_cartesian_grid_the_nufft_is_the_centred_orthonormal_fft():
    k = torch.arange(H) - H // 2
    grid = torch.stack(torch.meshgrid(k, k, indexing="ij"), -1).reshape(1, H * W, 2).float()
    img = torch.randn(1, 1, H, W, dtype=torch.complex64)
    ref = fft2c(img[0, 0])
    assert float((nufft(img, grid).reshape(H, W) - ref).abs().max()) < 1e-3 * float(ref.abs().max())


def test_toeplitz_normal_operator_matches_adjoint_of_forward():
    physics, g = _operator()
    z = to_complex(torch.randn(1, 2, 3, H, W, generator=g))
    direct = physics._adjoint_complex(physics._forward_complex(z), weights=physics.mask[0, 3].reshape(3, -1))
    assert float((physics.normal(z) - direct).norm() / direct.norm()) < 1e-3


@pytest.mark.parametrize("sequential", [False, True])
def test_residual_by_toeplitz_equals_the_explicit_residual_weighted_or_not(sequential):
    from a2a_cli.nufft import density_weighted_mse

    physics, g = _operator(sequential=sequential)
    shape = (1, 2, H, W) if sequential else (1, 2, 3, H, W)
    x, truth = torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)
    y = physics.A(truth)
    r = physics.A(x) - y
    assert float(physics.residual_mse(x, y)) == pytest.approx(float(r.square().mean()), rel=1e-3)
    weighted = float(density_weighted_mse(r, physics.mask.expand(1, 4, 3, 5, H)))
    assert float(physics.residual_mse(x, y, weighted=True)) == pytest.approx(weighted, rel=1e-3)
    # the weighting counts high spatial frequencies as the image does: a smooth image's k-space,
    # all near the densely sampled centre, weighs far less than unweighted; a uniform weight changes nothing
    yy, xx = torch.meshgrid(torch.arange(H) - H / 2, torch.arange(W) - W / 2, indexing="ij")
    blob = torch.exp(-(yy**2 + xx**2) / 20).expand(*shape[:1], 1, *shape[2:]).repeat_interleave(2, 1)
    smooth = RadialMRI(physics.mask, torch.ones(1, 1, H, W, dtype=torch.complex64), sequential=sequential).A(blob)
    mask = physics.mask.expand(1, 4, 3, 5, H)
    assert float(density_weighted_mse(smooth, mask)) < 0.5 * float(smooth.square().mean())
    flat = physics.mask.clone()
    flat[:, 3] = 7.0
    assert float(density_weighted_mse(r, flat)) == pytest.approx(float(r.square().mean()), rel=1e-5)


def test_dcf_of_a_uniform_radial_set_is_the_ramp():
    spokes, samples = 50, 32  # pi/2 * 32: Nyquist at the edge
    angle = torch.arange(spokes) * math.pi / spokes
    r = torch.arange(samples) - samples // 2
    traj = torch.stack((r[None] * torch.cos(angle)[:, None], r[None] * torch.sin(angle)[:, None]), -1).float()
    w = radial_dcf(traj)
    radius = traj.norm(dim=-1)
    off = radius > 0
    ratio = w[off] / radius[off]
    assert float(ratio.std() / ratio.mean()) < 1e-4  # exactly |k|-proportional away from the centre
    assert float(w.sum()) == pytest.approx(math.pi * (samples / 2) ** 2, rel=0.05)  # the sampled disc
    # the iterative (Pipe-Menon) estimate, for trajectories of any shape, agrees away from the edge
    pm = pipe_menon_dcf(traj, (samples, samples))
    inner = off & (radius < samples / 2 - 3)
    corr = np.corrcoef(pm[inner].numpy(), radius[inner].numpy())[0, 1]
    assert corr > 0.98


def test_gridding_of_a_nyquist_radial_set_recovers_the_image():
    spokes = int(math.ceil(math.pi / 2 * H))
    traj = golden_angle_trajectory(1, spokes, 2 * H, H)
    physics = RadialMRI(sampling_tensor(traj, radial_dcf(traj))[None], torch.ones(1, 1, H, W, dtype=torch.complex64), cg_iterations=8)
    yy, xx = torch.meshgrid(torch.arange(H) - H / 2, torch.arange(W) - W / 2, indexing="ij")
    x = ((yy ** 2 / 50 + xx ** 2 / 30) < 1).to(torch.complex64)
    y = physics.A(to_real(x[None, None]))
    for image in (physics.gridding(y), physics.A_dagger(y)):
        err = float((to_complex(image)[0, 0] - x).norm() / x.norm())
        assert err < 0.15


def test_time_average_joins_the_spokes_of_every_frame():
    physics, g = _operator(sequential=True)
    x = torch.randn(1, 2, H, W, generator=g)
    y = physics.A(x)
    y_all, static = physics.time_average(y)
    assert static.mask.shape == (1, 4, 15, H)
    assert torch.allclose(static.A(x), y_all, atol=1e-5)


def test_view_sharing_of_the_whole_sequence_is_the_gridding_of_all_spokes():
    physics, g = _operator(coils=2)
    y = torch.randn(1, 2, 3, 2, 5, H, generator=g)
    shared = physics.view_sharing(y)  # one block of all frames
    y_all, static = physics.time_average(y)
    expected = static.gridding(y_all)
    assert shared.shape == (1, 2, 3, H, W)
    for t in range(3):
        assert torch.allclose(shared[:, :, t], expected, atol=1e-5)
    first_two = physics.view_sharing(y, window=2)[:, :, 0]
    assert not torch.allclose(first_two, expected, atol=1e-3)


@pytest.mark.parametrize("sequential", [False, True])
def test_reflections_are_symmetries_of_the_radial_operator(sequential):
    """Mirroring/conjugating the image reorders and reflects the samples (as for Cartesian data)."""
    from a2a_cli.physics import Reflection

    physics, g = _operator(sequential=sequential)
    physics.coil_maps[..., :1, :] = 0  # the edge row/column has no mirror image on the grid
    physics.coil_maps[..., :, :1] = 0
    x = torch.randn(1, 2, *(() if sequential else (3,)), H, W, generator=g)
    y = physics.A(x)
    for r in Reflection.all():
        lhs, rhs = r.physics_of(physics).A(r.image(x)), r.kspace(y)
        assert float((lhs - rhs).norm() / rhs.norm()) < 5e-3, r
