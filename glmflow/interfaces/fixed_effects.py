"""FixedEffects: precision-weighted combination of one contrast across runs."""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from glmflow.core.bold import read_masked_maps, save_nifti, unmask
from glmflow.core.fixed_effects import compute_fixed_effects


class _FixedEffectsInputSpec(BaseInterfaceInputSpec):
    effect_files = InputMultiObject(
        File(exists=True), mandatory=True, desc="effect map of the contrast, one per run"
    )
    variance_files = InputMultiObject(
        File(exists=True), mandatory=True, desc="variance map of the contrast, one per run"
    )
    dofs = traits.List(
        traits.Float, desc="residual dof of each run (FitFirstLevel dof); nilearn's 100 if unset"
    )
    mask_file = File(exists=True, mandatory=True, desc="mask of the maps (the runs' mask)")
    precision_weighted = traits.Bool(
        True, usedefault=True, desc="weight runs by inverse variance (False: plain mean)"
    )


class _FixedEffectsOutputSpec(TraitedSpec):
    effect_file = File(exists=True, desc="fixed-effects effect map")
    variance_file = File(exists=True, desc="fixed-effects variance map")
    stat_file = File(exists=True, desc="fixed-effects t (or F) map")
    z_file = File(exists=True, desc="fixed-effects z map")
    p_file = File(exists=True, desc="fixed-effects p-value map")
    dof = traits.Float(desc="summed degrees of freedom")


class FixedEffects(SimpleInterface):
    """Combine runs with glmflow.core.fixed_effects.compute_fixed_effects."""

    input_spec = _FixedEffectsInputSpec
    output_spec = _FixedEffectsOutputSpec

    def _run_interface(self, runtime):
        inputs = self.inputs
        mask = inputs.mask_file
        result = compute_fixed_effects(
            [read_masked_maps(f, mask) for f in inputs.effect_files],
            [read_masked_maps(f, mask) for f in inputs.variance_files],
            dofs=inputs.dofs if isdefined(inputs.dofs) and inputs.dofs else None,
            precision_weighted=inputs.precision_weighted,
        )
        cwd = Path(runtime.cwd)
        for key in ("effect", "variance", "stat", "z", "p"):
            path = cwd / f"fixed_{key}.nii.gz"
            save_nifti(unmask(result[key].astype("float32"), mask), path)
            self._results[f"{key}_file"] = str(path)
        self._results["dof"] = result["dof"]
        return runtime
