"""Figures written by the command line: loss curves and image previews.

Everything is drawn on a pyplot-free :class:`matplotlib.figure.Figure` with the Agg
renderer, so no display (and no global pyplot state) is ever needed. Matplotlib is
imported inside the functions: importing this module stays cheap for commands that
never draw.

Every file is written atomically (:func:`a2a_cli.atomic.atomic_write`): it is drawn under a hidden
temporary name in the destination folder and moved into place with ``os.replace``, so
a reader never sees a half-written image and a failure leaves no file behind.

>>> import os, tempfile
>>> folder = tempfile.mkdtemp()
>>> path = os.path.join(folder, "loss.png")
>>> save_loss_plot([{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.5}, {"step": 2, "val_loss": 0.6}], path)
>>> open(path, "rb").read(8) == PNG_MAGIC
True
>>> os.listdir(folder)
['loss.png']
"""
from __future__ import annotations

import math
import os
from typing import Mapping, Sequence

import numpy as np

from .atomic import atomic_write

__all__ = ["PNG_MAGIC", "GIF_MAGICS", "save_figure", "smooth", "save_loss_plot", "save_preview"]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
GIF_MAGICS = (b"GIF87a", b"GIF89a")

# titles that hold an error/difference map: drawn on the images' scale, but they do not
# set that scale (an "error x5" panel would otherwise dim every image panel)
_ERROR_WORDS = ("error", "diff", "residual")


def _new_figure(width: float, height: float, dpi: float = 100.0, layout: str | None = None):
    """A pyplot-free figure with an Agg canvas attached (``layout``: e.g. "constrained")."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path: str | os.PathLike, fmt: str = "png") -> None:
    """Write a matplotlib figure atomically (``fmt`` is given explicitly because the
    temporary name has no meaningful extension)."""
    with atomic_write(path, overwrite=True) as tmp:
        fig.savefig(tmp, format=fmt)


# -- loss curves ----------------------------------------------------------------------


def _is_number(v: object) -> bool:
    # bool is an int subclass, but a flag is never a loss value
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(float(v))


def _series(records: Sequence[Mapping], key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of the records holding a finite ``key``, sorted by step.

    A record without ``"step"`` takes its position in ``records`` as its step.
    """
    pts = [
        (float(r["step"]) if _is_number(r.get("step")) else float(i), float(r[key]))
        for i, r in enumerate(records)
        if isinstance(r, Mapping) and _is_number(r.get(key))
    ]
    pts.sort(key=lambda p: p[0])
    arr = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def smooth(values: np.ndarray, window: float | None = None) -> np.ndarray:
    """Bias-corrected exponential moving average of a 1D series.

    ``window`` is the effective number of points averaged (default ``len(values) / 20``);
    the bias correction keeps the first points from being pulled towards zero.

    >>> bool(np.allclose(smooth(np.array([2.0, 2.0, 2.0]), window=5), 2.0))
    True
    """
    values = np.asarray(values, dtype=np.float64)
    if window is None:
        window = len(values) / 20
    beta = 1.0 - 1.0 / max(1.0, float(window))
    out = np.empty_like(values)
    acc = 0.0
    for i, v in enumerate(values):
        acc = beta * acc + (1.0 - beta) * v
        out[i] = acc / (1.0 - beta ** (i + 1)) if beta > 0 else v
    return out


def save_loss_plot(records: Sequence[Mapping], path: str | os.PathLike) -> None:
    """Plot training loss (raw and smoothed) and validation loss against step.

    ``records`` are metrics-log entries such as ``{"step": 10, "loss": 0.5}`` and
    ``{"step": 10, "val_loss": 0.4}``; other keys and non-finite values are ignored.
    The y axis is logarithmic when every plotted value is positive (linear otherwise,
    since a log axis cannot show zero or negative losses). With no values at all the
    figure says so, so that the file still exists for a run that just started.
    """
    steps, loss = _series(records, "loss")
    vsteps, vloss = _series(records, "val_loss")
    fig = _new_figure(7.0, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    if len(loss):
        ax.plot(steps, loss, color="tab:blue", alpha=0.35 if len(loss) >= 10 else 1.0, lw=1, label="train loss")
        if len(loss) >= 10:
            ax.plot(steps, smooth(loss), color="tab:blue", lw=2, label="train loss (smoothed)")
    if len(vloss):
        ax.plot(vsteps, vloss, color="tab:orange", lw=2, marker="o", ms=3, label="validation loss")
    values = np.concatenate([loss, vloss])
    if len(values) == 0:
        ax.text(0.5, 0.5, "no loss values logged yet", ha="center", va="center", transform=ax.transAxes)
    else:
        if np.all(values > 0):
            ax.set_yscale("log")
        ax.legend(loc="upper right")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, "png")


