"""Resting-state interfaces: one run's connectivity, a subject's runs combined, the sink."""

from __future__ import annotations

import json

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    TraitedSpec,
    traits,
)

from glmflow.core.rest.run import (
    combine_subject_files,
    connectivity_run_files,
    stage_connectivity,
)
from glmflow.core.rest.spec import connectivity_spec
from glmflow.interfaces.base import CoreInterface, StagedSink, StagedSinkInputSpec


class _RunInputSpec(BaseInterfaceInputSpec):
    bold_file = File(exists=True, mandatory=True, desc="preprocessed 4D BOLD")
    mask_file = File(exists=True, mandatory=True, desc="the run's brain mask")
    confounds_file = File(exists=True, mandatory=True, desc="fMRIPrep confounds TSV")
    tr = traits.Float(mandatory=True, desc="repetition time (s) of the run")
    model = traits.Str(mandatory=True, desc="JSON of the connectivity model (absolute paths)")
    # the model names these files by path only: as inputs, Nipype hashes them, so that an
    # image or a table edited at the same path reruns the node
    atlas_file = File(
        exists=True, desc="the model's labels_img or maps_img (hashed, read through model)"
    )
    labels_file = File(exists=True, desc="the model's labels_tsv (hashed, read through model)")


class _ResultOutputSpec(TraitedSpec):
    result_file = File(exists=True, desc="result.json: the node's files by kind, and its record")


class ComputeRunConnectivity(CoreInterface):
    """Confounds, one read of the BOLD, cleaning, matrices and seed maps of one run."""

    input_spec = _RunInputSpec
    output_spec = _ResultOutputSpec

    def _run_core(self, inputs, out_dir):
        result = connectivity_run_files(
            bold_file=inputs.bold_file, mask_file=inputs.mask_file,
            confounds_file=inputs.confounds_file, tr=inputs.tr,
            spec=connectivity_spec(json.loads(inputs.model)), out_dir=out_dir,
        )  # fmt: skip
        return {"result_file": _write(out_dir, result)}


def _write(out_dir: str, result: dict) -> str:
    path = f"{out_dir}/result.json"
    with open(path, "w") as f:
        json.dump(result, f, indent=2, sort_keys=True)
    return path


class _CombineInputSpec(BaseInterfaceInputSpec):
    result_files = InputMultiObject(File(exists=True), mandatory=True, desc="runs' result.json")
    plots = traits.Bool(True, usedefault=True, desc="draw each subject matrix (SVG)")


class CombineRunConnectivity(CoreInterface):
    """A subject's matrices: the mean over its runs' (result.json with the runs' record)."""

    input_spec = _CombineInputSpec
    output_spec = _ResultOutputSpec

    def _run_core(self, inputs, out_dir):
        combined = combine_subject_files(list(inputs.result_files), out_dir, plots=inputs.plots)
        return {"result_file": _write(out_dir, combined)}


class _SinkInputSpec(StagedSinkInputSpec):
    level = traits.Enum("run", "subject", mandatory=True, desc="run or subject (runs combined)")
    result_file = File(exists=True, mandatory=True, desc="result.json of the run or combine node")
    matrices = traits.Bool(
        True, usedefault=True, desc="stage the matrices (False: the subject sink has them)"
    )


class ConnectivitySink(StagedSink):
    """Stage time series, matrices and seed maps under their BIDS connectivity names."""

    input_spec = _SinkInputSpec

    def _run_core(self, inputs, out_dir):
        result = json.load(open(inputs.result_file))
        metadata = {**json.loads(inputs.metadata), **json.load(open(result["record"]))}
        written, manifest = stage_connectivity(
            output_dir=inputs.output_dir, entities=json.loads(inputs.entities),
            level=inputs.level, result=result, metadata=metadata, stage_dir=out_dir,
            matrices=inputs.matrices,
        )  # fmt: skip
        return self._staged(written, [], manifest)
