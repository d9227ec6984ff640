"""fMRIPrep outputs of one space at several resolutions: the user picks one with --res."""

from __future__ import annotations

import os

import pytest

from glmflow.core.bids import discover_runs
from glmflow.data import make_synthetic_dataset
from glmflow.errors import DatasetError


@pytest.fixture(scope="module")
def two_resolutions(tmp_path_factory):
    bids = make_synthetic_dataset(
        tmp_path_factory.mktemp("res") / "bids", n_subjects=1, n_runs=1, n_volumes=60
    )
    func = bids / "derivatives" / "fmriprep" / "sub-01" / "func"
    for path in sorted(func.glob("*space-MNI152NLin2009cAsym_*")):
        for res in ("1", "2"):
            name = path.name.replace(
                "space-MNI152NLin2009cAsym_", f"space-MNI152NLin2009cAsym_res-{res}_"
            )
            os.link(path, func / name)
        path.unlink()
    return bids


def test_several_resolutions_need_a_choice(two_resolutions):
    with pytest.raises(
        DatasetError,
        match=r"^fMRIPrep wrote space 'MNI152NLin2009cAsym' at several resolutions in \S+ "
        r"\(res-1, res-2\); choose one with --res$",
    ):
        discover_runs(two_resolutions)


@pytest.mark.parametrize("res", ["2", "res-2"])
def test_res_selects_one_resolution(two_resolutions, res):
    (run,) = discover_runs(two_resolutions, res=res)
    assert run.entities["res"] == "2"
    assert "_res-2_" in run.bold and "_res-2_" in run.mask


def test_unknown_res_is_refused(two_resolutions):
    with pytest.raises(DatasetError, match=r"at res-3 in \S+ \(resolutions: 1, 2\); fix --res$"):
        discover_runs(two_resolutions, res="3")
