"""t and F contrasts of a first-level fit.

Formulas are turned into weights by :mod:`glmflow.core.formula` (the weights of nilearn's
``expression_to_contrast_vector``, read without evaluating anything); effect, variance and
dof follow ``nilearn.glm.contrasts.compute_contrast`` per noise group and the statistics come
from nilearn's public ``Contrast`` class (its z with half the work, the same bits:
:func:`z_score`), so maps equal those of
``FirstLevelModel.compute_contrast`` for the same fit. For an F contrast the effect is one map
per row, ``sqrtm(inv(C cov C')) @ C @ theta`` (whitened so that the F statistic is the mean of
their squares over the dispersion), and the variance is the dispersion, as nilearn returns them.

Why not nilearn's public ``nilearn.glm.compute_contrast``: it needs nilearn's per-noise-group
``RegressionResults`` objects, where this works from the compact :class:`FirstLevelFit`
(theta, dispersion, one covariance per group) that ``FitFirstLevel`` caches as a file, and it
is faster: 2.4x for a t and 2.0x for a 3-row F contrast (0.21 s vs 0.50 s, 0.34 s vs 0.69 s,
all five maps, 238,023 voxels x 240 volumes x 20 columns, AR(1); nilearn 0.14.1;
``benchmarks/bench_contrasts.py``, ``benchmarks/RESULTS-contrasts.md``), with maps equal to
nilearn's (max |dz| 1e-14 there). ``tests/test_contrasts.py`` pins the maps to the installed
nilearn's ``compute_contrast`` and ``FirstLevelModel.compute_contrast`` (|dz| < 1e-6, effect,
variance and stat to rtol 1e-8).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, get_args

import numpy as np
import scipy.linalg as spl

from glmflow.core.formula import (
    FormulaError,
    MissingTerms,
    check_contrast,
    check_finite,
    formula_weights,
)
from glmflow.core.glm import FirstLevelFit
from glmflow.errors import ContrastError

__all__ = ["MAP_KEYS", "ContrastResult", "MissingTerms", "compute_contrast", "contrast_weights"]

MAP_KEYS = ("effect", "variance", "stat", "p", "z")


@dataclass(frozen=True)
class ContrastResult(Mapping):
    """The five maps of a contrast (a read-only mapping over :data:`MAP_KEYS`) and its record.

    Attributes
    ----------
    name, stat_type : str
    weights : ndarray, shape (n_rows, n_columns)
        Weights applied to the design columns (after dropping missing terms).
    column_names : tuple of str
    dropped : tuple of str
        Names of the contrast absent from this design and dropped (``missing="drop"``).
    dof : float
    effect : ndarray, shape (n_voxels,) for t, (n_rows, n_voxels) for F
    variance, stat, p, z : ndarray, shape (n_voxels,)
    """

    name: str
    stat_type: str
    weights: np.ndarray
    column_names: tuple[str, ...]
    dropped: tuple[str, ...]
    dof: float
    effect: np.ndarray
    variance: np.ndarray
    stat: np.ndarray
    p: np.ndarray
    z: np.ndarray

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in MAP_KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(MAP_KEYS)

    def __len__(self) -> int:
        return len(MAP_KEYS)

    def info(self) -> dict[str, Any]:
        """JSON-able record: name, stat type, weights per row, dropped names, dof."""
        rows = [
            {c: float(w) for c, w in zip(self.column_names, row, strict=True) if w != 0}
            for row in self.weights
        ]
        return {
            "name": self.name,
            "stat_type": self.stat_type,
            "weights": rows,
            "dropped": list(self.dropped),
            "dof": self.dof,
        }


def _get(contrast: Any, key: str, default: Any = None) -> Any:
    if isinstance(contrast, Mapping):
        return contrast.get(key, default)
    return getattr(contrast, key, default)


def _missing_message(name: str, missing: Sequence[str], columns: Sequence[str], source) -> str:
    shown = ", ".join(f"'{m}'" for m in missing)
    what = "which is not a column" if len(missing) == 1 else "which are not columns"
    return (
        f"Contrast '{name}' uses {shown} {what} of the design of {source or 'this run'} "
        f"(columns: {', '.join(columns)}); fix the contrast or run with "
        "--missing-conditions drop"
    )


def _row_weights(
    name: str, row: str | Mapping[str, float], columns: list[str]
) -> tuple[np.ndarray, tuple[str, ...]]:
    """One row (a formula or {column: weight}) over ``columns``; absent names get no weight."""
    try:
        if isinstance(row, str):
            return formula_weights(row, columns)
        weights = {str(c): float(w) for c, w in row.items()}
        check_finite(weights, f"Contrast {name!r}: 'weights'")
    except FormulaError as err:
        message = f"Contrast {name!r}: {err}" if isinstance(row, str) else str(err)
        raise ContrastError(message) from None
    vector = np.array([weights.get(c, 0.0) for c in columns])
    return vector, tuple(c for c in weights if c not in columns)


def _rows(contrast: Mapping[str, Any] | Any) -> tuple[str, str, tuple]:
    """Name, stat type and rows (formulas or {column: weight}) of a contrast, checked."""
    name = str(_get(contrast, "name", "<unnamed>"))
    expressions = tuple(_get(contrast, "expressions", ()) or ())
    weight_rows = tuple(_get(contrast, "weights", ()) or ())
    stat_type = _get(contrast, "stat_type", "t")
    check_contrast(name, stat_type, len(expressions), len(weight_rows), error=ContrastError)
    return name, stat_type, expressions or weight_rows


def contrast_weights(
    contrast: Mapping[str, Any] | Any,
    column_names: Sequence[str],
    *,
    missing: MissingTerms = "error",
    source: str = "",
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Weights of a contrast spec for a design's columns.

    Parameters
    ----------
    contrast : mapping or ContrastSpec-like
        ``name``, ``stat_type`` ("t" or "F") and either ``expressions`` (formulas, one per
        row) or ``weights`` (rows of ``{column: weight}``).
    column_names : sequence of str
    missing : {"error", "drop"}
        What to do with names absent from the design: raise ContrastError, or drop those
        terms (rows left all zero are dropped too).
    source : str
        Design file name for messages.

    Returns
    -------
    weights : ndarray, shape (n_rows, n_columns); zero rows when everything was dropped.
    dropped : tuple of str
    """
    if missing not in get_args(MissingTerms):
        raise ContrastError(f"missing must be 'error' or 'drop', got {missing!r}")
    name, stat_type, given = _rows(contrast)
    columns = [str(c) for c in column_names]
    vectors, row_missing = [], []
    for row in given:
        vector, absent = _row_weights(name, row, columns)
        vectors.append(vector)
        row_missing.append(absent)
    missing_names = list(dict.fromkeys(n for absent in row_missing for n in absent))
    if missing_names and missing == "error":
        raise ContrastError(_missing_message(name, missing_names, columns, source))
    rows = []
    for i, vector in enumerate(vectors):
        if not np.any(vector):
            if row_missing[i]:
                continue  # everything this row named was dropped
            raise ContrastError(
                f"Contrast '{name}' row {i + 1} has zero weight on every column of the design "
                f"of {source or 'this run'}; fix the contrast"
            )
        rows.append(vector)
    weights = np.array(rows).reshape(len(rows), len(columns))
    if stat_type == "F" and len(rows) > 1 and np.linalg.matrix_rank(weights) < len(rows):
        raise ContrastError(
            f"F contrast '{name}' has linearly dependent rows; remove redundant rows"
        )
    return weights, tuple(missing_names)


