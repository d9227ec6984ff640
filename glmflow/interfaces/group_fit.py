"""FitGroupModel: one group model fitted on subject maps, every contrast's maps written."""

from __future__ import annotations

from typing import get_args

from nipype.interfaces.base import BaseInterfaceInputSpec, File, InputMultiObject, traits

from glmflow.core.group.outputs import fit_group_model_files
from glmflow.core.model import GroupMethod
from glmflow.interfaces.base import CoreInterface, given
from glmflow.interfaces.maps import MapListsOutputSpec


class _FitGroupModelInputSpec(BaseInterfaceInputSpec):
    effect_files = InputMultiObject(
        File(exists=True),
        mandatory=True,
        desc="first-level effect maps (never z maps), one per design row, same order",
    )
    variance_files = InputMultiObject(
        File(exists=True), desc="first-level variance maps, same order (method 'fixed' only)"
    )
    design_file = File(
        exists=True,
        mandatory=True,
        desc="design TSV: numeric regressor columns, optional 'label' column of row names",
    )
    contrasts = traits.Str(
        mandatory=True,
        desc="JSON: {name: formula | weights | [formulas] | [[weights]]} or a list of "
        "{name, expressions | weights, stat_type} objects (the model-file form)",
    )
    contrasts_source = traits.Str(
        "the contrasts", usedefault=True, nohash=True, desc="file named in contrast errors"
    )
    method = traits.Enum(
        *get_args(GroupMethod),
        usedefault=True,
        desc="'ols': nilearn SecondLevelModel; 'fixed': precision-weighted fixed effects",
    )
    mask_file = File(exists=True, desc="group mask; nilearn computes one when unset")
    smoothing_fwhm = traits.Float(desc="FWHM (mm) of extra smoothing of the maps ('ols')")
    target_affine = traits.List(
        traits.Float, minlen=9, maxlen=16, desc="resample to this affine (9 or 16 numbers)"
    )
    target_shape = traits.List(traits.Int, minlen=3, maxlen=3, desc="resample to this shape")
    minimize_memory = traits.Bool(
        True, usedefault=True, desc="False: also write residuals, predicted, r-squared ('ols')"
    )
    dofs = traits.List(traits.Float, desc="first-level dofs ('fixed'); nilearn's 100 if unset")
    n_jobs = traits.Int(1, usedefault=True, nohash=True, desc="parallel jobs (nilearn)")


class _FitGroupModelOutputSpec(MapListsOutputSpec):
    mask_file = File(exists=True, desc="mask of the analysed voxels")
    residuals_file = File(desc="4D residuals, one volume per map (minimize_memory off)")
    predicted_file = File(desc="4D predicted maps (minimize_memory off)")
    r_square_file = File(desc="r-squared map (minimize_memory off)")
    contrasts_json = File(
        exists=True,
        desc="group_contrasts.json: {name: {stat_type, weights: {column: w} rows, effect, "
        "variance, stat, p, z (file paths)}} in the order given",
    )


class FitGroupModel(CoreInterface):
    """Fit a group model and write its maps (glmflow.core.group.outputs.fit_group_model_files)."""

    input_spec = _FitGroupModelInputSpec
    output_spec = _FitGroupModelOutputSpec

    def _run_core(self, inputs, out_dir):
        return fit_group_model_files(
            list(inputs.effect_files),
            inputs.design_file,
            contrasts=inputs.contrasts,
            contrasts_source=inputs.contrasts_source,
            out_dir=out_dir,
            fit_options={
                "method": inputs.method,
                "smoothing_fwhm": given(inputs.smoothing_fwhm),
                "target_affine": given(inputs.target_affine),
                "target_shape": given(inputs.target_shape),
                "minimize_memory": inputs.minimize_memory,
            },
            variance_files=given(inputs.variance_files),
            mask=given(inputs.mask_file),
            dofs=given(inputs.dofs),
            n_jobs=inputs.n_jobs,
        )
