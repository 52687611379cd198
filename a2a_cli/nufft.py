"""Radial (non-Cartesian) multi-coil SENSE operator on a non-uniform FFT.

The NUFFT is torchkbnufft (Kaiser-Bessel gridding, Fessler's min-max interpolator).
It was chosen over mri-nufft with finufft/cufinufft because it is pure PyTorch: the
same code runs on CPU and GPU, it is differentiable end to end (a network trained
through the operator needs gradients through the forward model), it installs from a
wheel with no compiled extension to build, and it provides the Toeplitz embedding
(:class:`torchkbnufft.ToepNufft`) that turns the normal operator ``A^H W A`` into two
FFTs on a twice-oversampled grid, with no interpolation at all.

Conventions (the a2a radial file, see :mod:`a2a_cli.data.radial_file`):

* trajectory: float ``(..., spokes, samples, 2)`` in cycles per field of view (k-space
  pixel units): coordinate 0 runs along image axis H, coordinate 1 along W, and
  ``+-H/2``, ``+-W/2`` are the edges of k-space. For torchkbnufft it becomes radians,
  ``omega = 2 pi k / (H, W)``.
* scaling: the operator is the continuous version of :func:`a2a_cli.physics.fft2c`
  (``1/sqrt(H W)``, centre pixel at ``H // 2, W // 2``): on a Cartesian grid of integer
  coordinates it equals the centred orthonormal FFT.
* density compensation ``dcf``: the k-space area (in pixel units) each sample stands
  for, so that ``A^H D A`` is close to the identity on the sampled disc; a Cartesian
  sample has weight 1.

Tensor layouts of :class:`RadialMRI` (real tensors, channel 0 real, 1 imaginary):

* images ``(B, 2, T, H, W)`` (static: ``(B, 2, H, W)``);
* k-space ``(B, 2, T, N, spokes, samples)`` (static: ``(B, 2, N, spokes, samples)``),
  N coils (one coil is N = 1 with maps of ones);
* the sampling tensor ``mask`` ``(B, 4, T, spokes, samples)`` (static
  ``(B, 4, spokes, samples)``): channel 0 is 1 where a sample was measured, channels 1
  and 2 the trajectory (cycles per FOV along H, W), channel 3 the density
  compensation. Keeping the trajectory in the mask lets the time-splitting losses
  (:mod:`a2a_cli.splitting`) cut radial data into chunks of frames exactly as they cut
  Cartesian masks;
* coil maps complex ``(B, N, H, W)``.

>>> import torch
>>> traj = golden_angle_trajectory(frames=2, spokes=5, samples=16, size=16)
>>> mask = sampling_tensor(traj, radial_dcf(traj))[None]
>>> mask.shape
torch.Size([1, 4, 2, 5, 16])
>>> physics = RadialMRI(mask, torch.ones(1, 1, 16, 16, dtype=torch.complex64))
>>> x, y = torch.randn(1, 2, 2, 16, 16), torch.randn(1, 2, 2, 1, 5, 16)
>>> lhs, rhs = (physics.A(x) * y).sum(), (x * physics.A_adjoint(y)).sum()
>>> bool(torch.isclose(lhs, rhs, rtol=1e-4))
True
"""
from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from typing import Optional

import numpy as np
import torch

from .physics import solve_on_support, to_complex, to_real

__all__ = [
    "GOLDEN_ANGLE",
    "golden_angle_trajectory",
    "sampling_tensor",
    "spoke_angles",
    "radial_dcf",
    "pipe_menon_dcf",
    "density_compensation",
    "nufft",
    "nufft_adjoint",
    "RadialMRI",
    "is_radial_mask",
    "select_spokes",
    "density_weighted_mse",
    "estimate_radial_maps",
]

#: The golden angle for spokes through the centre (full diameters): 180 degrees / golden ratio.
GOLDEN_ANGLE = math.pi / ((1 + math.sqrt(5)) / 2)

_OPS: dict = {}
_KERNELS: "OrderedDict[tuple, torch.Tensor]" = OrderedDict()
_ADJOINTS: "OrderedDict[tuple, torch.Tensor]" = OrderedDict()
#: Toeplitz kernels kept (each ``(2H, 2W)`` complex64; 512 KiB at 128 x 128).
KERNEL_CACHE_SIZE = 512
#: Adjoints of measured data kept (coil images ``(N, H, W)`` of one set of samples).
ADJOINT_CACHE_SIZE = 512


