"""Draw a confusion matrix as a PNG an admin can read, even with dozens of labels.

The labels with the most examples are kept and the rest pooled as "other", rows are
normalised (each row shows where that label's examples went) and counts are printed in the
cells. Matplotlib is driven through its object API with the Agg canvas, so nothing here
touches pyplot's global state or needs a display.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

OTHER = "(other)"


def pool_confusion(
    labels: Sequence[str], matrix: Sequence[Sequence[int]], top_n: int
) -> tuple[list[str], npt.NDArray[np.int64]]:
    """Keep the `top_n` labels with most true examples; sum every other row and column into OTHER."""
    m = np.asarray(matrix, dtype=np.int64).reshape(len(labels), len(labels))
    if len(labels) <= top_n:
        return list(labels), m
    support = m.sum(axis=1) + m.sum(axis=0) * 1e-6  # predicted-only labels sort after true ones
    keep = sorted(np.argsort(-support, kind="stable")[:top_n])
    kept = set(keep)
    rest = [i for i in range(len(labels)) if i not in kept]
    groups = [[i] for i in keep] + [rest]
    pooled = np.array([[m[np.ix_(r, c)].sum() for c in groups] for r in groups], dtype=np.int64)
    return [labels[i] for i in keep] + [OTHER], pooled


def draw_confusion(
    labels: Sequence[str], matrix: Sequence[Sequence[int]], path: Path, *, top_n: int = 15, title: str = ""
) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names, m = pool_confusion(labels, matrix, top_n)
    rows = m.sum(axis=1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros(m.shape, dtype=np.float64), where=rows > 0)
    size = 2.5 + 0.45 * len(names)
    fig = Figure(figsize=(size + 1.0, size), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(names)), labels=[n[:18] for n in names], rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), labels=[n[:18] for n in names], fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title, fontsize=9)
    for i in range(len(names)):
        for j in range(len(names)):
            if m[i, j]:
                colour = "white" if share[i, j] > 0.5 else "black"
                ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=7, color=colour)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true label's examples")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
