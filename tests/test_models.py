"""Tests of the reconstruction networks (a2a_cli.models) on small synthetic data."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from a2a_cli.models import (
    MODELS,
    AutoEncoder,
    Conv2dtNet,
    ResidualUNet,
    TimeAgnosticNet,
    UnrolledNet,
    build_model,
    count_parameters,
)
from a2a_cli.models.base import window_geometry
from a2a_cli.models.cnn import stack_neighbours
from a2a_cli.fft import fft2c
from a2a_cli.physics import DynamicMRI, SequentialMRI, to_complex

# small networks keep the suite fast; the defaults are exercised where it matters
SMALL = {
    "unet": dict(channels=4, scales=2),
    "cnn2dt": dict(channels=8, depth=3),
    "unrolled": dict(channels=8, depth=3),
}
FRAME_WISE = ["unet", "unrolled"]


#: The networks (``tv`` is compressed sensing with no network: its own tests are in test_tv.py).
NETWORKS = sorted(set(MODELS) - {"tv"})


def small(name: str, **extra) -> nn.Module:
    torch.manual_seed(0)
    return build_model(name, **{**SMALL[name], **extra})


def line_mask(b: int, t: int, w: int, seed: int = 0, h: int = 1) -> torch.Tensor:
    """Random phase-encode lines per frame plus two centre lines, ``(B, 1, T, h, W)``."""
    g = torch.Generator().manual_seed(seed)
    mask = (torch.rand(b, 1, t, 1, w, generator=g) < 0.3).float()
    mask[..., w // 2 - 1:w // 2 + 1] = 1
    return mask.expand(b, 1, t, h, w).contiguous() if h > 1 else mask


def dynamic_data(b=2, t=4, h=16, w=16, seed=0, coil_maps=None):
    mask = line_mask(b, t, w, seed)
    physics = DynamicMRI(mask=mask, coil_maps=coil_maps)
    x = torch.randn(b, 2, t, h, w, generator=torch.Generator().manual_seed(seed + 1))
    return physics(x), physics


def static_data(b=2, h=16, w=16, seed=0, coil_maps=None):
    mask = line_mask(b, 1, w, seed)[:, :, 0]  # (B, 1, 1, W)
    physics = DynamicMRI(mask=mask, coil_maps=coil_maps)
    x = torch.randn(b, 2, h, w, generator=torch.Generator().manual_seed(seed + 1))
    return physics(x), physics


def coil_maps(b: int, h: int, w: int) -> torch.Tensor:
    """Smooth complex maps of 3 coils, ``(B, 3, H, W)``, with ``sum_c |S_c|^2 = 1``."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    maps = []
    for cx, cy in [(-1.0, 0.0), (1.0, 0.0), (0.0, 1.0)]:
        maps.append(torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2)) * torch.exp(1j * (cx * xx + cy * yy)))
    s = torch.stack(maps).to(torch.complex64)
    s = s / s.abs().square().sum(0).sqrt()
    return s.expand(b, -1, -1, -1).clone()


def dc_error(x: torch.Tensor, y: torch.Tensor, physics) -> float:
    """Largest deviation of the output's measured samples from ``y``."""
    return (physics(x) - y).abs().max().item()


# -- shapes ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NETWORKS)
def test_dynamic_static_and_sequential_shapes(name):
    net = small(name)
    y, physics = dynamic_data(b=2, t=3)
    assert net(y, physics).shape == (2, 2, 3, 16, 16)
    y, physics = static_data(b=2)
    assert net(y, physics).shape == (2, 2, 16, 16)
    seq = SequentialMRI(mask=line_mask(2, 3, 16))
    ys = seq(torch.randn(2, 2, 16, 16))
    x = net(ys, seq)
    assert x.shape == (2, 2, 16, 16)
    # the convenience path is exactly "time average, then static"
    y_avg, physics_avg = seq.time_average(ys)
    torch.testing.assert_close(x, net(y_avg, physics_avg))


@pytest.mark.parametrize("name", NETWORKS)
def test_odd_image_sizes(name):
    net = build_model(name) if name == "unet" else small(name)  # default U-Net: 3 scales, pad to 8
    y, physics = dynamic_data(b=1, t=2, h=50, w=37)
    x = net(y, physics)
    assert x.shape == (1, 2, 2, 50, 37)
    assert torch.isfinite(x).all()
    y, physics = static_data(b=1, h=13, w=9)
    assert net(y, physics).shape == (1, 2, 13, 9)


