"""Parity with nilearn: parcel and sphere time series, connectivity matrices (< 1e-6)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from nilearn.connectome import ConnectivityMeasure
from nilearn.maskers import NiftiLabelsMasker, NiftiSpheresMasker

from glmflow.core.rest.atlas import Atlas, ResampledAtlasWarning
from glmflow.core.rest.extract import clean_signals, read_signals
from glmflow.core.rest.measures import RUN_MEASURES, connectivity_matrix
from glmflow.core.rest.spec import CleanSpec

SHAPE, N = (7, 8, 9), 60
CLEAN = [
    CleanSpec(high_pass=0.01, low_pass=0.1),
    CleanSpec(detrend=False, standardize="psc", high_pass=None, low_pass=0.2),
    CleanSpec(detrend=True, standardize=None, high_pass=None, low_pass=None),
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    rng = np.random.default_rng(0)
    d = tmp_path_factory.mktemp("parity")
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    affine[:3, 3] = [-10, -12, -12]
    shared = rng.normal(size=(N, 1, 1, 1))
    data = 100 + rng.normal(size=(*SHAPE, N)) + np.moveaxis(shared, 0, -1)
    nib.save(nib.Nifti1Image(data.astype(np.float32), affine), d / "bold.nii.gz")
    mask = np.zeros(SHAPE, np.uint8)
    mask[1:6, 1:7, 1:8] = 1
    nib.save(nib.Nifti1Image(mask, affine), d / "mask.nii.gz")
    labels = np.zeros(SHAPE, np.int16)
    labels[1:4, 1:4, 1:8], labels[4:6, 1:4, 1:8] = 1, 3
    labels[1:6, 4:7, 1:4], labels[1:6, 4:7, 4:8] = 2, 5
    nib.save(nib.Nifti1Image(labels, affine), d / "labels.nii.gz")
    confounds = rng.normal(size=(N, 3))
    sample_mask = np.array([t for t in range(N) if t not in (10, 11, 30)])
    return d, confounds, sample_mask


def _ours(d, atlas, clean, confounds, sample_mask):
    raw = read_signals(d / "bold.nii.gz", d / "mask.nii.gz", atlas)
    return clean_signals(
        raw.regions, clean, tr=2.0, confounds=confounds, sample_mask=sample_mask, where="x"
    )


@pytest.mark.parametrize("clean", CLEAN)
@pytest.mark.parametrize("censor", [False, True])
def test_labels_equal_nilearn_labels_masker(run, clean, censor):
    d, confounds, sample_mask = run
    sample_mask = sample_mask if censor else None
    atlas = Atlas("labels", "x", ("a", "b", "c", "d"), str(d / "labels.nii.gz"), (1, 2, 3, 5))
    ours = _ours(d, atlas, clean, confounds, sample_mask)
    masker = NiftiLabelsMasker(d / "labels.nii.gz", mask_img=d / "mask.nii.gz", t_r=2.0,
                               **clean.to_dict())  # fmt: skip
    theirs = masker.fit_transform(d / "bold.nii.gz", confounds=confounds, sample_mask=sample_mask)
    assert ours.shape == theirs.shape == ((N - 3) if censor else N, 4)
    assert np.abs(ours - theirs).max() < 1e-6


def test_atlas_on_another_grid_is_resampled_like_nilearn(run, tmp_path):
    d, confounds, _ = run
    img = nib.load(d / "labels.nii.gz")
    big = np.repeat(np.repeat(np.repeat(np.asarray(img.dataobj), 3, 0), 3, 1), 3, 2)
    affine = img.affine.copy()
    affine[:3, :3] /= 3
    affine[:3, 3] -= 1  # 1-mm voxels whose centres tile the 3-mm ones
    nib.save(nib.Nifti1Image(big, affine), tmp_path / "fine.nii.gz")
    atlas = Atlas("labels", "x", ("a", "b", "c", "d"), str(tmp_path / "fine.nii.gz"), (1, 2, 3, 5))
    with pytest.warns(ResampledAtlasWarning, match="resampled to it by nearest neighbour"):
        ours = _ours(d, atlas, CLEAN[0], confounds, None)
    masker = NiftiLabelsMasker(tmp_path / "fine.nii.gz", mask_img=d / "mask.nii.gz", t_r=2.0,
                               **CLEAN[0].to_dict())  # fmt: skip
    theirs = masker.fit_transform(d / "bold.nii.gz", confounds=confounds)
    assert np.abs(ours - theirs).max() < 1e-6


@pytest.mark.parametrize("radius", [0.0, 4.0, 7.0])
def test_spheres_equal_nilearn_spheres_masker(run, radius):
    d, confounds, sample_mask = run
    seeds = [(-6.0, -6.0, -6.0), (-3.0, 6.0, 6.0), (4.0, 0.0, 3.0)]
    atlas = Atlas("spheres", "s", ("a", "b", "c"), coordinates=tuple(seeds), radius=radius,
                  allow_overlap=True)  # fmt: skip
    ours = _ours(d, atlas, CLEAN[0], confounds, sample_mask)
    masker = NiftiSpheresMasker(seeds, radius=radius, mask_img=d / "mask.nii.gz", t_r=2.0,
                                allow_overlap=True, **CLEAN[0].to_dict())  # fmt: skip
    theirs = masker.fit_transform(d / "bold.nii.gz", confounds=confounds, sample_mask=sample_mask)
    assert np.abs(ours - theirs).max() < 1e-6


@pytest.mark.parametrize("measure", [m for m in RUN_MEASURES if m != "sparse inverse covariance"])
def test_matrices_equal_connectivity_measure(run, measure):
    d, confounds, _ = run
    atlas = Atlas("labels", "x", ("a", "b", "c", "d"), str(d / "labels.nii.gz"), (1, 2, 3, 5))
    series = _ours(d, atlas, CLEAN[0], confounds, None)
    theirs = ConnectivityMeasure(kind=measure).fit_transform([series])[0]
    assert np.abs(connectivity_matrix(series, measure) - theirs).max() < 1e-6


def test_sparse_inverse_covariance_is_graphical_lasso_cv(run):
    from sklearn.covariance import GraphicalLassoCV

    d, confounds, _ = run
    atlas = Atlas("labels", "x", ("a", "b", "c", "d"), str(d / "labels.nii.gz"), (1, 2, 3, 5))
    series = _ours(d, atlas, CLEAN[0], confounds, None)
    theirs = GraphicalLassoCV().fit(series).precision_
    ours = connectivity_matrix(series, "sparse inverse covariance")
    assert np.abs(ours - theirs).max() < 1e-6
