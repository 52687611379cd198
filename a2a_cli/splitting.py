"""Self-supervised time-splitting losses: Artifact2Artifact and Phase2Phase.

A dynamic (or sequential) measurement ``y`` of shape ``(B, 2, T, ...)`` is cut along
its time axis (dim 2) into chunks. The network sees one chunk (its "artifacts") and
its output is scored, through the forward operator, against the k-space of another
chunk that it never saw. Undersampling artifacts differ between chunks while the
object does not (or changes slowly), so the network can only lower the loss by
reconstructing the object (RARE, Liu et al. 2020).

Usage: draw a split with :meth:`~_TimeSplittingLoss.split` (a :class:`TimeSplit` value:
the input chunk, its operator, the target chunks), run the network on
``split.y_input, split.physics_input`` and score it with ``loss(x_net, split)``.
Nothing is stored on the network or the loss between the two calls:

>>> import torch
>>> from a2a_cli.physics import DynamicMRI
>>> _ = torch.manual_seed(0)
>>> mask = torch.zeros(1, 1, 4, 1, 8)
>>> for t in range(4):
...     mask[:, :, t, :, t::4] = 1
>>> physics = DynamicMRI(mask=mask)
>>> y = physics(torch.rand(2, 2, 4, 8, 8))
>>> loss = Artifact2ArtifactLoss(split_size=None)      # chunk length from T at every call (here 2)
>>> split = loss.split(y, physics, generator=torch.Generator().manual_seed(0))
>>> split.y_input.shape, split.draw.n_chunks
(torch.Size([2, 2, 2, 8, 8]), 2)
>>> bool(loss(physics.A_adjoint(y)[:, :, :2], split) > 0)
True

The reference interface, :meth:`Artifact2ArtifactLoss.adapt_model`, wraps a network so
that ``model(y, physics)`` draws the split itself (training mode) and
``loss(x_net, y, physics, model)`` scores it; the wrapper keeps that one split
(``model.last_split``) for the call that follows. In eval mode the wrapper passes the
whole sequence through the network.

>>> class Zerofill(torch.nn.Module):
...     def __init__(self):
...         super().__init__()
...         self.scale = torch.nn.Parameter(torch.ones(()))
...     def forward(self, y, physics):
...         return self.scale * physics.A_adjoint(y)
>>> loss = Artifact2ArtifactLoss((2, 4, 8, 8), split_size=2)
>>> model = loss.adapt_model(Zerofill())
>>> x_net = model(y, physics)          # training mode: a 2-frame chunk per sample
>>> x_net.shape, model.last_split.draw.n_chunks
(torch.Size([2, 2, 2, 8, 8]), 2)
>>> l = loss(x_net, y, physics, model)
>>> l.backward()
>>> bool(l > 0), model.model.scale.grad is not None
(True, True)
>>> model.eval()(y, physics).shape  # eval mode: the whole sequence
torch.Size([2, 2, 4, 8, 8])
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import torch
from torch import nn

from .errors import A2AError
from .physics import DynamicMRI, MRIPhysics, SequentialMRI, gather_time, is_sequential

__all__ = [
    "SplittingError",
    "SplitDraw",
    "TimeSplit",
    "SplittingModel",
    "auto_split_size",
    "Artifact2ArtifactLoss",
    "Phase2PhaseLoss",
]

Metric = Union[nn.Module, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]

_NOT_ADAPTED = (
    "the loss needs the split drawn by the adapted model: call loss.adapt_model(model) "
    "and run the adapted model in training mode first (model.train(); x_net = model(y, physics))"
)


class SplittingError(A2AError, ValueError):
    """A split configuration that does not fit the data (bad split size, wrong shapes)."""


@dataclass(frozen=True)
class SplitDraw:
    """One training step's split of the time axis.

    Chunk ``c`` holds the frames ``c * chunk_stride + k * frame_step`` for
    ``k < chunk_size``: contiguous blocks for Artifact2Artifact (stride ``chunk_size``,
    step 1), interleaved phases for Phase2Phase (stride 1, step 2).

    >>> d = SplitDraw(n_frames=6, chunk_size=2, n_chunks=3,
    ...               input_chunks=torch.tensor([2, 0]), chunk_stride=2, frame_step=1)
    >>> d.input_index
    tensor([[4, 5],
            [0, 1]])
    """

    n_frames: int
    chunk_size: int
    n_chunks: int
    input_chunks: torch.Tensor  # (B,) long: the chunk each sample's network input came from
    chunk_stride: int = 0
    frame_step: int = 1
    order: Optional[torch.Tensor] = None  # (B, T) long: per-sample frame permutation (shuffled chunks)

    def frames(self, chunks: torch.Tensor) -> torch.Tensor:
        """Frame indices ``(B, chunk_size)`` of one chunk per sample (``chunks``: long ``(B,)``)."""
        stride = self.chunk_size if self.chunk_stride == 0 else self.chunk_stride
        k = torch.arange(self.chunk_size, device=chunks.device) * self.frame_step
        slots = chunks.reshape(-1, 1) * stride + k
        if self.order is None:
            return slots
        # chunk c is the c-th block of a random ordering of the frames, kept in time order
        return torch.gather(self.order.to(chunks.device), 1, slots).sort(dim=1).values

    @property
    def input_index(self) -> torch.Tensor:
        """Frame indices ``(B, chunk_size)`` the network saw."""
        return self.frames(self.input_chunks)


# -- helpers on measurements and operators -------------------------------------------


def _check_y(y: torch.Tensor) -> None:
    if y.ndim < 5 or y.shape[1] != 2:
        raise SplittingError(
            f"time splitting needs dynamic k-space y of shape (B, 2, T, H, W) or (B, 2, T, N, H, W) "
            f"with time at dim 2, got shape {tuple(y.shape)}; static (B, 2, H, W) data cannot be split in time"
        )


def _full_time_mask(physics: MRIPhysics, n_frames: int, batch: int) -> torch.Tensor:
    """The physics mask as ``(B or 1, C, T, ...)``, with a single-frame mask repeated over T."""
    mask = getattr(physics, "mask", None)
    if mask is None or mask.ndim != 5:
        shape = None if mask is None else tuple(mask.shape)
        raise SplittingError(
            f"time splitting needs a 5D mask (B, C, T, H, W) in physics.mask, got {shape}; "
            f"build the operator (DynamicMRI or SequentialMRI) with one mask per frame"
        )
    if mask.shape[2] not in (1, n_frames):
        raise SplittingError(
            f"the mask has {mask.shape[2]} frames but y has T={n_frames}; give one mask per frame of y"
        )
    if mask.shape[0] not in (1, batch):
        raise SplittingError(f"the mask batch ({mask.shape[0]}) must be 1 or the batch of y ({batch})")
    if mask.shape[2] != n_frames:
        # one mask shared by all frames: repeat it so that any frame index is valid
        mask = mask.expand(mask.shape[0], mask.shape[1], n_frames, *mask.shape[3:])
    return mask


def _with_mask(physics: MRIPhysics, mask: torch.Tensor, kind: Optional[type] = None) -> MRIPhysics:
    """``physics`` with another mask; ``kind`` forces the operator class (same coil maps)."""
    if kind is None:
        return physics.with_mask(mask)
    if getattr(physics, "radial", False):  # one operator class; the kind is a flag
        return physics.with_mask(mask, sequential=kind is SequentialMRI)
    return kind(mask=mask, coil_maps=physics.coil_maps, cg_iterations=getattr(physics, "cg_iterations", 10))


def _split(physics: MRIPhysics, n_frames: int, index: torch.Tensor, kind: Optional[type] = None) -> MRIPhysics:
    """The operator restricted to frames ``index`` ``(B, k)`` (mask batch 1 broadcasts)."""
    mask = _full_time_mask(physics, n_frames, index.shape[0])
    return _with_mask(physics, gather_time(mask, index), kind)


def _time_average(y: torch.Tensor, physics: MRIPhysics) -> tuple[torch.Tensor, MRIPhysics]:
    """Collapse a time series into one k-space and a single-image operator."""
    mask = _full_time_mask(physics, y.shape[2], y.shape[0])
    if is_sequential(physics) and mask is physics.mask:
        return physics.time_average(y)
    return _with_mask(physics, mask, SequentialMRI).time_average(y)


def _reconstruct(net: nn.Module, y: torch.Tensor, physics: MRIPhysics, dynamic: bool) -> torch.Tensor:
    """Run the network on a (chunk of a) sequence: as a video, or time-averaged as one image."""
    if dynamic:
        return net(y, physics)
    y_avg, phys_avg = _time_average(y, physics)
    return net(y_avg, phys_avg)


def _measured(y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``y`` with the unsampled locations zeroed (stored k-space may hold noise there)."""
    m = mask[:, :1] != 0
    if y.ndim == 6:  # coil axis at dim 3 of the k-space, absent from the mask
        m = m.unsqueeze(3)
    return y * m


