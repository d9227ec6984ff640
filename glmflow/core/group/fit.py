"""Group model fits: nilearn's SecondLevelModel (OLS) or precision-weighted fixed effects.

The fit's options come from a valid :class:`glmflow.core.model.GroupSpec`; only what
depends on the maps and the design is checked here.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import get_args

import nibabel as nib
import numpy as np
import pandas as pd
from nilearn.glm import Contrast, compute_contrast
from nilearn.glm.second_level import SecondLevelModel
from nilearn.image import index_img
from nilearn.maskers import NiftiMasker

from glmflow.core.group.contrasts import ContrastDef, contrast_weights
from glmflow.core.group.design import check_design
from glmflow.core.group.inputs import (
    ImageLike,
    as_affine,
    check_design_rows,
    check_group_inputs,
    load_maps,
    mask_with_data,
)
from glmflow.core.model import GroupOutputType, GroupSpec
from glmflow.errors import GroupModelError

#: the maps of one fit (the spec's output types less "all")
OUTPUT_TYPES: tuple[str, ...] = tuple(t for t in get_args(GroupOutputType) if t != "all")
_TINY_VARIANCE = 1e-16  # nilearn's floor for variance maps in compute_fixed_effects
#: dof of a map whose first level gives none (nilearn's convention in compute_fixed_effects)
DEFAULT_DOF = 100.0
_DEFAULT = GroupSpec()  # one-sample OLS, no smoothing, no resampling


@dataclass
class GroupFit:
    """Maps produced by :func:`fit_group_model`.

    Attributes
    ----------
    maps : dict
        ``maps[contrast_name][output_type]`` with output types :data:`OUTPUT_TYPES`.
    model_maps : dict
        ``residuals`` and ``predicted`` (4-D, one volume per input map) and ``r_square``;
        empty when ``minimize_memory`` is True.
    contrasts : dict
        The weights of each contrast (1-D for t, 2-D for F), in design column order.
    design : pandas.DataFrame
        The design that was fitted, one row per input map.
    mask_img : nibabel.Nifti1Image
        The mask of the analysed voxels.
    """

    maps: dict[str, dict[str, nib.Nifti1Image]]
    contrasts: dict[str, np.ndarray]
    design: pd.DataFrame
    mask_img: nib.Nifti1Image
    model_maps: dict[str, nib.Nifti1Image] = field(default_factory=dict)


def fit_group_model(
    effect_files: Sequence[ImageLike],
    design: pd.DataFrame | None = None,
    *,
    contrasts: Mapping[str, ContrastDef],
    group: GroupSpec = _DEFAULT,
    variance_files: Sequence[ImageLike] | None = None,
    mask: ImageLike | None = None,
    dofs: Sequence[float] | None = None,
    n_jobs: int = 1,
    design_source: str = "the design matrix",
    contrast_source: str = "the contrasts",
) -> GroupFit:
    """Fit a group model and compute every contrast.

    Parameters
    ----------
    effect_files, design
        One first-level effect map per row of the group design (:func:`make_group_design`).
    contrasts : mapping of name to contrast
        Formula or weight vector (t test); list of formulas or weight matrix (F test).
    group : GroupSpec
        The fit's options, valid by construction: ``method`` "ols" (nilearn's
        SecondLevelModel: mixed effects via summary statistics) or "fixed" (precision-weighted
        least squares with the first-level variances as known variances; for a one-sample
        design nilearn's ``compute_fixed_effects(..., precision_weighted=True)``),
        ``smoothing_fwhm``, ``target_affine``, ``target_shape``, ``minimize_memory``.
    variance_files, dofs
        First-level variance maps and dofs, in the maps' order (``fixed`` only; the statistic
        uses the dofs' sum, 100 per map when omitted, as nilearn).
    mask, n_jobs
        As in :class:`~nilearn.glm.second_level.SecondLevelModel`.
    design_source, contrast_source : str
        Names of the files the design and the contrasts came from, for error messages.

    Returns
    -------
    GroupFit
    """
    files = check_design_rows(effect_files, design, design_source)
    design = check_design(design, source=design_source, fixed=group.method == "fixed")
    if not contrasts:
        raise GroupModelError(f"No group contrast in {contrast_source}; define at least one")
    weights = {
        name: contrast_weights(definition, design.columns, name=name, source=contrast_source)
        for name, definition in contrasts.items()
    }
    _check_variances(group.method, files, variance_files, dofs)
    check_group_inputs(files, variance_files=variance_files, target_affine=group.target_affine)
    affine = None if group.target_affine is None else as_affine(group.target_affine)
    grid = {"target_affine": affine, "target_shape": group.target_shape}
    effects = load_maps(files, **grid)
    if affine is not None:  # the maps now share the grid the masker must use
        grid = {"target_affine": effects[0].affine, "target_shape": effects[0].shape}
    mask = None if mask is None else mask_with_data(mask, effects)[0]  # said: check_group_mask
    with _resampling_said_once():
        if group.method == "fixed":
            variances = load_maps(variance_files, **grid)
            return _fit_fixed(effects, variances, design, weights, mask, grid, dofs)
        return _fit_ols(effects, design, weights, group, mask=mask, grid=grid, n_jobs=n_jobs)


@contextlib.contextmanager
def _resampling_said_once() -> Iterator[None]:
    """nilearn's warning of every fit, said once for the level, with the target grid."""
    with warnings.catch_warnings():  # the level's warning: inputs.check_group_mask
        warnings.filterwarnings("ignore", message="imgs are being resampled to the mask_img")
        yield


def _fit_ols(effects, design, weights, group: GroupSpec, *, mask, grid, n_jobs) -> GroupFit:
    """nilearn's SecondLevelModel, fitted once for every contrast."""
    model = SecondLevelModel(
        mask_img=mask,
        smoothing_fwhm=group.smoothing_fwhm,
        minimize_memory=group.minimize_memory,
        n_jobs=n_jobs,
        **grid,
    ).fit(effects, design_matrix=design.reset_index(drop=True))
    maps = _contrast_maps(model, weights)
    model_maps = {}
    if not group.minimize_memory:
        model_maps = {key: _model_attribute(model, key) for key in ("residuals", "predicted")}
        # nilearn returns r-squared as a 4-D image with one volume.
        model_maps["r_square"] = index_img(_model_attribute(model, "r_square"), 0)
    return GroupFit(maps, weights, design, model.masker_.mask_img_, model_maps)


def _contrast_maps(
    model: SecondLevelModel, weights: dict[str, np.ndarray]
) -> dict[str, dict[str, nib.Nifti1Image]]:
    """All output maps of every contrast, fitting the GLM once.

    SecondLevelModel.compute_contrast re-reads, re-masks and refits the maps for every
    contrast; the maps are the same for all of them here, so the first call fits and the
    others reuse its fit through nilearn's public compute_contrast (identical numbers).
    """
    maps = {}
    for name, w in weights.items():
        stat_type = "F" if w.ndim == 2 else "t"
        if not maps:
            maps[name] = model.compute_contrast(
                w, second_level_stat_type=stat_type, output_type="all"
            )
            continue
        contrast = compute_contrast(model.labels_, model.results_, w, stat_type)
        maps[name] = {}
        for key in OUTPUT_TYPES:
            img = model.masker_.inverse_transform(getattr(contrast, key)())
            img.header["descrip"] = f"{key} of contrast {w}"  # as nilearn labels its maps
            maps[name][key] = img
    return maps


def _model_attribute(model: SecondLevelModel, name: str) -> nib.Nifti1Image:
    # nilearn >= 0.14 renamed residuals/predicted/r_square to the fitted-attribute form.
    if hasattr(type(model), f"{name}_"):
        return getattr(model, f"{name}_")
    return getattr(model, name)


def _check_variances(
    method: str,
    files: list,
    variance_files: Sequence[ImageLike] | None,
    dofs: Sequence[float] | None,
) -> None:
    """The variance maps and dofs given match the method and the maps."""
    if method == "ols":
        if variance_files is not None:
            raise GroupModelError(
                "variance_files are only used by method='fixed'; drop them or set method='fixed'"
            )
        return
    if variance_files is None or len(variance_files) != len(files):
        got = 0 if variance_files is None else len(variance_files)
        raise GroupModelError(
            f"method='fixed' needs one variance map per effect map ({len(files)}), got {got}; "
            "pass the first-level stat-variance maps in the same order"
        )
    if dofs is not None and len(dofs) != len(files):
        raise GroupModelError(
            f"dofs has {len(dofs)} values for {len(files)} maps; give one per map"
        )


def _fit_fixed(
    effects: list[nib.Nifti1Image],
    variances: list[nib.Nifti1Image],
    design: pd.DataFrame,
    weights: dict[str, np.ndarray],
    mask: ImageLike | None,
    grid: dict,
    dofs: Sequence[float] | None,
) -> GroupFit:
    """Precision-weighted least squares, voxel by voxel, with known variances."""
    # Same masker as nilearn's compute_fixed_effects (mask from the effect maps when absent).
    masker = NiftiMasker(
        mask_img=mask,
        **grid,
        standardize=None,  # nilearn 0.14 warns on the old default False; None is "no scaling"
    )
    masker.fit(effects if mask is None else None)
    y = masker.transform(effects)
    precision = 1.0 / np.maximum(masker.transform(variances), _TINY_VARIANCE)
    x = design.to_numpy()
    xtwx = np.einsum("ni,nv,nj->vij", x, precision, x)
    xtwy = np.einsum("ni,nv->vi", x, precision * y)
    covariance = np.linalg.inv(xtwx)
    beta = np.einsum("vij,vj->vi", covariance, xtwy)
    dof = float(np.sum(dofs)) if dofs is not None else DEFAULT_DOF * len(effects)
    maps = {}
    for name, w in weights.items():
        values = _fixed_contrast(w, beta, covariance, dof)
        maps[name] = {key: masker.inverse_transform(v) for key, v in values.items()}
    return GroupFit(maps, weights, design, masker.mask_img_)


def _fixed_contrast(
    w: np.ndarray, beta: np.ndarray, covariance: np.ndarray, dof: float
) -> dict[str, np.ndarray]:
    """The in-mask values of every output type of one contrast with known variances."""
    matrix = np.atleast_2d(w)
    effect = matrix @ beta.T  # (q, voxels)
    variance = np.einsum("qi,vij,rj->vqr", matrix, covariance, matrix)
    if w.ndim == 1:
        contrast = Contrast(effect[0], variance[:, 0, 0], dof=dof, stat_type="t")
        raw = {"effect_size": effect[0], "effect_variance": variance[:, 0, 0]}
    else:
        # |L' e|^2 = e' V^-1 e for the Cholesky factor L of V^-1: the F statistic with
        # known variances (dispersion 1), without a per-voxel matrix square root.
        whitening = np.linalg.cholesky(np.linalg.inv(variance))
        whitened = np.einsum("vqr,qv->rv", whitening, effect)
        contrast = Contrast(
            whitened, np.ones(effect.shape[1]), dim=len(matrix), dof=dof, stat_type="F"
        )
        raw = {
            "effect_size": effect,
            "effect_variance": np.diagonal(variance, axis1=1, axis2=2).T,
        }
    stats = {key: getattr(contrast, key)() for key in ("z_score", "stat", "p_value")}
    return {**stats, **raw}
