"""Contrast formulas: one reader for every level, and the rules every contrast obeys.

A formula is a weighted sum of design columns (first-level design columns or group design
columns alike): numbers, column names, ``+ - * /`` and parentheses, e.g.
``"face - 0.5*house - 0.5*scrambled"``. It is read with :mod:`ast` and never evaluated.
The weights equal those of nilearn's ``expression_to_contrast_vector`` (which evaluates the
formula on an identity matrix) wherever nilearn gives a contrast at all; where nilearn gives
something that is not a contrast, the formula is refused instead: a product of two columns
(nilearn returns zeros), a division by a column, a constant added to the sum (nilearn adds it
to every column's weight) and a non-finite weight (``face/0``).

Names: a formula equal to a column name, or without any operator character, is that one
column, matched verbatim (nilearn's rule, so ``"face up"`` and ``"a-b"`` work when they are
columns); other names that are not Python identifiers are quoted in backticks
(```1back` - `0back```), as :func:`term` writes them.
"""

from __future__ import annotations

import ast
import json
import keyword
import math
import re
from collections.abc import Mapping, Sequence
from typing import Literal, get_args

import numpy as np

from glmflow.errors import GlmflowError

__all__ = [
    "FormulaError",
    "MissingTerms",
    "StatType",
    "check_contrast",
    "check_finite",
    "check_rows",
    "formula_terms",
    "formula_weights",
    "term",
]

StatType = Literal["t", "F"]
#: What a contrast does with a term absent from a design (``--missing-conditions``).
MissingTerms = Literal["error", "drop"]
_BACKTICKS = re.compile(r"`([^`]*)`")
_OPERATOR_CHARS = frozenset("+-*/()<>=!&|%^~,[]{}@:;")
_EXAMPLE = (
    'write e.g. "face - 0.5*house - 0.5*scrambled" and quote names that are not identifiers '
    "in backticks (`1back` - `0back`)"
)


class FormulaError(GlmflowError, ValueError):
    """A formula or a weight that is not a contrast; callers add the contrast and the file."""


def _show(value: object) -> str:
    return json.dumps(value, default=str)


def term(column: str) -> str:
    """``column`` as a formula term: as it is when it is an identifier, else in backticks."""
    plain = column.isidentifier() and not keyword.iskeyword(column)
    return column if plain else f"`{column}`"


def check_rows(
    name: str, stat_type: str, n_rows: int, *, where: str = "", error: type[Exception]
) -> None:
    """The one row rule: a t contrast has exactly one row (an F contrast any number >= 1).

    Raises ``error`` (the caller's error type) naming the contrast and, when given, ``where``
    (e.g. the model file).
    """
    if stat_type == "t" and n_rows != 1:
        at = f" in {where}" if where else ""
        raise error(
            f"Contrast {name!r}{at} is a t contrast with {n_rows} rows; give one row or set "
            '"stat_type": "F"'
        )


def check_contrast(
    name: str,
    stat_type: object,
    n_expressions: int,
    n_weights: int,
    *,
    where: str = "",
    error: type[Exception],
) -> None:
    """The shape rules of every contrast: a stat type "t" or "F", either formulas or weight
    rows (not both), and :func:`check_rows`. Raises ``error`` (the caller's error type)."""
    at = f" in {where}" if where else ""
    if stat_type not in get_args(StatType):
        raise error(f"Contrast {name!r}{at} has stat_type {stat_type!r}; use 't' or 'F'")
    if bool(n_expressions) == bool(n_weights):
        raise error(
            f"Contrast {name!r}{at} must give either 'expressions' or 'weights' (not both)"
        )
    check_rows(name, stat_type, n_expressions + n_weights, where=where, error=error)


def check_finite(weights: Mapping[str, float], what: str) -> None:
    """Refuse an infinite or NaN weight; ``what`` says whose weights (e.g. 'Formula "a/0"')."""
    for column, weight in weights.items():
        if not math.isfinite(weight):
            raise FormulaError(
                f"{what} gives column {_show(column)} the non-finite weight {weight}; contrast "
                "weights must be finite numbers"
            )


def _verbatim(text: str) -> str | None:
    """The one column an operator-free formula names (nilearn matches it verbatim)."""
    if any(c in _OPERATOR_CHARS for c in text):
        return None
    try:
        float(text)
    except ValueError:
        return text[1:-1] if len(text) > 1 and text[0] == text[-1] == "`" else text
    return None  # a bare number: parsed below, and refused for naming no column


