"""FitFirstLevel: fit one run's GLM on its masked data and save the fit."""

from __future__ import annotations

from nipype.interfaces.base import BaseInterfaceInputSpec, File, TraitedSpec, traits

from glmflow.core.glm import NOISE_MODELS, fit_run_files
from glmflow.interfaces.base import CoreInterface, given


class _FitFirstLevelInputSpec(BaseInterfaceInputSpec):
    data_file = File(
        exists=True, mandatory=True, desc="masked BOLD .npy (n_volumes, n_voxels), MaskAndSmooth"
    )
    design_file = File(
        exists=True,
        mandatory=True,
        desc="design.tsv: one column per regressor (write_design)",
    )
    sample_mask_file = File(
        exists=True,
        desc='sample_mask.json {"sample_mask": [kept volume indices] | null, "n_volumes": N}; '
        "undefined keeps every volume",
    )
    noise_model = traits.Enum(*NOISE_MODELS, usedefault=True, desc="temporal noise model")
    signal_scaling = traits.Either(
        traits.Bool(),
        traits.Int(),
        default=0,
        usedefault=True,
        desc="0: percent signal change of each voxel's mean (nilearn default); False: none",
    )
    minimize_memory = traits.Bool(
        True, usedefault=True, desc="False also writes residuals, predicted and r-square maps"
    )
    mask_file = File(
        exists=True, mandatory=True, desc="mask the data were read with (for the output maps)"
    )


class _FitFirstLevelOutputSpec(TraitedSpec):
    fit_file = File(exists=True, desc="fit.npz (glmflow.core.glm.load_fit)")
    dof = traits.Float(desc="residual degrees of freedom (n_kept_volumes - rank(design))")
    residuals_file = File(desc="4D residuals NIfTI (only when minimize_memory is False)")
    predicted_file = File(desc="4D predicted time series NIfTI (minimize_memory False)")
    r_square_file = File(desc="3D r-square NIfTI (minimize_memory False)")


class FitFirstLevel(CoreInterface):
    """Fit with glmflow.core.glm.fit_run_files (fit_glm: nilearn FirstLevelModel's method)."""

    input_spec = _FitFirstLevelInputSpec
    output_spec = _FitFirstLevelOutputSpec

    def _run_core(self, inputs, out_dir):
        return fit_run_files(
            inputs.data_file,
            inputs.design_file,
            mask_file=inputs.mask_file,
            out_dir=out_dir,
            sample_mask_file=given(inputs.sample_mask_file),
            noise_model=inputs.noise_model,
            signal_scaling=inputs.signal_scaling,
            minimize_memory=inputs.minimize_memory,
        )
