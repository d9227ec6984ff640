"""glmflow.core.confounds: explicit columns, nilearn strategies, sample masks, files."""

from __future__ import annotations

import json
import re

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn.interfaces.fmriprep import load_confounds

from glmflow.core.confounds import (
    read_confounds,
    resolve_columns,
    select_confounds,
    write_confounds,
)
from glmflow.errors import ConfoundsError, ModelSpecError

N = 12
MOTION = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]


def _fmriprep_table(seed: int = 0) -> pd.DataFrame:
    """A small fMRIPrep-like confounds table: n/a in the first row of derivative columns."""
    rng = np.random.default_rng(seed)
    table = {}
    for base in [*MOTION, "csf", "white_matter", "global_signal"]:
        values = rng.normal(size=N)
        derivative = np.r_[np.nan, np.diff(values)]
        table[base] = values
        table[f"{base}_derivative1"] = derivative
        table[f"{base}_power2"] = values**2
        table[f"{base}_derivative1_power2"] = derivative**2
    table["framewise_displacement"] = np.r_[np.nan, [0.1] * 5, 0.9, [0.1] * 5]
    table["std_dvars"] = np.r_[np.nan, [1.0] * (N - 1)]
    table["non_steady_state_outlier00"] = np.eye(N)[0]
    table["motion_outlier00"] = np.eye(N)[6]
    table["cosine00"] = np.cos(np.pi * (np.arange(N) + 0.5) / N)
    return pd.DataFrame(table)


@pytest.fixture
def confounds_file(tmp_path):
    path = tmp_path / "sub-01_task-x_desc-confounds_timeseries.tsv"
    _fmriprep_table().to_csv(path, sep="\t", index=False, na_rep="n/a")
    return path


def _nilearn(confounds_file, **options):
    """nilearn's own answer, through the fMRIPrep file naming it expects."""
    image = confounds_file.parent / "sub-01_task-x_desc-preproc_bold.nii.gz"
    return load_confounds(str(image), **options)


# --- explicit columns --------------------------------------------------------------------


def test_explicit_columns_fill_first_row_and_demean_like_nilearn(confounds_file):
    raw = _fmriprep_table()
    confounds, mask = select_confounds(confounds_file, columns=["trans_x", "trans_x_derivative1"])
    assert mask is None
    assert list(confounds.columns) == ["trans_x", "trans_x_derivative1"]
    derivative = raw["trans_x_derivative1"].to_numpy().copy()
    derivative[0] = derivative[1]
    np.testing.assert_allclose(confounds["trans_x_derivative1"], derivative - derivative.mean())
    np.testing.assert_allclose(confounds["trans_x"], raw["trans_x"] - raw["trans_x"].mean())
    kept, _ = select_confounds(confounds_file, columns=["trans_x"], demean=False)
    np.testing.assert_array_equal(kept["trans_x"], raw["trans_x"])


def test_explicit_motion_columns_equal_nilearn_basic_motion(confounds_file):
    mine, mask = select_confounds(confounds_file, columns=["trans_?", "rot_?"])
    # Explicit columns censor nothing, so they are demeaned over every volume; nilearn's
    # strategy censors the non-steady-state volume, so compare with its undemeaned output.
    theirs, _ = _nilearn(confounds_file, strategy=("motion",), motion="basic", demean=False)
    assert mask is None
    assert list(mine.columns) == MOTION and sorted(theirs.columns) == sorted(MOTION)
    pd.testing.assert_frame_equal(mine, (theirs - theirs.mean())[MOTION])


def test_wildcards_keep_order_and_each_column_once(confounds_file):
    columns = list(_fmriprep_table().columns)
    found = resolve_columns(
        ["rot_z", "rot_z*", "csf", "motion_outlier*", "non_steady_*"],
        columns,
        confounds_file,
    )
    assert found == [
        "rot_z",
        "rot_z_derivative1",
        "rot_z_power2",
        "rot_z_derivative1_power2",
        "csf",
        "motion_outlier00",
        "non_steady_state_outlier00",
    ]


