"""read_masked_bold against nibabel and nilearn's NiftiMasker; mask checks; helpers; node."""

from __future__ import annotations

import gzip
import re
import warnings

import nibabel as nib
import numpy as np
import pytest
from nilearn.maskers import NiftiMasker

from glmflow.core.bold import (
    ExcludedVoxelsWarning,
    check_gzip_size,
    estimate_mem_gb,
    read_bold,
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


def test_non_finite_values_outside_the_mask_are_zeroed_like_nilearn(tmp_path, mask_file):
    data = np.random.default_rng(2).random((*SHAPE, 4)).astype(np.float32)
    outside = np.argwhere(nib.load(mask_file).get_fdata() == 0)
    data[(*outside[0], 1)] = np.nan
    data[(*outside[-1], 2)] = np.inf
    bold = tmp_path / "nan.nii.gz"
    nib.save(nib.Nifti1Image(data, AFFINE), bold)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = NiftiMasker(str(mask_file), smoothing_fwhm=4.0).fit().transform(str(bold))
    np.testing.assert_array_equal(read_masked_bold(bold, mask_file, smoothing_fwhm=4.0), expected)


def _bad_voxel_bold(tmp_path, mask_file, spike=np.nan, constant=0.0, name="bad.nii.gz"):
    """A run with one mask voxel NaN in one volume and one mask voxel constant (0)."""
    data = (np.random.default_rng(3).random((*SHAPE, 5)) * 100 + 50).astype(np.float32)
    inside = np.argwhere(nib.load(mask_file).get_fdata() > 0)
    data[(*inside[40], 2)] = spike
    data[tuple(inside[100])] = constant
    return _save(tmp_path / name, data), data, inside


def test_isolated_bad_voxels_are_left_out_with_a_warning(tmp_path, mask_file):
    bold, data, inside = _bad_voxel_bold(tmp_path, mask_file)
    mask = nib.load(mask_file).get_fdata() > 0
    n_mask = int(mask.sum())
    message = (
        f"BOLD {bold}: 2 of the {n_mask} voxels of mask {mask_file} have no usable signal (1 "
        "with NaN/inf values, 1 constant over time); they are left out of this run's analysis "
        "(its maps are 0 there) and not smoothed into their neighbours"
    )
    with pytest.warns(ExcludedVoxelsWarning) as caught:
        result = read_bold(bold, mask_file)
    assert [str(w.message) for w in caught] == [message]
    kept = mask.copy()
    kept[tuple(inside[40])] = kept[tuple(inside[100])] = False
    np.testing.assert_array_equal(result.mask, kept)
    np.testing.assert_array_equal(result.data, data[kept].T)
    assert result.record() == {
        "MaskVoxels": n_mask,
        "ExcludedVoxels": 2,
        "ExcludedNonFiniteVoxels": 1,
        "ExcludedConstantVoxels": 1,
    }


BIG = (31, 36, 27)


def _big_mask(kind: str) -> np.ndarray:
    """Masks on which the smoothing's plan (only the voxels the mask's values read) is
    tested: a brain-like ellipsoid, one cut by the array's edges, scattered pieces, one voxel."""
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, n) for n in BIG), indexing="ij")
    if kind == "ellipsoid":
        return (x / 0.7) ** 2 + (y / 0.8) ** 2 + (z / 0.6) ** 2 < 1
    if kind == "cut by the edges":
        return (x - 0.6) ** 2 + (y + 0.5) ** 2 + (z - 0.7) ** 2 < 0.8
    if kind == "pieces":
        return np.random.default_rng(3).random(BIG) < 0.004
    mask = np.zeros(BIG, dtype=bool)
    mask[20, 7, 13] = True
    return mask


