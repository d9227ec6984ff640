"""NIfTI helpers shared by every step: masks, grids, unmasking, writing, sizes.

:func:`load_mask` reads a binary brain mask as nilearn does (and caches it: a node writes many
maps); :func:`check_same_grid` is the one grid rule (shape and affine, nilearn's tolerance);
:func:`check_gzip_size` finds a truncated ``.nii.gz`` from its gzip trailer in one seek;
:func:`unmask`, :func:`save_nifti` and :func:`read_masked_maps` move maps between the mask's
voxel order and images. The streaming BOLD reader is :mod:`glmflow.core.bold`.
"""

from __future__ import annotations

import functools
import mmap
import os
import struct
from pathlib import Path

import nibabel as nib
import numpy as np
from isal import igzip, isal_zlib

from glmflow.errors import DatasetError

__all__ = [
    "check_gzip_size",
    "expected_bytes",
    "check_same_grid",
    "estimate_mem_gb",
    "large_empty",
    "load_image",
    "load_mask",
    "read_masked_maps",
    "save_nifti",
    "stored_completely",
    "unmask",
    "write_masked",
]

_GZIP_MAGIC = b"\x1f\x8b"
_LARGE_BYTES = 32 << 20
# Peak memory per byte of float32 BOLD (benchmarks/bench_run.py), with margin; see
# estimate_mem_gb
_MEM_FACTOR = 1.2
_MEM_FACTOR_FULL = 2.5
_MEM_BASE_GB = 0.35


def load_image(path: str | os.PathLike, what: str) -> nib.spatialimages.SpatialImage:
    try:
        return nib.load(path)
    except FileNotFoundError as err:
        raise DatasetError(f"{what} {path} does not exist; check the path") from err
    except nib.filebasedimages.ImageFileError as err:
        raise DatasetError(
            f"{what} {path} is not a NIfTI image nibabel can read ({err}); check the file"
        ) from err