# -- data consistency ----------------------------------------------------------------------


@pytest.mark.parametrize("init", ["view_sharing", "adjoint"])
@pytest.mark.parametrize("name", NETWORKS)
def test_exact_data_consistency(name, init):
    net = small(name, init=init)
    y, physics = dynamic_data()
    x = net(y, physics)
    assert dc_error(x, y, physics) < 1e-5
    # the reconstruction did change the unmeasured samples
    assert (x - physics.A_adjoint(y)).abs().max() > 1e-3
    y, physics = static_data()
    assert dc_error(net(y, physics), y, physics) < 1e-5


@pytest.mark.parametrize("name", ["unet", "cnn2dt"])
def test_data_consistency_can_be_switched_off(name):
    net = small(name, data_consistency=False)
    y, physics = dynamic_data()
    assert dc_error(net(y, physics), y, physics) > 1e-4


def test_soft_data_consistency_with_positive_lambda():
    net = small("unrolled", lam=0.5)
    y, physics = dynamic_data()
    x = net(y, physics)
    assert dc_error(x, y, physics) > 1e-4  # measured samples are blended, not kept
    learnt = small("unrolled", learn_lambda=True, lam=0.3)
    assert float(learnt.lam.detach()) == pytest.approx(0.3, rel=1e-5)
    assert float(small("unrolled", learn_lambda=True).lam.detach()) == pytest.approx(0.05, rel=1e-5)


# -- intensity normalisation -----------------------------------------------------------------


@pytest.mark.parametrize(
    "name, extra",
    [("unet", {}), ("cnn2dt", {}), ("unrolled", {}), ("unrolled", {"learn_lambda": True, "lam": 0.2})],
)
def test_scaling_the_data_scales_the_reconstruction(name, extra):
    net = small(name, **extra)
    for y, physics in (dynamic_data(), static_data()):
        with torch.no_grad():
            x = net(y, physics)
            x_big = net(1000 * y, physics)
        assert (x_big - 1000 * x).norm() <= 1e-4 * (1000 * x).norm()


def test_zero_data_gives_a_finite_reconstruction():
    net = small("unrolled")
    y, physics = dynamic_data()
    assert torch.isfinite(net(torch.zeros_like(y), physics)).all()


# -- training ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, extra",
    [("unet", {}), ("cnn2dt", {}), ("unrolled", {}), ("unrolled", {"learn_lambda": True})],
)
def test_gradients_reach_every_parameter(name, extra):
    net = small(name, **extra)
    y, physics = dynamic_data()
    x = net(y, physics)
    # a loss on other k-space samples, as in the splitting loss
    target = DynamicMRI(mask=1 - physics.mask)
    target(x).square().sum().backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None, pname
        assert p.grad.abs().sum() > 0, pname


def test_frames_are_processed_in_one_batched_call():
    calls = []
    for name, expected in (("unet", 1), ("unrolled", 2), ("cnn2dt", 1)):
        net = small(name)
        first_conv = next(m for m in net.modules() if isinstance(m, nn.Conv2d))
        handle = first_conv.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
        calls.clear()
        y, physics = dynamic_data(b=2, t=5)
        net(y, physics)
        handle.remove()
        assert calls == [10] * expected, name  # B*T = 10 images per call


# -- registry and checkpoints --------------------------------------------------------------------


@pytest.mark.parametrize("name", NETWORKS)
def test_rebuild_from_name_and_config(name):
    net = small(name, share_window=2)
    assert MODELS[name] is type(net) and net.name == name
    config = json.loads(json.dumps(net.config))  # what a checkpoint stores
    with torch.no_grad():  # move the weights away from any initialisation
        for p in net.parameters():
            p.add_(0.01 * torch.randn_like(p))
    torch.manual_seed(123)
    rebuilt = build_model(name, **config)
    rebuilt.load_state_dict(net.state_dict())
    y, physics = dynamic_data()
    torch.testing.assert_close(rebuilt(y, physics), net(y, physics), rtol=0, atol=0)


def test_rebuild_with_learnt_lambda():
    net = small("unrolled", learn_lambda=True)
    with torch.no_grad():
        net.lam_raw.fill_(1.5)
    rebuilt = build_model("unrolled", **net.config)
    rebuilt.load_state_dict(net.state_dict())
    assert float(rebuilt.lam.detach()) == pytest.approx(float(net.lam.detach()))


