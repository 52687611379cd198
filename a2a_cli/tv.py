"""Total-variation regularised reconstruction on a2a's operators, with weights chosen from the data alone.

:func:`tv_reconstruct` solves, for a dynamic image ``x`` ``(B, 2, T, H, W)`` (a static
image is a sequence of one frame),

    argmin_x  1/2 ||W^(1/2) (A x - y)||^2  +  spatial * sum (|d_H x| + |d_W x|)  +  temporal * sum |d_t x|
                                           +  low_rank * sum_blocks ||x_block||_*  +  fourier * ||D F_t x||_1

(anisotropic spatial TV on the complex image, and TV along time; the anisotropic form measured
up to 1.1 dB better than the isotropic one at the same weights on dynamic and static phantoms,
benchmarks/RESULTS.md), and a locally low-rank term: the nuclear norm of
every block of 8x8 pixels taken through all frames as a 64 x T matrix, the blocks shifted at
random in every iteration as BART ``pics -R L`` does (:func:`low_rank_prox`). The low-rank term
is what the field adds for dynamic data: neighbouring pixels share a few temporal profiles. On
the textured and anatomical dynamic benchmark files it measured 1 to 3 dB above TV alone
(benchmarks/RESULTS.md, "Locally low rank"). The last term is the l1 norm of every pixel's
temporal spectrum (``F_t``, the unitary DFT along time) without its mean (``D`` drops frequency
0): sparsity in x-f space, the prior of k-t SPARSE (Lustig et al. 2006) for motion that repeats,
as a heart beat or regular breathing does (:func:`fourier_prox`). ``W`` weights each measured sample by the k-space it stands for:
Cartesian lines by their spacing (:func:`line_weights`; all 1 where the frames together measure
every line), radial samples by the square root of their density compensation. Cartesian data,
single- or multi-coil, are solved by the primal-dual hybrid gradient method (Chambolle and Pock
2011), radial data by ADMM (:func:`_admm`). The weights refer to data normalised as the networks
normalise it.

:func:`select_weights` picks the weights without ground truth, by k-space
cross-validation: each frame's measured lines are split into a fitting set and a small
held-out set, the problem is solved on the fitting set over a grid of weights, and the
weights whose solution best predicts the held-out samples win (the low-rank weight among them,
for dynamic data).

>>> import torch
>>> from a2a_cli.physics import DynamicMRI
>>> _ = torch.manual_seed(0)
>>> x = torch.zeros(1, 2, 4, 16, 16); x[:, 0, :, 4:12, 4:12] = 1   # a square, static in time
>>> mask = torch.zeros(1, 1, 4, 1, 16)
>>> for t in range(4):                                 # each frame: every 4th line, shifted
...     mask[:, :, t, :, t::4] = 1
>>> physics = DynamicMRI(mask=mask)
>>> y = physics(x)
>>> err = lambda z: float((z - x).pow(2).mean())
>>> err(tv_reconstruct(physics, y, 0.01, 0.1)) < 0.01 * err(physics.A_adjoint(y))
True
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch

from .holdout import HOLDOUT_FRACTION, heldout_error, make_fold
from .physics import MRIPhysics, to_complex, to_real

__all__ = ["TVWeights", "gradient", "gradient_adjoint", "operator_norm", "tv_reconstruct", "select_weights", "unit_scale",
           "low_rank_prox", "fourier_prox", "temporal_spectrum", "LOW_RANK_BLOCK", "LOW_RANK_GRID", "FOURIER_GRID", "TV_ITERATIONS", "WARM_SHARE", "ADMM_ITERATIONS", "RADIAL_DCF_POWER", "CARTESIAN_DCF_POWER", "line_weights", "SPATIAL_GRID", "TEMPORAL_GRID",
           "REWEIGHT_GRID", "SEARCH_SLICES"]

#: Solver iterations of a reconstruction (from the view-shared image; with :data:`PRIMAL_WEIGHT`
#: 300 agree with 1000 to 0.01 dB on the dynamic benchmark file).
TV_ITERATIONS = 300
#: ADMM iterations of a radial reconstruction (:func:`_admm`), and conjugate-gradient steps in
#: each: 30 x 5 came within 0.1 dB of 100 x 8 on the dynamic radial benchmark files.
ADMM_ITERATIONS, ADMM_CG = 30, 5
#: The radial data term weights each sample by its density compensation to this power. On the
#: radial benchmark's dynamic and sequential files (test and validation) 0.5 scored 0.0 to 1.2 dB
#: above the density-compensated term (1) and 0.0 to 1.0 dB above the unweighted one (0), with the
#: best weights of each (benchmarks/RADIAL.md).
RADIAL_DCF_POWER = 0.5
#: The Cartesian data term weights each measured line by its spacing to this power
#: (:func:`line_weights`): on the validation files of the two SSDU benchmark cases (8 coils, every
#: 4th line plus 8 centre lines) 1 scored 0.7 and 0.9 dB above the unweighted term (0), 0.5 half way,
#: at the best weights of each (benchmarks/SSDU.md).
CARTESIAN_DCF_POWER = 1.0
#: Primal step over dual step of the solvers (their product is fixed by convergence). Ten times
#: the balanced choice reached in 100 iterations what the balanced one reached in 1000 (measured
#: on the dynamic benchmark file: 32.81 against 32.83 dB), for data at unit mean magnitude.
PRIMAL_WEIGHT = 10.0
#: Share of the solver's iterations that a warm-started candidate of the weight search runs
#: (:func:`select_weights`: it starts from the iterates of the nearest candidate solved before;
#: the first one is solved from the view-shared image with all of them). 0: every candidate cold.
#: With the cold descent that ends the search, a third chose the all-cold search's weights on
#: five Cartesian dynamic cases (1 and 8 coils) in 0.37 to 0.57 of its time; on a sixth, whose
#: cold search was short, other weights (+0.02 dB) in 1.4 times its time (benchmarks/RESULTS.md).
WARM_SHARE = 1 / 3
#: Most training slices the weight search scores, spread over the data, while they fit in
#: :data:`~a2a_cli.holdout.HOLDOUT_PIXELS` (a static 64x64 slice is a sixteenth of a 16-frame one).
#: With 4 of the 8 slices of the texture case's training files the search chose (0.08, ``e`` 0.3), an
#: image 1.4 dB under the best on their truth; with all 8 it chose (0.04, ``e`` 1) under every fold seed,
#: 0.4 dB under it. Single-coil 64x64 slices of 16 frames, and anything larger, reach the pixel budget
#: at 4 slices or fewer, as before; smaller dynamic slices (fewer frames) now fill more of it.
SEARCH_SLICES = 16
#: Solved candidates whose iterates the search keeps for warm starts (the most recent ones).
WARM_KEPT = 6
#: Problems with fewer k-space grid points than this (frames x coils x H x W, all of them together)
#: are searched cold: there a whole cold search takes seconds, and the warm walks, which roam
#: further in a flat valley, cost more (on two 32x32 slices of 8 frames: 57 candidates in 31 s
#: against 12 in 8 s).
WARM_MIN_SAMPLES = 16 * 64 * 64
#: Reweighted TV: rounds after the first solve, each with weights from the image so far, each
#: running this share of the iterations from the iterates before it. Four rounds of a twelfth
#: cost what one of a third did and scored 0.3 to 0.8 dB more (RESULTS.md, "Reweighting in rounds").
REWEIGHT_ROUNDS, REWEIGHT_SHARE = 4, 1 / 12
#: Candidate weights, for data normalised to unit mean magnitude (see the networks' input path).
SPATIAL_GRID = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3)
TEMPORAL_GRID = (0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.4, 0.8)
#: Where the search starts on each grid (it walks downhill from there). The reweighting starts at
#: 0.3, on: from 0 the walks took 59 candidates on two 32x32 slices of 8 frames, from 0.3 they took 31.
SPATIAL_START, TEMPORAL_START, REWEIGHT_START = 0.005, 0.03, 0.3
#: Side of the locally low-rank term's square blocks, in pixels (BART's default).
LOW_RANK_BLOCK = 8
#: Candidate low-rank weights (0: no such term, where the search starts).
LOW_RANK_GRID = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.8)
#: Candidate weights of the temporal-spectrum term (0: no such term, where the search starts).
FOURIER_GRID = (0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.4)
#: Candidate ``reweight`` values of :func:`tv_reconstruct`, in the order the search walks them: 0 (one
#: plain solve), then ever stronger reweighting (a larger value weights every
#: difference nearer 1, as the plain solve does). Held-out errors of one dynamic case at its weights:
#: 0.284 (0), 0.278 (1), 0.274 (0.3), 0.277 (0.1), 0.292 (0.03).
REWEIGHT_GRID = (0.0, 1.0, 0.3, 0.1, 0.03)


@dataclass(frozen=True)
class TVWeights:
    """The regularisation weights and how they were found (``table``: ``(spatial, temporal, low_rank, fourier,
    reweight, held-out error)``)."""

    spatial: float
    temporal: float
    low_rank: float = 0.0
    fourier: float = 0.0
    #: the TV terms' reweighting (:func:`tv_reconstruct`; 0: none)
    reweight: float = 0.0
    table: tuple[tuple[float, float, float, float, float, float], ...] = ()
    #: False when the search stopped at its deadline (the best candidate tried so far).
    complete: bool = True

    def describe(self) -> str:
        """One line for the console."""
        text = f"spatial TV weight {self.spatial:g}"
        text += f", temporal {self.temporal:g}" if self.temporal > 0 else ""
        text += f", locally low rank {self.low_rank:g}" if self.low_rank > 0 else ""
        text += f", temporal spectrum {self.fourier:g}" if self.fourier > 0 else ""
        return text + (f", reweighted ({self.reweight:g})" if self.reweight > 0 else "")

    def as_list(self) -> list[float]:
        """``[spatial, temporal, low_rank, fourier, reweight]``: how checkpoints and ``--json`` carry them."""
        return [self.spatial, self.temporal, self.low_rank, self.fourier, self.reweight]


def gradient(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences of a complex sequence ``(B, T, H, W)``: ``(B, 2, T, H, W)`` over H and W, and ``(B, T, H, W)`` over time.

    Zero at the last row, column and frame (Neumann boundaries).
    """
    gh = torch.zeros_like(z)
    gh[..., :-1, :] = z[..., 1:, :] - z[..., :-1, :]
    gw = torch.zeros_like(z)
    gw[..., :-1] = z[..., 1:] - z[..., :-1]
    gt = torch.zeros_like(z)
    gt[:, :-1] = z[:, 1:] - z[:, :-1]
    return torch.stack([gh, gw], 1), gt


