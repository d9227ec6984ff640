"""Parcel and seed time series of one run, the BOLD read once, cleaned as nilearn does.

Why not call nilearn's maskers: ``NiftiLabelsMasker`` and ``NiftiSpheresMasker`` load the
whole 4D image as floats (and the spheres masker masks it again), so a realistic run is
inflated two or more times and held in memory as float64. Here the volumes are streamed
once (:func:`glmflow.core.nifti_stream.iter_raw_volumes`, ISA-L inflation) and each is
reduced on the fly: the label means with one ``np.bincount`` (the sums ``scipy.ndimage.mean``
makes), the sphere means as ``np.mean`` over the sphere's voxels, and, when seed-to-voxel maps
are asked for, the in-mask voxels kept. Values are nilearn's: non-finite values count as 0
(``ensure_finite``), float32 data give float32 signals; then ``nilearn.signal.clean``
(detrend, band-pass with the run's TR, confounds, sample mask, standardisation) exactly as
the maskers call it. tests/test_rest_parity.py pins this to the installed nilearn.
A probabilistic atlas (``maps``) is nilearn's own ``NiftiMapsMasker`` (a weighted least
squares fit per volume, no streaming shortcut), then the same cleaning.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from nibabel.volumeutils import apply_read_scaling

from glmflow.core.images import check_same_grid, load_image, load_mask
from glmflow.core.nifti_stream import iter_raw_volumes, scaling
from glmflow.core.rest.atlas import (
    Atlas,
    empty_maps,
    labels_on_grid,
    maps_on_grid,
    refuse_missing,
    sphere_voxels,
)
from glmflow.core.rest.spec import CleanSpec
from glmflow.core.temporal_filter import check_butterworth
from glmflow.errors import DatasetError


@dataclass(frozen=True)
class RawSignals:
    """Uncleaned means per region (``regions``) and seed (``seeds``), and voxels if asked."""

    regions: np.ndarray | None
    seeds: np.ndarray | None
    voxels: np.ndarray | None
    mask: np.ndarray
    affine: np.ndarray
    centroids: np.ndarray | None = None  # (n_regions, 3) mm, labels atlases


def read_signals(
    bold_file: str | os.PathLike,
    mask_file: str | os.PathLike,
    atlas: Atlas | None,
    seeds: Atlas | None = None,
    *,
    keep_voxels: bool = False,
) -> RawSignals:
    """Read a run once: the atlas' region means, the seeds' sphere means, the mask's voxels."""
    img = load_image(bold_file, "BOLD")
    if img.ndim != 4:
        raise DatasetError(f"BOLD {bold_file} must be a 4D image, got shape {img.shape}")
    mask, mask_affine = load_mask(mask_file)
    check_same_grid(img.shape, img.affine, mask, mask_affine, bold_file, mask_file)
    where = f"run {bold_file} (mask {mask_file})"
    flat_mask = np.ravel_multi_index(np.nonzero(mask), img.shape[:3], order="F")
    reducers = []
    regions = seed_ts = voxels = centroids = None
    n = img.shape[3]
    dtype = np.float32 if img.get_data_dtype() == np.float32 and scaling(img)[0] is None else None
    if atlas is not None and atlas.kind == "labels":
        labels = labels_on_grid(atlas, img.shape, img.affine, mask, where)
        centroids = label_centroids(labels, atlas.indices, img.affine)
        regions = np.empty((n, len(atlas.indices)), np.float64)
        reducers.append(_label_reducer(labels, atlas.indices, img.shape[:3], regions))
    if atlas is not None and atlas.kind == "maps":
        regions, centroids = map_signals(atlas, img, mask_file, mask, where)
    spheres_of = [a for a in (atlas, seeds) if a is not None and a.kind == "spheres"]
    sphere_out = []
    for sph in spheres_of:
        out = np.empty((n, len(sph.coordinates)), dtype or np.float64)
        members = sphere_voxels(sph, img.affine, mask, where)
        reducers.append(_sphere_reducer([flat_mask[m] for m in members], out))
        sphere_out.append(out)
    if keep_voxels:
        voxels = np.empty((n, len(flat_mask)), np.float32)
        reducers.append(lambda t, vol: voxels.__setitem__(t, vol[flat_mask]))
    slope, inter = scaling(img)
    for t, raw in enumerate(iter_raw_volumes(img)):
        vol = raw if slope is None else apply_read_scaling(raw, slope, inter)
        if vol.dtype.kind == "f" and not np.isfinite(vol).all():
            vol = np.nan_to_num(vol, nan=0.0, posinf=0.0, neginf=0.0)
        for reduce in reducers:
            reduce(t, vol)
    if regions is not None and dtype is not None:
        regions = regions.astype(dtype)  # nilearn's float32 signals, cleaned in float32
    if atlas is not None and atlas.kind == "spheres":
        regions = sphere_out.pop(0)
    if seeds is not None:
        seed_ts = sphere_out.pop(0)
    return RawSignals(regions, seed_ts, voxels, mask, mask_affine, centroids)