def test_registry_names_and_errors():
    assert set(MODELS) == {"unet", "cnn2dt", "unrolled", "tv"}
    assert (MODELS["unet"], MODELS["cnn2dt"], MODELS["unrolled"]) == (ResidualUNet, Conv2dtNet, UnrolledNet)
    with pytest.raises(ValueError, match="unknown model 'resnet'.*cnn2dt, tv, unet, unrolled"):
        build_model("resnet")
    with pytest.raises(ValueError, match="unknown option.*'unet'.*widht.*valid options:.*channels"):
        build_model("unet", widht=3)
    with pytest.raises(ValueError, match="init must be one of"):
        build_model("unrolled", init="zero")
    with pytest.raises(ValueError, match="share_window"):
        build_model("cnn2dt", share_window=0)
    with pytest.raises(ValueError, match="iterations"):
        build_model("unrolled", iterations=0)
    with pytest.raises(ValueError, match="lam"):
        build_model("unrolled", lam=-1.0)


def test_default_configs_and_parameter_counts():
    assert count_parameters(build_model("tv")) == 0 and build_model("tv").config == {"share_window": None}
    for name in NETWORKS:
        net = build_model(name)
        assert net.config["init"] == "view_sharing" and net.config["share_window"] is None
        assert count_parameters(net) == sum(p.numel() for p in net.parameters())
    unrolled = build_model("unrolled")
    assert unrolled.config["iterations"] == 2 and unrolled.config["lam"] == 0.0
    # 5 layers of 32 channels, 3x3: 2->32, 3 x 32->32, 32->2
    assert count_parameters(unrolled) == (2 * 32 * 9 + 32) + 3 * (32 * 32 * 9 + 32) + (32 * 2 * 9 + 2)
    assert build_model("cnn2dt").config["neighbours"] == 1
    assert count_parameters(build_model("unrolled", learn_lambda=True)) == count_parameters(unrolled) + 1


# -- initial image ----------------------------------------------------------------------------------


def test_view_sharing_window_of_one_frame_is_the_adjoint():
    y, physics = dynamic_data()
    a = small("unrolled", share_window=1)(y, physics)
    b = small("unrolled", init="adjoint")(y, physics)
    torch.testing.assert_close(a, b)
    c = small("unrolled")(y, physics)  # whole-sequence sharing gives another input
    assert (a - c).abs().max() > 1e-3


# -- frame structure ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FRAME_WISE)
def test_frame_wise_networks_treat_frames_independently(name):
    net = small(name, init="adjoint")
    y, physics = dynamic_data(b=2, t=5)
    with torch.no_grad():
        x = net(y, physics)
        for t in (0, 3):
            alone = net(y[:, :, t:t + 1], physics.with_mask(physics.mask[:, :, t:t + 1]))
            torch.testing.assert_close(alone[:, :, 0], x[:, :, t], rtol=1e-5, atol=1e-5)


def test_cnn2dt_sees_only_neighbouring_frames():
    net = small("cnn2dt", init="adjoint", neighbours=1)
    # the intensity scale is one number per sample, so it couples all frames: fix it here
    net.intensity_scale = lambda x0: torch.ones(x0.shape[0], 1, 1, 1, 1)
    y, physics = dynamic_data(b=1, t=6)
    y2 = y.clone()
    y2[:, :, 3] += torch.randn_like(y2[:, :, 3]) * physics.mask[:, 0, 3]
    with torch.no_grad():
        change = (net(y2, physics) - net(y, physics)).abs().amax(dim=(0, 1, 3, 4))
    assert (change[[0, 1, 5]] == 0).all()
    assert (change[[2, 3, 4]] > 1e-4).all()


def test_unrolled_with_neighbours_reaches_k_frames_per_iteration():
    net = small("unrolled", init="adjoint", neighbours=1, iterations=2)
    assert window_geometry(net).context == 2 and net.frame_wise is False
    net.intensity_scale = lambda x0: torch.ones(x0.shape[0], 1, 1, 1, 1)
    y, physics = dynamic_data(b=1, t=8)
    y2 = y.clone()
    y2[:, :, 4] += torch.randn_like(y2[:, :, 4]) * physics.mask[:, 0, 4]
    with torch.no_grad():
        x = net(y, physics)
        change = (net(y2, physics) - x).abs().amax(dim=(0, 1, 3, 4))
    assert (change[[0, 1, 7]] == 0).all()  # beyond 2 frames (1 per iteration): untouched
    assert (change[[2, 3, 4, 5, 6]] > 1e-5).all()
    torch.testing.assert_close(physics(x), y, rtol=1e-4, atol=1e-4)  # still exact data consistency
    rebuilt = build_model("unrolled", **net.config)
    assert rebuilt.neighbours == 1 and rebuilt.prior[0].in_channels == 6


