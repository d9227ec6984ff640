"""Group designs and fits: recovered effects, parity with nilearn, bad-input messages."""

from __future__ import annotations

import gzip
import re
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn.glm import compute_fixed_effects
from nilearn.glm.second_level import SecondLevelModel, make_second_level_design_matrix

from glmflow.core.group import (
    check_design,
    contrast_weights,
    fit_group_model,
    load_participants,
    make_group_design,
    parse_contrasts,
    read_design,
)
from glmflow.core.model import GroupSpec
from glmflow.errors import GroupModelError, ModelSpecError

SHAPE = (9, 10, 11)
AFFINE = np.diag([3.0, 3.0, 3.0, 1.0])
AFFINE[:3, 3] = [-12.0, -15.0, -15.0]
# Planted effects (voxel boxes); everything outside them is null.
MEAN_BOX = np.s_[1:4, 1:4, 1:4]  # group mean 2.0
GROUP_BOX = np.s_[5:8, 1:4, 6:9]  # patients 3.0 above controls
AGE_BOX = np.s_[1:4, 6:9, 6:9]  # 0.15 per year
N_SUBJECTS = 12


def _null_mask() -> np.ndarray:
    null = np.ones(SHAPE, bool)
    for box in (MEAN_BOX, GROUP_BOX, AGE_BOX):
        null[box] = False
    return null


def _assert_null(z: np.ndarray) -> None:
    """z values of null voxels look standard normal: E|z| = 0.80, P(|z| > 3.09) = 0.2%."""
    assert 0.65 < np.abs(z).mean() < 0.95
    assert np.mean(np.abs(z) > 3.09) < 0.01


def _design(participants, *, subjects, **group) -> pd.DataFrame:
    """make_group_design with the model's group fields (a GroupSpec, valid when made)."""
    return make_group_design(participants, subjects=subjects, group=GroupSpec(**group))


_FIT_FIELDS = ("method", "smoothing_fwhm", "target_affine", "target_shape", "minimize_memory")


def _fit(*args, **kwargs):
    """fit_group_model with the GroupSpec fields of the fit given as keywords."""
    group = {key: kwargs.pop(key) for key in _FIT_FIELDS if key in kwargs}
    return fit_group_model(*args, group=GroupSpec(**group), **kwargs)


