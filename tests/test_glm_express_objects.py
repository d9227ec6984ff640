"""glm-express's objects (glmflow.glm_express) against glmflow's runners and the truth.

One small synthetic study (8 subjects x 1 run x 60 volumes, no smoothing, MultiProc with 2
processes): ``Subject`` and ``Aggregator`` write into ``bids/derivatives/glmflow`` (glm-express's
place) with their default cache; the runners write the same models elsewhere with their own
cache, and the maps must agree. The truth: face 2.0 / house 0.5 in the "face" region, no
effect in the "null" region, in every subject.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from glmflow.data import load_truth, make_synthetic_dataset
from glmflow.errors import (
    ContrastError,
    DatasetError,
    GlmflowError,
    GroupModelError,
    ModelSpecError,
)
from glmflow.glm_express import Aggregator, GroupLevel, RestingState, Subject, UnsupportedError
from glmflow.runners.group import run_group_level
from glmflow.runners.participant import run_participant_level

pytestmark = pytest.mark.slow

MODELS = Path(__file__).resolve().parents[1] / "glmflow" / "data" / "models"
SPACE = "space-MNI152NLin2009cAsym"
RUN = {"plugin": "MultiProc", "n_procs": 2}
QUIET = {"plot_brains": False, "verbose": False}


def _read(path) -> np.ndarray:
    return np.asanyarray(nib.load(path).dataobj, dtype=np.float64)


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> dict:
    """The dataset, its task file beside it (glm-express's place), the region masks."""
    root = tmp_path_factory.mktemp("glm_express")
    bids = make_synthetic_dataset(root / "bids", n_subjects=8, n_runs=1, n_volumes=60)
    data = json.loads((MODELS / "task_information.json").read_text())
    data["faces"].update(group_level_regressors=[])  # a one-sample group mean
    (root / "task_information.json").write_text(json.dumps(data))
    truth = load_truth(bids)
    masks = {
        name: nib.load(bids / "derivatives" / "truth" / region["mask"]).get_fdata() > 0
        for name, region in truth["regions"].items()
    }
    return {"root": root, "bids": bids, "task_file": root / "task_information.json",
            "masks": masks}  # fmt: skip


@pytest.fixture(scope="module")
def subject(study) -> Subject:
    sub = Subject("01", "faces", bids_root=study["bids"], suppress=True, **RUN)
    sub.run_first_level_glm(smoothing=0, **QUIET)
    return sub


@pytest.fixture(scope="module")
def aggregator(study, subject) -> Aggregator:
    agg = Aggregator(study["bids"], "faces", **RUN)
    agg.run_all_models(smoothing=0, plot_brains=False)
    return agg


def test_subject_maps_equal_the_participant_runner(study, subject):
    root = study["root"]
    run_participant_level(
        bids_dir=study["bids"], output_dir=root / "ref", model=study["task_file"],
        work_dir=root / "ref_work", participant_label=["01"], smoothing_fwhm=0,
        progress=False, **RUN,
    )  # fmt: skip
    assert sorted(subject.condition_maps) == ["face", "house", "scrambled"]
    assert sorted(subject.contrast_maps) == ["face-house", "face-others", "face-scrambled"]
    assert subject.t_r == 2.0  # the data's TR, not glm-express's 1.0
    for name, path in {**subject.condition_maps, **subject.contrast_maps}.items():
        ref = root / "ref" / "glmflow" / "sub-01" / "func" / path.name
        assert np.max(np.abs(_read(path) - _read(ref))) < 1e-6, name
    # the run's design is the one the graph fitted (its TSV among the outputs)
    design = subject.generate_design_matrix(1)
    written = subject.first_level_output / "func" / "sub-01_task-faces_run-1_design.tsv"
    np.testing.assert_allclose(design.to_numpy(), np.loadtxt(written, skiprows=1), atol=1e-6)
    assert subject.conditions == ["house", "scrambled", "face"]  # first appearance


def test_subject_flags_are_the_model_they_name(study, subject):
    """motion_outliers / a_comp_cor / t_comp_cor False: the design loses those columns."""
    design = subject.generate_design_matrix(1, motion_outliers=False, a_comp_cor=False,
                                            t_comp_cor=False)  # fmt: skip
    full = subject.generate_design_matrix(1)
    dropped = sorted(set(full.columns) - set(design.columns))
    assert dropped and all(
        c.startswith(("motion_outlier", "a_comp_cor_", "t_comp_cor_")) for c in dropped
    )
    assert "non_steady_state_outlier00" in design.columns  # listed in the task file


def test_planted_effects_found(study, subject, aggregator):
    masks = study["masks"]
    effects = [_read(_subject_map(study, s, "face").effect) for s in aggregator.subjects]
    mean = np.mean(effects, axis=0)
    assert mean[masks["face"]].mean() == pytest.approx(2.0, rel=0.15)
    assert mean[masks["house"]].mean() == pytest.approx(0.5, abs=0.25)
    group = GroupLevel("faces", study["bids"], **RUN)
    z = group.uncorrected_model("face-house", sub_smoothing=0).get_fdata()
    effect = _read(group.last_maps["effect"])  # the group model of the effect maps
    assert effect[masks["face"]].mean() == pytest.approx(1.5, abs=0.35)  # 2.0 - 0.5
    assert effect[masks["house"]].mean() == pytest.approx(-1.5, abs=0.35)
    for silent in ("null", "both", "block"):  # no face-house difference planted
        assert abs(effect[masks[silent]].mean()) < 0.25, silent
    assert z[masks["face"]].mean() > 1 and z[masks["house"]].mean() < -1
    corrected = group.corrected_model("face-house", height_control="fpr", alpha=0.001,
                                      sub_smoothing=0).get_fdata()  # fmt: skip
    threshold = norm.isf(0.001 / 2)  # nilearn's two-sided fpr threshold
    assert group.last_threshold == pytest.approx(threshold)
    np.testing.assert_array_equal(corrected != 0, np.abs(z) > threshold)
    np.testing.assert_allclose(corrected[corrected != 0], z[corrected != 0], atol=1e-6)


def test_aggregator_runs_every_subject_and_summarises_the_maps(study, aggregator):
    table = aggregator.summary
    assert aggregator.subjects == [f"{i:02d}" for i in range(1, 9)]
    assert sorted(set(table["subject"])) == aggregator.subjects
    assert len(table) == 8 * 6  # three conditions and three contrasts each
    for row in table.itertuples():
        data = _read(row.z_map)
        assert row.z_max == pytest.approx(data.max(), abs=1e-6)
        assert row.z_min == pytest.approx(data.min(), abs=1e-6)
        assert row.runs == 1
        assert f"sub-{row.subject}_" in Path(row.z_map).name


def test_group_level_equals_the_group_runner(study, aggregator):
    root = study["root"]
    group = GroupLevel("faces", study["bids"], **RUN)
    assert group.subjects == [f"{i:02d}" for i in range(1, 9)]
    assert group.all_contrasts == {
        "conditions": ["face", "house", "scrambled"],
        "contrasts": ["face-house", "face-others", "face-scrambled"],
    }
    z = group.uncorrected_model("face-house", sub_smoothing=0)
    copy = root / "group_ref"
    shutil.copytree(study["bids"] / "derivatives" / "glmflow", copy / "glmflow")
    for old in (copy / "glmflow").glob("task-*"):
        old.unlink()
    run_group_level(
        bids_dir=study["bids"], output_dir=copy, model=study["task_file"],
        work_dir=root / "group_ref_work", inference={"method": "none"}, progress=False, **RUN,
    )  # fmt: skip
    ref = copy / "glmflow" / f"task-faces_{SPACE}_contrast-faceMinusHouse_stat-z_statmap.nii.gz"
    assert np.max(np.abs(z.get_fdata() - _read(ref))) < 1e-6
    negative = group.uncorrected_model("face-house", sub_smoothing=0, direction=-1)
    np.testing.assert_allclose(negative.get_fdata(), -z.get_fdata(), atol=1e-6)
    assert group.get_brain_data("faceMinusHouse", 0) == group.get_brain_data("face-house", 0)
    table = group.get_clusters(z, stat_thresh=3.0)
    assert table["Peak Stat"].astype(float).max() == pytest.approx(z.get_fdata().max(), abs=1e-5)


def _subject_map(study, sub, contrast):
    from glmflow.glm_express.first_level import subject_maps
    from glmflow.glm_express.project import Project

    return subject_maps(Project.open(study["bids"]), "faces", "MNI152NLin2009cAsym")[contrast][sub]


def _one_line(excinfo, expected: str) -> None:
    message = str(excinfo.value)
    assert "\n" not in message
    assert re.fullmatch(expected, message), message


def test_bad_arguments_are_one_line(study, subject, aggregator):
    bids, deriv = study["bids"], study["bids"] / "derivatives" / "fmriprep"
    with pytest.raises(DatasetError) as err:
        Subject("09", "faces", bids_root=bids, suppress=True)
    _one_line(err, re.escape(
        f"Subject '09' not found in BIDS project {deriv} for task 'faces' (subjects: 01, 02, "
        "03, 04, 05, 06, 07, 08); check sub_id"))  # fmt: skip
    with pytest.raises(DatasetError) as err:
        Aggregator(bids, "rest")
    _one_line(err, re.escape(
        f"Task 'rest' not found in BIDS project {deriv} (tasks with preprocessed BOLD: "
        "faces); check task"))  # fmt: skip
    group = GroupLevel("faces", bids)
    lookups = (  # every use of a contrast name goes through one lookup and its one line
        lambda: group.uncorrected_model("face-houses", sub_smoothing=0),
        lambda: group.corrected_model("face-houses", sub_smoothing=0),
        lambda: group.get_brain_data("face-houses", 0),
        lambda: group.plot_brain_mosaic("face-houses", 0),
        lambda: group._subject_maps("face-houses", 0),  # was a bare StopIteration (_named)
    )
    for lookup in lookups:
        with pytest.raises(ContrastError) as err:
            lookup()
        _one_line(err, re.escape(
            f"Contrast 'face-houses' has no subject-level maps of task 'faces' in "
            f"{bids / 'derivatives' / 'glmflow'}: did you mean 'face-house'? (contrasts: "
            "face, face-house, face-others, face-scrambled, house, scrambled)"))  # fmt: skip
    with pytest.raises(GroupModelError) as err:
        group.uncorrected_model("face-house")  # glm-express's default 8 mm
    _one_line(err, r"The subject maps of 'face-house' \(sub-01_.*\) were smoothed with 0 mm "
              r"at the first level, not 8 mm; pass smoothing=0 \(sub_smoothing=\) or rerun "
              r"the first level with smoothing=8")  # fmt: skip
    with pytest.raises(UnsupportedError) as err:
        subject.run_first_level_glm(user_design_matrices=[], **QUIET)
    _one_line(err, r"user_design_matrices is not supported by glmflow\.glm_express; .*")


def test_aggregator_raises_a_subjects_mid_run_failure(tmp_path):
    """A subject whose BOLD breaks inside the graph (its header and size pass the checks
    before compute): the failure is raised, naming the subject's node; no summary."""
    from glmflow.execution.plugins import ExecutionError

    bids = make_synthetic_dataset(tmp_path / "bids", n_subjects=2, n_runs=1, n_volumes=40)
    shutil.copy(MODELS / "task_information.json", tmp_path / "task_information.json")
    bold = next((bids / "derivatives/fmriprep/sub-02/func").glob("*desc-preproc_bold.nii.gz"))
    raw = bold.read_bytes()
    mid = len(raw) // 2  # flip 64 compressed bytes: the gzip CRC fails at the read
    bold.write_bytes(raw[:mid] + bytes(b ^ 0xFF for b in raw[mid : mid + 64]) + raw[mid + 64 :])
    agg = Aggregator(bids, "faces", plugin="Linear")
    with pytest.raises(ExecutionError) as err:
        agg.run_all_models(smoothing=0, plot_brains=False)
    _one_line(err, r"Node 'glmflow_wf\.sub_02_task_faces_wf\..*' failed with "
              r"glmflow\.errors\.DatasetError: BOLD .*sub-02_task-faces_run-1_.* cannot be read "
              r"at volume \d+ of 40 \(BadGzipFile: CRC check failed .*")  # fmt: skip
    assert agg.summary is None
    assert not (bids / "derivatives" / "glmflow").exists()  # nothing half-published


def test_bad_contrast_and_tr_are_one_line(study, subject):
    sub = Subject("02", "faces", bids_root=study["bids"], suppress=True, **RUN)
    sub.set_design_contrasts({"faces-houses": "face - houses"})
    with pytest.raises(ContrastError) as err:
        sub.run_first_level_glm(smoothing=0, **QUIET)
    _one_line(err, r"Contrast 'faces-houses' uses 'houses' which is not a column of the "
              r"design of .*sub-02_task-faces_run-1_.*")  # fmt: skip
    with pytest.raises(ModelSpecError) as err:
        sub.set_design_contrasts({"bad": "face -"})
    _one_line(err, r'Contrast "bad": Formula "face -" does not parse \(invalid syntax\); .* '
              r"\(task 'faces' in .*task_information\.json\)")  # fmt: skip
    with pytest.raises(ModelSpecError) as err:
        Subject("02", "faces", bids_root=study["bids"], suppress=True, repetition_time=1.0)
    _one_line(err, r'"tr" is 1 s in .*task_information\.json but .* has 2 s .*')


# ---- RestingState (glmflow.runners.rest underneath)
REST_LABELS = ["A1", "A2", "A3", "B1", "B2", "B3", "solo1", "solo2"]
MOTION = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]


