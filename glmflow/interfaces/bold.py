"""MaskAndSmooth: read a BOLD run's in-mask time series (optionally smoothed) into a .npy."""

from __future__ import annotations

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from glmflow.core.bold import read_masked_bold, write_masked


class _MaskAndSmoothInputSpec(BaseInterfaceInputSpec):
    bold_file = File(exists=True, mandatory=True, desc="4D preprocessed BOLD (.nii or .nii.gz)")
    mask_file = File(exists=True, mandatory=True, desc="binary brain mask on the BOLD grid")
    smoothing_fwhm = traits.Float(
        desc="FWHM (mm) of the Gaussian applied to each volume before masking, as nilearn's "
        "smooth_img; undefined or 0 means no smoothing"
    )


class _MaskAndSmoothOutputSpec(TraitedSpec):
    data_file = File(
        exists=True, desc="bold_masked.npy: float32 array (n_volumes, n_voxels), mask C order"
    )
    mask_file = File(exists=True, desc="the mask the data were read with (passed through)")


class MaskAndSmooth(SimpleInterface):
    """Stream a BOLD run through glmflow.core.bold.read_masked_bold into runtime.cwd."""

    input_spec = _MaskAndSmoothInputSpec
    output_spec = _MaskAndSmoothOutputSpec

    def _run_interface(self, runtime):
        fwhm = self.inputs.smoothing_fwhm if isdefined(self.inputs.smoothing_fwhm) else None
        data = read_masked_bold(self.inputs.bold_file, self.inputs.mask_file, smoothing_fwhm=fwhm)
        self._results["data_file"] = str(write_masked(data, runtime.cwd))
        self._results["mask_file"] = self.inputs.mask_file
        return runtime
