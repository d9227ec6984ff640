"""Contrast specs and the contrasts generated from a run's conditions.

A :class:`ContrastSpec` is a t or F contrast given as formulas or weight rows; its formulas
follow :mod:`glmflow.core.formula` (the one formula reader of every level).
:func:`condition_contrasts` and :func:`default_contrasts` are glm-express's generated sets.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from glmflow.core.formula import (
    FormulaError,
    StatType,
    check_contrast,
    check_finite,
    formula_terms,
    term,
)
from glmflow.core.model import validation as check
from glmflow.core.model.validation import FrozenMap
from glmflow.errors import ModelSpecError

AutoContrast = Literal["conditions", "pairwise"]


def check_formula(formula: str) -> None:
    """Raise ModelSpecError unless ``formula`` is a weighted sum of design columns.

    The rules are :func:`glmflow.core.formula.formula_terms`'s (column names are checked
    later against each design).
    """
    try:
        formula_terms(formula)
    except FormulaError as err:
        raise ModelSpecError(str(err)) from None


@dataclass(frozen=True)
class ContrastSpec(check.Spec):
    """One contrast: ``expressions`` (one formula for "t", one per row for "F") or
    ``weights`` (rows of {column: weight}); exactly one of the two is given."""

    name: str
    expressions: tuple[str, ...] = ()
    weights: tuple[Mapping[str, float], ...] = ()
    stat_type: StatType = "t"

    def __post_init__(self) -> None:
        name = check.text(self.name, "name")
        if name != name.strip() or any(c in name for c in "/\\") or not name.isprintable():
            raise check.bad("name", "printable, without surrounding spaces, '/' or '\\'", name)
        check.choice(self.stat_type, "stat_type", StatType)
        check.assign(self, "expressions", check.texts(self.expressions, "expressions"))
        for formula in self.expressions:
            try:
                check_formula(formula)
            except ModelSpecError as err:
                raise ModelSpecError(f"Contrast {check.show(name)}: {err}") from None
        if isinstance(self.weights, str | Mapping) or not isinstance(self.weights, Sequence):
            raise check.bad("weights", "a list of {column: weight} rows", self.weights)
        check.assign(self, "weights", tuple(self._row(row) for row in self.weights))
        n_expressions, n_weights = len(self.expressions), len(self.weights)
        check_contrast(name, self.stat_type, n_expressions, n_weights, error=ModelSpecError)

    def _row(self, row: Any) -> FrozenMap:
        if not isinstance(row, Mapping) or not row:
            raise check.bad("weights", "a list of non-empty {column: weight} rows", row)
        for column, weight in row.items():
            check.text(column, "weights")
            if isinstance(weight, float) and not math.isfinite(weight):
                try:
                    check_finite(row, f"Contrast {check.show(self.name)}: 'weights'")
                except FormulaError as err:
                    raise ModelSpecError(str(err)) from None
            check.number(weight, "weights")
        if not any(row.values()):
            raise check.bad("weights", "rows with at least one non-zero weight", row)
        return FrozenMap({c: float(w) for c, w in row.items()})

    __hash__ = check.Spec.__hash__


def _unique(conditions: Sequence[str]) -> list[str]:
    if isinstance(conditions, str):
        raise TypeError("conditions must be a sequence of names, not one string")
    return list(dict.fromkeys(check.text(c, "conditions") for c in conditions))


def condition_contrasts(conditions: Sequence[str]) -> tuple[ContrastSpec, ...]:
    """One "condition vs. baseline" t contrast per condition, named after the condition."""
    return tuple(ContrastSpec(name=c, expressions=(term(c),)) for c in _unique(conditions))


def default_contrasts(conditions: Sequence[str]) -> tuple[ContrastSpec, ...]:
    """glm-express 2.0.3's ``"default"`` contrasts: every pair once, in its order.

    For conditions (a, b, c) in this order: "a-b", "a-c", "b-c" (name == formula, as
    glm-express's ``Subject._default_contrasts``; names that are not identifiers are quoted
    in backticks inside the formula only). Fewer than two conditions give none.
    """
    names = _unique(conditions)
    pairs: dict[str, tuple[str, str]] = {}
    for outer in names:
        for inner in names:
            if outer != inner and f"{inner}-{outer}" not in pairs:
                pairs[f"{outer}-{inner}"] = (outer, inner)
    return tuple(
        ContrastSpec(name=key, expressions=(f"{term(a)}-{term(b)}",))
        for key, (a, b) in pairs.items()
    )


def _check_unique_names(contrasts: Sequence[ContrastSpec]) -> None:
    seen: set[str] = set()
    for contrast in contrasts:
        if not isinstance(contrast, ContrastSpec):
            raise check.bad("contrasts", "a list of contrasts", str(contrast))
        if contrast.name in seen:
            raise ModelSpecError(
                f"Contrast name {check.show(contrast.name)} is used twice; give each contrast a "
                "unique name"
            )
        seen.add(contrast.name)
