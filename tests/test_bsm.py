"""BIDS Stats Models: checks before compute, pybids designs, run maps against nilearn.

Data: the real ds003 events (bids-examples) with simulated BOLD and fMRIPrep confounds of the
right length (glmflow.data.realdata); models: the public files in
../shared/realdata/bids-stats-models.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from glmflow.core.bsm import check_model, load_graph, read_bids_stats_model, run_designs
from glmflow.errors import DatasetError, GlmflowError, ModelSpecError

pytestmark = pytest.mark.realdata
SUBJECTS = ["01", "02"]
N_VOLUMES = 160  # ds003's runs: 160 volumes of 2 s


@pytest.fixture(scope="module")
def models(realdata):
    return realdata / "bids-stats-models"


@pytest.fixture(scope="module")
def zoo_model(models):
    return json.loads((models / "model-zoo" / "model-001_smdl.json").read_text())


@pytest.fixture(scope="module")
def ds003(realdata, tmp_path_factory):
    from glmflow.data.realdata import make_events_dataset

    participants = realdata / "bids-stats-models/bids-examples-participants/ds003/participants.tsv"
    return make_events_dataset(
        realdata / "bids-examples" / "ds003",
        tmp_path_factory.mktemp("ds003"),
        n_volumes=N_VOLUMES,
        participants=participants,
        subjects=SUBJECTS,
    )


@pytest.fixture(scope="module")
def layout(ds003):
    from bids import BIDSLayout

    return BIDSLayout(ds003, derivatives=[ds003 / "derivatives" / "fmriprep"])


def _designs(model: dict, layout, missing: str = "error"):
    checked = check_model(model, "model.json")
    return run_designs(
        load_graph(checked, layout, "model.json"), layout, "model.json", missing=missing
    )


# --------------------------------------------------------------------- bad model files
def _edit(path, value):
    def apply(model):
        *parents, last = path
        target = model
        for key in parents:
            target = (
                target[key]
                if not isinstance(key, str) or key in target
                else target.setdefault(key, {})
            )
        if value is _POP:
            target.pop(last)
        else:
            target[last] = value

    return apply


_POP = object()
_M = "model.json: "
BAD_MODELS = [
    (_edit(["Nodes"], _POP), _M + "the model: 'Nodes' is missing; add it"),
    (
        lambda m: m.update(Node=m.pop("Nodes")),
        _M + "the model: unknown key 'Node'; did you mean 'Nodes'?",
    ),
    (
        lambda m: (m["Nodes"][0].pop("DummyContrasts"), m["Nodes"][0].pop("Contrasts")),
        _M + "node 'subject': it has no 'Contrasts' and no 'DummyContrasts', so no map reaches "
        'node \'t-test\'; add contrasts (e.g. "DummyContrasts": {"Test": "t"})',
    ),
    (
        _edit(["Nodes", 1, "Level"], "group"),
        _M + "node 't-test': 'Level' must be one of Run, Session, Subject, Dataset; got \"group\"",
    ),
    (
        _edit(["Nodes", 1, "GroupBy"], _POP),
        _M + "node 't-test': 'GroupBy' is missing; add the entities that define one analysis "
        'unit, e.g. ["contrast"]',
    ),
    (
        _edit(["Nodes", 0, "Model", "Type"], "ols"),
        _M + 'node \'subject\': \'Model.Type\' must be "glm" or "meta"; got "ols"',
    ),
    (
        _edit(["Nodes", 0, "Model", "Type"], "meta"),
        _M + "node 'subject': 'Model.Type' \"meta\" needs inputs from a lower node; a Run node "
        'fits the BOLD data: use "glm"',
    ),
    (
        _edit(["Nodes", 1, "Model", "Options"], {"LowPassFilterCutoffHz": 0.1}),
        _M + "node 't-test': 'Model.Options.LowPassFilterCutoffHz' 0.1: a later node fits "
        "effect maps, not time series; move it to the Run node",
    ),
    (
        _edit(
            ["Nodes", 0, "Model", "Options"],
            {"HighPassFilterCutoffHz": 0.01, "LowPassFilterCutoffHz": 0.01},
        ),
        _M + "node 'subject': 'Model.Options.LowPassFilterCutoffHz' 0.01: the low-pass cutoff "
        "must be above 'Model.Options.HighPassFilterCutoffHz' 0.01 (the band kept lies between "
        "them); raise it or lower the high-pass",
    ),
    (
        _edit(["Nodes", 0, "Model", "Options", "LowPassFilterCutoffHz"], "0.1"),
        _M + "node 'subject': 'Model.Options.LowPassFilterCutoffHz' must be a positive "
        'frequency in Hz (e.g. 0.1 for 10 s); got "0.1"',
    ),
    (
        _edit(["Nodes", 0, "Model", "Options", "HighPassFilterCutoffHz"], -1),
        _M + "node 'subject': 'Model.Options.HighPassFilterCutoffHz' must be a positive frequency "
        "in Hz (e.g. 0.0078125 for 128 s); got -1",
    ),
    (
        _edit(["Nodes", 0, "Model", "Options", "Mask"], "brain_mask.txt"),
        _M + "node 'subject': 'Model.Options.Mask' \"brain_mask.txt\" must be an object of "
        'BIDS entities selecting one mask image per run, e.g. {"desc": "brain", "suffix": '
        '"mask"}, or the path of a NIfTI mask (.nii, .nii.gz; absolute or from the model '
        "file's folder)",
    ),
    (
        _edit(["Nodes", 1, "Model", "Options"], {"Mask": {"desc": "brain"}}),
        _M + "node 't-test': 'Model.Options.Mask' {\"desc\": \"brain\"}: glmflow masks at the "
        "Run node (a later node fits within the intersection of its inputs' masks); move it to "
        "the Run node",
    ),
    (
        _edit(["Nodes", 0, "Model", "X"], []),
        _M + "node 'subject': 'Model.X' must be a non-empty list of variable names and 1 (the "
        "intercept); got []",
    ),
    (
        _edit(["Nodes", 0, "Contrasts", 0, "Weights"], [1, -1, 0]),
        _M + "node 'subject' Contrasts[0]: contrast \"word_gt_pseudo\": 'Weights' [1, -1, 0] "
        "must have one weight per condition of 'ConditionList' (2: [\"trial_type.word\", "
        '"trial_type.pseudoword"])',
    ),
    (
        _edit(["Nodes", 0, "Contrasts", 0, "Weights"], [[1, 0], [0, 1]]),
        _M + "node 'subject' Contrasts[0]: contrast \"word_gt_pseudo\": a t test has one row of "
        '\'Weights\'; got 2: use "Test": "F"',
    ),
    (
        _edit(["Nodes", 0, "Contrasts", 0, "Test"], "pass"),
        _M + "node 'subject' Contrasts[0] (\"word_gt_pseudo\"): 'Test' must be one of t, F, "
        'FEMA; got "pass"',
    ),
    (
        _edit(["Nodes", 0, "Contrasts", 0, "Test"], "FEMA"),
        _M + "node 'subject' Contrasts[0] (\"word_gt_pseudo\"): 'Test' \"FEMA\" (fixed-effects "
        "meta-analysis) combines the maps of a lower node; a Run node fits the BOLD data: use "
        '"t"',
    ),
    (
        lambda m: m["Nodes"][0]["Contrasts"][0].update(
            Weight=m["Nodes"][0]["Contrasts"][0].pop("Weights")
        ),
        _M + "node 'subject' Contrasts[0]: unknown key 'Weight'; did you mean 'Weights'?",
    ),
    (
        _edit(["Edges", 0, "Destination"], "t_test"),
        _M + "Edges[0]: 'Destination' names unknown node \"t_test\"; did you mean 't-test'?",
    ),
    (
        lambda m: (m["Nodes"][2].update(Name="t-test"), m.pop("Edges")),
        _M + "node 't-test': the name is used twice; node names must be unique",
    ),
    (_edit(["Input", "tasks"], "x"), _M + "'Input': unknown entity 'tasks'; did you mean 'task'?"),
    (
        _edit(["Nodes", 0, "Model", "HRF"], {"Variables": ["trial_type.word"], "Model": "gamma"}),
        _M + "node 'subject': 'Model.HRF.Model' must be one of spm, glover, spm + derivative, "
        "glover + derivative, spm + derivative + dispersion, glover + derivative + dispersion, "
        'fir; got "gamma"',
    ),
    (
        lambda m: (
            m["Edges"][0].pop("Filter"),
            m["Nodes"][0]["Contrasts"].append(
                {
                    "Name": "both",
                    "ConditionList": ["trial_type.word", "trial_type.pseudoword"],
                    "Weights": [[1, 0], [0, 1]],
                    "Test": "F",
                }
            ),
        ),
        _M + "node 'subject': F contrast \"both\" feeds node 't-test', but only t contrasts (an "
        'effect and its variance) can; list the t contrasts in the edge\'s "Filter": '
        '{"contrast": [...]}',
    ),
]


@pytest.mark.parametrize(("edit", "message"), BAD_MODELS)
def test_bad_model_is_one_line(zoo_model, edit, message):
    model = copy.deepcopy(zoo_model)
    edit(model)
    with pytest.raises(ModelSpecError) as info:
        check_model(model, "model.json")
    assert str(info.value) == message


def test_real_destionation_typo_names_file_key_and_match(models):
    path = models / "fitlins" / "model-001_smdl.json"
    with pytest.raises(ModelSpecError) as info:
        read_bids_stats_model(path)
    assert str(info.value) == (
        f"{path}: Edges[0]: unknown key 'Destionation'; did you mean 'Destination'?"
    )


DATA_ERRORS = [
    (
        _edit(
            ["Nodes", 0, "Contrasts", 0, "ConditionList"], ["trial_type.word", "trial_type.pseudo"]
        ),
        "model.json: node 'subject' (subject 01, task rhymejudgment): contrast 'word_gt_pseudo' "
        "names 'trial_type.pseudo' (did you mean 'trial_type.pseudoword'?), which is not a column "
        "of X (trial_type.word, trial_type.pseudoword, framewise_displacement, trans_x, trans_y, "
        "trans_z, rot_x, rot_y, rot_z, a_comp_cor_00, a_comp_cor_01, a_comp_cor_02, "
        "a_comp_cor_03, a_comp_cor_04, a_comp_cor_05, intercept); fix 'ConditionList' or pass "
        "--missing-conditions drop",
    ),
    (
        _edit(["Nodes", 0, "GroupBy"], ["subjects"]),
        "model.json: node 'subject': 'GroupBy' entity 'subjects' does not exist in the dataset; "
        "did you mean 'subject'?",
    ),
    (
        _edit(["Nodes", 0, "Model", "X", 2], "framewise_displacment"),
        "model.json: node 'subject' (subject 01, task rhymejudgment): 'Model.X' variable "
        "'framewise_displacment' does not exist (after the transformations); did you mean "
        "'framewise_displacement'?",
    ),
]


@pytest.mark.parametrize(("edit", "message"), DATA_ERRORS)
def test_model_checked_against_the_data(zoo_model, layout, edit, message):
    model = copy.deepcopy(zoo_model)
    edit(model)
    with pytest.raises(ModelSpecError) as info:
        _designs(model, layout)
    assert str(info.value) == message


def test_options_mask_as_an_image_path_is_checked_before_compute(zoo_model, layout, tmp_path):
    run = _designs(copy.deepcopy(zoo_model), layout)[0]
    roi = tmp_path / "roi_mask.nii.gz"
    nib.save(nib.load(run.mask_file), roi)
    small = tmp_path / "small_mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((3, 4, 5), np.uint8), np.eye(4)), small)
    model = copy.deepcopy(zoo_model)
    options = model["Nodes"][0]["Model"].setdefault("Options", {})
    options["Mask"] = str(roi)
    assert {r.mask_file for r in _designs(copy.deepcopy(model), layout)} == {str(roi)}
    where = "model.json: node 'subject'"
    bold_shape = nib.load(run.bold_file).shape[:3]
    fix = "give a NIfTI mask on the BOLD grid, absolute or from the model file's folder"
    cases = {
        "nowhere/roi.nii.gz": f"{where}: 'Model.Options.Mask' \"nowhere/roi.nii.gz\": no file "
        f"{Path.cwd() / 'nowhere/roi.nii.gz'}; {fix}",
        str(small): f"{where} (subject 01, task rhymejudgment): 'Model.Options.Mask' "
        f'"{small}" names {small}, which is not on the grid of {run.bold_file} (shape '
        f"(3, 4, 5) vs {bold_shape}); select a mask in its space",
    }
    for value, message in cases.items():
        options["Mask"] = value
        with pytest.raises(GlmflowError) as info:
            _designs(copy.deepcopy(model), layout)
        assert str(info.value) == message


def test_missing_condition_dropped_on_request_with_a_warning(zoo_model, layout):
    model = copy.deepcopy(zoo_model)
    model["Nodes"][0]["Contrasts"][0]["ConditionList"][1] = "trial_type.pseudo"
    with pytest.warns(
        UserWarning, match=r"contrast 'word_gt_pseudo' drops \['trial_type.pseudo'\]"
    ):
        run = _designs(model, layout, missing="drop")[0]
    contrast = next(c for c in run.contrasts if c.name == "word_gt_pseudo")
    assert [dict(w) for w in contrast.weights] == [{"trial_type.word": 1.0}]
    assert run.dropped == {"word_gt_pseudo": ("trial_type.pseudo",)}


# --------------------------------------------------------------------- designs = pybids X
def _pybids_x(model: dict, layout) -> list[pd.DataFrame]:
    from bids.modeling import BIDSStatsModelsGraph

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = BIDSStatsModelsGraph(layout, copy.deepcopy(model))
        graph.load_collections()
        node = graph.root_node
        return [o.X for o in node.run(group_by=node.group_by, force_dense=True)]


def test_run_design_is_pybids_x_plus_cosine_drift(zoo_model, layout):
    model = copy.deepcopy(zoo_model)
    model["Nodes"][0]["Model"]["Options"] = {"HighPassFilterCutoffHz": 1 / 128}
    ours = _designs(model, layout)
    theirs = _pybids_x(zoo_model, layout)
    assert len(ours) == len(theirs) == len(SUBJECTS)
    for run, x in zip(ours, theirs, strict=True):
        drift = [c for c in run.design if run.roles[c] == "drift"]
        # 160 volumes of 2 s: floor(2 * 320 s / 128 s) = 5 cosines below 1/128 Hz
        assert len(drift) == 5
        assert list(run.design.columns[: x.shape[1]]) == list(x.columns)
        for column in x.columns:
            a, b = run.design[column].to_numpy(), x[column].to_numpy(dtype=float)
            if np.ptp(b) == 0:
                np.testing.assert_array_equal(a, b)
            else:
                assert np.corrcoef(a, b)[0, 1] >= 0.9999, column


def test_model_hrf_is_convolved_as_pybids_convolve(zoo_model, layout):
    model = copy.deepcopy(zoo_model)
    steps = model["Nodes"][0]["Transformations"]["Instructions"]
    model["Nodes"][0]["Transformations"]["Instructions"] = [
        s for s in steps if s["Name"] != "Convolve"
    ]
    model["Nodes"][0]["Model"]["HRF"] = {
        "Variables": ["trial_type.word", "trial_type.pseudoword"],
        "Model": "spm",
    }
    with_hrf = _designs(model, layout)[0].design
    convolved = _pybids_x(zoo_model, layout)[0]
    for column in ("trial_type.word", "trial_type.pseudoword"):
        r = np.corrcoef(with_hrf[column], convolved[column].astype(float))[0, 1]
        assert r >= 0.9999


# --------------------------------------------------------------------- run maps = nilearn
@pytest.mark.slow
def test_run_maps_equal_nilearn_on_the_same_design(models, ds003, tmp_path):
    from nilearn.glm.first_level import FirstLevelModel

    from glmflow.runners.bsm import run_bids_stats_model

    model = models / "model-zoo" / "model-001_smdl.json"
    result = run_bids_stats_model(
        bids_dir=ds003, output_dir=tmp_path / "out", model=model, work_dir=tmp_path / "work"
    )
    run = result.plan.runs[0]
    assert run.entities == {"subject": "01", "task": "rhymejudgment"}
    folder = result.output_dir / "node-subject" / "sub-01"
    design = pd.read_csv(folder / "sub-01_task-rhymejudgment_design.tsv", sep="\t")
    pd.testing.assert_frame_equal(design, run.design, check_exact=False, rtol=1e-12)
    flm = FirstLevelModel(
        t_r=2.0, mask_img=run.mask_file, noise_model="ar1", signal_scaling=0, minimize_memory=True
    )
    flm.fit(run.bold_file, design_matrices=design)
    mask = nib.load(run.mask_file).get_fdata() > 0
    for label, weights in (
        ("wordGtPseudo", {"trial_type.word": 1, "trial_type.pseudoword": -1}),
        ("trialTypeWord", {"trial_type.word": 1}),
    ):
        vector = np.array([weights.get(c, 0.0) for c in design.columns])
        theirs = flm.compute_contrast(vector, output_type="z_score").get_fdata()[mask]
        ours = nib.load(
            folder / f"sub-01_task-rhymejudgment_contrast-{label}_stat-z_statmap.nii.gz"
        )
        dz = np.abs(ours.get_fdata()[mask] - theirs)
        assert dz.max() < 1e-3, (label, dz.max())
    sidecar = json.loads(
        (
            folder / "sub-01_task-rhymejudgment_contrast-wordGtPseudo_stat-z_statmap.json"
        ).read_text()
    )
    assert sidecar["Node"] == "subject" and sidecar["Weights"]
    # run node: 4 contrasts x 5 maps + the design per subject; t-test: 2 contrasts x 5 maps;
    # F-test: any_words x 5 maps
    assert len(result.files) == len(SUBJECTS) * (4 * 5 + 1) + 2 * 5 + 5
    assert (
        result.output_dir / "node-F-test" / "contrast-anyWords_stat-F_statmap.nii.gz"
    ).is_file()


# --------------------------------------------------------------------- low-pass (Options)
def _low_pass_model(zoo_model, cutoff):
    model = copy.deepcopy(zoo_model)
    model["Nodes"][0]["Model"]["Options"] = {
        "HighPassFilterCutoffHz": 1 / 128, "LowPassFilterCutoffHz": cutoff,
    }  # fmt: skip
    return model


def _run_node_wf(zoo_model, run, folder: Path):
    """The BSM graph of one run of the zoo model's run node (its sink included)."""
    from glmflow.core.bsm.plan import BsmPlan
    from glmflow.core.design.files import write_design
    from glmflow.workflows.bsm import init_bsm_wf

    (folder / "design").mkdir(parents=True, exist_ok=True)
    tsv, _, _ = write_design(run.design, dict(run.roles), folder / "design", plot=False)
    plan = BsmPlan(zoo_model, "model.json", "subject", (run,), (str(tsv),))
    workflow = init_bsm_wf(plan=plan, output_dir=str(folder / "out"))
    workflow.base_dir = str(folder / "work")
    return workflow, tsv


