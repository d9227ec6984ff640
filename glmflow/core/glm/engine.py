"""The fit itself: percent-signal-change scaling, OLS, AR(1) coefficients, whitened refits."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import scipy.linalg as spl
from threadpoolctl import threadpool_limits

from glmflow.core.bold import large_empty
from glmflow.core.glm.inputs import check_options, design_array, kept_rows, residual_dof
from glmflow.core.glm.results import FirstLevelFit
from glmflow.core.model import NoiseModel
from glmflow.errors import DesignError

# float64 elements per voxel chunk (2 MB): a chunk and its temporaries stay in the caches
# through the passes made over it. Measured on 2 cores (AMD EPYC, 1 MB L2 each): the AR(1)
# fit of a 91k CIFTI run (240 volumes) takes 0.26 s at 2**18 against 0.43 s at 2**20, and
# 0.67 s against 0.73 s for 230,000 voxels x 200 volumes; 2**17 is no faster than 2**18
_CHUNK_ELEMENTS = 1 << 18


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

    Each pass reads the chunk again (a page-cache or in-memory read, then the scaling in
    cache): measured faster than storing the scaled data for the second pass, and it keeps
    no copy of the run in memory; the voxels' means are kept from the first pass. Scaling is
    done in the data's float dtype, as nilearn scales Y in its own dtype (float32 for a
    volume's masked data, float64 for surfaces).
    """

    def __init__(self, data: np.ndarray, rows: np.ndarray | None, scale: bool):
        self.data = data
        self.rows = rows
        self.scale = scale
        self.work_dtype = data.dtype if data.dtype.kind == "f" else np.dtype(np.float32)
        self.means = np.empty(data.shape[1], self.work_dtype) if scale else None

    def _block(self, columns: slice | np.ndarray) -> np.ndarray:
        """A copy of the columns (a slice, or indices: gathered in one copy), to scale."""
        if isinstance(columns, slice):
            block = self.data[:, columns] if self.rows is None else self.data[self.rows, columns]
            return np.array(block, dtype=self.work_dtype, order="C")
        rows = slice(None) if self.rows is None else self.rows[:, None]
        # fancy indexing copies: the input is not scaled in place
        return np.asarray(self.data[rows, columns], dtype=self.work_dtype, order="C")

    def first(self, columns: slice) -> np.ndarray:
        """The columns, scaled (their means kept for :meth:`again`)."""
        block = self._block(columns)
        if self.scale:
            # nilearn's mean_scaling on the run's (masked) Y, in Y's own dtype
            mean = block.mean(axis=0)
            self.means[columns] = mean
            if (mean == 0).any():
                warnings.warn(
                    "Mean values of 0 observed (voxels with zero mean signal): percent "
                    "signal change scaling divides by 1 there; check the brain mask",
                    UserWarning,
                    stacklevel=4,
                )
            _scale(block, mean)
        return block.astype(np.float64, copy=False)

    def again(self, columns: slice | np.ndarray) -> np.ndarray:
        """Columns ``first`` returned (any of them, in any order), read and scaled again:
        the same values."""
        block = self._block(columns)
        if self.scale:
            _scale(block, self.means[columns])
        return block.astype(np.float64, copy=False)


def _scale(block: np.ndarray, mean: np.ndarray) -> None:
    """In place, with the rounding of nilearn's ``100 * (Y / mean - 1)``."""
    block /= np.maximum(mean, 1)
    block -= 1
    block *= 100


def _chunks(n_items: int, size: int):
    for start in range(0, n_items, size):
        yield slice(start, min(start + size, n_items))


