"""The group level end to end on the synthetic dataset: truth, nilearn parity, CLI, errors.

One participant-level run (8 subjects, one run of 80 volumes, no smoothing) feeds every
test. The truth: the face effect of the "group" region is 1.5 - 1.0 * (+1/2 patient,
-1/2 control) - 0.03 * (age - mean age) + N(0, 0.2) per subject; other regions have the
same betas in every subject; the "null" region has none.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import re
import shutil
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn.glm.second_level import SecondLevelModel, non_parametric_inference
from nilearn.image import resample_img

from glmflow.cli.main import main
from glmflow.core.model import GroupSpec, load_model
from glmflow.data import load_truth, make_synthetic_dataset
from glmflow.errors import ModelSpecError
from glmflow.runners.group import plan_group_level, run_group_level
from glmflow.runners.participant import run_participant_level
from glmflow.workflows.group_level import init_group_level_wf

pytestmark = pytest.mark.slow

MODELS = Path(__file__).resolve().parents[1] / "glmflow" / "data" / "models"
SPACE = "space-MNI152NLin2009cAsym"
PREFIX = f"task-faces_{SPACE}_contrast-"
MAP_STATS = ("effect", "variance", "t", "p", "z")


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> dict:
    """Dataset, first-level spec, participant outputs, truth and region masks."""
    root = tmp_path_factory.mktemp("group_level")
    bids = make_synthetic_dataset(root / "bids", n_subjects=8, n_runs=1, n_volumes=80)
    data = json.loads((MODELS / "task_information.json").read_text())
    data["faces"].update(design_contrasts={}, group_level_regressors=[])
    model = root / "task_information.json"
    model.write_text(json.dumps(data))
    run_participant_level(
        bids_dir=bids, output_dir=root / "out", model=model, work_dir=root / "work",
        smoothing_fwhm=0, n_procs=2,
    )  # fmt: skip
    truth = load_truth(bids)
    masks = {
        name: nib.load(bids / "derivatives" / "truth" / region["mask"]).get_fdata() > 0
        for name, region in truth["regions"].items()
    }
    return {
        "root": root, "bids": bids, "out": root / "out", "spec": load_model(model),
        "truth": truth, "masks": masks,
    }  # fmt: skip


def _model(study: dict, path: Path, **group) -> Path:
    """A native model file: the first-level model of the study plus a group section."""
    spec = dataclasses.replace(study["spec"], group=GroupSpec.from_dict(group))
    path.write_text(spec.to_json())
    return path


def _group(study: dict, tmp_path: Path, **group):
    model = _model(study, tmp_path / "model.json", **group)
    return run_group_level(
        bids_dir=study["bids"], output_dir=study["out"], model=model,
        work_dir=study["root"] / "work", n_procs=2,
    )  # fmt: skip


def _map(study: dict, label: str, stat: str, desc: str | None = None) -> np.ndarray:
    extra = f"_desc-{desc}" if desc else ""
    path = study["out"] / "glmflow" / f"{PREFIX}{label}_stat-{stat}{extra}_statmap.nii.gz"
    return nib.load(path).get_fdata()


def _region_means(study: dict, data: np.ndarray) -> dict[str, float]:
    return {name: float(data[mask].mean()) for name, mask in study["masks"].items()}


def _truth_effects(study: dict) -> tuple[pd.DataFrame, np.ndarray]:
    """participants.tsv and each subject's true face effect in the group region."""
    participants = pd.read_csv(study["bids"] / "participants.tsv", sep="\t")
    subjects = study["truth"]["subjects"]
    effects = [subjects[s]["group_region_face_effect"] for s in participants["participant_id"]]
    return participants, np.array(effects)


def _copy_outputs(study: dict, tmp_path: Path) -> Path:
    """The participant level's outputs, without the group maps other tests wrote."""
    out = tmp_path / "out"
    shutil.copytree(
        study["out"], out, ignore=lambda folder, names: [n for n in names if n.startswith("task-")]
    )
    return out