def _executed(work: Path, before: dict[str, int]) -> tuple[set[str], dict[str, int]]:
    after = {str(p): p.stat().st_mtime_ns for p in work.rglob("result_*.pklz")}
    return {Path(p).parent.name for p, t in after.items() if before.get(p) != t}, after


def _nilearn_z(bold, design, mask, vector, filtered: bool):
    from nilearn.glm.first_level import FirstLevelModel
    from nilearn.signal import butterworth

    img = nib.load(bold)
    data = img.get_fdata()
    if filtered:  # nilearn's filter along time, every voxel, then nilearn's own fit
        series = butterworth(data.reshape(-1, data.shape[3]).T, sampling_rate=0.5,
                             low_pass=0.1, copy=True)  # fmt: skip
        data = series.T.reshape(data.shape)
    flm = FirstLevelModel(t_r=2.0, mask_img=mask, noise_model="ar1", signal_scaling=0)
    flm.fit(nib.Nifti1Image(data, img.affine), design_matrices=design)
    inside = nib.load(mask).get_fdata() > 0
    maps = flm.compute_contrast(vector, output_type="all")
    return {k: maps[k].get_fdata()[inside] for k in ("z_score", "effect_size")}


def test_low_pass_maps_equal_nilearn_on_filtered_data_and_design(zoo_model, layout, tmp_path):
    run = _designs(_low_pass_model(zoo_model, 0.1), layout)[0]
    unfiltered = copy.deepcopy(zoo_model)
    unfiltered["Nodes"][0]["Model"]["Options"] = {"HighPassFilterCutoffHz": 1 / 128}
    raw = _designs(unfiltered, layout)[0]
    assert run.low_pass == 0.1 and raw.low_pass is None
    # the design is the drift-added design, low-passed column by column (a constant stays)
    assert list(run.design.columns) == list(raw.design.columns)
    np.testing.assert_allclose(run.design["intercept"], 1.0, atol=1e-12)
    workflow, tsv = _run_node_wf(zoo_model, run, tmp_path)
    workflow.run()
    nodes, stamps = _executed(tmp_path / "work", {})
    assert {"mask_bold", "low_pass_bold", "fit_first_level"} <= nodes
    index = json.loads(next((tmp_path / "work").rglob("compute_contrasts/contrasts.json"))
                       .read_text())  # fmt: skip
    record = index["trial_type.word"]
    vector = np.asarray(run.design.columns == "trial_type.word", dtype=float)
    inside = nib.load(run.mask_file).get_fdata() > 0
    ours = {k: nib.load(record[key]).get_fdata()[inside]
            for k, key in (("z_score", "z"), ("effect_size", "effect"))}  # fmt: skip
    theirs = _nilearn_z(run.bold_file, run.design, run.mask_file, vector, filtered=True)
    assert np.abs(ours["z_score"] - theirs["z_score"]).max() < 1e-3
    scale = np.abs(theirs["effect_size"]).max()
    assert np.abs(ours["effect_size"] - theirs["effect_size"]).max() < 1e-4 * scale
    # the filter changes the maps: nilearn's fit of the unfiltered run is another map
    before = _nilearn_z(raw.bold_file, raw.design, raw.mask_file, vector, filtered=False)
    assert np.abs(ours["z_score"] - before["z_score"]).max() > 0.1  # 0.60 here, parity 3e-6
    sidecar = next((tmp_path / "work").rglob("*contrast-trialTypeWord_stat-z_statmap.json"))
    assert json.loads(sidecar.read_text())["LowPassFilterCutoffHz"] == 0.1
    # a design edit refits without reading or filtering the BOLD again
    design = pd.read_csv(tsv, sep="\t").drop(columns="rot_z")
    design.to_csv(tsv, sep="\t", index=False)
    workflow.run()
    nodes, stamps = _executed(tmp_path / "work", stamps)
    assert "fit_first_level" in nodes and not nodes & {"mask_bold", "low_pass_bold"}
    # a new cutoff filters the masked data again, without reading the BOLD
    workflow, _ = _run_node_wf(zoo_model, dataclasses.replace(run, low_pass=0.12), tmp_path)
    workflow.run()
    nodes, _ = _executed(tmp_path / "work", stamps)
    assert "low_pass_bold" in nodes and "mask_bold" not in nodes


