"""Group designs: from ``participants.tsv`` or a design TSV, checked against the data.

The model's group section (:class:`glmflow.core.model.GroupSpec`) is valid when it exists;
these functions check only what depends on the participants table and the subjects.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from os import PathLike

import numpy as np
import pandas as pd

from glmflow.core.formula import term
from glmflow.core.model import GroupDesign, GroupSpec
from glmflow.errors import GroupModelError


def load_participants(path: str | PathLike) -> pd.DataFrame:
    """Read a BIDS ``participants.tsv`` (``n/a`` and empty cells are missing values)."""
    table = pd.read_csv(path, sep="\t", na_values=["n/a", ""], keep_default_na=False)
    if "participant_id" not in table.columns:
        raise GroupModelError(
            f"{path} has no 'participant_id' column (columns: {', '.join(table.columns)}); "
            "add it as the first column, with values like 'sub-01'"
        )
    table["participant_id"] = table["participant_id"].astype(str)
    return table


def _participant_id(label: object) -> str:
    label = str(label)
    return label if label.startswith("sub-") else f"sub-{label}"


def _identifier(text: str) -> str:
    """Column-name form of a label, usable in contrast formulas ('ses-pre' -> 'ses_pre')."""
    name = re.sub(r"\W+", "_", str(text)).strip("_")
    return name if name.isidentifier() else f"_{name}"


def make_group_design(
    participants: pd.DataFrame,
    *,
    subjects: Sequence[str],
    group: GroupSpec,
    source: str = "participants.tsv",
) -> pd.DataFrame:
    """Build a group design matrix from ``participants.tsv``.

    Parameters
    ----------
    participants : pandas.DataFrame
        The participants table (see :func:`load_participants`); ``participant_id`` column.
    subjects : sequence of str
        Subjects in the order of the effect maps (``"01"`` or ``"sub-01"``).
    group : GroupSpec
        The model's group section, valid by construction. ``design`` "one-sample": an
        ``intercept`` column. "two-sample": one indicator column per level of
        ``group_column`` (``<group_column>_<level>``, no intercept; two or more levels).
        "paired": rows are all subjects in ``conditions[0]`` then all subjects in
        ``conditions[1]``; a ``<c0>_minus_<c1>`` column (1 for ``c0``, 0 for ``c1``, so its
        effect is the mean difference) plus one column per subject. "covariates": an
        ``intercept`` plus the covariates. ``covariates`` are columns of ``participants``:
        numeric ones as they are, text ones (e.g. sex) dummy coded against their first level
        in sorted order, ``<column>_<level>``; demeaned over the selected subjects when
        ``demean_covariates``, so the other columns estimate effects at the mean value.
    source : str
        Name of the participants file, used in error messages.

    Returns
    -------
    pandas.DataFrame
        One row per effect map (index ``label``: participant id, or ``<participant>_<condition>``
        for ``paired``), float columns.
    """
    ids = [_participant_id(s) for s in subjects]
    rows = _subject_rows(participants, ids, source)
    if group.design == "paired":
        return check_design(_paired_design(ids, group.conditions), source=source)
    if group.design == "two-sample":
        columns = _group_columns(rows, group.group_column, source)
    else:
        columns = pd.DataFrame({"intercept": 1.0}, index=rows.index)
    for name in group.covariates:
        block = _covariate_columns(rows, name, source)
        if group.demean_covariates:
            block = block - block.mean()
        clash = [c for c in block.columns if c in columns.columns]
        if clash:
            raise GroupModelError(
                f"Covariate column {clash[0]!r} from {source} clashes with a design column of "
                "the same name; rename the covariate"
            )
        columns = columns.join(block)
    columns.index.name = "label"
    return check_design(columns.astype(float), source=source)


def _subject_rows(participants: pd.DataFrame, ids: list[str], source: str) -> pd.DataFrame:
    """The participants table's row of every subject, in order: each once, none missing."""
    if "participant_id" not in participants.columns:
        raise GroupModelError(
            f"{source} has no 'participant_id' column; add it, with values like 'sub-01'"
        )
    if len(ids) < 2:
        raise GroupModelError(
            f"A group model needs at least two subjects, got {len(ids)} ({', '.join(ids)}); "
            "add subjects"
        )
    repeated = sorted({s for s in ids if ids.count(s) > 1})
    if repeated:
        raise GroupModelError(
            f"Subject {repeated[0]!r} is listed more than once; give each subject once"
        )
    table = participants.assign(participant_id=participants["participant_id"].map(_participant_id))
    known = table["participant_id"].tolist()
    missing = [s for s in ids if s not in known]
    if missing:
        raise GroupModelError(
            f"Subject {missing[0]!r} is missing from {source} (column participant_id); "
            f"add a row for it or leave the subject out"
        )
    doubled = sorted({s for s in ids if known.count(s) > 1})
    if doubled:
        raise GroupModelError(
            f"Subject {doubled[0]!r} has more than one row in {source}; keep one row per subject"
        )
    return table.set_index("participant_id").loc[ids]


