"""The synthetic BIDS + fMRIPrep dataset: layout, metadata, confounds and a real ground truth."""

from __future__ import annotations

import hashlib
import json
import re

import bids
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn.glm.first_level import make_first_level_design_matrix
from nilearn.interfaces.fmriprep import load_confounds

from glmflow.data import PRESETS, load_truth, make_synthetic_dataset
from glmflow.data import _anatomy as anatomy
from glmflow.errors import DatasetError, GlmflowError

SPACE = "space-MNI152NLin2009cAsym"
MOTION = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
TINY = {"n_subjects": 2, "n_runs": 1, "n_volumes": 30}  # 60 s runs: the smallest allowed


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """The default small preset, written once for the module."""
    return make_synthetic_dataset(tmp_path_factory.mktemp("synthetic") / "ds")


@pytest.fixture(scope="module")
def truth(dataset):
    return load_truth(dataset)


def _func(root, sub="sub-01", run=1, deriv=True):
    base = root / "derivatives" / "fmriprep" if deriv else root
    return base / sub / "func", f"{sub}_task-faces_run-{run}"


def _confounds(root, sub="sub-01", run=1):
    func, stem = _func(root, sub, run)
    table = pd.read_csv(func / f"{stem}_desc-confounds_timeseries.tsv", sep="\t", na_values="n/a")
    sidecar = json.loads((func / f"{stem}_desc-confounds_timeseries.json").read_text())
    return table, sidecar


def _digests(root):
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_small_preset_layout_and_bids_names(dataset):
    assert PRESETS["small"]["n_subjects"] == 8
    top = {p.name for p in dataset.iterdir()}
    assert {"dataset_description.json", "participants.tsv", "participants.json", "README"} <= top
    assert sorted(p.name for p in dataset.glob("sub-*")) == [f"sub-0{i}" for i in range(1, 9)]
    raw, stem = _func(dataset, deriv=False)
    assert {p.name for p in raw.iterdir()} == {
        f"{stem}_{s}" for s in ("events.tsv", "bold.json", "bold.nii.gz")
    } | {f"sub-01_task-faces_run-2_{s}" for s in ("events.tsv", "bold.json", "bold.nii.gz")}
    func, stem = _func(dataset)
    assert {p.name for p in func.glob(f"{stem}_*")} == {
        f"{stem}_{SPACE}_desc-preproc_bold.nii.gz",
        f"{stem}_{SPACE}_desc-preproc_bold.json",
        f"{stem}_{SPACE}_desc-brain_mask.nii.gz",
        f"{stem}_{SPACE}_desc-brain_mask.json",
        f"{stem}_desc-confounds_timeseries.tsv",
        f"{stem}_desc-confounds_timeseries.json",
    }
    assert (
        len(list(dataset.glob(f"derivatives/fmriprep/sub-*/func/*{SPACE}_desc-preproc*.gz"))) == 16
    )
    description = json.loads(
        (dataset / "derivatives/fmriprep/dataset_description.json").read_text()
    )
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Name"] == "fMRIPrep"
    raw_description = json.loads((dataset / "dataset_description.json").read_text())
    assert raw_description["DatasetType"] == "raw"
    assert raw_description["BIDSVersion"] == "1.8.0"


def test_participants_are_balanced(dataset, truth):
    participants = pd.read_csv(dataset / "participants.tsv", sep="\t")
    assert list(participants.columns) == ["participant_id", "group", "age", "sex"]
    assert participants["group"].value_counts().to_dict() == {"control": 4, "patient": 4}
    assert participants["sex"].value_counts().to_dict() == {"F": 4, "M": 4}
    assert participants["age"].between(20, 60).all()
    for row in participants.itertuples():
        entry = truth["subjects"][row.participant_id]
        assert (entry["group"], entry["age"], entry["sex"]) == (row.group, row.age, row.sex)
    columns = json.loads((dataset / "participants.json").read_text())
    assert set(columns) == set(participants.columns)


