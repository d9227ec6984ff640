"""First-level design matrices: nilearn's builder plus the checks a demanding user wants.

The numbers come from nilearn's public ``make_first_level_design_matrix``; this module
adds column roles, one-line errors for everything that makes a design unusable (empty or
duplicated regressors, rank deficiency, more columns than volumes) and a file format.

File format (``write_design`` / ``read_design``)
------------------------------------------------
- ``design.tsv``: tab-separated, header row, one column per regressor in design order and
  nothing else, so ``pandas.read_csv(path, sep="\\t")`` is the DataFrame nilearn's
  ``FirstLevelModel.fit(design_matrices=...)`` expects. Floats are written at shortest
  round-trip precision, so ``read_design(write_design(x))`` returns ``x`` exactly.
- ``design.json``: its sidecar, ``{"FrameTimes": [s, ...], "Roles": {column: role}}``, the
  acquisition time of each volume and the role (in :data:`ROLES`) of each column.
- ``design.svg``: nilearn's ``plot_design_matrix`` picture.
"""

from __future__ import annotations

import contextlib
import io
import json
import numbers
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import pandas as pd

from glmflow.core.model import HrfModel  # one list of HRF names for the spec and the design
from glmflow.errors import ConfoundsError, DesignError, EventsError

DriftModel = Literal["cosine", "polynomial", "none"]
HRF_MODELS: tuple[str, ...] = get_args(HrfModel)
DRIFT_MODELS: tuple[str, ...] = get_args(DriftModel)
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
# pandas >= 3 parses floats exactly by default and deprecates asking for it.
_ROUND_TRIP = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}
# Weight of a column in a null-space vector above which it is named as involved.
_NULL_WEIGHT = 1e-3


def _where(source: str | Path) -> str:
    return f" in {source}" if str(source) else ""


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _read_tsv(path: str | Path) -> pd.DataFrame:
    # keep_default_na=False: a trial type spelled "NA" or "null" is a name, not missing.
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=["n/a"], dtype=str)


def _validate_parameters(
    *,
    n_volumes: int,
    tr: float,
    slice_time_ref: float,
    hrf_model: str,
    drift_model: str | None,
    high_pass: float,
    drift_order: int,
    fir_delays: Sequence[int],
    min_onset: float,
    oversampling: int,
    where: str,
) -> None:
    def fail(name: str, rule: str, value: object, fix: str = "") -> None:
        # where is " for <file>" so the message reads "parameter 'tr' for <file> must ..."
        message = f"Design parameter '{name}'{where} {rule}; got {value!r}"
        raise DesignError(f"{message}: {fix}" if fix else message)

    if isinstance(n_volumes, bool) or not isinstance(n_volumes, (int, np.integer)):
        fail("n_volumes", "must be an integer number of volumes", n_volumes)
    if n_volumes < 2:
        fail("n_volumes", "must be at least 2", n_volumes)
    if not _is_real(tr) or not np.isfinite(tr) or tr <= 0:
        fail("tr", "must be a positive repetition time in seconds", tr)
    if not _is_real(slice_time_ref) or not 0 <= slice_time_ref <= 1:
        fail("slice_time_ref", "must be a fraction of the TR in [0, 1]", slice_time_ref)
    if hrf_model not in HRF_MODELS:
        fail("hrf_model", f"must be one of {', '.join(HRF_MODELS)}", hrf_model)
    if drift_model not in DRIFT_MODELS:
        fail("drift_model", f"must be one of {', '.join(DRIFT_MODELS)}", drift_model)
    nyquist = 1 / (2 * tr)
    if drift_model == "cosine" and not (_is_real(high_pass) and 0 <= high_pass < nyquist):
        fail(
            "high_pass",
            f"must be in [0, {nyquist:g}) Hz, below the Nyquist frequency of TR {tr:g} s",
            high_pass,
            "give a cut-off in Hz, e.g. 1/128 s = 0.0078 Hz",
        )
    if drift_model == "polynomial" and (
        isinstance(drift_order, bool)
        or not isinstance(drift_order, (int, np.integer))
        or drift_order < 0
    ):
        fail("drift_order", "must be a non-negative integer", drift_order)
    if not isinstance(oversampling, (int, np.integer)) or oversampling < 1:
        fail("oversampling", "must be a positive integer", oversampling)
    if not _is_real(min_onset) or not np.isfinite(min_onset):
        fail("min_onset", "must be a finite number of seconds", min_onset)
    delays = list(fir_delays)
    if hrf_model != "fir" and delays:
        fail("fir_delays", f"is only used with hrf_model 'fir', not {hrf_model!r}", delays)
    if hrf_model == "fir":
        if not delays:
            fail(
                "fir_delays",
                "is needed with hrf_model 'fir'",
                delays,
                "give volumes, e.g. [0, 1, 2]",
            )
        bad = [d for d in delays if not isinstance(d, (int, np.integer)) or d < 0]
        if bad or len(set(delays)) != len(delays):
            fail("fir_delays", "must be distinct non-negative integers (volumes)", delays)


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