def test_stack_neighbours_repeats_the_ends():
    x = torch.arange(3.0).reshape(1, 1, 3, 1, 1).expand(1, 2, 3, 1, 1) * torch.tensor([1.0, 10.0]).reshape(1, 2, 1, 1, 1)
    s = stack_neighbours(x, 1)[:, :, 0, 0]  # (T, 2 * 3)
    expected = torch.tensor([[0, 0, 1], [0, 1, 2], [1, 2, 2]], dtype=torch.float32)
    torch.testing.assert_close(s, torch.cat((expected, 10 * expected), dim=1))
    assert stack_neighbours(x, 0).shape == (3, 2, 1, 1)


# -- multi-coil ----------------------------------------------------------------------------------


def test_unrolled_multicoil_dynamic_and_static():
    maps = coil_maps(2, 16, 16)
    y, physics = dynamic_data(coil_maps=maps)
    assert y.shape == (2, 2, 4, 3, 16, 16)
    net = small("unrolled")
    x = net(y, physics)
    assert x.shape == (2, 2, 4, 16, 16)
    # conjugate gradient: data consistency is approximate, but far better than the input's
    residual = ((physics(x) - y).norm() / y.norm()).item()
    start = ((physics(physics.view_sharing(y)) - y).norm() / y.norm()).item()
    assert residual < 0.05 and residual < start / 10
    with torch.no_grad():
        x_big = net(1000 * y, physics)
    assert (x_big - 1000 * x).norm() <= 1e-4 * (1000 * x).norm()
    ys, physics_s = static_data(coil_maps=maps)
    assert ys.shape == (2, 2, 3, 16, 16)
    assert net(ys, physics_s).shape == (2, 2, 16, 16)
    seq = SequentialMRI(mask=line_mask(2, 3, 16), coil_maps=maps)
    assert net(seq(torch.randn(2, 2, 16, 16)), seq).shape == (2, 2, 16, 16)


@pytest.mark.parametrize("name", ["unet", "cnn2dt"])
def test_other_networks_run_multicoil(name):
    y, physics = dynamic_data(b=1, t=2, coil_maps=coil_maps(1, 16, 16))
    assert small(name)(y, physics).shape == (1, 2, 2, 16, 16)


# -- toy networks ----------------------------------------------------------------------------------------


def test_autoencoder_and_time_agnostic_net():
    ae = AutoEncoder(32, 2, 2)
    assert [type(m) for m in ae.encoder] == [nn.Linear, nn.ReLU, nn.Linear]
    assert (ae.encoder[0].in_features, ae.encoder[0].out_features, ae.encoder[2].out_features) == (32, 2, 2)
    assert ae.decoder[-1].out_features == 32
    x = torch.rand(3, 2, 4, 4)
    assert ae(x, "physics", extra=1).shape == x.shape
    with pytest.raises(ValueError, match="32 values"):
        ae(torch.rand(1, 2, 5, 5))

    net = TimeAgnosticNet(ae)
    seq = torch.rand(2, 2, 5, 4, 4)
    out = net(seq, "physics")
    assert out.shape == seq.shape
    # the same as applying the image network to every frame on its own
    for t in range(5):
        torch.testing.assert_close(out[:, :, t], ae(seq[:, :, t]))
    assert net(x).shape == x.shape


def test_time_agnostic_net_passes_extra_arguments():
    seen = {}

    class Probe(nn.Module):
        def forward(self, x, physics, scale=1.0):
            seen["shape"], seen["physics"] = tuple(x.shape), physics
            return x * scale

    out = TimeAgnosticNet(Probe())(torch.ones(2, 2, 3, 4, 4), "P", scale=2.0)
    assert seen == {"shape": (6, 2, 4, 4), "physics": "P"}
    assert torch.equal(out, torch.full((2, 2, 3, 4, 4), 2.0))


