"""Training data: the batches of a run (:func:`batches`, :func:`to_device`), and the
preparation that makes large scans cheap: coil compression, an in-memory cache of
prepared slices, and random crops along the fully sampled readout.

None of these changes what a run reconstructs from: they make each training step
cheaper while keeping the measurement model of the (smaller) data exact.

* **Coil compression** (:func:`compress_item`): a slice with many coils is trained
  on ``n`` virtual coils (SVD of its own k-space, :func:`a2a_cli.coils.compress_coils`),
  its coil maps compressed with the same matrix, so ``y' = U y = M F (U S) x``
  still holds exactly; only the weakest combinations of the noise-carrying coils
  are dropped. Every step's FFTs and data-consistency iterations scale with the
  coil count.
* **Cache** (:class:`PreparedDataset`): prepared slices are kept in memory (up to a
  byte budget), so a step does not read and decode HDF5 again.
* **Readout crops** (:func:`readout_crop`): with line masks (every phase-encode
  line sampled at every readout position) the data of a band of ``rows`` image rows
  are obtained exactly: inverse FFT along the readout H, keep the rows, FFT back.
  The phase-encode direction stays whole, so the undersampling and its artefacts
  are the same as in the full image. A convolutional prior is translation
  invariant, so it learns from bands as from whole images, at a fraction of the cost.

Item layout (as :class:`a2a_cli.data.KspaceDataset` gives it): ``kspace`` float
``(2, T, N, H, W)`` (multi-coil) or ``(2, T, H, W)``, ``mask`` ``(1, T, H, W)``,
``coil_maps`` complex ``(N, H, W)``. Batches add a leading B.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Iterator

import numpy as np
import torch

from ..coils import compress_coils
from ..errors import InputError
from ..data import KspaceDataset, ShapeBatchSampler, describe_layout, read_mask
from ..masks import never_sampled_lines_by_width
from ..physics import fft1c, ifft1c, normalise_measurement, to_complex, to_real

__all__ = [
    "AUTO_CROP_ROWS",
    "AUTO_VIRTUAL_COILS",
    "PreparedDataset",
    "auto_crop_rows",
    "auto_virtual_coils",
    "batches",
    "log_layouts",
    "to_device",
    "item_batch",
    "warn_unsampled",
    "compress_item",
    "mask_is_lines",
    "random_readout_crop",
    "readout_crop",
    "central_readout_band",
]

#: Coil counts above this are compressed for training, to this many virtual coils.
AUTO_VIRTUAL_COILS = 6
#: Rows of a training crop along the readout; images up to 1.5 times this are not cropped.
AUTO_CROP_ROWS = 64


def auto_virtual_coils(coils: int, asked: int | None = None) -> int | None:
    """The virtual coil count to train on (None: keep the coils as they are).

    ``asked``: an explicit count (0 turns compression off). By default more than
    :data:`AUTO_VIRTUAL_COILS` coils are compressed to that many.

    >>> auto_virtual_coils(8), auto_virtual_coils(4), auto_virtual_coils(8, 0), auto_virtual_coils(8, 3)
    (6, None, None, 3)
    """
    if asked is not None:
        if asked < 0:
            raise ValueError(f"virtual coils must be >= 0 (0: no compression), got {asked}")
        return asked if 0 < asked < coils else None
    return AUTO_VIRTUAL_COILS if coils > AUTO_VIRTUAL_COILS else None


def auto_crop_rows(height: int, asked: int | None = None) -> int | None:
    """The readout rows of a training crop for images of ``height`` rows (None: no crop).

    ``asked``: an explicit row count (0 turns cropping off). By default images taller
    than 1.5 x :data:`AUTO_CROP_ROWS` are cropped to that many rows.

    >>> auto_crop_rows(180), auto_crop_rows(64), auto_crop_rows(180, 0), auto_crop_rows(180, 100)
    (64, None, None, 100)
    """
    if asked is not None:
        if asked < 0:
            raise ValueError(f"crop rows must be >= 0 (0: no crop), got {asked}")
        return asked if 0 < asked < height else None
    return AUTO_CROP_ROWS if height > 1.5 * AUTO_CROP_ROWS else None


def compress_item(item: dict[str, Any], n: int) -> dict[str, Any]:
    """A multi-coil item with its coils compressed to ``n`` virtual coils (maps by the same matrix).

    ``item["kspace"]`` float ``(2, T, N, H, W)``, ``item["coil_maps"]`` complex ``(N, H, W)``;
    returns a new dict with ``(2, T, n, H, W)`` and ``(n, H, W)``.
    """
    k = torch.complex(item["kspace"][0], item["kspace"][1])  # (T, N, H, W)
    kc, u = compress_coils(k, n, coil_axis=1, return_matrix=True)
    maps = compress_coils(item["coil_maps"], n, coil_axis=0, matrix=u)
    out = dict(item)
    out["kspace"] = torch.stack((kc.real, kc.imag)).contiguous()
    out["coil_maps"] = maps.contiguous()
    return out


def mask_is_lines(mask: torch.Tensor) -> bool:
    """True if a mask ``(..., H, W)`` is the same at every readout position (whole lines)."""
    return mask.shape[-2] == 1 or bool(torch.equal(mask, mask[..., :1, :].expand_as(mask)))


def readout_crop(batch: dict[str, Any], start: int, rows: int) -> dict[str, Any]:
    """The exact data of image rows ``start:start + rows`` (readout H), for line masks.

    ``batch``: ``kspace`` ``(B, 2, T, [N], H, W)``, ``mask`` ``(B, 1, T, H, W)``,
    optional ``coil_maps`` ``(B, N, H, W)``. Returns a new dict with H replaced by
    ``rows``: k-space ``F_h crop(F_H^H y)`` (centred orthonormal 1D FFTs along H),
    the mask's rows and the maps' rows. If ``y = M F S x`` with M constant along H,
    the result is ``M F crop(S) crop(x)`` exactly, noise included (white noise stays
    white under these unitary steps).

    >>> from a2a_cli.physics import DynamicMRI
    >>> x = torch.randn(1, 2, 3, 12, 8)
    >>> m = (torch.rand(1, 1, 3, 1, 8) > 0.5).float().expand(1, 1, 3, 12, 8)
    >>> b = readout_crop({"kspace": DynamicMRI(mask=m)(x), "mask": m}, 4, 6)
    >>> bool(torch.allclose(b["kspace"], DynamicMRI(mask=b["mask"])(x[..., 4:10, :]), atol=1e-5))
    True
    """
    height = batch["mask"].shape[-2]
    if start < 0 or rows < 1 or start + rows > height:
        raise ValueError(f"rows {start}:{start + rows} are not inside an image of {height} rows")
    out = dict(batch)
    hybrid = ifft1c(to_complex(batch["kspace"]), -2)[..., start:start + rows, :]
    out["kspace"] = to_real(fft1c(hybrid.contiguous(), -2))
    out["mask"] = batch["mask"][..., start:start + rows, :].contiguous()
    if batch.get("coil_maps") is not None:
        out["coil_maps"] = batch["coil_maps"][..., start:start + rows, :].contiguous()
    return out


def random_readout_crop(batch: dict[str, Any], rows: int, generator: torch.Generator | None = None) -> dict[str, Any]:
    """:func:`readout_crop` at a uniformly drawn start (the whole batch shares it).

    Returns ``batch`` unchanged when the mask is not made of whole lines or the image
    has no more than ``rows`` rows.
    """
    height = batch["mask"].shape[-2]
    if rows >= height or not mask_is_lines(batch["mask"]):
        return batch
    start = int(torch.randint(0, height - rows + 1, (1,), generator=generator))
    return readout_crop(batch, start, rows)


def central_readout_band(batch: dict[str, Any]) -> dict[str, Any]:
    """:func:`readout_crop` of the central :func:`auto_crop_rows` rows, where training would crop
    (a tall image, a Cartesian mask of whole lines); ``batch`` unchanged otherwise.

    Scores that choose something for the whole image (the TV weights, the per-file method)
    are computed on it: the exact data of those rows, at a fraction of the cost.
    """
    mask = batch["mask"]
    rows = auto_crop_rows(mask.shape[-2])
    if rows is None or mask.shape[1] != 1 or not mask_is_lines(mask):  # radial sampling tensors have 4 channels
        return batch
    return readout_crop(batch, (mask.shape[-2] - rows) // 2, rows)


class PreparedDataset(torch.utils.data.Dataset):
    """A :class:`~a2a_cli.data.KspaceDataset` whose items are coil-compressed and cached.

    ``virtual_coils``: the coil count to compress multi-coil items to (None: as
    stored; items with no more coils are left alone). Prepared items are kept in
    memory while their total stays under ``cache_bytes``. Every other attribute
    (``shapes``, ``items``, ``infos``, ...) is the wrapped dataset's, and
    ``batch_keys`` report the compressed coil count so that batches still stack.
    """

    def __init__(self, dataset: Any, virtual_coils: int | None = None, cache_bytes: int = 1 << 30):
        self.dataset = dataset
        self.virtual_coils = virtual_coils
        self.cache_bytes = int(cache_bytes)
        self._cache: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._cached_bytes = 0
        keys = getattr(dataset, "batch_keys", None)
        if keys is not None and virtual_coils is not None:
            keys = [k[:3] + (min(k[3], virtual_coils),) for k in keys]
        self.batch_keys = keys

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:
        if name == "dataset":  # not set yet (unpickling): avoid recursion
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self._cache.get(i)
        if item is not None:
            return item
        item = self.dataset[i]
        maps = item.get("coil_maps")
        if self.virtual_coils is not None and maps is not None and maps.shape[0] > self.virtual_coils:
            item = compress_item(item, self.virtual_coils)
        size = sum(v.numel() * v.element_size() for v in item.values() if isinstance(v, torch.Tensor))
        if self._cached_bytes + size <= self.cache_bytes:
            self._cache[i] = item
            self._cached_bytes += size
        return item


def batches(dataset: Any, sampler: ShapeBatchSampler, start_epoch: int, skip: int, loader_args: dict) -> Iterator[tuple[int, int, dict]]:
    """Endless ``(epoch, index_in_epoch, batch)``; resumes ``skip`` batches into ``start_epoch``
    without reading the skipped batches (the sampler's order is a function of seed and epoch)."""
    epoch = start_epoch
    while True:
        sampler.set_epoch(epoch)
        order = list(sampler)[skip:]
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=order, **loader_args)
        for i, batch in enumerate(loader, start=skip):
            yield epoch, i, batch
        epoch += 1
        skip = 0