def test_spike_column_wildcards_may_match_nothing(tmp_path):
    path = tmp_path / "clean_desc-confounds_timeseries.tsv"
    pd.DataFrame({"trans_x": np.arange(4.0)}).to_csv(path, sep="\t", index=False)
    confounds, mask = select_confounds(
        path, columns=["trans_x", "motion_outlier*", "non_steady_state_outlier*"]
    )
    assert list(confounds.columns) == ["trans_x"] and mask is None


def test_nothing_selected_gives_an_empty_table_with_one_row_per_volume(confounds_file):
    confounds, mask = select_confounds(confounds_file)
    assert confounds.shape == (N, 0) and mask is None


# --- strategies --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"strategy": ("motion",), "motion": "full"},
        {"strategy": ("motion", "wm_csf", "high_pass"), "motion": "derivatives"},
        {"strategy": ("global_signal", "wm_csf"), "global_signal": "full", "wm_csf": "power2"},
        {"strategy": ("motion", "scrub"), "motion": "basic", "scrub": 0},
        {"strategy": ("motion", "scrub"), "motion": "basic", "scrub": 5, "demean": False},
    ],
)
def test_strategies_equal_nilearn_load_confounds(confounds_file, options):
    mine, mine_mask = select_confounds(confounds_file, **options)
    theirs, their_mask = _nilearn(confounds_file, **options)
    pd.testing.assert_frame_equal(mine, theirs.astype("float64"))
    np.testing.assert_array_equal(mine_mask, their_mask)


def test_scrub_censors_through_the_mask_never_by_dropping_rows(confounds_file):
    confounds, mask = select_confounds(confounds_file, strategy=["motion", "scrub"], scrub=0)
    assert len(confounds) == N
    # Volume 0 is non-steady-state, volume 6 exceeds fd_threshold 0.5.
    np.testing.assert_array_equal(mask, [1, 2, 3, 4, 5, 7, 8, 9, 10, 11])
    # nilearn's segments around volume 6 are 0-5 (6 volumes) and 7-11 (5 volumes): the
    # second goes with scrub=6, both with scrub=7.
    _, six = select_confounds(confounds_file, strategy=["scrub"], scrub=6)
    np.testing.assert_array_equal(six, [1, 2, 3, 4, 5])
    with pytest.raises(ConfoundsError, match="Scrubbing censors every volume"):
        select_confounds(confounds_file, strategy=["scrub"], scrub=7)


def test_non_steady_state_alone_gives_only_a_mask(confounds_file):
    confounds, mask = select_confounds(confounds_file, strategy=["non_steady_state"])
    assert confounds.shape == (N, 0)
    np.testing.assert_array_equal(mask, np.arange(1, N))


def test_explicit_columns_are_demeaned_over_kept_volumes(confounds_file):
    raw = _fmriprep_table()
    confounds, mask = select_confounds(
        confounds_file, strategy=["motion"], motion="basic", columns=["csf", "trans_x"]
    )
    assert list(confounds.columns) == [*sorted(MOTION), "csf"]
    np.testing.assert_array_equal(mask, np.arange(1, N))
    np.testing.assert_allclose(confounds["csf"], raw["csf"] - raw["csf"][1:].mean())
    theirs, _ = _nilearn(confounds_file, strategy=("wm_csf",))
    np.testing.assert_allclose(confounds["csf"], theirs["csf"])


def test_spike_columns_censored_by_a_strategy_are_an_error(confounds_file):
    with pytest.raises(
        ConfoundsError,
        match=re.escape(
            f"Confound column(s) non_steady_state_outlier00, motion_outlier00 of {confounds_file}"
            " vary only in volumes that strategy ['motion', 'scrub'] censors, so they are "
            "constant over the kept volumes; remove them from columns"
        ),
    ):
        select_confounds(
            confounds_file,
            strategy=["motion", "scrub"],
            scrub=0,
            columns=["csf", "non_steady_state_outlier*", "motion_outlier*"],
        )
    # Without censoring the same spike columns are ordinary regressors.
    confounds, mask = select_confounds(confounds_file, columns=["motion_outlier*"])
    assert mask is None and list(confounds.columns) == ["motion_outlier00"]


