"""True-discovery proportion of clusters (all-resolution inference).

    python examples/group_tdp.py [FOLDER]

nilearn's cluster_level_inference example: for each cluster above z > 3, a lower bound (at
95 % confidence) on the proportion of truly active voxels. Writes the thresholded z map
(desc-tdp), the stat-tdp map and the cluster table.
"""

import nibabel as nib
from group_common import first_level, group_map, group_model, root_dir

from glmflow import run_group_level

root = root_dir()
bids, out = first_level(root)
model = group_model(
    root, "tdp", first_level_contrasts=["face"], smoothing_fwhm=6,
    inference={"method": "tdp", "z_threshold": 3.0, "alpha": 0.05, "two_sided": False},
)  # fmt: skip
run_group_level(bids_dir=bids, output_dir=out, model=model, work_dir=root / "work")
tdp = nib.load(group_map(out, "face", "tdp")).get_fdata()
print(
    "true-discovery proportions of the clusters:",
    sorted({round(float(v), 2) for v in tdp[tdp > 0]}),
)