def test_pybids_indexes_entities(dataset):
    layout = bids.BIDSLayout(dataset, derivatives=True)
    assert layout.get_subjects() == [f"0{i}" for i in range(1, 9)]
    assert layout.get_tasks() == ["faces"]
    preproc = layout.get(
        subject="01",
        run=2,
        space="MNI152NLin2009cAsym",
        desc="preproc",
        suffix="bold",
        extension=".nii.gz",
    )
    assert len(preproc) == 1
    assert preproc[0].get_entities() == {
        "subject": "01",
        "task": "faces",
        "run": 2,
        "space": "MNI152NLin2009cAsym",
        "desc": "preproc",
        "suffix": "bold",
        "datatype": "func",
        "extension": ".nii.gz",
    }
    assert preproc[0].get_metadata()["StartTime"] == 1.0
    confounds = layout.get(desc="confounds", suffix="timeseries", extension=".tsv")
    assert len(confounds) == 16
    assert len(layout.get(suffix="events", extension=".tsv")) == 16
    assert len(layout.get(desc="brain", suffix="mask", extension=".nii.gz")) == 16


def test_tr_in_headers_matches_sidecars(dataset):
    func, stem = _func(dataset)
    raw, _ = _func(dataset, deriv=False)
    for image, sidecar in [
        (func / f"{stem}_{SPACE}_desc-preproc_bold.nii.gz", None),
        (raw / f"{stem}_bold.nii.gz", raw / f"{stem}_bold.json"),
    ]:
        sidecar = sidecar or image.with_name(image.name.replace(".nii.gz", ".json"))
        meta = json.loads(sidecar.read_text())
        header = nib.load(image).header
        assert header.get_zooms()[3] == meta["RepetitionTime"] == 2.0
        assert header.get_xyzt_units() == ("mm", "sec")
        assert header.get_data_shape() == (20, 24, 20, 100)
    meta = json.loads((raw / f"{stem}_bold.json").read_text())
    assert meta["TaskName"] == "faces"
    assert len(meta["SliceTiming"]) == 20
    assert np.all(np.diff(meta["SliceTiming"]) > 0) and meta["SliceTiming"][0] == 0
    preproc = json.loads((func / f"{stem}_{SPACE}_desc-preproc_bold.json").read_text())
    assert preproc == {
        "RepetitionTime": 2.0,
        "SkullStripped": False,
        "SliceTimingCorrected": True,
        "StartTime": 1.0,
        "TaskName": "faces",
    }


def test_images_have_mni_affine_brain_and_zero_background(dataset, truth):
    func, stem = _func(dataset)
    bold = nib.load(func / f"{stem}_{SPACE}_desc-preproc_bold.nii.gz")
    mask = nib.load(func / f"{stem}_{SPACE}_desc-brain_mask.nii.gz")
    raw = nib.load(dataset / "sub-01/func/sub-01_task-faces_run-1_bold.nii.gz")
    expected = np.array([[4, 0, 0, -40], [0, 4, 0, -64], [0, 0, 4, -20], [0, 0, 0, 1]])
    np.testing.assert_array_equal(bold.affine, expected)
    np.testing.assert_array_equal(mask.affine, expected)
    assert bold.header["sform_code"] == bold.header["qform_code"] == 4
    assert bold.get_data_dtype() == np.float32 and mask.get_data_dtype() == np.uint8
    assert raw.get_data_dtype() == np.int16 and not np.asarray(raw.dataobj).any()
    data = bold.get_fdata(dtype=np.float32)
    brain = mask.get_fdata() > 0
    assert 0.18 < brain.mean() < 0.28  # an ellipsoid that does not fill the box
    assert not data[~brain].any()
    # baseline: 100 * subject scale * smooth field (+-10 %) * tissue contrast (0.85 - 1.3)
    steady = data[brain][:, 2:].mean(1) / (100 * truth["subjects"]["sub-01"]["baseline_scale"])
    assert 0.75 < steady.min() and steady.max() < 1.5
    # the two non-steady-state frames are brighter than the rest
    assert data[brain][:, 0].mean() > 1.2 * steady.mean()
    for name, region in truth["regions"].items():
        box = tuple(slice(*b) for b in region["bbox"])
        assert brain[box].all(), name