def item_batch(item: dict, device: torch.device) -> dict:
    """One dataset item as a batch of one on ``device`` (:func:`to_device` of it with a batch axis)."""
    return to_device({k: (v.unsqueeze(0) if isinstance(v, torch.Tensor) else v) for k, v in item.items()}, device)


def to_device(batch: dict, device: torch.device) -> dict:
    """The batch on ``device``, its k-space divided by each sample's :func:`~a2a_cli.physics.measurement_scale`.

    The loss is computed in k-space units: without this, k-space stored at 1e13 gives
    infinite gradients and at 1e-9 vanishing ones. The networks are scale-equivariant,
    so training on unit-scale data learns the same weights for any stored scale.
    """
    batch = {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
    batch["kspace"], _ = normalise_measurement(batch["kspace"], batch["mask"])
    return batch


def log_layouts(infos: list, log: Callable[[str], None]) -> None:
    """One line per file saying how it was read (``a2a inspect-mask`` also warns where a shape is ambiguous)."""
    for info in infos:
        log(describe_layout(info))


def warn_unsampled(dataset: KspaceDataset, log: Callable[[str], None], mirrored: bool = False) -> None:
    """Warn when no training file samples some phase-encode lines (they get no training signal).

    With ``mirrored`` (training on reflected data) a line also gets signal through its
    mirror image about the k-space centre, so only lines unsampled on both sides count.
    """
    masks = []
    for path, index in dataset.items:
        try:
            masks.append(read_mask(path, split=getattr(dataset, "split", None), slice_index=index,
                                   mask_file=getattr(dataset, "mask_file", None)))
        except InputError:
            continue
    groups = never_sampled_lines_by_width(masks)
    if mirrored:
        groups = {w: idx[np.isin((2 * (w // 2) - idx) % w, idx)] for w, idx in groups.items()}
    missing = np.unique(np.concatenate(list(groups.values()))) if groups else np.zeros(0, dtype=np.int64)
    if len(missing):
        shown = ", ".join(str(int(i)) for i in missing[:12]) + (" ..." if len(missing) > 12 else "")
        where = "in any training file, nor their mirror lines" if mirrored else "in any training file"
        log(
            f"warning: {len(missing)} phase-encode line(s) are never sampled {where} ({shown}); "
            "self-supervision gets no signal there. Train on files with varied sampling patterns."
        )
