"""Real files: every bids-examples events file, and nilearn's real fMRIPrep confounds files.

Oddities met in the 2,123 bids-examples ``func/*_events.tsv`` files (counted below): CRLF line
endings (144 files, all ds000117), no ``trial_type`` column (158: ds000117 names conditions in
``stim_type``, genetics_ukbb has onset and duration only), events with n/a duration and/or
trial_type (286 files of ds002, ds007, ds008, ds109, ds110, ds116), cells padded with spaces
(ds102, ds110), spaces and numbers in trial types, zero onsets and durations, negative onsets
(3 files), repeated identical events (2 files of ds107).
"""

from __future__ import annotations

import shutil
import warnings
from collections import Counter
from pathlib import Path

import nilearn
import numpy as np
import pandas as pd
import pytest
from nilearn.interfaces.fmriprep import load_confounds

from glmflow.core.confounds import select_confounds
from glmflow.core.events import parse_events, read_events
from glmflow.errors import ConfoundsError, GlmflowError

pytestmark = pytest.mark.realdata


def _classify(message: str) -> str:
    if "has no 'trial_type' column" in message:
        return "no trial_type column"
    if "event(s) with n/a" in message:
        return "n/a onset/duration/trial_type"
    return message


def test_every_bids_examples_events_file_parses_or_is_refused_cleanly(realdata):
    files = sorted((realdata / "bids-examples").glob("**/func/*_events.tsv"))
    outcome: Counter[str] = Counter()
    refused_by_dataset: Counter[tuple[str, str]] = Counter()
    warned: Counter[str] = Counter()
    incomplete: list[Path] = []
    n_events = 0
    for path in files:
        dataset = path.relative_to(realdata / "bids-examples").parts[0]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                tidy = parse_events(read_events(path), source=path.name)
            except GlmflowError as err:  # anything else fails the test
                tidy = None
                reason = _classify(str(err))
                outcome[reason] += 1
                refused_by_dataset[dataset, reason] += 1
                if reason.startswith("n/a"):
                    incomplete.append(path)
        for warning in caught:
            text = str(warning.message)
            warned["negative onsets" if "negative onsets" in text else text.split(": ")[1]] += 1
        if tidy is not None:
            outcome["parsed"] += 1
            n_events += len(tidy)
            assert tidy["trial_type"].map(type).eq(str).all()
            assert not tidy[["onset", "duration", "modulation"]].isna().any().any()

    assert len(files) == 2123
    assert outcome == {
        "parsed": 1679,
        "n/a onset/duration/trial_type": 286,
        "no trial_type column": 158,
    }
    assert refused_by_dataset == {
        ("ds000117", "no trial_type column"): 144,
        ("genetics_ukbb", "no trial_type column"): 14,
        ("ds002", "n/a onset/duration/trial_type"): 81,
        ("ds116", "n/a onset/duration/trial_type"): 80,
        ("ds109", "n/a onset/duration/trial_type"): 67,
        ("ds007", "n/a onset/duration/trial_type"): 23,
        ("ds110", "n/a onset/duration/trial_type"): 20,
        ("ds008", "n/a onset/duration/trial_type"): 15,
    }
    assert warned == {
        "negative onsets": 3,
        "9 event(s) repeat another event's condition, onset and duration; nilearn sums "
        "their amplitudes": 1,
        "6 event(s) repeat another event's condition, onset and duration; nilearn sums "
        "their amplitudes": 1,
    }
    assert n_events > 100_000

    # The explicit option turns every n/a refusal into a parse, with a warning each.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for path in incomplete:
            parse_events(read_events(path), incomplete_events="drop", source=path.name)
    dropped = [w for w in caught if "as incomplete_events='drop' asks" in str(w.message)]
    assert len(dropped) == 286


def test_ds000117_parses_with_its_condition_column(realdata):
    files = sorted((realdata / "bids-examples" / "ds000117").glob("**/func/*_events.tsv"))
    conditions = set()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for path in files:
            events = read_events(path, condition_column="stim_type")
            tidy = parse_events(events, condition_column="stim_type", incomplete_events="drop")
            conditions |= set(tidy["trial_type"])
    assert len(files) == 144
    assert conditions == {"FAMOUS", "UNFAMILIAR", "SCRAMBLED"}
    # Rows without a stimulus type (trigger 999) are dropped with one warning per file.
    assert len(caught) == 144
    assert all("event(s) with n/a stim_type" in str(w.message) for w in caught)


