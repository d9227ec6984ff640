"""nilearn's ``load_confounds_strategy`` presets in a connectivity model (one short run)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from glmflow.core.rest.run import connectivity_run_files
from glmflow.core.rest.spec import connectivity_spec
from glmflow.data.rest import add_resting_state
from glmflow.errors import ConfoundsError, ModelSpecError

SPACE = "space-MNI152NLin2009cAsym"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return add_resting_state(tmp_path_factory.mktemp("denoise") / "bids", n_subjects=1,
                             n_volumes=100)  # fmt: skip


def _spec(root, confounds: dict):
    truth = root / "derivatives/truth"
    return connectivity_spec({"connectivity": {
        "name": "rest", "task": "rest", "fisher_z": False, "confounds": confounds,
        "atlas": {"labels_img": str(truth / "atlas-rest_dseg.nii.gz"),
                  "labels_tsv": str(truth / "atlas-rest_dseg.tsv"), "label": "synth"},
    }}, source="rest.json")  # fmt: skip


def _files(root) -> dict:
    func = root / "derivatives/fmriprep/sub-01/func"
    stem = "sub-01_task-rest_run-1"
    return {"bold_file": str(func / f"{stem}_{SPACE}_desc-preproc_bold.nii.gz"),
            "mask_file": str(func / f"{stem}_{SPACE}_desc-brain_mask.nii.gz"),
            "confounds_file": str(func / f"{stem}_desc-confounds_timeseries.tsv"),
            "tr": 2.0}  # fmt: skip


@pytest.mark.parametrize("preset", ["simple", "scrubbing"])
def test_preset_equals_nilearn_load_confounds_strategy(root, tmp_path, preset):
    from nilearn.interfaces.fmriprep import load_confounds_strategy
    from nilearn.maskers import NiftiLabelsMasker

    files = _files(root)
    result = connectivity_run_files(**files, spec=_spec(root, {"denoise_strategy": preset}),
                                    out_dir=tmp_path)  # fmt: skip
    confounds, sample_mask = load_confounds_strategy(files["bold_file"], denoise_strategy=preset)
    record = json.loads(open(result["record"]).read())
    assert record["Denoising"]["confounds"] == {"denoise_strategy": preset}
    assert record["Denoising"]["confound_columns"] == list(confounds.columns)
    assert any(c.startswith("cosine") for c in confounds.columns)  # the high_pass part
    truth = json.loads((root / "derivatives/truth/rest_truth.json").read_text())
    spikes = truth["runs"]["sub-01_task-rest_run-1"]["spikes"]
    if preset == "scrubbing":
        assert set(spikes) <= set(record["CensoredVolumes"])
        assert record["CensoredVolumes"] == sorted(set(range(100)) - set(sample_mask.tolist()))
    else:
        assert sample_mask is None and record["CensoredVolumes"] == []
    masker = NiftiLabelsMasker(root / "derivatives/truth/atlas-rest_dseg.nii.gz",
                               mask_img=files["mask_file"], t_r=2.0, detrend=True,
                               standardize="zscore_sample", high_pass=0.01,
                               low_pass=0.08)  # fmt: skip
    theirs = masker.fit_transform(files["bold_file"], confounds=confounds, sample_mask=sample_mask)
    ours = pd.read_csv(result["timeseries"], sep="\t").to_numpy()
    assert ours.shape == theirs.shape == (100 - len(record["CensoredVolumes"]), 8)
    assert np.abs(ours - theirs).max() < 1e-6


def test_preset_options_are_passed(root, tmp_path):
    spec = _spec(root, {"denoise_strategy": "scrubbing", "fd_threshold": 5.0,
                        "std_dvars_threshold": 50.0, "scrub": 0})  # fmt: skip
    result = connectivity_run_files(**_files(root), spec=spec, out_dir=tmp_path)
    record = json.loads(open(result["record"]).read())
    assert record["CensoredVolumes"] == []  # thresholds above every spike


@pytest.mark.parametrize(
    ("confounds", "message"),
    [
        ({"denoise_strategy": "ica_aroma"},
         """'confounds.denoise_strategy' "ica_aroma" needs fMRIPrep's ICA-AROMA-denoised BOLD """
         "(desc-smoothAROMAnonaggr), which glmflow does not read; use one of \"simple\", "
         '"scrubbing", "compcor"'),
        ({"denoise_strategy": "simpel"},
         """'confounds.denoise_strategy' must be one of "simple", "scrubbing", "compcor"; """
         'got "simpel"'),
        ({"denoise_strategy": "simple", "fd_threshold": 0.2},
         """'confounds.fd_threshold' is not an option of the "simple" denoise_strategy (its """
         "options: motion, wm_csf, global_signal, demean); remove it"),
        ({"denoise_strategy": "simple", "motion": "all"},
         """'confounds.motion' must be one of "basic", "power2", "derivatives", "full"; """
         'got "all"'),
    ],
)  # fmt: skip
def test_bad_preset_is_one_line(root, confounds, message):
    with pytest.raises(ModelSpecError) as err:
        _spec(root, confounds)
    assert str(err.value) == message + " (in rest.json)"


def test_compcor_without_compcor_columns_is_one_line(root, tmp_path):
    spec = _spec(root, {"denoise_strategy": "compcor"})
    with pytest.raises(ConfoundsError) as err:
        connectivity_run_files(**_files(root), spec=spec, out_dir=tmp_path)
    text = str(err.value)
    assert "\n" not in text
    assert re.match(r"nilearn load_confounds_strategy cannot apply 'compcor' to \S+"
                    r"sub-01_task-rest_run-1_desc-confounds_timeseries\.tsv: ", text)  # fmt: skip
