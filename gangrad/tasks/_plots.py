"""Figure helpers for ``task.render``, on the package's plotting convention
(:mod:`gangrad.plotting`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # plotting libraries load on first use: commands that draw nothing start fast
    from matplotlib.figure import Figure

__all__ = ["image_grid", "new_figure", "save"]


def new_figure(width: float = 5.0, height: float = 5.0, style: str = "white") -> Figure:
    """A figure with one axes (:func:`gangrad.plotting.new_figure`), in seaborn's ``style``."""
    import seaborn as sns

    from gangrad import plotting

    with sns.axes_style(style):
        fig, _ = plotting.new_figure(width=width, height=height)
    return fig


def save(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as PNG to ``path`` (parent folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", bbox_inches="tight")
    return path


def image_grid(images: np.ndarray, columns: int = 8, pad: int = 1) -> np.ndarray:
    """Tile ``images (n, h, w)`` into one ``(rows·(h+pad)-pad, columns·(w+pad)-pad)`` array.

    Missing tiles and the padding are NaN, which ``imshow`` leaves blank.
    """
    n, h, w = images.shape
    rows = max(1, -(-n // columns))
    tiles = np.full((rows * columns, h + pad, w + pad), np.nan)
    tiles[:n, :h, :w] = images
    grid = tiles.reshape(rows, columns, h + pad, w + pad).transpose(0, 2, 1, 3)
    return grid.reshape(rows * (h + pad), columns * (w + pad))[:-pad or None, :-pad or None]
