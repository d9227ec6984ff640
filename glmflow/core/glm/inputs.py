"""The fit's inputs checked against the data: design array, sample mask, options."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import get_args

import numpy as np
import pandas as pd

from glmflow.core.model import GlmSpec, NoiseModel
from glmflow.errors import ConfoundsError, DesignError, ModelSpecError

NOISE_MODELS: tuple[str, ...] = get_args(NoiseModel)


def check_options(noise_model: str, signal_scaling, bins: int) -> bool:
    """Refuse bad options with the spec's rule; return whether to scale to percent signal change.

    ``noise_model`` and ``signal_scaling`` are checked by :class:`GlmSpec` (their one home);
    ``bins`` is an engine knob the spec does not expose.
    """
    spec = GlmSpec(noise_model=noise_model, signal_scaling=signal_scaling)
    if not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ModelSpecError(f"bins must be a positive integer, got {bins!r}")
    return spec.signal_scaling == 0


def kept_rows(sample_mask, n_volumes: int) -> np.ndarray | None:
    """Indices of the volumes a sample mask keeps; None when it keeps them all."""
    if sample_mask is None:
        return None
    rows = _check_sample_mask(sample_mask, n_volumes)
    return None if rows.size == n_volumes else rows


def residual_dof(X: np.ndarray, source: str) -> float:
    """``n - rank(X)`` with nilearn's rank tolerance (OLSModel.initialize)."""
    n, p = X.shape
    if n <= p:
        raise DesignError(
            f"Design {source} has {p} columns but only {n} volumes are kept: no degrees of "
            "freedom left; drop regressors or keep more volumes"
        )
    rank = np.linalg.matrix_rank(X, np.abs(X).sum() * np.finfo(np.float64).eps)
    return float(n - rank)


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


def design_array(design, column_names, n_volumes: int, source: str):
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
