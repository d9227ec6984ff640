"""The checks of a design that depend on the data: events, confounds, names, timing, rank.

Each raises one line naming the file, the column or trial type, the value and the fix. The
options themselves (HRF, drift, FIR delays, ...) were checked when the ``DesignSpec`` was made.
"""

from __future__ import annotations

import numbers
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from glmflow.errors import ConfoundsError, DesignError, EventsError

EVENT_ROLES = ("condition", "modulator", "block")
ROLES = (*EVENT_ROLES, "derivative", "fir", "confound", "drift", "constant")
INDEX_NAME = "frame_times"

# A regressor whose largest absolute value is below this is "all zero": nilearn's
# convolution leaves ~1e-15 round-off where no event falls, while the smallest genuine
# regressor (a zero-duration event, oversampling 50) peaks near 1e-2.
_ZERO_TOL = 1e-10
# Singular values of the unit-norm-column design below this fraction of the largest mean
# linearly dependent columns (nilearn silently regularises at 1e-15; we refuse earlier).
_RANK_RTOL = 1e-10
# Weight of a column in a null-space vector above which it is named as involved.
_NULL_WEIGHT = 1e-3


def in_source(source: str | Path) -> str:
    """The ' in <source>' of a message, or '' without a source."""
    return f" in {source}" if str(source) else ""


def is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def read_tsv(path: str | Path) -> pd.DataFrame:
    # keep_default_na=False: a trial type spelled "NA" or "null" is a name, not missing.
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=["n/a"], dtype=str)


def read_confounds(path: str | Path) -> pd.DataFrame:
    # An empty confounds file stands for "no confounds selected".
    if not Path(path).read_text().strip():
        return pd.DataFrame()
    return read_tsv(path)


def _show(value: object) -> str:
    return "n/a" if pd.isna(value) else repr(str(value))


def _numeric(table: pd.DataFrame, column: str, *, kind: str, where: str, fix: str) -> np.ndarray:
    """The column as finite floats, or a one-line error naming the first bad row."""
    values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        error = EventsError if kind == "Events" else ConfoundsError
        raise error(
            f"{kind} column '{column}'{where} has non-numeric value "
            f"{_show(table[column].iloc[bad[0]])} in row {bad[0] + 1}; {fix}"
        )
    return values


def prepare_events(events: pd.DataFrame, *, where: str) -> tuple[pd.DataFrame, dict]:
    """Validate the tidy events table; return nilearn's columns and {trial_type: role}."""
    missing = [c for c in ("onset", "duration", "trial_type") if c not in events.columns]
    if missing:
        raise EventsError(
            f"Events table{where} has no column {', '.join(missing)} "
            f"(columns: {', '.join(map(str, events.columns))}); pass the output of parse_events"
        )
    if len(events) == 0:
        raise EventsError(
            f"Events table{where} has no rows; pass events=None for a design without events"
        )
    events = events.reset_index(drop=True)  # row numbers in messages; no duplicate labels
    table = pd.DataFrame({"trial_type": events["trial_type"].astype(str)})
    numeric = ["onset", "duration"] + (["modulation"] if "modulation" in events else [])
    for column in numeric:
        table[column] = _numeric(
            events, column, kind="Events", where=where, fix="every event needs a number"
        )
    negative = np.flatnonzero(table["duration"].to_numpy() < 0)
    if negative.size:
        raise EventsError(
            f"Events column 'duration'{where} has negative value "
            f"{table['duration'].iloc[negative[0]]:g} in row {negative[0] + 1}; "
            "durations are seconds >= 0"
        )
    if "role" in events:
        roles = events["role"].astype(str)
    else:
        roles = pd.Series("condition", index=events.index)
    unknown = sorted(set(roles) - set(EVENT_ROLES))
    if unknown:
        raise EventsError(
            f"Events column 'role'{where} has unknown value {unknown[0]!r} "
            f"(allowed: {', '.join(EVENT_ROLES)})"
        )
    role_of: dict[str, str] = {}
    for trial_type, trial_roles in roles.groupby(table["trial_type"], sort=True):
        if trial_roles.nunique() > 1:
            raise EventsError(
                f"Trial type '{trial_type}'{where} has several roles "
                f"({', '.join(sorted(trial_roles.unique()))}); give it one role"
            )
        role_of[str(trial_type)] = trial_roles.iloc[0]
    if "modulation" in table and (table["modulation"] == 1).all():
        # nilearn's default; omitting it also skips a log call that inspects the whole stack.
        table = table.drop(columns="modulation")
    return table, role_of


