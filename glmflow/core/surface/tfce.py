"""Clusters and TFCE on a mesh (vertex adjacency), beyond nilearn (volume grids only).

A cluster is a connected set of supra-threshold vertices (edges of the mesh; CIFTI voxels by
their faces). TFCE (Smith & Nichols 2009) sums, for each vertex, ``e(h)^E h^H dh`` over the
thresholds ``h`` below its value, ``e(h)`` the vertex count of its cluster at ``h``; on
surfaces E = 1, H = 2 (their recommendation for 2-D data; volumes use E = 0.5), ``dh`` the
observed map's range over :data:`TFCE_STEPS` (:func:`tfce_step`), kept for every permuted
map (as FSL and MNE keep a fixed step). Vertex counts, not areas: fsaverage and fsLR meshes are
near-uniform, and counts keep the statistic free of a mesh choice.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

TFCE_E, TFCE_H = 1.0, 2.0
TFCE_STEPS = 50


class MeshGraph(NamedTuple):
    """A vertex adjacency in CSR form, with each stored edge's row (built once)."""

    rows: np.ndarray
    cols: np.ndarray
    indptr: np.ndarray
    n: int


def edges(adjacency: sp.csr_matrix) -> MeshGraph:
    """The graph clusters and TFCE walk (every edge stored both ways, as CSR)."""
    adjacency = sp.csr_matrix(adjacency)
    rows = np.repeat(np.arange(adjacency.shape[0]), np.diff(adjacency.indptr))
    return MeshGraph(rows, adjacency.indices, adjacency.indptr, adjacency.shape[0])


def cluster_labels(supra: np.ndarray, graph: MeshGraph) -> np.ndarray:
    """Component label per vertex (-1 below threshold)."""
    keep = (supra[graph.rows] & supra[graph.cols]).astype(np.int8)
    # copies: eliminate_zeros works in place on the arrays it was given
    sub = sp.csr_matrix((keep, graph.cols, graph.indptr), shape=(graph.n, graph.n), copy=True)
    sub.eliminate_zeros()
    _, labels = connected_components(sub, directed=False)
    return np.where(supra, labels, -1)


def cluster_sizes(supra: np.ndarray, graph: MeshGraph) -> np.ndarray:
    """Vertex count of each vertex's cluster (0 below threshold)."""
    labels = cluster_labels(supra, graph)
    counts = np.bincount(labels[labels >= 0], minlength=supra.size)
    return np.where(labels >= 0, counts[np.maximum(labels, 0)], 0)


def tfce_step(values: np.ndarray, *, two_sided: bool = False) -> float:
    """``dh`` of a map's TFCE: its maximum (of ``|values|`` when two-sided) over
    :data:`TFCE_STEPS` (the range of ``|values|`` when nothing is positive: the null maps
    still need a step)."""
    top = float(np.max(np.abs(values) if two_sided else values, initial=0.0))
    if top <= 0:
        top = float(np.max(np.abs(values), initial=0.0)) or 1.0
    return top / TFCE_STEPS


def tfce(values: np.ndarray, graph: MeshGraph, *, dh: float | None = None) -> np.ndarray:
    """TFCE of the positive part of ``values`` (negate for the other tail)."""
    top = float(values.max(initial=0.0))
    out = np.zeros(values.size)
    if top <= 0:
        return out
    dh = top / TFCE_STEPS if dh is None else dh
    for h in np.arange(dh, top + dh / 2, dh):
        supra = values >= h
        if not supra.any():
            break
        out += cluster_sizes(supra, graph) ** TFCE_E * h**TFCE_H * dh
    return out
