"""BIDS first + second level, one-sample t test: is there a face response across subjects?

    python examples/group_one_sample.py [FOLDER]

nilearn's "second-level one-sample" and "BIDS first + second level" examples, as one model
file. The same from the command line, once the model file exists::

    glmflow FOLDER/bids FOLDER/derivatives group --model FOLDER/one_sample.json -w FOLDER/work
"""

import pandas as pd
from group_common import first_level, group_map, group_model, region_mean, root_dir

from glmflow import run_group_level

root = root_dir()
bids, out = first_level(root)
model = group_model(
    root, "one_sample",
    design="one-sample", first_level_contrasts=["face"], smoothing_fwhm=8,
    inference={"method": "fpr", "alpha": 0.001, "cluster_threshold": 5, "two_sided": False},
)  # fmt: skip
result = run_group_level(bids_dir=bids, output_dir=out, model=model, work_dir=root / "work")
print("\n".join(sorted(p.name for p in result.files if "face_" in p.name)))
z = group_map(out, "face", "z")
print(f"mean z: face region {region_mean(bids, z, 'face'):.1f}, null region "
      f"{region_mean(bids, z, 'null'):.1f}")  # fmt: skip
clusters = str(group_map(out, "face", "z", "fpr")).replace("_statmap.nii.gz", "_clusters.tsv")
print(pd.read_csv(clusters, sep="\t").head(8).to_string(index=False))