def test_confounds_columns_and_na_placement(dataset):
    table, sidecar = _confounds(dataset)
    assert len(table) == 100
    expanded = [*MOTION, "csf", "white_matter", "global_signal"]
    for name in expanded:
        for suffix in ("", "_derivative1", "_power2", "_derivative1_power2"):
            assert f"{name}{suffix}" in table, f"{name}{suffix}"
        np.testing.assert_allclose(table[f"{name}_power2"], table[name] ** 2)
        np.testing.assert_allclose(table[f"{name}_derivative1"][1:], np.diff(table[name]))
    first_na = {c for c in table if table[c].isna().any()}
    assert first_na == {f"{n}_derivative1{s}" for n in expanded for s in ("", "_power2")} | {
        "framewise_displacement",
        "dvars",
        "std_dvars",
    }
    assert table.loc[1:, sorted(first_na)].notna().all().all()
    assert table.loc[0, sorted(first_na)].isna().all()
    for prefix, count in (("a_comp_cor", 6), ("t_comp_cor", 4), ("c_comp_cor", 3)):
        assert [c for c in table if c.startswith(prefix)] == [
            f"{prefix}_{k:02d}" for k in range(count)
        ]
    assert [c for c in table if c.startswith("cosine")] == ["cosine00", "cosine01", "cosine02"]
    nss = table[["non_steady_state_outlier00", "non_steady_state_outlier01"]].to_numpy()
    np.testing.assert_array_equal(nss[:3], [[1, 0], [0, 1], [0, 0]])
    assert nss[2:].sum() == 0
    outliers = [c for c in table if c.startswith("motion_outlier")]
    flagged = sorted(int(table[c].idxmax()) for c in outliers)
    spikes = (table["framewise_displacement"] > 0.5) | (table["std_dvars"] > 1.5)
    assert flagged == list(np.flatnonzero(spikes))
    assert (table["framewise_displacement"] > 0.5).sum() >= 1
    # "a few" outliers in every run: motion jerks and the frames after the non-steady state
    counts = [
        sum(c.startswith("motion_outlier") for c in pd.read_csv(path, sep="\t", nrows=0))
        for path in dataset.glob("derivatives/fmriprep/sub-*/func/*_timeseries.tsv")
    ]
    assert len(counts) == 16 and 3 <= min(counts) and max(counts) <= 10
    assert table[outliers].sum().tolist() == [1] * len(outliers)
    fd = table["framewise_displacement"][1:]
    assert 0.02 < fd.median() < 0.3  # typical compliant subject
    compcor = {c for c in table if "comp_cor" in c}
    assert compcor <= set(sidecar)
    assert sidecar["a_comp_cor_00"]["Mask"] == "combined"
    assert sidecar["c_comp_cor_00"]["Mask"] == "CSF"
    assert sidecar["w_comp_cor_00"]["Mask"] == "WM"
    assert sidecar["t_comp_cor_00"]["Method"] == "tCompCor"
    cumulative = [sidecar[f"a_comp_cor_{k:02d}"]["CumulativeVarianceExplained"] for k in range(6)]
    assert np.all(np.diff(cumulative) > 0) and cumulative[-1] < 1
    # CompCor excludes the non-steady-state frames, components are orthonormal
    components = table[[f"a_comp_cor_{k:02d}" for k in range(6)]].to_numpy()
    assert not components[:2].any()
    np.testing.assert_allclose(components.T @ components, np.eye(6), atol=1e-8)


