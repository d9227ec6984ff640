"""MaskAndSmooth: read a BOLD run's in-mask time series (optionally smoothed) into a .npy;
LowPassBold: nilearn's Butterworth low-pass of such a .npy."""

from __future__ import annotations

import json
from pathlib import Path

from nipype.interfaces.base import BaseInterfaceInputSpec, File, TraitedSpec, traits

from glmflow.core.bold import read_bold, save_nifti, write_masked
from glmflow.core.temporal_filter import low_pass_masked_file
from glmflow.interfaces.base import CoreInterface, given


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
    mask_file = File(
        exists=True,
        desc="the mask the data were read with: the given one, or mask.nii.gz without the "
        "voxels left out (NaN/inf or constant over time)",
    )
    record_file = File(
        exists=True,
        desc="bold_record.json: {MaskVoxels, ExcludedVoxels, ExcludedNonFiniteVoxels, "
        "ExcludedConstantVoxels}, for the run's sidecars",
    )


class MaskAndSmooth(CoreInterface):
    """Stream a BOLD run through glmflow.core.bold.read_bold into runtime.cwd."""

    input_spec = _MaskAndSmoothInputSpec
    output_spec = _MaskAndSmoothOutputSpec

    def _run_core(self, inputs, out_dir):
        bold = read_bold(
            inputs.bold_file, inputs.mask_file, smoothing_fwhm=given(inputs.smoothing_fwhm)
        )
        cwd = Path(out_dir)
        data_file = str(write_masked(bold.data, cwd))
        mask_file = inputs.mask_file
        if bold.n_excluded:
            mask_file = str(save_nifti(bold.mask_image(), cwd / "mask.nii.gz"))
        record = cwd / "bold_record.json"
        record.write_text(json.dumps(bold.record(), sort_keys=True))
        return {"data_file": data_file, "mask_file": mask_file, "record_file": str(record)}


class _LowPassBoldInputSpec(BaseInterfaceInputSpec):
    data_file = File(
        exists=True, mandatory=True, desc="masked BOLD .npy (n_volumes, n_voxels), MaskAndSmooth"
    )
    cutoff_hz = traits.Float(mandatory=True, desc="low-pass cutoff (Hz), below Nyquist")
    repetition_time = traits.Float(mandatory=True, desc="the run's TR (s)")


class _LowPassBoldOutputSpec(TraitedSpec):
    data_file = File(exists=True, desc="bold_lowpass.npy: the data filtered, same shape, dtype")


class LowPassBold(CoreInterface):
    """Low-pass masked data (glmflow.core.temporal_filter.low_pass_masked_file)."""

    input_spec = _LowPassBoldInputSpec
    output_spec = _LowPassBoldOutputSpec

    def _run_core(self, inputs, out_dir):
        path = low_pass_masked_file(
            inputs.data_file, out_dir, cutoff_hz=inputs.cutoff_hz, tr=inputs.repetition_time
        )
        return {"data_file": str(path)}
