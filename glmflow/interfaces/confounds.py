"""SelectConfounds: one run's nuisance regressors and sample mask from fMRIPrep confounds."""

from __future__ import annotations

from dataclasses import fields

from nipype.interfaces.base import BaseInterfaceInputSpec, File, TraitedSpec, traits

from glmflow.core.confounds import (
    COMPCOR,
    LEVELS,
    STRATEGIES,
    select_confounds,
    write_confounds,
)
from glmflow.core.model import ConfoundsSpec
from glmflow.interfaces.base import CoreInterface, given, set_inputs


def _level(name: str):
    return traits.Enum(
        "full" if name == "motion" else "basic",
        *LEVELS,
        usedefault=True,
        desc=f"expansion of the {name} strategy (nilearn load_confounds '{name}')",
    )


class _SelectConfoundsInputSpec(BaseInterfaceInputSpec):
    confounds_file = File(
        exists=True, mandatory=True, desc="fMRIPrep *_desc-confounds_timeseries.tsv"
    )
    bold_file = File(
        exists=True, desc="the run's BOLD NIfTI; when given its volume count is checked"
    )
    columns = traits.List(
        traits.Str, desc="column names or fnmatch wildcards (e.g. 'trans_*'), kept as regressors"
    )
    optional_columns = traits.List(
        traits.Str, desc="wildcards kept as regressors that may match nothing (warns)"
    )
    strategy = traits.List(
        traits.Enum(*STRATEGIES), desc="nilearn load_confounds strategies (censor via the mask)"
    )
    motion = _level("motion")
    wm_csf = _level("wm_csf")
    global_signal = _level("global_signal")
    compcor = traits.Enum(*COMPCOR, usedefault=True, desc="compcor variant (nilearn)")
    n_compcor = traits.Either(
        traits.Enum("all"),
        traits.Range(low=1),
        default="all",
        usedefault=True,
        desc="number of compcor components, or 'all'",
    )
    fd_threshold = traits.Float(
        0.5, usedefault=True, desc="scrub: framewise displacement threshold (mm)"
    )
    std_dvars_threshold = traits.Float(
        1.5, usedefault=True, desc="scrub: standardised DVARS threshold"
    )
    scrub = traits.Int(
        5, usedefault=True, desc="scrub: minimum length (volumes) of a kept segment"
    )
    demean = traits.Bool(True, usedefault=True, desc="demean over kept volumes, as nilearn")


class _SelectConfoundsOutputSpec(TraitedSpec):
    confounds_file = File(
        exists=True,
        desc="confounds.tsv: one column per regressor, one row per volume, no n/a "
        "(empty file: no regressors)",
    )
    sample_mask_file = File(
        exists=True,
        desc='sample_mask.json: {"sample_mask": [kept volume indices] or null, "n_volumes": N}',
    )


class SelectConfounds(CoreInterface):
    """Select one run's confounds with glmflow.core.confounds.select_confounds."""

    input_spec = _SelectConfoundsInputSpec
    output_spec = _SelectConfoundsOutputSpec

    def _run_core(self, inputs, out_dir):
        confounds, sample_mask = select_confounds(
            inputs.confounds_file,
            bold_file=given(inputs.bold_file),
            **set_inputs(inputs, (f.name for f in fields(ConfoundsSpec))),
        )
        tsv, mask_json = write_confounds(confounds, sample_mask, out_dir)
        return {"confounds_file": str(tsv), "sample_mask_file": str(mask_json)}