def test_nilearn_load_confounds_reads_the_files(dataset):
    func, stem = _func(dataset)
    bold = str(func / f"{stem}_{SPACE}_desc-preproc_bold.nii.gz")
    table, _ = _confounds(dataset)
    confounds, sample_mask = load_confounds(
        bold,
        strategy=("motion", "high_pass", "wm_csf", "compcor", "global_signal", "scrub"),
        motion="full",
        compcor="anat_combined",
        n_compcor=5,
    )
    assert confounds.shape == (100, 24 + 3 + 2 + 5 + 1)
    assert {f"a_comp_cor_0{k}" for k in range(5)} <= set(confounds.columns)
    assert not confounds.isna().any().any()
    flagged = {int(table[c].idxmax()) for c in table if "outlier" in c}
    assert flagged <= set(range(100)) - set(sample_mask)
    assert {0, 1} <= set(range(100)) - set(sample_mask)
    separated, _ = load_confounds(
        bold, strategy=("high_pass", "compcor"), compcor="temporal_anat_separated"
    )
    assert sorted(c for c in separated if "comp_cor" in c) == sorted(
        [f"c_comp_cor_0{k}" for k in range(3)]
        + [f"w_comp_cor_0{k}" for k in range(3)]
        + [f"t_comp_cor_0{k}" for k in range(4)]
    )


def test_events_have_conditions_modulator_and_blocks(dataset, truth):
    events = pd.read_csv(
        dataset / "sub-01/func/sub-01_task-faces_run-1_events.tsv", sep="\t", na_values="n/a"
    )
    assert list(events.columns) == ["onset", "duration", "trial_type", "rt", "block_type"]
    assert set(events["trial_type"]) == {"face", "house", "scrambled", "fixation"}
    assert events["onset"].is_monotonic_increasing
    assert events["onset"].min() == 0 and (events["onset"] < 200).all()
    stim = events[events["trial_type"] != "fixation"]
    fixation = events[events["trial_type"] == "fixation"]
    assert fixation[["rt", "block_type"]].isna().all().all()
    assert stim["rt"].between(0.3, 2.0).all() and stim["rt"].std() > 0.1
    assert set(stim["block_type"]) == {"high", "low"}
    gaps = np.diff(stim["onset"])
    assert gaps.min() >= 2.0 and np.unique(gaps.round(2)).size > 10  # jittered
    counts = stim["trial_type"].value_counts()
    assert counts.min() >= 12
    assert truth["subjects"]["sub-01"]["runs"]["run-1"]["n_trials"] == counts.to_dict()


def test_truth_round_trips(dataset, truth):
    assert truth["parameters"] == {
        "preset": "small",
        "n_subjects": 8,
        "n_runs": 2,
        "n_sessions": 1,
        "n_volumes": 100,
        "shape": [20, 24, 20],
        "voxel_size": 4.0,
        "tr": 2.0,
        "seed": 0,
    }
    assert (truth["tr"], truth["start_time"], truth["task"]) == (2.0, 1.0, "faces")
    assert truth["conditions"] == ["face", "house", "scrambled"]
    assert set(truth["regions"]) == {"face", "house", "both", "rt", "block", "group", "null"}
    assert truth["noise"]["ar_phi"] == 0.3
    truth_dir = dataset / "derivatives" / "truth"
    occupied = np.zeros((20, 24, 20), int)
    for name, region in truth["regions"].items():
        mask = nib.load(truth_dir / region["mask"]).get_fdata()
        box = tuple(slice(*b) for b in region["bbox"])
        assert mask[box].all() and mask.sum() == region["n_voxels"], name
        occupied += mask.astype(int)
    assert occupied.max() == 1
    group = truth["group_effect"]
    subject = truth["subjects"]["sub-03"]
    code = 0.5 if subject["group"] == "patient" else -0.5
    expected = (
        group["mean"]
        + group["patient_minus_control"] * code
        + group["age_slope_per_year"] * (subject["age"] - group["mean_age"])
        + subject["between_subject_noise"]
    )
    assert subject["group_region_face_effect"] == pytest.approx(expected)
    effects = {
        name: nib.load(truth_dir / path).get_fdata()
        for name, path in subject["effect_maps"].items()
    }
    assert set(effects) == {"face", "house", "scrambled", "rt", "highblock"}
    boxes = {n: tuple(slice(*b) for b in r["bbox"]) for n, r in truth["regions"].items()}
    np.testing.assert_allclose(effects["face"][boxes["group"]], expected, rtol=1e-6)
    np.testing.assert_allclose(effects["face"][boxes["face"]], 2.0)
    np.testing.assert_allclose(effects["rt"][boxes["rt"]], 4.0)
    np.testing.assert_allclose(effects["highblock"][boxes["block"]], 1.5)
    assert not any(e[boxes["null"]].any() for e in effects.values())
    assert effects["face"].sum() == pytest.approx(
        sum(
            r["n_voxels"] * (expected if n == "group" else r["betas"].get("face", 0))
            for n, r in truth["regions"].items()
        ),
        rel=1e-6,
    )


