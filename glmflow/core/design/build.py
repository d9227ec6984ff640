"""``build_design_matrix``: one run's design from nilearn's builder, its roles and its checks."""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from glmflow.core.design.checks import (
    INDEX_NAME,
    check_names,
    check_rank,
    check_timing,
    check_zero_columns,
    event_regressors,
    in_source,
    is_real,
    prepare_confounds,
    prepare_events,
    read_confounds,
    read_tsv,
)
from glmflow.core.model import DesignSpec
from glmflow.errors import DesignError


def build_design_matrix(
    events: pd.DataFrame | str | Path | None,
    confounds: pd.DataFrame | str | Path | None = None,
    design: DesignSpec | None = None,
    *,
    n_volumes: int,
    tr: float,
    slice_time_ref: float = 0.0,
    source: str | Path = "",
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Build and check the first-level design matrix of one run.

    Parameters
    ----------
    events : DataFrame, path of a TSV, or None
        Tidy events (``parse_events`` output: onset, duration, trial_type, optional
        modulation and role); None for a design without task regressors.
    confounds : DataFrame, path of a TSV, or None
        One row per volume, numeric, no n/a (``select_confounds`` output).
    design : DesignSpec, optional
        nilearn's design options (default ``DesignSpec()``), valid since construction:
        only what depends on the data is checked here.
    n_volumes, tr, slice_time_ref : int, float, float
        The run: frame times are ``(arange(n_volumes) + slice_time_ref) * tr``, computed
        as nilearn's ``FirstLevelModel`` computes them.
    source : str or Path
        File named in error messages (defaults to the events / confounds paths).

    Returns ``(design, roles)``: the DataFrame indexed by frame times (s), columns named as
    nilearn names them, and ``{column: role}`` in column order (role in ``ROLES``).
    Raises DesignError, EventsError or ConfoundsError: one line naming the file, the
    parameter or column, the value and the fix.
    """
    spec = DesignSpec() if design is None else design
    events_src = events if isinstance(events, (str, Path)) else source
    confounds_src = confounds if isinstance(confounds, (str, Path)) else source
    run_src = source or events_src or confounds_src
    _check_run(n_volumes, tr, slice_time_ref, spec, source=run_src)
    timing = {"n_volumes": n_volumes, "tr": tr, "first_frame": slice_time_ref * tr}
    table, event_columns = _events_table(events, spec, where=in_source(events_src), **timing)
    add_regs = _confounds_table(confounds, n_volumes, where=in_source(confounds_src))
    confound_names = [] if add_regs is None else list(add_regs.columns)
    where = in_source(run_src)
    check_names(event_columns, confound_names, where)
    frame_times = _frame_times(n_volumes, tr, slice_time_ref)
    matrix = _nilearn_design(frame_times, table, add_regs, spec)
    roles = _roles(list(matrix.columns), event_columns, confound_names)
    _check_size(matrix, roles, n_volumes, where)
    # Events in the last TR start after the last sample: no volume sees their response.
    window = f"{frame_times[0] + spec.min_onset:g} to {frame_times[-1]:g} s"
    check_zero_columns(matrix, roles, event_columns, table, where=where, window=window)
    check_rank(matrix, roles, where=where)
    matrix.index.name = INDEX_NAME
    return matrix, roles


def _check_run(
    n_volumes: int, tr: float, slice_time_ref: float, spec: DesignSpec, *, source: str | Path
) -> None:
    """Check what comes from the data (length, TR, sampling time, cut-off below Nyquist)."""
    if not isinstance(spec, DesignSpec):
        raise TypeError(f"design must be a DesignSpec, got {type(spec).__name__}")
    where = f" for {source}" if str(source) else ""

    def fail(name: str, rule: str, value: object, fix: str = "") -> None:
        # where is " for <file>" so the message reads "parameter 'tr' for <file> must ..."
        message = f"Design parameter '{name}'{where} {rule}; got {value!r}"
        raise DesignError(f"{message}: {fix}" if fix else message)

    if isinstance(n_volumes, bool) or not isinstance(n_volumes, (int, np.integer)):
        fail("n_volumes", "must be an integer number of volumes", n_volumes)
    if n_volumes < 2:
        fail("n_volumes", "must be at least 2", n_volumes)
    if not is_real(tr) or not np.isfinite(tr) or tr <= 0:
        fail("tr", "must be a positive repetition time in seconds", tr)
    if not is_real(slice_time_ref) or not 0 <= slice_time_ref <= 1:
        fail("slice_time_ref", "must be a fraction of the TR in [0, 1]", slice_time_ref)
    nyquist = 1 / (2 * tr)
    if spec.drift_model == "cosine" and spec.high_pass >= nyquist:
        fail(
            "high_pass",
            f"must be in [0, {nyquist:g}) Hz, below the Nyquist frequency of TR {tr:g} s",
            spec.high_pass,
            "give a cut-off in Hz, e.g. 1/128 s = 0.0078 Hz",
        )


def _frame_times(n_volumes: int, tr: float, slice_time_ref: float) -> np.ndarray:
    # Same arithmetic as nilearn's FirstLevelModel, so designs agree bit for bit.
    return np.linspace(slice_time_ref * tr, (n_volumes - 1 + slice_time_ref) * tr, n_volumes)


def _events_table(events, spec: DesignSpec, *, where: str, **timing) -> tuple:
    """nilearn's events table (events outside the run left out) and the event columns."""
    if events is None:
        return None, []
    raw = read_tsv(events) if isinstance(events, (str, Path)) else events
    table, role_of = prepare_events(raw, where=where)
    table = check_timing(table, role_of, min_onset=spec.min_onset, where=where, **timing)
    return table, event_regressors(role_of, spec.hrf_model, spec.fir_delays)


def _confounds_table(confounds, n_volumes: int, *, where: str) -> pd.DataFrame | None:
    if confounds is None:
        return None
    raw = read_confounds(confounds) if isinstance(confounds, (str, Path)) else confounds
    if not raw.shape[1]:
        return None
    return prepare_confounds(raw, n_volumes=n_volumes, where=where)


def _nilearn_design(frame_times, table, add_regs, spec: DesignSpec) -> pd.DataFrame:
    # nilearn prints a note on stdout whenever a 'modulation' column is given (we always mean
    # it) and regularises singular designs with a warning (check_rank refuses them instead)
    from nilearn.glm.first_level import make_first_level_design_matrix

    options = {
        "hrf_model": spec.hrf_model, "drift_model": spec.drift_model,
        "high_pass": spec.high_pass, "drift_order": spec.drift_order,
        "fir_delays": list(spec.fir_delays) or None, "add_regs": add_regs,
        "min_onset": spec.min_onset, "oversampling": spec.oversampling,
    }  # fmt: skip
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.filterwarnings("ignore", message="Matrix is singular at working precision")
        if table is None or "modulation" not in table:
            return make_first_level_design_matrix(frame_times, table, **options)
        # The note is logged by walking the caller's stack (inspect.stack: every frame's
        # source file looked up, sys.modules scanned for frames that have none, as runpy's):
        # 20-35 ms a design under the command line or a Nipype node, more than the design
        # itself. A thread of its own has a stack of a few frames; the filters above and the
        # redirect are the process's, and this thread waits for it.
        with ThreadPoolExecutor(max_workers=1) as shallow:
            built = shallow.submit(make_first_level_design_matrix, frame_times, table, **options)
            return built.result()


def _roles(columns: list[str], event_columns: list, confound_names: list[str]) -> dict:
    event_roles = {column: role for column, _, role in event_columns}
    roles = {c: event_roles.get(c, "") for c in columns}
    roles.update({c: "confound" for c in confound_names})
    roles.update({c: "drift" for c in columns if re.fullmatch(r"drift_\d+", c) and not roles[c]})
    roles["constant"] = "constant"
    if "" in roles.values():  # a nilearn naming change would land here, not in user data
        raise RuntimeError(f"Unexpected design columns from nilearn: {columns}")
    return roles


def _check_size(matrix: pd.DataFrame, roles: dict, n_volumes: int, where: str) -> None:
    if matrix.shape[1] >= n_volumes:
        counts = pd.Series(roles).value_counts(sort=False)
        detail = ", ".join(f"{n} {role}" for role, n in counts.items())
        raise DesignError(
            f"Design{where} has {matrix.shape[1]} columns ({detail}) for {n_volumes} volumes: "
            "a GLM needs more volumes than columns; lower high_pass, or use fewer confounds "
            "or FIR delays"
        )
