"""Connectivity matrices: nilearn's ``ConnectivityMeasure`` kinds and sparse inverse covariance.

``correlation``, ``partial correlation``, ``covariance`` and ``precision`` are
``nilearn.connectome.ConnectivityMeasure`` (its default Ledoit-Wolf covariance estimator)
on one run's cleaned time series. ``tangent`` is defined relative to a group's mean
covariance, so it is fitted across subjects (:func:`tangent_matrices`, the group level).
``sparse inverse covariance`` is scikit-learn's ``GraphicalLassoCV`` precision (as
glm-express's ``connectome_covariance``). Fisher z (``arctanh``) applies to the two
correlation measures; their diagonal (z infinite) is written as n/a.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from glmflow.core.rest.spec import CORRELATIONS
from glmflow.errors import DatasetError

#: Measure name in the model -> ``meas-`` label of the outputs.
MEASURE_LABELS = {
    "correlation": "correlation",
    "partial correlation": "partialCorrelation",
    "tangent": "tangent",
    "covariance": "covariance",
    "precision": "precision",
    "sparse inverse covariance": "sparseInverseCovariance",
}
#: Measures computed per run (tangent needs a group: :func:`tangent_matrices`).
RUN_MEASURES = tuple(m for m in MEASURE_LABELS if m != "tangent")


def connectivity_matrix(series: np.ndarray, measure: str, *, where: str = "the run") -> np.ndarray:
    """One (n_regions, n_regions) matrix of ``measure`` from (n_volumes, n_regions) series."""
    if series.shape[0] < 2:
        raise DatasetError(
            f"{where} has {series.shape[0]} volume(s) left; a matrix needs 2 or more"
        )
    if measure == "sparse inverse covariance":
        from sklearn.covariance import GraphicalLassoCV

        return GraphicalLassoCV().fit(series).precision_
    if measure not in RUN_MEASURES:
        raise ValueError(f"'measure' must be one of {', '.join(RUN_MEASURES)}. Got {measure!r}")
    from nilearn.connectome import ConnectivityMeasure

    return ConnectivityMeasure(kind=measure).fit_transform([series])[0]


def tangent_matrices(series: Sequence[np.ndarray]) -> np.ndarray:
    """Tangent-space matrices of several subjects' series, around their geometric mean."""
    from nilearn.connectome import ConnectivityMeasure

    if len(series) < 2:
        raise DatasetError(
            f"The tangent measure needs the series of 2 or more subjects; got {len(series)}"
        )
    return ConnectivityMeasure(kind="tangent").fit_transform(list(series))


#: |r| is clipped to 1 - this before ``arctanh``: r = +-1 (two identical series) gives
#: |z| = 8.07, not an infinity that no group model can fit.
FISHER_CLIP = 1e-7


def fisher_z(values: np.ndarray, *, square: bool = True) -> np.ndarray:
    """``arctanh`` of correlations, clipped by :data:`FISHER_CLIP`; a square matrix's
    diagonal NaN (written n/a). Seed maps (``square=False``) are clipped the same way."""
    z = np.arctanh(np.clip(values, -1.0 + FISHER_CLIP, 1.0 - FISHER_CLIP))
    if square:
        np.fill_diagonal(z, np.nan)
    return z


def transform(matrix: np.ndarray, measure: str, apply_fisher_z: bool) -> np.ndarray:
    """The matrix as written: Fisher z for the correlation measures when asked."""
    if apply_fisher_z and measure in CORRELATIONS:
        return fisher_z(matrix)
    return matrix


def combine_matrices(matrices: Sequence[np.ndarray]) -> np.ndarray:
    """A subject's matrix from its runs': the mean (of the Fisher z values when used)."""
    return np.mean(np.stack(list(matrices)), axis=0)


def seed_to_voxel(seeds: np.ndarray, voxels: np.ndarray) -> np.ndarray:
    """Pearson correlation of each seed series with each voxel series, (n_seeds, n_voxels).

    Both are centred and scaled here, so any standardisation upstream gives the same map.
    """

    def unit(x: np.ndarray) -> np.ndarray:
        x = x - x.mean(axis=0)
        norm = np.sqrt((x**2).sum(axis=0))
        return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)

    return unit(seeds.astype(np.float64)).T @ unit(voxels.astype(np.float64))
