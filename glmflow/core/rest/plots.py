"""Pictures of connectivity: a matrix (nilearn's ``plot_matrix``) and a connectome.

SVGs drawn by a bare matplotlib ``Figure`` (no pyplot state), text as text, fixed ids and no
date, so the same matrix gives the same bytes and a rerun rewrites nothing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

_RC = {"svg.fonttype": "none", "svg.hashsalt": "glmflow"}


def plot_matrix_svg(
    matrix: np.ndarray, labels: Sequence[str], path: str | os.PathLike, *, title: str
) -> Path:
    """The matrix with its node labels (diagonal blank), symmetric colour scale."""
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from nilearn.plotting import plot_matrix

    values = np.array(matrix, dtype=float)
    np.fill_diagonal(values, np.nan)
    bound = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    size = min(max(4.0, 0.18 * len(labels) + 2.5), 24.0)
    figure = Figure(figsize=(size + 1.0, size))
    FigureCanvasAgg(figure)  # plot_matrix measures its labels with the canvas' renderer
    with rc_context(_RC):
        axes = figure.add_subplot()
        shown = labels if len(labels) <= 60 else None  # beyond 60 names are unreadable
        plot_matrix(np.nan_to_num(values), labels=shown, axes=axes, vmin=-bound or -1,
                    vmax=bound or 1, colorbar=True, title=title)  # fmt: skip
        figure.savefig(path, metadata={"Date": None})
    return Path(path)


def plot_connectome_svg(
    matrix: np.ndarray, coordinates: np.ndarray, path: str | os.PathLike, *, title: str
) -> Path:
    """The edges of ``matrix`` (zeros and NaN not drawn) between nodes at MNI ``coordinates``."""
    from matplotlib import rc_context
    from matplotlib.figure import Figure
    from nilearn.plotting import plot_connectome

    values = np.nan_to_num(np.array(matrix, dtype=float))
    np.fill_diagonal(values, 0.0)
    figure = Figure(figsize=(9.0, 3.5))
    with rc_context(_RC):
        plot_connectome(values, np.asarray(coordinates, dtype=float), figure=figure, title=title,
                        node_size=10, colorbar=bool(np.any(values)))  # fmt: skip
        figure.savefig(path, metadata={"Date": None})
    return Path(path)
