"""Fast masked reading of 4D BOLD images.

``read_masked_bold`` streams a (gzipped) NIfTI file volume by volume straight into a
preallocated ``(n_volumes, n_voxels)`` float32 array: one read, no 4D float64 image in memory,
and the gzip stream is inflated with ISA-L (``isal.igzip``), several times faster than zlib.
Values, voxel order and optional smoothing are those of nilearn's ``NiftiMasker`` (and so of
``FirstLevelModel``) for the same mask.
"""

from __future__ import annotations

import functools
import mmap
import os
from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
from isal import igzip
from nibabel.arrayproxy import ArrayProxy
from nibabel.volumeutils import apply_read_scaling
from scipy.ndimage import gaussian_filter1d

from glmflow.errors import DatasetError

__all__ = [
    "estimate_mem_gb",
    "large_empty",
    "load_mask",
    "read_masked_bold",
    "read_masked_maps",
    "save_nifti",
    "unmask",
    "write_masked",
]

# scipy.ndimage.gaussian_filter1d's default: the kernel reaches int(truncate * sigma + 0.5)
_TRUNCATE = 4.0
_GZIP_MAGIC = b"\x1f\x8b"
_LARGE_BYTES = 32 << 20
# Peak memory per byte of float32 BOLD (benchmarks/bench_run.py), with margin; see
# estimate_mem_gb
_MEM_FACTOR = 1.2
_MEM_FACTOR_FULL = 2.5
_MEM_BASE_GB = 0.35


def _load_image(path: str | os.PathLike, what: str) -> nib.spatialimages.SpatialImage:
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
    img = _load_image(mask_file, "Mask")
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


def _check_same_grid(
    image_shape: tuple[int, ...],
    image_affine: np.ndarray,
    mask: np.ndarray,
    mask_affine: np.ndarray,
    image_file: str | os.PathLike,
    mask_file: str | os.PathLike,
    what: str = "BOLD",
) -> None:
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


def _open_stream(path: Path):
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == _GZIP_MAGIC:
        return igzip.open(path, "rb")
    return open(path, "rb", buffering=0)


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


def _streamable(img: nib.spatialimages.SpatialImage) -> bool:
    proxy = img.dataobj
    return isinstance(proxy, ArrayProxy) and proxy.order == "F"


def _iter_raw_volumes(img: nib.spatialimages.SpatialImage) -> Iterator[np.ndarray]:
    """Yield each volume as a flat array in file (Fortran) order, valid until the next one.

    Unscaled on-disk values when the image is streamable, else nibabel's scaled values.
    """
    proxy = img.dataobj
    shape = img.shape
    n_volumes = shape[3]
    if not _streamable(img):
        # not a plain NIfTI data block: let nibabel read one volume at a time
        for t in range(n_volumes):
            yield np.asarray(proxy[..., t]).ravel("F")
        return
    path = Path(img.file_map["image"].filename)
    n_bytes = int(np.prod(shape[:3])) * proxy.dtype.itemsize
    with _open_stream(path) as stream:
        _skip(stream, proxy.offset, path)
        for t in range(n_volumes):
            # read() hands over its bytes object: wrapping it avoids readinto's extra copy
            block = stream.read(n_bytes)
            if len(block) < n_bytes:
                parts = [block]
                missing = n_bytes - len(block)
                while missing:
                    more = stream.read(missing)
                    if not more:
                        raise DatasetError(
                            f"BOLD {path} is truncated: volume {t} of {n_volumes} ends early "
                            "(header says more volumes than the file holds); re-create the file"
                        )
                    parts.append(more)
                    missing -= len(more)
                block = b"".join(parts)
            yield np.frombuffer(block, dtype=proxy.dtype)


def _skip(stream, n_bytes: int, path: Path) -> None:
    remaining = n_bytes
    while remaining:
        got = len(stream.read(min(remaining, 1 << 20)))
        if not got:
            raise DatasetError(f"BOLD {path} ends inside its header; re-create the file")
        remaining -= got


def _smoothing_dtype(raw_dtype: np.dtype, scaled_dtype: np.dtype) -> np.dtype:
    # nilearn smooths in the dtype of the loaded (scaled) data; integers as float32 except
    # 64-bit ones (nilearn.image.smooth_array)
    if scaled_dtype.kind == "f":
        return np.dtype(np.float64) if scaled_dtype.itemsize > 4 else np.dtype(np.float32)
    return np.dtype(np.float64) if raw_dtype.itemsize == 8 else np.dtype(np.float32)


def _sigma_voxels(fwhm: float | tuple[float, ...], affine: np.ndarray) -> np.ndarray:
    """Gaussian sigma per axis in voxels, as nilearn.image.smooth_array computes it."""
    fwhm = np.broadcast_to(np.asarray(fwhm, dtype=float), (3,))
    vox_size = np.sqrt(np.sum(affine[:3, :3] ** 2, axis=0))
    return fwhm / (np.sqrt(8 * np.log(2)) * vox_size)


def _smoothing_crop(mask: np.ndarray, sigma: np.ndarray) -> tuple[slice, ...]:
    """Bounding box of the mask grown by the kernel radius: smoothing inside it gives the
    in-mask values of whole-image smoothing exactly, since no in-mask voxel reads past it."""
    crop = []
    for axis, s in enumerate(sigma):
        present = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        radius = int(_TRUNCATE * s + 0.5) if s > 0 else 0
        crop.append(slice(max(present[0] - radius, 0), present[-1] + radius + 1))
    return tuple(crop)