@pytest.mark.parametrize("name", NETWORKS)
def test_flip_ensemble_averages_the_eight_reflections_and_keeps_the_data(name):
    from a2a_cli.physics import Reflection

    y, physics = dynamic_data(b=1, t=4, h=15, w=16, coil_maps=coil_maps(1, 15, 16))
    plain, ens = small(name), small(name, flip_ensemble=True)
    ens.load_state_dict(plain.state_dict())
    plain.eval(), ens.eval()
    with torch.no_grad():
        expected = sum(g.image(plain(g.kspace(y), g.physics_of(physics))) for g in Reflection.all()) / 8
        out = ens(y, physics)
        assert torch.allclose(out, expected, atol=1e-5)
        assert not torch.allclose(out, plain(y, physics), atol=1e-4)  # it does change the output
        # every variant keeps the measured samples, so the average does (single coil: exact DC)
        y1, physics1 = dynamic_data(b=1, t=4, h=15, w=16)
        assert dc_error(ens(y1, physics1), y1, physics1) < 1e-5 * y1.abs().max().item()
        # training mode: one pass, as without the ensemble
        ens.train(), plain.train()
        assert torch.equal(ens(y, physics), plain(y, physics))
    assert build_model(name, **ens.config).flip_ensemble is True


# -- the contract with windowed reconstruction ---------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SMALL))
def test_explicit_scale_replaces_the_input_scale(name):
    net = small(name, init="adjoint", flip_ensemble=True).eval()
    with torch.no_grad():  # away from the near-identity start, so that the scale matters
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    y, physics = dynamic_data(b=1, t=2)
    own = net.intensity_scale(net.initial_image(y, physics))
    with torch.no_grad():
        default = net(y, physics)
        torch.testing.assert_close(net(y, physics, scale=own), default)  # reflections round the mean differently
        other = net(y, physics, scale=3 * own)
    assert (other - default).abs().max() > 1e-4  # the scale given is the one used
    assert "intensity_scale" not in vars(net)


def test_networks_declare_their_window_geometry(tmp_path):
    from a2a_cli.checkpoints import load_checkpoint, save_checkpoint
    from a2a_cli.models import WindowGeometry, window_geometry

    assert small("unrolled", init="adjoint").window == WindowGeometry(block=1, context=0)
    assert small("unrolled", share_window=3).window == (3, 0)
    assert small("unet").window == (0, 0)  # view sharing over the whole sequence: one block
    net = small("cnn2dt", neighbours=2, share_window=4)
    assert net.window == (4, 2) == window_geometry(net)
    assert window_geometry(TimeAgnosticNet(AutoEncoder(32, 2, 2))) == (1, 0)  # not a ReconstructionNet: frame by frame
    save_checkpoint(tmp_path / "net.pt", net, "dynamic")  # the geometry comes back from the stored options
    assert load_checkpoint(tmp_path / "net.pt").build_model().window == (4, 2)


# -- data consistency with the view-shared samples (shared_dc) -----------------------------


def _k(x: torch.Tensor) -> torch.Tensor:
    """Centred k-space of real-pair images ``(B, 2, T, H, W)`` -> complex ``(B, T, H, W)``."""
    return fft2c(to_complex(x))


def _hard(net: nn.Module) -> nn.Module:
    """``net`` with its shared-sample weight at (almost) 1: shared samples kept exactly."""
    with torch.no_grad():
        net.shared_logit.fill_(30.0)
    return net


def test_shared_samples_step_single_coil_closed_form():
    y, physics = dynamic_data(t=4)
    shared = physics.with_shared_samples(y, fraction=0.25)
    own = physics.mask[:, :1] != 0
    union = own.any(dim=2, keepdim=True).expand_as(own)
    assert torch.equal(shared.shared_mask.unsqueeze(1) != 0, union & ~own)
    assert (~union).any()  # the data leave holes
    z = torch.randn(2, 2, 4, 16, 16)
    k, kz, ky = _k(shared.prox_l2(z, y, 0.0)), _k(z), to_complex(y)
    kv = _k(physics.view_sharing(y))  # view sharing's k-space: the block averages at shared locations
    own, union = own[:, 0].expand_as(k), union[:, 0].expand_as(k)
    sh = union & ~own
    assert torch.allclose(k[own], ky[own], atol=1e-5)                         # own samples: kept
    assert torch.allclose(k[sh], 0.25 * kv[sh] + 0.75 * kz[sh], atol=1e-5)    # shared: a quarter of the way
    assert torch.allclose(k[~union], kz[~union], atol=1e-5)                   # holes: the estimate's