def test_masked_data_are_low_passed_in_chunks_as_nilearn_filters_them_whole(tmp_path):
    from nilearn.signal import butterworth

    from glmflow.core import temporal_filter

    rng = np.random.default_rng(0)
    data = (100 + rng.standard_normal((40, 2 * temporal_filter._CHUNK_VOXELS + 5))).astype(
        np.float32
    )  # three chunks, the last of 5 voxels
    source = tmp_path / "bold_masked.npy"
    np.save(source, data)
    (tmp_path / "out").mkdir()
    path = temporal_filter.low_pass_masked_file(source, tmp_path / "out", cutoff_hz=0.1, tr=2.0)
    ours = np.load(path)
    theirs = butterworth(data.astype(np.float64), sampling_rate=0.5, low_pass=0.1, copy=True)
    assert ours.dtype == np.float32 and ours.shape == data.shape
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4)
    assert np.abs(ours - data).max() > 1  # filtered
    np.testing.assert_array_equal(np.load(source), data)  # the input file as it was


def test_the_methods_paragraph_names_the_low_pass(zoo_model):
    from glmflow.core.report.bsm import bsm_methods

    assert (
        " and an intercept; the BOLD series and the design were low-passed at 0.1 Hz (nilearn's "
        "order 5 Butterworth filter, forwards and backwards); it was fitted with a first-order "
        "autoregressive noise model (AR(1))"
    ) in bsm_methods(_low_pass_model(zoo_model, 0.1), "model.json")
    assert "low-passed" not in bsm_methods(zoo_model, "model.json")


