"""Choose one run's confounds: strategies, explicit columns, the checks on their values."""

from __future__ import annotations

import difflib
import fnmatch
import warnings
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from glmflow.core.confounds.files import check_volumes, read_raw
from glmflow.core.confounds.strategies import load_strategies
from glmflow.core.model import ConfoundsSpec
from glmflow.errors import ConfoundsError

#: fMRIPrep writes spike columns only when there are outliers, so wildcards for them may
#: match nothing in a clean run.
OPTIONAL_PREFIXES = ("motion_outlier", "non_steady_state_outlier")
# load_confounds' own keyword arguments, passed through unchanged
_NILEARN_OPTIONS = (
    "motion",
    "wm_csf",
    "global_signal",
    "compcor",
    "n_compcor",
    "fd_threshold",
    "std_dvars_threshold",
    "scrub",
    "demean",
)


def select_confounds(
    confounds_file: str | PathLike[str],
    spec: ConfoundsSpec | None = None,
    *,
    bold_file: str | PathLike[str] | None = None,
    **options,
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Select confounds for one run (the rules: the package docstring).

    Parameters
    ----------
    confounds_file : str or PathLike
        fMRIPrep ``*_desc-confounds_timeseries.tsv`` (or the older ``_regressors.tsv``);
        its JSON sidecar next to it is used by the compcor strategy. Never written to.
    spec : ConfoundsSpec, optional
        The model's confound options (validated when it was made); default
        ``ConfoundsSpec(**options)``.
    bold_file : str or PathLike, optional
        The run's BOLD image (NIfTI, CIFTI or GIFTI): its number of volumes must match the
        file's rows.
    **options
        :class:`~glmflow.core.model.ConfoundsSpec` fields, when ``spec`` is not given.

    Returns
    -------
    confounds : pandas.DataFrame
        One row per volume (index 0..n-1): the strategy columns (nilearn's order), then the
        explicit columns not already among them.
    sample_mask : numpy.ndarray or None
        Indices of the volumes to keep, or None when no volume is censored.

    Raises
    ------
    ConfoundsError
        Unknown columns, unusable file or values; the message names the file, the column,
        the line and the value. Invalid options raise the spec's own error.
    """
    if spec is None:
        spec = ConfoundsSpec(**options)
    elif options:
        raise TypeError(f"select_confounds takes a spec or options, not both: {sorted(options)}")
    path = Path(confounds_file)
    raw = read_raw(path)
    if bold_file is not None:
        check_volumes(path, len(raw), Path(bold_file))
    explicit = _explicit_columns(spec, raw, path)
    _check_values(raw, explicit, path)
    selected, sample_mask = _strategies(spec, raw, path)
    extra = [c for c in explicit if c not in selected.columns]
    if extra:
        chosen = _drop_repeated_spikes(_fill_first_row(raw.loc[:, extra], path), path)
        if sample_mask is not None:
            _check_not_censored_away(chosen, sample_mask, spec.strategy, path)
        if spec.demean:
            kept = chosen if sample_mask is None else chosen.iloc[sample_mask]
            chosen = chosen - kept.mean(axis=0)
        selected = pd.concat([selected.reset_index(drop=True), chosen], axis=1)
    return selected.astype("float64"), sample_mask


def _strategies(spec: ConfoundsSpec, raw: pd.DataFrame, path: Path):
    """nilearn's strategies (none: an empty table) and their sample mask."""
    if not spec.strategy:
        return pd.DataFrame(index=pd.RangeIndex(len(raw))), None
    nilearn = {name: getattr(spec, name) for name in _NILEARN_OPTIONS}
    selected, sample_mask = load_strategies(path, spec.strategy, len(raw), **nilearn)
    _check_values(raw, [c for c in selected.columns if c in raw.columns], path)
    if sample_mask is not None and sample_mask.size == 0:
        raise ConfoundsError(
            f"Scrubbing censors every volume of {path} (fd_threshold={spec.fd_threshold}, "
            f"std_dvars_threshold={spec.std_dvars_threshold}); raise the thresholds or "
            "drop 'scrub' from the strategy"
        )
    return selected, sample_mask


def _explicit_columns(spec: ConfoundsSpec, raw: pd.DataFrame, path: Path) -> list[str]:
    explicit = resolve_columns(spec.columns, list(raw.columns), path)
    for pattern in spec.optional_columns:
        matches = [c for c in raw.columns if fnmatch.fnmatchcase(c, pattern)]
        if not matches and not pattern.startswith(OPTIONAL_PREFIXES):
            warnings.warn(
                f"{path}: optional confound pattern '{pattern}' matches no column; "
                "modelled without it",
                stacklevel=3,
            )
        explicit += [c for c in matches if c not in explicit]
    return explicit


def _check_values(raw: pd.DataFrame, columns: Sequence[str], path: Path) -> None:
    """A non-finite value or an all-zero column, named in the confounds file itself."""
    for column in columns:
        values = raw[column].to_numpy(dtype=np.float64)
        infinite = np.isinf(values)
        if infinite.any():
            row = int(np.flatnonzero(infinite)[0])
            raise ConfoundsError(
                f"Confound column '{column}' of {path} has a non-finite value "
                f"{values[row]:g} on line {row + 2}; confounds must be finite numbers (or "
                "n/a in the first row): fix the file or leave the column out"
            )
        if len(values) > 1 and np.all(np.nan_to_num(values) == 0):
            raise ConfoundsError(
                f"Confound column '{column}' of {path} is 0 in every volume; it would be an "
                "empty regressor: leave it out of the model's confounds or fix the file"
            )


def _drop_repeated_spikes(chosen: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Keep one of several spike regressors that flag the same volume, with a warning.

    fMRIPrep writes a ``non_steady_state_outlier`` and a ``motion_outlier`` column for the
    same volume when both criteria hit it; modelling both would make the design singular.
    """
    seen: dict[bytes, str] = {}
    repeated = []
    for column in chosen.columns:
        if column.startswith(OPTIONAL_PREFIXES):
            values = chosen[column].to_numpy()
            key = values.tobytes()
            if key in seen:
                repeated.append(f"{column} (same volume as {seen[key]})")
            else:
                seen[key] = column
    if repeated:
        warnings.warn(
            f"{path}: spike regressor(s) {', '.join(repeated)} left out: one regressor per "
            "censored volume",
            stacklevel=3,
        )
        chosen = chosen.drop(columns=[r.split(" ", 1)[0] for r in repeated])
    return chosen


def resolve_columns(patterns: Sequence[str], available: list[str], source: Path) -> list[str]:
    """Expand names and ``fnmatch`` wildcards into columns of a confounds file.

    Parameters
    ----------
    patterns : sequence of str
        Names or wildcards, in the order wanted.
    available : list of str
        Columns of the file.
    source : Path
        The file, for messages.

    Returns
    -------
    list of str
        Matching columns, first match first, each once.

    Raises
    ------
    ConfoundsError
        A name is not a column (close matches are listed), or a wildcard matches nothing.
    """
    found: list[str] = []
    for pattern in patterns:
        if any(char in pattern for char in "*?["):
            matches = [c for c in available if fnmatch.fnmatchcase(c, pattern)]
            if not matches and not pattern.startswith(OPTIONAL_PREFIXES):
                raise ConfoundsError(
                    f"Confound wildcard '{pattern}' matches no column of {source} "
                    f"({_suggest(pattern.split('*')[0] or pattern, available)}); fix the "
                    "pattern in the model file"
                )
        elif pattern in available:
            matches = [pattern]
        else:
            raise ConfoundsError(
                f"Confound column '{pattern}' not found in {source} "
                f"({_suggest(pattern, available)}); fix the name in the model file"
            )
        found += [c for c in matches if c not in found]
    return found


def _suggest(name: str, available: list[str]) -> str:
    close = difflib.get_close_matches(name, available, n=4, cutoff=0.6)
    if close:
        return f"close matches: {', '.join(close)}"
    return f"{len(available)} columns, e.g. {', '.join(available[:6])}"


def _check_not_censored_away(
    chosen: pd.DataFrame, sample_mask: np.ndarray, strategy: tuple[str, ...], path: Path
) -> None:
    # e.g. spike columns (motion_outlier*) next to a strategy that censors the same volumes:
    # constant over the kept volumes, they would make the design rank deficient.
    values = chosen.to_numpy()
    varies = np.ptp(values, axis=0) > 0
    flat_kept = np.ptp(values[sample_mask], axis=0) == 0
    flat = list(chosen.columns[varies & flat_kept])
    if flat:
        raise ConfoundsError(
            f"Confound column(s) {', '.join(flat)} of {path} vary only in volumes that "
            f"strategy {list(strategy)} censors, so they are constant over the kept volumes; "
            "remove them from columns"
        )


def _fill_first_row(chosen: pd.DataFrame, path: Path) -> pd.DataFrame:
    chosen = chosen.reset_index(drop=True).astype("float64")
    if len(chosen) > 1:
        # Derivative columns start with n/a; nilearn copies the second volume's value.
        first = chosen.iloc[0].isna().to_numpy()
        chosen.iloc[0, first] = chosen.iloc[1, first]
    missing = chosen.isna()
    if missing.to_numpy().any():
        column = missing.any(axis=0).idxmax()
        lines = ", ".join(str(i + 2) for i in np.flatnonzero(missing[column].to_numpy())[:5])
        raise ConfoundsError(
            f"Confound column '{column}' of {path} has n/a on line(s) {lines}; only the "
            "first volume may be n/a (it is filled like nilearn does); remove the column "
            "or fix the file"
        )
    return chosen