# ----------------------------------------------------------------------------------
# trajectories and density compensation
# ----------------------------------------------------------------------------------
def golden_angle_trajectory(frames: int, spokes: int, samples: int, size: int | tuple[int, int],
                            first: int = 0) -> torch.Tensor:
    """Golden-angle radial trajectory ``(frames, spokes, samples, 2)`` in cycles per FOV.

    Spoke ``n`` (counted over all frames from ``first``) has angle ``n * GOLDEN_ANGLE``;
    its samples run from ``-H/2`` (``-W/2``) across the centre to just below ``+H/2``,
    ``samples`` of them evenly spaced (sample ``samples // 2`` is the centre).

    >>> t = golden_angle_trajectory(1, 2, 4, 8)
    >>> t[0, 0, :, 0].tolist(), t[0, 0, 2].tolist()
    ([-4.0, -2.0, 0.0, 2.0], [0.0, 0.0])
    """
    h, w = (size, size) if isinstance(size, int) else size
    n = torch.arange(first, first + frames * spokes, dtype=torch.float64)
    angle = n * GOLDEN_ANGLE
    r = (torch.arange(samples, dtype=torch.float64) - samples // 2) / samples  # [-1/2, 1/2)
    kh = r[None, :] * torch.cos(angle)[:, None] * h
    kw = r[None, :] * torch.sin(angle)[:, None] * w
    return torch.stack((kh, kw), -1).reshape(frames, spokes, samples, 2).to(torch.float32)


def sampling_tensor(traj: torch.Tensor, dcf: torch.Tensor, sampled: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Pack ``traj`` ``(..., spokes, samples, 2)`` and ``dcf`` ``(..., spokes, samples)`` into the
    ``(4, ..., spokes, samples)`` sampling tensor (channel 0: 1 where measured)."""
    traj = torch.as_tensor(traj, dtype=torch.float32)
    dcf = torch.as_tensor(dcf, dtype=torch.float32)
    ones = torch.ones_like(dcf) if sampled is None else torch.as_tensor(sampled, dtype=torch.float32)
    return torch.stack((ones, traj[..., 0], traj[..., 1], dcf), 0)


def spoke_angles(traj: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Angle in ``[0, pi)`` of every spoke of ``traj`` ``(..., spokes, samples, 2)`` and whether it is a
    straight line through the k-space centre (``(..., spokes)`` each).

    A spoke's direction is that of its extreme samples.
    """
    t = np.asarray(traj, dtype=np.float64)
    d = t[..., -1, :] - t[..., 0, :]
    angle = np.mod(np.arctan2(d[..., 1], d[..., 0]), np.pi)
    norm = np.linalg.norm(d, axis=-1, keepdims=True)
    u = d / np.where(norm > 0, norm, 1)
    # distance of every sample from the line through the origin along u
    cross = np.abs(t[..., 0] * u[..., None, 1] - t[..., 1] * u[..., None, 0])
    scale = np.maximum(np.abs(t).max(axis=(-2, -1)), 1e-12)
    through_centre = (cross.max(-1) <= 1e-3 * scale) & (norm[..., 0] > 0)
    return angle, through_centre


def radial_dcf(traj: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Geometric density compensation of radial spokes (full diameters through the centre).

    ``traj`` ``(..., spokes, samples, 2)``: every set of spokes (the last two axes
    but one, e.g. a frame) is compensated on its own. A sample at radius ``r`` on a
    spoke whose angular neighbours lie ``d1`` and ``d2`` away (angles modulo pi) stands
    for the polar area element ``r * (d1 + d2) / 2 * dr`` (``dr`` the sample spacing);
    the centre sample gets the disc of radius ``dr / 2`` shared in proportion. This is
    the ramp ``|k|`` for evenly spaced spokes, and the angular Voronoi weighting for
    golden-angle sets. Returns float32 ``(..., spokes, samples)``.

    >>> t = golden_angle_trajectory(1, 8, 16, 16)
    >>> w = radial_dcf(t)
    >>> round(float(w.sum()) / (math.pi * 8 ** 2), 2)   # the sampled disc, in pixel units
    1.0
    """
    t = np.asarray(traj, dtype=np.float64)
    angle, _ = spoke_angles(t)
    n = angle.shape[-1]
    order = np.argsort(angle, axis=-1)
    sorted_angle = np.take_along_axis(angle, order, -1)
    gap_next = np.diff(np.concatenate([sorted_angle, sorted_angle[..., :1] + np.pi], -1), axis=-1)
    gap_prev = np.roll(gap_next, 1, axis=-1)
    width_sorted = (gap_next + gap_prev) / 2 if n > 1 else np.full_like(sorted_angle, np.pi)
    width = np.empty_like(width_sorted)
    np.put_along_axis(width, order, width_sorted, -1)
    r = np.linalg.norm(t, axis=-1)
    dr = np.median(np.abs(np.diff(r * np.sign(t[..., 0] + t[..., 1] * 1e-9), axis=-1)), axis=-1, keepdims=True)
    dr = np.maximum(dr, 1e-12)
    w = width[..., None] * dr * np.maximum(r, dr / 4)
    return torch.from_numpy(w.astype(np.float32))


def pipe_menon_dcf(traj: torch.Tensor, size: tuple[int, int], iterations: int = 10) -> torch.Tensor:
    """Density compensation of any trajectory ``(..., spokes, samples, 2)`` by Pipe and Menon's
    fixed-point iteration (torchkbnufft), scaled to the area of the sampled disc.

    Slower than :func:`radial_dcf`; used for trajectories that are not radial lines.
    """
    import torchkbnufft as tkbn

    traj = torch.as_tensor(traj, dtype=torch.float32)
    lead, (spokes, samples) = traj.shape[:-3], traj.shape[-3:-1]
    flat = traj.reshape(-1, spokes * samples, 2)
    out = []
    for t in flat:
        om = _omega(t[None], size)
        w = tkbn.calc_density_compensation_function(om, tuple(size), num_iterations=iterations)[0, 0].real
        kmax = float((t / torch.tensor(size, dtype=torch.float32) * 2).norm(dim=-1).max())
        area = math.pi * (kmax / 2) ** 2 * size[0] * size[1]
        out.append(w * area / torch.clamp(w.sum(), min=1e-30))
    return torch.stack(out).reshape(*lead, spokes, samples)


def density_compensation(traj: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """:func:`radial_dcf` for straight spokes through the centre, else :func:`pipe_menon_dcf`."""
    _, radial = spoke_angles(traj)
    if bool(np.all(radial)):
        return radial_dcf(traj)
    return pipe_menon_dcf(traj, size)


# ----------------------------------------------------------------------------------
# the transforms
# ----------------------------------------------------------------------------------
def _ops(size: tuple[int, int], device: torch.device):
    import torchkbnufft as tkbn

    key = (tuple(size), str(device))
    if key not in _OPS:
        _OPS[key] = (tkbn.KbNufft(im_size=tuple(size), device=device),
                     tkbn.KbNufftAdjoint(im_size=tuple(size), device=device))
    return _OPS[key]


def _omega(traj: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Trajectory ``(M, K, 2)`` in cycles per FOV -> torchkbnufft's ``(M, 2, K)`` in radians."""
    scale = torch.tensor([2 * math.pi / size[0], 2 * math.pi / size[1]], dtype=traj.dtype, device=traj.device)
    return (traj * scale).transpose(1, 2).contiguous()


def nufft(images: torch.Tensor, traj: torch.Tensor) -> torch.Tensor:
    """Complex images ``(M, N, H, W)`` -> samples ``(M, N, K)`` at ``traj`` ``(M, K, 2)`` (cycles per FOV)."""
    size = tuple(images.shape[-2:])
    fwd, _ = _ops(size, images.device)
    k = fwd(images, _omega(traj, size))
    return k / math.sqrt(size[0] * size[1])


def nufft_adjoint(kspace: torch.Tensor, traj: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Adjoint of :func:`nufft`: samples ``(M, N, K)`` -> images ``(M, N, H, W)``."""
    _, adj = _ops(size, kspace.device)
    return adj(kspace, _omega(traj, size)) / math.sqrt(size[0] * size[1])


def _kernel_key(*tensors: torch.Tensor, size: tuple[int, int]) -> tuple:
    h = hashlib.blake2b(digest_size=16)
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return (tuple(size), str(tensors[0].device), h.hexdigest())


def _remember(cache: OrderedDict, key: tuple, value: torch.Tensor, limit: int) -> torch.Tensor:
    cache[key] = value
    while len(cache) > limit:
        cache.popitem(last=False)
    return value


def data_adjoint(kspace: torch.Tensor, traj: torch.Tensor, weights: Optional[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
    """:func:`nufft_adjoint` of measured (constant) data ``(M, N, K)``, times ``weights`` ``(M, K)`` first.

    Measured data do not change during training: each set of samples is transformed
    once per process and kept by content, so a training step runs no interpolation for
    its input and its data consistency, only FFTs. No gradient flows through the result.
    """
    with torch.no_grad():
        out: list[Optional[torch.Tensor]] = [None] * kspace.shape[0]
        keys, todo = [], []
        for i in range(kspace.shape[0]):
            parts = (kspace[i], traj[i]) if weights is None else (kspace[i], traj[i], weights[i])
            key = _kernel_key(*parts, size=size)
            keys.append(key)
            hit = _ADJOINTS.get(key)
            if hit is None:
                todo.append(i)
            else:
                _ADJOINTS.move_to_end(key)
                out[i] = hit
        if todo:
            idx = torch.tensor(todo, device=kspace.device)
            k = kspace[idx] if weights is None else kspace[idx] * weights[idx][:, None]
            new = nufft_adjoint(k, traj[idx], size)
            for j, i in enumerate(todo):
                out[i] = _remember(_ADJOINTS, keys[i], new[j], ADJOINT_CACHE_SIZE)
        return torch.stack(out)  # type: ignore[arg-type]


def toeplitz_kernels(traj: torch.Tensor, weights: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Toeplitz kernels ``(M, 2H, 2W)`` of ``A^H diag(weights) A`` for ``traj`` ``(M, K, 2)``.

    A kernel depends only on one set of samples and its weights; kernels are kept (by
    content) so that a slice's frames are embedded once per process, not once per step.
    """
    import torchkbnufft as tkbn

    out = []
    for t, w in zip(traj, weights):
        key = _kernel_key(t, w, size=size)
        kern = _KERNELS.get(key)
        if kern is None:
            kern = tkbn.calc_toeplitz_kernel(_omega(t[None], size)[0], tuple(size),
                                             weights=w.reshape(1, -1).to(torch.complex64))
            # torchkbnufft's unnormalised kernel is for its own FFT scaling: times the grid
            # oversampling (2 x 2) it is the kernel of this module's 1/sqrt(H W) transforms
            kern = _remember(_KERNELS, key, kern * 4, KERNEL_CACHE_SIZE)
        else:
            _KERNELS.move_to_end(key)
        out.append(kern)
    return torch.stack(out)


def toeplitz_normal(images: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """``A^H W A`` of complex images ``(M, N, H, W)`` with kernels ``(M, 2H, 2W)``: pad, FFT, multiply, crop."""
    h, w = images.shape[-2:]
    # one padded 2D transform each way: measured 1.4 times as fast on a CPU as pruned 1D transforms
    # (which skip the zero rows but stride across memory)
    spec = torch.fft.fft2(torch.nn.functional.pad(images, (0, w, 0, h)))
    spec = spec.mul_(kernels[:, None]) if not spec.requires_grad else spec * kernels[:, None]
    return torch.fft.ifft2(spec)[..., :h, :w]


# ----------------------------------------------------------------------------------
# the operator
# ----------------------------------------------------------------------------------
def is_radial_mask(mask: object) -> bool:
    """Whether a batch's ``mask`` is a radial sampling tensor (4 channels) rather than a Cartesian mask."""
    return isinstance(mask, torch.Tensor) and mask.ndim in (4, 5) and mask.shape[1] == 4


class RadialMRI:
    """Multi-coil radial SENSE: ``y_{t,c} = NUFFT_t(S_c x_t)`` (sequential: ``x_t = x`` for all t).

    ``mask`` is the sampling tensor (module docstring), ``coil_maps`` complex ``(B, N, H, W)``
    (required; ``torch.ones(B, 1, H, W)`` for one coil). ``sequential``: one static image
    ``(B, 2, H, W)`` measured by every frame. The interface is that of
    :class:`a2a_cli.physics.MRIPhysics`: ``A``, ``A_adjoint``, ``prox_l2`` (conjugate
    gradient on the density-weighted normal equations, Toeplitz-embedded),
    ``view_sharing`` (density-compensated gridding of blocks of frames), ``time_average``,
    ``with_mask`` and ``split_time``.
    """

    def __init__(self, mask: torch.Tensor, coil_maps: torch.Tensor, cg_iterations: int = 2, sequential: bool = False):
        mask = torch.as_tensor(mask, dtype=torch.float32)
        if not is_radial_mask(mask):
            raise ValueError(f"a radial sampling tensor is (B, 4, T, spokes, samples), got shape {tuple(mask.shape)}")
        if coil_maps is None or not torch.as_tensor(coil_maps).is_complex() or coil_maps.ndim != 4:
            raise ValueError("RadialMRI needs complex coil maps (B, N, H, W) (ones (B, 1, H, W) for one coil)")
        if sequential and mask.ndim != 5:
            raise ValueError("a sequential radial operator needs a 5D sampling tensor (B, 4, T, spokes, samples)")
        self.mask = mask
        self.coil_maps = coil_maps
        self.cg_iterations = int(cg_iterations)
        self.sequential = bool(sequential)

    # -- shape helpers ----------------------------------------------------------------
    #: Marks the radial operator for code written for the Cartesian ones.
    radial = True

    @property
    def multicoil(self) -> bool:
        return True

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.coil_maps.shape[-2:])  # type: ignore[return-value]

    @property
    def n_frames(self) -> int:
        return self.mask.shape[2] if self.mask.ndim == 5 else 1

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.A(x)

    def to(self, device: torch.device | str) -> "RadialMRI":
        self.mask, self.coil_maps = self.mask.to(device), self.coil_maps.to(device)
        return self

    def with_mask(self, mask: torch.Tensor, sequential: Optional[bool] = None) -> "RadialMRI":
        """The same operator (same coil maps) on another sampling tensor."""
        seq = self.sequential if sequential is None else sequential
        return RadialMRI(mask, self.coil_maps, self.cg_iterations, sequential=seq and mask.ndim == 5)

    def reflected(self, mask: torch.Tensor, coil_maps: torch.Tensor) -> "RadialMRI":
        """The operator with a reflected sampling tensor and maps (see :class:`a2a_cli.physics.Reflection`)."""
        return RadialMRI(mask, coil_maps, self.cg_iterations, sequential=self.sequential)

    def split_time(self, index: torch.Tensor) -> "RadialMRI":
        """The operator restricted to the frames ``index`` (long ``(B, k)``)."""
        from .physics import gather_time

        return self.with_mask(gather_time(self.mask, index))

    def support(self) -> torch.Tensor:
        return (self.coil_maps.abs().pow(2).sum(1) > 0).to(torch.float32)

    def _frames(self, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        """``(traj (B*T, K, 2), dcf (B*T, K), sampled (B*T, K), T)`` with the mask batch expanded to ``batch``."""
        m = self.mask if self.mask.ndim == 5 else self.mask.unsqueeze(2)
        m = m.expand(batch, *m.shape[1:])
        t = m.shape[2]
        flat = m.permute(0, 2, 1, 3, 4).reshape(batch * t, 4, -1)
        return flat[:, 1:3].transpose(1, 2).contiguous(), flat[:, 3], flat[:, 0], t

    def _maps(self, batch: int, frames: int) -> torch.Tensor:
        s = self.coil_maps.expand(batch, *self.coil_maps.shape[1:])
        return s.unsqueeze(1).expand(batch, frames, *s.shape[1:]).reshape(batch * frames, *s.shape[1:])

    # -- complex operators ----------------------------------------------------------------
    def _forward_complex(self, z: torch.Tensor) -> torch.Tensor:
        """Images ``(B, [T], H, W)`` -> k-space ``(B, [T], N, spokes, samples)``."""
        static = self.mask.ndim == 4
        b = z.shape[0]
        if self.sequential:
            z = z.unsqueeze(1).expand(b, self.n_frames, *z.shape[1:])
        elif static:
            z = z.unsqueeze(1)
        traj, _, sampled, t = self._frames(b)
        coil = z.reshape(b * t, 1, *z.shape[-2:]) * self._maps(b, t)
        k = nufft(coil, traj) * sampled[:, None]
        spokes, samples = self.mask.shape[-2:]
        k = k.reshape(b, t, k.shape[1], spokes, samples)
        return k[:, 0] if static else k

    def _adjoint_complex(self, k: torch.Tensor, weights: Optional[torch.Tensor] = None, keep_time_dim: bool = False) -> torch.Tensor:
        """K-space ``(B, [T], N, spokes, samples)`` -> coil-combined images ``(B, [T], H, W)``.

        ``weights`` ``(B*T, K)`` multiplies the samples first (density compensation)."""
        static = self.mask.ndim == 4
        if static:
            k = k.unsqueeze(1)
        b, t, n = k.shape[:3]
        traj, _, sampled, _ = self._frames(b)
        flat = k.reshape(b * t, n, -1) * sampled[:, None]
        if k.requires_grad and torch.is_grad_enabled():
            img = nufft_adjoint(flat if weights is None else flat * weights[:, None], traj, self.image_size)
        else:
            img = data_adjoint(flat, traj, weights, self.image_size)
        z = (img * self._maps(b, t).conj()).sum(1).reshape(b, t, *self.image_size)
        if self.sequential and not keep_time_dim:
            return z.sum(1)
        return z[:, 0] if static else z

    def A(self, x: torch.Tensor) -> torch.Tensor:
        """Forward operator: image -> k-space samples (zero where not measured)."""
        return to_real(self._forward_complex(to_complex(x)))

    def A_adjoint(self, y: torch.Tensor, keep_time_dim: bool = False) -> torch.Tensor:
        """Adjoint operator (no density compensation)."""
        return to_real(self._adjoint_complex(to_complex(y), keep_time_dim=keep_time_dim))

    def gridding(self, y: torch.Tensor) -> torch.Tensor:
        """Density-compensated gridding ``A^H D y`` of every frame, ``(B, 2, [T], H, W)``: the radial zero-filled image."""
        b = y.shape[0]
        _, dcf, _, _ = self._frames(b)
        return to_real(self._adjoint_complex(to_complex(y), weights=dcf, keep_time_dim=True))

    def view_sharing(self, y: torch.Tensor, window: Optional[int] = None) -> torch.Tensor:
        """Gridded images of blocks of frames (the radial analogue of view sharing).

        Every frame of a block of ``window`` consecutive frames (all frames when None)
        gets the density-compensated gridding of all the block's spokes together, the
        density compensation recomputed for the block's union of spokes (a sliding-window
        reconstruction). ``y`` ``(B, 2, T, N, spokes, samples)`` -> ``(B, 2, T, H, W)``.
        """
        if self.mask.ndim != 5:
            return self.gridding(y)
        b, t = y.shape[0], y.shape[2]
        w = t if window is None or window <= 0 else min(window, t)
        m = self.mask.expand(b, *self.mask.shape[1:])
        out = []
        for start in range(0, t, w):
            stop = min(start + w, t)
            block, mb = y[:, :, start:stop], m[:, :, start:stop]
            f = stop - start
            joined = mb.reshape(b, 4, 1, f * mb.shape[3], mb.shape[4])
            joined = torch.cat((joined[:, :3], _block_dcf(mb)), 1)
            yj = block.transpose(2, 3).reshape(b, 2, block.shape[3], f * block.shape[4], block.shape[5])
            img = RadialMRI(joined[:, :, 0], self.coil_maps).gridding(yj)  # (B, 2, H, W)
            out.append(img.unsqueeze(2).expand(b, 2, f, *img.shape[-2:]))
        return torch.cat(out, 2)

    def time_average(self, y: torch.Tensor) -> tuple[torch.Tensor, "RadialMRI"]:
        """All frames' spokes as one set: ``(y (B, 2, N, T*spokes, samples), static operator)``.

        The density compensation of the joined set is recomputed, so its gridding is
        the gridding of every spoke of the sequence. Nothing is averaged: radial
        spokes of different frames do not coincide.
        """
        b, t = y.shape[0], y.shape[2]
        m = self.mask.expand(b, *self.mask.shape[1:])
        joined = m.reshape(b, 4, t * m.shape[3], m.shape[4])
        joined = torch.cat((joined[:, :3], _block_dcf(m)[:, :, 0]), 1)
        yj = y.transpose(2, 3).reshape(b, 2, y.shape[3], t * y.shape[4], y.shape[5])
        return yj, RadialMRI(joined, self.coil_maps, self.cg_iterations)

    def data_weights(self, batch: int, power: float) -> torch.Tensor:
        """Per-sample weights ``(B*T, K)`` (as :meth:`_frames`): each measured sample's density compensation
        over its mean on the measured samples of that batch item, to ``power``; 0 where nothing was measured.

        ``power`` 1 is the density-compensated weighting, 0 the unweighted one; between them the
        weights refer to the same scale (mean 1 at power 1).
        """
        _, dcf, sampled, t = self._frames(batch)
        per_item = (dcf * sampled).reshape(batch, -1).sum(1) / sampled.reshape(batch, -1).sum(1).clamp_min(1.0)
        relative = dcf / per_item.clamp_min(1e-30).repeat_interleave(t)[:, None]
        return sampled * relative.clamp_min(0).pow(power)

    def normal(self, z: torch.Tensor, weighted: bool = True, weights: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``A^H D A z`` (``weighted``) or ``A^H A z`` of complex images ``(B, [T], H, W)``, by Toeplitz embedding.

        ``weights`` ``(B*T, K)`` (e.g. :meth:`data_weights`), if given, stand for ``D`` instead."""
        static = self.mask.ndim == 4
        b = z.shape[0]
        traj, dcf, sampled, t = self._frames(b)
        w = weights if weights is not None else sampled * (dcf if weighted else 1.0)
        kernels = toeplitz_kernels(traj, w, self.image_size).to(z.device)
        if self.sequential:
            maps = self._maps(b, t)
            coil = z.unsqueeze(1).unsqueeze(2) * maps.reshape(b, t, *maps.shape[1:])
            out = toeplitz_normal(coil.reshape(b * t, *maps.shape[1:]), kernels)
            return (out * maps.conj()).sum(1).reshape(b, t, *self.image_size).sum(1)
        zz = z.unsqueeze(1) if static else z
        maps = self._maps(b, t)
        coil = zz.reshape(b * t, 1, *self.image_size) * maps
        out = (toeplitz_normal(coil, kernels) * maps.conj()).sum(1).reshape(b, t, *self.image_size)
        return out[:, 0] if static else out

    def density_like(self, y: torch.Tensor) -> torch.Tensor:
        """Each measured sample's density compensation (0 where nothing was measured), shaped to
        broadcast against real k-space ``y`` ``(B, 2, [T], coils, spokes, samples)``."""
        _, dcf, sampled, _ = self._frames(y.shape[0])
        shape = y.shape[:1] + y.shape[2:]  # the complex layout
        return (dcf * sampled).reshape(*shape[:-3], 1, *shape[-2:]).unsqueeze(1)

    def residual_mse(self, x: torch.Tensor, y: torch.Tensor, weighted: bool = False) -> torch.Tensor:
        """``mean((A x - y)^2)`` over the real k-space tensor (as ``nn.MSELoss()(self.A(x), y)``),
        computed as ``<x, A^H A x> - 2 Re <x, A^H y> + ||y||^2`` by Toeplitz embedding: FFTs only,
        no interpolation (``y`` is measured data, ``x`` may carry gradients).

        ``weighted``: every sample's squared residual times its density compensation, divided by
        the mean compensation of the measured samples (:func:`density_weighted_mse`)."""
        z = to_complex(x)
        yc = to_complex(y)
        b = y.shape[0]
        w = None
        if weighted:
            _, dcf, sampled, _ = self._frames(b)
            w = dcf * sampled
        ahy = self._adjoint_complex(yc, weights=w)
        ahax = self.normal(z, weighted=weighted)
        energy = yc.abs() ** 2
        if w is not None:
            energy = energy * self.density_like(y)[:, 0]
        value = (z.conj() * ahax).real.sum() - 2 * (z.conj() * ahy).real.sum() + energy.sum()
        value = value / y.numel()
        if w is not None:
            value = value / torch.clamp(w.sum() / torch.clamp(sampled.sum(), min=1.0), min=1e-30)
        return value

    def prox_l2(self, z: Optional[torch.Tensor], y: torch.Tensor, lam: float | torch.Tensor) -> torch.Tensor:
        """Data consistency: ``argmin_x ||D^(1/2) (A x - y)||^2 + lam ||x - z||^2`` by conjugate gradient.

        The density weighting ``D`` makes the normal operator close to the identity, so a
        few CG iterations (``cg_iterations``, started from ``z``) suffice; ``lam = 0``
        keeps as much of ``z`` as those iterations leave (early-stopped least squares).
        Images live on the coil maps' support, as for the Cartesian operators.
        """
        b = y.shape[0]
        _, dcf, _, _ = self._frames(b)
        rhs = self._adjoint_complex(to_complex(y), weights=dcf)
        return solve_on_support(self.normal, rhs, self.support(), z, lam, self.cg_iterations)

    def A_dagger(self, y: torch.Tensor) -> torch.Tensor:
        """Density-weighted least-squares (iterative SENSE) from a zero start."""
        return self.prox_l2(None, y, 0.0)


def density_weighted_mse(residual: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared radial k-space residual, each sample weighted by its density compensation.

    ``residual`` ``(B, 2, [T], N, spokes, samples)``, ``mask`` the sampling tensor
    ``(B, 4, [T], spokes, samples)``. Divided by the mean compensation of the measured
    samples, so that it equals the plain mean where the density is uniform. Weighted so,
    the k-space error approximates the image-domain error on the sampled disc (Parseval):
    unweighted, the densely sampled centre of a radial set dominates and errors at high
    spatial frequency (edges, noise) barely count.
    """
    w = mask[:, 3] * (mask[:, 0] != 0)  # (B, [T], spokes, samples)
    w = w.unsqueeze(1).unsqueeze(-3)  # channel and coil axes
    mean_w = w.sum() / torch.clamp((mask[:, 0] != 0).sum(), min=1)
    return (residual.square() * w).mean() / torch.clamp(mean_w, min=1e-30)


def _block_dcf(m: torch.Tensor) -> torch.Tensor:
    """Density compensation ``(B, 1, 1, F*spokes, samples)`` of the union of the frames of a sampling
    tensor block ``(B, 4, F, spokes, samples)``: geometric for radial spokes, else the frames' own
    compensation divided by F."""
    b, _, f, spokes, samples = m.shape
    traj = torch.stack((m[:, 1], m[:, 2]), -1).reshape(b, f * spokes, samples, 2)
    w = _geometric_dcf_or(traj, m[:, 3].reshape(b, f * spokes, samples) / f)
    return w.reshape(b, 1, 1, f * spokes, samples)


def _geometric_dcf_or(traj: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
    """:func:`radial_dcf` of ``traj`` ``(..., spokes, samples, 2)`` when every spoke is a straight line
    through the centre, else ``fallback`` (``(..., spokes, samples)``, on ``traj``'s device)."""
    _, radial = spoke_angles(traj.detach().cpu())
    if bool(np.all(radial)):
        return radial_dcf(traj.detach().cpu()).to(traj.device)
    return fallback


def select_spokes(mask: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The sampling tensor of some spokes of every frame, with their own density compensation.

    ``mask`` ``(B, 4, T, spokes, samples)``, ``index`` long ``(B, T, k)``: spoke numbers
    within each frame. Returns ``(B, 4, T, k, samples)``. The density compensation is
    recomputed for the kept spokes (the angular gaps grow where spokes were left out):
    geometric for straight spokes through the centre, else the frame's own weights
    times ``spokes / k``.

    >>> m = sampling_tensor(golden_angle_trajectory(1, 8, 16, 16), radial_dcf(golden_angle_trajectory(1, 8, 16, 16)))[None]
    >>> kept = select_spokes(m, torch.tensor([[[0, 2, 5]]]))
    >>> kept.shape, bool(torch.equal(kept[0, 1:3, 0, 1], m[0, 1:3, 0, 2]))
    (torch.Size([1, 4, 1, 3, 16]), True)
    >>> round(float(kept[0, 3].sum() / m[0, 3].sum()), 2)   # the same disc, fewer spokes
    1.0
    """
    b, _, t, spokes, samples = mask.shape
    gather = index[:, None, :, :, None].expand(b, 4, t, index.shape[-1], samples)
    kept = torch.gather(mask.expand(b, *mask.shape[1:]), 3, gather)
    traj = torch.stack((kept[:, 1], kept[:, 2]), -1)  # (B, T, k, samples, 2)
    dcf = _geometric_dcf_or(traj, kept[:, 3] * (spokes / index.shape[-1]))
    return torch.cat((kept[:, :3], dcf.unsqueeze(1)), 1)


def estimate_radial_maps(kspace: torch.Tensor, traj: torch.Tensor, size: tuple[int, int],
                         method: str = "espirit") -> tuple[torch.Tensor, str]:
    """Coil maps of one slice from its own radial data.

    ``kspace`` complex ``(T, N, spokes, samples)``, ``traj`` ``(T, spokes, samples, 2)``.
    Every spoke of the sequence is gridded with the density compensation of the whole
    set (the time average: the densely sampled centre holds the coil sensitivities),
    the coil images are taken back to Cartesian k-space, and its fully represented
    centre goes to :func:`a2a_cli.coils.estimate_maps`. Returns ``(maps (N, H, W), method)``.
    """
    from .coils import estimate_maps
    from .physics import fft2c

    t, n, spokes, samples = kspace.shape
    joined = traj.reshape(1, t * spokes, samples, 2)
    w = radial_dcf(joined) if bool(np.all(spoke_angles(joined)[1])) else pipe_menon_dcf(joined, size)
    k = kspace.transpose(0, 1).reshape(1, n, t * spokes * samples).to(torch.complex64)
    images = nufft_adjoint(k * w.reshape(1, 1, -1), joined.reshape(1, -1, 2), size)[0]  # (N, H, W)
    cart = fft2c(images)
    # only the disc the spokes cover is represented; the calibration region lies well inside it
    hh, ww = torch.meshgrid(torch.arange(size[0]) - size[0] // 2, torch.arange(size[1]) - size[1] // 2, indexing="ij")
    kmax = float(traj.norm(dim=-1).amax()) if traj.numel() else 0.0
    inside = ((hh.float() ** 2 + ww.float() ** 2).sqrt() < 0.9 * kmax).to(torch.float32)
    return estimate_maps(cart[None] * inside, inside[None], method=method)  # type: ignore[arg-type]
