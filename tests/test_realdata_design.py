"""ds011 tone counting: our design against the designs SPM12 and FSL FEAT built.

SPM (``SPM.mat``): canonical HRF, TR 2 s, 104 scans, high-pass 128 s, microtime resolution
fmri_t = 16 with onset fmri_t0 = 8, i.e. regressors sampled half-way through each TR, which
is slice_time_ref = fmri_t0 / fmri_t = 0.5. ``SPM.xX.X`` holds the unfiltered regressors
and a constant; the high-pass is the DCT basis ``SPM.xX.K.X0``.

FSL (``design.mat``): FEAT's Gamma HRF (``convolve 2``, phase 0), demeaned and
high-pass filtered at 60 s, so only a looser agreement is expected.

Measured (nilearn 0.14.1): SPM r = 0.99971 (tone counting) and 0.99940 (probe), amplitude
ratio SPM/ours 1.031 and 1.045; FSL r = 0.972 and 0.964. With slice_time_ref = 0 the SPM
correlations drop to 0.988 and 0.947.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.io

from glmflow.core.design import build_design_matrix
from glmflow.core.model import DesignSpec

pytestmark = pytest.mark.realdata

EVENTS = "bids-examples/ds011/sub-01/func/sub-01_task-tonecounting_events.tsv"


@pytest.fixture(scope="module")
def spm(realdata):
    path = realdata / "ds011-spm-fsl" / "spm" / "SPM.mat"
    return scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)["SPM"]


@pytest.fixture(scope="module")
def events(realdata):
    return pd.read_csv(realdata / EVENTS, sep="\t")


def _trial_type_with_onsets(events: pd.DataFrame, onsets) -> str:
    """The trial type whose onsets are these (the events TSV rounds them to 1 ms)."""
    onsets = np.sort(np.atleast_1d(onsets))
    for trial_type, rows in events.groupby("trial_type"):
        ours = np.sort(rows["onset"].to_numpy())
        if ours.shape == onsets.shape and np.allclose(ours, onsets, atol=1e-3):
            return trial_type
    raise AssertionError(f"no trial type has onsets {onsets[:3]}...")


def _spm_design(spm, events, slice_time_ref):
    design, roles = build_design_matrix(
        events,
        design=DesignSpec(hrf_model="spm", high_pass=1 / float(spm.xX.K.HParam)),
        n_volumes=int(spm.nscan),
        tr=float(spm.xY.RT),
        slice_time_ref=slice_time_ref,
    )
    return design, roles


def _spm_columns(spm, events) -> dict[str, int]:
    # SPM.xX.name is truncated in this SPM.mat ('Sn(1) to*bf(1)'), so conditions are
    # matched on their onsets (SPM.Sess.U) and placed by SPM.Sess.col (1-based).
    conditions = np.atleast_1d(spm.Sess.U)
    columns = np.atleast_1d(spm.Sess.col) - 1
    pairs = zip(conditions, columns, strict=True)  # one basis function per condition
    return {_trial_type_with_onsets(events, u.ons): int(c) for u, c in pairs}


def test_microtime_onset_is_half_a_tr(spm):
    assert (spm.xBF.T, spm.xBF.T0, spm.xBF.name) == (16, 8, "hrf")
    assert spm.xX.X.shape == (104, 3)


def test_task_columns_match_spm(spm, events):
    design, roles = _spm_design(spm, events, slice_time_ref=spm.xBF.T0 / spm.xBF.T)
    columns = _spm_columns(spm, events)
    assert sorted(columns) == ["tone counting", "tone counting probe"]
    for trial_type, column in columns.items():
        ours, theirs = design[trial_type].to_numpy(), spm.xX.X[:, column]
        assert roles[trial_type] == "condition"
        assert np.corrcoef(ours, theirs)[0, 1] >= 0.999, trial_type
        # Same amplitude units (both HRFs have unit sum): SPM's betas are ours within 5 %.
        ratio = ours @ theirs / (ours @ ours)
        assert 0.95 <= ratio <= 1.05, (trial_type, ratio)


def test_sampling_at_volume_start_fits_spm_worse(spm, events):
    start, _ = _spm_design(spm, events, slice_time_ref=0.0)
    middle, _ = _spm_design(spm, events, slice_time_ref=0.5)
    for trial_type, column in _spm_columns(spm, events).items():
        r_start = np.corrcoef(start[trial_type], spm.xX.X[:, column])[0, 1]
        r_middle = np.corrcoef(middle[trial_type], spm.xX.X[:, column])[0, 1]
        assert r_start < 0.99 < r_middle, trial_type


def test_cosine_drifts_span_spm_high_pass_filter(spm, events):
    design, roles = _spm_design(spm, events, slice_time_ref=0.5)
    ours = design[[c for c, r in roles.items() if r in ("drift", "constant")]].to_numpy()
    assert ours.shape[1] == spm.xX.K.X0.shape[1] + 1  # + the constant SPM keeps in xX.X
    residual = spm.xX.K.X0 - ours @ np.linalg.lstsq(ours, spm.xX.K.X0, rcond=None)[0]
    assert np.abs(residual).max() < 1e-12


def test_task_columns_resemble_fsl(realdata, spm, events):
    fsl = realdata / "ds011-spm-fsl" / "fsl"
    matrix = np.loadtxt(fsl / "design.mat", skiprows=5)
    assert matrix.shape == (104, 2)
    design, _ = _spm_design(spm, events, slice_time_ref=0.5)
    for column in range(2):
        timing = np.loadtxt(fsl / "custom_timing_files" / f"ev{column + 1}.txt", ndmin=2)
        trial_type = _trial_type_with_onsets(events, timing[:, 0])
        # FEAT convolves with its own gamma HRF and high-passes at 60 s: a loose bound.
        assert np.corrcoef(design[trial_type], matrix[:, column])[0, 1] >= 0.95, trial_type
