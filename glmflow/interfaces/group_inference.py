"""GroupInference: threshold one group contrast and tabulate its clusters."""

from __future__ import annotations

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    TraitedSpec,
    traits,
)

from glmflow.core.group.outputs import group_inference_files
from glmflow.core.inference import INFERENCE_METHODS, PERMUTATION_STATS
from glmflow.interfaces.base import CoreInterface, given


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
    contrast_name = traits.Str(
        nohash=True, desc="the contrast thresholded, named when no voxel survives"
    )


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


class GroupInference(CoreInterface):
    """Threshold a group result; glmflow.core.group.outputs.group_inference_files writes it."""

    input_spec = _GroupInferenceInputSpec
    output_spec = _GroupInferenceOutputSpec

    def _run_core(self, inputs, out_dir):
        spec = {
            "method": inputs.method,
            "alpha": inputs.alpha,
            "z_threshold": inputs.z_threshold,
            "cluster_threshold": inputs.cluster_threshold,
            "two_sided": inputs.two_sided,
            "min_distance": inputs.min_distance,
            "n_perm": inputs.n_perm,
            "permutation_stat": inputs.permutation_stat,
            "cluster_forming_p": given(inputs.cluster_forming_p),
            "seed": given(inputs.random_state),
        }
        return group_inference_files(
            spec,
            design_file=given(inputs.design_file),
            contrast=given(inputs.contrast),
            out_dir=out_dir,
            stat_img=given(inputs.stat_file),
            effect_files=given(inputs.effect_files),
            mask=given(inputs.mask_file),
            smoothing_fwhm=given(inputs.smoothing_fwhm),
            n_jobs=inputs.n_jobs,
            contrast_name=given(inputs.contrast_name),
        )


def inference_outputs(spec) -> list[str]:
    """The outputs GroupInference produces for an InferenceSpec (others stay unconnected)."""
    keys = ["thresholded_file", "threshold", "clusters_file"]
    if spec.method == "tdp":
        keys.append("tdp_file")
    if spec.method == "permutation":
        keys.append("logp_max_t_file")
        if spec.cluster_forming_p is not None:
            keys += ["logp_max_size_file", "logp_max_mass_file"]
        if spec.permutation_stat == "tfce":
            keys.append("logp_max_tfce_file")
    return keys
