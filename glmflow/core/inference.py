"""Group-level inference: thin typed wrappers around nilearn's public functions.

Parametric height control (:func:`nilearn.glm.threshold_stats_img`), permutation FWE
(:mod:`glmflow.core.permutation`), true-discovery proportion of
clusters (:func:`nilearn.glm.cluster_level_inference`) and cluster tables
(:func:`glmflow.core.clusters.clusters_table`: nilearn's ``get_clusters_table`` rows, faster;
plus a cluster size in voxels).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

import nibabel as nib
import numpy as np
import pandas as pd
from nilearn.glm import cluster_level_inference, threshold_stats_img
from nilearn.image import new_img_like

from glmflow.core.clusters import clusters_table, drop_small_clusters, threshold_image
from glmflow.core.group import ContrastDef, ImageLike
from glmflow.core.model import InferenceMethod, InferenceSpec, PermutationStat
from glmflow.core.permutation import permutation_inference
from glmflow.errors import GroupModelError

HeightControl = Literal["fpr", "fdr", "bonferroni"]
# the spec's methods less "none" (no inference: run_group_inference is not called)
INFERENCE_METHODS: tuple[str, ...] = tuple(m for m in get_args(InferenceMethod) if m != "none")
#: permutation_stat -> the nilearn map of its -log10 FWE p-values
LOGP_MAPS: dict[str, str] = {
    "max_t": "logp_max_t",
    "size": "logp_max_size",
    "mass": "logp_max_mass",
    "tfce": "logp_max_tfce",
}
PERMUTATION_STATS: tuple[str, ...] = get_args(PermutationStat)


@dataclass
class InferenceResult:
    """Outputs of :func:`run_group_inference`.

    Attributes
    ----------
    thresholded_img : nibabel.Nifti1Image
        The statistic where it is significant, 0 elsewhere.
    threshold : float
        The voxel-level threshold applied, in the statistic's scale (for permutation, the
        -log10 FWE p-value threshold).
    clusters : pandas.DataFrame
        The cluster table of ``thresholded_img``
        (:func:`~glmflow.core.clusters.clusters_table` with ``voxel_sizes``).
    logp_imgs : dict
        -log10 p-value maps (``logp_max_t``, ``logp_max_size``, ... for permutation).
    tdp_img : nibabel.Nifti1Image or None
        True-discovery proportion of each cluster (``tdp`` only).
    t_img : nibabel.Nifti1Image or None
        The unthresholded t map of the permuted contrast (``permutation`` only).
    """

    thresholded_img: nib.Nifti1Image
    threshold: float
    clusters: pd.DataFrame
    logp_imgs: dict[str, nib.Nifti1Image] = field(default_factory=dict)
    tdp_img: nib.Nifti1Image | None = None
    t_img: nib.Nifti1Image | None = None


def threshold_map(
    stat_img: ImageLike,
    *,
    mask: ImageLike | None = None,
    alpha: float = 0.001,
    height_control: HeightControl | None = "fpr",
    threshold: float | None = None,
    cluster_threshold: int = 0,
    two_sided: bool = True,
    contrast_name: str | None = None,
) -> tuple[nib.Nifti1Image, float]:
    """Threshold a z map with nilearn's :func:`~nilearn.glm.threshold_stats_img`.

    ``height_control`` None applies the explicit z ``threshold``; otherwise ``alpha`` is the
    false-positive rate, false-discovery rate or Bonferroni-corrected level.
    Returns the thresholded map and the z threshold used; a map where nothing survives
    warns once, naming ``contrast_name`` when given.
    """
    if height_control is None and threshold is None:
        raise GroupModelError("An explicit z threshold is needed without height control")
    if height_control is not None:
        threshold = None  # nilearn derives it from alpha
    with warnings.catch_warnings():
        # nilearn's way of saying that nothing survives (a threshold of inf): said below
        warnings.filterwarnings("ignore", message="The given float value must not exceed")
        img, value = threshold_stats_img(
            stat_img,
            mask_img=mask,
            alpha=alpha,
            threshold=threshold,
            height_control=height_control,
            cluster_threshold=0,  # nilearn's extent rule, applied faster below
            two_sided=two_sided,
        )
    img = drop_small_clusters(img, cluster_threshold)
    if not np.isfinite(value):
        where = "" if contrast_name is None else f" in contrast '{contrast_name}'"
        warnings.warn(
            f"No voxel survives {height_control} at alpha={alpha}{where}: the thresholded "
            "map is empty",
            stacklevel=2,
        )
    return img, float(value)


def fwe_threshold(
    stat_img: nib.Nifti1Image, logp_img: nib.Nifti1Image, *, alpha: float = 0.05
) -> nib.Nifti1Image:
    """Keep ``stat_img`` where the -log10 corrected p-value map says p < ``alpha``."""
    significant = np.asanyarray(logp_img.dataobj) > -math.log10(alpha)
    return new_img_like(stat_img, np.where(significant, stat_img.get_fdata(), 0.0))


def true_discovery_proportion(
    stat_img: ImageLike,
    *,
    mask: ImageLike | None = None,
    threshold: float = 3.09,
    alpha: float = 0.05,
) -> nib.Nifti1Image:
    """Lower bound on the proportion of truly active voxels in each cluster above ``threshold``.

    nilearn's :func:`~nilearn.glm.cluster_level_inference` (Rosenblatt et al. 2018) on a z map;
    positive clusters only.
    """
    return cluster_level_inference(stat_img, mask_img=mask, threshold=threshold, alpha=alpha)


def run_group_inference(
    spec: InferenceSpec,
    *,
    stat_img: ImageLike | None = None,
    effect_files: Sequence[ImageLike] | None = None,
    design: pd.DataFrame | None = None,
    contrast: ContrastDef | None = None,
    mask: ImageLike | None = None,
    smoothing_fwhm: float | None = None,
    n_jobs: int = 1,
    design_source: str = "the design matrix",
    contrast_source: str = "the contrasts",
    contrast_name: str | None = None,
) -> InferenceResult:
    """Threshold a group result and tabulate its clusters.

    Parameters
    ----------
    spec : InferenceSpec
        The inference, valid by construction (:class:`glmflow.core.model.InferenceSpec`).
        ``method`` "fpr"/"fdr"/"bonferroni": height control of ``stat_img`` (a z map) at
        ``alpha``; "threshold": explicit ``z_threshold``; "permutation": FWE by permutation
        of ``effect_files`` with ``design`` and ``contrast`` (``n_perm``, ``seed``), keeping
        the t map where the ``permutation_stat`` FWE p-value < ``alpha``; "tdp": clusters of
        ``stat_img`` above ``z_threshold`` with a positive true-discovery proportion at
        ``alpha``. ``cluster_threshold`` (voxels) and ``min_distance`` (mm) shape the map and
        the cluster table.
    stat_img, effect_files, design, contrast, mask, smoothing_fwhm, n_jobs
        The data: a z map, or the maps, design and t contrast that are permuted (smoothed
        first, with nilearn's ``n_jobs``).
    design_source, contrast_source, contrast_name : str
        Files the design and contrast came from (for errors); the contrast named when
        nothing survives.

    Returns
    -------
    InferenceResult
    """
    method = spec.method
    if method == "none":
        raise GroupModelError("Inference method 'none' thresholds nothing; choose a method")
    if method == "permutation":
        return _permutation_result(
            spec, effect_files, design, contrast, mask=mask, smoothing_fwhm=smoothing_fwhm,
            n_jobs=n_jobs, design_source=design_source, contrast_source=contrast_source,
        )  # fmt: skip
    if stat_img is None:
        raise GroupModelError(f"Inference method {method!r} needs a z map (stat_img)")
    if method == "tdp":
        return _tdp_result(spec, stat_img, mask)
    thresholded, value = threshold_map(
        stat_img, mask=mask, alpha=spec.alpha,
        height_control=None if method == "threshold" else method,
        threshold=spec.z_threshold, cluster_threshold=spec.cluster_threshold,
        two_sided=spec.two_sided, contrast_name=contrast_name,
    )  # fmt: skip
    return _tabulated(spec, thresholded, value)


def _tabulated(spec: InferenceSpec, thresholded, threshold: float, **maps) -> InferenceResult:
    """The result with the cluster table of its thresholded map.

    Every non-zero voxel of the thresholded map is significant; tabulating above the
    threshold instead would drop the voxel an FDR threshold sits on (nilearn keeps z >=
    threshold, get_clusters_table z > threshold).
    """
    table = clusters_table(
        thresholded, stat_threshold=0.0, cluster_threshold=spec.cluster_threshold,
        two_sided=spec.two_sided, min_distance=spec.min_distance, voxel_sizes=True,
    )  # fmt: skip
    return InferenceResult(thresholded, threshold, table, **maps)


def _tdp_result(spec: InferenceSpec, stat_img: ImageLike, mask: ImageLike | None):
    """Clusters above ``z_threshold`` with a positive true-discovery proportion."""
    tdp = true_discovery_proportion(
        stat_img, mask=mask, threshold=spec.z_threshold, alpha=spec.alpha
    )
    z = stat_img if isinstance(stat_img, nib.Nifti1Image) else nib.load(stat_img)
    thresholded = new_img_like(z, np.where(tdp.get_fdata() > 0, z.get_fdata(), 0.0))
    table = clusters_table(
        thresholded, stat_threshold=0.0, min_distance=spec.min_distance, voxel_sizes=True
    )
    return InferenceResult(thresholded, spec.z_threshold, table, tdp_img=tdp)


def _permutation_result(
    spec: InferenceSpec,
    effect_files: Sequence[ImageLike] | None,
    design: pd.DataFrame | None,
    contrast: ContrastDef | None,
    **options,
) -> InferenceResult:
    if effect_files is None or design is None or contrast is None:
        raise GroupModelError(
            "Inference method 'permutation' needs the effect maps, their design and a contrast"
        )
    stat = spec.permutation_stat
    maps = permutation_inference(
        effect_files, design, contrast=contrast, two_sided=spec.two_sided,
        cluster_forming_p=spec.cluster_forming_p, tfce=stat == "tfce", n_perm=spec.n_perm,
        random_state=spec.seed, **options,
    )  # fmt: skip
    logp = {key: img for key, img in maps.items() if key.startswith("logp_")}
    thresholded = fwe_threshold(maps["t"], logp[LOGP_MAPS[stat]], alpha=spec.alpha)
    if spec.cluster_threshold:
        # the same extent rule for the map as for its table (nilearn's threshold_img keeps
        # clusters of at least cluster_threshold voxels, either sign)
        thresholded = threshold_image(
            thresholded, 1e-12, cluster_threshold=spec.cluster_threshold, two_sided=True,
            copy_header=True,
        )  # fmt: skip
    threshold = -math.log10(spec.alpha)
    return _tabulated(spec, thresholded, threshold, logp_imgs=logp, t_img=maps["t"])