def _prepare_events(events: pd.DataFrame, *, where: str) -> tuple[pd.DataFrame, dict]:
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


def _event_columns(
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


def _check_timing(
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


def _prepare_confounds(confounds: pd.DataFrame, *, n_volumes: int, where: str) -> pd.DataFrame:
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


def _check_names(event_columns: list, confound_names: list[str], where: str) -> None:
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


def _check_zero_columns(
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


def _check_rank(design: pd.DataFrame, roles: dict, *, where: str) -> None:
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
    _check_rank(kept, roles, where=f" in {source} (after censoring {n_censored} volumes)")


def build_design_matrix(
    events: pd.DataFrame | str | Path | None,
    *,
    n_volumes: int,
    tr: float,
    slice_time_ref: float = 0.0,
    confounds: pd.DataFrame | str | Path | None = None,
    hrf_model: HrfModel = "spm",
    drift_model: DriftModel | None = "cosine",
    high_pass: float = 0.01,
    drift_order: int = 1,
    fir_delays: Sequence[int] = (),
    min_onset: float = -24.0,
    oversampling: int = 50,
    source: str | Path = "",
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Build and check the first-level design matrix of one run.

    Parameters
    ----------
    events : DataFrame, path of a TSV, or None
        Tidy events (``parse_events`` output): onset, duration, trial_type, optional
        modulation and role (condition | modulator | block; default condition).
        None for a design without task regressors (resting state, confounds only).
    n_volumes, tr : int, float
        Number of volumes and repetition time (s).
    slice_time_ref : float
        Fraction of the TR at which the model is sampled; frame times are
        ``(arange(n_volumes) + slice_time_ref) * tr`` computed exactly as nilearn's
        ``FirstLevelModel`` does (SPM's microtime onset ``fmri_t0 / fmri_t``).
    confounds : DataFrame, path of a TSV, or None
        One row per volume, numeric, no n/a (``select_confounds`` output).
    hrf_model, drift_model, high_pass, drift_order, fir_delays, min_onset, oversampling
        As in nilearn's ``make_first_level_design_matrix`` (high_pass in Hz, fir_delays in
        volumes); drift_model "none" (or None) keeps only the constant.
    source : str or Path
        File named in error messages (defaults to the events / confounds paths).

    Returns
    -------
    design : DataFrame
        Index: frame times (s); columns named as nilearn names them.
    roles : dict
        ``{column: role}`` in column order, role in :data:`ROLES`.

    Raises
    ------
    DesignError, EventsError, ConfoundsError
        One line naming the file, the parameter or column, the value and the fix.
    """
    events_src = events if isinstance(events, (str, Path)) else source
    confounds_src = confounds if isinstance(confounds, (str, Path)) else source
    run_src = source or events_src or confounds_src
    events_where, confounds_where = _where(events_src), _where(confounds_src)
    if drift_model is None:
        drift_model = "none"
    fir_delays = [int(d) if isinstance(d, float) and d.is_integer() else d for d in fir_delays]
    _validate_parameters(
        n_volumes=n_volumes,
        tr=tr,
        slice_time_ref=slice_time_ref,
        hrf_model=hrf_model,
        drift_model=drift_model,
        high_pass=high_pass,
        drift_order=drift_order,
        fir_delays=fir_delays,
        min_onset=min_onset,
        oversampling=oversampling,
        where=f" for {run_src}" if str(run_src) else "",
    )
    event_columns: list[tuple[str, str, str]] = []
    table = None
    if events is not None:
        raw = _read_tsv(events) if isinstance(events, (str, Path)) else events
        table, role_of = _prepare_events(raw, where=events_where)
        table = _check_timing(
            table,
            role_of,
            first_frame=slice_time_ref * tr,
            min_onset=min_onset,
            n_volumes=n_volumes,
            tr=tr,
            where=events_where,
        )
        event_columns = _event_columns(role_of, hrf_model, fir_delays)
    add_regs = None
    if confounds is not None:
        raw = _read_confounds(confounds) if isinstance(confounds, (str, Path)) else confounds
        if raw.shape[1]:
            add_regs = _prepare_confounds(raw, n_volumes=n_volumes, where=confounds_where)
    confound_names = [] if add_regs is None else list(add_regs.columns)
    where = _where(run_src)
    _check_names(event_columns, confound_names, where)

    # Same arithmetic as nilearn's FirstLevelModel, so designs agree bit for bit.
    frame_times = np.linspace(
        slice_time_ref * tr, (n_volumes - 1 + slice_time_ref) * tr, n_volumes
    )
    # nilearn prints a note on stdout whenever a 'modulation' column is given (we always mean
    # it) and regularises singular designs with a warning (_check_rank refuses them instead)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.filterwarnings("ignore", message="Matrix is singular at working precision")
        from nilearn.glm.first_level import make_first_level_design_matrix

        design = make_first_level_design_matrix(
            frame_times,
            table,
            hrf_model=hrf_model,
            drift_model=None if drift_model == "none" else drift_model,
            high_pass=high_pass,
            drift_order=drift_order,
            fir_delays=fir_delays or None,
            add_regs=add_regs,
            min_onset=min_onset,
            oversampling=oversampling,
        )
    event_roles = {column: role for column, _, role in event_columns}
    roles = {c: event_roles.get(c, "") for c in design.columns}
    roles.update({c: "confound" for c in confound_names})
    roles.update(
        {c: "drift" for c in design.columns if re.fullmatch(r"drift_\d+", c) and not roles[c]}
    )
    roles["constant"] = "constant"
    if "" in roles.values():  # a nilearn naming change would land here, not in user data
        raise RuntimeError(f"Unexpected design columns from nilearn: {list(design.columns)}")

    if design.shape[1] >= n_volumes:
        counts = pd.Series(roles).value_counts(sort=False)
        detail = ", ".join(f"{n} {role}" for role, n in counts.items())
        raise DesignError(
            f"Design{where} has {design.shape[1]} columns ({detail}) for {n_volumes} volumes: "
            "a GLM needs more volumes than columns; lower high_pass, or use fewer confounds "
            "or FIR delays"
        )
    # Events in the last TR start after the last sample: no volume sees their response.
    window = f"{frame_times[0] + min_onset:g} to {frame_times[-1]:g} s"
    _check_zero_columns(design, roles, event_columns, table, where=where, window=window)
    _check_rank(design, roles, where=where)
    design.index.name = INDEX_NAME
    return design, roles


def _read_confounds(path: str | Path) -> pd.DataFrame:
    # An empty confounds file stands for "no confounds selected".
    if not Path(path).read_text().strip():
        return pd.DataFrame()
    return _read_tsv(path)


def write_design(
    design: pd.DataFrame, roles: dict[str, str], out_dir: str | Path, *, plot: bool = True
) -> tuple[Path, Path, Path | None]:
    """Write ``design.tsv``, its sidecar ``design.json`` and ``design.svg`` into ``out_dir``.

    Returns the three paths (the plot path is None when ``plot`` is False).
    """
    if list(roles) != list(design.columns):
        raise DesignError(
            f"roles keys {list(roles)} do not match the design columns {list(design.columns)}"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    design_tsv = out_dir / "design.tsv"
    # pandas writes float64 at shortest round-trip precision (repr): exact when read back.
    design.to_csv(design_tsv, sep="\t", index=False)
    sidecar = out_dir / "design.json"
    content = {"FrameTimes": [float(t) for t in design.index], "Roles": roles}
    sidecar.write_text(json.dumps(content, indent=2) + "\n")
    plot_path = plot_design(design, out_dir / "design.svg") if plot else None
    return design_tsv, sidecar, plot_path


def read_design(
    design_tsv: str | Path, sidecar: str | Path | None = None
) -> tuple[pd.DataFrame, dict[str, str] | None]:
    """Read what :func:`write_design` wrote; the inverse is exact to the last bit.

    Without ``sidecar`` the design has a default index and the roles are None.
    """
    try:
        design = pd.read_csv(design_tsv, sep="\t", **_ROUND_TRIP)
    except FileNotFoundError as err:
        raise DesignError(f"Design file {design_tsv} does not exist; check the path") from err
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DesignError(f"Design file {design_tsv} is not a readable TSV ({err})") from err
    if INDEX_NAME in design.columns:
        raise DesignError(
            f"Design file {design_tsv} has a '{INDEX_NAME}' column, which a fit would take "
            "for a regressor; frame times belong in its sidecar: write it with write_design"
        )
    bad = [c for c in design.columns if not pd.api.types.is_numeric_dtype(design[c])]
    if bad:
        raise DesignError(
            f"Design file {design_tsv} has non-numeric column(s) {', '.join(map(str, bad))}; "
            "every column must be a number per volume"
        )
    if sidecar is None:
        return design, None
    return _with_sidecar(design, design_tsv, sidecar)


def _with_sidecar(design: pd.DataFrame, design_tsv, sidecar) -> tuple[pd.DataFrame, dict]:
    content = json.loads(Path(sidecar).read_text())
    frame_times, roles = content["FrameTimes"], content["Roles"]
    if list(roles) != list(design.columns):
        raise DesignError(
            f"Columns of {sidecar} ({', '.join(roles)}) do not match those of {design_tsv} "
            f"({', '.join(design.columns)}); keep the two files of one write_design together"
        )
    if len(frame_times) != len(design):
        raise DesignError(
            f"{sidecar} has {len(frame_times)} FrameTimes for the {len(design)} rows of "
            f"{design_tsv}; keep the two files of one write_design together"
        )
    design.index = pd.Index(np.asarray(frame_times, dtype=float), name=INDEX_NAME)
    return design, roles


def plot_design(design: pd.DataFrame, path: str | Path) -> Path:
    """Save nilearn's ``plot_design_matrix`` picture of ``design`` (format from suffix)."""
    # Lazy import (nilearn.plotting costs ~0.7 s); a bare Figure needs no pyplot state or
    # interactive backend, so nothing leaks between calls.
    from matplotlib import rc_context
    from matplotlib.figure import Figure
    from nilearn.plotting import plot_design_matrix

    # Margins computed from the longest column name (labels sit on top, rotated 60 deg,
    # 10 pt ~ 0.083 in per character) instead of a layout engine: the constrained layout
    # doubled the drawing time.
    longest = max(len(str(c)) for c in design.columns)
    width = min(max(2 + 0.25 * design.shape[1] + 0.05 * longest, 4), 30)
    height = 5 + 0.075 * longest
    figure = Figure(figsize=(width, height))
    figure.subplots_adjust(
        left=0.8 / width,
        right=1 - (0.2 + 0.045 * longest) / width,
        bottom=0.2 / height,
        top=1 - (0.3 + 0.075 * longest) / height,
    )
    with rc_context({"svg.fonttype": "none"}):  # text as text: smaller, searchable SVG
        plot_design_matrix(design, axes=figure.add_subplot())
        figure.savefig(path)
    return Path(path)