def _nyquist_message(unit: str, bold: str) -> str:
    return (
        f"{unit}: 'Model.Options.LowPassFilterCutoffHz' 0.3 Hz is at or above the Nyquist "
        f"frequency 0.25 Hz of {bold} (TR 2 s); lower it or remove it"
    )


def test_a_low_pass_the_run_cannot_carry_is_one_line(zoo_model, layout, realdata, tmp_path):
    from bids import BIDSLayout

    from glmflow.data.realdata import make_events_dataset

    unit = "model.json: node 'subject' (subject 01, task rhymejudgment)"
    bold = layout.get(subject="01", desc="preproc", suffix="bold", extension=".nii.gz")[0]
    with pytest.raises(DatasetError) as info:
        _designs(_low_pass_model(zoo_model, 0.3), layout)
    assert str(info.value) == _nyquist_message(unit, bold.path)
    # 18 volumes: scipy's sosfiltfilt pads order 5 low-pass sections by 18 samples
    short = make_events_dataset(realdata / "bids-examples" / "ds003", tmp_path / "short",
                                n_volumes=18, subjects=["01"])  # fmt: skip
    short_layout = BIDSLayout(short, derivatives=[short / "derivatives" / "fmriprep"])
    bold = short_layout.get(desc="preproc", suffix="bold", extension=".nii.gz")[0]
    with pytest.raises(DatasetError) as info:
        _designs(_low_pass_model(zoo_model, 0.1), short_layout)
    assert str(info.value) == (
        f"{unit}: {bold.path} has 18 volumes, but nilearn's low-pass filter (order 5 "
        "Butterworth, filtered both ways) needs more than 18; remove "
        "'Model.Options.LowPassFilterCutoffHz' or leave this run out of 'Input'"
    )


