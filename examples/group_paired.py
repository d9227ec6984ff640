"""Paired t test: face against house within subjects (subject as a factor).

    python examples/group_paired.py [FOLDER]

nilearn's "paired two-sample" example as a model file: the two first-level contrasts named
in "conditions" are stacked; the design has a face_minus_house column and one column per
subject. (Pairs of sessions work the same from Python: make_group_design(...,
group=GroupSpec(design="paired", conditions=("ses-pre", "ses-post"))) and fit_group_model.)
"""

from group_common import first_level, group_map, group_model, region_mean, root_dir

from glmflow import run_group_level

root = root_dir()
bids, out = first_level(root)
model = group_model(
    root, "paired", design="paired", conditions=["face", "house"],
    inference={"method": "bonferroni", "alpha": 0.05},
)  # fmt: skip
run_group_level(bids_dir=bids, output_dir=out, model=model, work_dir=root / "work")
effect = group_map(out, "faceMinusHouse", "effect")
for region, truth in (("face", 1.5), ("house", -1.5), ("null", 0.0)):
    print(f"face - house in the {region} region: {region_mean(bids, effect, region):+.2f} "
          f"(truth {truth:+.1f})")  # fmt: skip