def _participant_values(rows: pd.DataFrame, column: str, role: str, source: str) -> pd.Series:
    """The values of a participants.tsv column for the selected subjects, none n/a."""
    if column not in rows.columns:
        raise GroupModelError(
            f"{role} {column!r} is not a column of {source} "
            f"(available: {', '.join(map(str, rows.columns))})"
        )
    values = rows[column]
    if values.isna().any():
        subject = values.index[values.isna()][0]
        what = "group" if role == "Group column" else "value"
        raise GroupModelError(
            f"{role} {column!r} is n/a for subject {subject!r} in {source}; "
            f"fill in the {what} or leave the subject out"
        )
    return values


def _indicators(values: pd.Series, levels: list[str], prefix: str) -> pd.DataFrame:
    """One 0/1 column per level, named ``<prefix>_<level>`` (usable in formulas)."""
    return pd.DataFrame(
        {_identifier(f"{prefix}_{level}"): (values == level).astype(float) for level in levels},
        index=values.index,
    )


def _group_columns(rows: pd.DataFrame, group_column: str, source: str) -> pd.DataFrame:
    groups = _participant_values(rows, group_column, "Group column", source).astype(str)
    levels = sorted(groups.unique())
    if len(levels) < 2:
        raise GroupModelError(
            f"Group column {group_column!r} of {source} has a single value {levels[0]!r} for "
            "the selected subjects; a two-sample design needs two groups (or use one-sample)"
        )
    return _indicators(groups, levels, group_column)


def _covariate_columns(rows: pd.DataFrame, name: str, source: str) -> pd.DataFrame:
    values = _participant_values(rows, name, "Covariate", source)
    numeric = pd.to_numeric(values, errors="coerce")
    if not numeric.isna().any():
        return pd.DataFrame({_identifier(name): numeric.astype(float)}, index=rows.index)
    values = values.astype(str)
    levels = sorted(values.unique())
    if len(levels) < 2:
        raise GroupModelError(
            f"Covariate {name!r} has the single value {levels[0]!r} for all selected "
            f"subjects in {source}; remove it from the covariates"
        )
    # Treatment coding against the first level keeps the design full rank next to an
    # intercept or a set of group indicators.
    return _indicators(values, levels[1:], name)


def _paired_design(ids: list[str], conditions: Sequence[str]) -> pd.DataFrame:
    """Two different conditions (the spec's rule): subject columns plus their difference."""
    first, second = (str(c) for c in conditions)
    n = len(ids)
    effect = _identifier(f"{first}_minus_{second}")
    data = {effect: np.r_[np.ones(n), np.zeros(n)]}
    data.update({_identifier(s): np.tile(np.eye(n)[i], 2) for i, s in enumerate(ids)})
    index = pd.Index([f"{s}_{c}" for c in (first, second) for s in ids], name="label")
    return pd.DataFrame(data, index=index)