def fit_glm(
    data: np.ndarray,
    design: pd.DataFrame | np.ndarray,
    *,
    sample_mask: Sequence[int] | np.ndarray | None = None,
    noise_model: NoiseModel = "ar1",
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
    noise_model, bins : {"ar1", "ols"}, int
        AR(1) coefficients are truncated to multiples of ``1 / bins`` (nilearn's default 100).
    signal_scaling : 0 or False
        0: percent signal change per voxel (nilearn's default); False/None: raw data.
    minimize_memory : bool
        If False, the FirstLevelFit also holds residuals, predicted and r_square.
    column_names, source : sequence of str, str
        Names of an ndarray design's columns; the design file (messages, kept in the fit).
    """
    scale = check_options(noise_model, signal_scaling, bins)
    data = np.asarray(data)
    if data.ndim != 2:
        raise DesignError(f"BOLD data must be 2D (volumes, voxels), got shape {data.shape}")
    X, names = design_array(design, column_names, data.shape[0], source)
    rows = kept_rows(sample_mask, data.shape[0])
    if rows is not None:
        X = X[rows]
    df_residuals = residual_dof(X, source)
    keep = not minimize_memory
    # Chunks are small matrix products: threaded BLAS only adds contention (nodes are
    # scheduled as one process each), and one thread keeps results machine-independent.
    with threadpool_limits(limits=1, user_api="blas"):
        reader = _Source(data, rows, scale)
        fit = _fit(reader, X, noise_model=noise_model, bins=bins, keep=keep)
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
        n_timepoints=X.shape[0],
        source=str(source),
        **extras,
    )


def _fit(reader: _Source, X, *, noise_model: str, bins: int, keep: bool):
    n_voxels = reader.data.shape[1]
    chunk = max(1, _CHUNK_ELEMENTS // X.shape[0])
    if noise_model == "ols":
        zeros = np.zeros(n_voxels, np.intp)
        return _fit_groups(reader.first, X, zeros, np.zeros(1), chunk, keep, whiten=False)
    rho = _ar1_coefficients(reader, X, n_voxels, chunk)
    quantised = np.trunc(rho * bins) / bins  # nilearn: (rho * bins).astype(int) / bins
    values, labels = np.unique(quantised, return_inverse=True)
    return _fit_groups(reader.again, X, labels, values, chunk, keep, whiten=True)


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


def _group_designs(X: np.ndarray, values: np.ndarray, whiten: bool):
    """Each noise group's (whitened) design, its pseudo-inverse and normalized covariance."""
    p = X.shape[1]
    designs, pinvs, covs = [], [], np.empty((values.size, p, p))
    for g, rho in enumerate(values):
        wx = _whiten(X, rho) if whiten else X
        pinv = spl.pinv(wx)
        designs.append(wx)
        pinvs.append(pinv)
        covs[g] = pinv @ pinv.T
    return designs, pinvs, covs


def _sorted_by_group(read, labels: np.ndarray, part: slice, n_groups: int):
    """The chunk's voxels read sorted by group (each group one contiguous block), their
    groups and ids: the sort is the read's own copy."""
    labs = labels[part]
    if n_groups == 1:
        return read(part), labs, np.arange(part.start, part.stop)
    perm = np.argsort(labs, kind="stable")
    return read(part.start + perm), labs[perm], part.start + perm


def _fit_groups(read, X, labels, values, chunk, keep, *, whiten):
    """(Whitened) least squares per noise group, voxels sorted by group and chunked.

    Chunks of consecutive voxels (``read``: a :class:`_Source` pass) are sorted by group in
    cache, so each group is one matrix product per chunk. Without the residual maps the
    data are not whitened: a group's estimator ``pinv(W X) @ W`` is applied to the chunk
    as one matrix, and the whitened residuals' sum of squares ``|W r|^2`` is expanded in
    the unwhitened residuals ``r`` (their lag-0 and lag-1 sums): the same quantities to
    rounding (3e-15 relative on a 91k CIFTI run), with two fewer passes over the chunk.
    """
    n, p = X.shape
    n_voxels = labels.size
    designs, pinvs, covs = _group_designs(X, values, whiten)
    theta = np.empty((p, n_voxels))
    dispersion = np.empty(n_voxels)
    extras = {}
    if keep:
        extras = {
            "residuals": large_empty((n, n_voxels), np.float32),
            "predicted": large_empty((n, n_voxels), np.float32),
            "r_square": np.empty(n_voxels),
        }
    else:
        estimators = [_estimator(pinv, rho) if whiten else pinv
                      for pinv, rho in zip(pinvs, values, strict=True)]  # fmt: skip
    for part in _chunks(n_voxels, chunk):
        y, labs, vox = _sorted_by_group(read, labels, part, values.size)
        segments = _segments(labs)
        if keep:
            _fit_chunk_kept(y, labs, vox, segments, designs, pinvs, values, whiten,
                            theta, dispersion, extras)  # fmt: skip
            continue
        beta = np.empty((p, y.shape[1]))
        for seg in segments:
            beta[:, seg] = estimators[labs[seg.start]] @ y[:, seg]
        y -= X @ beta  # the residuals, in place (y is this pass's own copy)
        theta[:, vox] = beta
        dispersion[vox] = _residual_ssq(y, values[labs] if whiten else None) / (n - p)
    return theta, dispersion, labels, values, covs, extras


def _estimator(pinv: np.ndarray, rho: float) -> np.ndarray:
    """``pinv(W X) @ W`` for the AR(1) whitening ``W`` (row t: x[t] - rho * x[t-1])."""
    est = pinv.copy()
    est[:, :-1] -= rho * pinv[:, 1:]
    return est


def _residual_ssq(r: np.ndarray, rho: np.ndarray | None) -> np.ndarray:
    """Each column's sum of squares of ``r`` whitened with its ``rho`` (None: not whitened)."""
    s00 = np.einsum("tv,tv->v", r, r)
    if rho is None:
        return s00
    s01 = np.einsum("tv,tv->v", r[1:], r[:-1])
    # |W r|^2 = r_0^2 + sum_{t>0} (r_t - rho r_{t-1})^2; the expansion's rounding could take
    # an (almost) perfectly fitted voxel below 0, which the sum of squares never is
    return np.maximum(s00 - 2 * rho * s01 + rho * rho * (s00 - r[-1] * r[-1]), 0.0)


def _segments(labs: np.ndarray) -> list[slice]:
    """The slices of equal consecutive labels."""
    bounds = np.flatnonzero(np.diff(labs)) + 1
    return [slice(a, b) for a, b in zip(np.r_[0, bounds], np.r_[bounds, labs.size], strict=True)]


def _fit_chunk_kept(y, labs, vox, segments, designs, pinvs, values, whiten, theta, dispersion,
                    extras):  # fmt: skip
    """One chunk's fit with the residual maps, as nilearn defines them (whitened Y)."""
    n, p = designs[0].shape
    wy = _whiten(y, values[labs]) if whiten else y
    for seg in segments:
        g = labs[seg.start]
        beta = pinvs[g] @ wy[:, seg]
        fitted = designs[g] @ beta
        wresid = wy[:, seg] - fitted
        theta[:, vox[seg]] = beta
        dispersion[vox[seg]] = np.einsum("tv,tv->v", wresid, wresid) / (n - p)
        extras["predicted"][:, vox[seg]] = fitted
        extras["residuals"][:, vox[seg]] = y[:, seg] - fitted
        extras["r_square"][vox[seg]] = np.var(fitted, axis=0) / np.var(wy[:, seg], axis=0)
