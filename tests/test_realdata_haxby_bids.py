"""Haxby 2001 (subject 1, three runs) laid out as BIDS + fMRIPrep, glmflow vs nilearn.

nilearn builds its own design from the same events and motion confounds; glmflow's run
maps must equal it, and glmflow's subject maps must equal nilearn's precision-weighted
fixed effects of those runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from glmflow.runners.participant import run_participant_level

pytestmark = [pytest.mark.realdata, pytest.mark.slow]
RUNS = (1, 2, 3)
TR = 2.5
MOTION = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
SPACE = "space-MNI152NLin2009cAsym"


def _layout(haxby: Path, root: Path) -> Path:
    """BIDS raw + fMRIPrep derivatives pointing at the real files (links, never copies)."""
    bids = root / "bids"
    func = bids / "sub-1" / "func"
    prep = bids / "derivatives" / "fmriprep" / "sub-1" / "func"
    func.mkdir(parents=True)
    prep.mkdir(parents=True)
    (bids / "dataset_description.json").write_text(
        json.dumps({"Name": "haxby", "BIDSVersion": "1.8.0"})
    )
    (bids / "derivatives" / "fmriprep" / "dataset_description.json").write_text(
        json.dumps(
            {
                "Name": "fmriprep",
                "BIDSVersion": "1.8.0",
                "DatasetType": "derivative",
                "GeneratedBy": [{"Name": "fMRIPrep"}],
            }
        )
    )
    for run in RUNS:
        src = haxby / "BOLD" / f"task001_run{run:03d}"
        stem = f"sub-1_task-objects_run-{run}"
        (func / f"{stem}_events.tsv").symlink_to(src / "bold_events.tsv")
        (func / f"{stem}_bold.nii.gz").symlink_to(src / "bold_25mm.nii.gz")
        (func / f"{stem}_bold.json").write_text(json.dumps({"RepetitionTime": TR}))
        (prep / f"{stem}_{SPACE}_desc-preproc_bold.nii.gz").symlink_to(src / "bold_25mm.nii.gz")
        (prep / f"{stem}_{SPACE}_desc-preproc_bold.json").write_text(
            json.dumps({"RepetitionTime": TR, "StartTime": 0.0})
        )
        (prep / f"{stem}_{SPACE}_desc-brain_mask.nii.gz").symlink_to(
            haxby / "masks" / "25mm" / "brain.nii.gz"
        )
        motion = pd.DataFrame(np.loadtxt(src / "bold_moest.txt"), columns=MOTION)
        motion.to_csv(prep / f"{stem}_desc-confounds_timeseries.tsv", sep="\t", index=False)
        (prep / f"{stem}_desc-confounds_timeseries.json").write_text("{}")
    return bids


@pytest.fixture(scope="module")
def haxby_run(realdata, tmp_path_factory):
    haxby = realdata / "haxby2001-sub001"
    if not haxby.is_dir():
        pytest.skip(f"{haxby} not found")
    root = tmp_path_factory.mktemp("haxby")
    bids = _layout(haxby, root)
    model = root / "model.json"
    model.write_text(
        json.dumps(
            {
                "objects": {
                    "condition_identifier": "trial_type",
                    "confound_regressors": MOTION,
                    "design_contrasts": {"face-house": "face - house"},
                }
            }
        )
    )
    result = run_participant_level(
        bids_dir=bids,
        output_dir=root / "out",
        model=model,
        work_dir=root / "work",
        smoothing_fwhm=0,
        n_procs=2,
    )
    return haxby, root / "out" / "glmflow" / "sub-1" / "func", result


def _nilearn_run(haxby: Path, run: int):
    from nilearn.glm.first_level import FirstLevelModel

    src = haxby / "BOLD" / f"task001_run{run:03d}"
    model = FirstLevelModel(
        t_r=TR,
        slice_time_ref=0.0,
        hrf_model="spm",
        drift_model="cosine",
        high_pass=0.01,
        mask_img=str(haxby / "masks" / "25mm" / "brain.nii.gz"),
        noise_model="ar1",
        signal_scaling=0,
    )
    events = pd.read_csv(src / "bold_events.tsv", sep="\t")
    motion = pd.DataFrame(np.loadtxt(src / "bold_moest.txt"), columns=MOTION)
    model.fit(str(src / "bold_25mm.nii.gz"), events=events, confounds=motion)
    return model.compute_contrast("face - house", output_type="all")


def test_run_maps_equal_nilearn_on_real_data(haxby_run):
    haxby, out, result = haxby_run
    assert len(result.runs) == 3
    mask = nib.load(haxby / "masks" / "25mm" / "brain.nii.gz").get_fdata() > 0
    for run in RUNS:
        theirs = _nilearn_run(haxby, run)
        stem = f"sub-1_task-objects_run-{run}_{SPACE}_contrast-faceMinusHouse"
        z = nib.load(out / f"{stem}_stat-z_statmap.nii.gz").get_fdata()[mask]
        effect = nib.load(out / f"{stem}_stat-effect_statmap.nii.gz").get_fdata()[mask]
        assert np.max(np.abs(z - theirs["z_score"].get_fdata()[mask])) < 1e-3
        np.testing.assert_allclose(
            effect, theirs["effect_size"].get_fdata()[mask], rtol=1e-4, atol=1e-6
        )


def test_subject_maps_equal_nilearn_fixed_effects_on_real_data(haxby_run):
    from nilearn.glm import compute_fixed_effects

    haxby, out, _ = haxby_run
    mask_img = str(haxby / "masks" / "25mm" / "brain.nii.gz")
    runs = [_nilearn_run(haxby, run) for run in RUNS]
    dofs = []
    for run in RUNS:
        sidecar = (
            out
            / f"sub-1_task-objects_run-{run}_{SPACE}_contrast-faceMinusHouse_stat-z_statmap.json"
        )
        dofs.append(json.loads(sidecar.read_text())["Contrast"]["DegreesOfFreedom"])
    _, _, _, z = compute_fixed_effects(
        [r["effect_size"] for r in runs],
        [r["effect_variance"] for r in runs],
        mask_img,
        precision_weighted=False,  # a glm-express file: runs weighted equally, as glm-express
        dofs=dofs,
    )
    ours = nib.load(
        out / f"sub-1_task-objects_{SPACE}_contrast-faceMinusHouse_stat-z_statmap.nii.gz"
    )
    mask = nib.load(mask_img).get_fdata() > 0
    assert np.max(np.abs(ours.get_fdata()[mask] - z.get_fdata()[mask])) < 1e-3
    # three runs of 22.5 s blocks separate faces from houses well, even at 25 mm
    assert np.abs(ours.get_fdata()[mask]).max() > 3