def formula_terms(formula: str) -> dict[str, float]:
    """The weight of every column ``formula`` names, in order of appearance.

    Raises FormulaError (one line naming the formula and the fix) unless ``formula`` is a
    weighted sum of at least one column with finite weights.
    """
    if not isinstance(formula, str) or not formula.strip():
        raise FormulaError(f"Formula {_show(formula)} must be a non-empty string")
    text = formula.strip()
    column = _verbatim(text)
    if column is not None:
        return {column: 1.0}
    quoted: dict[str, str] = {}

    def _placeholder(match: re.Match) -> str:
        key = f"_glmflow_q{len(quoted)}_"
        quoted[key] = match.group(1)
        return key

    source = _BACKTICKS.sub(_placeholder, text)
    if "`" in source:
        raise FormulaError(f"Formula {_show(formula)} has an unmatched backtick")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as err:
        at = f" at character {err.offset}" if source == text and err.offset else ""
        raise FormulaError(
            f"Formula {_show(formula)} does not parse ({err.msg}{at}); {_EXAMPLE}"
        ) from None
    weights, constant = _linear(tree.body, formula)
    if not weights:
        raise FormulaError(f"Formula {_show(formula)} names no design column")
    if constant != 0:
        raise FormulaError(
            f"Formula {_show(formula)} adds the constant {constant:g} (nilearn would add it to "
            "every column's weight); a contrast is a weighted sum such as 2*face - house"
        )
    result = {quoted.get(n, n): w for n, w in weights.items()}
    check_finite(result, f"Formula {_show(formula)}")
    return result


_Linear = tuple[dict[str, float], float]  # (weight per name, constant term)


def _linear(node: ast.AST, formula: str) -> _Linear:
    """``node`` as weights and a constant; refuses anything that is not linear."""
    if isinstance(node, ast.Name):
        return {node.id: 1.0}, 0.0
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return {}, float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
        weights, constant = _linear(node.operand, formula)
        if isinstance(node.op, ast.UAdd):
            return weights, constant
        return {n: -w for n, w in weights.items()}, -constant
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub | ast.Mult | ast.Div):
        return _binary(node.op, _linear(node.left, formula), _linear(node.right, formula), formula)
    kind = type(getattr(node, "op", node)).__name__  # e.g. Pow, Call, Compare
    raise FormulaError(
        f"Formula {_show(formula)} uses unsupported syntax ({kind}); "
        "use numbers, column names, + - * / and parentheses"
    )


def _binary(op: ast.operator, left: _Linear, right: _Linear, formula: str) -> _Linear:
    (lw, lc), (rw, rc) = left, right
    if isinstance(op, ast.Add | ast.Sub):
        sign = 1.0 if isinstance(op, ast.Add) else -1.0
        weights = dict(lw)
        for name, weight in rw.items():
            weights[name] = weights.get(name, 0.0) + sign * weight
        return weights, lc + sign * rc
    if isinstance(op, ast.Mult):
        if lw and rw:
            raise FormulaError(
                f"Formula {_show(formula)} multiplies two columns; a contrast is a weighted "
                "sum such as 2*face - house"
            )
        weights, factor = (lw, rc) if lw else (rw, lc)
        return {n: w * factor for n, w in weights.items()}, lc * rc
    if rw:
        raise FormulaError(f"Formula {_show(formula)} divides by a column")
    with np.errstate(divide="ignore", invalid="ignore"):  # w/0 -> inf or nan, refused later
        weights = {n: float(np.float64(w) / rc) for n, w in lw.items()}
        return weights, float(np.float64(lc) / rc) if lc else 0.0


def formula_weights(formula: str, columns: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Weights of ``formula`` over ``columns``, and the names it uses that are not columns.

    A formula equal to a column name is that column (even with operator characters in the
    name, as nilearn reads it). Names absent from ``columns`` get no weight (the formula is
    linear, so their terms vanish); the caller decides whether that is an error.
    """
    columns = [str(c) for c in columns]
    terms = {formula: 1.0} if formula in columns else formula_terms(formula)
    vector = np.zeros(len(columns))
    for name, weight in terms.items():
        if name in columns:
            vector[columns.index(name)] = weight
    return vector, tuple(n for n in terms if n not in columns)