@pytest.fixture(scope="module")
def group_data(tmp_path_factory) -> dict:
    """12 subjects: participants.tsv, effect and variance maps with known effects."""
    root = tmp_path_factory.mktemp("group")
    rng = np.random.default_rng(42)
    subjects = [f"sub-{i:02d}" for i in range(1, N_SUBJECTS + 1)]
    ages = rng.uniform(20, 60, N_SUBJECTS).round(1)
    groups = np.array(["control", "patient"] * (N_SUBJECTS // 2))
    participants = pd.DataFrame(
        {"participant_id": subjects, "age": ages, "group": groups, "sex": list("MMFFMFFMFMFM")}
    )
    participants.to_csv(root / "participants.tsv", sep="\t", index=False)
    effects, variances = [], []
    for i, subject in enumerate(subjects):
        data = rng.normal(0.0, 1.0, SHAPE)
        data[MEAN_BOX] += 2.0
        data[GROUP_BOX] += 3.0 * (groups[i] == "patient")
        data[AGE_BOX] += 0.15 * (ages[i] - ages.mean())
        effects.append(root / f"{subject}_stat-effect_statmap.nii.gz")
        nib.save(nib.Nifti1Image(data, AFFINE), effects[-1])
        variances.append(root / f"{subject}_stat-variance_statmap.nii.gz")
        variance = rng.uniform(0.5, 2.0, SHAPE)
        nib.save(nib.Nifti1Image(variance, AFFINE), variances[-1])
    return {
        "root": root,
        "participants": load_participants(root / "participants.tsv"),
        "subjects": subjects,
        "effects": [str(p) for p in effects],
        "variances": [str(p) for p in variances],
        "ages": ages,
    }


# ---------------------------------------------------------------------------------------------
# Designs


def test_two_sample_design_with_demeaned_and_dummy_coded_covariates(group_data):
    design = _design(
        group_data["participants"],
        subjects=[s[4:] for s in group_data["subjects"]],  # labels without "sub-" work too
        design="two-sample",
        group_column="group",
        covariates=["age", "sex"],
    )
    assert design.columns.tolist() == ["group_control", "group_patient", "age", "sex_M"]
    assert design.index.tolist() == group_data["subjects"]
    np.testing.assert_array_equal(design["group_patient"], [0, 1] * 6)
    np.testing.assert_allclose(design["age"], group_data["ages"] - group_data["ages"].mean())
    np.testing.assert_allclose(
        design["sex_M"], np.array([1, 1, 0, 0, 1, 0, 0, 1, 0, 1, 0, 1]) - 0.5
    )


# nilearn's conditioning heuristic (cond > size) flags raw ages next to an intercept.
@pytest.mark.filterwarnings("ignore:Attention. Design matrix is singular")
def test_one_sample_design_equals_nilearns_second_level_design(group_data):
    ours = _design(
        group_data["participants"],
        subjects=group_data["subjects"],
        covariates=["age"],
        demean_covariates=False,
    )
    confounds = group_data["participants"][["participant_id", "age"]].rename(
        columns={"participant_id": "subject_label"}
    )
    theirs = make_second_level_design_matrix(group_data["subjects"], confounds)
    pd.testing.assert_frame_equal(
        ours[theirs.columns].reset_index(drop=True), theirs, check_index_type=False
    )


def test_paired_design_codes_difference_and_subjects():
    participants = pd.DataFrame({"participant_id": ["sub-01", "sub-02", "sub-03"]})
    design = _design(
        participants, subjects=["01", "02", "03"], design="paired", conditions=("pre", "post")
    )
    assert design.columns.tolist() == ["pre_minus_post", "sub_01", "sub_02", "sub_03"]
    assert design.index[[0, 3]].tolist() == ["sub-01_pre", "sub-01_post"]
    np.testing.assert_array_equal(design["pre_minus_post"], [1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(design["sub_02"], [0, 1, 0, 0, 1, 0])


def test_design_tsv_round_trip(tmp_path, group_data):
    design = _design(
        group_data["participants"], subjects=group_data["subjects"], covariates=["age"]
    )
    design.to_csv(tmp_path / "design.tsv", sep="\t")
    pd.testing.assert_frame_equal(read_design(tmp_path / "design.tsv"), design)


def test_load_participants_reads_na(tmp_path):
    (tmp_path / "participants.tsv").write_text("participant_id\tage\nsub-01\tn/a\nsub-02\t31\n")
    table = load_participants(tmp_path / "participants.tsv")
    assert table["age"].isna().tolist() == [True, False]


PARTICIPANTS = pd.DataFrame(
    {
        "participant_id": ["sub-01", "sub-02", "sub-03", "sub-04"],
        "age": [20.0, None, 30.0, 40.0],
        "group": ["a", "a", "b", None],
        "site": ["x", "x", "x", "x"],
        "height": [1.7, 1.7, 1.7, 1.7],
    }
)
DESIGN_ERRORS = [
    (
        dict(subjects=["01", "07"]),
        "Subject 'sub-07' is missing from participants.tsv (column participant_id); "
        "add a row for it or leave the subject out",
    ),
    (
        dict(subjects=["01", "02", "03"], covariates=["age"]),
        "Covariate 'age' is n/a for subject 'sub-02' in participants.tsv; "
        "fill in the value or leave the subject out",
    ),
    (
        dict(subjects=["01"]),
        "A group model needs at least two subjects, got 1 (sub-01); add subjects",
    ),
    (
        dict(subjects=["01", "01", "03"]),
        "Subject 'sub-01' is listed more than once; give each subject once",
    ),
    (
        dict(subjects=["01", "03"], covariates=["agee"]),
        "Covariate 'agee' is not a column of participants.tsv "
        "(available: age, group, site, height)",
    ),
    (
        dict(subjects=["01", "03", "04"], design="two-sample", group_column="group"),
        "Group column 'group' is n/a for subject 'sub-04' in participants.tsv; "
        "fill in the group or leave the subject out",
    ),
    (
        dict(subjects=["01", "02"], design="two-sample", group_column="group"),
        "Group column 'group' of participants.tsv has a single value 'a' for the selected "
        "subjects; a two-sample design needs two groups (or use one-sample)",
    ),
    (
        dict(subjects=["01", "03", "04"], covariates=["height"]),
        "The design in participants.tsv is singular: column 'height' is all zeros (a "
        "covariate that is constant across subjects is zero once demeaned); remove it",
    ),
    (
        dict(subjects=["01", "03", "04"], covariates=["height"], demean_covariates=False),
        "The design in participants.tsv is singular: columns intercept, height are linearly "
        "dependent (rank 1 < 2 columns); remove or recode one of them",
    ),
    (
        dict(subjects=["01", "03", "04"], covariates=["site"]),
        "Covariate 'site' has the single value 'x' for all selected subjects in "
        "participants.tsv; remove it from the covariates",
    ),
    (
        dict(subjects=["01", "03"], covariates=["age"]),
        "The design in participants.tsv has 2 columns for 2 maps, which leaves no degrees "
        "of freedom; add subjects or remove regressors",
    ),
]


# Rules of the group section itself: the spec refuses them when it is made, so the stage
# functions never see them (they used to be checked again, with other words, in core/group.py).
SPEC_RULES = [
    (
        dict(design="two-sample"),
        "'group_column' must name the participants.tsv column of the groups with design "
        '"two-sample"',
    ),
    (
        dict(design="paired", conditions=["pre"]),
        "'conditions' must be the two first-level contrasts compared by design \"paired\"; "
        'got ["pre"]',
    ),
    (
        dict(design="paired", conditions=["a", "a"]),
        "'conditions' lists \"a\" twice; remove the duplicate",
    ),
    (
        dict(design="paired", conditions=["a", "b"], covariates=["age"]),
        "'covariates' cannot be used with design \"paired\": its subject columns absorb every "
        "between-subject effect; remove them",
    ),
    (
        dict(design="covariates"),
        "'covariates' must name at least one column with design \"covariates\"",
    ),
    (
        dict(design="anova"),
        '\'design\' must be one of "one-sample", "two-sample", "paired", "covariates"; '
        'got "anova"',
    ),
    (dict(method="x"), '\'method\' must be one of "ols", "fixed"; got "x"'),
    (dict(target_shape=(9, 10, 11)), "'target_shape' needs target_affine; give both or neither"),
    (
        dict(target_affine=[1.0] * 12),
        "'target_affine' must be 9 (3x3) or 16 (4x4) numbers in row order, or null; got "
        "[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]",
    ),
    (
        dict(method="fixed", smoothing_fwhm=6.0),
        "'smoothing_fwhm' cannot be used with method \"fixed\" (smoothing would change the "
        'variance maps); smooth at the first level or use method "ols"',
    ),
    (
        dict(method="fixed", minimize_memory=False),
        "'minimize_memory' must be true with method \"fixed\" (residual, predicted and "
        'r-squared maps come from the OLS fit of method "ols")',
    ),
]


@pytest.mark.parametrize(("fields", "message"), SPEC_RULES)
def test_group_rules_live_in_the_spec(fields, message):
    with pytest.raises(ModelSpecError, match=f"^{re.escape(message)}$"):
        GroupSpec(**fields)


@pytest.mark.parametrize(("kwargs", "message"), DESIGN_ERRORS)
def test_make_group_design_errors(kwargs, message):
    with pytest.raises(GroupModelError, match=f"^{re.escape(message)}$"):
        _design(PARTICIPANTS, **kwargs)


def test_participants_duplicate_row_is_an_error():
    table = pd.DataFrame({"participant_id": ["sub-01", "sub-01", "sub-02"]})
    with pytest.raises(GroupModelError, match="^Subject 'sub-01' has more than one row in p"):
        _design(table, subjects=["01", "02"])


def test_check_design_names_bad_value():
    design = pd.DataFrame({"intercept": [1, 1, 1], "age": [1, "old", 3]}, index=["a", "b", "c"])
    with pytest.raises(
        GroupModelError,
        match=re.escape(
            "Design column 'age' in d.tsv has the non-numeric or missing value 'old' in row "
            "'b'; use numbers only"
        ),
    ):
        check_design(design, source="d.tsv")


# ---------------------------------------------------------------------------------------------
# Contrasts

COLUMNS = ["group_control", "group_patient", "age"]


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        ("group_patient - group_control", [-1, 1, 0]),
        ("age", [0, 0, 1]),
        ("0.5*group_control + 0.5*group_patient", [0.5, 0.5, 0]),
        ([0, 0, 2], [0, 0, 2]),
        (["age", "group_patient - group_control"], [[0, 0, 1], [-1, 1, 0]]),
        ([[1, 0, 0], [0, 1, 0]], [[1, 0, 0], [0, 1, 0]]),
        ("`group_patient` - 2*`age`", [0, 1, -2]),
        ({"expressions": ["age"]}, [0, 0, 1]),
        ({"expressions": ["age"], "stat_type": "F"}, [[0, 0, 1]]),
        ({"weights": [{"group_patient": 1, "group_control": -1}]}, [-1, 1, 0]),
        (
            {"weights": [{"age": 1}, {"group_patient": 1}], "stat_type": "F"},
            [[0, 0, 1], [0, 1, 0]],
        ),
    ],
)
def test_contrast_weights(definition, expected):
    np.testing.assert_array_equal(contrast_weights(definition, COLUMNS, name="c"), expected)


CONTRAST_ERRORS = [
    (
        "patients - group_control",
        "Contrast 'c' in model.json uses unknown column 'patients' "
        "(available: group_control, group_patient, age)",
    ),
    (
        [1, -1],
        "Contrast 'c' in model.json has 2 weights per row but the design has 3 columns "
        "(group_control, group_patient, age); give one weight per column",
    ),
    ([0, 0, 0], "Contrast 'c' in model.json has only zero weights; give a non-null contrast"),
    (
        "age -",
        "Contrast 'c' in model.json: Formula \"age -\" does not parse (invalid syntax); write "
        'e.g. "face - 0.5*house - 0.5*scrambled" and quote names that are not identifiers in '
        "backticks (`1back` - `0back`)",
    ),
    (
        ["age", 1],
        "Contrast 'c' in model.json mixes formulas and numbers (['age', 1]); give a formula, "
        "a list of formulas, a weight vector or a weight matrix",
    ),
    (
        [],
        "Contrast 'c' in model.json is []; give a formula, a weight vector or a list of them",
    ),
    (
        "`group 1` - age",
        "Contrast 'c' in model.json uses unknown column 'group 1' "
        "(available: group_control, group_patient, age)",
    ),
    (
        {"weights": [{"sex": 1}]},
        "Contrast 'c' in model.json uses unknown column 'sex' "
        "(available: group_control, group_patient, age)",
    ),
    (
        {"expressions": ["age", "group_patient"]},
        "Contrast 'c' in model.json is a t contrast with 2 rows; give one row or set "
        '"stat_type": "F"',
    ),
    (
        {"expressions": ["age"], "stat_type": "z"},
        "Contrast 'c' in model.json has stat_type 'z'; use 't' or 'F'",
    ),
    (
        {"stat_type": "t"},
        "Contrast 'c' in model.json must give either 'expressions' or 'weights' (not both)",
    ),
]


@pytest.mark.parametrize(("definition", "message"), CONTRAST_ERRORS)
def test_contrast_weights_errors(definition, message):
    with pytest.raises(GroupModelError, match=f"^{re.escape(message)}$"):
        contrast_weights(definition, COLUMNS, name="c", source="model.json")


def test_parse_contrasts_accepts_mapping_and_model_file_list():
    assert parse_contrasts('{"age": "age", "v": [0, 1]}') == {"age": "age", "v": [0, 1]}
    listed = parse_contrasts('[{"name": "a", "expressions": ["age"], "stat_type": "t"}]')
    assert listed == {"a": {"expressions": ["age"], "stat_type": "t"}}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{age", "m.json is not valid JSON (Expecting property name enclosed in double "
         "quotes: line 1 column 2 (char 1))"),
        ('[{"name": "a", "expressions": ["x"]}, {"name": "a", "weights": [{"x": 1}]}]',
         "Contrast 'a' is defined twice in m.json; rename one"),
        ('["age"]', "m.json must be a JSON object {name: formula or weights} or a list of "
         'contrast objects with a name; got ["age"]'),
    ],
)  # fmt: skip
def test_parse_contrasts_errors(text, message):
    with pytest.raises(GroupModelError, match=f"^{re.escape(message)}$"):
        parse_contrasts(text, source="m.json")


# ---------------------------------------------------------------------------------------------
# Fits


def _z(fit, name: str) -> np.ndarray:
    return fit.maps[name]["z_score"].get_fdata()


def test_one_sample_finds_planted_mean_and_matches_nilearn(group_data):
    design = _design(group_data["participants"], subjects=group_data["subjects"])
    fit = _fit(group_data["effects"], design, contrasts={"mean": "intercept"})
    z = _z(fit, "mean")
    assert z[MEAN_BOX].mean() > 4.0 and z[MEAN_BOX].min() > 2.5
    _assert_null(z[_null_mask()])
    reference = (
        SecondLevelModel()
        .fit(group_data["effects"], design_matrix=design.reset_index(drop=True))
        .compute_contrast("intercept", output_type="all")
    )
    for output, img in reference.items():
        np.testing.assert_allclose(
            fit.maps["mean"][output].get_fdata(), img.get_fdata(), atol=1e-6
        )


def test_two_sample_difference_and_age_slope_have_right_sign_and_place(group_data):
    design = _design(
        group_data["participants"],
        subjects=group_data["subjects"],
        design="two-sample",
        group_column="group",
        covariates=["age"],
    )
    contrasts = {
        "patient-control": "group_patient - group_control",
        "control-patient": [1, -1, 0],
        "age": "age",
        "any": ["age", "group_patient - group_control"],
    }
    fit = _fit(group_data["effects"], design, contrasts=contrasts)
    difference, age = _z(fit, "patient-control"), _z(fit, "age")
    assert difference[GROUP_BOX].mean() > 3.0 and difference[GROUP_BOX].min() > 2.0
    assert age[AGE_BOX].mean() > 3.0 and age[AGE_BOX].min() > 2.0
    null = _null_mask()
    for z in (difference, age):
        _assert_null(z[null])
    np.testing.assert_allclose(_z(fit, "control-patient"), -difference, atol=1e-10)
    # slope (0.15 per year) and group difference (3.0) recovered where planted
    assert abs(fit.maps["age"]["effect_size"].get_fdata()[AGE_BOX].mean() - 0.15) < 0.02
    assert abs(fit.maps["patient-control"]["effect_size"].get_fdata()[GROUP_BOX].mean() - 3) < 0.3
    assert fit.maps["any"]["effect_size"].shape == (*SHAPE, 2)
    model = SecondLevelModel().fit(
        group_data["effects"], design_matrix=design.reset_index(drop=True)
    )
    for name, definition in contrasts.items():
        weights = contrast_weights(definition, design.columns, name=name)
        reference = model.compute_contrast(weights, output_type="z_score").get_fdata()
        assert np.abs(_z(fit, name) - reference).max() < 1e-3


def test_paired_design_equals_paired_t_test(group_data):
    participants = group_data["participants"]
    subjects = group_data["subjects"][:6]
    pre, post = group_data["effects"][:6], group_data["effects"][6:]
    design = _design(participants, subjects=subjects, design="paired", conditions=("pre", "post"))
    fit = _fit(pre + post, design, contrasts={"pre-post": "pre_minus_post"})
    differences = np.stack(
        [nib.load(a).get_fdata() - nib.load(b).get_fdata() for a, b in zip(pre, post, strict=True)]
    )
    mask = fit.mask_img.get_fdata() > 0
    t = differences.mean(0) / (differences.std(0, ddof=1) / np.sqrt(6))
    np.testing.assert_allclose(fit.maps["pre-post"]["stat"].get_fdata()[mask], t[mask], rtol=1e-8)
    np.testing.assert_allclose(
        fit.maps["pre-post"]["effect_size"].get_fdata()[mask], differences.mean(0)[mask]
    )


def test_model_maps_when_memory_is_not_minimized(group_data):
    design = _design(
        group_data["participants"], subjects=group_data["subjects"], covariates=["age"]
    )
    fit = _fit(group_data["effects"], design, contrasts={"age": "age"}, minimize_memory=False)
    assert fit.model_maps["residuals"].shape == (*SHAPE, N_SUBJECTS)
    assert fit.model_maps["r_square"].shape == SHAPE
    data = np.stack([nib.load(f).get_fdata() for f in group_data["effects"]], axis=-1)
    total = fit.model_maps["predicted"].get_fdata() + fit.model_maps["residuals"].get_fdata()
    mask = fit.mask_img.get_fdata() > 0
    np.testing.assert_allclose(total[mask], data[mask], atol=1e-8)
    assert _fit(group_data["effects"], design, contrasts={"age": "age"}).model_maps == {}


def test_fixed_effects_equal_nilearns_precision_weighted_combination(group_data):
    design = _design(group_data["participants"], subjects=group_data["subjects"])
    fit = _fit(
        group_data["effects"],
        design,
        contrasts={"mean": "intercept"},
        variance_files=group_data["variances"],
        method="fixed",
    )
    reference = compute_fixed_effects(
        group_data["effects"], group_data["variances"], precision_weighted=True
    )
    OUTPUTS = ("effect_size", "effect_variance", "stat", "z_score")  # nilearn's return order
    for output, img in zip(OUTPUTS, reference, strict=True):
        np.testing.assert_allclose(fit.maps["mean"][output].get_fdata(), img.get_fdata())


def test_fixed_effects_general_design_f_is_t_squared(group_data):
    design = _design(
        group_data["participants"], subjects=group_data["subjects"], covariates=["age"]
    )
    fit = _fit(
        group_data["effects"],
        design,
        contrasts={"age": "age", "age F": ["age"], "both": [[1, 0], [0, 1]]},
        variance_files=group_data["variances"],
        method="fixed",
    )
    t = fit.maps["age"]["stat"].get_fdata()
    np.testing.assert_allclose(fit.maps["age F"]["stat"].get_fdata(), t**2, rtol=1e-8)
    assert fit.maps["age"]["z_score"].get_fdata()[AGE_BOX].mean() > 4
    assert fit.maps["both"]["effect_size"].shape == (*SHAPE, 2)


def _resampled_copy(path: str, directory: Path) -> str:
    img = nib.load(path)
    out = directory / "sub-99_stat-effect_statmap.nii.gz"
    nib.save(nib.Nifti1Image(img.get_fdata()[:-1], img.affine), out)
    return str(out)


def _fit_error_cases(group_data: dict) -> list[tuple[dict, str]]:
    """(fit_group_model keyword arguments, exact message) for each bad input."""
    effects = group_data["effects"]
    design = _design(group_data["participants"], subjects=group_data["subjects"])
    m = {"m": "intercept"}
    fixed = dict(
        effect_files=effects,
        design=design,
        contrasts=m,
        method="fixed",
        variance_files=group_data["variances"],
    )
    return [
        (
            dict(effect_files=effects[:-1], design=design, contrasts={"m": "intercept"}),
            "The design in the design matrix has 12 rows but 11 effect maps were given; "
            "give one row per map, in the same order",
        ),
        (
            dict(effect_files=effects, design=design, contrasts={"m": "mean"}),
            "Contrast 'm' in the contrasts uses unknown column 'mean' (available: intercept)",
        ),
        (
            dict(effect_files=effects, design=design, contrasts={}),
            "No group contrast in the contrasts; define at least one",
        ),
        (
            dict(effect_files=effects, contrasts={"m": "intercept"}),
            "A list of effect maps needs a design (one row per map); build one with "
            "make_group_design or read_design",
        ),
        (
            dict(
                effect_files=effects,
                design=design,
                contrasts={"m": "intercept"},
                variance_files=group_data["variances"],
            ),
            "variance_files are only used by method='fixed'; drop them or set method='fixed'",
        ),
        (
            dict(
                effect_files=effects, design=design, contrasts={"m": "intercept"}, method="fixed"
            ),
            "method='fixed' needs one variance map per effect map (12), got 0; pass the "
            "first-level stat-variance maps in the same order",
        ),
        (
            dict(
                effect_files=[*effects[:-1], effects[-1].replace("effect", "z")],
                design=design,
                contrasts={"m": "intercept"},
            ),
            f"Group models take effect maps, but {effects[-1].replace('effect', 'z')} is a "
            "stat-z map; pass the stat-effect (and stat-variance) maps of the first level",
        ),
        (
            dict(effect_files=[*effects[:-1], "nope.nii.gz"], design=design, contrasts={"m": [1]}),
            "Map nope.nii.gz does not exist; check the path",
        ),
        (
            dict(fixed, dofs=[10.0] * 3),
            "dofs has 3 values for 12 maps; give one per map",
        ),
    ]


N_FIT_ERRORS = 9


@pytest.mark.parametrize("case", range(N_FIT_ERRORS))
def test_fit_errors(group_data, case):
    cases = _fit_error_cases(group_data)
    assert len(cases) == N_FIT_ERRORS
    kwargs, message = cases[case]
    with pytest.raises(GroupModelError, match=f"^{re.escape(message)}$"):
        _fit(**kwargs)


def test_maps_on_different_grids_need_target_affine(group_data, tmp_path):
    effects = group_data["effects"][:-1] + [_resampled_copy(group_data["effects"][-1], tmp_path)]
    design = _design(group_data["participants"], subjects=group_data["subjects"])
    message = (
        f"Maps are on different grids: {effects[0]} has shape (9, 10, 11) and affine "
        f"{AFFINE.tolist()}, {effects[-1]} has shape (8, 10, 11) and affine {AFFINE.tolist()}; "
        "resample them or set target_affine (in a model file: group.target_affine)"
    )
    with pytest.raises(GroupModelError, match=f"^{re.escape(message)}$"):
        _fit(effects, design, contrasts={"m": "intercept"})
    fit = _fit(
        effects,
        design,
        contrasts={"m": "intercept"},
        target_affine=AFFINE.ravel().tolist(),
        target_shape=SHAPE,
    )
    assert fit.maps["m"]["z_score"].shape == SHAPE


def test_map_headers_find_truncated_files_without_false_alarms(group_data, tmp_path):
    from glmflow.core.group.inputs import check_group_mask, read_map_header

    img = nib.load(group_data["effects"][0])
    nii = tmp_path / "sub-01_stat-effect_statmap.nii"
    nib.save(img, nii)
    nii.write_bytes(nii.read_bytes()[:-8])
    message = (
        f"Map {nii} is truncated or corrupt (its header needs 8272 bytes of image data); "
        "rerun the participant level to write it again"
    )
    with pytest.raises(GroupModelError, match=f"^{re.escape(message)}$"):
        read_map_header(nii)
    # a complete file written as two gzip members: the trailer holds the last member's size
    whole = Path(group_data["effects"][1])
    raw = gzip.decompress(whole.read_bytes())
    members = tmp_path / "sub-02_stat-effect_statmap.nii.gz"
    members.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]))
    assert read_map_header(members).shape == SHAPE
    mask = tmp_path / "mask.nii.gz"
    mask.write_bytes(whole.read_bytes()[:200])
    with pytest.raises(GroupModelError, match=f"^Group mask {re.escape(str(mask))} "):
        check_group_mask(mask, whole)