def test_scrubbing_every_volume_is_an_error(confounds_file):
    with pytest.raises(
        ConfoundsError,
        match=re.escape(
            f"Scrubbing censors every volume of {confounds_file} (fd_threshold=0.01, "
            "std_dvars_threshold=1.5); raise the thresholds or drop 'scrub' from the strategy"
        ),
    ):
        select_confounds(confounds_file, strategy=["scrub"], fd_threshold=0.01)


# --- bad inputs --------------------------------------------------------------------------

BAD_OPTIONS = [
    (
        {"columns": ["trans_xx"]},
        "Confound column 'trans_xx' not found in {path} (close matches: trans_x, trans_z, trans_y"
        ", trans_x_power2); fix the name in the model file",
    ),
    (
        {"columns": ["zzz"]},
        "Confound column 'zzz' not found in {path} (41 columns, e.g. trans_x, "
        "trans_x_derivative1, trans_x_power2, trans_x_derivative1_power2, trans_y, "
        "trans_y_derivative1); fix the name in the model file",
    ),
    (
        {"columns": ["a_comp_cor_*"]},
        "Confound wildcard 'a_comp_cor_*' matches no column of {path} (",
    ),
    (
        {"strategy": ["compcor", "high_pass"]},
        "nilearn load_confounds cannot apply strategy ['compcor', 'high_pass'] to {path}: "
        "Could not find associated json file",
    ),
]


@pytest.mark.parametrize(("options", "message"), BAD_OPTIONS)
def test_select_confounds_refuses_bad_options(confounds_file, options, message):
    with pytest.raises(ConfoundsError, match=re.escape(message.format(path=confounds_file))):
        select_confounds(confounds_file, **options)


# Options themselves are the spec's to check (ConfoundsSpec validates at construction, one
# rule in one place); select_confounds builds its spec from them and never checks them again.
BAD_SPEC_OPTIONS = [
    ({"columns": [""]}, "'columns' must be a non-empty string; got \"\""),
    (
        {"strategy": ["aroma"]},
        '\'strategy\' must be one of "motion", "wm_csf", "global_signal", "compcor", '
        '"scrub", "non_steady_state", "high_pass"; got "aroma"',
    ),
    ({"strategy": ["compcor"]}, '\'strategy\' contains "compcor", which needs "high_pass" too'),
    (
        {"motion": "all"},
        '\'motion\' must be one of "basic", "power2", "derivatives", "full"; got "all"',
    ),
    (
        {"compcor": "anat"},
        '\'compcor\' must be one of "anat_combined", "anat_separated", "temporal", '
        '"temporal_anat_combined", "temporal_anat_separated"; got "anat"',
    ),
    ({"n_compcor": 0}, "'n_compcor' must be an integer >= 1; got 0"),
    ({"fd_threshold": -1}, "'fd_threshold' must be a number > 0; got -1"),
    ({"std_dvars_threshold": "1.5"}, "'std_dvars_threshold' must be a number > 0; got \"1.5\""),
    ({"scrub": 2.5}, "'scrub' must be an integer >= 0; got 2.5"),
    ({"demean": "yes"}, "'demean' must be true or false; got \"yes\""),
]


@pytest.mark.parametrize(("options", "message"), BAD_SPEC_OPTIONS)
def test_select_confounds_options_are_checked_by_the_spec(confounds_file, options, message):
    with pytest.raises(ModelSpecError) as caught:
        select_confounds(confounds_file, **options)
    assert str(caught.value) == message


