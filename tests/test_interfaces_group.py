"""FitGroupModel and GroupInference run as Nipype nodes."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nipype.pipeline import engine as pe

from glmflow.core.group import fit_group_model
from glmflow.core.inference import permutation_inference
from glmflow.interfaces.group_fit import FitGroupModel
from glmflow.interfaces.group_inference import GroupInference

SHAPE = (7, 8, 9)
AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    """8 subjects with a strong mean effect in one corner; design TSV with a label column."""
    root = tmp_path_factory.mktemp("group_node")
    rng = np.random.default_rng(5)
    effects = []
    for i in range(8):
        data = rng.normal(0.0, 1.0, SHAPE)
        data[:3, :3, :3] += 4.0
        effects.append(str(root / f"sub-{i:02d}_stat-effect_statmap.nii.gz"))
        nib.save(nib.Nifti1Image(data.astype("float32"), AFFINE), effects[-1])
    design = pd.DataFrame(
        {"intercept": 1.0, "age": np.linspace(-10, 10, 8)},
        index=pd.Index([f"sub-{i:02d}" for i in range(8)], name="label"),
    )
    design.to_csv(root / "design.tsv", sep="\t")
    return {"effects": effects, "design": design, "design_file": str(root / "design.tsv")}


def test_fit_group_model_node(inputs, tmp_path):
    contrasts = [
        {"name": "mean", "expressions": ["intercept"]},
        {"name": "age effect", "weights": [{"age": 1}]},
        {"name": "both", "expressions": ["intercept", "age"], "stat_type": "F"},
    ]
    node = pe.Node(
        FitGroupModel(
            effect_files=inputs["effects"],
            design_file=inputs["design_file"],
            contrasts=json.dumps(contrasts),
            minimize_memory=False,
        ),
        name="fit_group",
        base_dir=tmp_path,
    )
    out = node.run().outputs
    assert out.contrast_names == ["mean", "age effect", "both"]
    assert out.stat_types == ["t", "t", "F"]
    assert out.z_files[1].endswith("group_con001_AgeEffect_z.nii.gz")
    expected = fit_group_model(
        inputs["effects"], inputs["design"], contrasts={"mean": "intercept"}
    ).maps["mean"]["z_score"]
    np.testing.assert_allclose(
        nib.load(out.z_files[0]).get_fdata(), expected.get_fdata(), atol=1e-5
    )
    assert nib.load(out.effect_files[2]).shape == (*SHAPE, 2)
    assert nib.load(out.residuals_file).shape == (*SHAPE, 8)
    assert nib.load(out.mask_file).get_data_dtype() == np.uint8
    record = json.loads(open(out.contrasts_json).read())
    assert record["age effect"]["weights"] == [{"intercept": 0.0, "age": 1.0}]
    assert record["both"]["z"] == out.z_files[2]


def test_group_inference_node_fdr(inputs, tmp_path):
    fit = fit_group_model(inputs["effects"], inputs["design"], contrasts={"mean": "intercept"})
    z_file = tmp_path / "z.nii.gz"
    nib.save(fit.maps["mean"]["z_score"], z_file)
    node = pe.Node(
        GroupInference(method="fdr", stat_file=str(z_file), alpha=0.05),
        name="inference",
        base_dir=tmp_path,
    )
    out = node.run().outputs
    kept = nib.load(out.thresholded_file).get_fdata() != 0
    assert kept[:3, :3, :3].all() and kept.sum() < 40
    table = pd.read_csv(out.clusters_file, sep="\t")
    assert table.columns.tolist()[-2:] == ["Cluster Size (mm3)", "Cluster Size (voxels)"]
    assert table["Cluster Size (voxels)"].iloc[0] >= 27
    assert table["Cluster Size (mm3)"].iloc[0] == 8 * table["Cluster Size (voxels)"].iloc[0]


def test_group_inference_node_permutation(inputs, tmp_path):
    node = pe.Node(
        GroupInference(
            method="permutation",
            effect_files=inputs["effects"],
            design_file=inputs["design_file"],
            contrast="intercept",
            n_perm=30,
            random_state=1,
            n_jobs=1,
        ),
        name="permutation",
        base_dir=tmp_path,
    )
    out = node.run().outputs
    expected = permutation_inference(
        inputs["effects"], inputs["design"], contrast="intercept", n_perm=30, random_state=1
    )
    np.testing.assert_allclose(
        nib.load(out.logp_max_t_file).get_fdata(), expected["logp_max_t"].get_fdata(), atol=1e-6
    )
    assert out.threshold == pytest.approx(-np.log10(0.05))
    assert nib.load(out.t_file).shape == SHAPE
    # n_jobs is out of the hash: changing it reuses the cached result
    node.inputs.n_jobs = 2
    assert node.is_cached()[1]


def test_inference_sink_stages_until_the_level_has_succeeded(inputs, tmp_path):
    from glmflow.core.publish import publish
    from glmflow.interfaces.inference_sink import InferenceSink

    z_file = tmp_path / "z.nii.gz"
    fit = fit_group_model(inputs["effects"], inputs["design"], contrasts={"mean": "intercept"})
    nib.save(fit.maps["mean"]["z_score"], z_file)
    inference = pe.Node(
        GroupInference(method="fdr", stat_file=str(z_file), alpha=0.05),
        name="inference",
        base_dir=tmp_path,
    ).run()
    out = tmp_path / "derivatives"
    sink = pe.Node(
        InferenceSink(
            output_dir=str(out), entities='{"task": "faces"}', contrast_name="mean",
            method="fdr", thresholded_file=inference.outputs.thresholded_file,
            threshold=inference.outputs.threshold,
            clusters_file=inference.outputs.clusters_file,
        ),
        name="ds_inference",
        base_dir=tmp_path,
    ).run()  # fmt: skip
    names = [Path(p).name for p in sink.outputs.out_files]
    assert names == [
        "task-faces_contrast-mean_stat-z_desc-fdr_statmap.nii.gz",
        "task-faces_contrast-mean_stat-z_desc-fdr_clusters.tsv",
    ]
    assert not out.exists()  # nothing in the output folder before the level succeeded
    published = publish([sink.outputs.manifest_file])
    assert sorted(p.name for p in published) == sorted(
        [*names, *(n.replace(".nii.gz", ".json").replace(".tsv", ".json") for n in names)]
    )
    assert all(Path(p).is_file() for p in sink.outputs.out_files)
