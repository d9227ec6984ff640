"""Group-level (second-level) designs and model fits.

Designs come from ``participants.tsv``; fits run nilearn's
:class:`~nilearn.glm.second_level.SecondLevelModel` (ordinary least squares) or a
precision-weighted fixed-effects / meta-analytic model that uses the first-level variance
maps. Every user mistake raises :class:`~glmflow.errors.GroupModelError` with one line naming
the file, the field, the value and the fix.
"""

from __future__ import annotations

import itertools
import json
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, get_args

import nibabel as nib
import numpy as np
import pandas as pd
from nilearn.glm import Contrast, compute_contrast
from nilearn.glm.second_level import SecondLevelModel, make_second_level_design_matrix
from nilearn.image import index_img, resample_img
from nilearn.maskers import NiftiMasker

from glmflow.core.formula import (
    FormulaError,
    check_contrast,
    check_finite,
    formula_weights,
    term,
)
from glmflow.core.model import GroupDesign, GroupMethod, GroupOutputType
from glmflow.errors import GroupModelError

DESIGNS: tuple[str, ...] = get_args(GroupDesign)
METHODS: tuple[str, ...] = get_args(GroupMethod)
#: the maps of one fit (the spec's output types less "all")
OUTPUT_TYPES: tuple[str, ...] = tuple(t for t in get_args(GroupOutputType) if t != "all")
#: A contrast: a formula ("patients - controls"), a weight vector (t test), a list of formulas
#: or a weight matrix (F test), or a model-file object {"expressions" | "weights", "stat_type"}.
ContrastDef = str | Sequence[str] | Sequence[float] | Sequence[Sequence[float]] | Mapping[str, Any]
ImageLike = str | PathLike | nib.Nifti1Image

_TINY_VARIANCE = 1e-16  # nilearn's floor for variance maps in compute_fixed_effects
_STAT_ENTITY = re.compile(r"(?:^|_)stat-(z|t|p|F)(?:_|\.)")


@dataclass
class GroupFit:
    """Maps produced by :func:`fit_group_model`.

    Attributes
    ----------
    maps : dict
        ``maps[contrast_name][output_type]`` with output types :data:`OUTPUT_TYPES`.
    model_maps : dict
        ``residuals`` and ``predicted`` (4-D, one volume per input map) and ``r_square``;
        empty when ``minimize_memory`` is True.
    contrasts : dict
        The weights of each contrast (1-D for t, 2-D for F), in design column order.
    design : pandas.DataFrame
        The design that was fitted, one row per input map.
    mask_img : nibabel.Nifti1Image
        The mask of the analysed voxels.
    """

    maps: dict[str, dict[str, nib.Nifti1Image]]
    contrasts: dict[str, np.ndarray]
    design: pd.DataFrame
    mask_img: nib.Nifti1Image
    model_maps: dict[str, nib.Nifti1Image] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Designs


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
    design: GroupDesign = "one-sample",
    group_column: str | None = None,
    conditions: Sequence[str] = (),
    covariates: Sequence[str] = (),
    demean_covariates: bool = True,
    source: str = "participants.tsv",
) -> pd.DataFrame:
    """Build a group design matrix from ``participants.tsv``.

    Parameters
    ----------
    participants : pandas.DataFrame
        The participants table (see :func:`load_participants`); ``participant_id`` column.
    subjects : sequence of str
        Subjects in the order of the effect maps (``"01"`` or ``"sub-01"``).
    design : {"one-sample", "two-sample", "paired", "covariates"}
        ``one-sample``: an ``intercept`` column. ``two-sample``: one indicator column per
        level of ``group_column`` (``<group_column>_<level>``, no intercept; two or more
        levels). ``paired``: rows are all subjects in ``conditions[0]`` then all subjects in
        ``conditions[1]``; a ``<c0>_minus_<c1>`` column (1 for ``c0``, 0 for ``c1``, so its
        effect is the mean difference) plus one column per subject. ``covariates``: an
        ``intercept`` plus at least one covariate.
    group_column : str, optional
        Column of ``participants`` holding the group of each subject (``two-sample``).
    conditions : pair of str
        Labels of the two conditions or sessions (``paired``).
    covariates : sequence of str
        Columns of ``participants`` added as regressors (not with ``paired``). Numeric
        columns are used as they are; text columns (e.g. sex) are dummy coded against their
        first level in sorted order, ``<column>_<level>``.
    demean_covariates : bool
        Subtract the mean over the selected subjects from each covariate column, so the other
        columns estimate effects at the mean covariate value.
    source : str
        Name of the participants file, used in error messages.

    Returns
    -------
    pandas.DataFrame
        One row per effect map (index ``label``: participant id, or ``<participant>_<condition>``
        for ``paired``), float columns.
    """
    if design not in DESIGNS:
        raise GroupModelError(f"Unknown group design {design!r} (allowed: {', '.join(DESIGNS)})")
    if "participant_id" not in participants.columns:
        raise GroupModelError(
            f"{source} has no 'participant_id' column; add it, with values like 'sub-01'"
        )
    ids = [_participant_id(s) for s in subjects]
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
    rows = table.set_index("participant_id").loc[ids]

    if design == "paired":
        if covariates:
            raise GroupModelError(
                f"Covariates ({', '.join(covariates)}) cannot be used with a paired design: "
                "its subject columns already absorb every between-subject effect; remove them"
            )
        return check_design(_paired_design(ids, conditions), source=source)
    if design == "covariates" and not covariates:
        raise GroupModelError(
            "The 'covariates' group design needs at least one covariate; name columns of "
            f"{source} in covariates, or use design='one-sample'"
        )
    if design == "two-sample":
        columns = _group_columns(rows, group_column, source)
    else:
        columns = pd.DataFrame({"intercept": 1.0}, index=rows.index)
    for name in covariates:
        block = _covariate_columns(rows, name, source)
        if demean_covariates:
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