def _diff_adjoint(g: torch.Tensor, dim: int) -> torch.Tensor:
    n = g.shape[dim]
    out = torch.zeros_like(g)
    if n > 1:
        head = g.narrow(dim, 0, n - 1)
        out.narrow(dim, 1, n - 1).add_(head)
        out.narrow(dim, 0, n - 1).sub_(head)
    return out


def gradient_adjoint(gs: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """The adjoint of :func:`gradient`: ``(B, 2, T, H, W)``, ``(B, T, H, W)`` -> ``(B, T, H, W)``.

    >>> z = torch.randn(1, 3, 5, 6, dtype=torch.complex64)
    >>> gs, gt = torch.randn(1, 2, 3, 5, 6, dtype=torch.complex64), torch.randn(1, 3, 5, 6, dtype=torch.complex64)
    >>> g1, g2 = gradient(z)
    >>> lhs = (g1.conj() * gs).sum() + (g2.conj() * gt).sum()
    >>> bool(torch.isclose(lhs, (z.conj() * gradient_adjoint(gs, gt)).sum(), rtol=1e-4))
    True
    """
    return _diff_adjoint(gs[:, 0], -2) + _diff_adjoint(gs[:, 1], -1) + _diff_adjoint(gt, 1)


def unit_scale(x: torch.Tensor) -> torch.Tensor:
    """The mean magnitude of each sample of an image ``(B, 2, T, H, W)``, shaped ``(B, 1, 1, 1, 1)``:
    the scale the TV weights refer to (divide the data by it)."""
    mag = to_complex(x).abs().mean(dim=(1, 2, 3)).clamp_min(torch.finfo(x.dtype).tiny)
    return mag.reshape(-1, 1, 1, 1, 1)


def operator_norm(physics: MRIPhysics, shape: Sequence[int], iterations: int = 15,
                  generator: Optional[torch.Generator] = None) -> float:
    """``||A||`` for images of ``shape`` ``(B, 2, T, H, W)``, by power iteration on ``A^H A`` (slightly over-estimated).

    The start is drawn from ``generator`` (default: a fixed seed, so that a solve that estimates
    the norm gives the same image every time)."""
    mask = physics.mask
    generator = torch.Generator().manual_seed(0) if generator is None else generator
    v = torch.randn(*shape, generator=generator).to(mask.device)
    norm = 1.0
    for _ in range(iterations):
        v = v / v.norm().clamp_min(1e-30)
        v = physics.A_adjoint(physics.A(v))
        norm = float(v.norm())
    return math.sqrt(norm) * 1.02 if norm > 0 else 1.0


def low_rank_prox(z: torch.Tensor, threshold: float, generator: Optional[torch.Generator] = None,
                  block: int = LOW_RANK_BLOCK) -> torch.Tensor:
    """Singular-value soft thresholding of every block of a complex sequence ``(B, T, H, W)``.

    Each ``block x block`` patch, taken through the T frames, is a ``block^2 x T`` matrix whose
    singular values are shrunk by ``threshold``: the prox of ``threshold`` times the blocks'
    summed nuclear norms. The block grid is shifted by a random offset (from ``generator``) and
    wraps around the image, so that no pixel sits on a block edge in every iteration.

    >>> g = torch.Generator().manual_seed(0)
    >>> z = torch.randn(1, 6, 16, 16, dtype=torch.complex64)
    >>> torch.allclose(low_rank_prox(z, 0.0, g), z, atol=1e-5)
    True
    >>> profile = torch.linspace(1, 2, 6)                       # one temporal profile: rank 1
    >>> z = (torch.randn(16, 16) * profile[:, None, None])[None].to(torch.complex64)
    >>> out = low_rank_prox(z, 1.0, g)
    >>> ratio = (out / z).real                                  # every pixel scaled by its block's shrinkage
    >>> float(ratio.std(dim=1).max()) < 1e-4, bool((ratio < 1).all())    # the same in every frame, below 1
    (True, True)
    """
    b, t, h, w = z.shape
    dh, dw = (int(v) for v in torch.randint(0, block, (2,), generator=generator))
    shifted = torch.roll(z, (-dh, -dw), (2, 3))
    padded = torch.nn.functional.pad(shifted, (0, (-w) % block, 0, (-h) % block))
    nh, nw = padded.shape[2] // block, padded.shape[3] // block
    m = padded.reshape(b, t, nh, block, nw, block).permute(0, 2, 4, 3, 5, 1).reshape(-1, block * block, t)
    u, sv, vh = torch.linalg.svd(m, full_matrices=False)
    m = (u * (sv - threshold).clamp_min(0).to(u.dtype).unsqueeze(1)) @ vh
    padded = m.reshape(b, nh, nw, block, block, t).permute(0, 5, 1, 3, 2, 4).reshape(b, t, nh * block, nw * block)
    return torch.roll(padded[:, :, :h, :w], (dh, dw), (2, 3))


def temporal_spectrum(z: torch.Tensor) -> torch.Tensor:
    """``D F_t z``: the unitary DFT along time (dim 1) of a complex sequence ``(B, T, H, W)``, frequency 0 set to 0."""
    spectrum = torch.fft.fft(z, dim=1, norm="ortho")
    spectrum[:, 0] = 0
    return spectrum


def fourier_prox(z: torch.Tensor, threshold: float) -> torch.Tensor:
    """The prox of ``threshold * ||D F_t z||_1`` on a complex sequence ``(B, T, H, W)``.

    Every pixel's temporal spectrum is soft-thresholded, its mean (frequency 0) left alone; as
    ``F_t`` is unitary this is exact.

    >>> t = torch.arange(8.0)
    >>> z = (1 + 0.5 * torch.cos(2 * math.pi * t / 8)).reshape(1, 8, 1, 1).to(torch.complex64)
    >>> out = fourier_prox(z, 0.1).real.flatten()
    >>> [round(float(v), 3) for v in out[:3]]     # the mean stays 1; the beat (amplitude 0.5) shrinks to 0.429
    [1.429, 1.304, 1.0]
    >>> torch.allclose(fourier_prox(z, 0.0), z, atol=1e-6)
    True
    """
    spectrum = torch.fft.fft(z, dim=1, norm="ortho")
    mean = spectrum[:, :1].clone()
    spectrum = _shrink(spectrum, threshold)
    spectrum[:, :1] = mean
    return torch.fft.ifft(spectrum, dim=1, norm="ortho")


@torch.no_grad()
def tv_reconstruct(physics: MRIPhysics, y: torch.Tensor, spatial: float, temporal: float,
                   iterations: Optional[int] = None, x0: Optional[torch.Tensor] = None,
                   a_norm: Optional[float] = None, low_rank: float = 0.0, fourier: float = 0.0,
                   state: Optional[dict] = None, reweight: float = 0.0) -> torch.Tensor:
    """The TV-regularised reconstruction ``(B, 2, T, H, W)`` of dynamic ``y`` (layouts of :mod:`a2a_cli.physics`).

    ``x0``: the starting image (default: the zero-filled adjoint; the view-shared image
    converges far faster on dynamic data). ``a_norm``: ``||A||`` if known (else
    estimated). Weights of 0 drop a term; with all 0 this is a least-squares solve.
    ``low_rank``: the weight of the locally low-rank term (it needs more than one frame, and is
    left out of a single frame). Its random block shifts are drawn from a
    fixed seed, so the same input gives the same image. ``fourier``: the weight of the
    temporal-spectrum term (likewise left out of a single frame).
    Not differentiable (it runs under ``no_grad``): the networks take it as their input.
    ``iterations``: the solver's iterations (None: its default, :data:`TV_ITERATIONS` or
    :data:`ADMM_ITERATIONS`); ``a_norm`` serves the Cartesian solver only.
    ``state``: a dict the solve fills with its final primal and dual iterates; given back
    filled (to a solve of the same problem), the solve starts from them instead of ``x0``
    (a warm start: nearby weights need a fraction of the iterations).
    ``reweight``: 0 for one solve. Above 0, reweighted TV: :data:`REWEIGHT_ROUNDS` rounds follow the
    first solve, each from the iterates before it for :data:`REWEIGHT_SHARE` of the iterations, each
    multiplying the weight of every spatial and temporal difference by ``reweight / (|d| + reweight)``,
    ``d`` that difference in the image before the round (data at unit mean magnitude): edges and
    motion that the data support are kept sharper.

    Cartesian operators are solved by PDHG with the data term dualised (``A`` is an FFT).
    Radial ones by ADMM (:func:`_admm`), whose linear steps need FFTs only (Toeplitz embedding
    of the normal operator) where ``A`` itself is a slow NUFFT; their data term weights each
    sample by the square root of its density compensation (:data:`RADIAL_DCF_POWER`).
    """
    values = (spatial, temporal, low_rank, fourier, reweight)
    if min(values) < 0 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"TV weights must be finite and >= 0, got {', '.join(str(v) for v in values)}")
    radial = getattr(physics, "radial", False)
    iterations = (ADMM_ITERATIONS if radial else TV_ITERATIONS) if iterations is None else iterations

    def run(its: int, solver_state: Optional[dict], maps: Optional[tuple] = None) -> torch.Tensor:
        return (_admm if radial else _pdhg)(physics, y, spatial, temporal, its, x0, a_norm, low_rank, fourier,
                                            solver_state, maps)

    if reweight == 0 or spatial == temporal == 0:
        return run(iterations, state)
    if not radial and a_norm is None:  # once for all the rounds
        a_norm = operator_norm(physics, tuple(physics.A_adjoint(y).shape))
    inner = {} if state is None else state
    out = run(iterations, inner)
    for _ in range(REWEIGHT_ROUNDS):
        # Candes, Wakin & Boyd (2008): differences the solve so far found large (edges, motion) are
        # penalised less, so that the next rounds come nearer an l0 penalty on them
        gs, gt = gradient(to_complex(out))
        maps = (reweight / (gs.abs() + reweight), reweight / (gt.abs() + reweight))
        out = run(max(1, round(iterations * REWEIGHT_SHARE)), inner, maps)
    return out


