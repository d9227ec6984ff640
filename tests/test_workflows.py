"""Pre-flight checks, graph building over a grid of models, and CombineRuns as a node."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nipype.pipeline import engine as pe
from nipype.utils.filemanip import ensure_list

from glmflow.core.bids import discover_runs
from glmflow.core.conditions import dataset_conditions
from glmflow.core.model import ContrastSpec, DesignSpec, GlmSpec, ModelSpec, load_model
from glmflow.core.preflight import cached_check_first_level, check_first_level
from glmflow.data import make_synthetic_dataset
from glmflow.errors import DatasetError, DesignError
from glmflow.interfaces.combine import CombineRuns
from glmflow.runners.participant import run_participant_level
from glmflow.workflows.base import TaskAnalysis, init_glmflow_wf

MODELS = Path(__file__).resolve().parents[1] / "glmflow" / "data" / "models"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return make_synthetic_dataset(
        tmp_path_factory.mktemp("wf") / "bids", n_subjects=2, n_runs=2, n_sessions=2, n_volumes=60
    )


@pytest.fixture
def dataset(pristine, tmp_path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "bids"))


def _spec(**changes) -> ModelSpec:
    spec = load_model(MODELS / "task_information.json", task="faces")
    return dataclasses.replace(spec, **changes)


# ------------------------------------------------------------------------- pre-flight
def test_auto_contrasts_do_not_depend_on_the_selected_participants(pristine):
    spec = _spec(auto_contrasts=("pairwise",), contrasts=())
    conditions = dataset_conditions(pristine, spec)
    names = set()
    for label in ("01", "02"):
        runs = discover_runs(pristine, participant_label=[label], tasks=["faces"])
        plan = check_first_level(runs, spec, conditions=conditions)
        names.add(tuple(c.name for c in plan.contrasts))
    assert len(names) == 1
    assert set(conditions) == {"face", "house", "scrambled"}


def test_dataset_conditions_are_remembered_until_an_events_file_changes(dataset, tmp_path):
    spec = _spec(auto_contrasts=("pairwise",), contrasts=())
    cache = tmp_path / "cache"
    first = dataset_conditions(dataset, spec, cache_dir=cache)
    assert first == dataset_conditions(dataset, spec)  # as computed without a cache
    assert set(first) == {"face", "house", "scrambled"}
    (stored,) = cache.glob("conditions-*.json")
    assert tuple(json.loads(stored.read_text())) == first
    stored.write_text(json.dumps(["stored"]))  # a reuse reads the file, parses nothing
    assert dataset_conditions(dataset, spec, cache_dir=cache) == ("stored",)
    events = sorted(dataset.glob("sub-*/**/func/*_events.tsv"))[-1]
    table = pd.read_csv(events, sep="\t")
    table.loc[0, "trial_type"] = "car"
    table.to_csv(events, sep="\t", index=False)
    os.utime(events, ns=(1, 1))  # a different mtime even on coarse clocks
    edited = dataset_conditions(dataset, spec, cache_dir=cache)
    assert set(edited) == {"face", "house", "scrambled", "car"}
    assert edited == dataset_conditions(dataset, spec)
    assert len(list(cache.glob("conditions-*.json"))) == 2


def test_cached_plan_is_reused_and_invalidated_by_an_events_edit(dataset, tmp_path):
    spec = _spec()
    runs = discover_runs(dataset, tasks=["faces"], participant_label=["01"])
    cache = tmp_path / "cache"
    first = cached_check_first_level(runs, spec, cache_dir=cache)
    assert len(list(cache.glob("preflight-*.json"))) == 1
    again = cached_check_first_level(runs, spec, cache_dir=cache)
    assert again.contrasts == first.contrasts and len(list(cache.glob("*.json"))) == 1
    # an edit of one events file: checked again, and a broken file is found
    events = Path(runs[0].events)
    table = pd.read_csv(events, sep="\t")
    table["onset"] = table["onset"].astype(object)
    table.loc[0, "onset"] = "soon"
    table.to_csv(events, sep="\t", index=False)
    os.utime(events, ns=(1, 1))  # a different mtime even on coarse clocks
    with pytest.raises(Exception, match="soon"):
        cached_check_first_level(runs, spec, cache_dir=cache)


def test_a_contrast_edit_checks_against_the_remembered_designs(dataset, tmp_path, monkeypatch):
    from glmflow.core import preflight

    spec = _spec()
    runs = discover_runs(dataset, tasks=["faces"], participant_label=["01"])
    cold = check_first_level(runs, spec)
    cached_check_first_level(runs, spec, cache_dir=tmp_path)
    built = []
    real = preflight.build_run_design
    monkeypatch.setattr(preflight, "build_run_design", lambda *a: built.append(a) or real(*a))
    edited = dataclasses.replace(
        spec, contrasts=(*spec.contrasts, ContrastSpec(name="hf", expressions=("house - face",)))
    )
    plan = cached_check_first_level(runs, edited, cache_dir=tmp_path)
    assert built == []  # no design built again: the runs' checks were remembered
    assert plan == check_first_level(runs, edited)  # what a cold check finds, warnings too
    assert plan.warnings == cold.warnings and plan.contrasts[-1].name == "hf"
    # a confound edit builds every design again
    built.clear()
    confounds = dataclasses.replace(spec.confounds, columns=("trans_x",))
    cached_check_first_level(runs, dataclasses.replace(edited, confounds=confounds),
                             cache_dir=tmp_path)  # fmt: skip
    assert len(built) == len(runs) == 4


def test_a_code_edit_checks_every_run_again(dataset, tmp_path, monkeypatch):
    """The pre-flight's memos are keyed by the code's identity (glmflow's sources and the
    dependencies' versions), as the level stamps are: an edit of the checks or an upgrade
    never recalls what older code found."""
    from glmflow.core import memo, preflight

    spec = _spec()
    runs = discover_runs(dataset, tasks=["faces"], participant_label=["01"])
    cached_check_first_level(runs, spec, cache_dir=tmp_path)
    built = []
    real = preflight.build_run_design
    monkeypatch.setattr(preflight, "build_run_design", lambda *a: built.append(a) or real(*a))
    cached_check_first_level(runs, spec, cache_dir=tmp_path)
    assert built == []
    edited = [*memo.code_identity()[:-1], [*memo.code_identity()[-1], ["core/x.py", 1, 2, 3]]]
    monkeypatch.setattr(preflight, "code_identity", lambda: edited)
    cached_check_first_level(runs, spec, cache_dir=tmp_path)
    assert len(built) == len(runs) == 4
    assert len(list(tmp_path.glob("preflight-*.json"))) == 2


def test_cached_plan_says_its_warnings_again(dataset, tmp_path):
    spec = _spec(contrasts=(ContrastSpec(name="fh", expressions=("face - houses",)),))
    runs = discover_runs(dataset, tasks=["faces"], participant_label=["01"])
    with pytest.warns(UserWarning, match="houses not in the design"):
        cached_check_first_level(runs, spec, missing_conditions="drop", cache_dir=tmp_path)
    with pytest.warns(UserWarning, match="houses not in the design"):
        cached_check_first_level(runs, spec, missing_conditions="drop", cache_dir=tmp_path)


def test_censoring_that_empties_a_regressor_is_refused(dataset):
    """FIR regressors live on few volumes: scrub exactly those and one column is empty."""
    from glmflow.core.design import build_design_matrix
    from glmflow.core.events import parse_events, read_events

    run = discover_runs(dataset, tasks=["faces"], participant_label=["01"])[0]
    spec = _spec()
    spec = dataclasses.replace(
        spec,
        events=dataclasses.replace(spec.events, modulators=()),
        design=DesignSpec(hrf_model="fir", fir_delays=(0, 1)),
        confounds=dataclasses.replace(
            spec.confounds, columns=(), strategy=("motion", "scrub"), scrub=0,
            optional_columns=(),
        ),
    )  # fmt: skip
    events = parse_events(read_events(run.events), **spec.events.to_dict())
    design, _ = build_design_matrix(
        events, None, spec.design, n_volumes=run.n_volumes, tr=run.tr,
        slice_time_ref=run.slice_time_ref,
    )  # fmt: skip
    hit = design["face_delay_0"].to_numpy() != 0
    table = pd.read_csv(run.confounds, sep="\t")
    table["framewise_displacement"] = np.where(hit, 5.0, 0.01)
    table["std_dvars"] = 0.5
    table.to_csv(run.confounds, sep="\t", index=False, na_rep="n/a")
    with pytest.raises(DesignError, match=r"face_delay_0 are all zero over the \d+ volumes"):
        check_first_level([run], spec)


def test_work_dir_inside_the_dataset_is_refused(dataset):
    with pytest.raises(DatasetError, match=r"^Work directory .* is inside the input dataset"):
        run_participant_level(
            bids_dir=dataset,
            output_dir=dataset.parent / "out",
            model=MODELS / "task_information.json",
            work_dir=dataset / "work",
        )


# ------------------------------------------------------------------- graph building
GRID = [
    {},
    {"glm": GlmSpec(noise_model="ols", smoothing_fwhm=None)},
    {"glm": GlmSpec(minimize_memory=False)},
    {"design": DesignSpec(hrf_model="spm + derivative + dispersion")},
    {"design": DesignSpec(hrf_model="fir", fir_delays=(0, 1, 2))},
    {"contrasts": (ContrastSpec(name="eoi", expressions=("face", "house"), stat_type="F"),)},
]


@pytest.mark.parametrize("changes", GRID, ids=lambda c: ",".join(c) or "packaged")
def test_graph_builds_without_running_anything(pristine, tmp_path, changes):
    spec = _spec(**changes)
    runs = discover_runs(pristine, tasks=["faces"])
    contrasts = spec.contrasts or (ContrastSpec(name="face", expressions=("face",)),)
    analysis = TaskAnalysis(spec, tuple(runs), contrasts)
    with pytest.warns(UserWarning) if any(c.stat_type == "F" for c in contrasts) else _no():
        wf = init_glmflow_wf(analyses=[analysis], output_dir=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    nodes = [n.fullname for n in wf._get_all_nodes()]
    per_run = {"build_design", "mask_and_smooth", "fit_first_level", "compute_contrasts"}
    names = [n.split(".")[-1] for n in nodes]
    for node in per_run:
        assert names.count(node) == len(runs) == 8  # 2 subjects x 2 sessions x 2 runs
    # events, confounds and design are one node, and no Merge node gathers its files
    assert sum(name.startswith("ds_run") for name in names) == 8
    computing = [name for name in names if name not in ("inputnode", "outputnode")]
    subject_nodes = 2 if contrasts[0].stat_type == "F" else 4  # 2 merges (+ combine, sink)
    assert len(computing) == 8 * (len(per_run) + 1) + 2 * subject_nodes
    assert names.count("combine_runs") == (0 if contrasts[0].stat_type == "F" else 2)
    fit = next(n for n in wf._get_all_nodes() if n.name == "fit_first_level")
    assert fit.interface.inputs.noise_model == spec.glm.noise_model
    assert fit.mem_gb >= 0.35 and all(n.mem_gb >= 0.2 for n in wf._get_all_nodes())
    # runs of two sessions get distinct, readable node folders
    run_wfs = {n.split(".")[0] for n in nodes if n.endswith(".fit_first_level")}
    assert run_wfs == {f"run_session_0{s}_run_{r}_wf" for s in (1, 2) for r in (1, 2)}


class _no:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# ------------------------------------------------------------------ CombineRuns node
def test_combine_runs_node_uses_the_voxels_every_run_covers(tmp_path):
    from glmflow.core.bold import save_nifti

    rng = np.random.default_rng(0)
    shape, affine = (7, 8, 9), np.diag([3.0, 3.0, 3.0, 1.0])
    masks, indices, effects, variances = [], [], [], []
    for i in range(2):
        mask = np.zeros(shape, np.uint8)
        mask[1:6, 1 + i : 7, 2:8] = 1  # run 2 is shifted by one voxel
        masks.append(save_nifti(nib.Nifti1Image(mask, affine), tmp_path / f"mask{i}.nii.gz"))
        effect = np.where(mask, rng.normal(1, 0.1, shape), 0).astype(np.float32)
        variance = np.where(mask, rng.uniform(0.5, 1.0, shape), 0).astype(np.float32)
        effects.append(effect)
        variances.append(variance)
        e = save_nifti(nib.Nifti1Image(effect, affine), tmp_path / f"e{i}.nii.gz")
        v = save_nifti(nib.Nifti1Image(variance, affine), tmp_path / f"v{i}.nii.gz")
        index = tmp_path / f"index{i}.json"
        record = {"skipped": False, "effect": str(e), "variance": str(v), "dof": 50.0}
        index.write_text(json.dumps({"c": {**record, "stat_type": "t", "dropped": []}}))
        indices.append(str(index))
    node = pe.Node(
        CombineRuns(index_files=indices, names=["c"], mask_files=[str(m) for m in masks],
                    run_labels=["run-1", "run-2"], run_combination="precision"),
        name="combine", base_dir=str(tmp_path / "work"),
    )  # fmt: skip
    result = node.run()
    common = (nib.load(masks[0]).get_fdata() > 0) & (nib.load(masks[1]).get_fdata() > 0)
    assert (nib.load(result.outputs.mask_file).get_fdata() > 0).sum() == common.sum()
    (effect_file,) = ensure_list(result.outputs.effect_files)  # one contrast: one file
    effect = nib.load(effect_file).get_fdata()
    weights = [1 / v[common] for v in variances]
    expected = sum(w * e[common] for w, e in zip(weights, effects, strict=True)) / sum(weights)
    np.testing.assert_allclose(effect[common], expected, rtol=1e-5)
    assert not effect[~common].any()  # no map where a run has no data
    record = json.loads(Path(result.outputs.contrasts_json).read_text())["c"]
    assert record["runs"] == ["run-1", "run-2"] and record["dof"] == 100.0


def test_one_run_subject_maps_are_the_run_maps(tmp_path):
    """Fixed effects of one run equal that run: copied, not recomputed (same numbers)."""
    from glmflow.core.bold import save_nifti
    from glmflow.core.combine import combine_runs
    from glmflow.core.fixed_effects import compute_fixed_effects

    shape, affine = (7, 8, 9), np.eye(4)
    mask = np.zeros(shape, np.uint8)
    mask[1:6, 2:7, 2:8] = 1
    mask_file = save_nifti(nib.Nifti1Image(mask, affine), tmp_path / "mask.nii.gz")
    rng = np.random.default_rng(1)
    inside = mask > 0
    effect = np.where(inside, rng.normal(1, 0.2, shape), 0).astype(np.float32)
    variance = np.where(inside, rng.uniform(0.2, 0.4, shape), 0).astype(np.float32)
    result = compute_fixed_effects(
        [effect[inside]], [variance[inside]], dofs=[80.0], precision_weighted=False
    )
    files = {}
    for key in ("effect", "variance", "stat", "p", "z"):
        values = np.zeros(shape, np.float32)
        values[inside] = {"effect": effect[inside], "variance": variance[inside]}.get(
            key, result[key]
        )
        files[key] = str(save_nifti(nib.Nifti1Image(values, affine), tmp_path / f"{key}.nii.gz"))
    index = tmp_path / "contrasts.json"
    index.write_text(json.dumps({"c": {"skipped": False, "dof": 80.0, "stat_type": "t", **files}}))
    out = tmp_path / "out"
    out.mkdir()
    combined = combine_runs([index], names=["c"], mask_files=[mask_file], out_dir=out)
    (z_file,) = combined["z_files"]
    assert not os.path.samefile(z_file, files["z"])  # a copy: never the run's own file
    assert Path(z_file).read_bytes() == Path(files["z"]).read_bytes()
    np.testing.assert_allclose(
        nib.load(z_file).get_fdata()[inside], result["z"].astype(np.float32), rtol=1e-6
    )
    assert json.loads(Path(combined["contrasts_json"]).read_text())["c"]["dof"] == 80.0


def test_a_run_without_the_contrast_is_left_out_as_nilearn_leaves_a_null_contrast(tmp_path):
    """nilearn's multi-run contrast skips a run whose contrast is null and divides by the
    number of runs used: (c1 + c3) * (1 / 2), i.e. variance (v1 + v3) / 4, dof d1 + d3."""
    from nilearn.glm import Contrast

    from glmflow.core.bold import save_nifti
    from glmflow.core.combine import combine_runs

    shape, affine = (7, 8, 9), np.eye(4)
    mask = np.zeros(shape, np.uint8)
    mask[1:6, 2:7, 2:8] = 1
    mask_file = save_nifti(nib.Nifti1Image(mask, affine), tmp_path / "mask.nii.gz")
    inside = mask > 0
    rng = np.random.default_rng(7)
    indices, contrasts = [], []
    for i, dof in enumerate([60.0, 55.0, 70.0]):
        effect = rng.normal(1, 0.5, inside.sum()).astype(np.float32)
        variance = rng.uniform(0.1, 2.0, inside.sum()).astype(np.float32)
        files = {}
        for key, values in (("effect", effect), ("variance", variance)):
            data = np.zeros(shape, np.float32)
            data[inside] = values
            files[key] = str(
                save_nifti(nib.Nifti1Image(data, affine), tmp_path / f"{key}{i}.nii.gz")
            )
        record = {"skipped": i == 1, "dof": dof, "stat_type": "t", **files}
        index = tmp_path / f"index{i}.json"
        index.write_text(json.dumps({"c": record}))
        indices.append(index)
        if i != 1:
            contrasts.append(Contrast(effect.astype(float), variance.astype(float), dof=dof))
    out = tmp_path / "out"
    out.mkdir()
    combined = combine_runs(indices, names=["c"], mask_files=[mask_file] * 3, out_dir=out)
    theirs = (contrasts[0] + contrasts[1]) * 0.5
    for key, expected in (
        ("effect", theirs.effect_size()),
        ("variance", theirs.effect_variance()),
        ("stat", theirs.stat()),
        ("z", theirs.z_score()),
    ):
        ours = nib.load(combined[f"{key}_files"][0]).get_fdata()[inside]
        np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)
    record = json.loads(Path(combined["contrasts_json"]).read_text())["c"]
    assert record["dof"] == theirs.dof == 130.0
    assert record["runs"] == ["run 1", "run 3"] and record["run_combination"] == "equal"
