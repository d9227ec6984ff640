"""BuildDesignMatrix: one run's design matrix, its column roles and its picture."""

from __future__ import annotations

import dataclasses

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    TraitedSpec,
    traits,
)

from glmflow.core.design import DRIFT_MODELS, HRF_MODELS, build_design_files
from glmflow.core.model import DesignSpec
from glmflow.interfaces.base import CoreInterface, given

_SPEC_FIELDS = [field.name for field in dataclasses.fields(DesignSpec)]


class _BuildDesignMatrixInputSpec(BaseInterfaceInputSpec):
    events_file = File(
        exists=True,
        desc="tidy events TSV (parse_events output: onset, duration, trial_type, modulation, "
        "role); leave undefined for a design without events (resting state, confounds only)",
    )
    confounds_file = File(
        exists=True,
        desc="confounds TSV, one row per volume, numeric, no n/a (select_confounds output); "
        "an empty file means no confounds",
    )
    n_volumes = traits.Int(mandatory=True, desc="number of volumes in the run")
    tr = traits.Float(mandatory=True, desc="repetition time in seconds")
    slice_time_ref = traits.Float(
        0.0,
        usedefault=True,
        desc="fraction of the TR at which the model is sampled (0 = start of the volume, "
        "0.5 = SPM's default microtime onset fmri_t0 = fmri_t / 2)",
    )
    hrf_model = traits.Enum(*HRF_MODELS, usedefault=True, desc="haemodynamic response model")
    drift_model = traits.Enum(
        *DRIFT_MODELS, None, usedefault=True, desc="drift model (None: constant only)"
    )
    high_pass = traits.Float(0.01, usedefault=True, desc="cosine drift cut-off frequency (Hz)")
    drift_order = traits.Int(1, usedefault=True, desc="order of the polynomial drift")
    fir_delays = InputMultiObject(
        traits.Int, usedefault=True, desc="FIR delays in volumes (only with hrf_model 'fir')"
    )
    min_onset = traits.Float(
        -24.0, usedefault=True, desc="events starting earlier than this (s) are not modelled"
    )
    oversampling = traits.Int(50, usedefault=True, desc="temporal oversampling of convolution")
    plot = traits.Bool(True, usedefault=True, desc="also draw the design as an SVG")


class DesignFilesOutputSpec(TraitedSpec):
    """A run design's files: BuildDesignMatrix's outputs, and BuildRunDesign's first ones."""

    design_file = File(exists=True, desc="design.tsv: one column per regressor, design order")
    sidecar_file = File(
        exists=True, desc='design.json: {"FrameTimes": [s, ...], "Roles": {column: role}}'
    )
    plot_file = File(desc="design.svg: picture of the design (undefined when plot is False)")


class BuildDesignMatrix(CoreInterface):
    """Build and write one run's design with glmflow.core.design.build_design_files."""

    input_spec = _BuildDesignMatrixInputSpec
    output_spec = DesignFilesOutputSpec

    def _run_core(self, inputs, out_dir):
        # the spec's fields are this interface's traits; the spec validates them, once
        options = {name: getattr(inputs, name) for name in _SPEC_FIELDS}
        # nipype turns an empty list into Undefined
        options["fir_delays"] = tuple(given(options["fir_delays"], ()))
        spec = DesignSpec(**options)
        run = {name: getattr(inputs, name) for name in ("n_volumes", "tr", "slice_time_ref")}
        return build_design_files(
            given(inputs.events_file), given(inputs.confounds_file), spec,
            out_dir=out_dir, plot=inputs.plot, **run,
        )  # fmt: skip
