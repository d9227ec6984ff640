"""One run's fit from the files the graph passes: masked data, design, sample mask."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from glmflow.core.bold import save_nifti, unmask
from glmflow.core.design import read_design
from glmflow.core.glm.engine import fit_glm
from glmflow.core.glm.inputs import read_sample_mask
from glmflow.core.glm.results import save_fit

# FirstLevelFit's optional maps (minimize_memory off), written as <name>.nii.gz
_MAPS = ("residuals", "predicted", "r_square")


def fit_run_files(
    data_file: str | os.PathLike,
    design_file: str | os.PathLike,
    *,
    mask_file: str | os.PathLike,
    out_dir: str | os.PathLike,
    sample_mask_file: str | os.PathLike | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Fit one run with :func:`fit_glm` and write ``fit.npz`` (and the model maps).

    ``data_file`` is the masked BOLD ``.npy`` (read memory-mapped: the fit reads voxel
    chunks), ``design_file`` a ``design.tsv`` (``write_design``), ``sample_mask_file`` a
    ``sample_mask.json`` (``read_sample_mask``) or None to keep every volume, and
    ``options`` those of :func:`fit_glm`. Returns ``fit_file``, ``dof`` and, when
    ``minimize_memory`` is False, ``residuals_file``, ``predicted_file``, ``r_square_file``
    (images on ``mask_file``'s grid).
    """
    data = np.load(data_file, mmap_mode="r")
    sample_mask = None
    if sample_mask_file is not None:
        sample_mask = read_sample_mask(sample_mask_file, data.shape[0])
    design, _ = read_design(design_file)
    fit = fit_glm(data, design, sample_mask=sample_mask, source=str(design_file), **options)
    out_dir = Path(out_dir)
    files: dict[str, Any] = {
        "fit_file": str(save_fit(fit, out_dir / "fit.npz")),
        "dof": fit.df_residuals,
    }
    if fit.residuals is not None:
        for key in _MAPS:
            img = unmask(getattr(fit, key), mask_file)
            files[f"{key}_file"] = str(save_nifti(img, out_dir / f"{key}.nii.gz"))
    return files
