"""ComputeContrasts: t/F contrast maps of one run's fit, one NIfTI per contrast and statistic."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    OutputMultiObject,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from glmflow.core.bold import save_nifti, unmask
from glmflow.core.contrasts import MAP_KEYS, compute_contrast
from glmflow.core.glm import load_fit
from glmflow.errors import ContrastError


class _ComputeContrastsInputSpec(BaseInterfaceInputSpec):
    fit_file = File(exists=True, mandatory=True, desc="fit.npz from FitFirstLevel")
    mask_file = File(exists=True, mandatory=True, desc="mask the fitted data were read with")
    contrasts = traits.Str(
        mandatory=True,
        desc="JSON array of contrast objects {name, expressions | weights, stat_type}; "
        "hashed by value so editing a contrast reruns only this node",
    )
    missing_conditions = traits.Enum(
        "error",
        "drop",
        usedefault=True,
        desc="a contrast naming a column absent from this run's design: 'error' stops, "
        "'drop' drops those terms (skipping the contrast if nothing is left) and records it",
    )


class _ComputeContrastsOutputSpec(TraitedSpec):
    contrast_names = traits.List(traits.Str, desc="computed contrasts, in the order given")
    stat_types = traits.List(traits.Str, desc="'t' or 'F' per computed contrast")
    effect_files = OutputMultiObject(File(exists=True), desc="effect maps (4D for F)")
    variance_files = OutputMultiObject(File(exists=True), desc="variance maps")
    stat_files = OutputMultiObject(File(exists=True), desc="t or F maps")
    p_files = OutputMultiObject(File(exists=True), desc="one-sided p-value maps")
    z_files = OutputMultiObject(File(exists=True), desc="z maps")
    dof = traits.Float(desc="residual degrees of freedom of the fit")
    contrasts_json = File(
        exists=True,
        desc="contrasts.json: {name: {stat_type, weights, dropped, dof, skipped, effect, "
        "variance, stat, p, z (file paths)}} in the order given",
    )


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "", name.title()) or "contrast"


class ComputeContrasts(SimpleInterface):
    """Compute every contrast with glmflow.core.contrasts.compute_contrast."""

    input_spec = _ComputeContrastsInputSpec
    output_spec = _ComputeContrastsOutputSpec

    def _run_interface(self, runtime):
        try:
            contrasts = json.loads(self.inputs.contrasts)
        except ValueError as err:
            raise ContrastError(f"contrasts input is not valid JSON ({err})") from err
        if not isinstance(contrasts, list):
            raise ContrastError("contrasts input must be a JSON array of contrast objects")
        fit = load_fit(self.inputs.fit_file)
        cwd = Path(runtime.cwd)
        lists = {key: [] for key in MAP_KEYS}
        names, stat_types, index = [], [], {}
        for i, spec in enumerate(contrasts):
            if not isinstance(spec, dict):
                raise ContrastError(
                    f"contrasts input item {i} must be a JSON object with name, expressions or "
                    f"weights, stat_type; got {spec!r}"
                )
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = compute_contrast(fit, spec, missing=self.inputs.missing_conditions)
            for warning in caught:  # re-issue so they reach the log as well as the JSON
                warnings.warn(str(warning.message), warning.category, stacklevel=1)
            name = str(spec.get("name", f"contrast{i}"))
            if result is None:
                index[name] = {
                    "skipped": True,
                    "reason": "; ".join(str(w.message) for w in caught),
                }
                continue
            record = {**result.info(), "skipped": False}
            for key in MAP_KEYS:
                path = cwd / f"con{i:03d}_{_slug(name)}_{key}.nii.gz"
                save_nifti(unmask(result[key].astype("float32"), self.inputs.mask_file), path)
                lists[key].append(str(path))
                record[key] = str(path)
            index[name] = record
            names.append(name)
            stat_types.append(result.stat_type)
        json_path = cwd / "contrasts.json"
        json_path.write_text(json.dumps(index, indent=2))
        for key in MAP_KEYS:
            self._results[f"{key}_files"] = lists[key]
        self._results["contrast_names"] = names
        self._results["stat_types"] = stat_types
        self._results["dof"] = fit.df_residuals
        self._results["contrasts_json"] = str(json_path)
        return runtime
