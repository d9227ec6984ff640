"""Session nodes (meta and glm) and ``Options.Mask`` on a two-session synthetic dataset.

2 subjects x 2 sessions x 2 runs of 60 volumes; the run node reads a subject-level ROI mask
selected by ``Options.Mask``; a Session ``meta`` node and a Session ``glm`` node both take
the runs (two nodes at one level), the meta node feeds a Subject and a Dataset node.
"""

from __future__ import annotations

import copy
import json
from importlib.resources import files

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow
FACES = json.loads((files("glmflow.data") / "models" / "faces_smdl.json").read_text())
SPACE = "MNI152NLin2009cAsym"


def _session_model() -> dict:
    model = copy.deepcopy(FACES)
    run, subject, dataset = model["Nodes"]
    run["GroupBy"] = ["run", "session", "subject"]
    run["Model"]["Options"]["Mask"] = {"desc": "roi"}

    def session(name: str, kind: str) -> dict:
        return {
            "Level": "Session",
            "Name": name,
            "GroupBy": ["subject", "session"],
            "Model": {"X": [1], "Type": kind},
            "DummyContrasts": {"Test": "t"},
        }

    model["Nodes"] = [run, session("sessionMeta", "meta"), session("sessionGlm", "glm"),
                      subject, dataset]  # fmt: skip
    model["Edges"] = [
        {"Source": "run", "Destination": "sessionMeta"},
        {"Source": "run", "Destination": "sessionGlm"},
        {"Source": "sessionMeta", "Destination": "subject"},
        {"Source": "subject", "Destination": "dataset"},
    ]
    return model


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    from glmflow.data import make_synthetic_dataset
    from glmflow.runners.bsm import run_bids_stats_model

    root = tmp_path_factory.mktemp("bsm_sessions")
    dataset = make_synthetic_dataset(
        root / "ds", n_subjects=2, n_runs=2, n_sessions=2, n_volumes=60
    )
    for subject in ("01", "02"):  # an ROI: the brain mask's lower half, one per subject
        brain = next((dataset / "derivatives/fmriprep" / f"sub-{subject}").rglob("*_mask.nii.gz"))
        img = nib.load(brain)
        data = np.asarray(img.dataobj).copy()
        data[:, :, data.shape[2] // 2 :] = 0
        roi = dataset / f"derivatives/fmriprep/sub-{subject}/anat"
        roi.mkdir(parents=True, exist_ok=True)
        nib.save(
            nib.Nifti1Image(data.astype(np.uint8), img.affine),
            roi / f"sub-{subject}_space-{SPACE}_desc-roi_mask.nii.gz",
        )
    model = root / "sessions_smdl.json"
    model.write_text(json.dumps(_session_model()))
    result = run_bids_stats_model(
        bids_dir=dataset, output_dir=root / "out", model=model, work_dir=root / "work"
    )
    return dataset, result


def _maps(folder, pattern):
    return sorted(str(p) for p in folder.glob(pattern))


def test_options_mask_selects_the_roi_for_every_run(sessions):
    dataset, result = sessions
    assert len(result.plan.runs) == 8
    for run in result.plan.runs:
        assert run.mask_file.endswith(
            f"sub-{run.entities['subject']}_space-{SPACE}_desc-roi_mask.nii.gz"
        )
    run = result.plan.runs[0]
    stem = "sub-01_ses-01_task-faces_run-1_contrast-faceGtHouse_stat-z_statmap.nii.gz"
    z = nib.load(result.output_dir / "node-run/sub-01/ses-01" / stem).get_fdata()
    roi = nib.load(run.mask_file).get_fdata() > 0
    assert np.count_nonzero(z[~roi]) == 0 and np.count_nonzero(z[roi]) == roi.sum()


def test_session_meta_and_glm_equal_nilearn(sessions):
    from nilearn.glm import compute_fixed_effects
    from nilearn.glm.second_level import SecondLevelModel

    _, result = sessions
    out = result.output_dir
    runs = out / "node-run/sub-02/ses-02"
    effects = _maps(runs, "*_contrast-faceGtHouse_stat-effect_statmap.nii.gz")
    assert len(effects) == 2
    variances = [p.replace("stat-effect", "stat-variance") for p in effects]
    dofs = [json.loads(open(p.replace(".nii.gz", ".json")).read())["DegreesOfFreedom"]
            for p in effects]  # fmt: skip
    mask = result.plan.runs[-1].mask_file  # sub-02's ROI
    inside = nib.load(mask).get_fdata() > 0
    _, _, _, z = compute_fixed_effects(
        effects, variances, mask, precision_weighted=True, dofs=dofs
    )
    stem = "sub-02_ses-02_contrast-faceGtHouse_stat-z_statmap.nii.gz"
    meta = nib.load(out / "node-sessionMeta/sub-02/ses-02" / stem).get_fdata()
    assert np.abs(meta[inside] - z.get_fdata()[inside]).max() < 1e-3
    slm = SecondLevelModel(mask_img=mask).fit(
        effects, design_matrix=pd.DataFrame({"intercept": [1.0, 1.0]})
    )
    theirs = slm.compute_contrast("intercept", output_type="z_score").get_fdata()
    glm = nib.load(out / "node-sessionGlm/sub-02/ses-02" / stem).get_fdata()
    assert np.abs(glm[inside] - theirs[inside]).max() < 1e-3
    sidecar = json.loads(
        (out / "node-sessionGlm/sub-02/ses-02" / stem.replace(".nii.gz", ".json")).read_text()
    )
    assert sidecar["Node"] == "sessionGlm" and sidecar["DegreesOfFreedom"] == 1.0


def test_sessions_feed_the_subject_and_dataset_nodes(sessions):
    _, result = sessions
    out = result.output_dir
    assert len(_maps(out, "node-sessionMeta/sub-*/ses-*/*_stat-z_statmap.nii.gz")) == 4
    assert len(_maps(out, "node-sessionGlm/sub-*/ses-*/*_stat-z_statmap.nii.gz")) == 4
    subject = result.plan.units[[u.node for u in result.plan.units].index("subject")]
    assert [dict(r.entities)["session"] for r in subject.rows] == ["01", "02"]
    assert (out / "node-dataset/contrast-faceGtHouse_stat-z_statmap.nii.gz").is_file()