# --------------------------------------------------------------------- subject and dataset
@pytest.fixture(scope="module")
def ds005(realdata, tmp_path_factory):
    from glmflow.data.realdata import make_events_dataset

    participants = realdata / "bids-stats-models/bids-examples-participants/ds005/participants.tsv"
    return make_events_dataset(
        realdata / "bids-examples" / "ds005",
        tmp_path_factory.mktemp("ds005"),
        n_volumes=240,
        participants=participants,
        subjects=["01", "02", "03"],
    )


@pytest.mark.slow
def test_subject_meta_and_dataset_glm_equal_nilearn(models, ds005, tmp_path):
    from nilearn.glm import compute_fixed_effects
    from nilearn.glm.second_level import SecondLevelModel

    from glmflow.runners.bsm import run_bids_stats_model

    result = run_bids_stats_model(
        bids_dir=ds005,
        output_dir=tmp_path / "out",
        model=models / "pybids" / "ds-005_type-test_intercept.json",
        work_dir=tmp_path / "work",
    )
    out = result.output_dir
    runs = sorted((out / "node-run" / "sub-02").glob("*_contrast-gain_stat-effect_statmap.nii.gz"))
    assert len(runs) == 3
    variances = [str(p).replace("stat-effect", "stat-variance") for p in runs]
    dofs = [
        json.loads(p.with_name(p.name.replace(".nii.gz", ".json")).read_text())["DegreesOfFreedom"]
        for p in runs
    ]
    assert result.plan.runs[3].entities == {
        "subject": "02",
        "run": "1",
        "task": "mixedgamblestask",
    }
    mask = result.plan.runs[3].mask_file  # sub-02's runs share one brain mask
    _, _, _, z = compute_fixed_effects(
        [str(p) for p in runs], variances, mask, precision_weighted=True, dofs=dofs
    )
    subject = out / "node-participant" / "sub-02"
    ours = nib.load(subject / "sub-02_contrast-gain_stat-z_statmap.nii.gz")
    inside = nib.load(mask).get_fdata() > 0
    assert np.abs(ours.get_fdata()[inside] - z.get_fdata()[inside]).max() < 1e-3
    effects = sorted(
        out.glob("node-participant/sub-*/sub-*_contrast-gain_stat-effect_statmap.nii.gz")
    )
    assert len(effects) == 3
    slm = SecondLevelModel(
        mask_img=str(next((tmp_path / "work").rglob("fit_group__contrast_gain/mask.nii.gz")))
    ).fit([str(p) for p in effects], design_matrix=pd.DataFrame({"intercept": [1.0] * 3}))
    theirs = slm.compute_contrast("intercept", output_type="z_score").get_fdata()
    group = nib.load(out / "node-group" / "contrast-gain_stat-z_statmap.nii.gz").get_fdata()
    common = slm.masker_.mask_img_.get_fdata() > 0
    assert common.sum() > 100
    assert np.abs(group[common] - theirs[common]).max() < 1e-3


