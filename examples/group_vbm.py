"""A VBM-like generic design: a list of images and a design with age and sex.

    python examples/group_vbm.py [FOLDER]

nilearn's voxel-based morphometry example regresses grey-matter maps on age and sex. Any list
of 3-D images works the same way; here the subjects' face effect maps stand in for the
grey-matter maps. The design comes from participants.tsv (age demeaned, sex dummy coded);
the maps are smoothed by 8 mm and resampled to 6-mm voxels before the fit.
"""

import numpy as np
from group_common import first_level, root_dir, subject_maps

from glmflow.core.group import fit_group_model, load_participants, make_group_design
from glmflow.core.inference import run_group_inference
from glmflow.core.model import GroupSpec, InferenceSpec

root = root_dir()
bids, out = first_level(root)
participants = load_participants(bids / "participants.tsv")
images = subject_maps(out, "face")
# the model file's group section, as an object: valid when made
group = GroupSpec(
    design="covariates", covariates=("age", "sex"), smoothing_fwhm=8,
    target_affine=np.diag([6.0, 6.0, 6.0]).ravel().tolist(),
)  # fmt: skip
design = make_group_design(participants, subjects=participants["participant_id"], group=group)
fit = fit_group_model(images, design, contrasts={"age": "age", "sex": "sex_M"}, group=group)
print(design.round(2).to_string())
for name in fit.maps:
    result = run_group_inference(
        InferenceSpec(method="fpr", alpha=0.001, two_sided=True),
        stat_img=fit.maps[name]["z_score"], mask=fit.mask_img,
    )  # fmt: skip
    print(f"{name}: {len(result.clusters)} cluster rows at |z| > {result.threshold:.2f}")
