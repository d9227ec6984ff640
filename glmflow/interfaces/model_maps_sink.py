"""ModelMapsSink: a group fit's residual, predicted and r-squared maps under BIDS names."""

from __future__ import annotations

import json

from nipype.interfaces.base import BaseInterfaceInputSpec, File, traits

from glmflow.core.group.outputs import GROUP_MODEL_MAPS, stage_model_maps
from glmflow.interfaces.base import CoreInterface, staged_outputs
from glmflow.interfaces.inference_sink import StagedSinkOutputSpec


class _ModelMapsSinkInputSpec(BaseInterfaceInputSpec):
    output_dir = traits.Str(mandatory=True, desc="root of the derivatives dataset to write")
    entities = traits.Str(mandatory=True, desc="JSON object of pybids entity names -> labels")
    contrast_name = traits.Str(mandatory=True, desc="the modelled first-level contrast")
    residuals_file = File(exists=True, mandatory=True, desc="FitGroupModel residuals (4D)")
    predicted_file = File(exists=True, mandatory=True, desc="FitGroupModel predicted (4D)")
    r_square_file = File(exists=True, mandatory=True, desc="FitGroupModel r-squared map")
    metadata = traits.Str("{}", usedefault=True, desc="JSON object written into every sidecar")


class ModelMapsSink(CoreInterface):
    """Stage a group fit's model maps with glmflow.core.group.outputs.stage_model_maps."""

    input_spec = _ModelMapsSinkInputSpec
    output_spec = StagedSinkOutputSpec

    def _run_core(self, inputs, out_dir):
        written, staged, manifest = stage_model_maps(
            inputs.output_dir,
            stage_dir=out_dir,
            entities=json.loads(inputs.entities),
            contrast=inputs.contrast_name,
            maps={key: getattr(inputs, f"{key}_file") for key in GROUP_MODEL_MAPS},
            metadata=json.loads(inputs.metadata),
        )
        return staged_outputs(written, staged, manifest)
