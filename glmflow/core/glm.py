"""First-level GLM fit: the method of nilearn's ``FirstLevelModel`` / ``run_glm``, vectorised.

Steps (nilearn 0.14.1 ``glm/first_level/first_level.py``, ``glm/regression.py``):

1. ``sample_mask`` keeps rows of Y and X (before scaling: the mean uses kept volumes only).
2. ``signal_scaling=0``: ``Y = 100 * (Y / max(mean_t(Y), 1) - 1)`` (percent signal change),
   computed in Y's dtype (float32) like nilearn.
3. OLS with ``pinv(X)``; for ``ar1`` the lag-1 Yule-Walker coefficient of the OLS residuals
   (nilearn removes the *global* residual mean first), truncated to ``1 / bins`` steps.
4. ``ar1``: per voxel, whiten Y with its coefficient (``w[0] = y[0]``,
   ``w[t] = y[t] - rho * y[t - 1]``) and refit with ``pinv`` of the design whitened the same
   way; voxels sharing a coefficient share that pseudo-inverse, so there is one small SVD per
   group and a matrix product per voxel chunk instead of nilearn's per-voxel Toeplitz work.
5. ``dispersion = sum(wresid**2) / (n - p)``; the t/F dof is ``n - rank(X)``.

Voxels are processed in chunks so float64 temporaries stay small whatever the run size.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import scipy.linalg as spl
from threadpoolctl import threadpool_limits

from glmflow.core.bold import large_empty
from glmflow.errors import ConfoundsError, DesignError, ModelSpecError

__all__ = [
    "FirstLevelFit",
    "fit_glm",
    "load_fit",
    "read_sample_mask",
    "save_fit",
]

NOISE_MODELS = ("ar1", "ols")
# float64 elements per voxel chunk (~8 MB): small enough to stay in cache-friendly sizes and
# keep peak memory flat, large enough for efficient matrix products
_CHUNK_ELEMENTS = 1 << 20


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


def save_fit(fit: FirstLevelFit, path: str | os.PathLike) -> Path:
    """Write ``fit`` to one ``.npz`` (no pickle); residual maps are not included."""
    path = Path(path)
    meta = {
        "column_names": list(fit.column_names),
        "noise_model": fit.noise_model,
        "n_timepoints": fit.n_timepoints,
        "df_residuals": fit.df_residuals,
        "source": fit.source,
    }
    with open(path, "wb") as fh:  # np.savez would append .npz to other suffixes
        np.savez(
            fh,
            theta=fit.theta,
            dispersion=fit.dispersion,
            labels=fit.labels,
            rho=fit.rho,
            normalized_cov=fit.normalized_cov,
            meta=np.array(json.dumps(meta)),
        )
    return path


def load_fit(path: str | os.PathLike) -> FirstLevelFit:
    """Read a fit written by :func:`save_fit`."""
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(str(npz["meta"]))
        return FirstLevelFit(
            theta=npz["theta"],
            dispersion=npz["dispersion"],
            labels=npz["labels"],
            rho=npz["rho"],
            normalized_cov=npz["normalized_cov"],
            df_residuals=float(meta["df_residuals"]),
            column_names=tuple(meta["column_names"]),
            noise_model=meta["noise_model"],
            n_timepoints=int(meta["n_timepoints"]),
            source=meta["source"],
        )


def read_sample_mask(path: str | os.PathLike, n_volumes: int) -> np.ndarray | None:
    """Read sample_mask.json (``{"sample_mask": [kept indices] | null, "n_volumes": N}``)."""
    try:
        content = json.loads(Path(path).read_text())
        kept, declared = content["sample_mask"], content["n_volumes"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfoundsError(
            f"Sample mask file {path} must be JSON with keys 'sample_mask' (list of kept "
            f"volume indices or null) and 'n_volumes' ({err})"
        ) from err
    if declared != n_volumes:
        raise ConfoundsError(
            f"Sample mask file {path} is for {declared} volumes but the BOLD data has "
            f"{n_volumes}; regenerate it from this run's confounds"
        )
    return None if kept is None else np.asarray(kept)


def _check_sample_mask(sample_mask, n_volumes: int) -> np.ndarray:
    mask = np.asarray(sample_mask)
    if mask.dtype == bool:
        if mask.shape != (n_volumes,):
            raise ConfoundsError(
                f"Boolean sample_mask has {mask.size} entries but the run has {n_volumes} "
                "volumes; give one entry per volume"
            )
        mask = np.flatnonzero(mask)
    if mask.ndim != 1 or (mask.size and not np.issubdtype(mask.dtype, np.integer)):
        raise ConfoundsError(
            f"sample_mask must be a list of kept volume indices, got {np.asarray(sample_mask)!r}"
        )
    if mask.size == 0:
        raise ConfoundsError("sample_mask keeps no volume; relax the scrubbing thresholds")
    if mask.min() < 0 or mask.max() >= n_volumes:
        raise ConfoundsError(
            f"sample_mask index {mask.min() if mask.min() < 0 else mask.max()} is outside "
            f"the run's volumes 0..{n_volumes - 1}"
        )
    if np.any(np.diff(mask) <= 0):
        raise ConfoundsError(
            "sample_mask indices must be strictly increasing (each kept volume once, in time "
            f"order), got {mask.tolist()}"
        )
    return mask.astype(np.intp)


def _design_array(design, column_names, n_volumes: int, source: str):
    if isinstance(design, pd.DataFrame):
        names = tuple(str(c) for c in design.columns)
        values = design.to_numpy(dtype=np.float64)
    else:
        values = np.asarray(design, dtype=np.float64)
        names = (
            tuple(column_names)
            if column_names is not None
            else tuple(f"x{i}" for i in range(values.shape[-1]))
        )
    where = f" {source}" if source else ""
    if values.ndim != 2 or values.shape[1] != len(names):
        raise DesignError(f"Design{where} must be 2D with one name per column")
    if values.shape[0] != n_volumes:
        raise DesignError(
            f"Design{where} has {values.shape[0]} rows but the BOLD data has {n_volumes} "
            "volumes; build the design with this run's number of volumes"
        )
    if not np.all(np.isfinite(values)):
        bad = [names[j] for j in np.flatnonzero(~np.isfinite(values).all(axis=0))]
        raise DesignError(
            f"Design{where} has non-finite values in column(s) {', '.join(bad)}; "
            "fill or drop them (e.g. the first row of derivative confounds)"
        )
    if len(set(names)) != len(names):
        raise DesignError(f"Design{where} has duplicate column names: {', '.join(names)}")
    return values, names


def _whiten(x: np.ndarray, rho) -> np.ndarray:
    """AR(1) whitening as nilearn's ARModel.whiten (rho scalar or one per column)."""
    w = np.empty_like(x)
    w[0] = x[0]
    # w[t] = x[t] - (rho * x[t-1]): nilearn's operation order, without temporaries
    np.multiply(x[:-1], rho, out=w[1:])
    np.subtract(x[1:], w[1:], out=w[1:])
    return w