def _subject_maps(study: dict, label: str = "face") -> list[str]:
    func = study["out"] / "glmflow"
    return [
        str(
            func
            / f"sub-{i:02d}"
            / "func"
            / f"sub-{i:02d}_{PREFIX}{label}_stat-effect_statmap.nii.gz"
        )
        for i in range(1, 9)
    ]


# ---------------------------------------------------------------------------------------------
# Truth


def test_one_sample_finds_the_group_effect_where_the_truth_is(study, tmp_path):
    result = _group(
        study, tmp_path, first_level_contrasts=["face"], smoothing_fwhm=8,
        inference={"method": "fdr", "alpha": 0.05},
    )  # fmt: skip
    top = study["out"] / "glmflow"
    names = {p.name for p in result.files}
    for stat in MAP_STATS:
        assert f"{PREFIX}face_stat-{stat}_statmap.nii.gz" in names
        assert (top / f"{PREFIX}face_stat-{stat}_statmap.json").is_file()
    assert f"{PREFIX}face_stat-z_desc-fdr_statmap.nii.gz" in names
    assert f"{PREFIX}face_stat-z_desc-fdr_clusters.tsv" in names
    assert "task-faces_design.tsv" in names
    significant = _map(study, "face", "z", "fdr") != 0
    masks = study["masks"]
    assert significant[masks["group"]].sum() >= 20  # of 27 voxels
    assert significant[masks["null"]].sum() == 0
    sidecar = json.loads((top / f"{PREFIX}face_stat-z_statmap.json").read_text())
    assert sidecar["Level"] == "dataset" and sidecar["Statistic"] == "z"
    assert sidecar["Contrast"]["Name"] == "face" and sidecar["Contrast"]["DegreesOfFreedom"] == 7.0
    assert sidecar["Contrast"]["GroupContrast"] == "mean"
    assert sidecar["Design"]["Rows"] == [f"sub-{i:02d}" for i in range(1, 9)]
    clusters = pd.read_csv(top / f"{PREFIX}face_stat-z_desc-fdr_clusters.tsv", sep="\t")
    assert list(clusters.columns) == [
        "Cluster ID", "X", "Y", "Z", "Peak Stat", "Cluster Size (mm3)", "Cluster Size (voxels)",
    ]  # fmt: skip
    peaks = clusters.dropna(subset=["Cluster Size (voxels)"])
    assert (peaks["Cluster Size (mm3)"] == 64 * peaks["Cluster Size (voxels)"]).all()  # 4 mm
    assert peaks["Cluster Size (voxels)"].sum() == significant.sum()


def test_one_sample_effect_equals_the_true_group_mean(study, tmp_path):
    result = _group(
        study, tmp_path, first_level_contrasts=["face"], minimize_memory=False,
        inference={"method": "none"},
    )  # fmt: skip
    _, effects = _truth_effects(study)
    means = _region_means(study, _map(study, "face", "effect"))
    assert means["group"] == pytest.approx(effects.mean(), abs=0.1)
    assert means["face"] == pytest.approx(2.0, abs=0.1)  # same 2.0 in every subject
    assert abs(means["null"]) < 0.15
    assert not [p for p in result.files if "_desc-" in p.name and "design" not in p.name]
    # minimize_memory off: residuals = maps - group mean, r-squared of an intercept-only model
    top = study["out"] / "glmflow"
    residuals = nib.load(top / f"{PREFIX}face_stat-residuals_statmap.nii.gz")
    maps = np.stack([nib.load(p).get_fdata() for p in _subject_maps(study)], axis=-1)
    inside = _map(study, "face", "t") != 0
    expected = maps - maps.mean(-1, keepdims=True)
    assert residuals.shape == (20, 24, 20, 8)
    np.testing.assert_allclose(residuals.get_fdata()[inside], expected[inside], atol=1e-4)
    assert np.abs(_map(study, "face", "rSquare")[inside]).max() < 1e-6