BAD_FILES = [
    (None, "Confounds file {path} does not exist"),
    ("", "Confounds file {path} is empty"),
    ("trans_x\ttrans_y\n", "Confounds file {path} has a header but no volumes"),
    (
        "trans_x\tflag\n1\tyes\n2\tno\n",
        "Column 'flag' of {path} has a non-numeric value 'yes' on line 2; confounds must be "
        "numbers or n/a",
    ),
    (
        "trans_x\ttrans_y\nn/a\t1\n1\tn/a\n2\t3\n",
        "Confound column 'trans_y' of {path} has n/a on line(s) 3; only the first volume may "
        "be n/a (it is filled like nilearn does); remove the column or fix the file",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_select_confounds_refuses_bad_files(tmp_path, text, message):
    path = tmp_path / "sub-01_desc-confounds_timeseries.tsv"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfoundsError, match=re.escape(message.format(path=path))):
        select_confounds(path, columns=["trans_x", "trans_y"])


def test_bold_file_volume_count_must_match(confounds_file, tmp_path):
    good = tmp_path / "good_bold.nii.gz"
    bad = tmp_path / "bad_bold.nii.gz"
    nib.Nifti1Image(np.zeros((7, 8, 9, N), np.float32), np.eye(4)).to_filename(good)
    nib.Nifti1Image(np.zeros((7, 8, 9, 5), np.float32), np.eye(4)).to_filename(bad)
    confounds, _ = select_confounds(confounds_file, columns=["csf"], bold_file=good)
    assert len(confounds) == N
    with pytest.raises(
        ConfoundsError,
        match=re.escape(
            f"Confounds file {confounds_file} has {N} rows but {bad} has 5 volumes; they must "
            "come from the same fMRIPrep run"
        ),
    ):
        select_confounds(confounds_file, columns=["csf"], bold_file=bad)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing_bold.nii.gz", None, "BOLD file {bold} (for {path}) does not exist"),
        ("corrupt_bold.nii.gz", b"garbage", "BOLD file {bold} is not a readable image ("),
        ("corrupt_bold.nii", b"garbage", "BOLD file {bold} is not a readable image ("),
    ],
)
def test_bold_file_must_be_readable(confounds_file, tmp_path, name, content, message):
    bold = tmp_path / name
    if content is not None:
        bold.write_bytes(content)
    with pytest.raises(
        ConfoundsError, match=re.escape(message.format(bold=bold, path=confounds_file))
    ):
        select_confounds(confounds_file, columns=["csf"], bold_file=bold)


@pytest.mark.parametrize("n_volumes", [N, N - 1])
def test_surface_bold_files_are_counted(confounds_file, tmp_path, n_volumes):
    from nibabel.cifti2 import cifti2_axes

    series = cifti2_axes.SeriesAxis(start=0, step=2, size=n_volumes)
    vertices = cifti2_axes.BrainModelAxis.from_mask(np.ones(5, bool), name="CortexLeft")
    cifti = tmp_path / "sub-01_task-x_space-fsLR_den-91k_bold.dtseries.nii"
    nib.Cifti2Image(np.zeros((n_volumes, 5), np.float32), header=(series, vertices)).to_filename(
        cifti
    )
    gifti = tmp_path / "sub-01_task-x_hemi-L_space-fsaverage5_bold.func.gii"
    arrays = [nib.gifti.GiftiDataArray(np.zeros(5, np.float32)) for _ in range(n_volumes)]
    nib.save(nib.GiftiImage(darrays=arrays), gifti)
    for bold in (cifti, gifti):
        if n_volumes == N:
            assert len(select_confounds(confounds_file, columns=["csf"], bold_file=bold)[0]) == N
        else:
            with pytest.raises(ConfoundsError, match=f"has {N} rows but .* has {N - 1} volumes"):
                select_confounds(confounds_file, columns=["csf"], bold_file=bold)


def test_input_file_is_never_written(confounds_file):
    before = confounds_file.read_bytes()
    select_confounds(confounds_file, strategy=["motion", "scrub"], columns=["csf"])
    assert confounds_file.read_bytes() == before


# --- files -------------------------------------------------------------------------------


@pytest.mark.parametrize("with_mask", [True, False])
def test_write_read_round_trip(confounds_file, tmp_path, with_mask):
    strategy = ["motion", "scrub"] if with_mask else []
    confounds, mask = select_confounds(
        confounds_file, strategy=strategy, scrub=0, columns=["csf_derivative1"]
    )
    out = tmp_path / "out"
    out.mkdir()
    tsv, mask_json = write_confounds(confounds, mask, out)
    assert (tsv.name, mask_json.name) == ("confounds.tsv", "sample_mask.json")
    meta = json.loads(mask_json.read_text())
    assert meta == {"sample_mask": None if mask is None else mask.tolist(), "n_volumes": N}
    back, back_mask = read_confounds(tsv, mask_json)
    pd.testing.assert_frame_equal(back, confounds)  # exact: repr precision
    if with_mask:
        np.testing.assert_array_equal(back_mask, mask)
    else:
        assert back_mask is None


