"""Dataset nodes of a BIDS Stats Model: a t-test and an F-test node, glmflow's group inference.

8 subjects x 1 run of the synthetic faces data; the run node's face, house and face_gt_house
contrasts go to a t-test Dataset node (face_gt_house) and an F-test Dataset node (face and
house, ``X`` the incoming contrasts, F [[1, 0], [0, 1]]), as FitLins' ds003 example.
"""

from __future__ import annotations

import copy
import json
from importlib.resources import files
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from glmflow.errors import ModelSpecError

pytestmark = pytest.mark.slow
FACES = json.loads((files("glmflow.data") / "models" / "faces_smdl.json").read_text())


def _model() -> dict:
    model = copy.deepcopy(FACES)
    run = model["Nodes"][0]
    run["Contrasts"] += [
        {"Name": name, "ConditionList": [f"trial_type.{name}"], "Weights": [1], "Test": "t"}
        for name in ("face", "house")
    ]
    t_test = {"Level": "Dataset", "Name": "tTest", "GroupBy": ["contrast"],
              "Model": {"X": [1], "Type": "glm"}, "DummyContrasts": {"Test": "t"}}  # fmt: skip
    f_test = {
        "Level": "Dataset",
        "Name": "fTest",
        "GroupBy": [],
        "Model": {"X": ["face", "house"], "Type": "glm"},
        "Contrasts": [
            {
                "Name": "any",
                "ConditionList": ["face", "house"],
                "Weights": [[1, 0], [0, 1]],
                "Test": "F",
            }  # fmt: skip
        ],
    }
    model["Nodes"] = [run, t_test, f_test]
    model["Edges"] = [
        {"Source": "run", "Destination": "tTest", "Filter": {"contrast": ["face_gt_house"]}},
        {"Source": "run", "Destination": "fTest", "Filter": {"contrast": ["face", "house"]}},
    ]
    return model


def _results(work: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in work.rglob("result_*.pklz")}


@pytest.fixture(scope="module")
def fpr_run(tmp_path_factory):
    from glmflow.cli.main import main
    from glmflow.data import make_synthetic_dataset

    root = tmp_path_factory.mktemp("bsm_inference")
    dataset = make_synthetic_dataset(root / "ds", n_subjects=8, n_runs=1, n_volumes=60)
    model = root / "tf_smdl.json"
    model.write_text(json.dumps(_model()))
    argv = [str(dataset), str(root / "out"), "participant", "--model", str(model),
            "-w", str(root / "work"), "--inference", "fpr", "--alpha", "0.001"]  # fmt: skip
    assert main(argv) == 0
    return root, dataset, model


def test_t_and_f_dataset_nodes_equal_second_level_model(fpr_run):
    from nilearn.glm.second_level import SecondLevelModel

    root, _, _ = fpr_run
    out = root / "out" / "glmflow"
    pattern = "node-run/sub-*/*_contrast-{}_stat-effect_statmap.nii.gz"
    maps = {c: sorted(str(p) for p in out.glob(pattern.format(c)))
            for c in ("face", "house", "faceGtHouse")}  # fmt: skip
    assert [len(v) for v in maps.values()] == [8, 8, 8]
    (mask,) = (root / "work").rglob("fit_fTest/mask.nii.gz")
    inside = nib.load(mask).get_fdata() > 0
    design = pd.DataFrame({"face": [1.0] * 8 + [0.0] * 8, "house": [0.0] * 8 + [1.0] * 8})
    slm = SecondLevelModel(mask_img=str(mask)).fit(
        maps["face"] + maps["house"], design_matrix=design
    )
    theirs = slm.compute_contrast(
        np.eye(2), second_level_stat_type="F", output_type="stat"
    ).get_fdata()
    ours = nib.load(out / "node-fTest/contrast-any_stat-F_statmap.nii.gz").get_fdata()
    assert np.abs(ours[inside] - theirs[inside]).max() < 1e-3 * max(1.0, theirs[inside].max())
    t_mask = next((root / "work").rglob("fit_tTest__contrast_face_gt_house/mask.nii.gz"))
    slm = SecondLevelModel(mask_img=str(t_mask)).fit(
        maps["faceGtHouse"], design_matrix=pd.DataFrame({"intercept": [1.0] * 8})
    )
    theirs = slm.compute_contrast("intercept", output_type="z_score").get_fdata()
    ours = nib.load(out / "node-tTest/contrast-faceGtHouse_stat-z_statmap.nii.gz").get_fdata()
    inside = nib.load(t_mask).get_fdata() > 0
    assert np.abs(ours[inside] - theirs[inside]).max() < 1e-3


def test_fpr_and_cluster_tables_on_both_dataset_nodes(fpr_run):
    from nilearn.glm import threshold_stats_img

    root, _, _ = fpr_run
    out = root / "out" / "glmflow"
    for node, label, two_sided in (("tTest", "faceGtHouse", True), ("fTest", "any", False)):
        stem = out / f"node-{node}" / f"contrast-{label}_stat-z_desc-fpr"
        sidecar = json.loads(Path(f"{stem}_statmap.json").read_text())
        z = out / f"node-{node}" / f"contrast-{label}_stat-z_statmap.nii.gz"
        (mask,) = (root / "work").rglob(f"fit_{node}*/mask.nii.gz")
        _, threshold = threshold_stats_img(
            str(z), mask_img=str(mask), alpha=0.001, height_control="fpr", two_sided=two_sided
        )
        assert sidecar["Threshold"] == pytest.approx(threshold)
        clusters = pd.read_csv(f"{stem}_clusters.tsv", sep="\t")
        assert list(clusters.columns[:5]) == ["Cluster ID", "X", "Y", "Z", "Peak Stat"]
        assert len(clusters) >= 1  # the planted face / house regions survive p < 0.001
        thresholded = nib.load(f"{stem}_statmap.nii.gz").get_fdata()
        assert np.abs(thresholded[thresholded != 0]).min() >= threshold - 1e-6


def test_permutation_tfce_on_the_cached_graph_and_f_tests_refused(fpr_run):
    from glmflow.runners.bsm import run_bids_stats_model

    root, dataset, model = fpr_run
    inference = {"method": "permutation", "n_perm": 50, "permutation_stat": "tfce", "seed": 0}
    kwargs = dict(bids_dir=dataset, output_dir=root / "out", work_dir=root / "work")
    with pytest.raises(ModelSpecError) as info:
        run_bids_stats_model(**kwargs, model=model, inference=inference)
    assert str(info.value) == (
        f"{model}: node 'fTest': contrast 'any' is an F test, and --inference permutation "
        "permutes t contrasts only; use a height method (fdr, fpr, bonferroni, threshold, tdp) "
        "or remove the F contrast"
    )
    t_only = _model()
    t_only["Nodes"].pop()
    t_only["Edges"].pop()
    path = root / "t_smdl.json"
    path.write_text(json.dumps(t_only))
    before = _results(root / "work")
    run_bids_stats_model(**kwargs, model=path, inference=inference)
    executed = {
        Path(p).parent.name for p, t in _results(root / "work").items() if before.get(p) != t
    }
    # the fits are cached: only the permutation and its sink run
    assert {n for n in executed if not n.startswith("ds_")} == {
        "inference_tTest__contrast_face_gt_house_0"
    }
    tfce = (
        root / "out/glmflow/node-tTest/contrast-faceGtHouse_stat-logp_desc-tfceFWE_statmap.nii.gz"
    )
    assert nib.load(tfce).get_fdata().max() > 0