def _group_columns(rows: pd.DataFrame, group_column: str | None, source: str) -> pd.DataFrame:
    if group_column is None:
        raise GroupModelError(
            "A two-sample group design needs group_column, the column of "
            f"{source} holding each subject's group"
        )
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
    if len(conditions) != 2 or conditions[0] == conditions[1]:
        raise GroupModelError(
            f"A paired group design needs two different conditions, got {list(conditions)}; "
            "give the two condition or session labels, e.g. ('ses-pre', 'ses-post')"
        )
    first, second = (str(c) for c in conditions)
    n = len(ids)
    effect = _identifier(f"{first}_minus_{second}")
    data = {effect: np.r_[np.ones(n), np.zeros(n)]}
    data.update({_identifier(s): np.tile(np.eye(n)[i], 2) for i, s in enumerate(ids)})
    index = pd.Index([f"{s}_{c}" for c in (first, second) for s in ids], name="label")
    return pd.DataFrame(data, index=index)


def check_design(design: pd.DataFrame, *, source: str = "the design matrix") -> pd.DataFrame:
    """Check that a group design is numeric, finite, full rank and leaves degrees of freedom.

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
    if n_rows < 2:
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
    if n_rows <= n_cols:
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


# ---------------------------------------------------------------------------------------------
# Contrasts


def contrast_weights(
    definition: ContrastDef,
    columns: Sequence[str],
    *,
    name: str,
    source: str = "the contrasts",
) -> np.ndarray:
    """Turn a contrast definition into weights over design ``columns``.

    A formula or a vector gives a 1-D array (t test); a list of formulas or a matrix gives a
    2-D array with one row per tested effect (F test). A mapping in the model-file form
    ``{"expressions": [...]} or {"weights": [{column: weight}, ...]}`` with an optional
    ``"stat_type"`` ("t" or "F") is accepted too. Column names that are not identifiers are
    quoted in backticks inside formulas (`` `group 1` - `group 2` ``).
    """
    columns = [str(c) for c in columns]
    if isinstance(definition, Mapping):
        return _spec_weights(definition, columns, name, source)
    if isinstance(definition, str):
        return _formula_weights(definition, columns, name, source)
    rows = list(definition) if isinstance(definition, (Sequence, np.ndarray)) else None
    if not rows:
        raise GroupModelError(
            f"Contrast {name!r} in {source} is {definition!r}; give a formula, a weight vector "
            "or a list of them"
        )
    if all(isinstance(r, str) for r in rows):
        weights = np.array([_formula_weights(r, columns, name, source) for r in rows])
    else:
        try:
            weights = np.asarray(rows, dtype=float)
        except (TypeError, ValueError):
            raise GroupModelError(
                f"Contrast {name!r} in {source} mixes formulas and numbers ({definition!r}); "
                "give a formula, a list of formulas, a weight vector or a weight matrix"
            ) from None
        if weights.ndim not in (1, 2) or weights.shape[-1] != len(columns):
            raise GroupModelError(
                f"Contrast {name!r} in {source} has {weights.shape[-1]} weights per row but the "
                f"design has {len(columns)} columns ({', '.join(columns)}); give one weight per "
                "column"
            )
        for row in np.atleast_2d(weights):
            try:
                check_finite(
                    dict(zip(columns, row, strict=True)), f"Contrast {name!r} in {source}"
                )
            except FormulaError as err:
                raise GroupModelError(str(err)) from None
    if not np.any(weights):
        raise GroupModelError(
            f"Contrast {name!r} in {source} has only zero weights; give a non-null contrast"
        )
    return weights


def _spec_weights(
    spec: Mapping[str, Any], columns: list[str], name: str, source: str
) -> np.ndarray:
    stat_type = spec.get("stat_type", "t")
    expressions, weight_rows = list(spec.get("expressions") or []), spec.get("weights") or []
    n_given = (len(expressions), len(weight_rows))
    check_contrast(name, stat_type, *n_given, where=source, error=GroupModelError)
    rows: list = expressions
    for row in weight_rows:
        unknown = [c for c in row if c not in columns]
        if unknown:
            raise GroupModelError(
                f"Contrast {name!r} in {source} uses unknown column {unknown[0]!r} "
                f"(available: {', '.join(columns)})"
            )
        rows.append([float(row.get(c, 0.0)) for c in columns])
    weights = np.atleast_2d(contrast_weights(rows, columns, name=name, source=source))
    return weights if stat_type == "F" else weights[0]


def _formula_weights(formula: str, columns: list[str], name: str, source: str) -> np.ndarray:
    try:
        weights, unknown = formula_weights(formula, columns)
    except FormulaError as err:
        raise GroupModelError(f"Contrast {name!r} in {source}: {err}") from None
    if unknown:
        raise GroupModelError(
            f"Contrast {name!r} in {source} uses unknown column {unknown[0]!r} "
            f"(available: {', '.join(columns)})"
        )
    return weights


def parse_contrasts(text: str, *, source: str = "the contrasts") -> dict[str, ContrastDef]:
    """Read contrasts from JSON: ``{name: definition}`` or the model-file list of objects
    ``[{"name": ..., "expressions" | "weights": ..., "stat_type": ...}]``."""
    try:
        data = json.loads(text)
    except ValueError as err:
        raise GroupModelError(f"{source} is not valid JSON ({err})") from None
    if isinstance(data, dict):
        return data
    if isinstance(data, list) and all(isinstance(d, dict) and "name" in d for d in data):
        names = [str(d["name"]) for d in data]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise GroupModelError(
                f"Contrast {repeated[0]!r} is defined twice in {source}; rename one"
            )
        return {str(d["name"]): {k: v for k, v in d.items() if k != "name"} for d in data}
    raise GroupModelError(
        f"{source} must be a JSON object {{name: formula or weights}} or a list of contrast "
        "objects with a name; got " + text[:60]
    )


def parse_contrast(text: str) -> ContrastDef:
    """Read one contrast: a formula (plain text), or JSON (weights, formulas, an object)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


