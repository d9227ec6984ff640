"""Group-level rules found in review: F maps have one tail, paired designs are not
permuted across subjects, and tdp from the command line tests positive clusters."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from glmflow.core.group.plan import override_group
from glmflow.core.model import GroupSpec, InferenceSpec, load_model
from glmflow.errors import ModelSpecError
from glmflow.workflows.group_level import _is_f_test

MODELS = Path(__file__).resolve().parents[1] / "glmflow" / "data" / "models"


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        ({"expressions": ["a", "b"], "stat_type": "F"}, True),
        ({"expressions": ["a - b"], "stat_type": "t"}, False),
        ([[1, 0], [0, 1]], True),
        (["a", "b"], True),
        ("a - b", False),
        ([1, -1], False),
    ],
)
def test_f_tests_are_recognised(definition, expected):
    assert _is_f_test(definition) is expected


def test_paired_designs_are_not_permuted_across_subjects():
    with pytest.raises(ModelSpecError, match="would shuffle maps across subjects"):
        GroupSpec(
            design="paired",
            conditions=("face", "house"),
            inference=InferenceSpec(method="permutation", two_sided=False),
        )


def test_tdp_from_the_command_line_tests_positive_clusters():
    spec = load_model(MODELS / "faces_model.json")
    assert spec.group.inference.two_sided  # the model's default
    spec = override_group(spec, None, {"method": "tdp"})
    assert spec.group.inference.method == "tdp" and spec.group.inference.two_sided is False
    # an explicit choice still wins (and is refused for tdp, with the reason)
    with pytest.raises(ModelSpecError, match='must be false with method "tdp"'):
        override_group(dataclasses.replace(spec), None, {"method": "tdp", "two_sided": True})


def test_permutation_options_without_permutation_are_refused(tmp_path, capsys):
    from glmflow.cli.main import main

    code = main(
        [str(tmp_path / "bids"), str(tmp_path / "out"), "group", "--model",
         str(MODELS / "faces_model.json"), "--inference", "fdr", "--permutations", "100"]
    )  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == (
        "glmflow: error: --permutations and --seed set a permutation test, but --inference "
        "is 'fdr'; use --inference permutation or leave them out"
    )