class _Source:
    """Float64 voxel chunks of the (sample-masked, scaled) data; the input is never modified.

    The first pass reads contiguous chunks; with ``keep`` it stores them (in the data's
    float dtype, after masking and scaling) so the second pass re-reads that copy instead of
    masking and scaling again.
    """

    def __init__(self, data: np.ndarray, rows: np.ndarray | None, scale: bool, keep: bool):
        self.data = data
        self.rows = rows
        self.scale = scale
        self.work_dtype = data.dtype if data.dtype.kind == "f" else np.dtype(np.float32)
        self.store = None
        if keep and (scale or rows is not None):
            n_rows = data.shape[0] if rows is None else rows.size
            self.store = large_empty((n_rows, data.shape[1]), self.work_dtype)

    def first(self, columns: slice) -> np.ndarray:
        block = self.data[:, columns] if self.rows is None else self.data[self.rows, columns]
        block = np.array(block, dtype=self.work_dtype, order="C")  # a copy: scaled in place
        if self.scale:
            # nilearn's mean_scaling on the run's (masked) Y, in Y's own dtype
            mean = block.mean(axis=0)
            if (mean == 0).any():
                warnings.warn(
                    "Mean values of 0 observed (voxels with zero mean signal): percent "
                    "signal change scaling divides by 1 there; check the brain mask",
                    UserWarning,
                    stacklevel=4,
                )
            # in place, with the rounding of nilearn's 100 * (Y / mean - 1)
            block /= np.maximum(mean, 1)
            block -= 1
            block *= 100
        if self.store is not None:
            self.store[:, columns] = block
        return block.astype(np.float64)

    def again(self, columns: slice) -> np.ndarray:
        """The chunk ``first`` returned, from the stored copy when there is one."""
        if self.store is None:
            return self.first(columns)
        return self.store[:, columns].astype(np.float64)


