"""Group inference on surface maps: OLS, FDR, permutation max-t, clusters and TFCE on the mesh.

The design and contrast rules are the volume group level's
(:func:`glmflow.core.group.design.check_design`,
:func:`glmflow.core.group.contrasts.contrast_weights`); the t map and its max-t FWE p-values
are nilearn's ``permuted_ols`` on the design reparametrised by
:func:`glmflow.core.group.contrasts.split_contrast` (dof ``n - rank(design)``), FDR nilearn's
``fdr_threshold``.
Cluster-size and TFCE FWE p-values (:mod:`.tfce` on the mesh adjacency) come from the same
scheme, permuted here: the tested variate and the maps are residualised on the confounds,
then signs are flipped (a test of the constant, as nilearn's) or rows permuted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats

from glmflow.core.group.contrasts import (
    ContrastDef,
    TestedSplit,
    contrast_weights,
    split_contrast,
)
from glmflow.core.group.design import check_design
from glmflow.core.surface.io import (
    brain_model_axis,
    map_extension,
    part_kind,
    read_surface_map,
    save_surface_map,
)
from glmflow.core.surface.meshes import block_adjacency, fslr_cortex_vertices, hemisphere_adjacency
from glmflow.core.surface.tfce import cluster_sizes, edges, tfce, tfce_step
from glmflow.errors import DatasetError, GroupModelError

#: The permutation FWE maps of surface group inference (the volume level's
#: ``permutation_stat`` names; cluster mass is not offered on surfaces).
FWE_STATS = ("max_t", "tfce", "size")
LOGP = {"tfce": "logp_max_tfce", "cluster_size": "logp_max_size"}


def _split(design: pd.DataFrame, contrast: ContrastDef, source: str) -> TestedSplit:
    weights = contrast_weights(contrast, design.columns, name="surface", source=source)
    if weights.ndim != 1:
        raise GroupModelError(
            f"Surface group inference tests one t contrast, got {len(weights)} rows from "
            f"{source}; give a single formula or weight vector"
        )
    return split_contrast(design.to_numpy(float), weights)


def _residualise(split: TestedSplit, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The tested variate and the maps with the reduced model regressed out."""
    null = split.null_model()
    if null is None:
        return split.tested.astype(float), data.astype(float)
    pinv = np.linalg.pinv(null)
    return split.tested - null @ (pinv @ split.tested), data - null @ (pinv @ data)


def _t_of(x: np.ndarray, y: np.ndarray, dof: int) -> np.ndarray:
    """t of the tested variates ``x`` (n_perm, n) on ``y`` (n, V): (n_perm, V)."""
    xx = np.einsum("pn,pn->p", x, x)[:, None]
    beta = (x @ y) / xx
    ssr = np.einsum("nv,nv->v", y, y)[None, :] - beta**2 * xx
    return beta / np.sqrt(np.maximum(ssr, 1e-300) / dof / xx)


def _permuted(x: np.ndarray, n_perm: int, rng: np.random.Generator, flip: bool) -> np.ndarray:
    """Sign flips (a test of the constant, as nilearn's) or row permutations of ``x``."""
    if flip:
        return x[None, :] * rng.choice([-1.0, 1.0], size=(n_perm, x.size))
    return np.stack([x[rng.permutation(x.size)] for _ in range(n_perm)])