def test_empty_selection_round_trips(tmp_path):
    tsv, mask_json = write_confounds(pd.DataFrame(index=range(7)), np.arange(2, 7), tmp_path)
    assert tsv.read_text() == ""
    back, mask = read_confounds(tsv, mask_json)
    assert back.shape == (7, 0)
    np.testing.assert_array_equal(mask, [2, 3, 4, 5, 6])


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        (
            {"sample_mask": None, "n_volumes": 3},
            "{tsv} has 2 rows but {json} says n_volumes=3; write both with "
            "glmflow.core.confounds.write_confounds",
        ),
        (
            {"sample_mask": [1, 0], "n_volumes": 2},
            "sample_mask in {json} must be increasing volume indices in 0..1",
        ),
        (
            {"sample_mask": [0, 2], "n_volumes": 2},
            "sample_mask in {json} must be increasing volume indices in 0..1",
        ),
    ],
)
def test_read_confounds_refuses_inconsistent_files(tmp_path, meta, message):
    tsv = tmp_path / "confounds.tsv"
    tsv.write_text("a\n1\n2\n")
    mask_json = tmp_path / "sample_mask.json"
    mask_json.write_text(json.dumps(meta))
    with pytest.raises(ConfoundsError, match=re.escape(message.format(tsv=tsv, json=mask_json))):
        read_confounds(tsv, mask_json)


def test_spikes_on_the_same_volume_are_modelled_once(tmp_path):
    table = _fmriprep_table()
    spike = np.zeros(len(table))
    spike[1] = 1
    table["non_steady_state_outlier00"] = spike
    table["motion_outlier00"] = spike
    other = np.zeros(len(table))
    other[7] = 1
    table["motion_outlier01"] = other
    path = tmp_path / "sub-01_task-t_desc-confounds_timeseries.tsv"
    table.to_csv(path, sep="\t", index=False, na_rep="n/a")
    with pytest.warns(UserWarning, match=r"motion_outlier00 \(same volume as non_steady_"):
        selected, _ = select_confounds(
            path, columns=["non_steady_state_outlier*", "motion_outlier*"], demean=False
        )
    assert list(selected.columns) == ["non_steady_state_outlier00", "motion_outlier01"]
    assert selected["motion_outlier01"].to_numpy()[7] == 1


def test_optional_columns_may_match_nothing_with_a_warning(confounds_file):
    with pytest.warns(UserWarning, match=r"optional confound pattern 'w_comp_cor_\*' matches"):
        selected, _ = select_confounds(
            confounds_file, columns=["trans_x"], optional_columns=["w_comp_cor_*", "rot_x"]
        )
    assert list(selected.columns) == ["trans_x", "rot_x"]
    with pytest.raises(ConfoundsError, match="wildcard 'w_comp_cor_\\*' matches no column"):
        select_confounds(confounds_file, columns=["w_comp_cor_*"])


def test_non_finite_and_all_zero_columns_are_named_in_the_confounds_file(tmp_path):
    table = pd.DataFrame({"trans_x": np.linspace(0, 1, 6), "rot_z": np.zeros(6)})
    table.loc[3, "trans_x"] = -np.inf
    path = tmp_path / "sub-01_task-x_desc-confounds_timeseries.tsv"
    table.to_csv(path, sep="\t", index=False)
    with pytest.raises(ConfoundsError) as caught:
        select_confounds(path, columns=["trans_x"])
    assert str(caught.value) == (
        f"Confound column 'trans_x' of {path} has a non-finite value -inf on line 5; confounds "
        "must be finite numbers (or n/a in the first row): fix the file or leave the column out"
    )
    with pytest.raises(ConfoundsError) as caught:
        select_confounds(path, columns=["rot_*"])
    assert str(caught.value) == (
        f"Confound column 'rot_z' of {path} is 0 in every volume; it would be an empty "
        "regressor: leave it out of the model's confounds or fix the file"
    )