def test_a_group_mask_larger_than_the_brains_leaves_their_outside_out(group_data, tmp_path):
    """Issue 14: a mask over the whole grid fitted 0 / 0 outside the brains (a RuntimeWarning
    per contrast); those voxels are left out, said once, and the brain's maps are unchanged."""
    from glmflow.core.group.inputs import check_group_mask

    brain = np.zeros(SHAPE, bool)
    brain[1:8, 1:9, 1:10] = True
    effects = []
    for i, path in enumerate(group_data["effects"]):
        data = nib.load(path).get_fdata() * brain  # 0 outside the brain, as glmflow writes
        effects.append(tmp_path / f"sub-{i:02d}_stat-effect_statmap.nii.gz")
        nib.save(nib.Nifti1Image(data, AFFINE), effects[-1])
    whole, brain_mask = tmp_path / "whole.nii.gz", tmp_path / "brain.nii.gz"
    nib.save(nib.Nifti1Image(np.ones(SHAPE, np.uint8), AFFINE), whole)
    nib.save(nib.Nifti1Image(brain.astype(np.uint8), AFFINE), brain_mask)
    design = _design(
        group_data["participants"], subjects=group_data["subjects"], covariates=["age"]
    )
    contrasts = {"mean": "intercept", "age": "age"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning (nor any other)
        fit = _fit([str(p) for p in effects], design, contrasts=contrasts, mask=whole)
        fixed = _fit([str(p) for p in effects], design, contrasts=contrasts, mask=whole,
                     method="fixed", variance_files=group_data["variances"])  # fmt: skip
    assert (fit.mask_img.get_fdata() > 0).sum() == brain.sum() == 7 * 8 * 9
    reference = _fit([str(p) for p in effects], design, contrasts=contrasts, mask=brain_mask)
    for name in contrasts:
        for output in ("z_score", "stat", "effect_size", "p_value"):
            np.testing.assert_array_equal(
                fit.maps[name][output].get_fdata(), reference.maps[name][output].get_fdata()
            )
    assert (fixed.mask_img.get_fdata() > 0).sum() == brain.sum()
    with pytest.warns(UserWarning) as said:
        check_group_mask(whole, [str(p) for p in effects])
    assert [str(w.message) for w in said] == [
        f"Group mask {whole}: {9 * 10 * 11 - 7 * 8 * 9} of its {9 * 10 * 11} voxels are 0 or "
        "NaN in every subject map (outside the brains); they are left out of the group fit"
    ]