def test_group_truth_has_the_planned_structure(truth):
    subjects = pd.DataFrame(truth["subjects"]).T
    effect = subjects["group_region_face_effect"].astype(float)
    patients = subjects["group"] == "patient"
    noise = subjects["between_subject_noise"].astype(float)
    assert noise.std() < 0.5
    diff = effect[patients].mean() - effect[~patients].mean()
    assert diff == pytest.approx(-1.0, abs=0.5)


def _recover_betas(root, truth, sub, run):
    """OLS on percent-signal-change data with nilearn's design: events, motion, NSS, cosines."""
    entry = truth["subjects"][sub]["runs"][f"run-{run}"]
    events = pd.read_csv(root / entry["events"], sep="\t", na_values="n/a")
    events = events[events["trial_type"] != "fixation"][["onset", "duration", "trial_type"]]
    data = nib.load(root / entry["bold"]).get_fdata(dtype=np.float32)
    table, _ = _confounds(root, sub, run)
    extra = table[[*MOTION, "non_steady_state_outlier00", "non_steady_state_outlier01"]]
    n = data.shape[-1]
    times = (np.arange(n) + truth["start_time"] / truth["tr"]) * truth["tr"]
    design = make_first_level_design_matrix(
        times,
        events,
        hrf_model="spm",
        drift_model="cosine",
        high_pass=0.01,
        add_regs=extra.to_numpy(),
        add_reg_names=list(extra.columns),
    )
    betas = {}
    for name, region in truth["regions"].items():
        box = tuple(slice(*b) for b in region["bbox"])
        y = data[box].reshape(-1, n).T
        psc = 100 * y / y.mean(0) - 100
        fit = np.linalg.lstsq(design.to_numpy(), psc, rcond=None)[0].mean(1)
        betas[name] = dict(zip(design.columns, fit, strict=True))
    return betas


def test_ols_recovers_the_true_betas_in_percent_signal_change(dataset, truth):
    fits = {
        sub: [_recover_betas(dataset, truth, sub, run) for run in (1, 2)]
        for sub in truth["subjects"]
    }
    first = {
        region: {c: np.mean([f[region][c] for f in fits["sub-01"]]) for c in truth["conditions"]}
        for region in truth["regions"]
    }
    assert first["face"]["face"] == pytest.approx(2.0, rel=0.2)
    assert first["house"]["house"] == pytest.approx(2.0, rel=0.2)
    assert first["face"]["face"] - first["face"]["house"] == pytest.approx(1.5, rel=0.3)
    for condition in truth["conditions"]:
        assert abs(first["null"][condition]) < 0.4, condition  # 20 % of the face effect
    # all 16 runs: the estimate of a fixed effect tightens around the truth
    runs = [f for per_subject in fits.values() for f in per_subject]
    pooled = {
        region: {c: np.mean([f[region][c] for f in runs]) for c in truth["conditions"]}
        for region in truth["regions"]
    }
    assert pooled["face"]["face"] == pytest.approx(2.0, rel=0.1)
    assert pooled["house"]["house"] == pytest.approx(2.0, rel=0.1)
    assert pooled["both"]["face"] == pytest.approx(1.5, rel=0.1)
    for condition in truth["conditions"]:
        assert abs(pooled["null"][condition]) < 0.15, condition
    # the subject-specific group-region effect is what each subject's data show
    estimated = np.array([np.mean([f["group"]["face"] for f in fits[s]]) for s in fits])
    true = np.array([truth["subjects"][s]["group_region_face_effect"] for s in fits])
    patient = np.array([truth["subjects"][s]["group"] == "patient" for s in fits])
    assert np.corrcoef(estimated, true)[0, 1] > 0.9
    assert np.abs(estimated - true).max() < 0.4
    difference = estimated[patient].mean() - estimated[~patient].mean()
    assert difference == pytest.approx(true[patient].mean() - true[~patient].mean(), abs=0.3)