def test_two_sample_difference_and_age_effect_have_the_right_sign_and_place(study, tmp_path):
    result = _group(
        study, tmp_path, design="two-sample", group_column="group", covariates=["age"],
        first_level_contrasts=["face"],
    )  # fmt: skip
    participants, effects = _truth_effects(study)
    patient = (participants["group"] == "patient").to_numpy(float)
    age = participants["age"].to_numpy() - participants["age"].mean()
    truth = np.linalg.lstsq(np.c_[1 - patient, patient, age], effects, rcond=None)[0]
    difference = _region_means(study, _map(study, "facePatientMinusControl", "effect"))
    slope = _region_means(study, _map(study, "faceAge", "effect"))
    assert truth[1] - truth[0] == pytest.approx(-0.88, abs=0.01)  # -1.0 plus sampling noise
    assert difference["group"] == pytest.approx(truth[1] - truth[0], abs=0.25)
    assert slope["group"] == pytest.approx(truth[2], abs=0.01) and slope["group"] < 0
    for means in (difference, slope):  # the most negative region is the group region
        assert min(means, key=means.get) == "group"
    opposite = _map(study, "faceControlMinusPatient", "effect")
    np.testing.assert_allclose(opposite, -_map(study, "facePatientMinusControl", "effect"))
    assert len({p.name for p in result.files}) == len(result.files)


def test_paired_design_compares_two_first_level_contrasts(study, tmp_path):
    _group(
        study, tmp_path, design="paired", conditions=["face", "house"],
        inference={"method": "none"},
    )  # fmt: skip
    effect = _map(study, "faceMinusHouse", "effect")
    means = _region_means(study, effect)
    assert means["face"] == pytest.approx(1.5, abs=0.3)  # 2.0 - 0.5
    assert means["house"] == pytest.approx(-1.5, abs=0.3)
    assert abs(means["null"]) < 0.15
    # the paired t test: the mean and t of the subjects' face - house differences
    differences = np.stack(
        [nib.load(f).get_fdata() - nib.load(h).get_fdata()
         for f, h in zip(_subject_maps(study, "face"), _subject_maps(study, "house"), strict=True)]
    )  # fmt: skip
    inside = _map(study, "faceMinusHouse", "t") != 0
    differences = differences[:, inside]
    t = differences.mean(0) / (differences.std(0, ddof=1) / np.sqrt(8))
    np.testing.assert_allclose(effect[inside], differences.mean(0), atol=1e-5)
    np.testing.assert_allclose(_map(study, "faceMinusHouse", "t")[inside], t, rtol=1e-4)
    sidecar = json.loads(
        (study["out"] / "glmflow" / f"{PREFIX}faceMinusHouse_stat-t_statmap.json").read_text()
    )
    assert sidecar["Contrast"]["FirstLevelContrasts"] == ["face", "house"]
    assert sidecar["Contrast"]["DegreesOfFreedom"] == 7.0  # 16 maps, 9 columns


def test_fixed_effects_weight_the_subjects_by_their_precision(study, tmp_path):
    _group(
        study, tmp_path, first_level_contrasts=["house"], method="fixed",
        inference={"method": "none"},
    )  # fmt: skip
    effects = np.stack([nib.load(p).get_fdata() for p in _subject_maps(study, "house")])
    variances = np.stack(
        [nib.load(p.replace("_stat-effect_", "_stat-variance_")).get_fdata()
         for p in _subject_maps(study, "house")]
    )  # fmt: skip
    inside = (variances > 0).all(0)  # every subject's brain
    precision = 1 / variances[:, inside]
    expected = (effects[:, inside] * precision).sum(0) / precision.sum(0)
    np.testing.assert_allclose(_map(study, "house", "effect")[inside], expected, rtol=1e-4)
    np.testing.assert_allclose(
        _map(study, "house", "variance")[inside], 1 / precision.sum(0), rtol=1e-4
    )
    sidecar = json.loads(
        (study["out"] / "glmflow" / f"{PREFIX}house_stat-z_statmap.json").read_text()
    )
    dofs = [
        json.loads(Path(p.replace(".nii.gz", ".json")).read_text())["Contrast"]["DegreesOfFreedom"]
        for p in _subject_maps(study, "house")
    ]
    assert (
        sidecar["Contrast"]["DegreesOfFreedom"] == sum(dofs) > 8 * 40
    )  # the subjects' dofs add up


