"""Group contrasts: definitions over the design columns turned into weights.

Formulas go through :mod:`glmflow.core.formula`, the one parser of every level.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from glmflow.core.formula import FormulaError, check_contrast, check_finite, formula_weights
from glmflow.errors import GroupModelError

#: A contrast: a formula ("patients - controls"), a weight vector (t test), a list of formulas
#: or a weight matrix (F test), or a model-file object {"expressions" | "weights", "stat_type"}.
ContrastDef = str | Sequence[str] | Sequence[float] | Sequence[Sequence[float]] | Mapping[str, Any]


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