def surface_group_inference(
    data: np.ndarray,
    design: pd.DataFrame,
    contrast: ContrastDef,
    adjacency: sp.csr_matrix,
    *,
    n_perm: int = 1000,
    cluster_forming_p: float = 0.001,
    alpha: float = 0.05,
    seed: int = 0,
    fwe: Sequence[str] = FWE_STATS,
    two_sided: bool = False,
    source: str = "the design matrix",
) -> dict[str, np.ndarray | float]:
    """Group inference of one t contrast on surface data (positive tail, or both).

    Parameters
    ----------
    data : ndarray (n_subjects, n_vertices)
        Subject maps (vertices of both hemispheres or grayordinates, as ``adjacency``).
    design, contrast
        The group design (one row per subject) and a t contrast of its columns.
    adjacency : sparse (n_vertices, n_vertices)
        Mesh adjacency (:func:`surface_adjacency`).
    n_perm, cluster_forming_p, alpha, seed
        Permutations, the p forming clusters (halved two-sided, as nilearn), FDR q, seed.
    fwe
        The permutation FWE maps to compute, of :data:`FWE_STATS` (none: no permutation).
    two_sided
        Both tails: max-t of |t| (nilearn's ``two_sided_test``), TFCE and clusters of each
        sign (one family), FDR of |z| at ``alpha / 2`` (nilearn's ``threshold_stats_img``).

    Returns
    -------
    dict
        ``t``, ``z``, ``p`` (uncorrected, one-sided), ``fdr_threshold`` (z; inf when
        nothing passes), ``dof``; those of ``fwe``: ``logp_max_t`` (nilearn's max-t FWE),
        ``tfce`` and ``logp_max_tfce``, ``cluster_size`` and ``logp_max_size`` (-log10 FWE p),
        the permuted maxima ``h0_max_tfce`` / ``h0_max_cluster_size`` and ``tfce_step``.
    """
    from nilearn.glm import fdr_threshold

    design = check_design(design, source=source)
    if len(design) != data.shape[0]:
        raise GroupModelError(
            f"{source} has {len(design)} rows for {data.shape[0]} subject maps; give one "
            "row per map"
        )
    split = _split(design, contrast, source)
    (x, y), dof = _residualise(split, data), split.dof
    t = _t_of(x[None, :], y, dof)[0]
    p = stats.t.sf(t, dof)
    z = stats.norm.isf(p)
    fdr = fdr_threshold(np.abs(z), alpha / 2) if two_sided else fdr_threshold(z, alpha)
    out = {"t": t, "z": z, "p": p, "dof": float(dof), "fdr_threshold": float(fdr)}
    if fwe:
        out.update(_fwe(split, data, (x, y, dof), adjacency, fwe=fwe,
                        n_perm=n_perm, cluster_forming_p=cluster_forming_p, seed=seed,
                        two_sided=two_sided, t=t))  # fmt: skip
    return out


def _fwe(split, data, residualised, adjacency, *, fwe, n_perm, cluster_forming_p,
         seed, two_sided, t) -> dict[str, np.ndarray]:  # fmt: skip
    """The permutation FWE maps of ``fwe`` (and the TFCE and cluster-size maps)."""
    from nilearn.mass_univariate import permuted_ols

    out = {}
    if "max_t" in fwe:
        max_t = permuted_ols(split.tested, data, confounding_vars=split.confounds,
                             model_intercept=split.model_intercept,
                             n_perm=n_perm, two_sided_test=two_sided,
                             random_state=seed)  # fmt: skip
        out["logp_max_t"] = np.ravel(max_t["logp_max_t"])
    clustered = [k for k in ("tfce", "cluster_size") if k in fwe or k.split("_")[-1] in fwe]
    if not clustered:
        return out
    x, y, dof = residualised
    # one TFCE step, the observed map's, for it and every permuted map
    dh = tfce_step(t, two_sided=two_sided)
    # nilearn permuted_ols' rule (the volume level's): two-sided, |t| > t.isf(p / 2)
    threshold = stats.t.isf(cluster_forming_p / (2 if two_sided else 1), dof)
    out["cluster_forming_t"] = float(threshold)
    measures = _measures(edges(adjacency), threshold, two_sided, dh)
    out.update({key: measures[key](t) for key in clustered})
    if "tfce" in clustered:
        out["tfce_step"] = dh
    rng = np.random.default_rng(seed)
    null = _null_maxima(x, y, dof, (n_perm, rng, split.sign_flip), measures, clustered)
    for key in clustered:
        out[f"h0_max_{key}"] = null[key]
        exceed = (null[key][None, :] >= out[key][:, None]).sum(axis=1)
        out[LOGP[key]] = -np.log10((exceed + 1) / (n_perm + 1))
    return out


def _measures(graph, threshold: float, two_sided: bool, dh: float) -> dict:
    """TFCE (step ``dh``) and cluster size of a t map: of its positive part, or each sign's."""

    def tfce_of(t):
        return tfce(t, graph, dh=dh) + (tfce(-t, graph, dh=dh) if two_sided else 0.0)

    def size_of(t):
        sizes = cluster_sizes(t > threshold, graph)
        return (sizes + (cluster_sizes(-t > threshold, graph) if two_sided else 0)).astype(float)

    return {"tfce": tfce_of, "cluster_size": size_of}