def read_masked_bold(
    bold_file: str | os.PathLike,
    mask_file: str | os.PathLike,
    *,
    smoothing_fwhm: float | None = None,
) -> np.ndarray:
    """Read the in-mask time series of a 4D BOLD image.

    Parameters
    ----------
    bold_file : path
        4D NIfTI (``.nii`` or ``.nii.gz``), any datatype; ``scl_slope``/``scl_inter`` honoured.
    mask_file : path
        Binary 3D mask on the same grid (shape and affine) as ``bold_file``.
    smoothing_fwhm : float, optional
        Full width at half maximum (mm) of a Gaussian applied to each volume before masking,
        exactly as ``nilearn.image.smooth_img`` (non-finite values set to 0 first).

    Returns
    -------
    ndarray of float32, shape (n_volumes, n_voxels)
        Voxels in the order of ``mask_data[mask_data]`` (NumPy C order), as nilearn's
        ``NiftiMasker`` returns them.
    """
    img = _load_image(bold_file, "BOLD")
    if img.ndim != 4:
        raise DatasetError(
            f"BOLD {bold_file} must be a 4D image, got shape {img.shape}; "
            "pass the preprocessed BOLD time series (desc-preproc_bold)"
        )
    mask, mask_affine = load_mask(mask_file)
    _check_same_grid(img.shape, img.affine, mask, mask_affine, bold_file, mask_file)
    if smoothing_fwhm is not None and np.any(np.asarray(smoothing_fwhm) < 0):
        raise DatasetError(f"smoothing_fwhm must be >= 0 mm, got {smoothing_fwhm}")
    if smoothing_fwhm is not None and np.all(np.asarray(smoothing_fwhm) == 0):
        smoothing_fwhm = None

    shape3 = img.shape[:3]
    out = large_empty((img.shape[3], int(mask.sum())), np.float32)
    slope, inter = _scaling(img)

    if smoothing_fwhm is None:
        # on-disk (Fortran) flat position of each mask voxel, in NumPy C order of the mask
        flat = np.ravel_multi_index(np.nonzero(mask), shape3, order="F")
        for t, raw in enumerate(_iter_raw_volumes(img)):
            if slope is not None:
                out[t] = apply_read_scaling(raw[flat], slope, inter)
            elif raw.dtype == out.dtype:
                np.take(raw, flat, out=out[t])  # no temporary
            else:
                out[t] = raw[flat]
        # a non-finite value makes its voxel's sum non-finite (the exact test runs only then)
        if not np.isfinite(out.sum(axis=0, dtype=np.float64)).all():
            bad = ~np.isfinite(out)
            # nilearn would carry NaNs into every statistic of these voxels
            raise DatasetError(
                f"BOLD {bold_file} has non-finite values (NaN/inf) in {bad.any(0).sum()} "
                f"voxels of mask {mask_file} (first at volume {np.flatnonzero(bad.any(1))[0]}); "
                "use a brain mask that excludes them or set smoothing_fwhm (which zeroes them)"
            )
        return out

    sigma = _sigma_voxels(smoothing_fwhm, img.affine)
    crop = _smoothing_crop(mask, sigma)
    sub_mask = mask[crop]
    # Work on each volume as the file lays it out, a C-ordered (z, y, x) array: copies are
    # contiguous and scipy filters C-ordered arrays fastest. Axes are still filtered x, y, z
    # (nilearn's order, which fixes the rounding).
    sub_flat = np.ravel_multi_index(np.nonzero(sub_mask), sub_mask.shape, order="F")
    work = None
    for t, raw in enumerate(_iter_raw_volumes(img)):
        vol = raw.reshape(shape3, order="F")[crop].T
        vol = apply_read_scaling(vol, slope, inter) if slope is not None else vol
        if work is None:
            work = np.empty(vol.shape, dtype=_smoothing_dtype(raw.dtype, vol.dtype))
            check_finite = vol.dtype.kind == "f"  # integers are always finite
        np.copyto(work, vol, casting="unsafe")
        if check_finite:
            work[~np.isfinite(work)] = 0
        for axis, s in enumerate(sigma):
            if s > 0:
                gaussian_filter1d(work, s, axis=2 - axis, output=work, truncate=_TRUNCATE)
        out[t] = work.ravel()[sub_flat]
    return out


def _scaling(img: nib.spatialimages.SpatialImage) -> tuple[float | None, float | None]:
    """(slope, inter) to apply, or (None, None) when the data is stored unscaled."""
    if not _streamable(img):
        return None, None  # nibabel has scaled the volumes already
    slope, inter = img.dataobj.slope, img.dataobj.inter
    if (slope, inter) == (1.0, 0.0):
        return None, None
    return slope, inter


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
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm")
    return img


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
    img = _load_image(map_file, "Map")
    mask, mask_affine = load_mask(mask_file)
    _check_same_grid(img.shape, img.affine, mask, mask_affine, map_file, mask_file, "map")
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
    header = _load_image(bold_file, "BOLD").header
    n_values = float(np.prod(header.get_data_shape()))
    factor = _MEM_FACTOR if minimize_memory else _MEM_FACTOR_FULL
    return round(_MEM_BASE_GB + factor * n_values * 4 / 1024**3, 3)
