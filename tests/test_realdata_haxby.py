"""Real data: Haxby 2001 subject 1, three runs, face vs house, against nilearn.

Per run: our z map equals nilearn FirstLevelModel's (|dz| < 1e-3; in practice ~1e-12).
Across runs: our unweighted fixed effects equal FirstLevelModel fitted on the three runs at
once (it averages effects and sums dofs), and our precision-weighted fixed effects equal
nilearn's compute_fixed_effects on nilearn's per-run maps with the runs' dofs.
The same design DataFrame (nilearn's builder: SPM HRF, cosine drift, the 6 motion estimates
as confounds) goes to both, so only the engines are compared.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from nilearn.glm import compute_fixed_effects as nilearn_fixed_effects
from nilearn.glm.first_level import FirstLevelModel, make_first_level_design_matrix
from nilearn.masking import apply_mask

from glmflow.core.bold import read_masked_bold
from glmflow.core.contrasts import compute_contrast
from glmflow.core.fixed_effects import compute_fixed_effects
from glmflow.core.glm import fit_glm

pytestmark = pytest.mark.realdata

RUNS = (1, 2, 3)
TR = 2.5
CONTRAST = {"name": "face-house", "expressions": ["face - house"], "stat_type": "t"}


@pytest.fixture(scope="module")
def haxby(realdata):
    root = realdata / "haxby2001-sub001"
    runs = []
    for run in RUNS:
        folder = root / "BOLD" / f"task001_run{run:03d}"
        motion = np.loadtxt(folder / "bold_moest.txt")
        design = make_first_level_design_matrix(
            np.arange(motion.shape[0]) * TR,
            pd.read_csv(folder / "bold_events.tsv", sep="\t"),
            hrf_model="spm",
            drift_model="cosine",
            high_pass=0.01,
            add_regs=motion,
            add_reg_names=[f"motion{i}" for i in range(6)],
        )
        runs.append((folder / "bold_25mm.nii.gz", design))
    return root / "masks" / "25mm" / "brain.nii.gz", runs


def test_face_vs_house_runs_and_fixed_effects_match_nilearn(haxby):
    mask_file, runs = haxby
    ours = []
    for bold, design in runs:
        fit = fit_glm(read_masked_bold(bold, mask_file), design, noise_model="ar1")
        ours.append((compute_contrast(fit, CONTRAST), fit.df_residuals))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        per_run = []
        for (bold, design), (result, _) in zip(runs, ours, strict=True):
            model = FirstLevelModel(mask_img=str(mask_file), noise_model="ar1")
            model.fit(str(bold), design_matrices=[design])
            maps = model.compute_contrast("face - house", output_type="all")
            z_nilearn = apply_mask(maps["z_score"], mask_file)
            assert np.abs(result["z"] - z_nilearn).max() < 1e-3
            per_run.append(maps)
        combined = FirstLevelModel(mask_img=str(mask_file), noise_model="ar1").fit(
            [str(bold) for bold, _ in runs], design_matrices=[d for _, d in runs]
        )
        z_combined = apply_mask(combined.compute_contrast("face - house"), mask_file)
        dofs = [dof for _, dof in ours]
        _, _, _, z_weighted = nilearn_fixed_effects(
            [m["effect_size"] for m in per_run],
            [m["effect_variance"] for m in per_run],
            mask=str(mask_file),
            precision_weighted=True,
            dofs=dofs,
        )

    effects = [result["effect"] for result, _ in ours]
    variances = [result["variance"] for result, _ in ours]
    plain = compute_fixed_effects(effects, variances, dofs=dofs, precision_weighted=False)
    weighted = compute_fixed_effects(effects, variances, dofs=dofs, precision_weighted=True)
    assert np.abs(plain["z"] - z_combined).max() < 1e-3
    assert np.abs(weighted["z"] - apply_mask(z_weighted, mask_file)).max() < 1e-3
    # face-selective cortex exists in this subject: the combined map has strong voxels
    assert weighted["z"].max() > 3
