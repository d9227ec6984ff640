"""The tidy events table, its file between nodes, and the helpers every step's messages use."""

from __future__ import annotations

import math
from os import PathLike
from pathlib import Path

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


def to_numbers(values: pd.Series, *, column: str, source: str) -> pd.Series:
    """Convert a text column to finite floats, keeping missing values as NaN.

    Parameters
    ----------
    values : pandas.Series
        The column; its index gives the line numbers in messages (line = index + 2).
    column, source : str
        Column and file names, for messages.

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
            f"{first_value(values, mask)!r} on line(s) {lines(mask)}; use a finite number, "
            "or n/a for a missing value"
        )
    return pd.Series(numbers, index=values.index, name=values.name)


def write_parsed_events(events: pd.DataFrame, path: str | PathLike[str]) -> Path:
    """Write tidy events (see the package docstring) as a TSV file and return its path."""
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


def lines(mask: pd.Series) -> str:
    """Line numbers (header = line 1) of the True entries, the first few only."""
    numbers = [str(int(i) + 2) for i in mask.index[mask.to_numpy()]]
    more = f" and {len(numbers) - _MAX_LISTED} more" if len(numbers) > _MAX_LISTED else ""
    return ", ".join(numbers[:_MAX_LISTED]) + more


def first_value(values: pd.Series, mask: pd.Series) -> object:
    """The first flagged value, as a plain float when it is one (for messages)."""
    value = values[mask].iloc[0]
    return float(value) if isinstance(value, (float, np.floating)) else value


def _float_or_nan(cell: object) -> float:
    try:
        return float(cell)
    except (TypeError, ValueError):
        return math.nan
