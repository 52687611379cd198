"""Cartesian MRI forward operators.

Tensor layouts (real tensors, channel 0 = real part, channel 1 = imaginary part):

* images, dynamic:      ``(B, 2, T, H, W)``
* images, static:       ``(B, 2, H, W)``
* k-space, single coil: ``(B, 2, T, H, W)``
* k-space, multi-coil:  ``(B, 2, T, N, H, W)`` (N coils; the time axis stays at dim 2)
* masks:                ``(B, C, T, H, W)`` with C in {1, 2}, or anything that broadcasts
  to it (a ``(T, W)`` line mask becomes ``(1, 1, T, 1, W)``).
* coil sensitivity maps: complex ``(B, N, H, W)``.

H is the readout (fully sampled) direction, W the phase-encode direction.
The Fourier transform is the centred orthonormal 2D FFT over the last two axes
(``ifftshift -> fft2 -> fftshift``), so ``F^H F = I``.

>>> import torch
>>> x = torch.randn(1, 2, 4, 8, 8)
>>> mask = torch.zeros(1, 1, 4, 1, 8); mask[..., ::2] = 1
>>> physics = DynamicMRI(mask=mask)
>>> y = physics(x)
>>> y.shape
torch.Size([1, 2, 4, 8, 8])
>>> bool(torch.allclose(physics.A(physics.A_adjoint(y)), y, atol=1e-5))
True
"""
from __future__ import annotations

from typing import Optional

import torch

from .fft import fft1c, fft2c, ifft1c, ifft2c

__all__ = [
    "to_complex",
    "to_real",
    "fft2c",
    "ifft2c",
    "fft1c",
    "ifft1c",
    "gather_time",
    "measurement_scale",
    "normalise_measurement",
    "rescale",
    "MRIPhysics",
    "DynamicMRI",
    "SequentialMRI",
    "Reflection",
    "is_sequential",
    "SharedSamplesMRI",
]


def to_complex(x: torch.Tensor) -> torch.Tensor:
    """``(B, 2, ...)`` real -> ``(B, ...)`` complex."""
    if x.ndim < 2 or x.shape[1] != 2:
        raise ValueError(f"expected a real tensor with 2 channels (real, imaginary) at dim 1, got shape {tuple(x.shape)}")
    return torch.complex(x[:, 0].contiguous(), x[:, 1].contiguous())


def to_real(z: torch.Tensor) -> torch.Tensor:
    """``(B, ...)`` complex -> ``(B, 2, ...)`` real."""
    return torch.stack((z.real, z.imag), dim=1)