# --------------------------------------------------------------------- the public files
@pytest.fixture(scope="module")
def ds005_pybids(models, tmp_path_factory):
    """pybids' ds005 events (with the RT column its models use), 4 subjects x 3 runs: two of
    each sex, so that every "by-group" unit has two maps."""
    from glmflow.data.realdata import make_events_dataset

    return make_events_dataset(
        models / "pybids" / "ds005-pybids",
        tmp_path_factory.mktemp("ds005p"),
        n_volumes=240,
        participants=models / "pybids" / "ds005" / "participants.tsv",
        subjects=["01", "02", "03", "04"],
    )


PUBLIC = [  # file, dataset, the maps of its last node
    (
        "fitlins/head/model-001_smdl.json",
        "ds003",
        "node-F-test/contrast-anyWords_stat-F_statmap.nii.gz",
    ),
    (
        # pybids names a dummy contrast of one incoming contrast "<incoming>_<name>"
        "legacy-steps/bids-examples/ds003/model-001_smdl.json",
        "ds003",
        "node-dataset/contrast-wordGtPseudoWordGtPseudo_stat-t_statmap.nii.gz",
    ),
    (
        "pybids/ds-005_type-test_model.json",
        "ds005_pybids",
        "node-explicit-contrast/contrast-gainGain_stat-t_statmap.nii.gz",
    ),
    (
        "pybids/ds-005_type-testnodummy_model.json",
        "ds005_pybids",
        "node-group-diff/contrast-gainSex_stat-t_statmap.nii.gz",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "dataset", "last"), PUBLIC)
