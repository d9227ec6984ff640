"""FitGroupModel, GroupInference and their sinks: the group level as Nipype nodes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    OutputMultiObject,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from glmflow.core.group import (
    METHODS,
    fit_group_model,
    parse_contrast,
    parse_contrasts,
    read_design,
)
from glmflow.core.inference import (
    GROUP_MODEL_MAPS,
    INFERENCE_METHODS,
    LOGP_MAPS,
    PERMUTATION_STATS,
    run_group_inference,
    write_inference_derivatives,
    write_model_maps,
)
from glmflow.interfaces.maps import MapListsOutputSpec

# glmflow output name -> nilearn output type
_MAP_KEYS = {
    "effect": "effect_size",
    "variance": "effect_variance",
    "stat": "stat",
    "p": "p_value",
    "z": "z_score",
}


def _given(value):
    return value if isdefined(value) else None


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "", name.title()) or "contrast"


def _save(img: nib.Nifti1Image, path: Path, dtype: str = "float32") -> str:
    data = np.asanyarray(img.dataobj).astype(dtype)
    nib.save(nib.Nifti1Image(data, img.affine), path)
    return str(path)


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
        *METHODS,
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


class FitGroupModel(SimpleInterface):
    """Fit a group model with glmflow.core.group.fit_group_model; one NIfTI per map."""

    input_spec = _FitGroupModelInputSpec
    output_spec = _FitGroupModelOutputSpec

    def _run_interface(self, runtime):
        inputs = self.inputs
        fit = fit_group_model(
            list(inputs.effect_files),
            read_design(inputs.design_file),
            contrasts=parse_contrasts(inputs.contrasts, source=inputs.contrasts_source),
            variance_files=_given(inputs.variance_files),
            method=inputs.method,
            mask=_given(inputs.mask_file),
            target_affine=_given(inputs.target_affine),
            target_shape=_given(inputs.target_shape),
            smoothing_fwhm=_given(inputs.smoothing_fwhm),
            minimize_memory=inputs.minimize_memory,
            dofs=_given(inputs.dofs),
            n_jobs=inputs.n_jobs,
            design_source=inputs.design_file,
            contrast_source=inputs.contrasts_source,
        )
        cwd = Path(runtime.cwd)
        lists = {key: [] for key in _MAP_KEYS}
        index = {}
        for i, (name, maps) in enumerate(fit.maps.items()):
            weights = np.atleast_2d(fit.contrasts[name])
            record = {
                "stat_type": "F" if fit.contrasts[name].ndim == 2 else "t",
                "weights": [
                    dict(zip(fit.design.columns, map(float, row), strict=True)) for row in weights
                ],
            }
            for key, output in _MAP_KEYS.items():
                path = _save(maps[output], cwd / f"group_con{i:03d}_{_slug(name)}_{key}.nii.gz")
                lists[key].append(path)
                record[key] = path
            index[name] = record
        for key in _MAP_KEYS:
            self._results[f"{key}_files"] = lists[key]
        self._results["contrast_names"] = list(index)
        self._results["stat_types"] = [r["stat_type"] for r in index.values()]
        self._results["mask_file"] = _save(fit.mask_img, cwd / "group_mask.nii.gz", "uint8")
        for key, img in fit.model_maps.items():
            self._results[f"{key}_file"] = _save(img, cwd / f"group_{key}.nii.gz")
        json_path = cwd / "group_contrasts.json"
        json_path.write_text(json.dumps(index, indent=2))
        self._results["contrasts_json"] = str(json_path)
        return runtime


class _GroupInferenceInputSpec(BaseInterfaceInputSpec):
    method = traits.Enum(
        *INFERENCE_METHODS,
        mandatory=True,
        desc="fpr/fdr/bonferroni: height control of stat_file; threshold: explicit z; "
        "permutation: FWE by permutation of effect_files; tdp: cluster true-discovery proportion",
    )
    stat_file = File(exists=True, desc="z map to threshold (all methods but permutation)")
    effect_files = InputMultiObject(
        File(exists=True), desc="effect maps, one per design row (permutation)"
    )
    design_file = File(exists=True, desc="design TSV of effect_files (permutation)")
    contrast = traits.Str(
        desc="the tested t contrast (permutation): a formula, JSON weights, or a JSON object "
        "{expressions | weights}"
    )
    mask_file = File(exists=True, desc="mask; nilearn computes one when unset")
    alpha = traits.Float(
        0.05, usedefault=True, desc="p (fpr), q (fdr) or FWE level; TDP confidence level"
    )
    z_threshold = traits.Float(
        3.09, usedefault=True, desc="z threshold of 'threshold'; cluster-forming z of 'tdp'"
    )
    cluster_threshold = traits.Int(
        0, usedefault=True, desc="minimum cluster size in voxels (and in the cluster table)"
    )
    two_sided = traits.Bool(False, usedefault=True, desc="test both signs of the statistic")
    min_distance = traits.Float(8.0, usedefault=True, desc="minimum mm between cluster subpeaks")
    n_perm = traits.Int(10000, usedefault=True, desc="number of permutations")
    permutation_stat = traits.Enum(
        *PERMUTATION_STATS, usedefault=True, desc="FWE map that decides significance"
    )
    cluster_forming_p = traits.Float(
        desc="cluster-forming one-sided p of permutation cluster inference (size, mass)"
    )
    smoothing_fwhm = traits.Float(desc="FWHM (mm) of smoothing before permutation")
    random_state = traits.Int(desc="seed of the permutations (hashed: changes results)")
    n_jobs = traits.Int(1, usedefault=True, nohash=True, desc="parallel jobs (nilearn)")


class _GroupInferenceOutputSpec(TraitedSpec):
    thresholded_file = File(exists=True, desc="statistic where significant, 0 elsewhere")
    threshold = traits.Float(desc="voxel threshold applied (z; -log10 p for permutation)")
    clusters_file = File(
        exists=True,
        desc="clusters.tsv: Cluster ID, X, Y, Z (mm), Peak Stat, Cluster Size (mm3), "
        "Cluster Size (voxels); n/a sizes on subpeak rows",
    )
    t_file = File(desc="t map of the permuted contrast (permutation)")
    logp_max_t_file = File(desc="-log10 voxel-level max-t FWE p (permutation)")
    logp_max_size_file = File(desc="-log10 cluster-size FWE p (permutation + cluster_forming_p)")
    logp_max_mass_file = File(desc="-log10 cluster-mass FWE p (permutation + cluster_forming_p)")
    logp_max_tfce_file = File(desc="-log10 TFCE FWE p (permutation_stat 'tfce')")
    tdp_file = File(desc="true-discovery proportion of each cluster (tdp)")


class GroupInference(SimpleInterface):
    """Threshold a group result with glmflow.core.inference.run_group_inference."""

    input_spec = _GroupInferenceInputSpec
    output_spec = _GroupInferenceOutputSpec

    def _run_interface(self, runtime):
        inputs = self.inputs
        design_file = _given(inputs.design_file)
        contrast = _given(inputs.contrast)
        result = run_group_inference(
            inputs.method,
            stat_img=_given(inputs.stat_file),
            effect_files=list(inputs.effect_files) if isdefined(inputs.effect_files) else None,
            design=None if design_file is None else read_design(design_file),
            contrast=None if contrast is None else parse_contrast(contrast),
            mask=_given(inputs.mask_file),
            alpha=inputs.alpha,
            z_threshold=inputs.z_threshold,
            cluster_threshold=inputs.cluster_threshold,
            two_sided=inputs.two_sided,
            min_distance=inputs.min_distance,
            n_perm=inputs.n_perm,
            permutation_stat=inputs.permutation_stat,
            cluster_forming_p=_given(inputs.cluster_forming_p),
            smoothing_fwhm=_given(inputs.smoothing_fwhm),
            random_state=_given(inputs.random_state),
            n_jobs=inputs.n_jobs,
            design_source=design_file or "the design matrix",
            contrast_source="the contrast input",
        )
        cwd = Path(runtime.cwd)
        self._results["thresholded_file"] = _save(
            result.thresholded_img, cwd / "thresholded.nii.gz"
        )
        self._results["threshold"] = result.threshold
        clusters = cwd / "clusters.tsv"
        result.clusters.to_csv(clusters, sep="\t", index=False, na_rep="n/a")
        self._results["clusters_file"] = str(clusters)
        for key, img in result.logp_imgs.items():
            self._results[f"{key}_file"] = _save(img, cwd / f"{key}.nii.gz")
        if result.t_img is not None:
            self._results["t_file"] = _save(result.t_img, cwd / "t.nii.gz")
        if result.tdp_img is not None:
            self._results["tdp_file"] = _save(result.tdp_img, cwd / "tdp.nii.gz")
        return runtime


class _InferenceSinkInputSpec(BaseInterfaceInputSpec):
    output_dir = traits.Str(mandatory=True, desc="root of the derivatives dataset to write")
    entities = traits.Str(
        mandatory=True, desc="JSON object of pybids entity names -> labels (task, space...)"
    )
    contrast_name = traits.Str(mandatory=True, desc="output contrast name (names the files)")
    method = traits.Enum(*INFERENCE_METHODS, mandatory=True, desc="inference method used")
    permutation_stat = traits.Enum(
        *PERMUTATION_STATS, usedefault=True, desc="FWE map that decided significance"
    )
    thresholded_file = File(exists=True, mandatory=True, desc="GroupInference thresholded map")
    threshold = traits.Float(mandatory=True, desc="voxel threshold applied")
    clusters_file = File(exists=True, mandatory=True, desc="GroupInference clusters.tsv")
    logp_max_t_file = File(exists=True, desc="-log10 max-t FWE p map (permutation)")
    logp_max_size_file = File(exists=True, desc="-log10 cluster-size FWE p map")
    logp_max_mass_file = File(exists=True, desc="-log10 cluster-mass FWE p map")
    logp_max_tfce_file = File(exists=True, desc="-log10 TFCE FWE p map")
    tdp_file = File(exists=True, desc="true-discovery proportion map (tdp)")
    metadata = traits.Str(
        "{}",
        usedefault=True,
        desc="JSON object written into every sidecar; 'Contrasts' (name -> info) is split",
    )
    hard_link = traits.Bool(
        True, usedefault=True, nohash=True, desc="hard-link from the working directory"
    )


class _InferenceSinkOutputSpec(TraitedSpec):
    out_files = OutputMultiObject(File(exists=True), desc="files written (sidecars excluded)")


class InferenceSink(SimpleInterface):
    """Write GroupInference's outputs with glmflow.core.inference.write_inference_derivatives."""

    input_spec = _InferenceSinkInputSpec
    output_spec = _InferenceSinkOutputSpec

    def _run_interface(self, runtime):
        inputs = self.inputs
        logp = {
            key: getattr(inputs, f"{key}_file")
            for key in LOGP_MAPS.values()
            if isdefined(getattr(inputs, f"{key}_file"))
        }
        written = write_inference_derivatives(
            inputs.output_dir,
            entities=json.loads(inputs.entities),
            contrast=inputs.contrast_name,
            method=inputs.method,
            stat="t" if inputs.method == "permutation" else "z",
            thresholded_file=inputs.thresholded_file,
            clusters_file=inputs.clusters_file,
            threshold=inputs.threshold,
            permutation_stat=inputs.permutation_stat,
            logp_files=logp,
            tdp_file=_given(inputs.tdp_file),
            metadata=json.loads(inputs.metadata),
            link=inputs.hard_link,
        )
        self._results["out_files"] = [str(p) for p in written]
        return runtime