def _chunks(n_items: int, size: int):
    for start in range(0, n_items, size):
        yield slice(start, min(start + size, n_items))


def fit_glm(
    data: np.ndarray,
    design: pd.DataFrame | np.ndarray,
    *,
    sample_mask: Sequence[int] | np.ndarray | None = None,
    noise_model: Literal["ar1", "ols"] = "ar1",
    signal_scaling: Literal[0, False] | None = 0,
    bins: int = 100,
    minimize_memory: bool = True,
    column_names: Sequence[str] | None = None,
    source: str = "",
) -> FirstLevelFit:
    """Fit a first-level GLM to masked BOLD data, as nilearn's ``FirstLevelModel`` does.

    Parameters
    ----------
    data : ndarray, shape (n_volumes, n_voxels)
        Masked BOLD (e.g. from :func:`glmflow.core.bold.read_masked_bold`); not modified.
    design : DataFrame or ndarray, shape (n_volumes, n_columns)
        Design matrix for all volumes of the run (rows are dropped with ``sample_mask``).
    sample_mask : sequence of int or bool, optional
        Indices (strictly increasing) or boolean flags of the volumes to keep.
    noise_model : {"ar1", "ols"}
    signal_scaling : 0 or False
        0: percent signal change per voxel (nilearn's default); False/None: raw data.
    bins : int
        AR(1) coefficients are truncated to multiples of ``1 / bins`` (nilearn's default 100).
    minimize_memory : bool
        If False, also return residuals, predicted and r_square (like nilearn).
    column_names : sequence of str, optional
        Names of an ndarray design's columns.
    source : str
        Design file name, used in error messages and kept in the fit.

    Returns
    -------
    FirstLevelFit
    """
    if noise_model not in NOISE_MODELS:
        raise ModelSpecError(
            f"noise_model must be one of {', '.join(NOISE_MODELS)}, got {noise_model!r}"
        )
    if signal_scaling is None or signal_scaling is False:
        scale = False
    elif signal_scaling == 0 and not isinstance(signal_scaling, bool):
        scale = True
    else:
        raise ModelSpecError(
            "signal_scaling must be 0 (percent signal change of each voxel's mean over time) "
            f"or False (no scaling), got {signal_scaling!r}"
        )
    if not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ModelSpecError(f"bins must be a positive integer, got {bins!r}")
    data = np.asarray(data)
    if data.ndim != 2:
        raise DesignError(f"BOLD data must be 2D (volumes, voxels), got shape {data.shape}")
    n_volumes, n_voxels = data.shape
    X, names = _design_array(design, column_names, n_volumes, source)
    rows = None
    if sample_mask is not None:
        rows = _check_sample_mask(sample_mask, n_volumes)
        if rows.size == n_volumes:
            rows = None
        else:
            X = X[rows]
    n, p = X.shape
    if n <= p:
        raise DesignError(
            f"Design {source} has {p} columns but only {n} volumes are kept: no degrees of "
            "freedom left; drop regressors or keep more volumes"
        )
    # nilearn's rank tolerance (OLSModel.initialize) for the dof
    rank = np.linalg.matrix_rank(X, np.abs(X).sum() * np.finfo(np.float64).eps)
    df_residuals = float(n - rank)
    chunk = max(1, _CHUNK_ELEMENTS // n)
    keep = not minimize_memory
    # Chunks are small matrix products: threaded BLAS only adds contention (nodes are
    # scheduled as one process each), and one thread keeps results machine-independent.
    with threadpool_limits(limits=1, user_api="blas"):
        if noise_model == "ols":
            reader = _Source(data, rows, scale, keep=False)
            zeros = np.zeros(n_voxels, np.intp)
            fit = _fit_groups(reader, X, zeros, np.zeros(1), chunk, keep, whiten=False)
        else:
            reader = _Source(data, rows, scale, keep=True)
            rho = _ar1_coefficients(reader, X, n_voxels, chunk)
            quantised = np.trunc(rho * bins) / bins  # nilearn: (rho * bins).astype(int) / bins
            values, labels = np.unique(quantised, return_inverse=True)
            fit = _fit_groups(reader, X, labels, values, chunk, keep, whiten=True)
    theta, dispersion, labels, values, covs, extras = fit
    return FirstLevelFit(
        theta=theta,
        dispersion=dispersion,
        labels=labels.astype(np.int32),
        rho=values,
        normalized_cov=covs,
        df_residuals=df_residuals,
        column_names=names,
        noise_model=noise_model,
        n_timepoints=n,
        source=str(source),
        **extras,
    )


def _ar1_coefficients(source: _Source, X: np.ndarray, n_voxels: int, chunk: int) -> np.ndarray:
    """Lag-1 Yule-Walker coefficient of each voxel's OLS residuals (nilearn's _yule_walker).

    nilearn centres the residuals on their mean over *all* voxels and times; that mean is
    known only after the pass, so the centred sums are recovered from raw sums.
    """
    n = X.shape[0]
    pinv = spl.pinv(X)
    sum_all = np.empty(n_voxels)
    s00 = np.empty(n_voxels)  # sum r_t^2
    s01 = np.empty(n_voxels)  # sum r_t r_{t-1}
    ends = np.empty(n_voxels)  # r_0 + r_{n-1}
    for cols in _chunks(n_voxels, chunk):
        resid = source.first(cols)
        resid -= X @ (pinv @ resid)
        sum_all[cols] = resid.sum(axis=0)
        s00[cols] = np.einsum("tv,tv->v", resid, resid)
        s01[cols] = np.einsum("tv,tv->v", resid[1:], resid[:-1])
        ends[cols] = resid[0] + resid[-1]
    m = sum_all.sum() / (n * n_voxels)
    r0 = s00 - 2 * m * sum_all + n * m * m
    r1 = s01 - m * (2 * sum_all - ends) + (n - 1) * m * m
    # nilearn divides lag k by (n - k) * n before solving the 1x1 Toeplitz system
    r0 /= n * n
    r1 /= (n - 1) * n
    with np.errstate(divide="ignore", invalid="ignore"):
        # residuals exactly 0 after centring (nilearn's solve fails): no autocorrelation
        rho = np.where(r0 > 0, r1 / r0, 0.0)
    return rho


def _fit_groups(source: _Source, X, labels, values, chunk, keep, *, whiten):
    """(Whitened) least squares per noise group, voxels sorted by group and chunked.

    Chunks of consecutive voxels (re-read from the first pass's stored copy for AR(1)) are
    sorted by group in cache, so each group is one matrix product per chunk.
    """
    n, p = X.shape
    n_voxels = labels.size
    n_groups = values.size
    designs, pinvs, covs = [], [], np.empty((n_groups, p, p))
    for g, rho in enumerate(values):
        wx = _whiten(X, rho) if whiten else X
        pinv = spl.pinv(wx)
        designs.append(wx)
        pinvs.append(pinv)
        covs[g] = pinv @ pinv.T
    theta = np.empty((p, n_voxels))
    dispersion = np.empty(n_voxels)
    extras = {}
    if keep:
        extras = {
            "residuals": large_empty((n, n_voxels), np.float32),
            "predicted": large_empty((n, n_voxels), np.float32),
            "r_square": np.empty(n_voxels),
        }
    for part in _chunks(n_voxels, chunk):
        y = source.again(part)
        labs = labels[part]
        if n_groups > 1:
            # sort the chunk's voxels by group: each group is then one contiguous block
            perm = np.argsort(labs, kind="stable")
            y, labs = y[:, perm], labs[perm]
            vox = part.start + perm
        else:
            vox = np.arange(part.start, part.stop)
        wy = _whiten(y, values[labs]) if whiten else y
        bounds = np.flatnonzero(np.diff(labs)) + 1
        for start, stop in zip(np.r_[0, bounds], np.r_[bounds, labs.size], strict=True):
            g = labs[start]
            seg = slice(start, stop)
            beta = pinvs[g] @ wy[:, seg]
            fitted = designs[g] @ beta
            wresid = wy[:, seg] - fitted
            theta[:, vox[seg]] = beta
            dispersion[vox[seg]] = np.einsum("tv,tv->v", wresid, wresid) / (n - p)
            if keep:
                extras["predicted"][:, vox[seg]] = fitted
                extras["residuals"][:, vox[seg]] = y[:, seg] - fitted
                extras["r_square"][vox[seg]] = np.var(fitted, axis=0) / np.var(wy[:, seg], axis=0)
    return theta, dispersion, labels, values, covs, extras
