"""Group-level inference: thin typed wrappers around nilearn's public functions.

Parametric height control (:func:`nilearn.glm.threshold_stats_img`), permutation FWE
(:mod:`glmflow.core.permutation`), true-discovery proportion of
clusters (:func:`nilearn.glm.cluster_level_inference`) and cluster tables
(:func:`nilearn.reporting.get_clusters_table`, plus a cluster size in voxels).
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
from nilearn.image import new_img_like, threshold_img
from nilearn.reporting import get_clusters_table

from glmflow.core.group import ContrastDef, ImageLike
from glmflow.core.model import InferenceMethod, PermutationStat
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
SIZE_MM3 = "Cluster Size (mm3)"
SIZE_VOXELS = "Cluster Size (voxels)"


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
        The cluster table of ``thresholded_img`` (see :func:`cluster_table`).
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


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise GroupModelError(f"alpha must be between 0 and 1, got {alpha}; e.g. 0.05")


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
    if height_control not in (None, "fpr", "fdr", "bonferroni"):
        raise GroupModelError(
            f"Unknown height_control {height_control!r} (allowed: fpr, fdr, bonferroni, None)"
        )
    if height_control is None:
        if threshold is None or threshold < 0:
            raise GroupModelError(
                f"An explicit z threshold is needed without height control, got {threshold}; "
                "give a non-negative value such as 3.09"
            )
    else:
        _check_alpha(alpha)
        threshold = None  # nilearn derives it from alpha
    if cluster_threshold < 0:
        raise GroupModelError(
            f"cluster_threshold must be a number of voxels >= 0, got {cluster_threshold}"
        )
    with warnings.catch_warnings():
        # nilearn's way of saying that nothing survives (a threshold of inf): said below
        warnings.filterwarnings("ignore", message="The given float value must not exceed")
        img, value = threshold_stats_img(
            stat_img,
            mask_img=mask,
            alpha=alpha,
            threshold=threshold,
            height_control=height_control,
            cluster_threshold=cluster_threshold,
            two_sided=two_sided,
        )
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
    _check_alpha(alpha)
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
    _check_alpha(alpha)
    if threshold < 0:
        raise GroupModelError(f"The cluster-forming z threshold must be >= 0, got {threshold}")
    return cluster_level_inference(stat_img, mask_img=mask, threshold=threshold, alpha=alpha)


def cluster_table(
    stat_img: ImageLike,
    *,
    stat_threshold: float,
    cluster_threshold: int = 0,
    two_sided: bool = False,
    min_distance: float = 8.0,
) -> pd.DataFrame:
    """Peaks and subpeaks of each cluster (nilearn's ``get_clusters_table``), with sizes.

    Columns: ``Cluster ID``, ``X``, ``Y``, ``Z`` (world coordinates in mm, MNI when the map is
    in MNI space), ``Peak Stat``, ``Cluster Size (mm3)`` (nilearn's, truncated to an integer)
    and ``Cluster Size (voxels)``. Subpeak rows (IDs like ``1a``) have no sizes (NA).
    """
    if min_distance <= 0:
        raise GroupModelError(
            f"min_distance must be a positive distance in mm, got {min_distance}"
        )
    with warnings.catch_warnings():
        # nilearn warns per empty tail; an empty table already says there is no cluster
        warnings.filterwarnings("ignore", message="No clusters found", category=UserWarning)
        table, label_maps = get_clusters_table(
            stat_img,
            stat_threshold=stat_threshold,
            cluster_threshold=cluster_threshold,
            two_sided=two_sided,
            min_distance=min_distance,
            return_label_maps=True,
        )
    # Label maps are numbered in table order within each tail (positive tail first), so their
    # counts line up with the peak rows of the table.
    counts = [
        n
        for img in label_maps
        for n in np.bincount(np.asanyarray(img.dataobj).astype(int).ravel())[1:]
    ]
    table = table.copy()
    is_peak = table[SIZE_MM3].astype(str) != ""
    for column, values in (
        (SIZE_MM3, table.loc[is_peak, SIZE_MM3].astype(int).tolist()),
        (SIZE_VOXELS, counts),
    ):
        sizes = pd.Series(pd.NA, index=table.index, dtype="Int64")
        sizes[is_peak] = values
        table[column] = sizes
    table["Cluster ID"] = table["Cluster ID"].astype(str)
    return table


def run_group_inference(
    method: InferenceMethod,
    *,
    stat_img: ImageLike | None = None,
    effect_files: Sequence[ImageLike] | None = None,
    design: pd.DataFrame | None = None,
    contrast: ContrastDef | None = None,
    mask: ImageLike | None = None,
    alpha: float = 0.05,
    z_threshold: float = 3.09,
    cluster_threshold: int = 0,
    two_sided: bool = False,
    min_distance: float = 8.0,
    n_perm: int = 10000,
    permutation_stat: PermutationStat = "max_t",
    cluster_forming_p: float | None = None,
    smoothing_fwhm: float | None = None,
    random_state: int | None = None,
    n_jobs: int = 1,
    design_source: str = "the design matrix",
    contrast_source: str = "the contrasts",
    contrast_name: str | None = None,
) -> InferenceResult:
    """Threshold a group result and tabulate its clusters.

    Parameters
    ----------
    method : {"fpr", "fdr", "bonferroni", "threshold", "permutation", "tdp"}
        ``fpr``/``fdr``/``bonferroni``: height control of ``stat_img`` (a z map) at ``alpha``.
        ``threshold``: explicit ``z_threshold``. ``permutation``: FWE by permutation of
        ``effect_files`` with ``design`` and ``contrast``, keeping the t map where the
        ``permutation_stat`` FWE p-value < ``alpha``. ``tdp``: clusters of ``stat_img`` above
        ``z_threshold`` with a positive true-discovery proportion at ``alpha``.
    cluster_threshold : int
        Minimum cluster size in voxels (parametric methods and the cluster table).
    permutation_stat : {"max_t", "size", "mass", "tfce"}
        Which FWE map decides significance; ``size`` and ``mass`` need ``cluster_forming_p``.
    contrast_name : str, optional
        The contrast the map belongs to, named when nothing survives.
    Other parameters
        See :func:`threshold_map`, :func:`permutation_inference`, :func:`cluster_table`.

    Returns
    -------
    InferenceResult
    """
    if method not in INFERENCE_METHODS:
        raise GroupModelError(
            f"Unknown inference method {method!r} (allowed: {', '.join(INFERENCE_METHODS)})"
        )
    _check_alpha(alpha)
    if method == "permutation":
        return _permutation_result(
            effect_files, design, contrast, mask=mask, alpha=alpha, two_sided=two_sided,
            n_perm=n_perm, permutation_stat=permutation_stat,
            cluster_forming_p=cluster_forming_p, smoothing_fwhm=smoothing_fwhm,
            random_state=random_state, n_jobs=n_jobs, min_distance=min_distance,
            cluster_threshold=cluster_threshold, design_source=design_source,
            contrast_source=contrast_source,
        )  # fmt: skip
    if stat_img is None:
        raise GroupModelError(f"Inference method {method!r} needs a z map (stat_img)")
    if method == "tdp":
        if two_sided:
            raise GroupModelError(
                "Inference method 'tdp' tests positive clusters only; set two_sided=False "
                "(test the negated contrast for negative effects)"
            )
        tdp = true_discovery_proportion(stat_img, mask=mask, threshold=z_threshold, alpha=alpha)
        z = stat_img if isinstance(stat_img, nib.Nifti1Image) else nib.load(stat_img)
        thresholded = new_img_like(z, np.where(tdp.get_fdata() > 0, z.get_fdata(), 0.0))
        table = cluster_table(
            thresholded, stat_threshold=0.0, two_sided=False, min_distance=min_distance
        )
        return InferenceResult(thresholded, z_threshold, table, tdp_img=tdp)
    height_control = None if method == "threshold" else method
    thresholded, value = threshold_map(
        stat_img, mask=mask, alpha=alpha, height_control=height_control,
        threshold=z_threshold, cluster_threshold=cluster_threshold, two_sided=two_sided,
        contrast_name=contrast_name,
    )  # fmt: skip
    # Every non-zero voxel of the thresholded map is significant; tabulating above `value`
    # instead would drop the voxel an FDR threshold sits on (nilearn keeps z >= threshold,
    # get_clusters_table z > threshold).
    table = cluster_table(
        thresholded, stat_threshold=0.0, cluster_threshold=cluster_threshold,
        two_sided=two_sided, min_distance=min_distance,
    )  # fmt: skip
    return InferenceResult(thresholded, value, table)


def _permutation_result(
    effect_files: Sequence[ImageLike] | None,
    design: pd.DataFrame | None,
    contrast: ContrastDef | None,
    *,
    alpha: float,
    two_sided: bool,
    permutation_stat: str,
    cluster_forming_p: float | None,
    min_distance: float,
    cluster_threshold: int,
    **options,
) -> InferenceResult:
    if effect_files is None or design is None or contrast is None:
        raise GroupModelError(
            "Inference method 'permutation' needs the effect maps, their design and a contrast"
        )
    if permutation_stat not in PERMUTATION_STATS:
        raise GroupModelError(
            f"Unknown permutation_stat {permutation_stat!r} "
            f"(allowed: {', '.join(PERMUTATION_STATS)})"
        )
    if permutation_stat in ("size", "mass") and cluster_forming_p is None:
        raise GroupModelError(
            f"permutation_stat={permutation_stat!r} needs cluster_forming_p, the "
            "cluster-forming p-value (e.g. 0.001)"
        )
    maps = permutation_inference(
        effect_files, design, contrast=contrast, two_sided=two_sided,
        cluster_forming_p=cluster_forming_p, tfce=permutation_stat == "tfce", **options,
    )  # fmt: skip
    logp = {key: img for key, img in maps.items() if key.startswith("logp_")}
    thresholded = fwe_threshold(maps["t"], logp[LOGP_MAPS[permutation_stat]], alpha=alpha)
    if cluster_threshold:
        # the same extent rule for the map as for its table (nilearn's threshold_img keeps
        # clusters of at least cluster_threshold voxels, either sign)
        thresholded = threshold_img(
            thresholded, threshold=1e-12, cluster_threshold=cluster_threshold,
            two_sided=True, copy_header=True,
        )  # fmt: skip
    # The map is already thresholded: every non-zero voxel is significant.
    table = cluster_table(
        thresholded, stat_threshold=0.0, cluster_threshold=cluster_threshold,
        two_sided=two_sided, min_distance=min_distance,
    )  # fmt: skip
    return InferenceResult(thresholded, -math.log10(alpha), table, logp_imgs=logp, t_img=maps["t"])
