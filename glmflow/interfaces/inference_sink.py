"""InferenceSink: GroupInference's outputs placed under their BIDS names."""

from __future__ import annotations

import json

from nipype.interfaces.base import File, traits

from glmflow.core.group.outputs import stage_inference_derivatives
from glmflow.core.inference import INFERENCE_METHODS, LOGP_MAPS, PERMUTATION_STATS
from glmflow.interfaces.base import StagedSink, StagedSinkInputSpec, given, set_inputs


class _InferenceSinkInputSpec(StagedSinkInputSpec):
    contrast_name = traits.Str(mandatory=True, desc="output contrast name (names the files)")
    method = traits.Enum(*INFERENCE_METHODS, mandatory=True, desc="inference method used")
    permutation_stat = traits.Enum(
        *PERMUTATION_STATS, usedefault=True, desc="FWE map that decided significance"
    )
    thresholded_file = File(exists=True, mandatory=True, desc="GroupInference thresholded map")
    threshold = traits.Float(mandatory=True, desc="voxel threshold applied")
    clusters_file = File(exists=True, mandatory=True, desc="GroupInference clusters.tsv")
    logp_max_t_file = File(exists=True, desc="-log10 max-t FWE p map (permutation)")
    logp_max_size_file = File(exists=True, desc="-log10 cluster-size FWE p map")
    logp_max_mass_file = File(exists=True, desc="-log10 cluster-mass FWE p map")
    logp_max_tfce_file = File(exists=True, desc="-log10 TFCE FWE p map")
    tdp_file = File(exists=True, desc="true-discovery proportion map (tdp)")


class InferenceSink(StagedSink):
    """Stage GroupInference's outputs (glmflow.core.group.outputs.stage_inference_derivatives)."""

    input_spec = _InferenceSinkInputSpec

    def _run_core(self, inputs, out_dir):
        logp = set_inputs(inputs, (f"{key}_file" for key in LOGP_MAPS.values()))
        written, staged, manifest = stage_inference_derivatives(
            inputs.output_dir,
            stage_dir=out_dir,
            entities=json.loads(inputs.entities),
            contrast=inputs.contrast_name,
            method=inputs.method,
            stat="t" if inputs.method == "permutation" else "z",
            thresholded_file=inputs.thresholded_file,
            clusters_file=inputs.clusters_file,
            threshold=inputs.threshold,
            permutation_stat=inputs.permutation_stat,
            logp_files={name.removesuffix("_file"): path for name, path in logp.items()},
            tdp_file=given(inputs.tdp_file),
            metadata=json.loads(inputs.metadata),
        )
        return self._staged(written, staged, manifest)
