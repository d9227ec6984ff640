"""Group contrasts: definitions over the design columns turned into weights.

Formulas go through :mod:`glmflow.core.formula`, the one parser of every level.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.linalg import null_space

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


@dataclass(frozen=True)
class TestedSplit:
    """A design and one t contrast as the arguments of nilearn's ``permuted_ols``.

    ``tested`` (n,) and ``confounds`` (n, k) or None span the design, ``model_intercept``
    says whether nilearn adds the constant to the confounds, ``sign_flip`` whether the test
    is of the constant (nilearn sign-flips then: ``tested`` is exactly constant),
    ``dof = n - rank(design)``.
    """

    tested: np.ndarray
    confounds: np.ndarray | None
    model_intercept: bool
    sign_flip: bool
    dof: int

    def null_model(self) -> np.ndarray | None:
        """The reduced model's columns (the confounds, with the constant nilearn adds)."""
        if not self.model_intercept:
            return self.confounds
        ones = np.ones((self.tested.size, 1))
        return ones if self.confounds is None else np.hstack([self.confounds, ones])


def _basis(matrix: np.ndarray) -> np.ndarray:
    """Orthonormal columns spanning ``matrix``'s (n, k) columns of unit scale (abs. tolerance)."""
    u, s, _ = np.linalg.svd(matrix, full_matrices=False)
    return u[:, s > 1e-8]


def _in_span(vector: np.ndarray, basis: np.ndarray | None) -> bool:
    if basis is None or not basis.size:
        return False
    residual = vector - basis @ (basis.T @ vector)
    return bool(np.linalg.norm(residual) <= 1e-8 * np.linalg.norm(vector))


def split_contrast(design: np.ndarray, weights: np.ndarray) -> TestedSplit:
    """Reparametrise a full-rank ``design`` and t contrast ``weights`` (Winkler et al. 2014).

    The tested variate is ``X D c (c'Dc)^-1`` (``D = (X'X)^-1``), whose OLS coefficient is
    ``c'beta``; the confounds span ``X null(c')``, the reduced model (Winkler's
    ``X D C_v (C_v' D C_v)^-1`` has that span; ``X D null(c')`` has not when the columns are
    unbalanced). Nothing is dropped whatever the weights: in a two-sample design tested by
    ``A - B`` the confounds are the grand mean. The constant, when the reduced model holds
    it, is left to nilearn's ``model_intercept``; when only the full model holds it (a mean
    tested), the tested variate is the constant itself, so nilearn sign-flips.
    """
    x = np.asarray(design, float)
    c = np.asarray(weights, float)[:, None]
    d = np.linalg.pinv(x.T @ x)
    tested = (x @ d @ c @ np.linalg.pinv(c.T @ d @ c))[:, 0]
    reduced = _basis(x @ null_space(c.T)) if x.shape[1] > 1 else np.zeros((len(x), 0))
    ones = np.ones(len(x)) / np.sqrt(len(x))
    dof = len(x) - int(np.linalg.matrix_rank(x))
    if _in_span(ones, reduced):
        # the constant goes to nilearn; the other confounds are orthogonal to it
        rest = _basis(reduced - np.outer(ones, ones @ reduced))
        return TestedSplit(tested, rest if rest.shape[1] else None, True, False, dof)
    confounds = reduced if reduced.shape[1] else None
    if _in_span(ones, _basis(x / np.linalg.norm(x, axis=0))):
        sign = 1.0 if tested.sum() >= 0 else -1.0
        return TestedSplit(np.full(len(x), sign), confounds, False, True, dof)
    return TestedSplit(tested, confounds, False, False, dof)
