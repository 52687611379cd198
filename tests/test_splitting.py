"""Tests for the Artifact2Artifact / Phase2Phase time-splitting losses."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from a2a_cli.errors import A2AError
from a2a_cli.physics import DynamicMRI, SequentialMRI, gather_time
from a2a_cli.splitting import (
    Artifact2ArtifactLoss,
    Phase2PhaseLoss,
    SplitDraw,
    SplittingError,
    SplittingModel,
)

from a2a_cli.models import AutoEncoder, TimeAgnosticNet


# -- helpers ------------------------------------------------------------------------------


def line_mask(t: int, h: int = 4, w: int = 8, batch: int = 1) -> torch.Tensor:
    """Interleaved phase-encode lines, a different set per frame, centre always sampled."""
    mask = torch.zeros(batch, 1, t, h, w)
    for f in range(t):
        mask[:, :, f, :, f % w :: max(t, 2)] = 1
        mask[:, :, f, :, f % w :: 3] = 1
    mask[..., w // 2] = 1
    return mask


def static_video(batch: int, t: int, h: int = 4, w: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """A static object ``(B, 2, H, W)`` and the video of it repeated over ``t`` frames."""
    x = torch.randn(batch, 2, h, w)
    return x, x.unsqueeze(2).expand(batch, 2, t, h, w).contiguous()


class Oracle(nn.Module):
    """Returns a fixed answer: ``answer[:, :, :k]`` for a k-frame chunk, or a static image."""

    def __init__(self, answer: torch.Tensor):
        super().__init__()
        self.answer = answer
        self.dummy = nn.Parameter(torch.zeros(()))
        self.seen: list[tuple[torch.Tensor, object]] = []

    def forward(self, y, physics):
        self.seen.append((y, physics))
        if self.answer.ndim == 5:
            return self.answer[:, :, : y.shape[2]] + self.dummy
        return self.answer + self.dummy


class FrameConv(nn.Module):
    """Small conv net on the zero-filled image, frame by frame (or on one static image)."""

    def __init__(self, dropout: float = 0.0):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Dropout(dropout), nn.Conv2d(4, 2, 3, padding=1)
        )

    def forward(self, y, physics):
        x0 = physics.A_adjoint(y)
        if x0.ndim == 4:
            return x0 + self.body(x0)
        b, c, t, h, w = x0.shape
        folded = x0.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        out = folded + self.body(folded)
        return out.reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4)


class Zerofill(nn.Module):
    def forward(self, y, physics):
        return physics.A_adjoint(y)


def frames_of(index_row: torch.Tensor) -> set[int]:
    return set(index_row.tolist())


# -- the reference documentation's examples --------------------------------------------------------------------


def test_seed_examples_run_and_give_positive_loss():
    torch.manual_seed(0)
    x = torch.rand((1, 2, 4, 4, 4))  # B, C, T, H, W
    mask = torch.zeros((1, 2, 4, 4, 4))
    mask[:, :, torch.arange(4), torch.arange(4) % 4, :] = 1  # Create time-varying mask

    physics = DynamicMRI(mask=mask)
    loss = Artifact2ArtifactLoss((2, 4, 4, 4))
    model = TimeAgnosticNet(AutoEncoder(32, 2, 2))  # Example video network
    model = loss.adapt_model(model)  # Adapt model to perform Artifact2Artifact
    assert isinstance(model, SplittingModel) and isinstance(model.model, TimeAgnosticNet)

    y = physics(x)
    x_net = model(y, physics, update_parameters=True)  # save random mask in forward pass
    value = loss(x_net, y, physics, model)
    assert value.item() > 0

    physics = SequentialMRI(mask=mask)  # mask is B, C, T, H, W
    loss = Artifact2ArtifactLoss((2, 4, 4, 4), dynamic_model=False)  # Process static images x

    model = AutoEncoder(32, 2, 2)  # Example image reconstruction network
    model = loss.adapt_model(model)  # Adapt model to perform Artifact2Artifact

    x = torch.rand((1, 2, 4, 4))  # B, C, H, W
    y = physics(x)  # B, C, T, H, W
    x_net = model(y, physics, update_parameters=True)
    value = loss(x_net, y, physics, model)
    assert value.item() > 0


# -- the split itself --------------------------------------------------------------------------


@pytest.mark.parametrize("split_size", [2, 3, (1, 2, 3)])
def test_input_and_target_chunks_are_disjoint_per_sample(split_size):
    torch.manual_seed(1)
    b, t = 4, 6
    mask = line_mask(t, h=2, w=4)
    y = DynamicMRI(mask=mask)(torch.randn(b, 2, t, 2, 4))
    physics = DynamicMRI(mask=mask)
    loss = Artifact2ArtifactLoss((2, t, 2, 4), split_size=split_size)
    net = Oracle(torch.zeros(b, 2, t, 2, 4))
    model = loss.adapt_model(net)
    sizes = {split_size} if isinstance(split_size, int) else set(split_size)
    seen_sizes, samples_differ = set(), False
    for _ in range(60):
        x_net = model(y, physics)
        draw = model.last_split.draw
        s = draw.chunk_size
        seen_sizes.add(s)
        assert s in sizes and draw.n_chunks == t // s and draw.n_frames == t
        index = draw.input_index
        assert index.shape == (b, s)
        # the network saw exactly the input frames of y and of the mask
        y_in, phys_in = net.seen[-1]
        assert torch.equal(y_in, gather_time(y, index))
        assert torch.equal(phys_in.mask, gather_time(mask, index))
        assert x_net.shape == (b, 2, s, 2, 4)
        loss(x_net, y, physics, model)
        (targets,) = model.last_split.targets
        target_index = draw.frames(targets)
        for row_in, row_t, c_in, c_t in zip(index, target_index, draw.input_chunks, targets):
            assert c_in != c_t
            assert row_in.tolist() == list(range(int(c_in) * s, int(c_in) * s + s))
            assert row_t.tolist() == list(range(int(c_t) * s, int(c_t) * s + s))
            assert not frames_of(row_in) & frames_of(row_t)
        samples_differ |= len(set(draw.input_chunks.tolist())) > 1
    assert seen_sizes == sizes  # every configured size gets drawn
    assert samples_differ  # each sample draws its own chunk


def test_target_never_equals_input_over_many_draws():
    torch.manual_seed(2)
    loss = Artifact2ArtifactLoss((2, 8, 4, 4), split_size=2)
    counts = torch.zeros(4, 4)
    for _ in range(300):
        draw = loss._random_draw(5, 8, torch.device("cpu"))
        (targets,) = loss.target_chunks(draw)
        assert bool((targets != draw.input_chunks).all())
        for c, tgt in zip(draw.input_chunks.tolist(), targets.tolist()):
            counts[c, tgt] += 1
    off_diagonal = counts[~torch.eye(4, dtype=torch.bool)]
    assert counts.diagonal().sum() == 0
    assert off_diagonal.min() > 0  # every other chunk is used as a target


# -- value of the loss -----------------------------------------------------------------------


@pytest.mark.parametrize("options", [{}, {"all_pairs": True}, {"neighbours_only": True}, {"split_size": (1, 2)}])
def test_loss_zero_for_true_static_object_dynamic(options):
    torch.manual_seed(3)
    b, t = 3, 4
    x_static, video = static_video(b, t)
    physics = DynamicMRI(mask=line_mask(t))
    y = physics(video)
    options = {"split_size": 2, **options}
    loss = Artifact2ArtifactLoss((2, t, 4, 8), **options)
    model = loss.adapt_model(Oracle(video))
    for _ in range(5):
        assert loss(model(y, physics), y, physics, model).item() < 1e-10
    wrong = loss.adapt_model(Oracle(video + 0.3 * torch.randn_like(video)))
    assert loss(wrong(y, physics), y, physics, wrong).item() > 1e-3


@pytest.mark.parametrize("options", [{}, {"all_pairs": True}])
def test_loss_zero_for_true_static_object_sequential(options):
    torch.manual_seed(4)
    b, t = 2, 6
    x_static, _ = static_video(b, t)
    physics = SequentialMRI(mask=line_mask(t))
    y = physics(x_static)
    loss = Artifact2ArtifactLoss((2, t, 4, 8), split_size=(2, 3), dynamic_model=False, **options)
    net = Oracle(x_static)
    model = loss.adapt_model(net)
    for _ in range(5):
        x_net = model(y, physics)
        assert x_net.shape == (b, 2, 4, 8)
        assert loss(x_net, y, physics, model).item() < 1e-10
        # the static network got the time-averaged chunk and a single-image operator
        y_in, phys_in = net.seen[-1]
        assert y_in.shape == (b, 2, 4, 8) and phys_in.mask.ndim == 4
    wrong = loss.adapt_model(Oracle(x_static.flip(-1)))
    assert loss(wrong(y, physics), y, physics, wrong).item() > 1e-3


def test_dynamic_output_frame_k_is_scored_against_target_frame_k():
    # an object periodic with the chunk length looks the same in every chunk, frame by frame
    torch.manual_seed(5)
    b, t, s = 2, 6, 3
    base = torch.randn(b, 2, s, 4, 8)
    video = base.repeat(1, 1, t // s, 1, 1)
    physics = DynamicMRI(mask=line_mask(t))
    y = physics(video)
    loss = Artifact2ArtifactLoss((2, t, 4, 8), split_size=s, all_pairs=True)
    right = loss.adapt_model(Oracle(base))
    assert loss(right(y, physics), y, physics, right).item() < 1e-10
    shifted = loss.adapt_model(Oracle(base.roll(1, dims=2)))
    assert loss(shifted(y, physics), y, physics, shifted).item() > 1e-2


def test_loss_is_normalised_by_target_mask_mean():
    torch.manual_seed(6)
    b, t = 2, 4
    mask = line_mask(t)
    physics = DynamicMRI(mask=mask)
    y = physics(torch.randn(b, 2, t, 4, 8))
    loss = Artifact2ArtifactLoss((2, t, 4, 8), split_size=1, all_pairs=True)
    x_out = torch.randn(b, 2, 1, 4, 8)
    model = loss.adapt_model(Oracle(x_out))
    x_net = model(y, physics)
    value = loss(x_net, y, physics, model)
    # by hand: the mean over all other frames of MSE / sampled fraction
    expected = []
    for shift in range(1, t):
        idx = ((model.last_split.draw.input_chunks + shift) % t).reshape(b, 1)
        target = physics.split_time(idx)
        mse = nn.functional.mse_loss(target.A(x_net), gather_time(y, idx))
        expected.append(mse / target.mask.mean())
    assert torch.allclose(value, torch.stack(expected).mean(), rtol=1e-5)


def test_unsampled_kspace_in_y_is_ignored():
    torch.manual_seed(7)
    x_static, video = static_video(2, 4)
    mask = line_mask(4)
    physics = DynamicMRI(mask=mask)
    y = physics(video) + (1 - mask) * torch.randn(2, 2, 4, 4, 8)  # noise off the mask
    loss = Artifact2ArtifactLoss((2, 4, 4, 8))
    model = loss.adapt_model(Oracle(video))
    assert loss(model(y, physics), y, physics, model).item() < 1e-10


@pytest.mark.parametrize("dynamic", [True, False])
def test_gradients_reach_every_parameter(dynamic):
    torch.manual_seed(8)
    b, t = 2, 4
    mask = line_mask(t)
    x_static, video = static_video(b, t)
    physics = DynamicMRI(mask=mask) if dynamic else SequentialMRI(mask=mask)
    y = physics(video if dynamic else x_static)
    loss = Artifact2ArtifactLoss((2, t, 4, 8), split_size=2, dynamic_model=dynamic)
    model = loss.adapt_model(FrameConv())
    loss(model(y, physics), y, physics, model).backward()
    for name, p in model.model.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name
    # the wrapper adds no parameters or state of its own
    assert set(model.state_dict()) == {"model." + k for k in model.model.state_dict()}


# -- eval mode --------------------------------------------------------------------------------


def test_eval_mode_dynamic_returns_all_frames():
    torch.manual_seed(9)
    mask = line_mask(6)
    physics = DynamicMRI(mask=mask)
    y = physics(torch.randn(2, 2, 6, 4, 8))
    loss = Artifact2ArtifactLoss((2, 6, 4, 8), split_size=2)
    net = Oracle(torch.zeros(2, 2, 6, 4, 8))
    model = loss.adapt_model(net).eval()
    out = model(y, physics)
    assert out.shape == (2, 2, 6, 4, 8)
    assert net.seen[-1][0] is y and net.seen[-1][1] is physics
    # no split is left for the loss to score against
    with pytest.raises(ValueError, match="adapt_model"):
        loss(out, y, physics, model)


def test_eval_mode_sequential_returns_one_image():
    torch.manual_seed(10)
    mask = line_mask(6)
    physics = SequentialMRI(mask=mask)
    x = torch.randn(2, 2, 4, 8)
    y = physics(x)
    loss = Artifact2ArtifactLoss((2, 6, 4, 8), split_size=3, dynamic_model=False)
    net = Oracle(x)
    model = loss.adapt_model(net).eval()
    assert model(y, physics).shape == (2, 2, 4, 8)
    y_avg, phys = net.seen[-1]
    expected, _ = physics.time_average(y)
    assert torch.equal(y_avg, expected)
    # time averaging keeps every sample: the pseudo-inverse recovers the image where sampled
    assert torch.equal(phys.mask, (mask.sum(2) > 0).float())


# -- Phase2Phase --------------------------------------------------------------------------------


@pytest.mark.parametrize("t", [6, 7])
def test_phase2phase_pairs_frame_2k_with_2k_plus_1(t):
    torch.manual_seed(11)
    b, h = 2, t // 2
    video = torch.randn(b, 2, t, 4, 8)  # every frame different
    mask = line_mask(t)
    physics = DynamicMRI(mask=mask)
    y = physics(video)
    loss = Phase2PhaseLoss((2, t, 4, 8))
    net = Oracle(video[:, :, 1 : 2 * h : 2])  # the odd frames: what the target holds
    model = loss.adapt_model(net)
    x_net = model(y, physics)
    assert x_net.shape == (b, 2, h, 4, 8)
    y_in, phys_in = net.seen[-1]
    assert torch.equal(y_in, y[:, :, 0 : 2 * h : 2])  # even frames; with odd T the last is dropped
    assert torch.equal(phys_in.mask, mask[:, :, 0 : 2 * h : 2].expand(b, -1, -1, -1, -1))
    assert model.last_split.draw.input_index[0].tolist() == list(range(0, 2 * h, 2))
    assert loss.target_chunks(model.last_split.draw)[0].tolist() == [1] * b
    assert loss(x_net, y, physics, model).item() < 1e-10
    # any other pairing (even frames, or odd frames shifted by one pair) is penalised
    for wrong in (video[:, :, 0 : 2 * h : 2], video[:, :, 1 : 2 * h : 2].roll(1, dims=2)):
        other = loss.adapt_model(Oracle(wrong))
        assert loss(other(y, physics), y, physics, other).item() > 1e-2
    # evaluate is the same single even -> odd pairing
    assert loss.evaluate(model, y, physics).item() < 1e-10
    assert model.eval()(y, physics).shape == (b, 2, h, 4, 8)  # the oracle ignores its input
    assert net.seen[-1][0] is y


def test_phase2phase_sequential_and_short_sequences():
    torch.manual_seed(12)
    x = torch.randn(1, 2, 4, 8)
    physics = SequentialMRI(mask=line_mask(5))
    y = physics(x)
    loss = Phase2PhaseLoss((2, 5, 4, 8), dynamic_model=False)
    model = loss.adapt_model(Oracle(x))
    assert loss(model(y, physics), y, physics, model).item() < 1e-10
    with pytest.raises(ValueError, match="at least 2 frames"):
        Phase2PhaseLoss((2, 1, 4, 8))
    y1 = DynamicMRI(mask=line_mask(1))(torch.randn(1, 2, 1, 4, 8))
    with pytest.raises(ValueError, match="T=1"):
        loss.adapt_model(Zerofill())(y1, DynamicMRI(mask=line_mask(1)))


# -- target options and evaluate -----------------------------------------------------------------


def test_all_pairs_and_neighbours_only_targets():
    draw = SplitDraw(n_frames=8, chunk_size=2, n_chunks=4, input_chunks=torch.tensor([0, 1, 2, 3]))
    all_pairs = Artifact2ArtifactLoss((2, 8, 4, 4), all_pairs=True).target_chunks(draw)
    assert len(all_pairs) == 3
    for b, c in enumerate(draw.input_chunks.tolist()):
        assert sorted(int(tg[b]) for tg in all_pairs) == [j for j in range(4) if j != c]

    near = Artifact2ArtifactLoss((2, 8, 4, 4), neighbours_only=True)
    torch.manual_seed(13)
    seen = {c: set() for c in range(4)}
    for _ in range(100):
        (tg,) = near.target_chunks(draw)
        for c, j in zip(draw.input_chunks.tolist(), tg.tolist()):
            assert abs(c - j) == 1
            seen[c].add(j)
    assert seen == {0: {1}, 1: {0, 2}, 2: {1, 3}, 3: {2}}

    both = Artifact2ArtifactLoss((2, 8, 4, 4), neighbours_only=True, all_pairs=True).target_chunks(draw)
    assert [tg.tolist() for tg in both] == [[1, 0, 1, 2], [1, 2, 3, 2]]


def test_all_pairs_loss_has_no_randomness():
    torch.manual_seed(14)
    physics = DynamicMRI(mask=line_mask(6))
    y = physics(torch.randn(2, 2, 6, 4, 8))
    loss = Artifact2ArtifactLoss((2, 6, 4, 8), split_size=2, all_pairs=True)
    model = loss.adapt_model(FrameConv())
    x_net = model(y, physics)
    values = {loss(x_net, y, physics, model).item() for _ in range(5)}
    assert len(values) == 1


def test_evaluate_is_deterministic_and_matches_definition():
    torch.manual_seed(15)
    b, t = 2, 6
    physics = DynamicMRI(mask=line_mask(t))
    y = physics(torch.randn(b, 2, t, 4, 8))
    loss = Artifact2ArtifactLoss((2, t, 4, 8), split_size=(2, 3))
    net = FrameConv(dropout=0.5)  # evaluate must switch dropout off
    model = loss.adapt_model(net)
    first = loss.evaluate(model, y, physics)
    assert first.item() == loss.evaluate(model, y, physics).item()
    assert first.item() == loss.evaluate(net, y, physics).item()  # the bare network too
    assert not first.requires_grad
    assert model.model.training  # mode restored
    # split_size defaults to the first configured size; every input chunk against all others
    by_hand = []
    with torch.no_grad():
        net.eval()
        for i in range(3):
            idx = (torch.arange(2) + 2 * i).expand(b, 2)
            out = net(gather_time(y, idx), physics.split_time(idx))
            for j in range(3):
                if j != i:
                    jdx = (torch.arange(2) + 2 * j).expand(b, 2)
                    tgt = physics.split_time(jdx)
                    by_hand.append(nn.functional.mse_loss(tgt.A(out), gather_time(y, jdx)) / tgt.mask.mean())
    assert torch.allclose(first, torch.stack(by_hand).mean(), rtol=1e-5)
    other = loss.evaluate(model, y, physics, split_size=3)
    assert other.item() == loss.evaluate(model, y, physics, split_size=3).item()
    with pytest.raises(ValueError, match="does not divide"):
        loss.evaluate(model, y, physics, split_size=4)


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "split_size, words",
    [
        (3, ["split_size 3", "does not divide", "T=4", "(1, 2)"]),
        (4, ["split_size 4", "at least two chunks", "(1, 2)"]),
        (0, ["positive"]),
        (-2, ["positive"]),
        ((2, 3), ["split_size 3", "does not divide"]),
        ((), ["non-empty"]),
        (2.0, ["integer"]),
    ],
)
def test_bad_split_size_is_a_clear_error(split_size, words):
    with pytest.raises(ValueError) as info:
        Artifact2ArtifactLoss((2, 4, 4, 4), split_size=split_size)
    for word in words:
        assert word in str(info.value)
    assert isinstance(info.value, A2AError)  # the command line reports it without a traceback


def test_split_size_is_checked_against_the_data():
    loss = Artifact2ArtifactLoss((2, 4, 4, 8), split_size=2)
    model = loss.adapt_model(Zerofill())
    for t, words in [(5, ["does not divide", "T=5"]), (2, ["at least two chunks", "T=2"])]:
        physics = DynamicMRI(mask=line_mask(t))
        y = physics(torch.randn(1, 2, t, 4, 8))
        with pytest.raises(ValueError) as info:
            model(y, physics)
        for word in words:
            assert word in str(info.value)
    # another T that fits is fine: T comes from the data
    physics = DynamicMRI(mask=line_mask(6))
    y = physics(torch.randn(1, 2, 6, 4, 8))
    x_net = model(y, physics)
    assert model.last_split.draw.n_chunks == 3
    assert loss(x_net, y, physics, model).item() >= 0


def test_shape_and_usage_errors():
    loss = Artifact2ArtifactLoss((2, 4, 4, 8), split_size=2)
    model = loss.adapt_model(Zerofill())
    y = DynamicMRI(mask=line_mask(4))(torch.randn(1, 2, 4, 4, 8))

    with pytest.raises(ValueError, match="5D mask"):
        model(y, DynamicMRI(mask=torch.ones(1, 1, 4, 8)))
    with pytest.raises(ValueError, match="has 3 frames but y has T=4"):
        model(y, DynamicMRI(mask=line_mask(3)))
    with pytest.raises(ValueError, match=r"\(B, 2, T, H, W\)"):
        model(y[:, :, 0], DynamicMRI(mask=line_mask(4)))

    physics = DynamicMRI(mask=line_mask(4))
    with pytest.raises(ValueError, match="adapt_model"):
        loss(y[:, :, :2], y, physics, Zerofill())  # bare network
    with pytest.raises(ValueError, match="training mode first"):
        loss(y[:, :, :2], y, physics, loss.adapt_model(Zerofill()))  # adapted, never run

    x_net = model(y, physics)
    with pytest.raises(ValueError, match="dynamic_model=False"):
        loss(x_net[:, :, 0], y, physics, model)
    with pytest.raises(ValueError, match="drawn for B=1, T=4"):
        loss(x_net, torch.cat([y, y]), physics, model)
    static = Artifact2ArtifactLoss((2, 4, 4, 8), dynamic_model=False)
    smodel = static.adapt_model(Zerofill())
    with pytest.raises(ValueError, match="dynamic_model=True"):
        static(smodel(y, SequentialMRI(mask=line_mask(4))).unsqueeze(2), y, physics, smodel)
    with pytest.raises(ValueError, match=r"\(C, T, H, W\)"):
        Artifact2ArtifactLoss((4,))
    with pytest.raises(SplittingError):
        Artifact2ArtifactLoss((2, 1, 4, 4), split_size=1)


# -- multi-coil -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dynamic", [True, False])
def test_multicoil_loss_zero_for_true_static_object(dynamic):
    torch.manual_seed(16)
    b, t, n = 2, 4, 3
    maps = torch.randn(b, n, 4, 8, dtype=torch.complex64)
    maps = maps / maps.abs().pow(2).sum(1, keepdim=True).sqrt()
    mask = line_mask(t)
    x_static, video = static_video(b, t)
    physics = DynamicMRI(mask=mask, coil_maps=maps) if dynamic else SequentialMRI(mask=mask, coil_maps=maps)
    y = physics(video if dynamic else x_static)
    assert y.shape == (b, 2, t, n, 4, 8)
    loss = Artifact2ArtifactLoss((2, t, 4, 8), split_size=(1, 2), dynamic_model=dynamic)
    truth = video if dynamic else x_static
    model = loss.adapt_model(Oracle(truth))
    for _ in range(4):
        assert loss(model(y, physics), y, physics, model).item() < 1e-10
    assert loss.evaluate(model, y, physics).item() < 1e-10
    wrong = loss.adapt_model(Oracle(truth * 1.5))
    assert loss(wrong(y, physics), y, physics, wrong).item() > 1e-3
    # a network that uses the operator it is given runs on coil data as well
    conv = loss.adapt_model(FrameConv())
    assert loss(conv(y, physics), y, physics, conv).item() > 0
    assert conv.eval()(y, physics).shape == ((b, 2, t, 4, 8) if dynamic else (b, 2, 4, 8))


def test_mask_shared_by_batch_and_frames_broadcasts():
    torch.manual_seed(17)
    x_static, video = static_video(3, 4)
    shared = DynamicMRI(mask=line_mask(1))  # one mask for every frame and sample
    y = shared(video)
    loss = Artifact2ArtifactLoss((2, 4, 4, 8), split_size=2)
    model = loss.adapt_model(Oracle(video))
    assert loss(model(y, shared), y, shared, model).item() < 1e-10


# -- property test ------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    t=st.integers(2, 24),
    split=st.one_of(st.integers(-2, 26), st.lists(st.integers(-1, 25), min_size=1, max_size=3).map(tuple)),
    b=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_property_split_is_valid_or_a_clear_error(t, split, b, seed):
    torch.manual_seed(seed)
    sizes = (split,) if isinstance(split, int) else split
    valid = all(s > 0 and t % s == 0 and t // s >= 2 for s in sizes)
    if not valid:
        with pytest.raises(ValueError) as info:
            Artifact2ArtifactLoss((2, t, 2, 2), split_size=split)
        assert "split_size" in str(info.value)
        return
    loss = Artifact2ArtifactLoss((2, t, 2, 2), split_size=split)
    mask = torch.ones(1, 1, t, 2, 2)
    physics = DynamicMRI(mask=mask)
    y = physics(torch.randn(b, 2, t, 2, 2))
    model = loss.adapt_model(Zerofill())
    x_net = model(y, physics)
    draw = model.last_split.draw
    s = draw.chunk_size
    assert s in sizes and x_net.shape == (b, 2, s, 2, 2)
    value = loss(x_net, y, physics, model)
    assert math.isfinite(value.item())
    (targets,) = model.last_split.targets
    for row_in, row_t in zip(draw.input_index, draw.frames(targets)):
        assert len(row_in) == len(row_t) == s
        assert row_in.tolist() == list(range(row_in[0], row_in[0] + s))
        assert 0 <= min(row_in.tolist() + row_t.tolist()) and max(row_in.tolist() + row_t.tolist()) < t
        assert not frames_of(row_in) & frames_of(row_t)


@settings(max_examples=60, deadline=None)
@given(
    n_chunks=st.integers(2, 8),
    b=st.integers(1, 6),
    all_pairs=st.booleans(),
    neighbours_only=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_property_targets_are_other_chunks_as_configured(n_chunks, b, all_pairs, neighbours_only, seed):
    torch.manual_seed(seed)
    loss = Artifact2ArtifactLoss((2, n_chunks, 2, 2), split_size=1, all_pairs=all_pairs, neighbours_only=neighbours_only)
    draw = loss._random_draw(b, n_chunks, torch.device("cpu"))
    targets = loss.target_chunks(draw)
    inputs = draw.input_chunks.tolist()
    per_sample = [[int(t[i]) for t in targets] for i in range(b)]
    for c, chosen in zip(inputs, per_sample):
        assert all(0 <= t < n_chunks and t != c for t in chosen)
        if neighbours_only:
            assert all(abs(t - c) == 1 for t in chosen)
            assert len(chosen) == (2 if all_pairs else 1)
            if all_pairs:
                assert set(chosen) == {t for t in (c - 1, c + 1) if 0 <= t < n_chunks}
        elif all_pairs:
            assert sorted(chosen) == [t for t in range(n_chunks) if t != c]  # every other chunk exactly once
        else:
            assert len(chosen) == 1


@settings(max_examples=40, deadline=None)
@given(t=st.integers(2, 24), b=st.integers(1, 3))
def test_property_phase2phase_pairs_even_input_with_odd_target(t, b):
    loss = Phase2PhaseLoss((2, t, 2, 2))
    draw = loss._random_draw(b, t, torch.device("cpu"))
    (targets,) = loss.target_chunks(draw)
    for row_in, row_t in zip(draw.input_index.tolist(), draw.frames(targets).tolist()):
        assert row_in == list(range(0, 2 * (t // 2), 2))
        assert row_t == [f + 1 for f in row_in]
        assert max(row_t) < t and not set(row_in) & set(row_t)


@settings(max_examples=15, deadline=None)
@given(
    t=st.integers(2, 6),
    b=st.integers(1, 2),
    all_pairs=st.booleans(),
    neighbours_only=st.booleans(),
    dynamic=st.booleans(),
    data=st.data(),
)
def test_property_true_static_object_scores_zero_and_a_wrong_one_does_not(t, b, all_pairs, neighbours_only, dynamic, data):
    """For every valid configuration: the exact object gives zero loss (training and validation)."""
    valid = [s for s in range(1, t // 2 + 1) if t % s == 0]
    sizes = data.draw(st.lists(st.sampled_from(valid), min_size=1, max_size=3, unique=True).map(tuple))
    torch.manual_seed(data.draw(st.integers(0, 2**16)))
    x_static, video = static_video(b, t)
    physics = DynamicMRI(mask=line_mask(t)) if dynamic else SequentialMRI(mask=line_mask(t))
    y = physics(video if dynamic else x_static)
    loss = Artifact2ArtifactLoss((2, t, 4, 8), split_size=sizes, dynamic_model=dynamic, all_pairs=all_pairs,
                                 neighbours_only=neighbours_only)
    truth = video if dynamic else x_static
    model = loss.adapt_model(Oracle(truth))
    assert loss(model(y, physics), y, physics, model).item() < 1e-10
    first = loss.evaluate(model, y, physics)
    assert first.item() < 1e-10
    wrong = loss.adapt_model(Oracle(truth * 1.5))
    assert loss(wrong(y, physics), y, physics, wrong).item() > 1e-4
    value = loss.evaluate(wrong, y, physics)
    assert value.item() > 1e-4 and value.item() == loss.evaluate(wrong, y, physics).item()  # deterministic


def test_shuffled_chunks_are_disjoint_random_frame_sets():
    torch.manual_seed(3)
    loss = Artifact2ArtifactLoss((2, 8, 4, 4), split_size=4, dynamic_model=False, shuffle_frames=True)
    seen = set()
    for _ in range(20):
        draw = loss._random_draw(3, 8, torch.device("cpu"))
        targets = loss.target_chunks(draw)
        inp = draw.input_index
        tgt = draw.frames(targets[0])
        for b in range(3):
            a, t = set(inp[b].tolist()), set(tgt[b].tolist())
            assert len(a) == 4 and len(t) == 4 and not (a & t)
            assert a | t == set(range(8))
            seen.add(tuple(sorted(a)))
    # many different partitions, not just the two consecutive blocks
    assert len(seen) > 5
    with pytest.raises(ValueError, match="neighbours_only"):
        Artifact2ArtifactLoss((2, 8, 4, 4), split_size=4, shuffle_frames=True, neighbours_only=True)


# -- the value interface: split(y, physics, generator) -> TimeSplit, loss(x_net, split) ----------------


def test_split_is_a_value_drawn_from_the_given_generator():
    t, b = 8, 3
    mask = line_mask(t)
    physics = DynamicMRI(mask=mask)
    y = physics(torch.randn(b, 2, t, 4, 8))
    loss = Artifact2ArtifactLoss(split_size=(2, 4))
    a = loss.split(y, physics, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(0)  # the global RNG plays no part
    torch.rand(100)
    b_ = loss.split(y, physics, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.draw.input_chunks, b_.draw.input_chunks) and a.draw.chunk_size == b_.draw.chunk_size
    assert all(torch.equal(p, q) for p, q in zip(a.targets, b_.targets))
    # the input part is exactly the input chunk's frames of y and of the mask
    index = a.draw.input_index
    assert torch.equal(a.y_input, gather_time(y, index))
    assert torch.equal(a.physics_input.mask, gather_time(mask, index))
    assert a.y is y and a.physics is physics
    # the value call scores the same as the reference call on the same split
    net = Oracle(torch.randn(b, 2, t, 4, 8))
    model = loss.adapt_model(net)
    x_net = net(a.y_input, a.physics_input)
    model.last_split = a
    assert torch.equal(loss(x_net, a), loss(x_net, y, physics, model))
    assert bool((a.targets[0] != a.draw.input_chunks).all())


@pytest.mark.parametrize("t, chunk", [(4, 2), (6, 3), (9, 3), (3, 1)])
def test_one_loss_serves_every_sequence_length(t, chunk):
    loss = Artifact2ArtifactLoss(split_size=None)
    physics = DynamicMRI(mask=line_mask(t))
    y = physics(torch.randn(2, 2, t, 4, 8))
    split = loss.split(y, physics, generator=torch.Generator().manual_seed(0))
    assert split.draw.chunk_size == chunk and split.draw.n_chunks == t // chunk
    assert split.y_input.shape == (2, 2, chunk, 4, 8)
    with pytest.raises(SplittingError, match="cannot be split into two chunks"):
        loss.check_frames(1)


def test_static_split_hands_the_network_the_time_average():
    t = 6
    mask = line_mask(t)
    physics = SequentialMRI(mask=mask)
    x = torch.randn(2, 2, 4, 8)
    y = physics(x)
    loss = Artifact2ArtifactLoss(split_size=3, dynamic_model=False)
    split = loss.split(y, physics, generator=torch.Generator().manual_seed(1))
    index = split.draw.input_index
    chunk_y, chunk_phys = gather_time(y, index), SequentialMRI(mask=gather_time(mask, index))
    expected_y, expected_phys = chunk_phys.time_average(chunk_y)
    assert torch.equal(split.y_input, expected_y) and torch.equal(split.physics_input.mask, expected_phys.mask)
    assert loss(x, split).item() < 1e-10  # the truth scores zero on every target chunk
    assert loss(x.flip(-1), split).item() > 1e-2


def test_phase2phase_split_value():
    t = 6
    video = torch.randn(2, 2, t, 4, 8)
    physics = DynamicMRI(mask=line_mask(t))
    y = physics(video)
    split = Phase2PhaseLoss().split(y, physics)
    assert torch.equal(split.y_input, y[:, :, 0::2])
    assert Phase2PhaseLoss()(video[:, :, 1::2], split).item() < 1e-10
