"""Read BIDS events files and turn them into tidy events for nilearn's design builder.

Two steps keep concerns apart: :func:`read_events` reads one ``*_events.tsv`` as it is
(robust to real-world files), :func:`parse_events` applies the model's events options
(condition column, dropped/renamed conditions, glm-express block regressors, parametric
modulators) and returns the tidy table that :func:`write_parsed_events` stores between
workflow nodes.

Tidy events columns: ``onset`` and ``duration`` (seconds), ``trial_type`` (regressor name,
str), ``modulation`` (1.0 for condition rows, the modulator value for modulator rows),
``role`` (``"condition"`` or ``"modulator"``).

Error messages name line numbers of the events file: the header is line 1, so the event with
index ``i`` in the table returned by :func:`read_events` is on line ``i + 2``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from os import PathLike
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from glmflow.errors import EventsError

#: Columns of the tidy events table, in order.
TIDY_COLUMNS = ("onset", "duration", "trial_type", "modulation", "role")
#: Separator of parametric modulator regressor names: ``{condition}_x_{modulator}``.
MODULATOR_SEPARATOR = "_x_"
#: Cell values read as missing. BIDS uses ``n/a``; empty cells occur in real files.
MISSING_VALUES = ("n/a", "")

_MAX_LISTED = 5


def read_events(
    path: str | PathLike[str], *, condition_column: str | None = "trial_type"
) -> pd.DataFrame:
    """Read one BIDS ``*_events.tsv`` file.

    Handles a UTF-8 byte order mark, CRLF line endings, cells padded with spaces, ``n/a``
    and empty cells (read as missing), numbers used as condition names (kept as text).
    ``onset`` and ``duration`` become floats (missing values stay NaN, see
    :func:`parse_events`); every other column is kept, as text. Zero durations (impulse
    events) are allowed; negative onsets are kept with a warning.

    Parameters
    ----------
    path : str or PathLike
        The events file. It is never written to.
    condition_column : str or None, default="trial_type"
        Column that names the conditions; the file is refused when it lacks it.
        ``None`` skips that check.

    Returns
    -------
    pandas.DataFrame
        One row per event, columns as in the file (names stripped).

    Raises
    ------
    EventsError
        Unreadable or empty file, duplicate or missing required columns, a non-numeric,
        infinite or negative-duration value (the message names file, column, line, value).
    """
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise EventsError(f"Events file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise EventsError(
            f"Events file {path} is not UTF-8 text (byte {err.start}); save it as UTF-8"
        ) from None
    # Plain splitting (no quoting rules: BIDS TSV has none) handles LF, CRLF and CR alike.
    rows = [[cell.strip() for cell in line.split("\t")] for line in text.splitlines()]
    # Trailing blank lines are common and harmless; a blank line between events stays a
    # row (of n/a) so that line numbers in messages are those of the file.
    while rows and not any(rows[-1]):
        rows.pop()
    if not rows:
        raise EventsError(
            f"Events file {path} is empty; it needs a header line "
            "'onset<TAB>duration<TAB>trial_type' and one line per event"
        )
    header, body = rows[0], rows[1:]
    width = len(header)
    for number, row in enumerate(body, start=2):
        if len(row) > width:
            raise EventsError(
                f"Events file {path} has {len(row)} cells on line {number} but {width} "
                "columns in the header; remove the extra tab(s)"
            )
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if duplicated:
        raise EventsError(
            f"Events file {path} has duplicate column(s) {', '.join(map(repr, duplicated))}; "
            "column names must be unique"
        )
    for column in ("onset", "duration"):
        if column not in header:
            hint = (
                "; events files must be tab-separated"
                if len(header) == 1 and "," in header[0]
                else ""
            )
            raise EventsError(
                f"Events file {path} has no '{column}' column (columns: {', '.join(header)})"
                f"; BIDS events need onset and duration in seconds{hint}"
            )
    if condition_column is not None and condition_column not in header:
        raise EventsError(
            f"Events file {path} has no '{condition_column}' column (columns: "
            f"{', '.join(header)}); set the model's condition column (glm-express: "
            "condition_identifier) to the column that names the conditions"
        )
    if not body:
        raise EventsError(f"Events file {path} has a header but no events")
    # Short rows (trailing tabs dropped by an editor) are padded with missing cells.
    cells = np.array([row + [""] * (width - len(row)) for row in body], dtype=object)
    cells[np.isin(cells, MISSING_VALUES)] = None
    table = pd.DataFrame(cells, columns=header, dtype=object)
    for column in ("onset", "duration"):
        table[column] = to_numbers(table[column], column=column, source=name)
    negative = table["duration"] < 0
    if negative.any():
        raise EventsError(
            f"Column 'duration' of {name} has a negative value "
            f"({_first_value(table['duration'], negative)}) on line(s) {_lines(negative)}; "
            "durations must be >= 0 seconds (0 for impulse events)"
        )
    early = table["onset"] < 0
    if early.any():
        warnings.warn(
            f"{name}: {int(early.sum())} event(s) have negative onsets (line(s) "
            f"{_lines(early)}); they are kept, but nilearn ignores events that start "
            "before the design's min_onset (default -24 s)",
            UserWarning,
            stacklevel=2,
        )
    return table


def to_numbers(values: pd.Series, *, column: str, source: str) -> pd.Series:
    """Convert a text column to finite floats, keeping missing values as NaN.

    Parameters
    ----------
    values : pandas.Series
        The column; its index gives the line numbers in messages (line = index + 2).
    column : str
        Column name, for messages.
    source : str
        File name, for messages.

    Returns
    -------
    pandas.Series
        float64 values.

    Raises
    ------
    EventsError
        A value is not a number, or is infinite.
    """
    missing = values.isna().to_numpy()
    cells = values.to_numpy(dtype=object, copy=True)
    cells[missing] = np.nan
    try:
        numbers = cells.astype(np.float64)
    except (TypeError, ValueError):
        # Slow path, only to find the offending cells.
        numbers = np.array([_float_or_nan(cell) for cell in cells])
    # Text such as "abc", "nan" or "inf" is no usable time or amount.
    bad = ~np.isfinite(numbers) & ~missing
    if bad.any():
        mask = pd.Series(bad, index=values.index)
        raise EventsError(
            f"Column '{column}' of {source} has a non-numeric value "
            f"{_first_value(values, mask)!r} on line(s) {_lines(mask)}; use a finite number, "
            "or n/a for a missing value"
        )
    return pd.Series(numbers, index=values.index, name=values.name)


def parse_events(
    events: pd.DataFrame,
    *,
    condition_column: str = "trial_type",
    drop_conditions: Iterable[str] = (),
    rename_conditions: Mapping[str, str] | None = None,
    modulators: Iterable[str] = (),
    demean_modulators: bool = True,
    block_column: str | None = None,
    missing_block_column: Literal["warn", "error"] = "warn",
    incomplete_events: Literal["error", "drop"] = "error",
    missing_conditions: Literal["error", "ignore"] = "error",
    source: str = "<events file>",
) -> pd.DataFrame:
    """Turn an events table into tidy events for nilearn's design matrix.

    Steps, in order:

    1. Events lacking an onset, a duration or a condition (``n/a``) are refused or, with
       ``incomplete_events="drop"``, dropped with a warning that counts them.
    2. ``trial_type`` is the stripped text of ``condition_column``.
    3. ``drop_conditions`` then ``rename_conditions`` apply to those values (the names in the
       file, as glm-express drops fixation trials before merging blocks).
    4. Blocks (glm-express 2.0.3, ``auto_block_regressors``): when ``block_column`` is set
       and present, ``trial_type`` becomes ``f"{block}_{trial_type}"``; events whose block is
       ``n/a`` keep their plain condition name. When the column is absent,
       ``missing_block_column="warn"`` warns once and continues without blocks (glm-express's
       builder writes ``block_type`` for every task), ``"error"`` raises.
    5. Parametric modulators, as in SPM: the condition regressor stays, and each condition
       ``c`` x modulator ``m`` adds rows named ``f"{c}_x_{m}"`` (role ``"modulator"``) whose
       ``modulation`` is ``m`` demeaned within ``c`` (when ``demean_modulators``). A
       modulator that is ``n/a`` for every event of a condition, or constant within it,
       carries no information there: that regressor is not made, with a warning. A
       modulator ``n/a`` for only some events of a condition is an error.

    Parameters
    ----------
    events : pandas.DataFrame
        As returned by :func:`read_events` (onset, duration, the condition column, ...).
    condition_column : str, default="trial_type"
        Column naming the condition of each event (glm-express: ``condition_identifier``).
    drop_conditions : iterable of str, default=()
        Conditions whose events are removed.
    rename_conditions : mapping of str to str or None, default=None
        ``{old: new}`` condition names; two conditions renamed alike are merged.
    modulators : iterable of str, default=()
        Numeric columns used as parametric modulators of every condition.
    demean_modulators : bool, default=True
        Subtract each modulator's mean within each condition.
    block_column : str or None, default=None
        Column naming the block of each event (glm-express: ``block_identifier``).
    missing_block_column : {"warn", "error"}, default="warn"
        What to do when ``block_column`` is set but absent from the events.
    incomplete_events : {"error", "drop"}, default="error"
        What to do with events lacking onset, duration or condition.
    missing_conditions : {"error", "ignore"}, default="error"
        What to do when ``drop_conditions`` or ``rename_conditions`` name a condition this
        run does not have: ``"error"`` catches typos; ``"ignore"`` suits defaults meant for
        many datasets (glm-express drops "fixation" trials where there are any) and
        conditions that only some runs have.
    source : str, default="<events file>"
        Name of the events file, used in messages.

    Returns
    -------
    pandas.DataFrame
        Columns ``onset, duration, trial_type, modulation, role``, sorted by onset.

    Raises
    ------
    EventsError
        Invalid options or events; the message names the file, the column or condition,
        the value and the fix.
    """
    drop_conditions = _names(drop_conditions, "drop_conditions", source)
    modulators = _names(modulators, "modulators", source)
    rename_conditions = dict(rename_conditions or {})
    _check_options(
        condition_column=condition_column,
        rename_conditions=rename_conditions,
        demean_modulators=demean_modulators,
        block_column=block_column,
        missing_block_column=missing_block_column,
        incomplete_events=incomplete_events,
        missing_conditions=missing_conditions,
        source=source,
    )
    columns = [str(c) for c in events.columns]
    for column in ("onset", "duration", condition_column, *modulators):
        if column not in events.columns:
            what = "modulator column" if column in modulators else "column"
            raise EventsError(
                f"Events file {source} has no {what} '{column}' (available: "
                f"{', '.join(columns)}); fix the name in the model file"
            )
    if not events.index.is_unique:
        events = events.reset_index(drop=True)
    # A slim working table; other columns (block, modulators) are looked up by index so
    # that a condition column other than trial_type never clobbers a column of that name.
    work = pd.DataFrame(
        {
            column: values
            if pd.api.types.is_float_dtype(values)
            else to_numbers(values, column=column, source=source)
            for column, values in (("onset", events["onset"]), ("duration", events["duration"]))
        }
    )
    work["trial_type"] = _condition_names(events[condition_column])
    work = _handle_incomplete(work, condition_column, incomplete_events, source)
    work = _drop_and_rename(
        work, drop_conditions, rename_conditions, missing_conditions == "error", source
    )
    if block_column is not None:
        work = _merge_blocks(work, events, block_column, missing_block_column, source)
    if "modulation" in events.columns and "modulation" not in modulators:
        warnings.warn(
            f"{source}: the 'modulation' column is not used to scale condition regressors; "
            "list it in modulators to model it as a parametric modulator",
            UserWarning,
            stacklevel=2,
        )
    parts = [work.assign(modulation=1.0, role="condition")]
    parts += _modulator_rows(work, events, modulators, demean_modulators, source)
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


def write_parsed_events(events: pd.DataFrame, path: str | PathLike[str]) -> Path:
    """Write tidy events (see module docstring) as a TSV file and return its path."""
    path = Path(path)
    events.loc[:, list(TIDY_COLUMNS)].to_csv(path, sep="\t", index=False, na_rep="n/a")
    return path


def read_parsed_events(path: str | PathLike[str]) -> pd.DataFrame:
    """Read tidy events written by :func:`write_parsed_events`.

    ``trial_type`` and ``role`` stay text (a condition named ``1`` or ``NA`` is kept as is).
    """
    path = Path(path)
    table = pd.read_csv(
        path,
        sep="\t",
        dtype={"trial_type": str, "role": str},
        keep_default_na=False,
        na_values={"onset": ["n/a"], "duration": ["n/a"], "modulation": ["n/a"]},
    )
    if list(table.columns) != list(TIDY_COLUMNS):
        raise EventsError(
            f"Parsed events file {path} has columns {', '.join(table.columns)}; expected "
            f"{', '.join(TIDY_COLUMNS)} (write it with glmflow.core.events.write_parsed_events)"
        )
    return table.astype({"onset": "float64", "duration": "float64", "modulation": "float64"})


# --- helpers -----------------------------------------------------------------------------


def _lines(mask: pd.Series) -> str:
    """Line numbers (header = line 1) of the True entries, the first few only."""
    lines = [str(int(i) + 2) for i in mask.index[mask.to_numpy()]]
    more = f" and {len(lines) - _MAX_LISTED} more" if len(lines) > _MAX_LISTED else ""
    return ", ".join(lines[:_MAX_LISTED]) + more


def _first_value(values: pd.Series, mask: pd.Series) -> object:
    value = values[mask].iloc[0]
    return float(value) if isinstance(value, (float, np.floating)) else value


def _float_or_nan(cell: object) -> float:
    try:
        return float(cell)
    except (TypeError, ValueError):
        return math.nan


def _names(values: Iterable[str], option: str, source: str) -> tuple[str, ...]:
    if isinstance(values, str):
        # A bare string would otherwise be iterated character by character.
        values = (values,)
    names = tuple(values)
    for value in names:
        if not isinstance(value, str) or not value.strip():
            raise EventsError(
                f"Option {option} for {source} must list non-empty strings; got {value!r}"
            )
    return names


def _check_options(
    *,
    condition_column: str,
    rename_conditions: dict[object, object],
    demean_modulators: object,
    block_column: str | None,
    missing_block_column: str,
    incomplete_events: str,
    missing_conditions: str,
    source: str,
) -> None:
    if not isinstance(condition_column, str) or not condition_column.strip():
        raise EventsError(
            f"Option condition_column for {source} must be a non-empty string; "
            f"got {condition_column!r}"
        )
    for old, new in rename_conditions.items():
        if not all(isinstance(v, str) and v.strip() for v in (old, new)):
            raise EventsError(
                f"Option rename_conditions for {source} must map non-empty strings to "
                f"non-empty strings; got {old!r}: {new!r}"
            )
    if not isinstance(demean_modulators, (bool, np.bool_)):
        raise EventsError(
            f"Option demean_modulators for {source} must be true or false; "
            f"got {demean_modulators!r}"
        )
    if block_column is not None and (not isinstance(block_column, str) or not block_column):
        raise EventsError(
            f"Option block_column for {source} must be a column name or None; got {block_column!r}"
        )
    if block_column == condition_column:
        raise EventsError(
            f"Option block_column for {source} is the condition column '{block_column}'; "
            "use a different column or no blocks"
        )
    for option, value, allowed in (
        ("missing_block_column", missing_block_column, ("warn", "error")),
        ("incomplete_events", incomplete_events, ("error", "drop")),
        ("missing_conditions", missing_conditions, ("error", "ignore")),
    ):
        if value not in allowed:
            raise EventsError(
                f"Option {option} for {source} must be one of "
                f"{', '.join(map(repr, allowed))}; got {value!r}"
            )


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
            f"{_lines(incomplete)}); nilearn cannot model them: fill them in, or set the "
            "events option incomplete_events to 'drop'"
        )
    kept = table.loc[~incomplete]
    if kept.empty:
        raise EventsError(
            f"Events file {source}: every event has n/a {which}; nothing left to model"
        )
    warnings.warn(
        f"{source}: dropped {count} event(s) with n/a {which} (line(s) "
        f"{_lines(incomplete)}) as incomplete_events='drop' asks",
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


def _drop_and_rename(
    table: pd.DataFrame,
    drop: tuple[str, ...],
    rename: dict[str, str],
    strict: bool,
    source: str,
) -> pd.DataFrame:
    if not drop and not rename:
        return table
    if strict:
        available = sorted(table["trial_type"].unique())
        _unknown_conditions(drop, available, "drop_conditions", source)
        _unknown_conditions(rename, available, "rename_conditions", source)
    both = sorted(set(drop) & set(rename))
    if both:
        raise EventsError(
            f"Condition(s) {', '.join(map(repr, both))} are both dropped and renamed for "
            f"{source}; remove them from drop_conditions or from rename_conditions"
        )
    table = table.loc[~table["trial_type"].isin(drop)]
    if table.empty:
        raise EventsError(
            f"drop_conditions removes every event of {source} (dropped: {', '.join(drop)}); "
            "keep at least one condition"
        )
    return table.assign(trial_type=table["trial_type"].replace(rename))


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
            name = f"{condition}{MODULATOR_SEPARATOR}{modulator}"
            amplitude = values.loc[index]
            if amplitude.isna().all():
                skipped.append(f"{name} (n/a for every '{condition}' event)")
                continue
            if amplitude.isna().any():
                raise EventsError(
                    f"Modulator '{modulator}' is n/a for some '{condition}' events of "
                    f"{source} (line(s) {_lines(amplitude.isna())}); fill in those values "
                    f"or remove '{modulator}' from the modulators"
                )
            if np.ptp(amplitude.to_numpy()) == 0:
                skipped.append(
                    f"{name} (constant {amplitude.iloc[0]:g} across "
                    f"{len(amplitude)} '{condition}' event(s))"
                )
                continue
            modulation = amplitude - amplitude.mean() if demean else amplitude
            part = work.loc[index, ["onset", "duration"]].assign(
                trial_type=name, modulation=modulation.to_numpy(), role="modulator"
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
