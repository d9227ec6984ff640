"""BuildDesignMatrix: one run's design matrix, its column roles and its picture."""

from __future__ import annotations

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from glmflow.core.design import DRIFT_MODELS, HRF_MODELS, build_design_matrix, write_design
from glmflow.core.model import DesignSpec


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


class _BuildDesignMatrixOutputSpec(TraitedSpec):
    design_file = File(exists=True, desc="design.tsv: one column per regressor, design order")
    sidecar_file = File(
        exists=True, desc='design.json: {"FrameTimes": [s, ...], "Roles": {column: role}}'
    )
    plot_file = File(desc="design.svg: picture of the design (undefined when plot is False)")


class BuildDesignMatrix(SimpleInterface):
    """Build one run's design matrix with glmflow.core.design.build_design_matrix."""

    input_spec = _BuildDesignMatrixInputSpec
    output_spec = _BuildDesignMatrixOutputSpec

    def _run_interface(self, runtime):
        inputs = self.inputs
        events = inputs.events_file if isdefined(inputs.events_file) else None
        confounds = inputs.confounds_file if isdefined(inputs.confounds_file) else None
        spec = DesignSpec(  # validated here, once, as everywhere else
            hrf_model=inputs.hrf_model,
            drift_model=inputs.drift_model,
            high_pass=inputs.high_pass,
            drift_order=inputs.drift_order,
            fir_delays=tuple(inputs.fir_delays) if isdefined(inputs.fir_delays) else (),
            min_onset=inputs.min_onset,
            oversampling=inputs.oversampling,
        )
        design, roles = build_design_matrix(
            events,
            confounds,
            spec,
            n_volumes=inputs.n_volumes,
            tr=inputs.tr,
            slice_time_ref=inputs.slice_time_ref,
        )
        design_tsv, sidecar, plot_path = write_design(design, roles, runtime.cwd, plot=inputs.plot)
        self._results["design_file"] = str(design_tsv)
        self._results["sidecar_file"] = str(sidecar)
        if plot_path is not None:
            self._results["plot_file"] = str(plot_path)
        return runtime