@pytest.fixture(scope="module")
def rest(tmp_path_factory) -> dict:
    """Two subjects x two resting runs of 120 volumes with the planted networks."""
    from glmflow.data.rest import ATLAS, add_resting_state

    root = tmp_path_factory.mktemp("glm_express_rest")
    bids = add_resting_state(root / "bids", n_subjects=2, n_runs=2, n_volumes=120)
    (root / "task_information.json").write_text(
        json.dumps({"rest": {"confound_regressors": MOTION}})
    )
    state = RestingState("01", bids_root=bids, suppress=True, **RUN)
    return {"bids": bids, "atlas": str(bids / f"{ATLAS}.nii.gz"), "state": state}


def _atlas(rest) -> dict:
    return {"method": "labels", "atlas_to_use": rest["atlas"], "labels_to_use": REST_LABELS}


def test_resting_state_equals_nilearn_masker_and_connectivity_measure(rest):
    from nilearn.connectome import ConnectivityMeasure
    from nilearn.maskers import NiftiLabelsMasker
    from sklearn.covariance import GraphicalLassoCV

    state = rest["state"]
    series = state.extract_time_series(run=1, **_atlas(rest))
    run = state.bids_container["run-1"]
    sidecar = next(p for p in state.result.files if "_run-1_" in p.name
                   and p.name.endswith("_timeseries.tsv"))  # fmt: skip
    meta = json.loads(sidecar.with_suffix(".json").read_text())
    columns = meta["Denoising"]["confound_columns"]
    assert columns[:1] == ["trans_x"] and meta["NodeLabels"] == REST_LABELS
    assert any(c.startswith("motion_outlier") for c in columns)  # regress_motion_outliers
    confounds = pd.read_csv(run["confounds"], sep="\t")[columns].fillna(0).to_numpy()
    masker = NiftiLabelsMasker(rest["atlas"], mask_img=run["mask"], standardize="zscore_sample",
                               detrend=False, standardize_confounds=True)  # fmt: skip
    theirs = masker.fit_transform(run["preprocessed_bold"], confounds=confounds)
    assert series.shape == theirs.shape == (120, 8)
    assert np.abs(series - theirs).max() < 1e-6
    matrix = state.matrix_from_masker(run=1, show_plots=False, **_atlas(rest))
    expected = ConnectivityMeasure(kind="correlation").fit_transform([theirs])[0]
    assert np.abs(matrix - expected).max() < 1e-6
    sparse = state.connectome_covariance(run=1, show_plots=False, **_atlas(rest))
    assert np.abs(sparse - (-GraphicalLassoCV().fit(theirs).precision_)).max() < 1e-6
    both = state.extract_time_series(run="ALL", **_atlas(rest))
    assert both.shape == (240, 8) and np.abs(both[:120] - series).max() == 0