def event_regressors(
    role_of: dict[str, str], hrf_model: str, fir_delays: Sequence[int]
) -> list[tuple[str, str, str]]:
    """(column, trial_type, role) of each event regressor nilearn will create."""
    columns = []
    for trial_type, role in role_of.items():
        if hrf_model == "fir":
            columns += [(f"{trial_type}_delay_{d}", trial_type, "fir") for d in fir_delays]
            continue
        columns.append((trial_type, trial_type, role))
        if "derivative" in hrf_model:
            columns.append((f"{trial_type}_derivative", trial_type, "derivative"))
        if "dispersion" in hrf_model:
            columns.append((f"{trial_type}_dispersion", trial_type, "derivative"))
    return columns


def _onsets(rows: pd.DataFrame) -> str:
    if len(rows) == 1:
        return f"its event starts at {rows['onset'].iloc[0]:g} s"
    return (
        f"its {len(rows)} events start between {rows['onset'].min():g} and "
        f"{rows['onset'].max():g} s"
    )


def _empty_regressor(trial_type: str, role: str, rows: pd.DataFrame, where: str, window: str):
    if "modulation" in rows and not rows["modulation"].any():
        cause = (
            f"its modulation is zero for all {len(rows)} events (a modulator constant within "
            "its condition is zero once demeaned); drop it from the model"
        )
    else:
        cause = (
            f"{_onsets(rows)}, outside the modelled window {window}; check the onsets, TR "
            "and number of volumes, or drop it from the model"
        )
    return DesignError(f"Regressor '{trial_type}' ({role}){where} is all zero: {cause}")


def check_timing(
    events: pd.DataFrame,
    role_of: dict[str, str],
    *,
    first_frame: float,
    min_onset: float,
    n_volumes: int,
    tr: float,
    where: str,
) -> pd.DataFrame:
    """Refuse conditions outside the run; leave out events that end before the window."""
    start, run_end = first_frame + min_onset, n_volumes * tr
    window = f"{start:g} to {run_end:g} s"
    onset = events["onset"]
    late = onset >= run_end
    # nilearn says it ignores these but snaps them to a one-sample pulse at the window
    # start, so they are removed here instead.
    early = (onset < start) & (onset + events["duration"] <= start)
    if late.all():
        raise EventsError(
            f"All {len(events)} events{where} start after the end of the run "
            f"({run_end:g} s = {n_volumes} volumes x TR {tr:g} s; first onset "
            f"{onset.min():g} s): check the TR and the number of volumes, "
            "and that onsets are in seconds from the first volume"
        )
    outside = early | late
    for trial_type, rows in events.groupby("trial_type", sort=True):
        if outside[rows.index].all():
            raise _empty_regressor(trial_type, role_of[trial_type], rows, where, window)
    for mask, what in [(late, f"start after the end of the run ({run_end:g} s)")] + [
        (early, f"end before {start:g} s (min_onset {min_onset:g} s); lower min_onset")
    ]:
        if mask.any():
            names = ", ".join(sorted(events.loc[mask, "trial_type"].unique()))
            warnings.warn(
                f"{mask.sum()} of {len(events)} events ({names}){where} {what}; they are "
                "not modelled",
                UserWarning,
                stacklevel=3,
            )
    return events[~early]


def prepare_confounds(confounds: pd.DataFrame, *, n_volumes: int, where: str) -> pd.DataFrame:
    if len(confounds) != n_volumes:
        raise ConfoundsError(
            f"Confounds table{where} has {len(confounds)} rows but the run has {n_volumes} "
            "volumes; give one row per volume (the confounds of this run)"
        )
    duplicated = confounds.columns[confounds.columns.duplicated()]
    if len(duplicated):
        raise ConfoundsError(
            f"Confounds table{where} has the column '{duplicated[0]}' twice; keep one"
        )
    fix = "fill or drop it when selecting confounds"
    return pd.DataFrame(
        {
            str(c): _numeric(confounds, c, kind="Confound", where=where, fix=fix)
            for c in confounds.columns
        }
    )


