"""Permutation testing: max-t, cluster-size and cluster-mass FWE with a seed.

    python examples/group_permutation.py [FOLDER]

nilearn's "second-level permutation" example as a model file: 1,000 sign flips of the
one-sample design; writes -log10 FWE p maps (desc-maxtFWE, desc-sizeFWE, desc-massFWE), the
t map thresholded by the chosen one and its cluster table. With "permutation_stat": "tfce"
TFCE is used instead (slower). The same seed gives the same maps as nilearn's
non_parametric_inference.
"""

import nibabel as nib
import numpy as np
from group_common import first_level, group_map, group_model, root_dir

from glmflow import run_group_level

root = root_dir()
bids, out = first_level(root)
model = group_model(
    root, "permutation", first_level_contrasts=["face"], smoothing_fwhm=6,
    inference={
        "method": "permutation", "n_perm": 1000, "seed": 0, "two_sided": False,
        "permutation_stat": "size", "cluster_forming_p": 0.001, "alpha": 0.05,
    },
)  # fmt: skip
result = run_group_level(bids_dir=bids, output_dir=out, model=model, work_dir=root / "work")
for desc in ("maxtFWE", "sizeFWE", "massFWE"):
    logp = nib.load(group_map(out, "face", "logp", desc)).get_fdata()
    print(f"{desc}: {int(np.sum(logp > -np.log10(0.05)))} voxels with FWE p < 0.05")