def gather_time(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Pick frames per sample along dim 2.

    ``t`` is ``(B or 1, C, T, ...)``; ``index`` is a long tensor ``(B, k)`` of frame
    indices, one row per sample. Returns ``(B, C, k, ...)``.

    >>> t = torch.arange(6.).reshape(1, 1, 6).expand(2, 1, 6)
    >>> gather_time(t, torch.tensor([[0, 1], [4, 5]]))[:, 0]
    tensor([[0., 1.],
            [4., 5.]])
    """
    b = index.shape[0]
    if t.shape[0] not in (1, b):
        raise ValueError(f"cannot gather a batch of {t.shape[0]} with {b} index rows")
    t = t.expand(b, *t.shape[1:])
    shape = [b, 1, index.shape[1]] + [1] * (t.ndim - 3)
    idx = index.to(t.device).reshape(shape).expand(b, t.shape[1], index.shape[1], *t.shape[3:])
    return torch.gather(t, 2, idx)


def measurement_scale(y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Root-mean-square of the measured samples of each batch entry, ``(B,)`` float32.

    ``y`` ``(B, 2, T, [N,] H, W)`` (or static ``(B, 2, [N,] H, W)``), ``mask`` broadcasting
    to ``(B, 1, T, H, W)`` (``(B, 1, H, W)``). Summed in float64, so that k-space stored
    at any scale (1e-15 to 1e15 times a unit image) gives a finite scale; 1 where nothing
    was measured. Scaling ``y`` by ``c > 0`` scales the result by ``c``.

    >>> y = torch.zeros(1, 2, 2, 4, 4); y[:, 0, :, :, 1] = 3e13
    >>> mask = torch.zeros(1, 1, 2, 1, 4); mask[..., 1] = 1
    >>> float(measurement_scale(y, mask)[0]) == float(torch.tensor(3e13 / 2 ** 0.5))
    True
    """
    m = (torch.as_tensor(mask, device=y.device) != 0)[:, :1]
    if y.ndim == m.ndim + 1:  # a coil axis after T (or first, static), absent from the mask
        m = m.unsqueeze(-3)
    m = m.expand(y.shape[0], 1, *y.shape[2:])
    energy = (y.double().square() * m).sum(dim=tuple(range(1, y.ndim)))
    count = m.sum(dim=tuple(range(1, y.ndim))).double() * y.shape[1]
    scale = torch.sqrt(energy / count.clamp(min=1))
    ok = torch.isfinite(scale) & (scale > 0)
    return torch.where(ok, scale, torch.ones_like(scale)).float()


def normalise_measurement(y: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(y / s, s)`` with ``s`` the :func:`measurement_scale`, shaped ``(B, 1, ..., 1)`` like ``y``.

    Training and reconstruction run the network and the loss on unit-scale data, so that
    neither depends on the units the scanner stored; multiply an image by ``s`` (reshaped
    to its rank) to return to the input's units.
    """
    s = measurement_scale(y, mask)
    s = s.reshape(-1, *([1] * (y.ndim - 1)))
    return y / s, s


def rescale(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``x * s`` with a per-sample scale ``s`` of any rank whose first axis is the batch."""
    return x * s.reshape(-1, *([1] * (x.ndim - 1)))


def _as_mask(mask: torch.Tensor | object) -> torch.Tensor:
    mask = torch.as_tensor(mask)
    if mask.dtype == torch.bool or not mask.is_floating_point():
        mask = mask.to(torch.float32)
    if mask.ndim not in (4, 5):
        raise ValueError(
            f"mask must be 5D (B, C, T, H, W) for dynamic data or 4D (B, C, H, W) for one image, "
            f"got shape {tuple(mask.shape)}"
        )
    if mask.shape[1] not in (1, 2):
        raise ValueError(f"mask channel axis (dim 1) must have size 1 or 2, got shape {tuple(mask.shape)}")
    return mask


class MRIPhysics:
    """Base class: masked (optionally multi-coil) Cartesian Fourier sampling.

    ``mask`` is kept in its given real layout; ``coil_maps`` (complex ``(B, N, H, W)``)
    turns the operator into a multi-coil one, which adds a coil axis at dim 3 of the
    k-space (``(B, 2, T, N, H, W)``).
    """

    def __init__(self, mask: torch.Tensor, coil_maps: Optional[torch.Tensor] = None, cg_iterations: int = 10):
        self.mask = _as_mask(mask)
        if coil_maps is not None:
            coil_maps = torch.as_tensor(coil_maps)
            if not coil_maps.is_complex() or coil_maps.ndim != 4:
                raise ValueError(f"coil_maps must be complex (B, N, H, W), got {coil_maps.dtype} {tuple(coil_maps.shape)}")
        self.coil_maps = coil_maps
        self.cg_iterations = cg_iterations

    # -- helpers --------------------------------------------------------------------
    @property
    def multicoil(self) -> bool:
        return self.coil_maps is not None

    @property
    def n_frames(self) -> int:
        """Number of frames T of the mask (1 for a 4D single-image mask)."""
        return self.mask.shape[2] if self.mask.ndim == 5 else 1

    def _kmask(self) -> torch.Tensor:
        """The mask as a real tensor broadcastable to complex k-space ``(B, [T], [N], H, W)``."""
        m = self.mask[:, 0]
        if self.multicoil:
            m = m.unsqueeze(-3)
        return m

    def _coil_expand(self, z: torch.Tensor) -> torch.Tensor:
        """Complex image ``(B, [T], H, W)`` -> coil images ``(B, [T], N, H, W)``."""
        s = self.coil_maps.to(z.device)
        if z.ndim == 4:  # (B, T, H, W)
            s = s.unsqueeze(1)
        return z.unsqueeze(-3) * s

    def _coil_combine(self, z: torch.Tensor) -> torch.Tensor:
        """Coil images ``(B, [T], N, H, W)`` -> complex image ``(B, [T], H, W)`` via ``sum_c conj(S_c) z_c``."""
        s = self.coil_maps.to(z.device)
        if z.ndim == 5:
            s = s.unsqueeze(1)
        return (z * s.conj()).sum(-3)

    def to(self, device: torch.device | str) -> "MRIPhysics":
        """Move the operator's tensors to ``device`` (in place) and return it."""
        self.mask = self.mask.to(device)
        self.__dict__.pop("_line_diag_cache", None)
        if self.coil_maps is not None:
            self.coil_maps = self.coil_maps.to(device)
        return self

    def with_mask(self, mask: torch.Tensor) -> "MRIPhysics":
        """The same kind of operator (same coil maps) with another mask."""
        return type(self)(mask=mask, coil_maps=self.coil_maps, cg_iterations=self.cg_iterations)

    def split_time(self, index: torch.Tensor) -> "MRIPhysics":
        """The operator restricted to the frames ``index`` (long ``(B, k)``, one row per sample)."""
        if self.mask.ndim != 5:
            raise ValueError("split_time needs a 5D (B, C, T, H, W) mask")
        return self.with_mask(gather_time(self.mask, index))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.A(x)

    # -- operator interface -----------------------------------------------------------
    def _forward_complex(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _adjoint_complex(self, k: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def A(self, x: torch.Tensor) -> torch.Tensor:
        """Forward operator: image -> masked k-space."""
        return to_real(self._forward_complex(to_complex(x)))

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Adjoint operator: k-space -> zero-filled image."""
        return to_real(self._adjoint_complex(to_complex(y)))

    def A_dagger(self, y: torch.Tensor) -> torch.Tensor:
        """Least-squares (pseudo-inverse) reconstruction ``argmin_x ||A x - y||``."""
        return self.prox_l2(None, y, 0.0)

    def _normal_diag(self) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def prox_l2(self, z: Optional[torch.Tensor], y: torch.Tensor, lam: float | torch.Tensor) -> torch.Tensor:
        """Data consistency: ``argmin_x ||A x - y||^2 + lam ||x - z||^2``.

        ``lam = 0`` gives the exact (hard) data-consistency step: measured samples are
        kept as measured, unmeasured ones are taken from ``z``. Single-coil Cartesian
        sampling has a closed form; with coil maps it is solved by conjugate gradient
        (one CG per frame, see :func:`_cg`). ``z=None`` means zeros (so ``lam=0`` gives
        the pseudo-inverse).

        With coil maps the images live on the maps' support (pixels where some
        ``S_c != 0``; estimated maps are zero where no coil sees the object): nothing
        outside it is measured, so the step returns zero there, the minimum-norm
        choice. Otherwise a network's prior could leave anything there, unseen by the
        data and by any self-supervised loss.
        """
        yc = to_complex(y)
        if not self.multicoil:
            # A^H A = F^H D F with D diagonal (the sampling count per k-space location)
            d = self._normal_diag()
            rhs = fft2c(self._adjoint_complex(yc))
            fallback = torch.zeros_like(rhs)
            if z is not None:
                fallback = fft2c(to_complex(z))
                rhs = rhs + lam * fallback
            denom = d + lam
            # where nothing was measured and lam == 0, the solution is free: keep z there
            k = torch.where(denom > 0, rhs / torch.clamp(denom, min=1e-12), fallback)
            return to_real(ifft2c(k))
        return solve_on_support(self._normal_complex, self._adjoint_complex(yc), self.support(), z, lam,
                                self.cg_iterations)

    def _line_diag(self) -> Optional[torch.Tensor]:
        """The normal operator's k-space weight reduced to one row, ``(..., 1, W)``, in
        uncentred (``ifftshift``-ed) order, when the mask samples whole readout lines
        (the same along H); None otherwise."""
        if not hasattr(self, "_line_diag_cache"):
            d = self._normal_diag()
            row = d[..., :1, :]
            lines = d.shape[-2] == 1 or bool(torch.equal(d, row.expand_as(d)))
            self._line_diag_cache = torch.fft.ifftshift(row, dim=-1) if lines else None
        return self._line_diag_cache

    def _normal_complex(self, v: torch.Tensor) -> torch.Tensor:
        """``A^H A v`` for a complex image ``v`` (multi-coil).

        With line masks the FFT along the fully sampled readout H cancels
        (``F^H M F = F_W^H M F_W`` when M is constant along H), so only 1D FFTs along W
        are needed: the same result at about half the FFT cost of
        ``A_adjoint(A(v))``.
        """
        d = self._line_diag()
        if d is None or not self.multicoil:
            return self._adjoint_complex(self._forward_complex(v))
        # F_W^H D F_W is a circular convolution along W, which commutes with the centring
        # shifts: only the weight needs shifting (done once, in _line_diag)
        z = torch.fft.ifft(torch.fft.fft(self._coil_expand(v), dim=-1, norm="ortho") * d, dim=-1, norm="ortho")
        return self._coil_combine(z)

    def support(self) -> torch.Tensor:
        """Where the coil maps see anything: float ``(B, H, W)``, 1 where ``sum_c |S_c|^2 > 0`` (multi-coil only)."""
        if not self.multicoil:
            raise ValueError("support() needs coil maps")
        return (self.coil_maps.abs().pow(2).sum(1) > 0).to(torch.float32)


def solve_on_support(normal, rhs: torch.Tensor, support: torch.Tensor, z: Optional[torch.Tensor], lam,
                     iterations: int) -> torch.Tensor:
    """``argmin_x ||A x - y||^2 + lam ||x - z||^2`` on the coil maps' support, by conjugate gradient.

    ``normal`` applies ``A^H A`` (weighted, for radial data) to complex images ``(B, [T], H, W)``,
    ``rhs`` is ``A^H y`` of that layout, ``support`` ``(B, H, W)``, ``z`` the real ``(B, 2, [T], H, W)``
    image to stay close to (None: start from zero). Returns the real image. The normal
    operator maps supported images to supported images, so CG stays on the support.
    """
    support = support.to(rhs.device)
    if rhs.ndim == 4:  # (B, T, H, W)
        support = support.unsqueeze(1)
    x0 = torch.zeros_like(rhs) if z is None else to_complex(z) * support
    if z is not None:
        rhs = rhs + lam * x0
    x = _cg(lambda v: normal(v) + lam * v, rhs, x0, iterations)
    return to_real(x * support)


def _cg(normal, b: torch.Tensor, x: torch.Tensor, iterations: int) -> torch.Tensor:
    """Conjugate gradient for a Hermitian positive (semi-)definite operator on complex images.

    ``b`` and ``x`` are ``(B, [T], H, W)``. Inner products sum over H and W only: every
    image (every frame of every sample) runs its own CG. For :class:`DynamicMRI` the
    normal operator ``sum_c S_c^H F^H M_t F S_c`` acts on each frame separately, so
    frames stay independent: a frame's result does not depend on the other frames of
    the batch (windowed reconstruction equals the whole-sequence one). For a static
    image ``(B, H, W)`` this is one CG per sample.

    >>> a = torch.tensor([[[[2.0 + 0j]]], [[[5.0 + 0j]]]]).reshape(1, 2, 1, 1)
    >>> x = _cg(lambda v: a * v, torch.ones(1, 2, 1, 1, dtype=torch.complex64), torch.zeros(1, 2, 1, 1, dtype=torch.complex64), 1)
    >>> [round(v, 4) for v in x.real.flatten().tolist()]  # one step per frame: 1/2 and 1/5 exactly
    [0.5, 0.2]
    """
    dims = (-2, -1)
    r = b - normal(x)
    p = r.clone()
    rs = (r.conj() * r).real.sum(dims, keepdim=True)
    for _ in range(iterations):
        ap = normal(p)
        denom = (p.conj() * ap).real.sum(dims, keepdim=True)
        alpha = rs / torch.clamp(denom, min=1e-30)
        x = x + alpha * p
        r = r - alpha * ap
        rs_new = (r.conj() * r).real.sum(dims, keepdim=True)
        p = r + (rs_new / torch.clamp(rs, min=1e-30)) * p
        rs = rs_new
    return x


class DynamicMRI(MRIPhysics):
    """Dynamic MRI: ``y_t = M_t F x_t`` (multi-coil: ``y_{t,c} = M_t F S_c x_t``).

    ``x`` is ``(B, 2, T, H, W)`` and ``y`` is ``(B, 2, T, H, W)`` (``(B, 2, T, N, H, W)``
    with coil maps). With a 4D mask ``(B, C, H, W)`` it is a single-image MRI operator
    on ``(B, 2, H, W)``.
    """

    def _forward_complex(self, z: torch.Tensor) -> torch.Tensor:
        if self.multicoil:
            z = self._coil_expand(z)
        return self._kmask() * fft2c(z)

    def _adjoint_complex(self, k: torch.Tensor) -> torch.Tensor:
        z = ifft2c(self._kmask() * k)
        return self._coil_combine(z) if self.multicoil else z

    def _normal_diag(self) -> torch.Tensor:
        return self._kmask() ** 2  # A^H A = F^H M^2 F (M^2 = M only for 0/1 masks)

    def view_sharing(self, y: torch.Tensor, window: Optional[int] = None) -> torch.Tensor:
        """Zero-filled images after filling each frame's unsampled k-space with the
        time-averaged k-space (each location averaged over the frames that sampled it).

        ``window``: average over consecutive blocks of this many frames (the last block
        may be shorter) instead of the whole sequence, so that a network trained on
        chunks of ``window`` frames sees the same kind of input at reconstruction time.
        ``y``: ``(B, 2, T, ...)`` -> images ``(B, 2, T, H, W)`` (coil-combined).
        """
        if self.mask.ndim != 5:
            return self.A_adjoint(y)
        filled, _ = self._view_shared_complex(y, window)
        z = ifft2c(filled)
        return to_real(self._coil_combine(z) if self.multicoil else z)

    def with_shared_samples(self, y: torch.Tensor, window: Optional[int] = None,
                            fraction: float | torch.Tensor = 1.0,
                            scale: Optional[torch.Tensor] = None) -> "DynamicMRI":
        """This operator with a data consistency that also draws on the view-shared samples.

        A location a frame did not sample but another frame of its block (``window`` frames,
        see :meth:`view_sharing`) did gets the block's average there, and
        :meth:`~SharedSamplesMRI.prox_l2` moves the image's k-space ``fraction`` of the way
        to it (1: keeps it exactly) before the usual step on the frame's own samples. What no
        frame of the block measured stays the network's. ``scale`` (``(B, 1, T, 1, 1)``, with
        coils ``(B, 1, T, 1, 1, 1)``): the data's normalisation, applied to each frame's shared
        samples after averaging, so that frames scaled differently share the same k-space.
        Where every frame measured all of its block's locations (the same lines in every
        frame) there is nothing to share and the operator comes back unchanged.

        >>> mask = torch.zeros(1, 1, 2, 1, 4); mask[..., 0, :, 0] = 1; mask[..., 1, :, 1] = 1
        >>> physics = DynamicMRI(mask=mask)
        >>> y = physics(torch.randn(1, 2, 2, 3, 4))
        >>> shared = physics.with_shared_samples(y)
        >>> shared.shared_mask[0, :, 0].tolist()       # frame 0 shares line 1, frame 1 line 0
        [[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]
        >>> x = shared.prox_l2(torch.zeros(1, 2, 2, 3, 4), y, 0.0)   # hard: the view-sharing image
        >>> bool(torch.allclose(x, physics.view_sharing(y), atol=1e-6))
        True
        """
        if self.mask.ndim != 5:
            return self
        filled, union = self._view_shared_complex(y, window)
        own = (self.mask[:, 0] != 0).to(union.dtype)
        if bool((union == own).all()):
            return self
        shared_mask = union - own  # (B, T, H or 1, W): the block measured it, this frame did not
        if self.multicoil:
            shared_mask = shared_mask.unsqueeze(-3)
        shared_y = filled * shared_mask
        if scale is not None:
            shared_y = shared_y / scale[:, 0]
        return SharedSamplesMRI(self.mask, self.coil_maps, self.cg_iterations, shared_y=shared_y,
                                shared_mask=shared_mask, fraction=fraction)

    def _view_shared_complex(self, y: torch.Tensor, window: Optional[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Complex view-shared k-space ``(B, T, [N], H, W)`` and the block-union mask ``(B, T, H, W)`` (0/1 float)."""
        m = self._kmask()
        yc = to_complex(y) * m
        t = yc.shape[1]
        w = t if window is None or window <= 0 else min(window, t)
        filled, unions = [], []
        for start in range(0, t, w):
            mb, yb = m[:, start:start + w], yc[:, start:start + w]
            count = mb.sum(1, keepdim=True)
            avg = yb.sum(1, keepdim=True) / torch.clamp(count, min=1.0)
            filled.append(yb + (1 - mb) * avg)
            unions.append((count > 0).to(m.dtype).expand_as(mb))
        union = torch.cat(unions, dim=1)
        if self.multicoil:
            union = union.squeeze(-3)
        return torch.cat(filled, dim=1), union


class SharedSamplesMRI(DynamicMRI):
    """:class:`DynamicMRI` whose data consistency also draws on view-shared samples
    (made by :meth:`DynamicMRI.with_shared_samples`).

    ``shared_y`` complex ``(B, T, [N], H, W)``: the block averages at the locations in
    ``shared_mask`` (``(B, T, [1], H, W)``, 1 where another frame of the block sampled what
    this frame did not). :meth:`prox_l2` first moves ``z``'s k-space ``fraction`` of the way
    to them, then solves the usual data-consistency step on the frame's own samples. Every
    other method is the plain operator's.
    """

    def __init__(self, mask: torch.Tensor, coil_maps: Optional[torch.Tensor], cg_iterations: int,
                 shared_y: torch.Tensor, shared_mask: torch.Tensor, fraction: float | torch.Tensor):
        super().__init__(mask, coil_maps, cg_iterations)
        self.shared_y, self.shared_mask, self.fraction = shared_y, shared_mask, fraction

    def with_mask(self, mask: torch.Tensor) -> DynamicMRI:
        """The plain operator with another mask (the shared samples belong to this mask)."""
        return DynamicMRI(mask=mask, coil_maps=self.coil_maps, cg_iterations=self.cg_iterations)

    def prox_l2(self, z: Optional[torch.Tensor], y: torch.Tensor, lam: float | torch.Tensor) -> torch.Tensor:
        if z is not None:
            zc = to_complex(z)
            k = fft2c(self._coil_expand(zc) if self.multicoil else zc)
            step = ifft2c(self.shared_mask * (self.shared_y - k))
            # with coils: the coil-combined correction, exact where the maps are normalised
            zc = zc + self.fraction * (self._coil_combine(step) if self.multicoil else step)
            z = to_real(zc)
        return super().prox_l2(z, y, lam)


class SequentialMRI(MRIPhysics):
    """Sequential MRI: a static image sampled by a time series of masks, ``y_t = M_t F x``.

    ``x`` is ``(B, 2, H, W)``; ``y`` is ``(B, 2, T, H, W)`` (``(B, 2, T, N, H, W)`` with
    coil maps). The adjoint sums the frames; ``A_adjoint(y, keep_time_dim=True)`` gives
    the zero-filled image of each frame, ``(B, 2, T, H, W)``.
    """

    def __init__(self, mask: torch.Tensor, coil_maps: Optional[torch.Tensor] = None, cg_iterations: int = 10):
        super().__init__(mask, coil_maps, cg_iterations)
        if self.mask.ndim != 5:
            raise ValueError(f"SequentialMRI needs a 5D mask (B, C, T, H, W), got shape {tuple(self.mask.shape)}")

    def _forward_complex(self, z: torch.Tensor) -> torch.Tensor:
        z = z.unsqueeze(1)  # (B, 1, H, W): broadcast over time
        if self.multicoil:
            z = self._coil_expand(z)
        return self._kmask() * fft2c(z)

    def _adjoint_complex(self, k: torch.Tensor, keep_time_dim: bool = False) -> torch.Tensor:
        m = self._kmask()
        if keep_time_dim:
            z = ifft2c(m * k)
            return self._coil_combine(z) if self.multicoil else z
        z = ifft2c((m * k).sum(1))
        return self._coil_combine(z) if self.multicoil else z

    def A_adjoint(self, y: torch.Tensor, keep_time_dim: bool = False) -> torch.Tensor:
        """Adjoint: ``sum_t F^H M_t y_t`` (``(B, 2, H, W)``), or the frames separately with ``keep_time_dim``."""
        return to_real(self._adjoint_complex(to_complex(y), keep_time_dim=keep_time_dim))

    def _normal_diag(self) -> torch.Tensor:
        return (self._kmask() ** 2).sum(1)

    def time_average(self, y: torch.Tensor) -> tuple[torch.Tensor, DynamicMRI]:
        """Collapse the time series into one k-space and a single-image operator.

        Each k-space location is averaged over the frames that sampled it; the new mask
        is the union of the frame masks. Returns ``(y_avg, physics)`` with ``y_avg``
        ``(B, 2, H, W)`` (``(B, 2, N, H, W)`` with coils). For disjoint frames this loses
        nothing: ``physics.A_dagger(y_avg) == self.A_dagger(y)``.
        """
        m = self._kmask()
        count = m.sum(1)
        yc = (to_complex(y) * m).sum(1) / torch.clamp(count, min=1.0)
        union = (self.mask.sum(2) > 0).to(self.mask.dtype)
        return to_real(yc), DynamicMRI(mask=union, coil_maps=self.coil_maps, cg_iterations=self.cg_iterations)


def is_sequential(physics: object) -> bool:
    """Whether ``physics`` measures one static image with every frame (Cartesian or radial)."""
    return isinstance(physics, SequentialMRI) or bool(getattr(physics, "sequential", False))


def _reverse(t: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """Index reversal ``i -> (2 (N // 2) - i) mod N`` about the centre sample ``N // 2`` of each axis in ``dims``.

    This is the reflection that commutes with :func:`fft2c` exactly: a plain flip for odd
    N, a flip then a shift by one for even N.
    """
    if not dims:
        return t
    t = torch.flip(t, dims)
    even = tuple(d for d in dims if t.shape[d] % 2 == 0)
    return torch.roll(t, shifts=(1,) * len(even), dims=even) if even else t


class Reflection:
    """An exact symmetry of Cartesian sampling: mirror the image in H and/or W, optionally conjugate it.

    Mirroring the image mirrors its k-space; conjugating the image mirrors k-space in
    both axes and conjugates it. So a measurement ``y = A x`` of the transformed image is
    obtained exactly, noise included, from ``y`` and ``A``:
    ``physics_of(physics).A(image(x)) == kspace(physics.A(x))``. Each reflection is its
    own inverse. Used to augment training data and to average a network's output over
    the eight reflections at reconstruction time.

    >>> import torch
    >>> x = torch.randn(1, 2, 3, 8, 6)
    >>> mask = (torch.rand(1, 1, 3, 1, 6) > 0.5).float()
    >>> physics = DynamicMRI(mask=mask)
    >>> g = Reflection(flip_h=True, flip_w=False, conjugate=True)
    >>> bool(torch.allclose(g.physics_of(physics).A(g.image(x)), g.kspace(physics.A(x)), atol=1e-5))
    True
    >>> bool(torch.equal(g.image(g.image(x)), x))
    True
    >>> len(Reflection.all())
    8
    """

    def __init__(self, flip_h: bool = False, flip_w: bool = False, conjugate: bool = False):
        self.flip_h, self.flip_w, self.conjugate = bool(flip_h), bool(flip_w), bool(conjugate)

    @staticmethod
    def all() -> list["Reflection"]:
        """The eight reflections, the identity first."""
        return [Reflection(h, w, c) for c in (False, True) for h in (False, True) for w in (False, True)]

    @staticmethod
    def random(generator: Optional[torch.Generator] = None) -> "Reflection":
        """One of the eight reflections, uniformly (from the global torch RNG by default)."""
        h, w, c = (bool(v) for v in torch.randint(0, 2, (3,), generator=generator).tolist())
        return Reflection(h, w, c)

    def _dims(self, image_domain: bool) -> tuple[int, ...]:
        # conjugation mirrors k-space in both axes, so in k-space it toggles both flips
        toggle = self.conjugate and not image_domain
        return tuple(d for d, f in ((-2, self.flip_h), (-1, self.flip_w)) if f != toggle)

    @staticmethod
    def _conj(t: torch.Tensor) -> torch.Tensor:
        """Complex conjugate of a real ``(B, 2, ...)`` tensor (negate channel 1)."""
        return torch.cat((t[:, :1], -t[:, 1:2]), dim=1)

    def image(self, x: torch.Tensor) -> torch.Tensor:
        """Transform an image ``(B, 2, ..., H, W)`` (real layout)."""
        x = _reverse(x, self._dims(True))
        return self._conj(x) if self.conjugate else x

    def kspace(self, y: torch.Tensor) -> torch.Tensor:
        """Transform k-space ``(B, 2, ..., H, W)`` (real layout, any coil/time axes)."""
        y = _reverse(y, self._dims(False))
        return self._conj(y) if self.conjugate else y

    def mask(self, mask: torch.Tensor) -> torch.Tensor:
        """Transform a sampling mask (real, k-space indexed; size-1 axes stay as they are)."""
        return _reverse(mask, self._dims(False))

    def physics_of(self, physics: MRIPhysics) -> MRIPhysics:
        """The operator that measures transformed images into transformed k-space."""
        maps = physics.coil_maps
        if maps is not None:  # coil maps live in the image domain
            maps = _reverse(maps, self._dims(True))
            maps = maps.conj() if self.conjugate else maps
        if getattr(physics, "radial", False):
            # radial samples are reordered exactly as kspace() reorders the data (a
            # permutation), and their coordinates reflected: a mirror in H negates k_H, a
            # conjugation negates both (conj x measured at -k is conj(y(k)))
            mask = self.mask(physics.mask).clone()
            mask[:, 1] *= -1.0 if self.flip_h != self.conjugate else 1.0
            mask[:, 2] *= -1.0 if self.flip_w != self.conjugate else 1.0
            return physics.reflected(mask, maps)
        return type(physics)(mask=self.mask(physics.mask), coil_maps=maps, cg_iterations=physics.cg_iterations)

    def __repr__(self) -> str:
        return f"Reflection(flip_h={self.flip_h}, flip_w={self.flip_w}, conjugate={self.conjugate})"