def map_signals(atlas: Atlas, img, mask_file, mask: np.ndarray, where: str):
    """Uncleaned region signals of a probabilistic atlas, by nilearn's ``NiftiMapsMasker``
    (the run's mask, the maps on the BOLD grid), and each map's centre (mm)."""
    from nilearn.maskers import NiftiMapsMasker
    from nilearn.plotting import find_probabilistic_atlas_cut_coords

    maps = maps_on_grid(atlas, img.shape, img.affine, where)
    refuse_missing(empty_maps(maps, atlas, mask), atlas, where)
    masker = NiftiMapsMasker(maps_img=maps, mask_img=str(mask_file), standardize=None)
    signals = masker.fit_transform(img)
    return signals, find_probabilistic_atlas_cut_coords(maps)


def label_centroids(labels: np.ndarray, indices, affine: np.ndarray) -> np.ndarray:
    """Each label's centre of mass in mm (the connectome's node positions)."""
    import nibabel as nib

    flat = labels.ravel()
    inside = np.flatnonzero(flat)
    ijk = np.stack(np.unravel_index(inside, labels.shape), axis=1).astype(float)
    size = int(max(indices)) + 1
    counts = np.bincount(flat[inside], minlength=size)[list(indices)]
    means = [np.bincount(flat[inside], weights=ijk[:, k], minlength=size)[list(indices)]
             for k in range(3)]  # fmt: skip
    return nib.affines.apply_affine(affine, np.stack(means, axis=1) / counts[:, None])


def _label_reducer(labels: np.ndarray, indices, shape, out: np.ndarray):
    flat = labels.ravel(order="F")
    inside = np.flatnonzero(flat)
    codes = flat[inside]
    counts = np.bincount(codes, minlength=max(indices) + 1)[list(indices)].astype(np.float64)
    wanted = np.asarray(indices)
    size = int(wanted.max()) + 1

    def reduce(t: int, vol: np.ndarray) -> None:
        sums = np.bincount(codes, weights=vol[inside], minlength=size)
        out[t] = sums[wanted] / counts

    return reduce


def _sphere_reducer(members: list[np.ndarray], out: np.ndarray):
    """Sphere means as nilearn takes them: ``np.mean(X[:, sphere], axis=1)`` over the series
    of the spheres' voxels (same summation order, so float32 data give the same bits)."""
    voxels = np.unique(np.concatenate(members))
    columns = [np.searchsorted(voxels, m) for m in members]
    series = np.empty((out.shape[0], len(voxels)), out.dtype)

    def reduce(t: int, vol: np.ndarray) -> None:
        series[t] = vol[voxels]
        if t == out.shape[0] - 1:
            for i, cols in enumerate(columns):
                out[:, i] = np.mean(series[:, cols], axis=1)

    return reduce


def check_filter(clean: CleanSpec, n_volumes: int, tr: float, where: str) -> None:
    """Refuse a band that the run's TR cannot carry, or a run too short to filter
    (:func:`glmflow.core.temporal_filter.check_butterworth`)."""
    check_butterworth(n_volumes, tr, where, high_pass=clean.high_pass, low_pass=clean.low_pass)


def clean_signals(
    signals: np.ndarray,
    clean: CleanSpec,
    *,
    tr: float,
    confounds: np.ndarray | None,
    sample_mask: np.ndarray | None,
    where: str,
) -> np.ndarray:
    """``nilearn.signal.clean`` with the model's options, as nilearn's maskers call it
    (``sample_mask`` from ``run_confounds``, which refuses one that keeps no volume)."""
    from nilearn.signal import clean as nilearn_clean

    check_filter(clean, signals.shape[0], tr, where)
    if confounds is not None and confounds.shape[1] == 0:
        confounds = None
    return nilearn_clean(
        signals, confounds=confounds, sample_mask=sample_mask, **clean.nilearn(tr)
    )
