"""Fixed effects against the installed nilearn's compute_fixed_effects; errors.

Tolerance: rtol 1e-10 on every map (same formulas; our inputs are float64, nilearn's are the
NIfTI values, so the NIfTI files are written in float64 here).
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from nilearn.glm import compute_fixed_effects as nilearn_fixed_effects
from nilearn.masking import apply_mask

from glmflow.core.fixed_effects import compute_fixed_effects
from glmflow.errors import ContrastError

SHAPE = (7, 8, 9)
AFFINE = np.diag([3.0, 3.0, 3.5, 1.0])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three runs' effect and variance maps on a mask, as float64 NIfTI files."""
    tmp = tmp_path_factory.mktemp("ffx")
    rng = np.random.default_rng(4)
    mask = np.zeros(SHAPE, np.uint8)
    mask[1:6, 2:7, 1:8] = 1
    nib.save(nib.Nifti1Image(mask, AFFINE), tmp / "mask.nii.gz")
    n_voxels = int(mask.sum())
    effects = [rng.normal(1.0, 1.0, n_voxels) for _ in range(3)]
    variances = [rng.uniform(0.2, 2.0, n_voxels) for _ in range(3)]
    files = {"effect": [], "variance": []}
    for key, maps in (("effect", effects), ("variance", variances)):
        for i, values in enumerate(maps):
            data = np.zeros(SHAPE)
            data[mask > 0] = values
            path = tmp / f"run{i}_{key}.nii.gz"
            nib.save(nib.Nifti1Image(data, AFFINE), path)
            files[key].append(str(path))
    return tmp / "mask.nii.gz", effects, variances, files


@pytest.mark.parametrize("precision_weighted", [True, False])
@pytest.mark.parametrize("dofs", [None, [50.0, 61.0, 48.0]])
def test_matches_nilearn(runs, precision_weighted, dofs):
    mask_file, effects, variances, files = runs
    ours = compute_fixed_effects(
        effects, variances, dofs=dofs, precision_weighted=precision_weighted
    )
    theirs = nilearn_fixed_effects(
        files["effect"],
        files["variance"],
        mask=str(mask_file),
        precision_weighted=precision_weighted,
        dofs=dofs,
    )
    for key, img in zip(("effect", "variance", "stat", "z"), theirs, strict=True):
        np.testing.assert_allclose(ours[key], apply_mask(img, mask_file), rtol=1e-10)
    assert ours["dof"] == (300.0 if dofs is None else 159.0)
    # one run with a tiny variance dominates the precision-weighted mean
    if precision_weighted:
        assert np.all(ours["variance"] < np.min(variances, axis=0))


def test_f_contrast_effects_are_combined_row_by_row():
    rng = np.random.default_rng(5)
    effects = [rng.normal(size=(2, 10)) for _ in range(2)]
    variances = [rng.uniform(0.5, 1.5, 10) for _ in range(2)]
    with pytest.warns(UserWarning, match="approximate fixed effects on F statistics"):
        result = compute_fixed_effects(effects, variances, dofs=[20, 20], precision_weighted=True)
    weights = 1 / np.array(variances)
    expected = (effects[0] * weights[0] + effects[1] * weights[1]) / weights.sum(0)
    np.testing.assert_allclose(result["effect"], expected, rtol=1e-12)
    np.testing.assert_allclose(result["stat"], (expected**2).sum(0) / 2 * weights.sum(0))


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (([], []), {}, r"Fixed effects need at least one run; got no effect map"),
        (
            ([np.ones(3)] * 2, [np.ones(3)]),
            {},
            r"Fixed effects got 2 effect maps but 1 variance maps; give one variance map",
        ),
        (
            ([np.ones(3)] * 2, [np.ones(3)] * 2),
            {"dofs": [10]},
            r"Fixed effects got 1 dofs for 2 runs; give one dof per run",
        ),
        (
            ([np.ones(3), np.ones(4)], [np.ones(3), np.ones(4)]),
            {},
            r"Fixed effects need maps of the same contrast on the same mask: effect shapes",
        ),
    ],
)
def test_bad_inputs(args, kwargs, message):
    with pytest.raises(ContrastError, match=message):
        compute_fixed_effects(*args, **kwargs, precision_weighted=False)
