"""Permutation inference of one group t contrast, with nilearn's public functions.

:func:`permutation_inference` runs :func:`nilearn.glm.second_level.non_parametric_inference`
on the design reparametrised by :func:`glmflow.core.group.contrasts.split_contrast` (nilearn's
own split keeps only the zero-weight columns as confounds, which loses part of the design when
the contrast weights several columns, e.g. ``a - 0.5*b - 0.5*c``), and adds the unpermuted t
map nilearn returns only with cluster or TFCE inference.
"""

from __future__ import annotations

from collections.abc import Sequence

import nibabel as nib
import numpy as np
import pandas as pd
from nilearn.glm.second_level import non_parametric_inference
from nilearn.image import mean_img
from nilearn.maskers import NiftiMasker
from nilearn.mass_univariate import permuted_ols

from glmflow.core.group.contrasts import ContrastDef, TestedSplit, contrast_weights, split_contrast
from glmflow.core.group.design import check_design
from glmflow.core.group.inputs import ImageLike, check_design_rows, check_group_inputs
from glmflow.errors import GroupModelError


def permutation_inference(
    effect_files: Sequence[ImageLike],
    design: pd.DataFrame | None = None,
    *,
    contrast: ContrastDef,
    mask: ImageLike | None = None,
    smoothing_fwhm: float | None = None,
    n_perm: int = 10000,
    two_sided: bool = False,
    cluster_forming_p: float | None = None,
    tfce: bool = False,
    model_intercept: bool = True,
    random_state: int | None = None,
    n_jobs: int = 1,
    design_source: str = "the design matrix",
    contrast_source: str = "the contrasts",
) -> dict[str, nib.Nifti1Image]:
    """Permutation inference with nilearn's ``non_parametric_inference``.

    Parameters
    ----------
    effect_files, design
        As in :func:`glmflow.core.group.fit_group_model`; ``contrast`` one t contrast
        (formula or weights; F contrasts are not permutable).
    cluster_forming_p, tfce
        A one-sided cluster-forming p-value adds cluster-size and cluster-mass FWE maps
        (``size``, ``logp_max_size``, ``mass``, ``logp_max_mass``); ``tfce`` TFCE maps.
    mask, smoothing_fwhm, n_perm, model_intercept, random_state, n_jobs
        As in nilearn; ``two_sided`` is nilearn's ``two_sided_test``. The values come from a
        valid :class:`glmflow.core.model.InferenceSpec` (its rules are not checked again).

    Returns
    -------
    dict
        ``t`` and ``logp_max_t`` (-log10 voxel-level max-t FWE p), plus the maps asked for.
    """
    files = check_design_rows(effect_files, design, design_source)
    design = check_design(design, source=design_source)
    split = _split(design, _t_weights(contrast, design, contrast_source), model_intercept)
    reparametrised = _design_of(split)
    check_group_inputs(files)
    # Paths go to nilearn as they are: it reads every map once here, and holding them
    # in memory as well would double the peak memory for large groups.
    out = non_parametric_inference(
        files,
        design_matrix=reparametrised,
        second_level_contrast=[1.0] + [0.0] * (reparametrised.shape[1] - 1),
        mask=mask,
        smoothing_fwhm=smoothing_fwhm, model_intercept=split.model_intercept, n_perm=n_perm,
        two_sided_test=two_sided, random_state=random_state, n_jobs=n_jobs,
        threshold=cluster_forming_p, tfce=tfce,
    )  # fmt: skip
    if isinstance(out, dict):
        return dict(out)
    return {
        "t": _original_t(files, split, mask, smoothing_fwhm),
        "logp_max_t": out,
    }


def _t_weights(contrast: ContrastDef, design: pd.DataFrame, source: str) -> np.ndarray:
    """The weights of the one t contrast that is permuted."""
    weights = contrast_weights(contrast, design.columns, name="permutation", source=source)
    if weights.ndim != 1:
        raise GroupModelError(
            f"Permutation inference tests one t contrast, got {len(weights)} rows (an F test) "
            f"from {source}; give a single formula or weight vector"
        )
    return weights


def _split(design: pd.DataFrame, weights: np.ndarray, model_intercept: bool) -> TestedSplit:
    """The reparametrised design; ``model_intercept`` adds the constant when it lacks one."""
    x = design.to_numpy(float)
    ones = np.ones((len(x), 1))
    if model_intercept and np.linalg.matrix_rank(np.hstack([x, ones])) > x.shape[1]:
        x, weights = np.hstack([x, ones]), np.r_[weights, 0.0]
    return split_contrast(x, weights)


def _design_of(split: TestedSplit) -> pd.DataFrame:
    """The split as a design whose first column is tested and whose others are confounds."""
    columns = {"tested": split.tested}
    if split.confounds is not None:
        columns |= {f"confound_{i + 1}": col for i, col in enumerate(split.confounds.T)}
    return pd.DataFrame(columns)


def _original_t(
    maps: list[ImageLike],
    split: TestedSplit,
    mask: ImageLike | None,
    smoothing_fwhm: float | None,
) -> nib.Nifti1Image:
    """The t map of the unpermuted data, as non_parametric_inference computes it.

    nilearn returns it only with cluster or TFCE inference; this repeats its masking and
    runs permuted_ols on the same split without permutations, so the map is the one nilearn
    would return.
    """
    masker = NiftiMasker(mask_img=mask, smoothing_fwhm=smoothing_fwhm, standardize=None)
    # nilearn learns a mask from the mean map when none is given (one more read of the maps)
    masker.fit(mean_img(maps) if mask is None else None)
    result = permuted_ols(
        split.tested,
        masker.transform(maps),
        confounding_vars=split.confounds,
        model_intercept=split.model_intercept,
        n_perm=0,
    )
    return masker.inverse_transform(np.ravel(result["t"]))