@pytest.mark.parametrize("name", NETWORKS)
def test_shared_dc_with_full_weight_changes_only_what_no_frame_measured(name):
    y, physics = dynamic_data(t=4)
    x = _hard(small(name, shared_dc=True))(y, physics)
    assert dc_error(x, y, physics) < 1e-5  # the frame's own samples
    own = (physics.mask[:, 0] != 0).expand(2, 4, 16, 16)
    union = own.any(dim=1, keepdim=True).expand_as(own)
    kx, kv = _k(x), _k(physics.view_sharing(y))
    assert torch.allclose(kx[union], kv[union], atol=1e-4)  # shared samples: the block's averages
    assert (kx[~union] - kv[~union]).abs().max() > 1e-3  # holes: filled by the network
    # without shared_dc the network changes the shared samples too
    assert (_k(small(name)(y, physics))[union & ~own] - kv[union & ~own]).abs().max() > 1e-3


def test_shared_weight_is_learnt():
    y, physics = dynamic_data(t=4)
    net = small("unrolled", shared_dc=True)
    assert abs(net.shared_fraction.item() - 0.75) < 1e-6
    net(y, physics).square().mean().backward()
    assert net.shared_logit.grad is not None and net.shared_logit.grad.abs() > 0


def test_shared_dc_respects_the_view_sharing_block():
    y, physics = dynamic_data(t=4, seed=3)
    shared = physics.with_shared_samples(y, window=2)
    m = physics.mask[:, 0, :, 0] != 0  # (B, T, W)
    for start in (0, 2):
        union = m[:, start:start + 2].any(dim=1)  # (B, W)
        for t in (start, start + 1):
            assert torch.equal(shared.shared_mask[:, t, 0] != 0, union & ~m[:, t])
    assert small("unrolled", shared_dc=True, share_window=2).window.block == 2


def test_shared_dc_multicoil():
    maps = coil_maps(2, 16, 16)
    y, physics = dynamic_data(coil_maps=maps)
    x = small("unrolled", shared_dc=True)(y, physics)
    # conjugate gradient: the frame's own samples are fitted approximately
    assert ((physics(x) - y).norm() / y.norm()).item() < 0.05
    # on a static object the shared samples agree with the frame's own, and the full weight keeps both
    obj = torch.randn(2, 2, 1, 16, 16).expand(2, 2, 4, 16, 16)
    y = physics(obj)
    x = _hard(small("unrolled", shared_dc=True))(y, physics)
    union = physics.with_mask((physics.mask != 0).any(dim=2, keepdim=True).expand_as(physics.mask).float())
    plain = small("unrolled")(y, physics)
    err = [((union(v) - union(obj)).norm() / union(obj).norm()).item() for v in (x, plain)]
    assert err[0] < 0.1 and err[0] < err[1], err  # approximate: a coil-combined correction, then CG


def test_shared_dc_is_stored_only_when_set_and_rebuilds():
    net = small("unrolled", shared_dc=True)
    assert net.config["shared_dc"] is True
    with torch.no_grad():
        net.shared_logit.fill_(-1.0)
    again = build_model("unrolled", **net.config)
    again.load_state_dict(net.state_dict())
    assert again.shared_dc and again.shared_fraction.item() == net.shared_fraction.item()
    # a configuration written before the option existed rebuilds without it
    assert "shared_dc" not in small("unrolled").config and not build_model("unrolled").shared_dc
    # static and sequential data have nothing to share: the option changes nothing there
    ys, physics_s = static_data()
    assert torch.allclose(small("unrolled", shared_dc=True)(ys, physics_s), small("unrolled")(ys, physics_s), atol=1e-6)


def test_shared_dc_is_a_no_op_where_every_frame_measures_the_same_lines():
    mask = line_mask(2, 1, 16).expand(2, 1, 4, 1, 16).contiguous()
    physics = DynamicMRI(mask=mask, coil_maps=coil_maps(2, 16, 16))
    y = physics(torch.randn(2, 2, 4, 16, 16))
    assert physics.with_shared_samples(y) is physics
    assert torch.equal(small("unrolled", shared_dc=True)(y, physics), small("unrolled")(y, physics))