def compute_contrast(
    fit: FirstLevelFit,
    contrast: Mapping[str, Any] | Any,
    *,
    missing: MissingTerms = "error",
) -> ContrastResult | None:
    """Compute a t or F contrast of one run's fit.

    Parameters
    ----------
    fit : FirstLevelFit
    contrast : mapping or ContrastSpec-like
        See :func:`contrast_weights`.
    missing : {"error", "drop"}
        ``"error"`` raises ContrastError when the contrast names a column absent from this
        run's design; ``"drop"`` drops those terms with a warning, and when nothing is left
        skips the contrast with a warning and returns None (the caller records it).

    Returns
    -------
    ContrastResult or None
        Mapping with keys effect, variance, stat, p, z.
    """
    name = str(_get(contrast, "name", "<unnamed>"))
    weights, dropped = contrast_weights(
        contrast, fit.column_names, missing=missing, source=fit.source
    )
    if dropped and not _warn_dropped(name, dropped, weights.shape[0], fit.source):
        return None
    stat_type = _get(contrast, "stat_type", "t")
    if stat_type == "t":
        effect, variance = _t_effect(fit, weights[0])
        dim = 1
    else:
        effect, variance = _f_effect(fit, weights)
        dim = weights.shape[0]
    from nilearn.glm import Contrast  # here: nilearn.glm takes seconds to import

    con = Contrast(
        effect=effect, variance=variance, dim=dim, dof=fit.df_residuals, stat_type=stat_type
    )
    z = z_score(con)
    return ContrastResult(
        name=name,
        stat_type=stat_type,
        weights=weights,
        column_names=fit.column_names,
        dropped=dropped,
        dof=fit.df_residuals,
        effect=effect,
        variance=variance,
        stat=con.stat_,
        p=con.p_value_,
        z=z,
    )