# ---------------------------------------------------------------------------------------------
# nilearn parity


def test_group_z_maps_equal_nilearn_second_level_model(study, tmp_path):
    _group(
        study, tmp_path, design="two-sample", group_column="group", covariates=["age"],
        first_level_contrasts=["face"], inference={"method": "none"},
    )  # fmt: skip
    design = pd.read_csv(study["out"] / "glmflow" / "task-faces_design.tsv", sep="\t", index_col=0)
    assert list(design.columns) == ["group_control", "group_patient", "age"]
    assert design["age"].mean() == pytest.approx(0.0, abs=1e-9)  # demeaned by default
    model = SecondLevelModel().fit(_subject_maps(study), design_matrix=design)
    for label, contrast in (
        ("facePatientMinusControl", "group_patient - group_control"),
        ("faceAge", "age"),
    ):
        theirs = model.compute_contrast(contrast, output_type="z_score").get_fdata()
        assert np.abs(_map(study, label, "z") - theirs).max() < 1e-3


def test_permutation_max_t_equals_nilearn_for_the_same_seed(study, tmp_path):
    result = _group(
        study, tmp_path, first_level_contrasts=["face"],
        inference={"method": "permutation", "n_perm": 200, "seed": 3, "alpha": 0.05},
    )  # fmt: skip
    names = {p.name for p in result.files}
    assert f"{PREFIX}face_stat-logp_desc-maxtFWE_statmap.nii.gz" in names
    assert f"{PREFIX}face_stat-t_desc-maxtFWE_statmap.nii.gz" in names
    assert f"{PREFIX}face_stat-t_desc-maxtFWE_clusters.tsv" in names
    theirs = non_parametric_inference(
        _subject_maps(study),
        design_matrix=pd.DataFrame({"intercept": np.ones(8)}),
        second_level_contrast="intercept",
        n_perm=200,
        two_sided_test=True,
        random_state=3,
    ).get_fdata()
    ours = _map(study, "face", "logp", "maxtFWE")
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    significant = _map(study, "face", "t", "maxtFWE") != 0
    np.testing.assert_array_equal(significant, theirs > -np.log10(0.05))


def test_true_discovery_proportion_outputs(study, tmp_path):
    result = _group(
        study, tmp_path, first_level_contrasts=["face"], smoothing_fwhm=8,
        inference={"method": "tdp", "two_sided": False, "z_threshold": 3.0},
    )  # fmt: skip
    names = {p.name for p in result.files}
    assert f"{PREFIX}face_stat-tdp_statmap.nii.gz" in names
    tdp = _map(study, "face", "tdp")
    assert tdp.max() <= 1 and tdp[study["masks"]["face"]].max() > 0.4
    assert tdp[study["masks"]["null"]].max() == 0
    kept = _map(study, "face", "z", "tdp") != 0
    np.testing.assert_array_equal(kept, tdp > 0)


# ---------------------------------------------------------------------------------------------
# Graph, plan, CLI


@pytest.mark.parametrize(
    ("inference", "nodes"),
    [
        ({"method": "none"}, set()),
        ({"method": "fdr"}, {"inference_face", "ds_inference_face", "merge_inference_files"}),
        (
            {"method": "permutation", "permutation_stat": "tfce"},
            {"inference_face", "ds_inference_face", "merge_inference_files"},
        ),
    ],
)
def test_group_level_workflow_builds_without_running(inference, nodes, tmp_path):
    group = GroupSpec.from_dict({"inference": inference})
    wf = init_group_level_wf(
        contrasts={"face": "intercept"}, group=group, output_dir=str(tmp_path),
        entities={"task": "faces"},
    )  # fmt: skip
    assert (
        set(wf.list_node_names())
        == {"inputnode", "outputnode", "fit_group_model", "ds_group"} | nodes
    )
    assert not any(tmp_path.iterdir())