# ---------------------------------------------------------------------------------------------
# Inputs


def check_group_inputs(
    effect_files: Sequence[ImageLike],
    *,
    variance_files: Sequence[ImageLike] | None = None,
    target_affine: np.ndarray | None = None,
) -> None:
    """Check that maps exist, are effect maps (not z/t/p), are 3-D and share one grid.

    Maps on different grids are only allowed when ``target_affine`` resamples them.
    """
    files = list(effect_files) + list(variance_files or [])
    headers = []
    for item in files:
        if isinstance(item, nib.Nifti1Image):
            headers.append(("<in-memory image>", item))
            continue
        path = Path(item)
        match = _STAT_ENTITY.search(path.name)
        if match:
            raise GroupModelError(
                f"Group models take effect maps, but {path} is a stat-{match.group(1)} map; "
                "pass the stat-effect (and stat-variance) maps of the first level"
            )
        if not path.is_file():
            raise GroupModelError(f"Map {path} does not exist; check the path")
        headers.append((str(path), nib.load(path)))
    for label, img in headers:
        if len(img.shape) < 3 or int(np.prod(img.shape[3:])) != 1:
            raise GroupModelError(
                f"Map {label} has shape {img.shape}; group models take one 3-D map per "
                "subject, split 4-D images first"
            )
    if target_affine is not None:
        return
    ref_label, ref = headers[0]
    for label, img in headers[1:]:
        if img.shape[:3] != ref.shape[:3] or not np.allclose(img.affine, ref.affine, atol=1e-4):
            raise GroupModelError(
                f"Maps are on different grids: {ref_label} has shape {ref.shape[:3]} and "
                f"affine {ref.affine.round(3).tolist()}, {label} has shape {img.shape[:3]} and "
                f"affine {img.affine.round(3).tolist()}; resample them or set target_affine "
                "(in a model file: group.target_affine)"
            )