# nilearn's clip of p-values before they are turned into z (nilearn 0.14.1's
# nilearn.glm._utils.z_score; tests/test_contrasts.py pins the z maps to it)
_P_RANGE = (1.0e-300, 1.0 - 1.0e-16)


def z_score(con) -> np.ndarray:
    """``con.z_score()`` of a nilearn ``Contrast``, the same values with half the work.

    nilearn computes the distribution's survival function and its CDF at every voxel, and
    keeps the CDF's z where the survival function's is negative (the precise tail there).
    Here the CDF is computed at those voxels only, with nilearn's own clip and functions
    (``tests/test_contrasts.py`` pins the maps to ``Contrast.z_score`` exactly). Sets
    ``con.p_value_``, as ``z_score`` does.
    """
    from scipy import stats

    p = con.p_value()
    z = stats.norm.isf(np.clip(p, *_P_RANGE))
    low = z < 0
    dof = np.minimum(con.dof, con.dofmax)
    stat = np.atleast_1d(con.stat_)[low]
    if con.stat_type == "t":
        cdf = stats.t.cdf(stat, dof)
    else:
        cdf = stats.f.cdf(stat, con.dim, dof)
    z[low] = stats.norm.ppf(np.clip(cdf, *_P_RANGE))
    return z


def _warn_dropped(name: str, dropped: tuple[str, ...], n_rows: int, source: str) -> bool:
    """Warn about dropped terms; return whether anything of the contrast is left."""
    where = source or "this run"
    if n_rows == 0:
        warnings.warn(
            f"Contrast '{name}' skipped for {where}: none of its terms is in the design "
            f"(dropped {', '.join(dropped)})",
            UserWarning,
            stacklevel=3,
        )
        return False
    warnings.warn(
        f"Contrast '{name}': dropped {', '.join(dropped)} (not in the design of {where})",
        UserWarning,
        stacklevel=3,
    )
    return True


def _t_effect(fit: FirstLevelFit, vector: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    row = vector[None, :]
    effect = (row @ fit.theta)[0]
    # c' cov c per noise group, then nilearn's sd = sqrt(q * dispersion), variance = sd**2
    per_group = np.array([(row @ (cov @ row.T))[0, 0] for cov in fit.normalized_cov])
    variance = np.sqrt(per_group[fit.labels] * fit.dispersion) ** 2
    return effect, variance


def _f_effect(fit: FirstLevelFit, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    effect = matrix @ fit.theta
    order = np.argsort(fit.labels, kind="stable")
    counts = np.bincount(fit.labels, minlength=len(fit.normalized_cov))
    for cov, voxels in zip(
        fit.normalized_cov, np.split(order, np.cumsum(counts)[:-1]), strict=True
    ):
        if voxels.size:
            invcov = np.linalg.inv(np.atleast_2d(matrix @ cov @ matrix.T))
            effect[:, voxels] = np.real_if_close(spl.sqrtm(invcov)) @ effect[:, voxels]
    return effect, fit.dispersion.copy()