def _pdhg(physics: MRIPhysics, y: torch.Tensor, spatial: float, temporal: float, iterations: int,
          x0: Optional[torch.Tensor], a_norm: Optional[float], low_rank: float, fourier: float,
          state: Optional[dict], maps: Optional[tuple[torch.Tensor, torch.Tensor]] = None) -> torch.Tensor:
    """:func:`tv_reconstruct` of Cartesian data by PDHG, the data term dualised (``A`` is an FFT).

    ``maps``: per-difference factors of the spatial and temporal TV weights (reweighting), or None."""
    forward, adjoint = physics._forward_complex, physics._adjoint_complex
    k = to_complex(y)
    z = adjoint(k) if x0 is None else to_complex(x0)
    if z.ndim != 4:
        raise ValueError(f"tv_reconstruct needs a dynamic image (B, 2, T, H, W), got {z.ndim + 1} dimensions")
    use_s, use_t, use_l = spatial > 0, temporal > 0 and z.shape[1] > 1, low_rank > 0 and z.shape[1] > 1
    use_f = fourier > 0 and z.shape[1] > 1
    a2 = (operator_norm(physics, (z.shape[0], 2) + tuple(z.shape[1:])) if a_norm is None else a_norm) ** 2
    # ||K||^2 <= ||A||^2 + ||grad_HW||^2 (8) + ||d_t||^2 (4) + ||D F_t||^2 (1)
    step = 1.0 / math.sqrt(a2 + (8.0 if use_s else 0.0) + (4.0 if use_t else 0.0) + (1.0 if use_f else 0.0))
    tau, sigma = step * PRIMAL_WEIGHT, step / PRIMAL_WEIGHT
    # the data term's dual prox: p <- (p + sigma (A z_bar - y)) / (1 + sigma / w), w the lines' weights
    weights = line_weights(physics.mask, CARTESIAN_DCF_POWER)
    shrink = 1 + sigma if weights is None else 1 + sigma / weights.reshape(
        weights.shape[:2] + (1,) * (k.ndim - 3) + weights.shape[2:])
    p = torch.zeros_like(k)
    q = torch.zeros((z.shape[0], 2) + tuple(z.shape[1:]), dtype=z.dtype, device=z.device)
    r = torch.zeros_like(z)
    f = torch.zeros_like(z) if use_f else None  # the temporal spectrum's dual
    z_bar = z.clone()
    if state:  # a warm start (the first dual steps project the duals onto these weights' balls)
        z, z_bar, p, q, r = (state[key].clone() for key in ("z", "z_bar", "p", "q", "r"))
        if use_f and state.get("f") is not None:  # a term off there starts its dual at 0
            f = state["f"].clone()
    shifts = torch.Generator().manual_seed(0)
    # the TV balls' radii: the weights, per difference where reweighted (computed once, not every iteration)
    radius_s, radius_t = (spatial, temporal) if maps is None else (spatial * maps[0], temporal * maps[1])
    for _ in range(iterations):
        # dual steps: the data term (prox of its conjugate), then projections onto the TV balls
        p.add_(forward(z_bar) - k, alpha=sigma).div_(shrink)
        update = adjoint(p)
        if use_s or use_t:
            _tv_dual_step(q, r, z_bar, sigma, radius_s if use_s else None, radius_t if use_t else None)
            update.add_(gradient_adjoint(q, r))
        if f is not None:  # dualised like TV (F_t unitary): its dual steps and is projected onto its ball
            f.add_(temporal_spectrum(z_bar), alpha=sigma)
            f.div_(torch.clamp(f.abs().div_(fourier), min=1.0))
            update.add_(torch.fft.ifft(f, dim=1, norm="ortho"))
        # primal step (with the low-rank term's prox) and extrapolation: z_bar = 2 z_new - z
        z_bar = z.sub(update, alpha=tau)
        if use_l:
            z_bar = low_rank_prox(z_bar, tau * low_rank, shifts)
        z, z_bar = z_bar, z_bar.mul(2).sub_(z)
    if state is not None:
        state.update(z=z, z_bar=z_bar, p=p, q=q, r=r, f=f)
    return to_real(z)


