"""FitFirstLevel: fit one run's GLM on its masked data and save the fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from glmflow.core.bold import save_nifti, unmask
from glmflow.core.design import read_design
from glmflow.core.glm import NOISE_MODELS, fit_glm, read_sample_mask, save_fit


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


class FitFirstLevel(SimpleInterface):
    """Fit with glmflow.core.glm.fit_glm (nilearn FirstLevelModel's method)."""

    input_spec = _FitFirstLevelInputSpec
    output_spec = _FitFirstLevelOutputSpec

    def _run_interface(self, runtime):
        inputs = self.inputs
        # memory-mapped: the fit reads voxel chunks, so the array need not be resident
        data = np.load(inputs.data_file, mmap_mode="r")
        sample_mask = None
        if isdefined(inputs.sample_mask_file):
            sample_mask = read_sample_mask(inputs.sample_mask_file, data.shape[0])
        fit = fit_glm(
            data,
            read_design(inputs.design_file)[0],
            sample_mask=sample_mask,
            noise_model=inputs.noise_model,
            signal_scaling=inputs.signal_scaling,
            minimize_memory=inputs.minimize_memory,
            source=inputs.design_file,
        )
        cwd = Path(runtime.cwd)
        self._results["fit_file"] = str(save_fit(fit, cwd / "fit.npz"))
        self._results["dof"] = fit.df_residuals
        if not inputs.minimize_memory:
            for key in ("residuals", "predicted", "r_square"):
                img = unmask(getattr(fit, key), inputs.mask_file)
                self._results[f"{key}_file"] = str(save_nifti(img, cwd / f"{key}.nii.gz"))
        return runtime