@dataclass(frozen=True)
class TimeSplit:
    """One step's split of a measurement, as a value: what the network sees and what the loss scores.

    ``y_input`` / ``physics_input``: the input chunk ``(B, 2, k, ...)`` and its operator,
    or for a ``dynamic_model=False`` loss their time average ``(B, 2, [N], H, W)`` and a
    single-image operator; run the network as ``net(split.y_input, split.physics_input)``.
    ``y`` / ``physics``: the whole measurement the targets are cut from. ``targets``: one
    ``(B,)`` long tensor of target chunks per term of the loss average.
    """

    draw: SplitDraw
    targets: tuple[torch.Tensor, ...]
    y: torch.Tensor
    physics: MRIPhysics
    y_input: torch.Tensor
    physics_input: MRIPhysics


def auto_split_size(frames: int) -> int:
    """The default chunk length: the largest divisor of ``frames`` that leaves two or more chunks.

    Large chunks make the network's input cover most of k-space, which measured best.

    >>> auto_split_size(16), auto_split_size(15), auto_split_size(7)
    (8, 5, 1)
    """
    for s in range(frames // 2, 0, -1):
        if frames % s == 0:
            return s
    raise SplittingError(f"a sequence of {frames} frame(s) cannot be split into two chunks")


# -- the network wrapper (reference interface) ---------------------------------------------


class SplittingModel(nn.Module):
    """A reconstruction network behind a time-splitting input stage (the reference interface).

    Made by :meth:`Artifact2ArtifactLoss.adapt_model`. The wrapped network is
    ``self.model`` (save ``self.model.state_dict()`` to keep only the network). A
    training-mode call draws a :class:`TimeSplit` and keeps it as ``last_split`` for the
    four-argument loss call ``loss(x_net, y, physics, model)`` that follows; code that
    can pass values uses ``loss.split`` and ``loss(x_net, split)`` instead.
    """

    def __init__(self, model: nn.Module, loss: "_TimeSplittingLoss"):
        super().__init__()
        self.model = model
        self.dynamic_model = loss.dynamic_model
        # a bound method, not the loss itself, so that the loss (and its metric) stay
        # out of this module's state_dict and parameters
        self._draw_split = loss.split
        self.last_split: Optional[TimeSplit] = None

    def forward(self, y: torch.Tensor, physics: MRIPhysics, update_parameters: bool = False) -> torch.Tensor:
        """Reconstruct from ``y``.

        Training mode: draw a split (kept as ``last_split``) and run the network on each
        sample's input chunk only. Eval mode: run it on the full sequence. A
        ``dynamic_model=False`` network gets the time-averaged k-space and a
        single-image operator and returns ``(B, 2, H, W)``.

        ``update_parameters`` is accepted for compatibility and ignored: a training-mode
        call always draws a new split, which the next loss call uses.
        """
        del update_parameters
        _check_y(y)
        if not self.training:
            self.last_split = None  # a stale split must not be scored against a full-sequence output
            return _reconstruct(self.model, y, physics, self.dynamic_model)
        split = self._draw_split(y, physics)
        self.last_split = split
        return self.model(split.y_input, split.physics_input)


# -- the losses --------------------------------------------------------------------------


class _TimeSplittingLoss(nn.Module):
    """Common machinery: draw splits, score a network output against other chunks."""

    def __init__(self, dynamic_model: bool = True, metric: Optional[Metric] = None, device: torch.device | str = "cpu"):
        super().__init__()
        self.dynamic_model = bool(dynamic_model)
        self.metric = nn.MSELoss() if metric is None else metric
        self.device = torch.device(device)

    # subclasses define how time is cut
    def check_frames(self, n_frames: int) -> None:  # pragma: no cover - abstract
        """Raise :class:`SplittingError` if sequences of ``n_frames`` frames cannot be split."""
        raise NotImplementedError

    def _random_draw(self, batch: int, n_frames: int, device: torch.device,
                     generator: Optional[torch.Generator] = None) -> SplitDraw:  # pragma: no cover
        raise NotImplementedError

    def target_chunks(self, draw: SplitDraw, generator: Optional[torch.Generator] = None) -> list[torch.Tensor]:  # pragma: no cover
        """Target chunks, one ``(B,)`` long tensor per term of the loss average."""
        raise NotImplementedError

    def _eval_splits(self, batch: int, n_frames: int, device: torch.device, **kwargs) -> list[tuple[SplitDraw, list[torch.Tensor]]]:  # pragma: no cover
        raise NotImplementedError

    def split(self, y: torch.Tensor, physics: MRIPhysics, generator: Optional[torch.Generator] = None) -> TimeSplit:
        """Draw one split of ``y`` ``(B, 2, T, ...)`` (random draws from ``generator``, a CPU
        generator, or the global RNG when None); T is taken from ``y`` at every call."""
        _check_y(y)
        draw = self._random_draw(y.shape[0], y.shape[2], y.device, generator)
        targets = tuple(self.target_chunks(draw, generator))
        index = draw.input_index
        y_in, phys_in = gather_time(y, index), _split(physics, y.shape[2], index)
        if not self.dynamic_model:
            y_in, phys_in = _time_average(y_in, phys_in)
        return TimeSplit(draw, targets, y, physics, y_in, phys_in)

    def adapt_model(self, model: nn.Module) -> SplittingModel:
        """Wrap ``model`` (called as ``model(y, physics)``) with the splitting input stage."""
        if isinstance(model, SplittingModel):
            model = model.model
        return SplittingModel(model, self)

    def _score(self, x_net: torch.Tensor, y: torch.Tensor, physics: MRIPhysics, draw: SplitDraw, targets: Sequence[torch.Tensor]) -> torch.Tensor:
        """Mean over ``targets`` of ``metric(A_target x_net, y_target) / mean(target mask)``."""
        if self.dynamic_model:
            if x_net.ndim != 5 or x_net.shape[2] != draw.chunk_size:
                raise SplittingError(
                    f"dynamic_model=True expects the network output (B, 2, {draw.chunk_size}, H, W) "
                    f"(one frame per input frame), got {tuple(x_net.shape)}; "
                    f"for a network that returns one static image use dynamic_model=False"
                )
            # a video output is compared frame by frame, whatever the given operator class
            kind = DynamicMRI if is_sequential(physics) else None
        else:
            if x_net.ndim != 4:
                raise SplittingError(
                    f"dynamic_model=False expects a static image (B, 2, H, W) from the network, "
                    f"got {tuple(x_net.shape)}; for a video network use dynamic_model=True"
                )
            kind = SequentialMRI
        total = x_net.new_zeros(())
        for chunks in targets:
            index = draw.frames(chunks.to(y.device))
            phys_t = _split(physics, draw.n_frames, index, kind)
            y_t = _measured(gather_time(y, index), phys_t.mask)
            if isinstance(self.metric, nn.MSELoss) and self.metric.reduction == "mean" and hasattr(phys_t, "residual_mse"):
                # radial: the same value without an interpolation, each sample weighted by its density
                # compensation (nufft.density_weighted_mse: +4.1 dB on the sequential radial case)
                value = phys_t.residual_mse(x_net, y_t, weighted=True)
            else:
                value = self.metric(phys_t.A(x_net), y_t)
            if value.ndim > 0:  # per-sample metrics
                value = value.mean()
            # normalising by the sampled fraction makes the loss scale independent of acceleration
            total = total + value / torch.clamp(phys_t.mask[:, :1].mean(), min=1e-12)
        return total / len(targets)

    def forward(self, x_net: torch.Tensor, split: Union[TimeSplit, torch.Tensor], physics: Optional[MRIPhysics] = None,
                model: Optional[nn.Module] = None, **kwargs) -> torch.Tensor:
        """The splitting loss of ``x_net = net(split.y_input, split.physics_input)``.

        The reference four-argument form ``loss(x_net, y, physics, model)`` scores the
        split that the adapted ``model`` drew when it made ``x_net`` (training mode).
        """
        if not isinstance(split, TimeSplit):
            split = self._split_of(model, split)
        return self._score(x_net, split.y, split.physics, split.draw, split.targets)

    @staticmethod
    def _split_of(model: Optional[nn.Module], y: torch.Tensor) -> TimeSplit:
        """The split the adapted ``model`` drew for ``y`` (reference interface)."""
        split = model.last_split if isinstance(model, SplittingModel) else None
        if split is None:
            raise ValueError(_NOT_ADAPTED)
        _check_y(y)
        draw = split.draw
        if draw.n_frames != y.shape[2] or draw.input_chunks.shape[0] != y.shape[0]:
            raise ValueError(
                f"the stored split was drawn for B={draw.input_chunks.shape[0]}, T={draw.n_frames} but y is "
                f"{tuple(y.shape)}; run the adapted model on this y just before calling the loss"
            )
        return split

    @torch.no_grad()
    def evaluate(self, model: nn.Module, y: torch.Tensor, physics: MRIPhysics, **kwargs) -> torch.Tensor:
        """Deterministic validation loss: every input chunk against every other chunk.

        ``model`` is the adapted wrapper or the bare network. The network runs in
        eval mode (restored afterwards) so that dropout and the like do not add noise.
        """
        net = model.model if isinstance(model, SplittingModel) else model
        _check_y(y)
        splits = self._eval_splits(y.shape[0], y.shape[2], y.device, **kwargs)
        was_training = net.training
        net.eval()
        try:
            total = y.new_zeros(())
            for draw, targets in splits:
                index = draw.input_index
                x_net = _reconstruct(net, gather_time(y, index), _split(physics, y.shape[2], index), self.dynamic_model)
                total = total + self._score(x_net, y, physics, draw, targets)
        finally:
            net.train(was_training)
        return total / len(splits)


def _tensor_size(tensor_size: Optional[Sequence[int]]) -> Optional[tuple[int, ...]]:
    if tensor_size is None:
        return None
    if len(tensor_size) < 2:
        raise SplittingError(f"tensor_size must be (C, T, H, W) without the batch axis, got {tuple(tensor_size)}")
    return tuple(int(v) for v in tensor_size)


def _split_sizes(split_size: int | Sequence[int]) -> tuple[int, ...]:
    bad = SplittingError(f"split_size must be a positive integer or a tuple of them, got {split_size!r}")
    items = tuple(split_size) if isinstance(split_size, (tuple, list)) else (split_size,)
    if not items:
        raise SplittingError("split_size must be a positive integer or a non-empty tuple of them, got ()")
    sizes = []
    for s in items:
        if isinstance(s, bool):
            raise bad
        try:
            s = operator.index(s)  # ints and integer scalars (numpy, torch), never floats
        except TypeError:
            raise bad from None
        if s <= 0:
            raise SplittingError(f"split_size must be positive, got {s}; use a chunk length of at least 1 frame")
        sizes.append(s)
    return tuple(sizes)


def _check_split_sizes(sizes: Sequence[int], n_frames: int) -> None:
    valid = [d for d in range(1, n_frames // 2 + 1) if n_frames % d == 0]
    hint = f"valid split sizes for T={n_frames}: {tuple(valid)}" if valid else "T must be at least 2"
    for s in sizes:
        if s > n_frames or n_frames % s:
            raise SplittingError(f"split_size {s} does not divide the number of frames T={n_frames}; {hint}")
        if n_frames // s < 2:
            raise SplittingError(
                f"split_size {s} leaves a single chunk of T={n_frames} frames, but Artifact2Artifact "
                f"needs at least two chunks (one input, one target); {hint}"
            )


class Artifact2ArtifactLoss(_TimeSplittingLoss):
    """Artifact2Artifact: input one random time chunk, score against another.

    ``tensor_size`` is the measurement shape without batch, ``(C, T, H, W)`` (or
    ``(C, T, N, H, W)``), or None; only ``T = tensor_size[1]`` is used, to check
    ``split_size`` early. At call time T is taken from the data (files of one study may
    differ in T) and every split size is checked again against it.

    ``split_size``: chunk length in frames, or a tuple of lengths (one drawn per step,
    the same for input and target). Each must divide T into at least two chunks.
    None: :func:`auto_split_size` of each call's T, so one loss serves any T.

    ``dynamic_model=True``: the network maps a chunk of k frames to k frames, and output
    frame k is scored against frame k of the target chunk. ``False``: the chunk is
    averaged in time and passed to a static network (``(B, 2, H, W)`` output), which is
    scored against every frame of the target chunk (sequential MRI).

    Each sample draws its own input chunk and its own target chunk, never the input
    one. ``neighbours_only=True`` restricts targets to the adjacent chunks (for
    objects that move: nearby chunks differ least). ``all_pairs=True`` averages the
    loss over all other chunks (or both neighbours) instead of one random target:
    lower-variance gradients, at one more operator application per target.
    ``shuffle_frames=True`` builds the chunks from a fresh random ordering of the frames
    at every step instead of consecutive blocks: for a static object (sequential MRI)
    the frame order carries no information, and the many more input/target partitions
    give the network far more distinct training examples per slice. It is wrong for a
    moving object (chunks would mix motion states), so it is off by default.

    The loss is ``metric(A_target x_net, y_target) / mean(target mask)``; ``metric``
    defaults to the mean squared error.
    """

    def __init__(
        self,
        tensor_size: Optional[Sequence[int]] = None,
        split_size: int | Sequence[int] | None = 2,
        dynamic_model: bool = True,
        metric: Optional[Metric] = None,
        device: torch.device | str = "cpu",
        all_pairs: bool = False,
        neighbours_only: bool = False,
        shuffle_frames: bool = False,
    ):
        super().__init__(dynamic_model=dynamic_model, metric=metric, device=device)
        self.tensor_size = _tensor_size(tensor_size)
        self.split_sizes = None if split_size is None else _split_sizes(split_size)
        if self.tensor_size is not None:
            self.check_frames(self.tensor_size[1])
        self.all_pairs = bool(all_pairs)
        self.neighbours_only = bool(neighbours_only)
        self.shuffle_frames = bool(shuffle_frames)
        if self.shuffle_frames and self.neighbours_only:
            raise SplittingError("neighbours_only has no meaning with shuffle_frames (shuffled chunks have no neighbours)")

    def sizes_for(self, n_frames: int) -> tuple[int, ...]:
        """The chunk lengths for sequences of ``n_frames`` frames (checked)."""
        sizes = (auto_split_size(n_frames),) if self.split_sizes is None else self.split_sizes
        _check_split_sizes(sizes, n_frames)
        return sizes

    def check_frames(self, n_frames: int) -> None:
        self.sizes_for(n_frames)

    def _draw_for(self, chunk_size: int, n_frames: int, chunks: torch.Tensor) -> SplitDraw:
        return SplitDraw(n_frames=n_frames, chunk_size=chunk_size, n_chunks=n_frames // chunk_size, input_chunks=chunks)

    def _random_draw(self, batch: int, n_frames: int, device: torch.device,
                     generator: Optional[torch.Generator] = None) -> SplitDraw:
        sizes = self.sizes_for(n_frames)
        s = sizes[int(torch.randint(len(sizes), (), generator=generator))]
        chunks = torch.randint(n_frames // s, (batch,), generator=generator).to(device)
        draw = self._draw_for(s, n_frames, chunks)
        if self.shuffle_frames:
            order = torch.argsort(torch.rand(batch, n_frames, generator=generator), dim=1).to(device)
            draw = SplitDraw(draw.n_frames, draw.chunk_size, draw.n_chunks, draw.input_chunks, order=order)
        return draw

    def target_chunks(self, draw: SplitDraw, generator: Optional[torch.Generator] = None) -> list[torch.Tensor]:
        """Target chunks for ``draw`` (random unless ``all_pairs``), each ``(B,)``, never the input chunk."""
        c, n = draw.input_chunks, draw.n_chunks
        if self.neighbours_only:
            below = torch.where(c > 0, c - 1, c + 1)
            above = torch.where(c < n - 1, c + 1, c - 1)
            if self.all_pairs:
                # an edge chunk has one neighbour: counting it twice keeps every sample's
                # weight equal in the batch average
                return [below, above]
            pick_above = torch.randint(2, c.shape, generator=generator).to(c.device).bool()
            return [torch.where(pick_above, above, below)]
        if self.all_pairs:
            return [(c + k) % n for k in range(1, n)]
        # a shift in 1..n-1 is uniform over the other chunks and can never be 0
        return [(c + torch.randint(1, n, c.shape, generator=generator).to(c.device)) % n]

    def _eval_splits(self, batch: int, n_frames: int, device: torch.device, split_size: Optional[int] = None):
        s = self.sizes_for(n_frames)[0] if split_size is None else split_size
        _check_split_sizes(_split_sizes(s), n_frames)
        n = n_frames // s
        splits = []
        for i in range(n):
            chunks = torch.full((batch,), i, dtype=torch.long, device=device)
            others = [torch.full((batch,), j, dtype=torch.long, device=device) for j in range(n) if j != i]
            splits.append((self._draw_for(s, n_frames, chunks), others))
        return splits

    def evaluate(self, model: nn.Module, y: torch.Tensor, physics: MRIPhysics, split_size: Optional[int] = None) -> torch.Tensor:
        """Deterministic validation loss: each chunk as input, scored against all others.

        ``split_size`` defaults to the first configured one (or the automatic one). ``model`` is the adapted
        wrapper or the bare network; no gradient is recorded.
        """
        return super().evaluate(model, y, physics, split_size=split_size)


class Phase2PhaseLoss(_TimeSplittingLoss):
    """Phase2Phase: input the even frames (0, 2, ...), score against the odd ones (1, 3, ...).

    Dynamic: output frame k (reconstructed from frame 2k) is scored against frame
    2k + 1. With an odd T the last even frame is dropped, so input and target both
    have ``T // 2`` frames. T (at least 2) is taken from the data at call time;
    ``tensor_size`` (``(C, T, H, W)``, or None) only serves an early check.
    """

    def __init__(
        self,
        tensor_size: Optional[Sequence[int]] = None,
        dynamic_model: bool = True,
        metric: Optional[Metric] = None,
        device: torch.device | str = "cpu",
    ):
        super().__init__(dynamic_model=dynamic_model, metric=metric, device=device)
        self.tensor_size = _tensor_size(tensor_size)
        if self.tensor_size is not None:
            self.check_frames(self.tensor_size[1])

    def check_frames(self, n_frames: int) -> None:
        if n_frames < 2:
            raise SplittingError(
                f"Phase2Phase needs at least 2 frames (an even and an odd one), got T={n_frames}"
            )

    def _fixed_draw(self, batch: int, n_frames: int, device: torch.device) -> SplitDraw:
        self.check_frames(n_frames)
        return SplitDraw(
            n_frames=n_frames,
            chunk_size=n_frames // 2,
            n_chunks=2,
            input_chunks=torch.zeros(batch, dtype=torch.long, device=device),
            chunk_stride=1,
            frame_step=2,
        )

    def _random_draw(self, batch: int, n_frames: int, device: torch.device,
                     generator: Optional[torch.Generator] = None) -> SplitDraw:
        # nothing random: the name keeps the interface shared with Artifact2Artifact
        return self._fixed_draw(batch, n_frames, device)

    def target_chunks(self, draw: SplitDraw, generator: Optional[torch.Generator] = None) -> list[torch.Tensor]:
        """The odd phase (chunk 1) for every sample."""
        return [torch.ones_like(draw.input_chunks)]

    def _eval_splits(self, batch: int, n_frames: int, device: torch.device):
        draw = self._fixed_draw(batch, n_frames, device)
        return [(draw, self.target_chunks(draw))]
