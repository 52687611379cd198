"""Mathematics of the MRI operators: orthonormal FFT, adjointness, pseudo-inverse, data consistency."""
import pytest
import torch

from a2a_cli import DynamicMRI, SequentialMRI, fft2c, ifft2c, to_complex, to_real
from a2a_cli.physics import Reflection, gather_time

torch.manual_seed(0)


def _inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Real inner product of two real-layout tensors (= Re<a, b> of the complex data)."""
    return (a.double() * b.double()).sum()


def _line_mask(b, t, w, seed=0, channels=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, channels, t, 1, w, generator=g) < 0.35).float()


def _coil_maps(b, n, h, w):
    s = torch.randn(b, n, h, w, dtype=torch.complex64)
    return s / s.abs().pow(2).sum(1, keepdim=True).sqrt()


def test_fft_is_orthonormal_and_centred():
    z = torch.randn(3, 16, 12, dtype=torch.complex64)
    k = fft2c(z)
    assert torch.allclose(k.abs().pow(2).sum(), z.abs().pow(2).sum(), rtol=1e-5)
    assert torch.allclose(ifft2c(k), z, atol=1e-5)
    # a constant image puts all its energy at the centre of k-space
    k1 = fft2c(torch.ones(1, 16, 12, dtype=torch.complex64))
    assert k1[0, 8, 6].abs() == pytest.approx((16 * 12) ** 0.5, rel=1e-5)
    assert k1.abs().sum() == pytest.approx(k1[0, 8, 6].abs().item(), rel=1e-5)


def test_real_complex_layout_round_trip():
    x = torch.randn(2, 2, 3, 4, 5)
    z = to_complex(x)
    assert z.shape == (2, 3, 4, 5)
    assert torch.equal(z.real, x[:, 0]) and torch.equal(z.imag, x[:, 1])
    assert torch.equal(to_real(z), x)
    with pytest.raises(ValueError, match="2 channels"):
        to_complex(torch.randn(2, 3, 4))


@pytest.mark.parametrize("coils", [None, 4])
@pytest.mark.parametrize("channels", [1, 2])
def test_dynamic_adjointness(coils, channels):
    b, t, h, w = 2, 5, 8, 10
    maps = _coil_maps(b, coils, h, w) if coils else None
    phys = DynamicMRI(mask=_line_mask(b, t, w, channels=channels), coil_maps=maps)
    x = torch.randn(b, 2, t, h, w)
    y = torch.randn(b, 2, t, *((coils,) if coils else ()), h, w)
    ax = phys.A(x)
    assert ax.shape == y.shape
    assert _inner(ax, y).item() == pytest.approx(_inner(x, phys.A_adjoint(y)).item(), rel=1e-4)
    assert torch.equal(phys(x), ax)


@pytest.mark.parametrize("coils", [None, 3])
def test_sequential_adjointness(coils):
    b, t, h, w = 2, 4, 8, 8
    maps = _coil_maps(b, coils, h, w) if coils else None
    phys = SequentialMRI(mask=_line_mask(b, t, w, seed=1), coil_maps=maps)
    x = torch.randn(b, 2, h, w)
    y = torch.randn(b, 2, t, *((coils,) if coils else ()), h, w)
    ax = phys.A(x)
    assert ax.shape == y.shape
    assert _inner(ax, y).item() == pytest.approx(_inner(x, phys.A_adjoint(y)).item(), rel=1e-4)
    frames = phys.A_adjoint(y, keep_time_dim=True)
    assert frames.shape == (b, 2, t, h, w)
    assert torch.allclose(frames.sum(2), phys.A_adjoint(y), atol=1e-5)


def test_sequential_dagger_is_count_weighted_average():
    # two frames sample the same line: the pseudo-inverse averages them
    mask = torch.zeros(1, 1, 2, 1, 4)
    mask[..., 0, :, 1] = 1
    mask[..., 1, :, 1] = 1
    mask[..., 1, :, 2] = 1
    phys = SequentialMRI(mask=mask)
    x = torch.randn(1, 2, 4, 4)
    y = phys(x)
    rec = phys.A_dagger(y)
    # A A^+ y = y on the measured samples
    assert torch.allclose(phys(rec), y, atol=1e-5)
    ya, single = phys.time_average(y)
    assert ya.shape == (1, 2, 4, 4)
    assert torch.allclose(single.A_dagger(ya), rec, atol=1e-5)


def test_dynamic_dagger_and_hard_data_consistency():
    b, t, h, w = 1, 3, 8, 8
    phys = DynamicMRI(mask=_line_mask(b, t, w, seed=2))
    x = torch.randn(b, 2, t, h, w)
    y = phys(x)
    assert torch.allclose(phys.A_dagger(y), phys.A_adjoint(y), atol=1e-5)
    z = torch.randn_like(x)
    dc = phys.prox_l2(z, y, 0.0)
    # measured samples as measured, unmeasured ones from z
    m = phys.mask[:, 0].bool()
    kdc, kz, ky = fft2c(to_complex(dc)), fft2c(to_complex(z)), to_complex(y)
    assert torch.allclose(kdc[m.expand_as(kdc)], ky[m.expand_as(ky)], atol=1e-5)
    assert torch.allclose(kdc[~m.expand_as(kdc)], kz[~m.expand_as(kz)], atol=1e-5)


def test_multicoil_prox_solves_normal_equations():
    b, t, h, w, n = 1, 2, 8, 8, 4
    phys = DynamicMRI(mask=_line_mask(b, t, w, seed=3), coil_maps=_coil_maps(b, n, h, w), cg_iterations=50)
    x = torch.randn(b, 2, t, h, w)
    y = phys(x)
    z = torch.randn_like(x)
    lam = 0.5
    sol = phys.prox_l2(z, y, lam)
    grad = phys.A_adjoint(phys(sol) - y) + lam * (sol - z)
    assert grad.abs().max() < 1e-3


def test_view_sharing_fills_unsampled_lines_with_the_time_average():
    mask = torch.zeros(1, 1, 2, 1, 4)
    mask[..., 0, :, 0] = 1
    mask[..., 1, :, 1] = 1
    phys = DynamicMRI(mask=mask)
    x = torch.randn(1, 2, 2, 4, 4)
    y = phys(x)
    k = fft2c(to_complex(phys.view_sharing(y)))
    ky = to_complex(y)
    # frame 0 gets frame 1's line 1 and keeps its own line 0
    assert torch.allclose(k[0, 0, :, 0], ky[0, 0, :, 0], atol=1e-5)
    assert torch.allclose(k[0, 0, :, 1], ky[0, 1, :, 1], atol=1e-5)
    assert torch.allclose(k[0, 0, :, 2], torch.zeros(4, dtype=k.dtype), atol=1e-6)
    # a window of one frame is plain zero-filling
    assert torch.allclose(phys.view_sharing(y, window=1), phys.A_adjoint(y), atol=1e-5)


def test_split_time_gathers_per_sample():
    mask = torch.arange(6.0).reshape(1, 1, 6, 1, 1).expand(2, 1, 6, 1, 1)
    phys = DynamicMRI(mask=mask).split_time(torch.tensor([[0, 1], [4, 5]]))
    assert phys.mask.shape == (2, 1, 2, 1, 1)
    assert phys.mask.flatten().tolist() == [0, 1, 4, 5]
    assert gather_time(torch.zeros(1, 2, 6, 3, 3), torch.tensor([[0, 1, 2]] * 3)).shape == (3, 2, 3, 3, 3)


def test_bad_masks_are_clear_errors():
    with pytest.raises(ValueError, match="5D"):
        DynamicMRI(mask=torch.ones(4, 4))
    with pytest.raises(ValueError, match="channel"):
        DynamicMRI(mask=torch.ones(1, 3, 2, 4, 4))
    with pytest.raises(ValueError, match="5D"):
        SequentialMRI(mask=torch.ones(1, 1, 4, 4))


@pytest.mark.parametrize("coils", [None, 3])
@pytest.mark.parametrize("kind", ["dynamic", "sequential"])
def test_reflections_are_exact_symmetries_of_the_measurement(kind, coils):
    # odd and even sizes: the reflection is about the centre sample of the centred FFT
    b, t, h, w = 2, 3, 7, 6
    maps = _coil_maps(b, coils, h, w) if coils else None
    cls = DynamicMRI if kind == "dynamic" else SequentialMRI
    physics = cls(mask=_line_mask(b, t, w, seed=4), coil_maps=maps)
    x = torch.randn(b, 2, t, h, w) if kind == "dynamic" else torch.randn(b, 2, h, w)
    y = physics(x)
    seen = set()
    for g in Reflection.all():
        pg = g.physics_of(physics)
        assert type(pg) is cls
        # measuring the transformed image = transforming the measurement, noise included
        assert torch.allclose(pg(g.image(x)), g.kspace(y), atol=1e-5)
        assert torch.allclose(pg.A_adjoint(g.kspace(y)), g.image(physics.A_adjoint(y)), atol=1e-5)
        assert torch.equal(g.image(g.image(x)), x) and torch.equal(g.kspace(g.kspace(y)), y)
        seen.add(g.image(x).numpy().tobytes())
    assert len(seen) == 8  # eight different transforms
    # conjugation mirrors k-space in both axes: a line mask changes, a pure image flip in H does not
    assert torch.equal(Reflection(flip_h=True).mask(physics.mask), physics.mask)
    assert not torch.equal(Reflection(conjugate=True).mask(physics.mask), physics.mask)
    flipped = Reflection(flip_w=True).image(x)
    assert torch.equal(flipped[..., 1:], torch.flip(x[..., 1:], (-1,)))  # column 0 is its own mirror