def test_resting_state_load_confounds_is_what_is_regressed_out(rest):
    state = rest["state"]
    table = state.load_confounds(run=2)
    run = state.bids_container["run-2"]
    raw = pd.read_csv(run["confounds"], sep="\t")
    outliers = [c for c in raw.columns if c.startswith("motion_outlier")]
    assert list(table.columns) == [*MOTION, *outliers] and len(table) == 120
    expected = raw[[*MOTION, *outliers]].fillna(0)
    expected = (expected - expected.mean()).to_numpy()  # glmflow demeans its confounds
    assert np.abs(table.to_numpy() - expected).max() < 1e-12
    both = state.load_confounds()
    assert len(both) == 240 and list(both["run"].unique()) == ["1", "2"]
    assert np.abs(both.iloc[120:][table.columns].to_numpy() - table.to_numpy()).max() == 0
    # the columns the masker regressed out (a method's sidecar says them)
    state.extract_time_series(run=2, **_atlas(rest))
    sidecar = next(p for p in state.result.files if "_run-2_" in p.name
                   and p.name.endswith("_timeseries.json"))  # fmt: skip
    meta = json.loads(sidecar.read_text())
    assert meta["Denoising"]["confound_columns"] == list(table.columns)
    with pytest.raises(DatasetError) as err:
        state.load_confounds(run=3)
    _one_line(err, re.escape("Run 3 not found for sub-01 (runs: 1, 2, ALL)"))


