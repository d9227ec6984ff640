"""A BIDS Stats Model is one cached graph: every node cached, outputs published at the end.

Data: the synthetic faces dataset (2 subjects x 2 runs, 60 volumes); model: the packaged
faces_smdl.json (run glm -> subject meta -> dataset glm).
"""

from __future__ import annotations

import copy
import json
from importlib.resources import files
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from glmflow.data import make_synthetic_dataset
from glmflow.errors import GlmflowError
from glmflow.runners.bsm import run_bids_stats_model

pytestmark = pytest.mark.slow
FACES = json.loads((files("glmflow.data") / "models" / "faces_smdl.json").read_text())
DATASET_UNIT = "dataset__contrast_face_gt_house"


def _write(model: dict, folder: Path) -> Path:
    path = folder / "model_smdl.json"
    path.write_text(json.dumps(model))
    return path


def _results(work: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in work.rglob("result_*.pklz")}


def _executed(before: dict[str, int], after: dict[str, int]) -> set[str]:
    """Names of the nodes whose result file was written again."""
    return {Path(p).parent.name for p, t in after.items() if before.get(p) != t}


def files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []


@pytest.fixture(scope="module")
def cold(tmp_path_factory):
    """One cold run shared by the tests below, in file order (each edit starts from the
    packaged model, whatever the previous test left)."""
    tmp_path = tmp_path_factory.mktemp("bsm_graph")
    dataset = make_synthetic_dataset(tmp_path / "ds", n_subjects=2, n_runs=2, n_volumes=60)
    kwargs = dict(
        bids_dir=dataset,
        output_dir=tmp_path / "out",
        model=_write(FACES, tmp_path),
        work_dir=tmp_path / "work",
    )
    result = run_bids_stats_model(**kwargs)
    return tmp_path, kwargs, result


def test_every_node_is_a_cached_graph_node(cold):
    root, kwargs, result = cold
    nodes = set(_executed({}, _results(root / "work")))
    assert {
        "mask_bold",
        "fit_first_level",
        "compute_contrasts",
        "ds_run__sub_01_task_faces_run_1",
        "fit_subject__sub_01_contrast_face_gt_house",
        "ds_subject__sub_02_contrast_face_gt_house",
        f"fit_{DATASET_UNIT}",
        f"ds_{DATASET_UNIT}",
    } <= nodes
    # 4 runs x (1 contrast x 5 maps + design), 2 subjects x 5 maps, 1 dataset x 5 maps
    assert len(result.files) == 4 * 6 + 2 * 5 + 5
    before = _results(root / "work")
    run_bids_stats_model(**kwargs)
    assert _executed(before, _results(root / "work")) == set()


def test_contrast_edit_at_the_dataset_node_reruns_only_that_node(cold):
    root, kwargs, _ = cold
    out = root / "out" / "glmflow" / "node-dataset"
    model = copy.deepcopy(FACES)
    model["Nodes"][2].pop("DummyContrasts")
    model["Nodes"][2]["Contrasts"] = [
        {"Name": "house_gt_face", "ConditionList": [1], "Weights": [-1], "Test": "t"}
    ]
    before = _results(root / "work")
    run_bids_stats_model(**{**kwargs, "model": _write(model, root)})
    assert _executed(before, _results(root / "work")) == {
        f"fit_{DATASET_UNIT}",
        f"ds_{DATASET_UNIT}",
        "ds_report_group_node_dataset",  # the one report page that shows the dataset node
    }
    old = nib.load(out / "contrast-faceGtHouse_stat-effect_statmap.nii.gz").get_fdata()
    # pybids names a contrast over one incoming contrast "<incoming>_<name>"
    new = nib.load(out / "contrast-faceGtHouseHouseGtFace_stat-effect_statmap.nii.gz")
    new = new.get_fdata()
    np.testing.assert_allclose(new, -old)


def test_run_confound_edit_refits_without_reading_the_bold_again(cold):
    root, kwargs, _ = cold
    model = copy.deepcopy(FACES)
    model["Nodes"][0]["Model"]["X"].remove("csf")
    before = _results(root / "work")
    run_bids_stats_model(**{**kwargs, "model": _write(model, root)})
    executed = _executed(before, _results(root / "work"))
    assert {"fit_first_level", "compute_contrasts", f"fit_{DATASET_UNIT}"} <= executed
    assert "mask_bold" not in executed
    design = root / "out/glmflow/node-run/sub-01/sub-01_task-faces_run-1_design.tsv"
    assert "csf" not in design.read_text().splitlines()[0].split("\t")


def test_a_failure_at_the_dataset_node_leaves_nothing_in_the_output(tmp_path):
    dataset = make_synthetic_dataset(tmp_path / "ds", n_subjects=2, n_runs=2, n_volumes=60)
    # the two subjects' brain masks share no voxel: only the dataset node fails
    for subject, half in (("01", slice(None, 10)), ("02", slice(10, None))):
        for path in (dataset / "derivatives/fmriprep" / f"sub-{subject}").rglob("*_mask.nii.gz"):
            img = nib.load(path)
            data = np.asarray(img.dataobj).copy()
            keep = np.zeros(data.shape, bool)
            keep[half] = True
            nib.save(nib.Nifti1Image((data * keep).astype(np.uint8), img.affine, img.header), path)
    out = tmp_path / "out"
    with pytest.raises(GlmflowError) as info:
        run_bids_stats_model(
            bids_dir=dataset,
            output_dir=out,
            model=_write(FACES, tmp_path),
            work_dir=tmp_path / "work",
        )
    message = str(info.value)
    assert message.startswith(
        f"Node 'bsm_wf.fit_{DATASET_UNIT}' failed with glmflow.errors.GroupModelError"
    )
    assert "have no voxel in common" in message
    assert files_in(out) == []
    # the nodes below it ran: the failure was at the dataset node only
    assert "fit_subject__sub_02_contrast_face_gt_house" in _executed(
        {}, _results(tmp_path / "work")
    )