def line_weights(mask: torch.Tensor, power: float) -> Optional[torch.Tensor]:
    """The data term's weights of a Cartesian line mask ``(B, 1, T, H or 1, W)``: ``(B, T, W)``, or None.

    Each measured phase-encode line stands for the k-space between its neighbours among the lines
    that any frame of the sequence measures (TV along time carries lines across frames): its weight
    is half the distance from the previous to the next such line (1 at the ends), over the mean of
    that over the batch item's measured lines, to ``power``. Where the frames together measure
    every line (most dynamic patterns), every weight is 1; a mask that is the same in every frame,
    or one frame, weights its outer lines up. Lines not measured get 1 (they carry no data). None
    where the weights would all be 1 anyway: a power of 0, or a mask that is not the same along H
    (2D point masks), which has no line spacing.

    >>> m = torch.zeros(1, 1, 1, 1, 8); m[..., [1, 2, 3, 5, 7]] = 1   # spacings 1, 1, 1.5, 2, 1.5: mean 1.4
    >>> [round(w, 3) for w in line_weights(m, 1.0)[0, 0].tolist()]
    [1.0, 0.714, 0.714, 1.071, 1.0, 1.429, 1.0, 1.071]
    >>> m2 = torch.zeros(1, 1, 2, 1, 8); m2[..., 0, :, 0::2] = 1; m2[..., 1, :, 1::2] = 1   # together: every line
    >>> bool((line_weights(m2, 1.0) == 1).all())
    True
    """
    if power == 0 or mask.ndim != 5 or not torch.equal(mask.amax(3), mask.amin(3)):
        return None
    lines = (mask[:, 0, :, 0] > 0).cpu()  # (B, T, W)
    union = lines.any(1)  # (B, W)
    spacing = torch.ones(union.shape)
    for b in torch.nonzero(union.any(-1)).flatten():
        idx = torch.nonzero(union[b]).flatten().float()
        prev = torch.cat((idx[:1] - 1, idx[:-1]))
        after = torch.cat((idx[1:], idx[-1:] + 1))
        spacing[b, idx.long()] = (after - prev) / 2
    measured = lines.float()
    spacing = spacing[:, None].expand(lines.shape)
    mean = (spacing * measured).sum((1, 2)) / measured.sum((1, 2)).clamp_min(1)
    relative = (spacing / mean.clamp_min(1e-30)[:, None, None]).pow(power)
    return torch.where(lines, relative, torch.ones_like(relative)).to(mask.device)