def test_resting_state_finds_the_planted_networks(rest):
    state = rest["state"]
    matrix = state.matrix_from_masker(run="ALL", show_plots=False, **_atlas(rest))
    runs = [state.matrix_from_masker(run=r, show_plots=False, **_atlas(rest)) for r in (1, 2)]
    np.testing.assert_allclose(matrix, np.mean(runs, axis=0), atol=1e-12)  # runs' mean
    within = [matrix[i, j] for net in ((0, 1, 2), (3, 4, 5)) for i in net for j in net if i < j]
    between = [matrix[i, j] for i in range(3) for j in range(3, 6)]
    print(np.round(within, 2), np.round(between, 2))
    assert np.mean(within) > 0.4 and min(within) > 0.2
    assert abs(np.mean(between)) < 0.15
    assert (
        np.abs(
            state.load_correlation_matrix(
                "run-2_space-MNI152NLin2009cAsym_seg-atlasrestdseg_meas-correlation"
            )
            - runs[1]
        ).max()
        == 0
    )


def test_resting_state_bad_arguments_are_one_line(rest):
    state = rest["state"]
    with pytest.raises(UnsupportedError) as err:
        state.matrix_from_masker(show_plots=False)  # glm-express's MSDL download
    _one_line(err, re.escape(
        "atlas_to_use=None (glm-express's default: the MSDL atlas, a download by nilearn's "
        "fetch_atlas_msdl; no msdl_atlas/MSDL_rois/msdl_rois.nii in "
        f"{rest['bids']}/derivatives/nilearn_masks or nilearn's data folders, and glmflow "
        "works offline) is not supported by glmflow.glm_express; pass atlas_to_use= a 4-D "
        "probabilistic atlas file (method='maps'), harvard_oxford or juelich (offline "
        "probability maps, method='maps'), or method='labels' with a 3-D labels image or "
        "one of aal, harvard_oxford, juelich, power_2011, dosenbach_2010, seitzman_2018"))
    with pytest.raises(DatasetError) as err:
        state.extract_time_series(method="labels", atlas_to_use=rest["atlas"],
                                  labels_to_use=REST_LABELS[:3])  # fmt: skip
    _one_line(
        err,
        r"labels_to_use has 3 names for the 8 labels of .*atlas-rest_dseg\.nii\.gz; "
        r"give one name per label \(in the order of their values\)",
    )
    with pytest.raises(DatasetError) as err:
        state.extract_time_series(run=3, **_atlas(rest))
    _one_line(err, re.escape("Run 3 not found for sub-01 (runs: 1, 2, ALL)"))
    with pytest.raises(DatasetError) as err:
        RestingState("01", task="faces", bids_root=rest["bids"], suppress=True)
    _one_line(
        err,
        r"Task 'faces' not found in BIDS project .* \(tasks with preprocessed "
        r"BOLD: rest\); check task",
    )


