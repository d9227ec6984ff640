"""First level from Python: make the synthetic dataset, run it, look at the truth.

    python examples/first_level.py /tmp/glmflow-example

Rerun it: every node is cached and the second run takes seconds. Edit a contrast in
MODEL below and rerun: only the contrast nodes run again.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from glmflow import load_truth, make_synthetic_dataset, run_participant_level

MODEL = {
    "faces": {
        "tr": None,
        "excludes": [],
        "condition_identifier": "trial_type",
        "confound_regressors": ["trans_*", "rot_*", "non_steady_state_outlier*"],
        "modulators": ["rt"],
        "block_identifier": None,
        "design_contrasts": {"face-house": "face - house"},
        "group_level_regressors": ["age"],
    }
}


def main(root: Path) -> None:
    bids = root / "bids"
    if not bids.exists():
        make_synthetic_dataset(bids, n_subjects=2, n_runs=2)
    model = root / "task_information.json"
    model.write_text(json.dumps(MODEL, indent=2))
    result = run_participant_level(
        bids_dir=bids,
        output_dir=root / "derivatives",
        model=model,
        work_dir=root / "work",
        smoothing_fwhm=0,  # the truth is defined voxel by voxel
        plugin="MultiProc",
        n_procs=2,
    )
    truth = load_truth(bids)
    face = nib.load(bids / "derivatives/truth/desc-face_mask.nii.gz").get_fdata() > 0
    for subject in result.subjects:
        name = (
            f"sub-{subject}_task-faces_space-MNI152NLin2009cAsym_contrast-face_"
            "stat-effect_statmap.nii.gz"
        )
        effect = nib.load(result.output_dir / f"sub-{subject}" / "func" / name).get_fdata()
        true = nib.load(bids / f"derivatives/truth/sub-{subject}_desc-face_effect.nii.gz")
        print(
            f"sub-{subject}: face effect in the face region {np.mean(effect[face]):.2f} % "
            f"(truth {np.mean(true.get_fdata()[face]):.2f} %; units: {truth['units']})"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "glmflow-example").absolute())
