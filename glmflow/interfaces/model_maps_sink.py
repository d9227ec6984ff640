"""ModelMapsSink: a group fit's residual, predicted and r-squared maps under BIDS names."""

from __future__ import annotations

import json

from nipype.interfaces.base import File, traits

from glmflow.core.group.outputs import GROUP_MODEL_MAPS, stage_model_maps
from glmflow.interfaces.base import StagedSink, StagedSinkInputSpec


class _ModelMapsSinkInputSpec(StagedSinkInputSpec):
    contrast_name = traits.Str(mandatory=True, desc="the modelled first-level contrast")
    residuals_file = File(exists=True, mandatory=True, desc="FitGroupModel residuals (4D)")
    predicted_file = File(exists=True, mandatory=True, desc="FitGroupModel predicted (4D)")
    r_square_file = File(exists=True, mandatory=True, desc="FitGroupModel r-squared map")


class ModelMapsSink(StagedSink):
    """Stage a group fit's model maps with glmflow.core.group.outputs.stage_model_maps."""

    input_spec = _ModelMapsSinkInputSpec

    def _run_core(self, inputs, out_dir):
        written, staged, manifest = stage_model_maps(
            inputs.output_dir,
            stage_dir=out_dir,
            entities=json.loads(inputs.entities),
            contrast=inputs.contrast_name,
            maps={key: getattr(inputs, f"{key}_file") for key in GROUP_MODEL_MAPS},
            metadata=json.loads(inputs.metadata),
        )
        return self._staged(written, staged, manifest)