def test_public_model_runs_unchanged(models, request, tmp_path, name, dataset, last):
    from glmflow.runners.bsm import run_bids_stats_model

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_bids_stats_model(
            bids_dir=request.getfixturevalue(dataset),
            output_dir=tmp_path / "out",
            model=models / name,
            work_dir=tmp_path / "work",
        )
    assert (result.output_dir / last).is_file(), sorted(
        str(p.relative_to(result.output_dir)) for p in result.files
    )
    converted = [str(w.message) for w in caught if "pre-1.0 'Steps'" in str(w.message)]
    if "legacy-steps" in name:
        assert converted == [
            f"{models / name}: pre-1.0 'Steps' model converted to BIDS Stats Models 1.0 "
            "'Nodes' (node names = levels, edges in order): Steps[0].Contrasts[0].Type -> "
            "Test; Steps[1].AutoContrasts -> DummyContrasts; "
            'Steps[1].Model.X = ["word_gt_pseudo"] (its contrasts)'
        ]
    else:
        assert converted == []


def test_legacy_files_that_cannot_run_are_one_line(models):
    session = models / "legacy-steps/fitlins/ds000114/model-001_smdl.json"
    with pytest.warns(UserWarning, match="pre-1.0 'Steps' model converted"):
        with pytest.raises(ModelSpecError) as info:
            read_bids_stats_model(session)
    # its pre-1.0 session step passes nothing on (no contrasts): one line before any data
    assert str(info.value) == (
        f"{session}: node 'session': it has no 'Contrasts' and no 'DummyContrasts', so no map "
        'reaches node \'subject\'; add contrasts (e.g. "DummyContrasts": {"Test": "t"})'
    )
    broken = models / "legacy-steps/bids-examples/ds114/model-1_smdl.json"
    with pytest.raises(ModelSpecError) as info:
        read_bids_stats_model(broken)
    assert str(info.value) == (
        f"{broken} is not valid JSON: Expecting property name enclosed in double quotes at "
        "line 34, column 7; fix the syntax there"
    )