class _ModelMapsSinkInputSpec(BaseInterfaceInputSpec):
    output_dir = traits.Str(mandatory=True, desc="root of the derivatives dataset to write")
    entities = traits.Str(mandatory=True, desc="JSON object of pybids entity names -> labels")
    contrast_name = traits.Str(mandatory=True, desc="the modelled first-level contrast")
    residuals_file = File(exists=True, mandatory=True, desc="FitGroupModel residuals (4D)")
    predicted_file = File(exists=True, mandatory=True, desc="FitGroupModel predicted (4D)")
    r_square_file = File(exists=True, mandatory=True, desc="FitGroupModel r-squared map")
    metadata = traits.Str("{}", usedefault=True, desc="JSON object written into every sidecar")
    hard_link = traits.Bool(
        True, usedefault=True, nohash=True, desc="hard-link from the working directory"
    )


class ModelMapsSink(SimpleInterface):
    """Write a group fit's model maps with glmflow.core.inference.write_model_maps."""

    input_spec = _ModelMapsSinkInputSpec
    output_spec = _InferenceSinkOutputSpec

    def _run_interface(self, runtime):
        inputs = self.inputs
        written = write_model_maps(
            inputs.output_dir,
            entities=json.loads(inputs.entities),
            contrast=inputs.contrast_name,
            maps={key: getattr(inputs, f"{key}_file") for key in GROUP_MODEL_MAPS},
            metadata=json.loads(inputs.metadata),
            link=inputs.hard_link,
        )
        self._results["out_files"] = [str(p) for p in written]
        return runtime