def check_design(
    design: pd.DataFrame, *, source: str = "the design matrix", fixed: bool = False
) -> pd.DataFrame:
    """Check that a group design is numeric, finite, full rank and leaves degrees of freedom.

    ``fixed``: the fit is fixed effects (known variances, dof from the inputs), so one map is
    enough (its effect and variance pass through) and no dof is needed from the rows.
    Returns the design with float columns.
    """
    if design.shape[1] == 0:
        raise GroupModelError(f"The design in {source} has no columns; add regressors")
    duplicated = design.columns[design.columns.duplicated()]
    if len(duplicated):
        raise GroupModelError(
            f"The design in {source} has the column {duplicated[0]!r} twice; rename one"
        )
    for name in design.columns:
        values = pd.to_numeric(design[name], errors="coerce")
        bad = ~np.isfinite(values.to_numpy(dtype=float))
        if bad.any():
            raise GroupModelError(
                f"Design column {name!r} in {source} has the non-numeric or missing value "
                f"{design[name].iloc[int(np.argmax(bad))]!r} in row "
                f"{design.index[int(np.argmax(bad))]!r}; use numbers only"
            )
    design = design.astype(float)
    n_rows, n_cols = design.shape
    if fixed and n_rows < 1:
        raise GroupModelError(
            f"A fixed-effects model needs a map; the design in {source} has no row, add one"
        )
    if n_rows < 2 and not fixed:
        raise GroupModelError(
            f"A group model needs at least two maps, the design in {source} has {n_rows} row; "
            "add subjects"
        )
    x = design.to_numpy()
    rank = np.linalg.matrix_rank(x)
    if rank < n_cols:
        zero = [c for c in design.columns if not design[c].any()]
        if zero:
            raise GroupModelError(
                f"The design in {source} is singular: column {zero[0]!r} is all zeros (a "
                "covariate that is constant across subjects is zero once demeaned); remove it"
            )
        tied = [
            c
            for j, c in enumerate(design.columns)
            if np.linalg.matrix_rank(np.delete(x, j, axis=1)) == rank
        ]
        raise GroupModelError(
            f"The design in {source} is singular: columns {', '.join(tied)} are linearly "
            f"dependent (rank {rank} < {n_cols} columns); remove or recode one of them"
        )
    if n_rows <= n_cols and not fixed:
        raise GroupModelError(
            f"The design in {source} has {n_cols} columns for {n_rows} maps, which leaves no "
            "degrees of freedom; add subjects or remove regressors"
        )
    return design


def read_design(path: str | PathLike) -> pd.DataFrame:
    """Read a design TSV: numeric regressor columns, plus an optional row-name column
    (``label``, or ``participant_id`` as in participants.tsv)."""
    table = pd.read_csv(path, sep="\t", na_values=["n/a", ""], keep_default_na=False)
    for name in ("label", "participant_id"):
        if name in table.columns:
            table = table.set_index(name)
            table.index = table.index.astype(str).rename("label")
            break
    return check_design(table, source=str(path))


def default_group_contrasts(
    design: pd.DataFrame,
    *,
    design_type: GroupDesign,
    conditions: Sequence[str] = (),
    group_column: str | None = None,
) -> dict[str, str]:
    """The contrasts of a design built by :func:`make_group_design` when the model gives none.

    ``one-sample`` and ``covariates``: ``mean`` (the intercept) and one contrast per
    covariate column, named after it (its slope, or a dummy-coded difference).
    ``two-sample``: every difference of two groups, both ways (``"patient - control"`` and
    ``"control - patient"``), and the covariate columns. ``paired``: ``"<c0> - <c1>"``.
    Formulas are column names (``contrast_weights`` matches a whole name verbatim).
    """
    columns = [str(c) for c in design.columns]
    if design_type == "paired":
        return {f"{conditions[0]} - {conditions[1]}": columns[0]}
    contrasts = {}
    if design_type == "two-sample":
        # make_group_design puts the group indicators first: they sum to one on every row
        total = design.iloc[:, 0].copy()
        n_groups = 1
        while not np.allclose(total, 1.0) and n_groups < len(columns):
            total += design.iloc[:, n_groups]
            n_groups += 1
        groups, prefix = columns[:n_groups], f"{_identifier(str(group_column))}_"
        levels = [c.removeprefix(prefix) for c in groups]
        for (a, col_a), (b, col_b) in itertools.permutations(zip(levels, groups, strict=True), 2):
            contrasts[f"{a} - {b}"] = f"{term(col_a)} - {term(col_b)}"
        covariates = columns[n_groups:]
    else:
        contrasts["mean"] = "intercept"
        covariates = [c for c in columns if c != "intercept"]
    contrasts.update({c: c for c in covariates})
    return contrasts