def test_plan_checks_without_writing(study, tmp_path):
    before = sorted(study["out"].rglob("*"))
    model = _model(study, tmp_path / "m.json", design="covariates", covariates=["age", "sex"])
    (plan,) = plan_group_level(bids_dir=study["bids"], output_dir=study["out"], model=model)
    assert [a.name for a in plan.analyses] == ["face", "house", "scrambled"]
    assert list(plan.design.columns) == ["intercept", "age", "sex_M"]
    assert list(plan.analyses[0].contrasts) == ["face", "face age", "face sex_M"]
    assert plan.entities == {"task": "faces", "space": "MNI152NLin2009cAsym"}
    assert sorted(study["out"].rglob("*")) == before


def test_group_mask_on_another_grid_warns_and_names_the_target_grid(study, tmp_path):
    reference = nib.load(_subject_maps(study)[0])
    mask = tmp_path / "mask.nii.gz"
    affine = np.diag([5.0, 5.0, 5.0, 1.0])
    affine[:3, 3] = reference.affine[:3, 3]
    nib.Nifti1Image(np.ones((10, 12, 10), "uint8"), affine).to_filename(mask)
    model = _model(study, tmp_path / "m.json", first_level_contrasts=["face"])
    message = (
        f"Group mask {mask} is on another grid than the subject maps (shape "
        f"{reference.shape}, affine {reference.affine.round(3).tolist()}): every map is "
        f"resampled to the mask's grid, shape (10, 12, 10) and affine "
        f"{affine.round(3).tolist()}; resample the mask to the maps "
        "(nilearn.image.resample_to_img) to fit on their grid"
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plan_group_level(bids_dir=study["bids"], output_dir=study["out"], model=model, mask=mask)
    said = [str(w.message) for w in caught if "Group mask" in str(w.message)]
    assert said[1:] == [message]
    # the mask covers the whole grid: its voxels outside the brains are said once (issue 14)
    assert re.fullmatch(
        rf"Group mask {re.escape(str(mask))}: \d+ of its 1200 voxels are 0 or NaN in every "
        r"subject map \(outside the brains\); they are left out of the group fit",
        said[0],
    ), said


def test_cli_group_with_a_generic_design_file(study, tmp_path, capsys):
    participants = pd.read_csv(study["bids"] / "participants.tsv", sep="\t")
    design = pd.DataFrame(
        {
            "participant_id": participants["participant_id"],
            "intercept": 1.0,
            "age": participants["age"] - participants["age"].mean(),
            "sex_M": (participants["sex"] == "M").astype(float),
        }
    )
    design.to_csv(tmp_path / "design.tsv", sep="\t", index=False)
    model = _model(
        study, tmp_path / "vbm.json", first_level_contrasts=["house"],
        contrasts=[{"name": "age", "expressions": ["age"]}],
    )  # fmt: skip
    out = _copy_outputs(study, tmp_path)
    argv = [
        str(study["bids"]), str(out), "group", "--model", str(model),
        "--group-design", str(tmp_path / "design.tsv"), "--inference", "bonferroni",
        "--alpha", "0.05", "-w", str(tmp_path / "work"), "--n-cpus", "2",
    ]  # fmt: skip
    assert main(argv) == 0
    assert "1 group model(s) of 8 subject(s) done" in capsys.readouterr().out
    written = sorted(p.name for p in (out / "glmflow").glob("task-*"))
    assert written == sorted(
        [f"{PREFIX}houseAge_stat-{s}_statmap.{e}" for s in MAP_STATS for e in ("json", "nii.gz")]
        + [f"{PREFIX}houseAge_stat-z_desc-bonferroni_statmap.{e}" for e in ("json", "nii.gz")]
        + [f"{PREFIX}houseAge_stat-z_desc-bonferroni_clusters.{e}" for e in ("json", "tsv")]
        + ["task-faces_design.tsv"]
    )
    fit = tmp_path / "work/glmflow_group_wf/task_faces_house_wf/fit_group_model"
    stamp = (fit / "result_fit_group_model.pklz").stat().st_mtime_ns
    assert main(argv) == 0  # a rerun reuses every node
    assert (fit / "result_fit_group_model.pklz").stat().st_mtime_ns == stamp


# ---------------------------------------------------------------------------------------------
# Bad input: one line, exit code 2, nothing written


def _participants_edit(change):
    def edit(bids: Path) -> None:
        table = pd.read_csv(bids / "participants.tsv", sep="\t", dtype=str)
        change(table).to_csv(bids / "participants.tsv", sep="\t", index=False)

    return edit


def _drop_sub03(table):
    return table[table["participant_id"] != "sub-03"]


def _na_age(table):
    return table.assign(age=table["age"].where(table["participant_id"] != "sub-02", "n/a"))


def _double_age(table):
    return table.assign(age2=(2 * table["age"].astype(float)).astype(str))


def _other_grid(out: Path) -> None:
    path = out / "glmflow" / "sub-02" / "func" / f"sub-02_{PREFIX}face_stat-effect_statmap.nii.gz"
    img = nib.load(path)
    resample_img(img, target_affine=np.diag([5.0, 5.0, 5.0]), interpolation="nearest").to_filename(
        path
    )


def _no_outputs(out: Path) -> None:
    shutil.rmtree(out / "glmflow")


def _sub02_face(out: Path) -> Path:
    return out / "glmflow" / "sub-02" / "func" / f"sub-02_{PREFIX}face_stat-effect_statmap.nii.gz"


def _truncated_map(out: Path) -> None:
    path = _sub02_face(out)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _unreadable_header(out: Path) -> None:
    _sub02_face(out).write_bytes(gzip.compress(b"not a NIfTI header" * 40))


# (case, participants.tsv edit, output edit, group section, extra argv, message regex)
BAD_INPUTS = [
    (
        "subject missing from participants.tsv",
        _participants_edit(_drop_sub03),
        None,
        {"covariates": ["age"]},
        [],
        r"Subject 'sub-03' is missing from \S+/participants\.tsv \(column participant_id\); "
        r"add a row for it or leave the subject out$",
    ),
    (
        "n/a covariate",
        _participants_edit(_na_age),
        None,
        {"covariates": ["age"]},
        [],
        r"Covariate 'age' is n/a for subject 'sub-02' in \S+/participants\.tsv; fill in the "
        r"value or leave the subject out$",
    ),
    (
        "singular design",
        _participants_edit(_double_age),
        None,
        {"covariates": ["age", "age2"]},
        [],
        r"The design in \S+/participants\.tsv is singular: columns age, age2 are linearly "
        r"dependent \(rank 2 < 3 columns\); remove or recode one of them$",
    ),
    (
        "contrast naming an unknown column",
        None,
        None,
        {"covariates": ["age"], "contrasts": [{"name": "old", "expressions": ["agee"]}]},
        [],
        r"Contrast 'old' in \S+/model\.json uses unknown column 'agee' \(available: intercept, "
        r"age\)$",
    ),
    (
        "fewer than two subjects",
        None,
        None,
        {},
        ["--participant-label", "01"],
        r"A group model needs at least two subjects, got 1 \(sub-01\); add subjects$",
    ),
    (
        "maps on different grids",
        None,
        _other_grid,
        {"first_level_contrasts": ["face"]},
        [],
        r"Maps are on different grids: \S+sub-01_\S+_stat-effect_statmap\.nii\.gz has shape "
        r"\(20, 24, 20\) and affine .*, \S+sub-02_\S+ has shape \(17, 20, 17\) and affine .*; "
        r"resample them or set target_affine \(in a model file: group\.target_affine\)$",
    ),
    (
        "truncated subject map (issue 14)",
        None,
        _truncated_map,
        {"first_level_contrasts": ["face"]},
        [],
        r"Map \S+/sub-02/func/sub-02_\S+face_stat-effect_statmap\.nii\.gz is truncated or "
        r"corrupt \(its header needs 38752 bytes of image data\); rerun the participant level "
        r"to write it again$",
    ),
    (
        "unreadable subject map header (issue 14)",
        None,
        _unreadable_header,
        {"first_level_contrasts": ["face"]},
        [],
        r"Map \S+/sub-02/func/sub-02_\S+face_stat-effect_statmap\.nii\.gz cannot be read "
        r"\(.+\); rerun the participant level to write it again$",
    ),
    (
        "no participant-level outputs",
        None,
        _no_outputs,
        {},
        [],
        r"No subject-level maps of task 'faces' in space MNI152NLin2009cAsym in \S+/glmflow; "
        r"run the participant level first",
    ),
    (
        "unknown first-level contrast",
        None,
        None,
        {"first_level_contrasts": ["facee"]},
        [],
        r"First-level contrast 'facee' of group\.first_level_contrasts in \S+/model\.json has no "
        r"subject-level maps in \S+/glmflow \(available: face, house, scrambled\); fix the name",
    ),
    (
        "bad option value",
        None,
        None,
        {},
        ["--inference", "permutation", "--permutations", "0"],
        r"'group\.inference\.n_perm' must be an integer >= 1; got 0 \(options given with model "
        r"\S+/model\.json\)$",
    ),
    (
        "participant option at the group level",
        None,
        None,
        {},
        ["--run", "1"],
        r"--run is an option of the participant level, not of 'group'; remove it, or run both "
        r"levels \('participant group'\)$",
    ),
]


@pytest.mark.parametrize(
    ("bids_edit", "out_edit", "group", "argv", "message"),
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
def test_bad_group_input_is_one_line_and_writes_nothing(
    study, tmp_path, capsys, bids_edit, out_edit, group, argv, message
):
    bids = tmp_path / "bids"  # the group level reads only participants.tsv of the dataset
    bids.mkdir()
    for name in ("participants.tsv", "dataset_description.json"):
        shutil.copy(study["bids"] / name, bids / name)
    out = _copy_outputs(study, tmp_path)
    if bids_edit is not None:
        bids_edit(bids)
    if out_edit is not None:
        out_edit(out)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    model = _model(study, tmp_path / "model.json", **group)
    code = main(
        [str(bids), str(out), "group", "--model", str(model), "-w", str(tmp_path / "work"),
         "--plugin", "Linear", *argv]
    )  # fmt: skip
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("glmflow: error:")]
    assert code == 2
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert re.search(message, lines[0].removeprefix("glmflow: error: ")), lines[0]
    after = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    assert after == {**before, model: after[model]}  # nothing written, nothing changed


def test_output_types_choose_the_maps_written(study, tmp_path):
    out = _copy_outputs(study, tmp_path)
    model = _model(
        study, tmp_path / "model.json", first_level_contrasts=["face"],
        output_types=["z_score", "effect_size"], inference={"method": "none"},
    )  # fmt: skip
    result = run_group_level(
        bids_dir=study["bids"], output_dir=out, model=model, work_dir=tmp_path / "work",
    )  # fmt: skip
    maps = sorted(p.name for p in result.files if p.name.endswith("_statmap.nii.gz"))
    assert maps == [
        f"{PREFIX}face_stat-effect_statmap.nii.gz",
        f"{PREFIX}face_stat-z_statmap.nii.gz",
    ]
    with pytest.raises(ModelSpecError, match="output_types"):
        GroupSpec(output_types=("zscore",))
