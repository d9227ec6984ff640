"""BuildRunDesign: one run's design from its events and confounds files, in one node.

Parsing the events, selecting the confounds and building the design are one node: each is
cheap, a model edit of any of them reruns the design anyway, and three nodes cost three
times Nipype's per-node bookkeeping (hashing, pickling, a worker round trip) per run.
"""

from __future__ import annotations

import json

from nipype.interfaces.base import BaseInterfaceInputSpec, File, OutputMultiObject, traits

from glmflow.core.design.run import write_run_design
from glmflow.core.model import ConfoundsSpec, DesignSpec, EventsSpec
from glmflow.interfaces.base import CoreInterface, given
from glmflow.interfaces.design import DesignFilesOutputSpec

_PARTS = {"events": EventsSpec, "confounds": ConfoundsSpec, "design": DesignSpec}


class _BuildRunDesignInputSpec(BaseInterfaceInputSpec):
    events_file = File(exists=True, mandatory=True, desc="BIDS *_events.tsv of one run")
    confounds_file = File(
        exists=True, mandatory=True, desc="fMRIPrep *_desc-confounds_timeseries.tsv"
    )
    bold_file = File(
        exists=True, desc="the run's BOLD NIfTI; when given its volume count is checked"
    )
    n_volumes = traits.Int(mandatory=True, desc="number of volumes in the run")
    tr = traits.Float(mandatory=True, desc="repetition time in seconds")
    slice_time_ref = traits.Float(
        0.0, usedefault=True, desc="fraction of the TR at which the model is sampled"
    )
    model_parts = traits.Str(
        mandatory=True,
        desc='canonical JSON {"events": ..., "confounds": ..., "design": ...}: the parts of '
        "the model (ModelSpec.to_dict) the design depends on, and nothing else",
    )
    plot = traits.Bool(True, usedefault=True, desc="also draw the design as an SVG")
    memo_dir = traits.Str(
        nohash=True,
        desc="glmflow's memo folder: recall the design the pre-flight built there "
        "(design_from_files); not hashed, the same design is built without it",
    )


class _BuildRunDesignOutputSpec(DesignFilesOutputSpec):
    """BuildDesignMatrix's outputs, the sample mask and the list the sink writes."""

    sample_mask_file = File(
        exists=True,
        desc='sample_mask.json: {"sample_mask": [kept volume indices] or null, "n_volumes": N}',
    )
    design_files = OutputMultiObject(
        File(exists=True), desc="[design.tsv, design.json, design.svg]: what the sink writes"
    )


def model_parts(spec) -> str:
    """The ``model_parts`` input of a run's design: its spec parts as canonical JSON."""
    return json.dumps({name: getattr(spec, name).to_dict() for name in _PARTS}, sort_keys=True)


class BuildRunDesign(CoreInterface):
    """Build and write one run's design with glmflow.core.design.run.write_run_design."""

    input_spec = _BuildRunDesignInputSpec
    output_spec = _BuildRunDesignOutputSpec

    def _run_core(self, inputs, out_dir):
        parts = json.loads(inputs.model_parts)
        specs = {name: kind.from_dict(parts[name]) for name, kind in _PARTS.items()}
        return write_run_design(
            inputs.events_file, inputs.confounds_file, out_dir=out_dir, plot=inputs.plot,
            n_volumes=inputs.n_volumes, tr=inputs.tr, slice_time_ref=inputs.slice_time_ref,
            bold_file=given(inputs.bold_file), memo_dir=given(inputs.memo_dir), **specs,
        )  # fmt: skip
