"""The one plotting convention of the package, for reports and questions alike.

Figures are made with ``new_figure(rows, cols)`` on matplotlib's object API with an Agg
canvas — never through ``pyplot``'s global state, so they are safe in worker processes
and on machines without a display — and written with :func:`png_bytes`: a compact PNG at
:data:`DPI` with an adaptive 128-colour palette, which keeps reports small. Colours come
from :func:`palette` (seaborn's ``tab10``, one per label, stable across a report's
figures).
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # plotting libraries load on first use: commands that draw nothing start fast
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["DPI", "grid", "new_figure", "palette", "png_bytes"]

DPI = 80


def new_figure(rows: int = 1, cols: int = 1, *, width: float = 5.0, height: float = 3.6,
               squeeze: bool = True) -> tuple[Figure, Axes]:
    """A figure of ``rows × cols`` axes of ``width × height`` inches in total, Agg canvas;
    returns ``(figure, axes)`` as ``plt.subplots`` does."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=squeeze)
    return fig, axes


def grid(n: int, width: float = 4.2, height: float = 3.2, cols: int = 4
         ) -> tuple[Figure, list[Axes]]:
    """``n`` panels of ``width × height`` inches, ``cols`` to a row; unused panels hidden."""
    cols = max(1, min(cols, n))
    rows = (n + cols - 1) // cols
    fig, axes = new_figure(rows, cols, width=width * cols, height=height * rows, squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def palette(labels: Iterable[str]) -> dict[str, tuple]:
    """One ``tab10`` colour per distinct label, in sorted order."""
    import seaborn as sns

    labels = sorted(set(labels))
    return dict(zip(labels, sns.color_palette("tab10", max(len(labels), 1)), strict=False))


def png_bytes(fig: Figure, dpi: int = DPI) -> bytes:
    """The figure as a compact PNG (adaptive 128-colour palette)."""
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    image = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    out = io.BytesIO()
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(out, format="png",
                                                                     optimize=True)
    return out.getvalue()
