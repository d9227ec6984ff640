"""The BOLD reader on stored forms beyond one plain gzip member (issue 13 item 3).

Multi-member gzip, a file over 4 GiB uncompressed (its gzip trailer's size wraps modulo
2**32), and an uncompressed ``.nii`` read from its memory map without a copy.
"""

from __future__ import annotations

import gzip
import mmap
import resource

import nibabel as nib
import numpy as np
import pytest
from isal import isal_zlib

from glmflow.core.bold import check_gzip_size, read_bold
from glmflow.core.nifti_stream import iter_raw_volumes
from glmflow.errors import DatasetError

SHAPE = (7, 8, 9)
AFFINE = np.diag([3.0, 2.5, 3.5, 1.0])


def _mask(path, shape=SHAPE, n_voxels=None):
    mask = np.zeros(shape, np.uint8)
    flat = mask.reshape(-1)
    rng = np.random.default_rng(1)
    n = n_voxels or flat.size // 2
    flat[rng.choice(flat.size, n, replace=False)] = 1
    nib.save(nib.Nifti1Image(mask, AFFINE), path)
    return path, mask.astype(bool)


def _bold(path, n_volumes=11):
    data = np.random.default_rng(0).normal(100, 5, (*SHAPE, n_volumes)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, AFFINE), path)
    return path, data


def test_a_multi_member_gzip_reads_as_the_single_member_file(tmp_path):
    mask_file, mask = _mask(tmp_path / "mask.nii.gz")
    bold, data = _bold(tmp_path / "bold.nii.gz")
    raw = gzip.decompress(bold.read_bytes())
    # members cut inside the header, inside a volume and at a volume's end
    cuts = [0, 100, 352 + 1001, 352 + 3 * 504 * 4, len(raw)]
    members = tmp_path / "members.nii.gz"
    parts = [raw[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    members.write_bytes(b"".join(gzip.compress(part) for part in parts))
    check_gzip_size(nib.load(members))  # the trailer is the last member's: still complete
    single = read_bold(bold, mask_file).data
    multi = read_bold(members, mask_file).data
    np.testing.assert_array_equal(multi, single)
    np.testing.assert_array_equal(multi, data[mask].T)  # nilearn's order: mask's C order


def test_an_uncompressed_nii_is_read_from_its_memory_map(tmp_path):
    mask_file, mask = _mask(tmp_path / "mask.nii.gz")
    bold, data = _bold(tmp_path / "bold.nii")
    volume = next(iter(iter_raw_volumes(nib.load(bold))))
    base = volume
    while base is not None and not isinstance(base, mmap.mmap):
        base = base.base
    assert isinstance(base, mmap.mmap), "the volume is a copy, not a view of the file's map"
    np.testing.assert_array_equal(read_bold(bold, mask_file).data, data[mask].T)
    cut = tmp_path / "cut.nii"
    cut.write_bytes(bold.read_bytes()[: 352 + 4 * 504 * 4 + 10])
    with pytest.raises(DatasetError) as caught:
        read_bold(cut, mask_file)
    assert str(caught.value) == (
        f"BOLD {cut} is truncated: volume 4 of 11 ends early (header says more volumes than "
        "the file holds); re-create the file"
    )


def test_a_bold_over_4_gib_is_read_streaming(tmp_path):
    """4.2 GiB of float32, mostly zeros: a few MB on disk, read in ~3 s with a small memory."""
    shape, n_volumes = (64, 64, 64), 4200  # 1 MiB a volume
    mask_file, mask = _mask(tmp_path / "mask.nii.gz", shape, n_voxels=50)
    flat = np.flatnonzero(mask.reshape(-1, order="F"))  # on-disk order of the mask voxels
    signal = np.random.default_rng(2).normal(0, 1, (n_volumes, flat.size)).astype(np.float32)
    header = nib.Nifti1Image(np.zeros((1, 1, 1, 1), np.float32), AFFINE)
    header.header.set_data_shape((*shape, n_volumes))
    header.header.set_data_offset(352)
    bold = tmp_path / "big.nii.gz"
    volume = np.zeros(int(np.prod(shape)), np.float32)
    with open(bold, "wb") as fh:  # one gzip member, written a volume at a time
        deflater = isal_zlib.compressobj(1, isal_zlib.DEFLATED, 31)
        fh.write(deflater.compress(header.header.binaryblock + b"\0" * 4))
        for t in range(n_volumes):
            volume[flat] = signal[t]
            fh.write(deflater.compress(volume.tobytes()))
        fh.write(deflater.flush())
    n_bytes = 352 + volume.nbytes * n_volumes
    assert n_bytes > 4 * 2**30 and bold.stat().st_size < 50e6
    img = nib.load(bold)
    assert img.shape == (*shape, n_volumes)
    check_gzip_size(img)  # the trailer holds the size modulo 2**32
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    got = read_bold(bold, mask_file)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    # read_bold returns the mask voxels in C order
    column = np.searchsorted(flat, np.ravel_multi_index(np.nonzero(mask), shape, order="F"))
    np.testing.assert_array_equal(got.data, signal[:, column])
    assert grown_mb < 200, f"reading grew the peak memory by {grown_mb:.0f} MB"
