"""Apply the model's events options to one events table (steps: the package docstring)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np
import pandas as pd

from glmflow.core.events.table import (
    MISSING_VALUES,
    MODULATOR_SEPARATOR,
    TIDY_COLUMNS,
    lines,
    to_numbers,
)
from glmflow.core.model import EventsSpec
from glmflow.errors import EventsError

# parse_events' own default where a file has no block column (the spec's is "error")
_DEFAULTS = {"missing_block_column": "warn"}


def parse_events(
    events: pd.DataFrame,
    spec: EventsSpec | None = None,
    *,
    source: str = "<events file>",
    scan_end: float | None = None,
    **options,
) -> pd.DataFrame:
    """Turn an events table into tidy events for nilearn's design matrix.

    Parameters
    ----------
    events : pandas.DataFrame
        As returned by :func:`~glmflow.core.events.read_events`.
    spec : EventsSpec, optional
        The model's events options (validated when it was made). Default: an
        ``EventsSpec(**options)``, with ``missing_block_column="warn"`` unless given.
    source : str
        Name of the events file, used in messages.
    scan_end : float, optional
        End of the scan in seconds (volumes x TR): events starting at or after it are left
        out with a warning naming their lines.
    **options
        :class:`~glmflow.core.model.EventsSpec` fields, when ``spec`` is not given.

    Returns
    -------
    pandas.DataFrame
        Columns ``onset, duration, trial_type, modulation, role``, sorted by onset.

    Raises
    ------
    EventsError
        Unusable events; the message names the file, the column or condition, the value
        and the fix. Invalid options raise the spec's own error.
    """
    if spec is None:
        spec = EventsSpec(**{**_DEFAULTS, **options})
    elif options:
        raise TypeError(f"parse_events takes a spec or options, not both: {sorted(options)}")
    _check_columns(events, spec, source)
    if not events.index.is_unique:
        events = events.reset_index(drop=True)
    work = _working_table(events, spec.condition_column, source)
    work = _handle_incomplete(work, spec.condition_column, spec.incomplete_events, source)
    work = _drop_and_rename(work, spec, source)
    if scan_end is not None:
        work = _drop_after_scan(work, scan_end, source)
    if spec.block_column is not None:
        work = _merge_blocks(work, events, spec.block_column, spec.missing_block_column, source)
    return _tidy(work, events, spec, source)


def _tidy(work: pd.DataFrame, events: pd.DataFrame, spec: EventsSpec, source: str):
    """Condition rows, then modulator rows; checked, sorted by onset."""
    if "modulation" in events.columns and "modulation" not in spec.modulators:
        warnings.warn(
            f"{source}: the 'modulation' column is not used to scale condition regressors; "
            "list it in modulators to model it as a parametric modulator",
            UserWarning,
            stacklevel=3,
        )
    parts = [work.assign(modulation=1.0, role="condition")]
    parts += _modulator_rows(work, events, spec.modulators, spec.demean_modulators, source)
    tidy = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    if len(parts) > 1:
        _check_name_clashes(tidy, source)
    _warn_duplicates(tidy, source)
    order = np.argsort(tidy["onset"].to_numpy(), kind="stable")
    numeric = ("onset", "duration", "modulation")
    return pd.DataFrame(
        {
            column: tidy[column].to_numpy(dtype="float64" if column in numeric else None)[order]
            for column in TIDY_COLUMNS
        }
    )


def _check_columns(events: pd.DataFrame, spec: EventsSpec, source: str) -> None:
    columns = [str(c) for c in events.columns]
    for column in ("onset", "duration", spec.condition_column, *spec.modulators):
        if column not in events.columns:
            what = "modulator column" if column in spec.modulators else "column"
            raise EventsError(
                f"Events file {source} has no {what} '{column}' (available: "
                f"{', '.join(columns)}); fix the name in the model file"
            )


def _working_table(events: pd.DataFrame, condition_column: str, source: str) -> pd.DataFrame:
    """onset, duration, trial_type only; other columns (block, modulators) are looked up by
    index, so a condition column other than trial_type never clobbers one of that name."""
    work = pd.DataFrame(
        {
            column: values
            if pd.api.types.is_float_dtype(values)
            else to_numbers(values, column=column, source=source)
            for column, values in (("onset", events["onset"]), ("duration", events["duration"]))
        }
    )
    work["trial_type"] = _condition_names(events[condition_column])
    return work


def _condition_names(values: pd.Series) -> pd.Series:
    """Condition names as stripped text; missing stays missing (None)."""
    names = values.to_numpy(dtype=object, copy=True)
    missing = values.isna().to_numpy()
    names[~missing] = [str(v).strip() for v in names[~missing]]
    names[missing | np.isin(names, MISSING_VALUES)] = None
    return pd.Series(names, index=values.index, dtype="object")


def _handle_incomplete(
    table: pd.DataFrame, condition_column: str, incomplete_events: str, source: str
) -> pd.DataFrame:
    missing = {
        "onset": np.isnan(table["onset"].to_numpy()),
        "duration": np.isnan(table["duration"].to_numpy()),
        condition_column: np.array([name is None for name in table["trial_type"]], dtype=bool),
    }
    flags = missing["onset"] | missing["duration"] | missing[condition_column]
    if not flags.any():
        return table
    incomplete = pd.Series(flags, index=table.index)
    which = "/".join(c for c, m in missing.items() if m.any())
    count = int(incomplete.sum())
    if incomplete_events == "error":
        raise EventsError(
            f"Events file {source} has {count} event(s) with n/a {which} (line(s) "
            f"{lines(incomplete)}); nilearn cannot model them: fill them in, or set the "
            "events option incomplete_events to 'drop'"
        )
    kept = table.loc[~incomplete]
    if kept.empty:
        raise EventsError(
            f"Events file {source}: every event has n/a {which}; nothing left to model"
        )
    warnings.warn(
        f"{source}: dropped {count} event(s) with n/a {which} (line(s) "
        f"{lines(incomplete)}) as incomplete_events='drop' asks",
        UserWarning,
        stacklevel=3,
    )
    return kept


def _unknown_conditions(
    names: Iterable[str], available: list[str], option: str, source: str
) -> None:
    unknown = [n for n in names if n not in available]
    if unknown:
        raise EventsError(
            f"Option {option} names unknown condition(s) {', '.join(map(repr, unknown))} "
            f"(available: {', '.join(available)}) in {source}"
        )


def _drop_and_rename(table: pd.DataFrame, spec: EventsSpec, source: str) -> pd.DataFrame:
    drop, rename = spec.drop_conditions, dict(spec.rename_conditions)
    if not drop and not rename:
        return table
    if spec.missing_conditions == "error":
        available = sorted(table["trial_type"].unique())
        _unknown_conditions(drop, available, "drop_conditions", source)
        _unknown_conditions(rename, available, "rename_conditions", source)
    table = table.loc[~table["trial_type"].isin(drop)]
    if table.empty:
        raise EventsError(
            f"drop_conditions removes every event of {source} (dropped: {', '.join(drop)}); "
            "keep at least one condition"
        )
    return table.assign(trial_type=table["trial_type"].replace(rename))


def _drop_after_scan(table: pd.DataFrame, scan_end: float, source: str) -> pd.DataFrame:
    """Events that start when no volume is left to see them: nilearn models nothing."""
    after = table["onset"] >= scan_end
    if not after.any():
        return table
    if after.all():
        raise EventsError(
            f"Every event of {source} starts at or after the end of the scan "
            f"({scan_end:g} s = volumes x TR); check that the onsets are in seconds and that "
            "the events file belongs to this run"
        )
    warnings.warn(
        f"{source}: {int(after.sum())} event(s) start at or after the end of the scan "
        f"({scan_end:g} s = volumes x TR) on line(s) {lines(after)}; they are left out",
        UserWarning,
        stacklevel=3,
    )
    return table.loc[~after]


def _merge_blocks(
    work: pd.DataFrame,
    events: pd.DataFrame,
    block_column: str,
    missing_block_column: str,
    source: str,
) -> pd.DataFrame:
    if block_column not in events.columns:
        message = (
            f"Events file {source} has no block column '{block_column}' (columns: "
            f"{', '.join(map(str, events.columns))})"
        )
        if missing_block_column == "error":
            raise EventsError(f"{message}; fix block_identifier/block_column or remove it")
        warnings.warn(f"{message}; modelling without blocks", UserWarning, stacklevel=3)
        return work
    blocks = _condition_names(events.loc[work.index, block_column])
    merged = [
        trial if block is None else f"{block}_{trial}"
        for block, trial in zip(blocks, work["trial_type"], strict=True)
    ]
    return work.assign(trial_type=merged)


def _modulator_rows(
    work: pd.DataFrame,
    events: pd.DataFrame,
    modulators: tuple[str, ...],
    demean: bool,
    source: str,
) -> list[pd.DataFrame]:
    rows: list[pd.DataFrame] = []
    skipped: list[str] = []
    groups = work.groupby("trial_type", sort=True).groups if modulators else {}
    for modulator in modulators:
        values = to_numbers(events.loc[work.index, modulator], column=modulator, source=source)
        for condition, index in groups.items():
            amplitude = values.loc[index]
            why = _uninformative(amplitude, modulator, condition, source)
            if why:
                skipped.append(f"{condition}{MODULATOR_SEPARATOR}{modulator} ({why})")
                continue
            modulation = amplitude - amplitude.mean() if demean else amplitude
            part = work.loc[index, ["onset", "duration"]].assign(
                trial_type=f"{condition}{MODULATOR_SEPARATOR}{modulator}",
                modulation=modulation.to_numpy(),
                role="modulator",
            )
            rows.append(part.loc[:, list(TIDY_COLUMNS)])
    if skipped:
        warnings.warn(
            f"{source}: no regressor for {'; '.join(skipped)}: the modulator carries no "
            "information there",
            UserWarning,
            stacklevel=3,
        )
    return rows


def _uninformative(amplitude: pd.Series, modulator: str, condition: str, source: str) -> str:
    """Why a modulator makes no regressor for a condition ("" when it does); partly n/a is an
    error."""
    if amplitude.isna().all():
        return f"n/a for every '{condition}' event"
    if amplitude.isna().any():
        raise EventsError(
            f"Modulator '{modulator}' is n/a for some '{condition}' events of "
            f"{source} (line(s) {lines(amplitude.isna())}); fill in those values "
            f"or remove '{modulator}' from the modulators"
        )
    if np.ptp(amplitude.to_numpy()) == 0:
        return f"constant {amplitude.iloc[0]:g} across {len(amplitude)} '{condition}' event(s)"
    return ""


def _check_name_clashes(tidy: pd.DataFrame, source: str) -> None:
    roles = tidy.groupby("trial_type")["role"].nunique()
    clashes = sorted(roles.index[roles > 1])
    if clashes:
        raise EventsError(
            f"Condition name(s) {', '.join(map(repr, clashes))} in {source} clash with "
            "parametric modulator regressors of the same name; rename the condition(s)"
        )


def _warn_duplicates(tidy: pd.DataFrame, source: str) -> None:
    keys = list(zip(tidy["trial_type"], tidy["onset"], tidy["duration"], strict=True))
    repeated = len(keys) - len(set(keys))
    if repeated:
        warnings.warn(
            f"{source}: {repeated} event(s) repeat another event's condition, "
            "onset and duration; nilearn sums their amplitudes",
            UserWarning,
            stacklevel=3,
        )
