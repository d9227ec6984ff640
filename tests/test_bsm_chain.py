"""core/bsm/chain.py: a higher node's contrasts keep their test (review s18 item 20)."""

from __future__ import annotations

import pandas as pd
import pytest
from bids.modeling.statsmodels import ContrastInfo

from glmflow.core.bsm.chain import HigherUnit, _contrasts, check_inference, is_f_test
from glmflow.errors import ModelSpecError

COLUMNS = ["face", "house"]


def _info(test: str, weights) -> ContrastInfo:
    return ContrastInfo("any", ["face"], weights, test, {"contrast": "any", "subject": "01"})


@pytest.mark.parametrize("weights", [[[1]], [1]])
def test_a_one_row_f_contrast_stays_an_f_test(weights):
    contrasts, outputs, dropped = _contrasts([_info("F", weights)], COLUMNS, "dataset", "error")
    assert contrasts == {"any": {"test": "F", "weights": [[1.0, 0.0]]}}
    assert is_f_test(contrasts["any"]) and outputs == {"any": {"subject": "01"}}
    assert dropped == {}


def test_a_t_contrast_is_one_row():
    contrasts, _, _ = _contrasts([_info("t", [1])], COLUMNS, "dataset", "error")
    assert contrasts == {"any": {"test": "t", "weights": [1.0, 0.0]}}
    assert not is_f_test(contrasts["any"])


def test_permutation_refuses_a_one_row_f_contrast():
    contrasts, outputs, _ = _contrasts([_info("F", [[1]])], COLUMNS, "dataset", "error")
    unit = HigherUnit(
        node="fTest",
        level="Dataset",
        key="dataset",
        entities={},
        design=pd.DataFrame({"face": [1.0, 1.0], "house": [0.0, 1.0]}),
        rows=(),
        contrasts=contrasts,
        outputs=outputs,
        method="ols",
    )
    with pytest.raises(ModelSpecError) as err:
        check_inference([unit], "permutation", "m.json")
    assert str(err.value) == (
        "m.json: node 'fTest': contrast 'any' is an F test, and --inference permutation "
        "permutes t contrasts only; use a height method (fdr, fpr, bonferroni, threshold, "
        "tdp) or remove the F contrast"
    )
    check_inference([unit], "fdr", "m.json")
