"""Shared set-up of the group examples: the synthetic study and its participant level.

Every ``examples/group_*.py`` script takes an optional folder (default
``/tmp/glmflow-group-examples``) and starts with :func:`first_level`: the first call writes
8 synthetic subjects (one run of 80 volumes each) and fits their first level (about 20 s on
2 cores); later calls reuse the cached work directory and take a second or two.

The truth: the face effect of the "group" region is 1.5 - 1.0 * (+1/2 patient,
-1/2 control) - 0.03 * (age - mean age) + noise per subject; the "face" region has
face 2.0, house 0.5 in every subject; the "null" region has no effect.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from glmflow import load_model, make_synthetic_dataset, run_participant_level
from glmflow.core.model import GroupSpec

FIRST_LEVEL = Path(__file__).resolve().parents[1] / "glmflow/data/models/task_information.json"
SPACE = "space-MNI152NLin2009cAsym"


def root_dir() -> Path:
    """The examples' folder: the first command-line argument, or a fixed temporary one."""
    return Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/glmflow-group-examples").absolute()


def first_level(root: Path) -> tuple[Path, Path]:
    """Make the dataset (once) and run the participant level (cached); return (bids, out)."""
    bids, out = root / "bids", root / "derivatives"
    if not bids.exists():
        make_synthetic_dataset(bids, n_subjects=8, n_runs=1, n_volumes=80)
    run_participant_level(
        bids_dir=bids, output_dir=out, model=FIRST_LEVEL, work_dir=root / "work",
        smoothing_fwhm=0, n_procs=2,  # no smoothing: the truth is voxel by voxel
    )  # fmt: skip
    return bids, out


def group_model(root: Path, name: str, **group) -> Path:
    """A glmflow model file: the packaged first-level model plus this ``group`` section."""
    spec = dataclasses.replace(load_model(FIRST_LEVEL), group=GroupSpec.from_dict(group))
    path = root / f"{name}.json"
    path.write_text(spec.to_json())
    return path


def subject_maps(out: Path, contrast: str, n_subjects: int = 8) -> list[Path]:
    """The subject-level effect maps of one first-level contrast label."""
    return [
        out / "glmflow" / f"sub-{i:02d}" / "func"
        / f"sub-{i:02d}_task-faces_{SPACE}_contrast-{contrast}_stat-effect_statmap.nii.gz"
        for i in range(1, n_subjects + 1)
    ]  # fmt: skip


def group_map(out: Path, label: str, stat: str, desc: str | None = None) -> Path:
    extra = f"_desc-{desc}" if desc else ""
    return (
        out / "glmflow" / f"task-faces_{SPACE}_contrast-{label}_stat-{stat}{extra}_statmap.nii.gz"
    )


def region_mean(bids: Path, image, region: str) -> float:
    """Mean of a map (path or image) in one truth region of the synthetic dataset."""
    mask = nib.load(bids / "derivatives" / "truth" / f"desc-{region}_mask.nii.gz").get_fdata()
    data = (nib.load(image) if isinstance(image, str | Path) else image).get_fdata()
    return float(np.mean(data[mask > 0]))