def test_same_seed_gives_identical_files_and_another_seed_differs(tmp_path):
    first = make_synthetic_dataset(tmp_path / "a", **TINY)
    second = make_synthetic_dataset(tmp_path / "b", **TINY)
    other = make_synthetic_dataset(tmp_path / "c", **TINY, seed=1)
    digests = _digests(first)
    assert digests == _digests(second)
    changed = {k for k, v in _digests(other).items() if digests.get(k) != v}
    bold = f"derivatives/fmriprep/sub-01/func/sub-01_task-faces_run-1_{SPACE}_desc-preproc_bold"
    bold += ".nii.gz"
    assert {bold, "sub-01/func/sub-01_task-faces_run-1_events.tsv"} <= changed
    gz = (first / bold).read_bytes()
    assert gz[:2] == b"\x1f\x8b" and gz[4:8] == b"\0\0\0\0"  # gzip with mtime 0


def test_sessions_add_a_session_level(tmp_path):
    root = make_synthetic_dataset(tmp_path / "ds", **TINY | {"n_sessions": 2, "n_subjects": 1})
    names = sorted(str(p.relative_to(root)) for p in root.rglob("*_events.tsv"))
    assert names == [
        f"sub-01/ses-0{s}/func/sub-01_ses-0{s}_task-faces_run-1_events.tsv" for s in (1, 2)
    ]
    layout = bids.BIDSLayout(root, derivatives=True)
    assert layout.get_sessions() == ["01", "02"]
    assert set(load_truth(root)["subjects"]["sub-01"]["runs"]) == {"ses-01_run-1", "ses-02_run-1"}
    confounds = list(root.glob("derivatives/fmriprep/sub-01/ses-02/func/*_timeseries.tsv"))
    assert [p.name for p in confounds] == [
        "sub-01_ses-02_task-faces_run-1_desc-confounds_timeseries.tsv"
    ]


def test_shape_and_tr_overrides(tmp_path):
    root = make_synthetic_dataset(
        tmp_path / "ds", n_subjects=1, n_runs=1, n_volumes=30, tr=2.5, shape=(24, 29, 24)
    )
    func, stem = _func(root)
    image = nib.load(func / f"{stem}_{SPACE}_desc-preproc_bold.nii.gz")
    assert image.shape == (24, 29, 24, 30) and image.header.get_zooms()[3] == 2.5
    meta = json.loads((func / f"{stem}_{SPACE}_desc-preproc_bold.json").read_text())
    assert (meta["RepetitionTime"], meta["StartTime"]) == (2.5, 1.25)
    events = pd.read_csv(root / "sub-01/func" / f"{stem}_events.tsv", sep="\t")
    assert events["onset"].max() < 75 and set(events["trial_type"]) >= {"face", "house"}
    assert len(_confounds(root)[0]) == 30
    truth = load_truth(root)
    assert truth["parameters"]["shape"] == [24, 29, 24] and truth["start_time"] == 1.25


