"""Read one BIDS ``*_events.tsv`` as it is, robust to real-world files."""

from __future__ import annotations

import warnings
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from glmflow.core.events.table import MISSING_VALUES, first_value, lines, to_numbers
from glmflow.errors import EventsError


def read_events(
    path: str | PathLike[str], *, condition_column: str | None = "trial_type"
) -> pd.DataFrame:
    """Read one BIDS ``*_events.tsv`` file.

    Handles a UTF-8 byte order mark, CRLF line endings, cells padded with spaces, ``n/a``
    and empty cells (read as missing), numbers used as condition names (kept as text).
    ``onset`` and ``duration`` become floats (missing values stay NaN, see
    :func:`~glmflow.core.events.parse_events`); every other column is kept, as text. Zero
    durations (impulse events) are allowed; negative onsets are kept with a warning.

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
    header, body = _rows(path)
    _check_header(path, header, body, condition_column)
    width = len(header)
    # Short rows (trailing tabs dropped by an editor) are padded with missing cells.
    cells = np.array([row + [""] * (width - len(row)) for row in body], dtype=object)
    cells[np.isin(cells, MISSING_VALUES)] = None
    table = pd.DataFrame(cells, columns=header, dtype=object)
    for column in ("onset", "duration"):
        table[column] = to_numbers(table[column], column=column, source=path.name)
    _check_times(table, path.name)
    return table


def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and body cells, stripped; trailing blank lines dropped."""
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
    return rows[0], rows[1:]


def _check_header(path: Path, header, body, condition_column: str | None) -> None:
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
            comma = len(header) == 1 and "," in header[0]
            hint = "; events files must be tab-separated" if comma else ""
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


def _check_times(table: pd.DataFrame, name: str) -> None:
    negative = table["duration"] < 0
    if negative.any():
        raise EventsError(
            f"Column 'duration' of {name} has a negative value "
            f"({first_value(table['duration'], negative)}) on line(s) {lines(negative)}; "
            "durations must be >= 0 seconds (0 for impulse events)"
        )
    early = table["onset"] < 0
    if early.any():
        warnings.warn(
            f"{name}: {int(early.sum())} event(s) have negative onsets (line(s) "
            f"{lines(early)}); they are kept, but nilearn ignores events that start "
            "before the design's min_onset (default -24 s)",
            UserWarning,
            stacklevel=4,
        )
