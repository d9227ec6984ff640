"""What a report says about one run: regressor collinearity, censored volumes, motion.

Read from the written design (``_design.tsv`` and its sidecar), the run maps' sidecars
(contrast weights) and fMRIPrep's confounds table; nothing is refitted.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from glmflow.core.confounds import select_confounds
from glmflow.core.design.files import read_design
from glmflow.core.model import ConfoundsSpec

#: A regressor whose variance inflation factor exceeds this is called collinear. 10 is the
#: usual rule of thumb (a VIF of 10 means 90 % of the regressor's variance is explained by
#: the other regressors: its standard error is inflated more than threefold).
VIF_LIMIT = 10.0
#: Design roles left out of the collinearity check: the constant has no variance, and
#: one-hot spike regressors and drifts are nuisance terms nobody interprets.
UNCHECKED_ROLES = ("constant", "drift")
_SPIKES = ("non_steady_state_outlier", "motion_outlier")


@dataclass
class RunSummary:
    """The numbers a run's section shows."""

    design: pd.DataFrame
    correlation: pd.DataFrame
    vif: pd.Series
    censored: np.ndarray  # bool per volume
    fd: np.ndarray | None
    warnings: list[str] = field(default_factory=list)


def variance_inflation(design: pd.DataFrame) -> pd.Series:
    """VIF of each column: the diagonal of the inverse correlation matrix (inf if singular)."""
    values = design.to_numpy(dtype=float)
    keep = values.std(axis=0) > 0
    vif = pd.Series(np.inf, index=design.columns, dtype=float)
    if keep.sum() == 0:
        return vif
    corr = np.corrcoef(values[:, keep], rowvar=False).reshape(keep.sum(), keep.sum())
    try:
        inverse = np.linalg.inv(corr)
        vif[design.columns[keep]] = np.diag(inverse)
    except np.linalg.LinAlgError:
        pass  # a singular design: every column stays at inf
    return vif


def spike_volumes(design: pd.DataFrame) -> np.ndarray:
    """Volumes a one-hot spike regressor (non-steady-state, motion outlier) takes out."""
    censored = np.zeros(len(design), dtype=bool)
    for column in design.columns:
        if str(column).startswith(_SPIKES):
            values = design[column].to_numpy(dtype=float)
            censored[int(np.argmax(values))] = True
    return censored


def censored_volumes(
    design: pd.DataFrame, confounds_file: str | None, spec: ConfoundsSpec | None
) -> tuple[np.ndarray, list[str]]:
    """Censored volumes (spike regressors and the scrub sample mask) and the warnings
    :func:`~glmflow.core.confounds.select_confounds` gave (missing optional confounds).

    ``spec`` None: the model has no confounds rule to apply again (a BIDS Stats Model names
    its confound columns in ``X``; its spikes are in the design)."""
    censored = spike_volumes(design)
    if confounds_file is None or spec is None:
        return censored, []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, sample_mask = select_confounds(confounds_file, spec)
    if sample_mask is not None:
        scrubbed = np.ones(len(design), dtype=bool)
        scrubbed[np.asarray(sample_mask, dtype=int)] = False
        censored |= scrubbed
    # the file by its name: a page does not depend on where the dataset is
    name = Path(confounds_file).name
    return censored, [str(w.message).replace(str(confounds_file), name) for w in caught]


def framewise_displacement(confounds_file: str | None) -> np.ndarray | None:
    """fMRIPrep's ``framewise_displacement`` column (first volume 0), or None if absent."""
    if confounds_file is None:
        return None
    table = pd.read_csv(confounds_file, sep="\t", na_values="n/a")
    if "framewise_displacement" not in table:
        return None
    return table["framewise_displacement"].fillna(0.0).to_numpy(dtype=float)


def unwritten_roles(design: pd.DataFrame) -> dict[str, str]:
    """Roles of a design written without a sidecar (the BSM path): a column with no variance
    is a constant, nilearn's ``drift_<k>`` columns are the drift."""
    roles = {}
    for column in design.columns:
        if design[column].nunique() == 1:
            roles[column] = "constant"
        elif re.fullmatch(r"drift_\d+", str(column)):
            roles[column] = "drift"
    return roles


def summarize_run(
    design_tsv: str, confounds_file: str | None, spec: ConfoundsSpec | None
) -> RunSummary:
    """The run's design, regressor correlations, VIFs, censored volumes and FD."""
    sidecar = Path(design_tsv).with_suffix(".json")
    design, roles = read_design(design_tsv, sidecar if sidecar.is_file() else None)
    roles = roles or unwritten_roles(design)
    checked = [
        c for c in design.columns
        if roles.get(c) not in UNCHECKED_ROLES and not str(c).startswith(_SPIKES)
    ]  # fmt: skip
    vif = variance_inflation(design[checked])
    correlation = design[checked].corr().fillna(0.0)
    censored, notes = censored_volumes(design, confounds_file, spec)
    fd = framewise_displacement(confounds_file)
    collinear = vif[vif > VIF_LIMIT]
    if len(collinear):
        listed = ", ".join(f"{name} ({value:.3g})" for name, value in collinear.items())
        notes.append(f"Collinear regressors (VIF > {VIF_LIMIT:g}): {listed}")
    if censored.any():
        notes.append(
            f"{int(censored.sum())} of {len(censored)} volumes censored "
            f"({100 * censored.mean():.1f} %)"
        )
    return RunSummary(design, correlation, vif, censored, fd, notes)


def contrast_fields(sidecar: dict) -> tuple[str, list[dict], list[str]]:
    """A run map sidecar's contrast: its name, weights (one dict per row) and dropped
    conditions; glmflow's sidecars nest them in ``Contrast``, the BSM path's are top-level."""
    contrast = sidecar["Contrast"]
    if not isinstance(contrast, dict):
        contrast = {**sidecar, "Name": contrast}
    return contrast["Name"], contrast.get("Weights", []), contrast.get("DroppedConditions", [])


def contrast_matrix(sidecars: list[str], columns: list[str]) -> pd.DataFrame:
    """Contrast weights (rows: contrasts, one per F row) over the design ``columns``."""
    rows, names = [], []
    for path in sidecars:
        name, weights, _ = contrast_fields(json.loads(Path(path).read_text()))
        for k, row in enumerate(weights):
            rows.append([float(row.get(c, 0.0)) for c in columns])
            names.append(name + (f" [{k + 1}]" if len(weights) > 1 else ""))
    return pd.DataFrame(rows, index=names, columns=columns)