@pytest.mark.parametrize("kind", ["ellipsoid", "cut by the edges", "pieces", "one voxel"])
@pytest.mark.parametrize("fwhm", [3.0, 8.0, (5.0, 0.0, 9.0)], ids=["3mm", "8mm", "5-0-9mm"])
def test_smoothing_only_where_the_mask_reads_equals_nilearn(tmp_path, kind, fwhm):
    """Smoothing computes each pass only where the mask's final values read it; those values
    equal NiftiMasker's whole-volume smoothing bit for bit, with and without bad voxels
    (whose expected values: nilearn's kernel as a normalised convolution)."""
    from nilearn.image import smooth_img

    mask = _big_mask(kind)
    affine = np.diag([2.0, 2.5, 3.0, 1.0])
    mask_path = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), mask_path)
    rng = np.random.default_rng(1)
    data = (rng.random((*BIG, 3)) * 100 + 50).astype(np.float32)
    bold = tmp_path / "bold.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), bold)
    if isinstance(fwhm, tuple):  # per axis: NiftiMasker takes one fwhm, smooth_img three
        expected = smooth_img(str(bold), np.array(fwhm)).get_fdata(dtype=np.float32)[mask].T
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            masker = NiftiMasker(str(mask_path), smoothing_fwhm=fwhm).fit()
            expected = masker.transform(str(bold))
    ours = read_masked_bold(bold, mask_path, smoothing_fwhm=np.array(fwhm))
    np.testing.assert_array_equal(ours, expected)
    if mask.sum() < 2:
        return
    inside = np.argwhere(mask)
    data[tuple(inside[len(inside) // 2])] = np.nan
    nib.save(nib.Nifti1Image(data, affine), bold)
    with pytest.warns(ExcludedVoxelsWarning):
        result = read_bold(bold, mask_path, smoothing_fwhm=np.array(fwhm))
    valid = np.isfinite(data[..., 0]).astype(np.float32)
    zeroed = np.where(valid[..., None] > 0, data, 0).astype(np.float32)
    numerator = smooth_img(nib.Nifti1Image(zeroed, affine), np.array(fwhm))
    weights = smooth_img(nib.Nifti1Image(valid, affine), np.array(fwhm))
    numerator, weights = (i.get_fdata(dtype=np.float32) for i in (numerator, weights))
    np.testing.assert_array_equal(
        result.data, (numerator[result.mask] / weights[result.mask][:, None]).T
    )


def test_bad_voxels_are_never_smoothed_into_their_neighbours(tmp_path, mask_file):
    from nilearn.image import smooth_img

    bold, data, inside = _bad_voxel_bold(tmp_path, mask_file)
    other, _, _ = _bad_voxel_bold(tmp_path, mask_file, np.inf, 1e6, name="other.nii.gz")
    with pytest.warns(ExcludedVoxelsWarning):
        result = read_bold(bold, mask_file, smoothing_fwhm=6.0)
    with pytest.warns(ExcludedVoxelsWarning):
        # the bad voxels' values (NaN or inf, 0 or 1e6) change nothing in the others
        np.testing.assert_array_equal(
            read_bold(other, mask_file, smoothing_fwhm=6.0).data, result.data
        )
    # the expected values: a normalised convolution with nilearn's kernel
    valid = np.ones(SHAPE, np.float32)
    valid[tuple(inside[40])] = valid[tuple(inside[100])] = 0
    zeroed = np.where(valid[..., None] > 0, data, 0).astype(np.float32)
    numerator = smooth_img(nib.Nifti1Image(zeroed, AFFINE), 6.0).get_fdata(dtype=np.float32)
    weights = smooth_img(nib.Nifti1Image(valid, AFFINE), 6.0).get_fdata(dtype=np.float32)
    expected = (numerator[result.mask] / weights[result.mask][:, None]).T
    np.testing.assert_allclose(result.data, expected, rtol=1e-6)


@pytest.mark.parametrize(
    ("fill", "counts"),
    [
        (np.nan, "{n} with NaN/inf values, 0 constant over time"),
        (0.0, "0 with NaN/inf values, {n} constant over time"),
    ],
    ids=["all-NaN", "all-zero"],
)
@pytest.mark.parametrize("fwhm", [None, 5.0])
def test_a_bold_without_signal_is_an_error(tmp_path, mask_file, fill, counts, fwhm):
    bold = _save(tmp_path / "empty_bold.nii.gz", np.full((*SHAPE, 5), fill, np.float32))
    n = int((nib.load(mask_file).get_fdata() > 0).sum())
    message = (
        f"BOLD {bold}: {n} of the {n} voxels of mask {mask_file} have no usable signal "
        f"({counts.format(n=n)}), more than 10% of the mask; check that its preprocessing "
        "succeeded (an empty or failed run) and that the mask is this run's"
    )
    with pytest.raises(DatasetError) as caught:
        read_bold(bold, mask_file, smoothing_fwhm=fwhm)
    assert str(caught.value) == message


def test_just_over_a_tenth_of_the_mask_bad_is_an_error(tmp_path, mask_file):
    data = np.random.default_rng(4).random((*SHAPE, 5)).astype(np.float32) + 1
    inside = np.argwhere(nib.load(mask_file).get_fdata() > 0)
    n = len(inside)
    limit = int(0.1 * n)
    for voxel in inside[:limit]:
        data[(*voxel, 0)] = np.inf
    ok = _save(tmp_path / "ok.nii.gz", data)
    with pytest.warns(ExcludedVoxelsWarning, match=f"{limit} of the {n} voxels"):
        assert read_bold(ok, mask_file).data.shape == (5, n - limit)
    data[(*inside[limit], 0)] = np.nan
    bad = _save(tmp_path / "bad.nii.gz", data)
    with pytest.raises(DatasetError, match=rf"{limit + 1} of the {n} voxels .* more than 10%"):
        read_bold(bad, mask_file)


def test_masked_values_equal_nilearn_apply_mask(tmp_path, mask_file):
    """The reader re-implements nilearn's masking: pinned to the installed nilearn."""
    from nilearn.masking import apply_mask

    for dtype, slope, ext in FORMATS:
        bold = _write_bold(tmp_path / f"bold_{dtype.strip('<>')}_{slope}{ext}", dtype, slope)
        expected = apply_mask(str(bold), str(mask_file))  # float64 for float64 data
        np.testing.assert_array_equal(
            read_masked_bold(bold, mask_file), expected.astype(np.float32)
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            masker = NiftiMasker(str(mask_file), smoothing_fwhm=5.0).fit()
            expected = masker.transform(str(bold))
        np.testing.assert_array_equal(
            read_masked_bold(bold, mask_file, smoothing_fwhm=5.0), expected.astype(np.float32)
        )


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


def test_gzip_trailer_finds_a_truncated_file_in_one_seek(tmp_path, mask_file):
    bold = _write_bold(tmp_path / "bold.nii.gz", "float32")
    check_gzip_size(nib.load(bold))  # a whole file passes
    members = tmp_path / "members.nii.gz"  # two gzip members: the trailer is the last one's
    raw = gzip.decompress(bold.read_bytes())
    members.write_bytes(gzip.compress(raw[:5000]) + gzip.compress(raw[5000:]))
    check_gzip_size(nib.load(members))
    expected = 352 + 7 * 8 * 9 * 6 * 4
    short = tmp_path / "short.nii.gz"
    short.write_bytes(gzip.compress(gzip.decompress(bold.read_bytes())[:-500]))
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(bold.read_bytes()[:-3000])
    plain = _write_bold(tmp_path / "plain.nii", "float32")
    (tmp_path / "plain_cut.nii").write_bytes(plain.read_bytes()[:-10])
    with pytest.raises(DatasetError) as caught:
        check_gzip_size(nib.load(short))
    assert str(caught.value) == (
        f"BOLD {short} is truncated or corrupt: its gzip trailer says {expected - 500} bytes "
        f"uncompressed but its header implies {expected} (shape (7, 8, 9, 6), float32); "
        "re-create or copy the file again"
    )
    with pytest.raises(DatasetError, match=r"cut.nii.gz is truncated or corrupt: its gzip"):
        check_gzip_size(nib.load(cut))
    with pytest.raises(DatasetError) as caught:
        check_gzip_size(nib.load(tmp_path / "plain_cut.nii"))
    assert str(caught.value) == (
        f"BOLD {tmp_path / 'plain_cut.nii'} is truncated: {expected - 10} bytes on disk but "
        f"its header implies {expected} (shape (7, 8, 9, 6), float32); re-create or copy the "
        "file again"
    )


def test_a_corrupt_gzip_stream_is_one_line_naming_the_file(tmp_path, mask_file):
    bold = _write_bold(tmp_path / "bold.nii.gz", "float32", n_volumes=20)
    raw = bytearray(bold.read_bytes())
    raw[len(raw) // 2 : len(raw) // 2 + 8] = b"\xff" * 8  # the trailer (size) stays intact
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(bytes(raw))
    check_gzip_size(nib.load(corrupt))  # the cheap check cannot see it
    with pytest.raises(DatasetError) as caught:
        read_bold(corrupt, mask_file)
    assert re.fullmatch(
        rf"BOLD {re.escape(str(corrupt))} cannot be read at volume \d+ of 20 \(\w+: .+\): "
        "the file is corrupt or truncated; re-create it or copy it again",
        str(caught.value),
    ), caught.value


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


def test_unmask_writes_the_bytes_of_a_fresh_nibabel_image(mask_file):
    # unmask reuses one header per affine; every map must still be what nibabel writes for
    # nib.Nifti1Image(data, affine) with mm units, whatever was unmasked before it
    import io

    def written(img):
        buffer = io.BytesIO()
        img.to_file_map({"image": nib.FileHolder(fileobj=buffer)})
        return buffer.getvalue()

    mask = nib.load(mask_file).get_fdata() > 0
    affine = nib.load(mask_file).affine
    rng = np.random.default_rng(3)
    for values in (
        rng.standard_normal(mask.sum()),
        rng.standard_normal((3, mask.sum())),
        rng.standard_normal(mask.sum()).astype(np.float32),
        np.arange(mask.sum()),
    ):
        dtype = values.dtype if values.dtype == np.float64 else np.float32
        data = np.zeros(mask.shape + values.shape[:-1], dtype=dtype)
        data[mask] = values.T
        fresh = nib.Nifti1Image(data, affine)
        fresh.header.set_xyzt_units("mm")
        assert written(unmask(values, mask_file)) == written(fresh)


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
    import json

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
    n_mask = int((nib.load(mask_file).get_fdata() > 0).sum())
    assert json.loads(open(out.record_file).read()) == {
        "ExcludedConstantVoxels": 0,
        "ExcludedNonFiniteVoxels": 0,
        "ExcludedVoxels": 0,
        "MaskVoxels": n_mask,
    }
    # bad voxels: the node hands on the mask without them, and says how many it left out
    bad, _, _ = _bad_voxel_bold(tmp_path, mask_file)
    node = pe.Node(
        MaskAndSmooth(bold_file=str(bad), mask_file=str(mask_file)),
        name="mask_bad",
        base_dir=str(tmp_path),
    )
    with pytest.warns(ExcludedVoxelsWarning):
        out = node.run().outputs
    kept = nib.load(out.mask_file).get_fdata() > 0
    assert out.mask_file != str(mask_file) and kept.sum() == n_mask - 2
    assert np.load(out.data_file).shape == (5, n_mask - 2)
    assert json.loads(open(out.record_file).read())["ExcludedVoxels"] == 2
