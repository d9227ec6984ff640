"""A BIDS Stats Model version of the packaged faces model finds the planted effects."""

from __future__ import annotations

from importlib.resources import files

import nibabel as nib
import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_faces_bsm_finds_the_planted_effects(tmp_path):
    from glmflow.data import make_synthetic_dataset
    from glmflow.runners.bsm import run_bids_stats_model

    dataset = make_synthetic_dataset(tmp_path / "ds", n_subjects=4, n_runs=2)
    model = files("glmflow.data") / "models" / "faces_smdl.json"
    result = run_bids_stats_model(
        bids_dir=dataset, output_dir=tmp_path / "out", model=model, work_dir=tmp_path / "work"
    )
    folder = result.output_dir / "node-dataset"
    effect = nib.load(folder / "contrast-faceGtHouse_stat-effect_statmap.nii.gz").get_fdata()
    truth = dataset / "derivatives" / "truth"
    # face - house in percent signal change: +1.5 (face region), -1.5 (house), 0 (null, both)
    for region, expected in (("face", 1.5), ("house", -1.5), ("null", 0.0), ("both", 0.0)):
        mask = nib.load(truth / f"desc-{region}_mask.nii.gz").get_fdata() > 0
        assert abs(effect[mask].mean() - expected) < 0.3, (region, effect[mask].mean())
    z = nib.load(folder / "contrast-faceGtHouse_stat-z_statmap.nii.gz").get_fdata()
    face = nib.load(truth / "desc-face_mask.nii.gz").get_fdata() > 0
    assert np.mean(z[face]) > 2
    assert len(list(result.output_dir.glob("node-subject/sub-*/*_stat-z_statmap.nii.gz"))) == 4