# --- nilearn's real fMRIPrep confounds files ---------------------------------------------

DATA = Path(nilearn.__file__).parent / "interfaces" / "fmriprep" / "data"
FILES = {
    # fMRIPrep < 20.2 naming (_regressors), 189 columns, one non-steady-state volume
    "old": ("test_desc-confounds_regressors.tsv", "test_desc-confounds_regressors.json"),
    # fMRIPrep >= 21 naming (_timeseries), spike columns for 23 of 30 volumes
    "v21": (
        "test-v21_desc-confounds_timeseries.tsv",
        "test-v21_desc-confounds_timeseries.json",
    ),
}


@pytest.fixture(params=sorted(FILES))
def fmriprep_run(request, tmp_path):
    """A real confounds file (and sidecar) under fMRIPrep names, plus its BOLD path."""
    tsv, sidecar = FILES[request.param]
    suffix = "timeseries" if request.param == "v21" else "regressors"
    target = tmp_path / f"sub-01_task-rest_desc-confounds_{suffix}.tsv"
    shutil.copyfile(DATA / tsv, target)
    shutil.copyfile(DATA / sidecar, target.with_suffix(".json"))
    return target, tmp_path / "sub-01_task-rest_desc-preproc_bold.nii.gz"


STRATEGIES = [
    {"strategy": ("motion", "high_pass", "wm_csf")},
    {"strategy": ("motion", "wm_csf", "global_signal"), "motion": "power2", "wm_csf": "full"},
    {
        "strategy": ("motion", "high_pass", "compcor"),
        "compcor": "anat_combined",
        "n_compcor": 2,
    },
    {"strategy": ("high_pass", "compcor"), "compcor": "temporal_anat_separated"},
    {"strategy": ("global_signal",), "global_signal": "derivatives", "demean": False},
]


@pytest.mark.parametrize("options", STRATEGIES)
def test_strategies_equal_load_confounds_on_real_files(fmriprep_run, options):
    confounds_file, bold = fmriprep_run
    mine, mine_mask = select_confounds(confounds_file, **options)
    theirs, their_mask = load_confounds(str(bold), **options)
    assert len(mine) == 30 and not mine.isna().any().any()
    pd.testing.assert_frame_equal(mine, theirs.astype("float64"))
    np.testing.assert_array_equal(mine_mask, their_mask)


def test_explicit_columns_equal_load_confounds_on_real_files(fmriprep_run):
    confounds_file, bold = fmriprep_run
    # non_steady_state gives the same censoring (and so the same means) as nilearn's.
    mine, mine_mask = select_confounds(
        confounds_file,
        strategy=("non_steady_state",),
        columns=("trans_?", "rot_?", "csf*", "white_matter*", "a_comp_cor_0[0-2]"),
    )
    theirs, their_mask = load_confounds(
        str(bold), strategy=("motion", "wm_csf"), motion="basic", wm_csf="full"
    )
    np.testing.assert_array_equal(mine_mask, their_mask)
    assert set(theirs.columns) < set(mine.columns)
    pd.testing.assert_frame_equal(mine[theirs.columns], theirs.astype("float64"))
    assert [c for c in mine.columns if c.startswith("a_comp")] == [
        "a_comp_cor_00",
        "a_comp_cor_01",
        "a_comp_cor_02",
    ]
    assert not mine.isna().any().any()


def test_scrubbing_real_files(fmriprep_run):
    confounds_file, bold = fmriprep_run
    options = {"strategy": ("motion", "scrub"), "fd_threshold": 0.5, "scrub": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        theirs, their_mask = load_confounds(str(bold), **options)
    if their_mask.size == 0:  # v21: every volume is an outlier; nilearn only warns
        with pytest.raises(ConfoundsError, match="Scrubbing censors every volume"):
            select_confounds(confounds_file, **options)
        return
    mine, mine_mask = select_confounds(confounds_file, **options)
    np.testing.assert_array_equal(mine_mask, their_mask)
    pd.testing.assert_frame_equal(mine, theirs.astype("float64"))
