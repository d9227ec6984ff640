"""A generic design from Python, nilearn style: a DataFrame of maps plus confounds.

    python examples/group_generic_design.py [FOLDER]

nilearn's SecondLevelModel takes a table with subject_label, map_name and effects_map_path
and a confounds table with subject_label; glmflow.core.group.fit_group_model takes the same
and returns every map of every contrast (formula or weight vector, t or F).
"""

import pandas as pd
from group_common import first_level, region_mean, root_dir, subject_maps

from glmflow.core.group import fit_group_model

root = root_dir()
bids, out = first_level(root)
participants = pd.read_csv(bids / "participants.tsv", sep="\t")
labels = participants["participant_id"].str.removeprefix("sub-")
inputs = pd.concat(
    pd.DataFrame({"subject_label": labels, "map_name": name,
                  "effects_map_path": [str(p) for p in subject_maps(out, name)]})
    for name in ("face", "house")
)  # fmt: skip
# nilearn uses confounds as they are: demean age so that "intercept" is the mean effect
age = participants["age"] - participants["age"].mean()
confounds = pd.DataFrame({"subject_label": labels, "age": age})
fit = fit_group_model(
    inputs, confounds=confounds, first_level_contrast="face",
    contrasts={"mean": "intercept", "age": "age", "mean or age (F)": ["intercept", "age"]},
)  # fmt: skip
print("design columns:", list(fit.design.columns))
for name, maps in fit.maps.items():
    print(f"{name}: mean z in the group region {region_mean(bids, maps['z_score'], 'group'):+.2f}")