def as_affine(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """A target affine from 9 (3x3) or 16 (4x4) numbers in row order, or a matrix."""
    array = np.asarray(values, dtype=float)
    if array.shape in ((3, 3), (4, 4)):
        return array
    if array.size in (9, 16) and array.ndim == 1:
        return array.reshape(3, 3) if array.size == 9 else array.reshape(4, 4)
    raise GroupModelError(
        f"target_affine must be a 3x3 or 4x4 matrix (9 or 16 numbers), got {array.size} numbers"
    )


def load_maps(
    files: Sequence[ImageLike],
    *,
    target_affine: np.ndarray | None = None,
    target_shape: Sequence[int] | None = None,
) -> list[nib.Nifti1Image]:
    """Load maps once into memory as 3-D images (nilearn re-reads paths for every contrast).

    With ``target_affine``, maps are resampled (continuous interpolation) to one grid: the
    target grid, or, without ``target_shape``, the first map's grid under ``target_affine``.
    nilearn's SecondLevelModel cannot average maps of different shapes to learn its mask.
    """
    images = []
    for item in files:
        img = item if isinstance(item, nib.Nifti1Image) else nib.load(item)
        data = np.asanyarray(img.dataobj).reshape(img.shape[:3])
        images.append(nib.Nifti1Image(data, img.affine))
    if target_affine is None:
        return images
    reference = resample_img(images[0], target_affine=target_affine, target_shape=target_shape)
    affine, shape = reference.affine, reference.shape[:3]
    return [
        img
        if img.shape[:3] == shape and np.allclose(img.affine, affine)
        else resample_img(img, target_affine=affine, target_shape=shape)
        for img in images
    ]


def resolve_group_inputs(
    effect_files: Sequence[ImageLike] | pd.DataFrame,
    design: pd.DataFrame | None,
    confounds: pd.DataFrame | None,
    first_level_contrast: str | None,
    source: str,
) -> tuple[list[ImageLike], pd.DataFrame]:
    """Return maps and their design, from a list + design or a nilearn-style DataFrame."""
    if not isinstance(effect_files, pd.DataFrame):
        if confounds is not None or first_level_contrast is not None:
            raise GroupModelError(
                "confounds and first_level_contrast need the inputs as a DataFrame with "
                "subject_label, map_name and effects_map_path; with a list of maps give a design"
            )
        if design is None:
            raise GroupModelError(
                "A list of effect maps needs a design (one row per map); build one with "
                "make_group_design or read_design"
            )
        files = list(effect_files)
        if len(files) != len(design):
            raise GroupModelError(
                f"The design in {source} has {len(design)} rows but {len(files)} effect maps "
                "were given; give one row per map, in the same order"
            )
        return files, design
    table = effect_files
    needed = ["subject_label", "map_name", "effects_map_path"]
    absent = [c for c in needed if c not in table.columns]
    if absent:
        raise GroupModelError(
            f"The inputs DataFrame has no {absent[0]!r} column (needs {', '.join(needed)})"
        )
    names = sorted(table["map_name"].astype(str).unique())
    if first_level_contrast is None and len(names) > 1:
        raise GroupModelError(
            f"The inputs hold several first-level contrasts ({', '.join(names)}); "
            "choose one with first_level_contrast"
        )
    if first_level_contrast is not None and first_level_contrast not in names:
        raise GroupModelError(
            f"first_level_contrast {first_level_contrast!r} is not a map_name of the inputs "
            f"(available: {', '.join(names)})"
        )
    chosen = first_level_contrast or names[0]
    # nilearn sorts DataFrame inputs by subject label; so do we, so rows keep meaning.
    rows = table[table["map_name"].astype(str) == chosen].sort_values("subject_label")
    labels = rows["subject_label"].astype(str).tolist()
    doubled = sorted({s for s in labels if labels.count(s) > 1})
    if doubled:
        raise GroupModelError(
            f"Subject {doubled[0]!r} has several {chosen!r} maps in the inputs; keep one"
        )
    if design is None:
        design = _design_from_confounds(labels, confounds)
    elif set(map(str, design.index)) == set(labels):
        design = design.loc[[d for s in labels for d in design.index if str(d) == s]]
    elif len(design) != len(labels):
        raise GroupModelError(
            f"The design in {source} has {len(design)} rows but the inputs have "
            f"{len(labels)} {chosen!r} maps; give one row per subject (sorted by subject_label)"
        )
    return rows["effects_map_path"].tolist(), design


def _design_from_confounds(labels: list[str], confounds: pd.DataFrame | None) -> pd.DataFrame:
    if confounds is not None:
        if "subject_label" not in confounds.columns:
            raise GroupModelError(
                "confounds has no 'subject_label' column; add it next to the covariates"
            )
        known = confounds["subject_label"].astype(str).tolist()
        for subject in labels:
            if subject not in known:
                raise GroupModelError(f"Subject {subject!r} has no row in confounds; add one")
        for name in confounds.columns.drop("subject_label"):
            missing = confounds[name].isna()
            if missing.any():
                raise GroupModelError(
                    f"Confound {name!r} is n/a for subject "
                    f"{confounds['subject_label'][missing].iloc[0]!r}; fill in the value"
                )
    with warnings.catch_warnings():
        # nilearn flags cond(X) > X.size, which raw ages next to an intercept exceed;
        # check_design tests the rank properly.
        warnings.filterwarnings("ignore", message="Attention: Design matrix is singular")
        design = make_second_level_design_matrix(labels, confounds)
    design.index = pd.Index(labels, name="label")
    return design


# ---------------------------------------------------------------------------------------------
# Fitting


def fit_group_model(
    effect_files: Sequence[ImageLike] | pd.DataFrame,
    design: pd.DataFrame | None = None,
    *,
    contrasts: Mapping[str, ContrastDef],
    confounds: pd.DataFrame | None = None,
    first_level_contrast: str | None = None,
    variance_files: Sequence[ImageLike] | None = None,
    method: GroupMethod = "ols",
    mask: ImageLike | None = None,
    target_affine: np.ndarray | Sequence[float] | None = None,
    target_shape: Sequence[int] | None = None,
    smoothing_fwhm: float | None = None,
    minimize_memory: bool = True,
    dofs: Sequence[float] | None = None,
    n_jobs: int = 1,
    design_source: str = "the design matrix",
    contrast_source: str = "the contrasts",
) -> GroupFit:
    """Fit a group model and compute every contrast.

    Parameters
    ----------
    effect_files : list of paths or images, or pandas.DataFrame
        One first-level effect map per row of ``design``; or nilearn's DataFrame input with
        columns ``subject_label``, ``map_name``, ``effects_map_path`` (rows are sorted by
        subject label, as nilearn does).
    design : pandas.DataFrame, optional
        The group design (:func:`make_group_design`). With DataFrame inputs it defaults to an
        intercept plus ``confounds``.
    contrasts : mapping of name to contrast
        Formula or weight vector (t test); list of formulas or weight matrix (F test).
    confounds : pandas.DataFrame, optional
        ``subject_label`` plus covariate columns (DataFrame inputs only, as in nilearn).
    first_level_contrast : str, optional
        Which ``map_name`` of DataFrame inputs to model.
    variance_files : list of paths or images, optional
        First-level variance maps, same order as the effect maps (``method="fixed"`` only).
    method : {"ols", "fixed"}
        ``ols``: nilearn's SecondLevelModel (mixed effects via summary statistics).
        ``fixed``: precision-weighted least squares with the first-level variances as known
        variances (fixed effects / meta-analysis); for a one-sample design this equals
        nilearn's ``compute_fixed_effects(..., precision_weighted=True)``.
    mask, target_affine, target_shape, smoothing_fwhm, n_jobs
        As in :class:`~nilearn.glm.second_level.SecondLevelModel`.
    minimize_memory : bool
        When False, also return residuals, predicted and r-squared maps (``ols`` only).
    dofs : sequence of float, optional
        First-level degrees of freedom (``fixed``); the statistic uses their sum, 100 per map
        when omitted (nilearn's convention).
    design_source, contrast_source : str
        Names of the files the design and the contrasts came from, for error messages.

    Returns
    -------
    GroupFit
    """
    if method not in METHODS:
        raise GroupModelError(f"Unknown group method {method!r} (allowed: {', '.join(METHODS)})")
    files, design = resolve_group_inputs(
        effect_files, design, confounds, first_level_contrast, design_source
    )
    design = check_design(design, source=design_source)
    if not contrasts:
        raise GroupModelError(f"No group contrast in {contrast_source}; define at least one")
    weights = {
        name: contrast_weights(definition, design.columns, name=name, source=contrast_source)
        for name, definition in contrasts.items()
    }
    if target_shape is not None and target_affine is None:
        raise GroupModelError("target_shape needs target_affine; give both or neither")
    if target_affine is not None:
        target_affine = as_affine(target_affine)
    if method == "ols" and variance_files is not None:
        raise GroupModelError(
            "variance_files are only used by method='fixed'; drop them or set method='fixed'"
        )
    if method == "fixed":
        _check_fixed_options(files, variance_files, smoothing_fwhm, minimize_memory, dofs)
    check_group_inputs(files, variance_files=variance_files, target_affine=target_affine)

    grid = {"target_affine": target_affine, "target_shape": target_shape}
    effects = load_maps(files, **grid)
    if target_affine is not None:  # the maps now share the grid the masker must use
        target_affine, target_shape = effects[0].affine, effects[0].shape
        grid = {"target_affine": target_affine, "target_shape": target_shape}
    if method == "fixed":
        return _fit_fixed(
            effects, load_maps(variance_files, **grid), design, weights, mask, target_affine,
            target_shape, dofs,
        )  # fmt: skip
    model = SecondLevelModel(
        mask_img=mask,
        target_affine=target_affine,
        target_shape=target_shape,
        smoothing_fwhm=smoothing_fwhm,
        minimize_memory=minimize_memory,
        n_jobs=n_jobs,
    ).fit(effects, design_matrix=design.reset_index(drop=True))
    maps = _contrast_maps(model, weights)
    model_maps = {}
    if not minimize_memory:
        model_maps = {key: _model_attribute(model, key) for key in ("residuals", "predicted")}
        # nilearn returns r-squared as a 4-D image with one volume.
        model_maps["r_square"] = index_img(_model_attribute(model, "r_square"), 0)
    return GroupFit(maps, weights, design, model.masker_.mask_img_, model_maps)


def _contrast_maps(
    model: SecondLevelModel, weights: dict[str, np.ndarray]
) -> dict[str, dict[str, nib.Nifti1Image]]:
    """All output maps of every contrast, fitting the GLM once.

    SecondLevelModel.compute_contrast re-reads, re-masks and refits the maps for every
    contrast; the maps are the same for all of them here, so the first call fits and the
    others reuse its fit through nilearn's public compute_contrast (identical numbers).
    """
    maps = {}
    for name, w in weights.items():
        stat_type = "F" if w.ndim == 2 else "t"
        if not maps:
            maps[name] = model.compute_contrast(
                w, second_level_stat_type=stat_type, output_type="all"
            )
            continue
        contrast = compute_contrast(model.labels_, model.results_, w, stat_type)
        maps[name] = {}
        for key in OUTPUT_TYPES:
            img = model.masker_.inverse_transform(getattr(contrast, key)())
            img.header["descrip"] = f"{key} of contrast {w}"  # as nilearn labels its maps
            maps[name][key] = img
    return maps


def _model_attribute(model: SecondLevelModel, name: str) -> nib.Nifti1Image:
    # nilearn >= 0.14 renamed residuals/predicted/r_square to the fitted-attribute form.
    if hasattr(type(model), f"{name}_"):
        return getattr(model, f"{name}_")
    return getattr(model, name)


def _check_fixed_options(
    files: list,
    variance_files: Sequence[ImageLike] | None,
    smoothing_fwhm: float | None,
    minimize_memory: bool,
    dofs: Sequence[float] | None,
) -> None:
    if variance_files is None or len(variance_files) != len(files):
        got = 0 if variance_files is None else len(variance_files)
        raise GroupModelError(
            f"method='fixed' needs one variance map per effect map ({len(files)}), got {got}; "
            "pass the first-level stat-variance maps in the same order"
        )
    if smoothing_fwhm:
        raise GroupModelError(
            "smoothing_fwhm cannot be used with method='fixed' (smoothing would change the "
            "variance maps); smooth at the first level or use method='ols'"
        )
    if not minimize_memory:
        raise GroupModelError(
            "Residual, predicted and r-squared maps are only available with method='ols'; "
            "set minimize_memory=True"
        )
    if dofs is not None and len(dofs) != len(files):
        raise GroupModelError(
            f"dofs has {len(dofs)} values for {len(files)} maps; give one per map"
        )


def _fit_fixed(
    effects: list[nib.Nifti1Image],
    variances: list[nib.Nifti1Image],
    design: pd.DataFrame,
    weights: dict[str, np.ndarray],
    mask: ImageLike | None,
    target_affine: np.ndarray | None,
    target_shape: Sequence[int] | None,
    dofs: Sequence[float] | None,
) -> GroupFit:
    """Precision-weighted least squares, voxel by voxel, with known variances."""
    # Same masker as nilearn's compute_fixed_effects (mask from the effect maps when absent).
    masker = NiftiMasker(
        mask_img=mask,
        target_affine=target_affine,
        target_shape=target_shape,
        standardize=None,  # nilearn 0.14 warns on the old default False; None is "no scaling"
    )
    masker.fit(effects if mask is None else None)
    y = masker.transform(effects)
    precision = 1.0 / np.maximum(masker.transform(variances), _TINY_VARIANCE)
    x = design.to_numpy()
    xtwx = np.einsum("ni,nv,nj->vij", x, precision, x)
    xtwy = np.einsum("ni,nv->vi", x, precision * y)
    covariance = np.linalg.inv(xtwx)
    beta = np.einsum("vij,vj->vi", covariance, xtwy)
    dof = float(np.sum(dofs)) if dofs is not None else 100.0 * len(effects)
    maps = {}
    for name, w in weights.items():
        matrix = np.atleast_2d(w)
        effect = matrix @ beta.T  # (q, voxels)
        variance = np.einsum("qi,vij,rj->vqr", matrix, covariance, matrix)
        if w.ndim == 1:
            contrast = Contrast(effect[0], variance[:, 0, 0], dof=dof, stat_type="t")
            raw = {"effect_size": effect[0], "effect_variance": variance[:, 0, 0]}
        else:
            # |L' e|^2 = e' V^-1 e for the Cholesky factor L of V^-1: the F statistic with
            # known variances (dispersion 1), without a per-voxel matrix square root.
            whitening = np.linalg.cholesky(np.linalg.inv(variance))
            whitened = np.einsum("vqr,qv->rv", whitening, effect)
            contrast = Contrast(
                whitened, np.ones(effect.shape[1]), dim=len(matrix), dof=dof, stat_type="F"
            )
            raw = {
                "effect_size": effect,
                "effect_variance": np.diagonal(variance, axis1=1, axis2=2).T,
            }
        stats = {key: getattr(contrast, key)() for key in ("z_score", "stat", "p_value")}
        maps[name] = {
            key: masker.inverse_transform(values) for key, values in {**stats, **raw}.items()
        }
    return GroupFit(maps, weights, design, masker.mask_img_)
