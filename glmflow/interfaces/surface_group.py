"""SurfaceGroupInference: one group contrast on surface subject maps, staged as BIDS maps."""

from __future__ import annotations

import json

from nipype.interfaces.base import File, InputMultiObject, traits

from glmflow.core.surface.group_level import surface_group_contrast_files
from glmflow.interfaces.base import StagedSink, StagedSinkInputSpec


class _SurfaceGroupInferenceInputSpec(StagedSinkInputSpec):
    effect_files = InputMultiObject(
        File(exists=True),
        mandatory=True,
        desc="subject effect maps in design row order: hemi-L .func.gii (hemi-R beside it) "
        "or .dscalar.nii",
    )
    right_files = InputMultiObject(
        File(exists=True), desc="the hemi-R maps beside effect_files (in the hash: read too)"
    )
    design_file = File(exists=True, mandatory=True, desc="group design TSV (label column)")
    contrast_name = traits.Str(mandatory=True, desc="output contrast name (names the files)")
    inference = traits.Str(
        mandatory=True,
        desc="JSON object: the group inference spec's keys and 'definition' (the contrast "
        "over the design columns)",
    )


class SurfaceGroupInference(StagedSink):
    """Fit, threshold and stage one surface group contrast
    (glmflow.core.surface.group_level.surface_group_contrast_files)."""

    input_spec = _SurfaceGroupInferenceInputSpec

    def _run_core(self, inputs, out_dir):
        written, staged, manifest = surface_group_contrast_files(
            list(inputs.effect_files),
            design_file=inputs.design_file,
            contrast=inputs.contrast_name,
            inference=json.loads(inputs.inference),
            entities=json.loads(inputs.entities),
            output_dir=inputs.output_dir,
            metadata=json.loads(inputs.metadata),
            out_dir=out_dir,
        )
        return self._staged(written, staged, manifest)
