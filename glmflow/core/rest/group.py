"""Group level of connectivity: an edge-wise GLM over the subjects' matrices.

Each edge (the upper triangle, i < j) is one response: the subjects' values (Fisher z for
the correlation measures when ``fisher_z``) regressed on the group design of
``glmflow.core.group.make_group_design`` (one-sample, two-sample, covariates from
``participants.tsv``), each t contrast giving t, p (two-sided unless ``two_sided`` is false),
z and the edges that survive: ``fdr`` (Benjamini-Hochberg over the edges), ``bonferroni``,
``fpr`` (uncorrected), ``permutation`` (max-t over the edges with
``nilearn.mass_univariate.permuted_ols``: sign flips for a one-sample mean, permutations
otherwise) or ``none``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from glmflow.core.group.contrasts import split_contrast
from glmflow.core.model.group_specs import InferenceSpec
from glmflow.errors import GroupModelError


@dataclass(frozen=True)
class EdgeResult:
    """One contrast over every edge: (n, n) matrices (diagonal NaN) and the edge table."""

    t: np.ndarray
    p: np.ndarray
    z: np.ndarray
    significant: np.ndarray
    table: pd.DataFrame
    threshold: str


def _upper(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(n, k=1)


def _square(values: np.ndarray, n: int) -> np.ndarray:
    out = np.full((n, n), np.nan)
    i, j = _upper(n)
    out[i, j] = out[j, i] = values
    return out


def edge_glm(
    matrices: np.ndarray,
    design: pd.DataFrame,
    weights: np.ndarray,
    inference: InferenceSpec,
    labels: Sequence[str],
    *,
    name: str,
    sources: Sequence[str] = (),
) -> EdgeResult:
    """Fit every edge of ``matrices`` (n_subjects, n, n) and test the t contrast ``weights``.

    ``sources`` names each subject's file(s) in the messages.
    """
    X = design.to_numpy(float)
    n_sub, n = matrices.shape[0], matrices.shape[1]
    if weights.ndim != 1:
        raise GroupModelError(
            f"Contrast {name!r} is an F contrast; edge-wise connectivity models test t "
            "contrasts only: give one formula"
        )
    dof = n_sub - np.linalg.matrix_rank(X)
    if dof < 1:
        raise GroupModelError(
            f"Contrast {name!r}: {n_sub} subjects for {X.shape[1]} design columns leave no "
            "degree of freedom; add subjects or remove covariates"
        )
    i, j = _upper(n)
    Y = matrices[:, i, j]
    _check_finite(Y, i, j, labels, sources)
    pinv = np.linalg.pinv(X)
    beta = pinv @ Y
    resid = Y - X @ beta
    sigma2 = (resid**2).sum(0) / dof
    var_c = weights @ (pinv @ pinv.T) @ weights
    t = (weights @ beta) / np.sqrt(sigma2 * var_c)
    if inference.two_sided:
        p = 2 * stats.t.sf(np.abs(t), dof)
        z = np.sign(t) * stats.norm.isf(p / 2)
    else:
        p = stats.t.sf(t, dof)
        z = stats.norm.isf(p)
    keep, rule = _threshold(p, inference, X, weights, Y)
    table = _table(i, j, labels, t, p, z, keep, beta, weights)
    return EdgeResult(
        _square(t, n), _square(p, n), _square(z, n), _square(keep, n) == 1, table, rule
    )


def _check_finite(Y: np.ndarray, i, j, labels: Sequence[str], sources: Sequence[str]) -> None:
    bad = np.argwhere(~np.isfinite(Y))
    if not len(bad):
        return
    s, e = bad[0]
    where = sources[s] if len(sources) > s else f"subject {s + 1}"
    raise GroupModelError(
        f"Edge {labels[i[e]]} - {labels[j[e]]} is {Y[s, e]} in {where} ({len(bad)} non-finite "
        "edge value(s) in all); a node's series is constant there (an empty or flat region): "
        'leave that node out with "exclude_labels", or the subject with --participant-label'
    )


def _threshold(p, inference: InferenceSpec, X, weights, Y) -> tuple[np.ndarray, str]:
    alpha, method = inference.alpha, inference.method
    if method == "none":
        return np.zeros_like(p, bool), "none"
    if method == "fpr":
        return p < alpha, f"p < {alpha:g} uncorrected"
    if method == "bonferroni":
        return p < alpha / len(p), f"p < {alpha:g} / {len(p)} edges (Bonferroni)"
    if method == "fdr":
        q = stats.false_discovery_control(p, method="bh")
        return q <= alpha, f"Benjamini-Hochberg FDR q <= {alpha:g} over {len(p)} edges"
    return _max_t(X, weights, Y, inference), (
        f"permutation max-t FWE p < {alpha:g} ({inference.n_perm} permutations, seed "
        f"{inference.seed})"
    )


def _max_t(X, weights, Y, inference: InferenceSpec) -> np.ndarray:
    """FWE-corrected p < alpha by max-t over edges, on the split of ``split_contrast``."""
    from nilearn.mass_univariate import permuted_ols

    split = split_contrast(X, weights)
    out = permuted_ols(
        split.tested, Y, confounding_vars=split.confounds,
        model_intercept=split.model_intercept,
        n_perm=inference.n_perm, two_sided_test=inference.two_sided,
        random_state=inference.seed, n_jobs=1, verbose=0, output_type="dict",
    )  # fmt: skip
    return (10 ** -out["logp_max_t"][0]) < inference.alpha


def _table(i, j, labels, t, p, z, keep, beta, weights) -> pd.DataFrame:
    rows = np.flatnonzero(keep)
    effect = weights @ beta
    return pd.DataFrame(
        {
            "node_i": i[rows] + 1,
            "node_j": j[rows] + 1,
            "label_i": [labels[k] for k in i[rows]],
            "label_j": [labels[k] for k in j[rows]],
            "effect": effect[rows],
            "t": t[rows],
            "z": z[rows],
            "p": p[rows],
        }
    ).sort_values("p", kind="stable")