def test_glm_express_demo_runs_and_a_mistake_is_one_line(tmp_path):
    """examples/glm_express_demo.py: glm-express's script shape on the synthetic dataset."""
    import subprocess
    import sys

    demo = Path(__file__).resolve().parents[1] / "examples" / "glm_express_demo.py"
    done = subprocess.run([sys.executable, str(demo), str(tmp_path / "a"), "--subjects", "3"],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert (
        "sub-03: 2 runs, TR 2.0 s, contrasts ['face-house', 'face-others', 'face-scrambled']"
        in done.stdout
    )
    assert "face-house group z:" in done.stdout
    glmflow_dir = tmp_path / "a" / "bids" / "derivatives" / "glmflow"
    assert (
        glmflow_dir / f"task-faces_{SPACE}_contrast-faceMinusHouse_stat-z_statmap.nii.gz"
    ).is_file()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "bids").symlink_to(tmp_path / "a" / "bids")
    data = json.loads((MODELS / "task_information.json").read_text())
    data["faces"]["tr"] = 1.0  # what glm-express's builder writes
    (tmp_path / "b" / "task_information.json").write_text(json.dumps(data))
    done = subprocess.run([sys.executable, str(demo), str(tmp_path / "b")],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.startswith("glmflow: error:")]
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert re.fullmatch(r'glmflow: error: "tr" is 1 s in .*task_information\.json but .* has '
                        r"2 s .*", lines[0])  # fmt: skip


