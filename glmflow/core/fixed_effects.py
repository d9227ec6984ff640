"""Fixed effects across runs on masked arrays (nilearn's ``compute_fixed_effects``).

Precision weighted (default): ``variance = 1 / sum(1 / v_i)``,
``effect = variance * sum(e_i / v_i)``; unweighted: ``effect = mean(e_i)``,
``variance = mean(v_i) / n_runs`` (what ``FirstLevelModel`` does with several runs).
Variances are floored at 1e-16 and the dof is the sum of the runs' dofs, as in nilearn.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from glmflow.errors import ContrastError

__all__ = ["DEFAULT_DOF", "compute_fixed_effects"]

# nilearn's assumption when no dof is given
DEFAULT_DOF = 100.0
_TINY = 1.0e-16


def compute_fixed_effects(
    effects: Sequence[np.ndarray] | np.ndarray,
    variances: Sequence[np.ndarray] | np.ndarray,
    *,
    dofs: Sequence[float] | None = None,
    precision_weighted: bool = True,
) -> dict[str, np.ndarray | float]:
    """Combine per-run contrast estimates.

    Parameters
    ----------
    effects : sequence of ndarray, each (n_voxels,) or (n_rows, n_voxels) for F contrasts
    variances : sequence of ndarray, each (n_voxels,)
    dofs : sequence of float, optional
        Residual dof of each run; nilearn's 100 per run when omitted.
    precision_weighted : bool

    Returns
    -------
    dict
        effect, variance, stat, z, p (ndarrays) and dof (float).
    """
    effects = [np.asarray(e, dtype=np.float64) for e in effects]
    variances = [np.asarray(v, dtype=np.float64) for v in variances]
    n_runs = len(effects)
    if n_runs == 0:
        raise ContrastError("Fixed effects need at least one run; got no effect map")
    if len(variances) != n_runs:
        raise ContrastError(
            f"Fixed effects got {n_runs} effect maps but {len(variances)} variance maps; "
            "give one variance map per effect map"
        )
    if dofs is None:
        dofs = [DEFAULT_DOF] * n_runs
    if len(dofs) != n_runs:
        raise ContrastError(
            f"Fixed effects got {len(dofs)} dofs for {n_runs} runs; give one dof per run"
        )
    shapes = {e.shape for e in effects}
    if len(shapes) != 1 or {v.shape for v in variances} != {effects[0].shape[-1:]}:
        raise ContrastError(
            "Fixed effects need maps of the same contrast on the same mask: effect shapes "
            f"{sorted(shapes)}, variance shapes {sorted({v.shape for v in variances})}"
        )
    effect = np.stack(effects)
    variance = np.maximum(np.stack(variances), _TINY)
    dim = effect.shape[1] if effect.ndim == 3 else 1
    stat_type = "F" if dim > 1 else "t"
    if stat_type == "F":
        warnings.warn(
            "Running approximate fixed effects on F statistics (as nilearn does).",
            UserWarning,
            stacklevel=2,
        )
    if precision_weighted:
        weights = 1.0 / variance
        fixed_variance = 1.0 / np.sum(weights, 0)
        per_row = weights[:, None, :] if stat_type == "F" else weights
        fixed_effect = np.sum(effect * per_row, 0) * fixed_variance
    else:
        fixed_variance = np.mean(variance, 0) / n_runs
        fixed_effect = np.mean(effect, 0)
    dof = float(np.sum(dofs))
    from nilearn.glm import Contrast  # here: nilearn.glm takes seconds to import

    con = Contrast(
        effect=fixed_effect, variance=fixed_variance, dim=dim, dof=dof, stat_type=stat_type
    )
    z = con.z_score()
    return {
        "effect": fixed_effect,
        "variance": fixed_variance,
        "stat": con.stat_,
        "z": z,
        "p": con.p_value_,
        "dof": dof,
    }
