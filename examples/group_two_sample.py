"""Unpaired two-sample t test from participants.tsv: patients against controls, with age.

    python examples/group_two_sample.py [FOLDER]

nilearn's "second-level two-sample" example as a model file: the "group" column of
participants.tsv makes one indicator column per group, age is a demeaned covariate.
"""

from group_common import first_level, group_map, group_model, region_mean, root_dir

from glmflow import run_group_level

root = root_dir()
bids, out = first_level(root)
model = group_model(
    root, "two_sample",
    design="two-sample", group_column="group", covariates=["age"],
    first_level_contrasts=["face"],
    contrasts=[
        {"name": "patient-control", "expressions": ["group_patient - group_control"]},
        {"name": "age", "expressions": ["age"]},
    ],
    inference={"method": "fdr", "alpha": 0.05},
)  # fmt: skip
run_group_level(bids_dir=bids, output_dir=out, model=model, work_dir=root / "work")
for label, truth in (("facePatientMinusControl", -1.0), ("faceAge", -0.03)):
    effect = region_mean(bids, group_map(out, label, "effect"), "group")
    print(f"{label}: {effect:+.3f} in the group region (truth {truth:+.2f} plus sampling noise)")