def _null_maxima(x, y, dof, scheme, measures, keys) -> dict[str, np.ndarray]:
    """Max TFCE and max cluster size of each permuted t map (``scheme``: count, rng, flip)."""
    n_perm, rng, flip = scheme
    null: dict[str, list[float]] = {key: [] for key in keys}
    for start in range(0, n_perm, 100):  # t maps 100 at a time: one matrix product each
        for t in _t_of(_permuted(x, min(100, n_perm - start), rng, flip), y, dof):
            for key in keys:
                null[key].append(measures[key](t).max(initial=0.0))
    return {key: np.asarray(values, float) for key, values in null.items()}


def _voxel_adjacency(ijk: np.ndarray) -> sp.csr_matrix:
    """Face (6-) neighbours among the voxels of one structure."""
    index = {tuple(v): i for i, v in enumerate(ijk.tolist())}
    rows, cols = [], []
    for i, v in enumerate(ijk.tolist()):
        for axis in range(3):
            w = list(v)
            w[axis] += 1
            j = index.get(tuple(w))
            if j is not None:
                rows += [i, j]
                cols += [j, i]
    n = len(ijk)
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))


def part_adjacency(path: str | Path) -> sp.csr_matrix:
    """Adjacency of the vertices of one part's map (GIFTI hemisphere or CIFTI)."""
    name = Path(path).name
    if part_kind(path) == "gifti":
        space = re.search(r"_space-([A-Za-z0-9]+)", name)
        hemi = "L" if "_hemi-L_" in name else "R"
        return hemisphere_adjacency(space.group(1) if space else "", hemi)
    blocks: list = []
    for structure, _, sub in brain_model_axis(path).iter_structures():
        hemi = {"CIFTI_STRUCTURE_CORTEX_LEFT": "L", "CIFTI_STRUCTURE_CORTEX_RIGHT": "R"}.get(
            str(structure)
        )
        if hemi is None:
            blocks.append(_voxel_adjacency(sub.voxel))
        elif np.array_equal(sub.vertex, fslr_cortex_vertices(hemi)):
            blocks.append(hemisphere_adjacency("fsLR", hemi))
        else:
            raise DatasetError(
                f"{path}: its {structure} vertices are not the fsLR 91k cortex; cluster and "
                "TFCE inference need the fsLR 32k mesh's 91k vertices"
            )
    return block_adjacency(blocks)


def surface_group_files(
    subject_maps: Sequence[Mapping[str, str | Path]],
    design: pd.DataFrame,
    contrast: ContrastDef,
    *,
    out_dir: str | Path,
    **options,
) -> dict[str, dict[str, Path]]:
    """Group inference on subject maps of one or more parts (e.g. ``{"L": ..., "R": ...}``).

    The parts are analysed together (one FWE family over both hemispheres); ``options`` as
    :func:`surface_group_inference`. Returns statistic -> part -> written map (``t``, ``z``,
    ``logp_max_t``, ``tfce``, ``logp_max_tfce``, ``cluster_size``, ``logp_max_size``),
    each in the parts' format, next to a ``fdr.json`` with the FDR threshold and dof.
    """
    parts = list(subject_maps[0])
    data = [np.concatenate([read_surface_map(m[p]) for p in parts]) for m in subject_maps]
    first = subject_maps[0]
    sizes = [read_surface_map(first[p]).size for p in parts]
    result = surface_group_inference(np.stack(data), design, contrast,
                                     block_adjacency([part_adjacency(first[p]) for p in parts]),
                                     **options)  # fmt: skip
    out_dir = Path(out_dir)
    bounds = np.cumsum([0, *sizes])
    written: dict[str, dict[str, Path]] = {}
    for key in ("t", "z", "logp_max_t", "tfce", "logp_max_tfce", "cluster_size", "logp_max_size"):
        if key not in result:
            continue
        for part, lo, hi in zip(parts, bounds[:-1], bounds[1:], strict=True):
            path = out_dir / f"{part}_{key}{map_extension(first[part])}"
            written.setdefault(key, {})[part] = save_surface_map(
                result[key][lo:hi], str(first[part]), path, key
            )
    info = {"fdr_threshold": result["fdr_threshold"], "dof": result["dof"]}
    (out_dir / "fdr.json").write_text(json.dumps(info))
    return written