# -- image previews -------------------------------------------------------------------


def _magnitude(image: object) -> np.ndarray:
    """``|image|`` as float64 numpy (complex or real, numpy or torch)."""
    if hasattr(image, "detach"):  # torch tensor, without importing torch here
        image = image.detach().cpu().numpy()
    return np.abs(np.asarray(image)).astype(np.float64)


def _is_error_panel(title: str) -> bool:
    return any(word in title.lower() for word in _ERROR_WORDS)


def _common_vmax(mags: Mapping[str, np.ndarray]) -> float:
    """Upper end of the shared grey scale: the largest finite magnitude of the image
    (non-error) panels, or of all panels when every panel is an error map."""
    chosen = [m for t, m in mags.items() if not _is_error_panel(t)] or list(mags.values())
    finite = [m[np.isfinite(m)] for m in chosen]
    vmax = max((float(f.max()) for f in finite if f.size), default=0.0)
    return vmax if vmax > 0 else 1.0


def save_preview(path: str | os.PathLike, panels: Mapping[str, object], fps: float = 10.0) -> None:
    """Write panels side by side as grey-scale magnitude images.

    ``panels`` maps a title (e.g. ``"reference"``, ``"zero-filled"``, ``"a2a"``,
    ``"error x5"``) to an image, complex or real, numpy or torch.

    * ``path`` ending in ``.gif``: an animated GIF; each panel is a ``(T, H, W)``
      sequence (all with the same T; a ``(H, W)`` panel stays still) and the GIF has
      one frame per time point, ``fps`` frames per second.
    * otherwise a PNG; each panel is a ``(H, W)`` image.

    All panels share one intensity scale, ``[0, max]`` of the image panels, so that
    brightness is comparable; panels whose title mentions "error"/"diff"/"residual"
    are drawn on that scale too but do not set it (the caller magnifies them).
    """
    if not panels:
        raise ValueError("save_preview needs at least one panel")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    gif = os.fspath(path).lower().endswith(".gif")
    mags = {str(title): _magnitude(img) for title, img in panels.items()}
    if gif:
        n_frames = {m.shape[0] for m in mags.values() if m.ndim == 3}
        bad = [t for t, m in mags.items() if m.ndim not in (2, 3)]
        if bad or len(n_frames) > 1:
            shapes = {t: m.shape for t, m in mags.items()}
            raise ValueError(f"GIF panels must be (T, H, W) with one common T (or still (H, W)), got {shapes}")
        n_frames_i = n_frames.pop() if n_frames else 1
        if n_frames_i == 0:
            raise ValueError("GIF panels have no frames")
    else:
        bad = {t: m.shape for t, m in mags.items() if m.ndim != 2}
        if bad:
            raise ValueError(f"PNG panels must be 2D (H, W) images (use a .gif path for sequences), got {bad}")
    vmax = _common_vmax(mags)

    n = len(mags)
    fig = _new_figure(2.6 * n, 3.0 if not gif else 3.2, dpi=100 if not gif else 80)
    artists = []
    for i, (title, mag) in enumerate(mags.items()):
        ax = fig.add_subplot(1, n, i + 1)
        first = mag[0] if mag.ndim == 3 else mag
        artists.append(ax.imshow(first, cmap="gray", vmin=0.0, vmax=vmax, interpolation="nearest"))
        ax.set_title(title)
        ax.set_axis_off()
    if not gif:
        fig.tight_layout()
        save_figure(fig, path, "png")
        return

    from PIL import Image

    # the frame label also keeps consecutive frames distinct, which stops Pillow from
    # merging identical frames (the GIF then has exactly T frames)
    label = fig.suptitle("t = 0")
    fig.tight_layout()
    frames = []
    for t in range(n_frames_i):
        for artist, mag in zip(artists, mags.values()):
            if mag.ndim == 3:
                artist.set_data(mag[t])
        label.set_text(f"t = {t}")
        fig.canvas.draw()
        rgba = np.asarray(fig.canvas.buffer_rgba())
        frames.append(Image.fromarray(rgba[..., :3].copy()).convert("L"))
    with atomic_write(path, overwrite=True) as tmp:
        frames[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=frames[1:],
            duration=max(20, int(round(1000.0 / fps))),
            loop=0,
        )
