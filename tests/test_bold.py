"""read_masked_bold against nibabel and nilearn's NiftiMasker; mask checks; helpers; node."""

from __future__ import annotations

import gzip
import warnings

import nibabel as nib
import numpy as np
import pytest
from nilearn.maskers import NiftiMasker

from glmflow.core.bold import (
    estimate_mem_gb,
    read_masked_bold,
    read_masked_maps,
    save_nifti,
    unmask,
    write_masked,
)
from glmflow.errors import DatasetError

SHAPE = (7, 8, 9)
AFFINE = np.array([[-3.0, 0, 0, 30], [0, 2.5, 0, -40], [0, 0, 3.5, -20], [0, 0, 0, 1]])


@pytest.fixture(scope="module")
def mask_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    mask = (rng.random(SHAPE) < 0.6).astype(np.uint8)
    path = tmp_path_factory.mktemp("mask") / "mask.nii.gz"
    nib.save(nib.Nifti1Image(mask, AFFINE), path)
    return path


def _write_bold(path, dtype, slope=None, n_volumes=6, seed=0):
    rng = np.random.default_rng(seed)
    data = (rng.random((*SHAPE, n_volumes)) * 120).astype(dtype)
    img = nib.Nifti1Image(data, AFFINE)
    if slope is not None:
        img.header.set_slope_inter(slope, 10.5)
    nib.save(img, path)
    return path


FORMATS = [
    ("float32", None, ".nii.gz"),
    ("float32", None, ".nii"),
    (">f4", None, ".nii"),
    ("float64", None, ".nii.gz"),
    ("int16", None, ".nii.gz"),
    ("int16", 0.37, ".nii.gz"),
    ("uint8", None, ".nii"),
    ("int32", 2.0, ".nii"),
]


@pytest.mark.parametrize(("dtype", "slope", "ext"), FORMATS)
def test_equals_nibabel(tmp_path, mask_file, dtype, slope, ext):
    bold = _write_bold(tmp_path / f"bold{ext}", dtype, slope)
    mask = nib.load(mask_file).get_fdata() > 0
    expected = nib.load(bold).get_fdata()[mask].T.astype(np.float32)
    ours = read_masked_bold(bold, mask_file)
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours, expected)


@pytest.mark.parametrize(("dtype", "slope", "ext"), FORMATS)
def test_smoothing_equals_nilearn_masker(tmp_path, mask_file, dtype, slope, ext):
    bold = _write_bold(tmp_path / f"bold{ext}", dtype, slope)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = NiftiMasker(str(mask_file), smoothing_fwhm=6.0).fit().transform(str(bold))
    ours = read_masked_bold(bold, mask_file, smoothing_fwhm=6.0)
    # identical arithmetic; float64 data are rounded to our float32 once
    np.testing.assert_array_equal(ours, expected.astype(np.float32))


def test_smoothing_zeroes_non_finite_values_like_nilearn(tmp_path, mask_file):
    data = np.random.default_rng(2).random((*SHAPE, 4)).astype(np.float32)
    data[(*np.argwhere(nib.load(mask_file).get_fdata() > 0)[-1], 1)] = np.nan
    data[0, 0, 0, 2] = np.inf
    bold = tmp_path / "nan.nii.gz"
    nib.save(nib.Nifti1Image(data, AFFINE), bold)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = NiftiMasker(str(mask_file), smoothing_fwhm=4.0).fit().transform(str(bold))
    np.testing.assert_array_equal(read_masked_bold(bold, mask_file, smoothing_fwhm=4.0), expected)
    with pytest.raises(DatasetError, match=r"nan.nii.gz has non-finite values \(NaN/inf\) in"):
        read_masked_bold(bold, mask_file)


def test_zero_fwhm_means_no_smoothing(tmp_path, mask_file):
    bold = _write_bold(tmp_path / "bold.nii.gz", "float32")
    np.testing.assert_array_equal(
        read_masked_bold(bold, mask_file, smoothing_fwhm=0.0), read_masked_bold(bold, mask_file)
    )


def _save(path, data, affine=AFFINE):
    nib.save(nib.Nifti1Image(data.astype(np.float32), affine), path)
    return path


