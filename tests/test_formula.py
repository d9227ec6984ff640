"""One formula reader for every level: nilearn's weights, without eval; the shared rules."""

from __future__ import annotations

import re

import numpy as np
import pytest
from nilearn.glm import expression_to_contrast_vector

from glmflow.core.contrasts import contrast_weights as first_level_weights
from glmflow.core.formula import FormulaError, check_rows, formula_terms, formula_weights, term
from glmflow.core.group import contrast_weights as group_weights
from glmflow.core.model import ContrastSpec, ModelSpec
from glmflow.errors import ContrastError, GroupModelError, ModelSpecError

COLUMNS = ["face", "house", "scrambled", "face_x_rt", "a-b", "drift_1", "constant"]


@pytest.mark.parametrize(
    "formula",
    ["face", "face - house", "2*face - house/2", "-(face + house)/2", "face_x_rt",
     "0.5*(face - house) + scrambled", "face - 0.5*house - 0.5*scrambled", "a-b",
     "`a-b` - 2*face", "+face - -house", "face/3*3 - house", "3*(2*face)"],
)  # fmt: skip
def test_weights_equal_nilearn(formula):
    ours, missing = formula_weights(formula, COLUMNS)
    assert missing == ()
    theirs = expression_to_contrast_vector(formula, COLUMNS)
    np.testing.assert_array_equal(ours, theirs)


def test_names_absent_from_the_columns_get_no_weight():
    weights, missing = formula_weights("face - 2*cat + `dog 1`", COLUMNS)
    assert weights.tolist() == [1, 0, 0, 0, 0, 0, 0] and missing == ("cat", "dog 1")
    assert formula_terms("face up") == {"face up": 1.0}  # no operator: one column, verbatim
    assert formula_terms("`1back`") == {"1back": 1.0}


@pytest.mark.parametrize(
    ("formula", "message"),
    [
        ("face/0", 'Formula "face/0" gives column "face" the non-finite weight inf; contrast '
         "weights must be finite numbers"),
        ("(face - house)/0", 'Formula "(face - house)/0" gives column "face" the non-finite '
         "weight inf"),
        ("1e308*face*10", 'Formula "1e308*face*10" gives column "face" the non-finite weight'),
        ("face + 1", 'Formula "face + 1" adds the constant 1 (nilearn would add it to every '
         "column's weight); a contrast is a weighted sum such as 2*face - house"),
        ("__import__('os').getcwd()", "uses unsupported syntax (Call)"),
        ("face[0]", "uses unsupported syntax (Subscript)"),
        ("face - house)", "does not parse (unmatched ')' at character 13)"),
    ],
)  # fmt: skip
def test_formulas_that_are_not_contrasts_are_refused(formula, message):
    with pytest.raises(FormulaError, match=re.escape(message)):
        formula_terms(formula)


def test_term_quotes_what_is_not_an_identifier():
    assert [term(c) for c in ["face", "1back", "face up", "class", "a-b"]] == [
        "face", "`1back`", "`face up`", "`class`", "`a-b`",
    ]  # fmt: skip
    for column in ["1back", "face up", "class", "a-b"]:
        assert formula_terms(f"{term(column)} - face") == {column: 1.0, "face": -1.0}


def test_one_t_row_rule_at_every_level():
    expected = 'Contrast \'x\' is a t contrast with 2 rows; give one row or set "stat_type": "F"'
    with pytest.raises(ContrastError, match=f"^{re.escape(expected)}$"):
        check_rows("x", "t", 2, error=ContrastError)
    check_rows("x", "F", 2, error=ContrastError)
    with pytest.raises(ModelSpecError, match=f"^{re.escape(expected)}$"):
        ContrastSpec(name="x", expressions=("face", "house"))
    with pytest.raises(ContrastError, match=f"^{re.escape(expected)}$"):
        first_level_weights({"name": "x", "expressions": ["face", "house"]}, COLUMNS)
    at = expected.replace("'x' is", "'x' in m.json is")
    with pytest.raises(GroupModelError, match=f"^{re.escape(at)}$"):
        group_weights({"expressions": ["face", "house"]}, COLUMNS, name="x", source="m.json")


# issue 14: a non-finite weight is an error at load, naming the file, the contrast, the value
NON_FINITE = [
    ({"name": "x", "expressions": ["face/0"]},
     """Contrast "x": Formula "face/0" gives column "face" the non-finite weight inf; contrast """
     "weights must be finite numbers (in m.json)"),
    ({"name": "x", "weights": [{"face": float("inf")}]},
     """Contrast "x": 'weights' gives column "face" the non-finite weight inf; contrast """
     "weights must be finite numbers (in m.json)"),
    ({"name": "x", "stat_type": "F", "weights": [{"face": 1}, {"house": float("nan")}]},
     """Contrast "x": 'weights' gives column "house" the non-finite weight nan"""),
]  # fmt: skip


@pytest.mark.parametrize(("contrast", "message"), NON_FINITE)
def test_non_finite_weights_are_refused_at_load(contrast, message):
    data = {"schema_version": 1, "name": "m", "task": "faces", "contrasts": [contrast]}
    with pytest.raises(ModelSpecError, match=re.escape(message)) as info:
        ModelSpec.from_dict(data, source="m.json")
    assert "\n" not in str(info.value)
    group = {"schema_version": 1, "name": "m", "task": "faces", "group": {"contrasts": [contrast]}}
    with pytest.raises(ModelSpecError, match=re.escape(message.removesuffix(" (in m.json)"))):
        ModelSpec.from_dict(group, source="m.json")


def test_non_finite_weights_are_refused_at_the_other_levels():
    with pytest.raises(ContrastError, match=re.escape(
        "Contrast 'x': 'weights' gives column \"face\" the non-finite weight inf"
    )):  # fmt: skip
        first_level_weights({"name": "x", "weights": [{"face": np.inf}]}, COLUMNS)
    with pytest.raises(ContrastError, match=re.escape(
        """Contrast 'x': Formula "face/0" gives column "face" the non-finite weight inf"""
    )):  # fmt: skip
        first_level_weights({"name": "x", "expressions": ["face/0"]}, COLUMNS)
    message = (
        "Contrast 'c' in cli gives column \"house\" the non-finite weight inf; contrast weights "
        "must be finite numbers"
    )
    with pytest.raises(GroupModelError, match=f"^{re.escape(message)}$"):
        group_weights([0, np.inf, 0, 0, 0, 0, 0], COLUMNS, name="c", source="cli")
