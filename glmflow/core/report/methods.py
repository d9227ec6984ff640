"""The methods paragraph of a report, written from the model the sidecars say was run."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

_NOISE = {
    "ar1": "a first-order autoregressive noise model (AR(1))",
    "ols": "ordinary least squares",
}
_HRF = {"spm": "SPM's canonical", "glover": "Glover's"}
_INFERENCE = {
    "fdr": "the false discovery rate", "fpr": "an uncorrected voxel-wise false positive rate",
    "bonferroni": "Bonferroni-corrected voxel-wise error", "threshold": "a fixed z threshold",
    "permutation": "family-wise error by permutation", "tdp": "the true discovery proportion "
    "of clusters", "none": "no inference",
}  # fmt: skip


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def software() -> str:
    """The versions of glmflow and the packages that computed its maps."""
    return (
        f"glmflow {_version('glmflow')} (Nipype {_version('nipype')}, nilearn "
        f"{_version('nilearn')}, NumPy {_version('numpy')}, SciPy {_version('scipy')})"
    )


def _hrf(design: dict[str, Any]) -> str:
    name = design["hrf_model"]
    if name == "fir":
        return f"a finite impulse response basis (delays {design.get('fir_delays')} scans)"
    base, _, extra = name.partition(" + ")
    text = f"{_HRF.get(base, base)} haemodynamic response function"
    return text + (f" with its {extra}" if extra else "")


def _drift(design: dict[str, Any]) -> str:
    if design["drift_model"] == "cosine":
        return f"a discrete cosine basis with a {1 / design['high_pass']:.0f} s high-pass cut-off"
    if design["drift_model"] == "polynomial":
        return f"polynomials up to order {design['drift_order']}"
    return "no drift regressors"


def _confounds(confounds: dict[str, Any]) -> str:
    parts = []
    if confounds.get("strategy"):
        parts.append("nilearn's load_confounds strategies " + ", ".join(confounds["strategy"]))
    if confounds.get("columns"):
        parts.append("the fMRIPrep columns " + ", ".join(confounds["columns"]))
    if confounds.get("optional_columns"):
        parts.append("where present " + ", ".join(confounds["optional_columns"]))
    text = "; ".join(parts) if parts else "no confound regressors"
    if "scrub" in confounds.get("strategy", ()):
        text += (
            f"; volumes with framewise displacement above {confounds['fd_threshold']} mm or "
            f"standardised DVARS above {confounds['std_dvars_threshold']} were censored "
            f"(with segments shorter than {confounds['scrub']} volumes)"
        )
    return text


def inference_sentence(inference: dict[str, Any], unit: str = "voxels") -> str:
    """How group maps were thresholded, in words (``unit``: what a cluster is made of)."""
    method = inference["method"]
    text = f"Group maps were thresholded by {_INFERENCE.get(method, method)}"
    if method in ("fdr", "fpr", "bonferroni", "tdp", "permutation"):
        text += f" at alpha = {inference['alpha']:g}"
    if method in ("threshold", "tdp"):
        text += f" with z > {inference['z_threshold']:g}"
    if method == "permutation":
        text += f" ({inference['n_perm']} permutations, statistic {inference['permutation_stat']})"
    if inference.get("cluster_threshold"):
        text += f", clusters of at least {inference['cluster_threshold']} {unit}"
    return text + ("" if inference.get("two_sided", True) else ", one-sided") + "."


def first_level_methods(spec: dict[str, Any]) -> str:
    """The first-level (and subject-level) methods paragraph from a sidecar's ModelSpec."""
    design, glm = spec["design"], spec["glm"]
    smoothing = glm.get("smoothing_fwhm")
    smooth = (
        f"smoothed with a {smoothing:g} mm FWHM Gaussian kernel" if smoothing else "unsmoothed"
    )
    combination = spec.get("subject", {}).get("run_combination", "equal")
    weights = "equal weights" if combination == "equal" else "inverse-variance weights"
    return (
        f"Statistical analysis was performed with {software()}. Each run's preprocessed BOLD "
        f"series ({smooth}) was modelled with a general linear model: the events of model "
        f"'{spec['name']}' (task {spec['task']}) were convolved with {_hrf(design)}, drifts "
        f"were modelled with {_drift(design)}, and the confounds were "
        f"{_confounds(spec['confounds'])}. "
        f"The model was fitted with {_NOISE.get(glm['noise_model'], glm['noise_model'])}. "
        f"Runs were combined within subjects by fixed effects with {weights}. "
        + inference_sentence(spec["group"]["inference"])
    )


def group_methods(group: dict[str, Any], n_subjects: int, *, surface: str = "") -> str:
    """The group-level paragraph from a group sidecar's GroupModel (``surface``: the
    surface space of a surface group level's maps)."""
    ols = group["method"] == "ols"
    method = "ordinary least squares (nilearn's SecondLevelModel)" if ols else (
        "precision-weighted fixed effects")  # fmt: skip
    if surface:  # glmflow's own fit on the vertices (nilearn has none on surfaces' meshes)
        method = f"ordinary least squares on the {surface} vertices (glmflow's surface level)"
    covariates = group.get("covariates") or []
    with_cov = f" with the covariates {', '.join(covariates)}" if covariates else ""
    return (
        f"Subject-level effect maps of {n_subjects} subjects entered a {group['design']} "
        f"group design{with_cov}, fitted by {method} with {software()}. "
        + inference_sentence(group["inference"], "vertices on the mesh" if surface else "voxels")
    )