def _tv_dual_step(q: torch.Tensor, r: torch.Tensor, point: torch.Tensor, sigma: float,
                  spatial: Optional[float | torch.Tensor], temporal: Optional[float | torch.Tensor]) -> None:
    """In place: the TV duals ``q`` (spatial) and ``r`` (temporal) step along the gradient of ``point``
    and are projected back onto their balls (radius the weight, or per difference where a tensor
    is given; None, a term that is off, leaves its dual at 0)."""
    gs, gt = gradient(point)
    if spatial is not None:  # anisotropic: each difference's dual on its own ball
        q.add_(gs, alpha=sigma)
        q.div_(torch.clamp(q.abs().div_(spatial), min=1.0))
    if temporal is not None:
        r.add_(gt, alpha=sigma)
        r.div_(torch.clamp(r.abs().div_(temporal), min=1.0))


def _shrink(v: torch.Tensor, threshold: float) -> torch.Tensor:
    """Complex soft thresholding: the prox of ``threshold |v|``, element-wise."""
    return v * torch.clamp(1 - threshold / v.abs().clamp_min(1e-30), min=0)


ADMM_STATE = ("x", "vs", "vt", "us", "ut", "lr", "ml", "sp", "ms")


def _admm(physics: MRIPhysics, y: torch.Tensor, spatial: float, temporal: float, iterations: int,
          x0: Optional[torch.Tensor], a_norm: Optional[float] = None, low_rank: float = 0.0, fourier: float = 0.0,
          state: Optional[dict] = None, maps: Optional[tuple[torch.Tensor, torch.Tensor]] = None) -> torch.Tensor:
    """:func:`tv_reconstruct` of radial data by ADMM, on the data term ``1/2 ||W^(1/2) (A x - y)||^2``
    (``a_norm`` unused: the signature of :func:`_pdhg`; ``maps`` as there, on the shrinkage thresholds).

    ``W`` weights each sample by its density compensation to the power :data:`RADIAL_DCF_POWER`
    (:meth:`~a2a_cli.nufft.RadialMRI.data_weights`). The TV differences are split off
    (``v = grad x``), and so is the image itself for the low-rank term (``l = x``) and for the
    temporal-spectrum term (``g = x``); each iteration solves
    ``(A^H W A + rho grad^H grad + rho [low_rank > 0] + rho [fourier > 0]) x = A^H W y + rho grad^H (v - u) + rho (l - m) + rho (g - n)``
    by :data:`ADMM_CG` conjugate-gradient steps from the last ``x`` (``A^H W A`` by Toeplitz
    embedding: FFTs only), then shrinks ``v``, thresholds ``l``'s blocks (:func:`low_rank_prox`)
    and ``g``'s temporal spectra (:func:`fourier_prox`).
    ``rho`` starts at the mean eigenvalue of ``A^H W A`` (for coil maps of unit energy) and is
    balanced against the residuals (Boyd et al. 2011, 3.4.1), which kept 30 iterations within
    0.1 dB of 100 over weights a factor 4 apart.
    """
    def dot(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a.conj() * b).real.sum())

    k = to_complex(y)
    weights = physics.data_weights(k.shape[0], RADIAL_DCF_POWER)
    rhs = physics._adjoint_complex(k, weights=weights)
    x = rhs.clone() if x0 is None else to_complex(x0).clone()
    h, w = physics.image_size
    rho = max(float(weights.sum()) / (weights.shape[0] * h * w), 1e-6)
    use_s, use_t, use_l = spatial > 0, temporal > 0 and x.shape[1] > 1, low_rank > 0 and x.shape[1] > 1
    use_f = fourier > 0 and x.shape[1] > 1
    shifts = torch.Generator().manual_seed(0)
    factor_s, factor_t = (1.0, 1.0) if maps is None else maps  # the reweighting of the shrinkage thresholds

    def diffs(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gs, gt = gradient(z)
        return (gs if use_s else gs.zero_()), (gt if use_t else gt.zero_())  # a dropped term's split stays 0

    def system(z: torch.Tensor) -> torch.Tensor:
        out = physics.normal(z, weights=weights).add_(gradient_adjoint(*diffs(z)), alpha=rho)
        return out.add_(z, alpha=rho * (int(use_l) + int(use_f)))

    vs, vt = diffs(x)
    us, ut = torch.zeros_like(vs), torch.zeros_like(vt)
    lr, ml = x.clone(), torch.zeros_like(x)  # the low-rank split and its scaled dual (unused without the term)
    sp, ms = x.clone(), torch.zeros_like(x)  # the same for the temporal-spectrum term
    if state:  # a warm start
        x, vs, vt, us, ut, lr, ml, sp, ms = (state[key].clone() for key in ADMM_STATE)
        rho = state["rho"]
    for _ in range(iterations):
        r = rhs + rho * gradient_adjoint(vs - us, vt - ut) - system(x)
        if use_l:
            r.add_(lr - ml, alpha=rho)
        if use_f:
            r.add_(sp - ms, alpha=rho)
        p, rr = r.clone(), dot(r, r)
        for _ in range(ADMM_CG):
            if rr == 0:
                break
            ap = system(p)
            alpha = rr / max(dot(p, ap), 1e-30)
            x.add_(p, alpha=alpha)
            r.sub_(ap, alpha=alpha)
            rr, rr_old = dot(r, r), rr
            p = r.add(p, alpha=rr / rr_old)
        gs, gt = diffs(x)
        vs_old, vt_old, lr_old, sp_old = vs, vt, lr, sp
        vs, vt = _shrink(gs + us, factor_s * (spatial / rho)), _shrink(gt + ut, factor_t * (temporal / rho))
        us.add_(gs - vs)
        ut.add_(gt - vt)
        primal2 = dot(gs - vs, gs - vs) + dot(gt - vt, gt - vt)
        change = gradient_adjoint(vs - vs_old, vt - vt_old)
        if use_l:
            lr = low_rank_prox(x + ml, low_rank / rho, shifts)
            ml.add_(x - lr)
            primal2 += dot(x - lr, x - lr)
            change = change + (lr - lr_old)
        if use_f:
            sp = fourier_prox(x + ms, fourier / rho)
            ms.add_(x - sp)
            primal2 += dot(x - sp, x - sp)
            change = change + (sp - sp_old)
        primal, dual = math.sqrt(primal2), rho * math.sqrt(dot(change, change))
        if primal > 10 * dual:  # residual balancing: rho doubles or halves, the scaled duals with it
            rho *= 2
            for u in (us, ut, ml, ms):
                u.div_(2)
        elif dual > 10 * primal:
            rho /= 2
            for u in (us, ut, ml, ms):
                u.mul_(2)
    if state is not None:
        state.update(zip(ADMM_STATE, (x, vs, vt, us, ut, lr, ml, sp, ms)), rho=rho)
    return to_real(x)


class _OutOfTime(Exception):
    """The weight search reached its deadline."""


Weights = tuple[float, float, float, float, float]


# the reweighting third: of the walks it gained most, and a search cut by its deadline should have walked it
_AXES = ((1, TEMPORAL_GRID), (0, SPATIAL_GRID), (4, REWEIGHT_GRID), (2, LOW_RANK_GRID), (3, FOURIER_GRID))
#: the regularisation weights' axes (the diagonal move steps these; the reweighting is no weight)
_TERMS = tuple(a for a in _AXES if a[0] != 4)


def _walk(score: Callable[[Weights], float], w: Weights, axis: int, values: Sequence[float]) -> Weights:
    """Walk down the valley along one weight from where it stands: stops at the first rise."""
    def at(j: int) -> Weights:
        return w[:axis] + (values[j],) + w[axis + 1:]

    i = values.index(w[axis])
    while True:
        here = score(at(i))
        left = score(at(i - 1)) if i > 0 else math.inf
        right = score(at(i + 1)) if i + 1 < len(values) else math.inf
        if left < here and left <= right:
            i -= 1
        elif right < here:
            i += 1
        else:
            return at(i)


def _together(w: Weights, step: int) -> Optional[Weights]:
    """Every weight that is on, one grid step the same way (a weight at 0 stays off); None off the grids."""
    out = list(w)
    for axis, values in _TERMS:
        if w[axis] > 0:
            j = values.index(w[axis]) + step
            if not 0 <= j < len(values) or values[j] == 0:
                return None
            out[axis] = values[j]
    return tuple(out)


def search_grid(score: Callable[[Weights], float], dynamic: bool = True) -> Weights:
    """The ``(spatial, temporal, low_rank, fourier, reweight)`` grid point that the downhill search of
    :func:`select_weights` ends on.

    ``score`` is called on grid points (memoise it: the walks revisit them). Temporal first from
    :data:`TEMPORAL_START`, then spatial from :data:`SPATIAL_START`, then each weight again from
    where it stands (the low-rank and temporal-spectrum ones from 0, the reweighting from
    :data:`REWEIGHT_START`), and every weight
    that is on one grid step together, less or more, until nothing moves (:func:`descend`). Static
    data: spatial and reweighting only.

    >>> valley = lambda w: 100 * math.log(w[0] / w[1]) ** 2 + math.log(w[1] / 0.0005) ** 2 + w[2] + w[3]
    >>> search_grid(valley)   # a narrow diagonal valley: one weight at a time, the walks stop at 0.002
    (0.001, 0.001, 0.0, 0.0, 0.3)
    """
    w = (SPATIAL_GRID[3], TEMPORAL_START if dynamic else 0.0, 0.0, 0.0, REWEIGHT_START)
    if dynamic:
        w = _walk(score, w, 1, TEMPORAL_GRID)
    w = _walk(score, (SPATIAL_START,) + w[1:], 0, SPATIAL_GRID)
    return descend(score, w)


def descend(score: Callable[[Weights], float], w: Weights) -> Weights:
    """From grid point ``w``, walk along each weight of :func:`search_grid` in turn, then every weight
    that is on one grid step together, less or more, until nothing moves (a move is always downhill).

    >>> bowl = lambda w: math.log(w[0] / 0.01) ** 2 + math.log(w[1] / 0.05) ** 2 + w[2] + w[3] + w[4]
    >>> descend(bowl, (0.002, 0.2, 0.0, 0.0, 0.0))
    (0.01, 0.05, 0.0, 0.0, 0.0)
    """
    for _ in range(len(SPATIAL_GRID)):
        before = w
        for axis, values in _AXES:
            if axis in (0, 4) or w[1] > 0:  # static data (no temporal weight): spatial and its reweighting only
                w = _walk(score, w, axis, values)
        # a valley along the diagonal (less of every term, or more) traps walks along one weight at a time
        for step in (-1, 1):
            while (c := _together(w, step)) is not None and score(c) < score(w):
                w = c
        if w == before:
            break
    return w


def _grid_distance(a: Weights, b: Weights) -> int:
    """Grid steps between two candidates of :func:`search_grid`, summed over the weights (0 is a step below a grid's least value)."""
    total = 0
    for axis, values in _AXES:
        index = [-1 if v == 0 and values[0] != 0 else values.index(v) for v in (a[axis], b[axis])]
        total += abs(index[0] - index[1])
    return total


@torch.no_grad()
def select_weights(problems: Sequence[tuple[MRIPhysics, torch.Tensor]], dynamic: bool = True,
                   fraction: float = HOLDOUT_FRACTION, iterations: Optional[int] = None, seed: int = 0,
                   progress=None, deadline: Optional[float] = None) -> TVWeights:
    """Choose ``(spatial, temporal, low_rank, fourier, reweight)`` weights by k-space cross-validation on ``problems``.

    ``problems``: ``(physics, y)`` pairs of normalised dynamic data. For each, ``fraction`` of every frame's
    measured locations (radial data: spokes) is held out once; a candidate's score is the held-out k-space
    error of its solution relative to the held-out samples' energy, summed over the
    problems. The search (:func:`search_grid`) walks downhill on the grids, as the error is
    smooth in the log-weights. Each candidate after the first starts from the iterates of the
    nearest one solved before and runs :data:`WARM_SHARE` of the iterations (Cartesian data of at
    least :data:`WARM_MIN_SAMPLES`; radial candidates and small problems are all solved from the
    start); from where that search ends, :func:`descend` goes on with every solve from the start
    (as reconstruction solves), which moves only where the warm scores drifted. ``table``: every
    candidate with its score, the cold one where there is one.
    ``progress``: called with no argument after each solve. ``deadline``: a
    :func:`time.monotonic` time after which no new candidate is solved; the best one so far
    wins (``TVWeights.complete`` is then False).
    """
    gen = torch.Generator().manual_seed(seed)
    folds = []
    for physics, y in problems:
        fold = make_fold(physics, y, fraction, gen)
        start = fold.physics_in.view_sharing(fold.y_in)  # each fold starts from its own input's view sharing
        # ||A|| once per fold (Cartesian PDHG's step sizes; radial ADMM needs none)
        norm = None if getattr(physics, "radial", False) else operator_norm(fold.physics_in, tuple(start.shape))
        folds.append((fold, start, norm))
    # radial (ADMM) solves are left cold: warm ones of 10 iterations saved 30 % of the search and lost 0.27 dB
    radial = any(getattr(physics, "radial", False) for physics, _ in problems)
    small = sum(y[:, 0].numel() for _, y in problems) < WARM_MIN_SAMPLES
    share = 0.0 if radial or small else WARM_SHARE
    warm: dict[Weights, float] = {}  # the walks' scores (warm-started solves)
    cold: dict[Weights, float] = {}  # the final descent's (every solve from the start, as reconstruction solves)
    states: dict[Weights, list[dict]] = {}  # the iterates of recent warm solves, one dict per fold

    def solve(w: Weights, near: Optional[Weights]) -> tuple[float, list[dict]]:
        if deadline is not None and (warm or cold) and time.monotonic() > deadline:
            raise _OutOfTime
        total, solved = 0.0, []
        for i, (fold, start, a_norm) in enumerate(folds):
            state, its = {}, iterations
            if near is not None:
                state = dict(states[near][i])
                its = max(1, round(share * (its or TV_ITERATIONS)))
            z = tv_reconstruct(fold.physics_in, fold.y_in, *w[:2], its, x0=start, a_norm=a_norm, low_rank=w[2],
                               fourier=w[3], state=state, reweight=w[4])
            solved.append(state)
            total += heldout_error(fold, z)
            if progress is not None:
                progress()
        return total, solved

    def warm_score(w: Weights) -> float:
        if w not in warm:
            near = min(states, key=lambda v: _grid_distance(v, w), default=None) if share > 0 else None
            warm[w], solved = solve(w, near)
            if near is None:  # solved from the start
                cold[w] = warm[w]
            if share > 0:  # only the walks start from kept iterates
                states[w] = solved
                while len(states) > WARM_KEPT:
                    del states[next(iter(states))]
        return warm[w]

    def cold_score(w: Weights) -> float:
        if w not in cold:
            cold[w] = solve(w, None)[0]
        return cold[w]

    complete, scores = True, warm  # the scores that rank the candidates so far
    try:
        w = search_grid(warm_score, dynamic)
        if share > 0:
            # where a solve does not converge in its iterations (weak weights, lines no frame measures), the
            # warm scores drift from those of the solve reconstruction runs: descend on those from here
            scores, end = cold, w
            w = descend(cold_score, w)
    except _OutOfTime:
        complete = False
        # cut before the descent solved the walks' end cold: that end is still the best known
        w = end if scores is cold and end not in cold else min(scores, key=scores.__getitem__)
    table = tuple(sorted(key + (round(v, 6),) for key, v in (warm | cold).items()))
    return TVWeights(*w, table=table, complete=complete)
