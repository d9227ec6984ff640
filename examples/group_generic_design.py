"""A generic design from Python, nilearn style: a list of maps and a design matrix.

    python examples/group_generic_design.py [FOLDER]

nilearn's make_second_level_design_matrix builds the design from subject labels and a
confounds table; glmflow.core.group.fit_group_model takes that design with one map per row
and returns every map of every contrast (formula or weight vector, t or F). (The same design
as a TSV reaches the pipeline with ``glmflow ... group --group-design design.tsv``.)
"""

import pandas as pd
from group_common import first_level, region_mean, root_dir, subject_maps
from nilearn.glm.second_level import make_second_level_design_matrix

from glmflow.core.group import fit_group_model

root = root_dir()
bids, out = first_level(root)
participants = pd.read_csv(bids / "participants.tsv", sep="\t")
labels = participants["participant_id"].tolist()
# nilearn uses confounds as they are: demean age so that "intercept" is the mean effect
age = participants["age"] - participants["age"].mean()
confounds = pd.DataFrame({"subject_label": labels, "age": age})
design = make_second_level_design_matrix(labels, confounds)
fit = fit_group_model(
    [str(p) for p in subject_maps(out, "face")], design,
    contrasts={"mean": "intercept", "age": "age", "mean or age (F)": ["intercept", "age"]},
)  # fmt: skip
print("design columns:", list(fit.design.columns))
for name, maps in fit.maps.items():
    print(f"{name}: mean z in the group region {region_mean(bids, maps['z_score'], 'group'):+.2f}")