def test_realistic_preset_geometry():
    preset = PRESETS["realistic"]
    assert preset["shape"] == (97, 115, 97) and preset["n_volumes"] >= 200
    affine = anatomy.mni_like_affine(preset["shape"], preset["voxel_size"])
    mni_2mm = [[2, 0, 0, -96], [0, 2, 0, -132], [0, 0, 2, -78], [0, 0, 0, 1]]
    np.testing.assert_array_equal(affine, mni_2mm)
    anat = anatomy.make_anatomy(preset["shape"], preset["voxel_size"], np.random.default_rng(0))
    brain = anatomy.subject_brain(anat, np.random.default_rng(0))
    assert 0.20 <= brain.mean() <= 0.25
    assert anatomy.layout_problem(preset["shape"]) is None
    sizes = {name: int(np.prod([s.stop - s.start for s in b])) for name, b in anat.regions.items()}
    assert min(sizes.values()) > 100


def test_refuses_a_non_empty_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    message = (
        f"Output directory {tmp_path} is not empty; choose a new directory or pass "
        "overwrite=True to replace a previous synthetic dataset"
    )
    with pytest.raises(DatasetError, match=f"^{re.escape(message)}$"):
        make_synthetic_dataset(tmp_path, **TINY)
    message = (
        f"Output directory {tmp_path} is not empty and holds no derivatives/truth/truth.json, "
        "so it is not a synthetic dataset; refusing to delete it even with overwrite=True"
    )
    with pytest.raises(DatasetError, match=f"^{re.escape(message)}$"):
        make_synthetic_dataset(tmp_path, **TINY, overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_overwrite_replaces_a_previous_dataset(tmp_path):
    root = make_synthetic_dataset(tmp_path / "ds", **TINY | {"n_subjects": 3})
    make_synthetic_dataset(root, **TINY, overwrite=True)
    assert sorted(p.name for p in root.glob("sub-*")) == ["sub-01", "sub-02"]
    assert load_truth(root)["parameters"]["n_subjects"] == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"preset": "huge"},
            "Unknown synthetic dataset preset 'huge' (available: small, realistic)",
        ),
        ({"n_subjects": 0}, "'n_subjects' must be an integer >= 1. Got 0 instead."),
        ({"n_runs": 1.5}, "'n_runs' must be an integer >= 1. Got 1.5 instead."),
        ({"n_sessions": True}, "'n_sessions' must be an integer >= 1. Got True instead."),
        ({"seed": -1}, "'seed' must be an integer >= 0. Got -1 instead."),
        ({"n_volumes": 5}, "'n_volumes' must be an integer >= 12. Got 5 instead."),
        ({"shape": (20, 24)}, "'shape' must be three positive integers. Got (20, 24) instead."),
        (
            {"shape": (7, 8, 9)},
            "'shape' (7, 8, 9) is too small for the truth regions (region 'face' reaches the "
            "brain edge or the ventricles); use at least (20, 24, 20).",
        ),
        ({"tr": -2}, "'tr' must be a positive number of seconds. Got -2 instead."),
        (
            {"n_volumes": 20, "tr": 2.0},
            "'n_volumes' * 'tr' must be at least 60 s to hold a block of trials. "
            "Got 20 * 2 = 40 s.",
        ),
    ],
)
def test_bad_parameters_are_refused_before_writing(tmp_path, kwargs, message):
    with pytest.raises(DatasetError, match=f"^{re.escape(message)}$"):
        make_synthetic_dataset(tmp_path / "ds", **kwargs)
    assert not (tmp_path / "ds").exists()


def test_load_truth_of_a_plain_directory(tmp_path):
    message = (
        f"No ground truth at {tmp_path}/derivatives/truth/truth.json: {tmp_path} is not a "
        "dataset written by glmflow.data.make_synthetic_dataset"
    )
    with pytest.raises(GlmflowError, match=f"^{re.escape(message)}$"):
        load_truth(tmp_path)