def test_bad_masks_and_images(tmp_path, mask_file):
    bold = _write_bold(tmp_path / "bold.nii.gz", "float32")
    empty = _save(tmp_path / "empty.nii.gz", np.zeros(SHAPE, np.uint8))
    small = _save(tmp_path / "small.nii.gz", np.ones((7, 8, 10), np.uint8))
    moved = AFFINE.copy()
    moved[0, 3] += 0.5  # half a millimetre off
    shifted = _save(tmp_path / "shifted.nii.gz", np.ones(SHAPE, np.uint8), moved)
    labels = _save(tmp_path / "labels.nii.gz", np.arange(np.prod(SHAPE)).reshape(SHAPE) % 3)
    no_zero = _save(tmp_path / "nozero.nii.gz", np.arange(np.prod(SHAPE)).reshape(SHAPE) % 2 + 1)
    three_d = _save(tmp_path / "bold3d.nii.gz", np.ones(SHAPE, np.float32))
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(gzip.compress(gzip.decompress(bold.read_bytes())[:-500]))
    cases = [
        (bold, empty, rf"Mask {empty} is empty \(no non-zero voxel\); check the mask file"),
        (
            bold,
            small,
            rf"Mask {small} \(shape \(7, 8, 10\), voxels 3x2.5x3.5 mm\) is not on the grid of "
            rf"BOLD {bold} \(shape \(7, 8, 9\), voxels 3x2.5x3.5 mm\): shapes differ; use a mask",
        ),
        (bold, shifted, r"shifted.nii.gz .* is not on the grid of BOLD .*: affines differ"),
        (bold, labels, r"labels.nii.gz is not binary \(values: 0, 1, 2\); a mask must hold 0"),
        (bold, no_zero, r"nozero.nii.gz is not binary \(values: 1, 2\)"),
        (three_d, mask_file, r"BOLD .*bold3d.nii.gz must be a 4D image, got shape \(7, 8, 9\)"),
        (tmp_path / "absent.nii.gz", mask_file, r"BOLD .*absent.nii.gz does not exist"),
        (truncated, mask_file, r"truncated.nii.gz is truncated: volume 5 of 6 ends early"),
    ]
    for bold_file, mask, message in cases:
        with pytest.raises(DatasetError, match=message):
            read_masked_bold(bold_file, mask)
    with pytest.raises(DatasetError, match=r"smoothing_fwhm must be >= 0 mm, got -2"):
        read_masked_bold(bold, mask_file, smoothing_fwhm=-2)


def test_unmask_write_and_read_maps(tmp_path, mask_file):
    bold = _write_bold(tmp_path / "bold.nii.gz", "float32")
    data = read_masked_bold(bold, mask_file)
    path = write_masked(data, tmp_path)
    np.testing.assert_array_equal(np.load(path), data)
    img = unmask(data, mask_file)
    assert img.shape == (*SHAPE, 6) and img.get_data_dtype() == np.float32
    inside = (nib.load(mask_file).get_fdata() > 0)[..., None]
    np.testing.assert_array_equal(img.get_fdata(), nib.load(bold).get_fdata() * inside)
    saved = save_nifti(unmask(data[2].astype(np.float64), mask_file), tmp_path / "map.nii.gz")
    assert nib.load(saved).get_data_dtype() == np.float64
    np.testing.assert_array_equal(read_masked_maps(saved, mask_file), data[2])
    four_d = save_nifti(img, tmp_path / "maps.nii")
    np.testing.assert_array_equal(read_masked_maps(four_d, mask_file), data)
    with pytest.raises(DatasetError, match=r"Cannot unmask an array of shape \(5,\) with"):
        unmask(np.zeros(5), mask_file)


def test_estimate_mem_gb_reads_header_only(tmp_path):
    # a header claiming a 2 mm MNI run of 200 volumes, with no data behind it
    header = nib.Nifti1Header()
    header.set_data_shape((97, 115, 97, 200))
    header.set_data_dtype(np.int16)
    path = tmp_path / "header_only.nii"
    path.write_bytes(header.binaryblock + b"\0" * 4)
    float32_gb = 97 * 115 * 97 * 200 * 4 / 1024**3
    assert estimate_mem_gb(path) == pytest.approx(0.35 + 1.2 * float32_gb, abs=1e-3)
    full = estimate_mem_gb(path, minimize_memory=False)
    assert full == pytest.approx(0.35 + 2.5 * float32_gb, abs=1e-3)


def test_mask_and_smooth_node(tmp_path, mask_file):
    from nipype.pipeline import engine as pe

    from glmflow.interfaces.bold import MaskAndSmooth

    bold = _write_bold(tmp_path / "bold.nii.gz", "int16", 0.5)
    node = pe.Node(
        MaskAndSmooth(bold_file=str(bold), mask_file=str(mask_file), smoothing_fwhm=5.0),
        name="mask_and_smooth",
        base_dir=str(tmp_path),
    )
    out = node.run().outputs
    np.testing.assert_array_equal(
        np.load(out.data_file), read_masked_bold(bold, mask_file, smoothing_fwhm=5.0)
    )
    assert out.mask_file == str(mask_file)
