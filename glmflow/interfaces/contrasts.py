"""ComputeContrasts: t/F contrast maps of one run's fit, one NIfTI per contrast and statistic."""

from __future__ import annotations

import json
from typing import get_args

from nipype.interfaces.base import BaseInterfaceInputSpec, File, traits

from glmflow.core.contrast_maps import compute_contrast_maps
from glmflow.core.formula import MissingTerms
from glmflow.errors import ContrastError
from glmflow.interfaces.base import CoreInterface, given
from glmflow.interfaces.maps import MapListsOutputSpec


class _ComputeContrastsInputSpec(BaseInterfaceInputSpec):
    fit_file = File(exists=True, mandatory=True, desc="fit.npz from FitFirstLevel")
    mask_file = File(exists=True, mandatory=True, desc="mask the fitted data were read with")
    contrasts = traits.Str(
        mandatory=True,
        desc="JSON array of contrast objects {name, expressions | weights, stat_type}; "
        "hashed by value so editing a contrast reruns only this node",
    )
    missing_conditions = traits.Enum(
        *get_args(MissingTerms),
        usedefault=True,
        desc="a contrast naming a column absent from this run's design: 'error' stops, "
        "'drop' drops those terms (skipping the contrast if nothing is left) and records it",
    )
    run_record_file = File(
        exists=True,
        desc="JSON object added to every contrast's record (MaskAndSmooth's bold_record.json: "
        "the voxels left out of the mask), for the sidecars",
    )
    memo_dir = traits.Str(
        nohash=True,
        desc="folder remembering each contrast's maps: an edit recomputes only the contrasts "
        "that changed (glmflow.core.memo)",
    )


class _ComputeContrastsOutputSpec(MapListsOutputSpec):
    dof = traits.Float(desc="residual degrees of freedom of the fit")
    contrasts_json = File(
        exists=True,
        desc="contrasts.json: {name: {stat_type, weights, dropped, dof, skipped, effect, "
        "variance, stat, p, z (file paths)}} in the order given",
    )


class ComputeContrasts(CoreInterface):
    """Compute every contrast with glmflow.core.contrasts.compute_contrast."""

    input_spec = _ComputeContrastsInputSpec
    output_spec = _ComputeContrastsOutputSpec

    def _run_core(self, inputs, out_dir):
        try:
            contrasts = json.loads(inputs.contrasts)
        except ValueError as err:
            raise ContrastError(f"contrasts input is not valid JSON ({err})") from err
        if not isinstance(contrasts, list):
            raise ContrastError("contrasts input must be a JSON array of contrast objects")
        run_record = None
        if given(inputs.run_record_file):
            with open(inputs.run_record_file) as f:
                run_record = json.load(f)
        return compute_contrast_maps(
            inputs.fit_file,
            inputs.mask_file,
            contrasts,
            out_dir=out_dir,
            missing=inputs.missing_conditions,
            memo_dir=given(inputs.memo_dir),
            run_record=run_record,
        )