def load_mask(mask_file: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Load a binary 3D mask the way nilearn does (cached: a node writes many maps).

    Parameters
    ----------
    mask_file : path
        3D NIfTI image; 0 is background, one other value (any) is the brain.

    Returns
    -------
    mask : ndarray of bool, shape (x, y, z), read-only
    affine : ndarray, shape (4, 4), read-only
    """
    try:
        stat = os.stat(mask_file)
    except OSError:
        return _load_mask(mask_file)  # says which file is missing
    return _load_mask_cached(os.fspath(mask_file), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _load_mask_cached(path: str, mtime_ns: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    mask, affine = _load_mask(path)
    mask.flags.writeable = False
    affine.flags.writeable = False
    return mask, affine


def _load_mask(mask_file: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read and check a binary 3D mask from disk (:func:`load_mask` caches it)."""
    img = load_image(mask_file, "Mask")
    data = np.asanyarray(img.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise DatasetError(
            f"Mask {mask_file} must be a 3D image, got shape {data.shape}; "
            "pass the brain mask of the BOLD run (desc-brain_mask)"
        )
    data = np.where(np.isfinite(data), data, 0)
    values = np.unique(data)
    if len(values) > 2 or (len(values) == 2 and 0 not in values):
        shown = ", ".join(f"{v:g}" for v in values[:5]) + (", ..." if len(values) > 5 else "")
        raise DatasetError(
            f"Mask {mask_file} is not binary (values: {shown}); "
            "a mask must hold 0 for background and one other value for the brain"
        )
    mask = data != 0
    if not mask.any():
        raise DatasetError(f"Mask {mask_file} is empty (no non-zero voxel); check the mask file")
    return mask, img.affine


def check_same_grid(
    image_shape: tuple[int, ...],
    image_affine: np.ndarray,
    mask: np.ndarray,
    mask_affine: np.ndarray,
    image_file: str | os.PathLike,
    mask_file: str | os.PathLike,
    what: str = "BOLD",
) -> None:
    """Refuse a mask that is not on the image's grid (shape, then affine), naming both."""
    # np.allclose defaults are the tolerance nilearn's apply_mask uses
    if tuple(image_shape[:3]) != mask.shape:
        differs = "shapes differ"
    elif not np.allclose(image_affine, mask_affine):
        differs = "affines differ"
    else:
        return
    raise DatasetError(
        f"Mask {mask_file} (shape {mask.shape}, voxels {_voxel_size(mask_affine)} mm) is not "
        f"on the grid of {what} {image_file} (shape {tuple(image_shape[:3])}, voxels "
        f"{_voxel_size(image_affine)} mm): {differs}; use a mask in the same space and "
        f"resolution as the {what}"
    )


def _voxel_size(affine: np.ndarray) -> str:
    return "x".join(f"{v:g}" for v in np.sqrt((affine[:3, :3] ** 2).sum(axis=0)))


def large_empty(shape: tuple[int, ...], dtype) -> np.ndarray:
    """Uninitialised array; large ones in a plain anonymous mapping.

    NumPy asks the kernel for transparent huge pages on large arrays; where faulting those in
    is slow (measured 0.65 s of CPU for 228 MB against 0.14 s with 4 KB pages on the
    benchmark machine), a plain ``mmap`` keeps the first touch cheap.
    """
    dtype = np.dtype(dtype)
    n_bytes = int(np.prod(shape)) * dtype.itemsize
    if n_bytes < _LARGE_BYTES:
        return np.empty(shape, dtype)
    return np.frombuffer(mmap.mmap(-1, n_bytes), dtype=dtype).reshape(shape)


def write_masked(array: np.ndarray, out_dir: str | os.PathLike, name: str = "bold_masked") -> Path:
    """Save a masked array as ``<out_dir>/<name>.npy`` and return its path."""
    path = Path(out_dir) / f"{name}.npy"
    np.save(path, np.ascontiguousarray(array))
    return path


def unmask(values: np.ndarray, mask_file: str | os.PathLike) -> nib.Nifti1Image:
    """Put masked values back on the mask grid.

    Parameters
    ----------
    values : ndarray, shape (n_voxels,) or (n_maps, n_voxels)
        One value per mask voxel (in ``read_masked_bold`` order), or several maps.
    mask_file : path
        The mask the values were read with.

    Returns
    -------
    Nifti1Image
        3D for 1-D ``values``, else 4D with one volume per row; 0 outside the mask;
        float32 unless ``values`` is float64 (kept, so statistics are written exactly).
    """
    mask, affine = load_mask(mask_file)
    values = np.asarray(values)
    n_voxels = int(mask.sum())
    if values.shape[-1] != n_voxels or values.ndim > 2:
        raise DatasetError(
            f"Cannot unmask an array of shape {values.shape} with {mask_file}, which has "
            f"{n_voxels} voxels; use the mask the data were read with"
        )
    dtype = values.dtype if values.dtype in (np.float32, np.float64) else np.float32
    if values.ndim == 1:
        data = np.zeros(mask.shape, dtype=dtype)
        data[mask] = values
    else:
        data = np.zeros((*mask.shape, values.shape[0]), dtype=dtype)
        data[mask] = values.T
    # the mask's header template: its s/q-forms are set once, not again for every map
    img = nib.Nifti1Image(data, affine, header=_map_header(affine.tobytes()))
    img.header.set_data_dtype(dtype)
    return img


@functools.lru_cache(maxsize=8)
def _map_header(affine_bytes: bytes) -> nib.Nifti1Header:
    """The header nibabel gives a new map on this affine (mm units): byte for byte what
    ``nib.Nifti1Image(data, affine)`` writes, at half its cost (pinned by a test)."""
    affine = np.frombuffer(affine_bytes, dtype=np.float64).reshape(4, 4)
    header = nib.Nifti1Image(np.zeros((1, 1, 1), np.float32), affine).header
    header.set_xyzt_units("mm")
    return header


def save_nifti(img: nib.Nifti1Image, path: str | os.PathLike) -> Path:
    """Write a NIfTI image; ``.nii.gz`` is compressed with ISA-L (level 1) for speed."""
    path = Path(path)
    if path.name.endswith(".gz"):
        # nibabel streams the array into the file object: no serialised copy in memory
        with igzip.open(path, "wb", compresslevel=1) as fh:
            img.to_file_map({"image": nib.FileHolder(fileobj=fh)})
    else:
        nib.save(img, path)
    return path


def read_masked_maps(map_file: str | os.PathLike, mask_file: str | os.PathLike) -> np.ndarray:
    """In-mask values of a 3D map, shape (n_voxels,), or a 4D one, shape (n_maps, n_voxels)."""
    img = load_image(map_file, "Map")
    mask, mask_affine = load_mask(mask_file)
    check_same_grid(img.shape, img.affine, mask, mask_affine, map_file, mask_file, "map")
    data = np.asanyarray(img.dataobj)
    if data.ndim == 3:
        return data[mask].astype(np.float64)
    return data[mask].T.astype(np.float64)


def estimate_mem_gb(bold_file: str | os.PathLike, *, minimize_memory: bool = True) -> float:
    """Memory (GB) a node reading or fitting ``bold_file`` needs, from the header only.

    The float32 size of the 4D image times a factor, plus the interpreter and libraries, so
    schedulers (MultiProc, SLURM, SGE) can pack nodes honestly. The factor 1.2 covers masks of
    up to half the field of view (measured: peak 0.71x for a 22 % brain mask, see
    benchmarks/RESULTS-run.md); ``minimize_memory=False`` adds the residual and predicted
    time series and their 4D images.
    """
    header = load_image(bold_file, "BOLD").header
    n_values = float(np.prod(header.get_data_shape()))
    factor = _MEM_FACTOR if minimize_memory else _MEM_FACTOR_FULL
    return round(_MEM_BASE_GB + factor * n_values * 4 / 1024**3, 3)


def check_gzip_size(img: nib.spatialimages.SpatialImage, what: str = "BOLD") -> None:
    """Refuse a ``.nii.gz`` whose gzip trailer disagrees with the size its header implies.

    The last 4 bytes of a gzip file hold the uncompressed size modulo 2**32 (RFC 1952
    ISIZE): one seek finds a file cut short, where reading it to the end would take seconds
    to minutes, after other nodes have run (the trailer holds the last member's size only:
    a mismatch is confirmed by inflating the file, so a complete multi-member gzip passes).
    Plain ``.nii`` files are checked by size (:func:`stored_completely`).
    ``img`` is the image as ``nib.load`` returns it (only its header was read).
    """
    expected = expected_bytes(img)
    if expected is None or stored_completely(img):
        return
    path, shape, dtype = img.get_filename(), img.dataobj.shape, img.get_data_dtype()
    isize, size = _trailer(path)
    if isize is None:
        raise DatasetError(
            f"{what} {path} is truncated: {size} bytes on disk but its header implies "
            f"{expected} (shape {shape}, {dtype}); re-create or copy the file again"
        )
    got = "no complete gzip trailer" if isize < 0 else f"{isize} bytes uncompressed"
    raise DatasetError(
        f"{what} {path} is truncated or corrupt: its gzip trailer says {got} but its "
        f"header implies {expected} (shape {shape}, {dtype}); re-create or copy the file "
        "again"
    )


def expected_bytes(img: nib.spatialimages.SpatialImage) -> int | None:
    """Bytes a single-file NIfTI must hold: its data offset plus the array (None: not one)."""
    offset = getattr(img.dataobj, "offset", None)  # the header's vox_offset may read 0
    if offset is None or img.get_filename() is None:
        return None
    return int(offset) + int(np.prod(img.dataobj.shape)) * img.get_data_dtype().itemsize


def stored_completely(img: nib.spatialimages.SpatialImage) -> bool:
    """Whether the file holds all the data its header implies, read from its size alone
    (a ``.nii``) or its gzip trailer (a ``.nii.gz``; inflated only when the trailer
    disagrees). The one truncation rule of the BOLD reader and the group level's maps."""
    expected = expected_bytes(img)
    if expected is None:
        return True
    isize, size = _trailer(img.get_filename())
    if isize is None:
        return size >= expected
    return isize == expected % 2**32 or _inflates_to(img.get_filename(), expected)


def _trailer(path) -> tuple[int | None, int]:
    """(gzip ISIZE, or -1 when the file is too short for a trailer, or None when not
    gzipped; the file's size)."""
    with open(path, "rb") as fh:
        gzipped = fh.read(2) == _GZIP_MAGIC
        size = fh.seek(0, os.SEEK_END)
        if not gzipped:
            return None, size
        if size < 18:  # 10-byte header + 8-byte trailer
            return -1, size
        fh.seek(-4, os.SEEK_END)
        return struct.unpack("<I", fh.read(4))[0], size


def _inflates_to(path: str | os.PathLike, expected: int) -> bool:
    """Whether the whole gzip stream inflates (CRC checked) to at least ``expected`` bytes."""
    size = 0
    try:
        with igzip.open(path, "rb") as fh:
            while chunk := fh.read(1 << 24):
                size += len(chunk)
    except (OSError, EOFError, ValueError, isal_zlib.error):
        return False
    return size >= expected
