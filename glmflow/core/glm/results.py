"""``FirstLevelFit``: what contrasts need from one run's fit, and its ``.npz`` file."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class FirstLevelFit:
    """Everything contrasts need from one run's fit (nilearn's per-label RegressionResults).

    Attributes
    ----------
    theta : ndarray, shape (n_columns, n_voxels)
        Parameter estimates.
    dispersion : ndarray, shape (n_voxels,)
        Residual variance ``sum(wresid**2) / (n - n_columns)``.
    labels : ndarray of int, shape (n_voxels,)
        Index of each voxel's noise group in ``rho`` / ``normalized_cov``.
    rho : ndarray, shape (n_groups,)
        AR(1) coefficient of each group (0 for ``ols``).
    normalized_cov : ndarray, shape (n_groups, n_columns, n_columns)
        ``pinv(wX) @ pinv(wX).T`` of each group's whitened design.
    df_residuals : float
        ``n_timepoints - rank(X)``, the dof of t and F statistics.
    column_names : tuple of str
    noise_model : {"ar1", "ols"}
    n_timepoints : int
        Volumes used (after the sample mask).
    source : str
        The design file (for messages).
    residuals, predicted : ndarray (n_timepoints, n_voxels) float32, optional
    r_square : ndarray (n_voxels,), optional
        As nilearn's ``FirstLevelModel(minimize_memory=False)`` defines them: ``predicted`` is
        the whitened design times theta, ``residuals = Y - predicted`` (scaled Y),
        ``r_square = var(predicted) / var(whitened Y)``.
    """

    theta: np.ndarray
    dispersion: np.ndarray
    labels: np.ndarray
    rho: np.ndarray
    normalized_cov: np.ndarray
    df_residuals: float
    column_names: tuple[str, ...]
    noise_model: str
    n_timepoints: int
    source: str = ""
    residuals: np.ndarray | None = field(default=None, repr=False)
    predicted: np.ndarray | None = field(default=None, repr=False)
    r_square: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_voxels(self) -> int:
        return self.theta.shape[1]


# What a fit file holds: these arrays, and the other fields (but the optional maps) as JSON.
_ARRAYS = ("theta", "dispersion", "labels", "rho", "normalized_cov")
_META = ("column_names", "noise_model", "n_timepoints", "df_residuals", "source")


def save_fit(fit: FirstLevelFit, path: str | os.PathLike) -> Path:
    """Write ``fit`` to one ``.npz`` (no pickle); residual maps are not included."""
    path = Path(path)
    meta = {key: getattr(fit, key) for key in _META}
    meta["column_names"] = list(fit.column_names)
    with open(path, "wb") as fh:  # np.savez would append .npz to other suffixes
        arrays = {key: getattr(fit, key) for key in _ARRAYS}
        np.savez(fh, **arrays, meta=np.array(json.dumps(meta)))
    return path


def load_fit(path: str | os.PathLike) -> FirstLevelFit:
    """Read a fit written by :func:`save_fit`."""
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(str(npz["meta"]))
        arrays = {key: npz[key] for key in _ARRAYS}
    return FirstLevelFit(
        **arrays,
        df_residuals=float(meta["df_residuals"]),
        column_names=tuple(meta["column_names"]),
        noise_model=meta["noise_model"],
        n_timepoints=int(meta["n_timepoints"]),
        source=meta["source"],
    )