# --------------------------------------------------------------------- the command line
def test_cli_bad_bsm_file_is_one_line_exit_2_nothing_written(models, ds003, tmp_path, capsys):
    from glmflow.cli.main import main

    model = models / "fitlins" / "model-001_smdl.json"
    out = tmp_path / "out"
    code = main([str(ds003), str(out), "participant", "--model", str(model),
                 "-w", str(tmp_path / "work")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert [line for line in err.splitlines() if line.startswith("glmflow: error:")] == [
        f"glmflow: error: {model}: Edges[0]: unknown key 'Destionation'; did you mean "
        "'Destination'?"
    ]
    assert "Traceback" not in err
    assert not (out / "glmflow").exists()


@pytest.mark.slow
def test_cli_runs_a_bsm_file(models, ds003, tmp_path, capsys):
    from glmflow.cli.main import main

    model = models / "model-zoo" / "model-001_smdl.json"
    code = main([str(ds003), str(tmp_path / "out"), "participant", "--model", str(model),
                 "-w", str(tmp_path / "work")])  # fmt: skip
    assert code == 0
    assert "2 run(s) of 2 subject(s) done" in capsys.readouterr().out
    assert (
        tmp_path / "out/glmflow/node-t-test/contrast-wordGtPseudo_stat-z_statmap.nii.gz"
    ).is_file()


# --------------------------------------------------------------------- every node before compute
def _preproc_bold(dataset: Path, subject: str) -> Path:
    return next(
        dataset.glob(f"derivatives/fmriprep/sub-{subject}/func/*_desc-preproc_bold.nii.gz")
    )


def _mixed_events(ds003, tmp_path):
    """ds003 with one run's trial_type coded as numbers but one 'word' left as text."""
    import shutil

    copy_dir = tmp_path / "ds003_mixed"
    shutil.copytree(ds003, copy_dir)
    events = sorted(copy_dir.glob("sub-01/func/*_events.tsv"))[0]
    table = pd.read_csv(events, sep="\t")
    codes = {"pseudoword": "2"}
    table["trial_type"] = [codes.get(v, v) for v in table["trial_type"]]
    table.to_csv(events, sep="\t", index=False)
    return copy_dir, events.name


BEFORE_COMPUTE = [
    (
        "higher_contrast",
        lambda m: m["Nodes"][1].update(
            Contrasts=[
                {"Name": "neg", "ConditionList": ["intercep"], "Weights": [-1], "Test": "t"}
            ]
        ),
        # pybids names a contrast over one incoming contrast "<incoming>_<name>"
        "{model}: node 't-test' (contrast word_gt_pseudo): contrast 'word_gt_pseudo_neg' names "
        "'intercep' "
        "(did you mean 'intercept'?), which is not a column of X (intercept); fix "
        "'ConditionList' or pass --missing-conditions drop",
    ),
    (
        "mixed_factor",
        lambda m: None,
        "{model}: node 'subject': 'Transformations' Factor of 'trial_type' has mixed-type "
        "values: numbers (2 in {events}) and text ('word' in {events}), which make columns of "
        "both kinds ('trial_type.2', 'trial_type.word'); recode 'trial_type' as text in every "
        "file (e.g. 'trial_type2')",
    ),
    (
        "low_pass_above_nyquist",
        lambda m: m["Nodes"][0]["Model"].update(Options={"LowPassFilterCutoffHz": 0.3}),
        _nyquist_message("{model}: node 'subject' (subject 01, task rhymejudgment)", "{bold}"),
    ),
]


@pytest.mark.parametrize(
    ("case", "edit", "message"), BEFORE_COMPUTE, ids=[c[0] for c in BEFORE_COMPUTE]
)
def test_cli_checks_every_node_before_any_compute(
    zoo_model, ds003, tmp_path, capsys, case, edit, message
):
    from glmflow.cli.main import main

    dataset, events = (ds003, None) if case != "mixed_factor" else _mixed_events(ds003, tmp_path)
    model = copy.deepcopy(zoo_model)
    edit(model)
    path = tmp_path / "model_smdl.json"
    path.write_text(json.dumps(model))
    out, work = tmp_path / "out", tmp_path / "work"
    code = main([str(dataset), str(out), "participant", "--model", str(path), "-w", str(work)])
    err = capsys.readouterr().err
    assert code == 2
    assert [line for line in err.splitlines() if line.startswith("glmflow: error:")] == [
        "glmflow: error: "
        + message.format(model=path, events=events, bold=_preproc_bold(dataset, "01"))
    ]
    assert not out.exists()
    assert not list(work.rglob("result_*.pklz"))  # no node ran


def test_cli_inference_is_a_group_option_unless_the_model_is_bsm(ds003, tmp_path, capsys):
    from importlib.resources import files

    from glmflow.cli.main import main

    model = files("glmflow.data") / "models" / "faces_model.json"
    code = main([str(ds003), str(tmp_path / "out"), "participant", "--model", str(model),
                 "-w", str(tmp_path / "work"), "--inference", "fdr"])  # fmt: skip
    assert code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "glmflow: error: --inference is an option of the group level, not of 'participant'; "
        "remove it, or run both levels ('participant group')"
    )


def _one_map_units(zoo_model, layout, kind: str):
    """The zoo model with a Subject node of ``kind`` whose every unit has one map."""
    from glmflow.core.bsm import plan_later_nodes

    model = copy.deepcopy(zoo_model)
    model["Nodes"] = [model["Nodes"][0], {
        "Level": "Subject", "Name": "one", "GroupBy": ["subject", "contrast"],
        "Model": {"X": [1], "Type": kind}, "DummyContrasts": {"Test": "t"},
    }, model["Nodes"][1]]  # fmt: skip
    model["Edges"] = [
        {"Source": "subject", "Destination": "one", "Filter": {"contrast": ["task_vs_baseline"]}},
        {"Source": "one", "Destination": "t-test"},
    ]
    checked = check_model(model, "model.json")
    graph = load_graph(checked, layout, "model.json")
    return plan_later_nodes(graph, run_designs(graph, layout, "model.json"), "model.json")


def test_a_meta_unit_of_one_map_passes_it_through(zoo_model, layout):
    # Was refused before compute (ea3679f); fixed effects of one map are that map.
    units = [u for u in _one_map_units(zoo_model, layout, "meta") if u.node == "one"]
    assert [(u.method, len(u.rows), u.design.to_numpy().tolist()) for u in units] == [
        ("fixed", 1, [[1.0]]),
        ("fixed", 1, [[1.0]]),
    ]


def test_a_glm_unit_of_one_map_is_one_line_before_compute(zoo_model, layout):
    with pytest.raises(ModelSpecError) as info:
        _one_map_units(zoo_model, layout, "glm")
    assert str(info.value) == (
        "model.json: node 'one' (contrast task_vs_baseline, subject 01): 'Model.Type' \"glm\" "
        "(OLS) needs at least two maps, but this unit has one (contrast task_vs_baseline, "
        "subject 01, task rhymejudgment); set 'Model.Type' to \"meta\" (fixed effects pass one "
        "map through with its dof) or group more maps into a unit ('GroupBy')"
    )