def test_plots_are_written_where_said(study, subject, aggregator, rest):
    subject.run_first_level_glm(smoothing=0, plot_brains=True, plot_type="glass", verbose=False)
    figures = subject.first_level_output / "figures"
    names = sorted(p.name for p in figures.glob("*_plot-glass.png"))
    assert len(names) == 6 and all(n.startswith("sub-01_task-faces_") for n in names)
    group = GroupLevel("faces", study["bids"])
    figure = group.plot_brain_mosaic("face-house", smoothing=0, save_local=True)
    assert len(figure.axes) >= 8  # one glass brain per subject (and their colour bars)
    assert (
        group.output_path / "figures" / "task-faces_contrast-faceMinusHouse_mosaic.png"
    ).is_file()
    state = rest["state"]
    state.matrix_from_masker(run=2, save_plots=True, show_plots=False, **_atlas(rest))
    assert {p.name for p in (state.first_level_output / "figures").glob("sub-01_run-2*.png")} == {
        "sub-01_run-2.png", "sub-01_run-2_connectome.png"}  # fmt: skip


def test_setters_change_the_model_and_check_it(study, subject):
    sub = Subject("03", "faces", bids_root=study["bids"], suppress=True, **RUN)
    sub.set_confound_regressors(["trans_x"])
    design = sub.generate_design_matrix(1, motion_outliers=False, a_comp_cor=False,
                                        t_comp_cor=False)  # fmt: skip
    confounds = [c for c in design.columns if c.startswith(("trans", "rot", "non_steady"))]
    assert confounds == ["trans_x"] and sub.confound_regressors == ["trans_x"]
    sub.set_confound_regressors(["trans_q"])  # a column fMRIPrep does not write
    with pytest.raises(GlmflowError) as err:
        sub.generate_design_matrix(1)
    _one_line(err, r".*'trans_q'.*trans_x.*")
    with pytest.raises(ModelSpecError) as err:
        sub.set_confound_regressors("trans_x")
    _one_line(
        err,
        re.escape(
            "set_confound_regressors takes a list of fMRIPrep column names. Got 'trans_x' instead."
        ),
    )
    with pytest.raises(UnsupportedError) as err:
        sub.set_dummy_scans(4)
    _one_line(err, r"dummy_scans=4 is not supported by glmflow\.glm_express; fMRIPrep marks "
              r"non-steady-state volumes itself: pass non_steady_state=True .*")  # fmt: skip
    with pytest.raises(DatasetError) as err:
        sub.set_template_space("MNI152NLin6")
    _one_line(err, r"template_space 'MNI152NLin6' names 0 of the spaces of task 'faces' in .* "
              r"\(MNI152NLin2009cAsym\); pass one of them")  # fmt: skip


def test_reset_output_directory_asks_first(study, subject, aggregator, monkeypatch):
    """Last in the module: it deletes sub-01's maps (after the other tests used them)."""
    func = subject.first_level_output / "func"
    before = sorted(func.glob("sub-01_*task-faces_*"))
    monkeypatch.setattr("builtins.input", lambda _prompt: "n")
    subject.reset_output_directory()
    assert sorted(func.glob("sub-01_*task-faces_*")) == before and before
    monkeypatch.setattr("builtins.input", lambda _prompt: "Y")
    subject.reset_output_directory()
    assert not list(func.glob("sub-01_*task-faces_*"))
    assert list((study["bids"] / "derivatives" / "glmflow" / "sub-02" / "func").glob("*.nii.gz"))