def check_names(event_columns: list, confound_names: list[str], where: str) -> None:
    made_by: dict[str, str] = {}
    for column, trial_type, _ in event_columns:
        if column in made_by:
            raise DesignError(
                f"Trial types '{made_by[column]}' and '{trial_type}'{where} both produce the "
                f"regressor '{column}'; rename one of them"
            )
        made_by[column] = trial_type
    reserved = re.compile(rf"^(constant|drift_\d+|{INDEX_NAME})$")
    for name in confound_names:
        if name in made_by:
            raise DesignError(
                f"Confound column '{name}'{where} has the name of an event regressor; "
                "rename the trial type or leave the confound out"
            )
        if reserved.match(name):
            raise DesignError(
                f"Confound column '{name}'{where} has a name reserved for drift, constant "
                "and frame-time columns; rename it or leave it out"
            )


def check_zero_columns(
    design: pd.DataFrame,
    roles: dict,
    event_columns: list,
    events: pd.DataFrame | None,
    *,
    where: str,
    window: str,
) -> None:
    magnitude = design.abs().max()
    groups: dict[str, list[str]] = {}
    for column, trial_type, _ in event_columns:
        groups.setdefault(trial_type, []).append(column)
    for trial_type, columns in groups.items():
        if (magnitude[columns] <= _ZERO_TOL).all():
            rows = events[events["trial_type"] == trial_type]
            raise _empty_regressor(trial_type, roles[columns[0]], rows, where, window)
    for column, role in roles.items():
        if role == "confound" and magnitude[column] <= _ZERO_TOL:
            raise ConfoundsError(
                f"Confound column '{column}'{where} is all zero; leave it out of the "
                "confound selection"
            )


def check_rank(design: pd.DataFrame, roles: dict, *, where: str) -> None:
    x = design.to_numpy()
    x = x / np.linalg.norm(x, axis=0)  # scale-free: rank is about directions only
    # Singular values alone first: the vectors cost 5-500x more (multi-threaded BLAS on a
    # busy machine) and are only needed to name the culprits.
    singular = np.linalg.svd(x, compute_uv=False)
    if singular[-1] >= _RANK_RTOL * singular[0]:
        return
    _, singular, vt = np.linalg.svd(x, full_matrices=False)
    null = vt[singular < _RANK_RTOL * singular[0]]
    weight = np.abs(null).max(axis=0)
    involved = [c for c, w in zip(design.columns, weight, strict=True) if w > _NULL_WEIGHT]
    if any(roles[c] == "confound" for c in involved):
        fix = "drop one of the confounds involved"
    else:
        fix = "check the events (conditions with identical timing?) and the drift model"
    raise DesignError(
        f"Design matrix{where} is rank deficient (rank {design.shape[1] - len(null)} for "
        f"{design.shape[1]} columns): columns {', '.join(involved)} are linearly "
        f"dependent; {fix}"
    )


def check_censored_rank(
    design: pd.DataFrame,
    roles: dict[str, str],
    sample_mask: np.ndarray | None,
    *,
    source: str | Path = "",
) -> None:
    """Refuse a design that is rank deficient over the volumes the fit keeps.

    Scrubbing or non-steady-state censoring can leave a regressor with no variance (all
    its events fall in censored volumes), which the full-length check cannot see.
    """
    if sample_mask is None:
        return
    kept = design.iloc[np.asarray(sample_mask)]
    n_censored = len(design) - len(kept)
    empty = [c for c in kept.columns if not np.any(kept[c].to_numpy())]
    if empty:
        raise DesignError(
            f"Design matrix in {source}: column(s) {', '.join(empty)} are all zero over the "
            f"{len(kept)} volumes left after censoring {n_censored}; relax the scrubbing or "
            "drop those regressors"
        )
    check_rank(kept, roles, where=f" in {source} (after censoring {n_censored} volumes)")
