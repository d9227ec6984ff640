"""Cluster tables: nilearn's ``get_clusters_table`` rows, each cluster searched in its own box.

Why not nilearn's function itself: it multiplies the whole volume by each cluster's mask and
runs its maximum / minimum filters, labelling and centre of mass on the whole volume once per
cluster, then compares every pair of subpeaks in Python. On a 97x115x97 group map that is
~20 s for 178 rows and ~70 s for 819 (issue 13); here each cluster is searched in its
bounding box grown by one voxel, where those operations give the same numbers, and the
subpeak distance rule needs one pass. ``benchmarks/bench_clusters.py`` measures both, and
``tests/test_clusters.py`` pins whole tables to the installed nilearn.

The rules (nilearn 0.14's, read from its public behaviour and source):

- the map is first thresholded by :func:`nilearn.image.threshold_img` (``stat_threshold``,
  ``two_sided``) and its clusters smaller than ``cluster_threshold`` dropped
  (:func:`threshold_image`); a cluster is a face-connected set of voxels above
  ``stat_threshold`` (below it for one-sided negative thresholds), positive tail first;
- clusters are numbered by descending peak within a tail, tails numbered on;
- candidate peaks are connected sets of voxels equal to the maximum of their 3x3x3
  neighbourhood (borders reflected), non-flat there unless the whole cluster is flat,
  placed at their value-weighted centre of mass rounded half to even (the nearest voxel
  of the set when that falls outside it);
- candidates sorted by descending value; one is kept when it lies more than
  ``min_distance`` mm from the last kept one; the first four kept are reported (peak, then
  subpeaks ``a``, ``b``, ``c``);
- size in mm3 is ``int(voxels * voxel volume)``.
"""

from __future__ import annotations

import warnings
from string import ascii_lowercase

import nibabel as nib
import numpy as np
import pandas as pd
from nibabel.affines import apply_affine
from nilearn.image import check_niimg_3d, coord_transform, new_img_like, threshold_img
from scipy import ndimage

from glmflow.core.group.inputs import ImageLike

SIZE_MM3 = "Cluster Size (mm3)"
SIZE_VOXELS = "Cluster Size (voxels)"
COLUMNS = ["Cluster ID", "X", "Y", "Z", "Peak Stat", SIZE_MM3]
#: face connectivity (6 neighbours), the clusters' definition
FACES = ndimage.generate_binary_structure(3, 1)
MAX_ROWS_PER_CLUSTER = 4


def clusters_table(
    stat_img: ImageLike,
    stat_threshold: float,
    cluster_threshold: int = 0,
    two_sided: bool = False,
    min_distance: float = 8.0,
    return_label_maps: bool = False,
    voxel_sizes: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, list[nib.Nifti1Image]]:
    """The table of :func:`nilearn.reporting.get_clusters_table`, row for row.

    Same parameters and returns (volumes only): ``Cluster ID``, ``X``, ``Y``, ``Z`` (mm),
    ``Peak Stat``, ``Cluster Size (mm3)`` ("" on subpeak rows); with ``return_label_maps``
    also one label image per tail, labels numbered as the table's clusters.

    ``voxel_sizes`` gives glmflow's table (``clusters.tsv``) instead: string IDs, the sizes
    in mm3 and a ``Cluster Size (voxels)`` column as integers, NA on subpeak rows; an empty
    tail is then not warned about (the table says it).
    """
    if min_distance <= 0:
        raise ValueError(f"'min_distance' must be positive. Got {min_distance} instead.")
    img = check_niimg_3d(
        threshold_image(
            stat_img, stat_threshold, cluster_threshold=cluster_threshold, two_sided=two_sided
        )
    )
    data = np.asanyarray(img.dataobj)
    below = not two_sided and stat_threshold < 0
    rows: list[list] = []
    label_maps: list[nib.Nifti1Image] = []
    voxels: list[int] = []
    found = False
    for sign in (1, -1) if two_sided else (1,):
        tail = data * sign
        inside = tail < stat_threshold if below else tail > stat_threshold
        if not inside.any():
            if not voxel_sizes:
                warnings.warn(
                    "No clusters found with stat "
                    f"{'higher' if sign == 1 else 'lower'} than {stat_threshold * sign}",
                    UserWarning,
                    stacklevel=2,
                )
            continue
        labels, order = _ordered_clusters(tail, inside, below)
        voxels += np.bincount(labels.ravel())[order].tolist()
        if return_label_maps:
            relabel = np.insert(order, 0, 0).argsort().astype(np.int32)
            label_maps.append(new_img_like(img, relabel[labels], affine=img.affine))
        rows += _tail_rows(img, tail, labels, order, len(rows) + 1, sign, below, min_distance)
        found = True
    table = pd.DataFrame(columns=COLUMNS, data=rows) if found else pd.DataFrame(columns=COLUMNS)
    if voxel_sizes:
        table = _with_voxel_sizes(table, voxels)
    return (table, label_maps) if return_label_maps else table


def threshold_image(
    stat_img: ImageLike, threshold: float, *, cluster_threshold: int = 0, two_sided: bool = True,
    **keywords,
) -> nib.Nifti1Image:  # fmt: skip
    """:func:`nilearn.image.threshold_img`, its cluster-extent rule applied by
    :func:`drop_small_clusters` (the same voxels, ~20x faster); ``keywords`` go to nilearn."""
    img = threshold_img(
        stat_img, threshold=threshold, cluster_threshold=0, two_sided=two_sided, **keywords
    )
    return drop_small_clusters(img, cluster_threshold)


def drop_small_clusters(img: nib.Nifti1Image, cluster_threshold: int) -> nib.Nifti1Image:
    """``img`` (thresholded, in memory: one nilearn just made) without its clusters of fewer
    than ``cluster_threshold`` voxels, in place: nilearn's extent rule (``threshold_img``,
    ``threshold_stats_img``).

    Positive and negative voxels are clustered apart, face connectivity. nilearn compares the
    whole map with each cluster's label in turn: ~0.35 s on a 97x115x97 z map with a few
    hundred clusters, paid by every subject page and group inference; here one labelling per
    sign and a count of each label (``tests/test_clusters.py`` pins the two together).
    """
    if cluster_threshold <= 0:
        return img
    data = np.asanyarray(img.dataobj)
    if data.ndim != 3:  # nilearn's, volume by volume
        return threshold_img(img, threshold=0, cluster_threshold=cluster_threshold, copy=False)
    for sign in (1, -1):
        labels, n_clusters = ndimage.label(data * sign > 0, FACES)
        if n_clusters:
            small = np.bincount(labels.ravel()) < cluster_threshold
            small[0] = False
            data[small[labels]] = 0
    return img


def _with_voxel_sizes(table: pd.DataFrame, voxels: list[int]) -> pd.DataFrame:
    """glmflow's columns: string IDs, integer sizes (mm3 truncated, voxels), NA on subpeaks."""
    is_peak = table[SIZE_MM3].astype(str) != ""
    peak_mm3 = table.loc[is_peak, SIZE_MM3].astype(int).tolist()
    for column, values in ((SIZE_MM3, peak_mm3), (SIZE_VOXELS, voxels)):
        sizes = pd.Series(pd.NA, index=table.index, dtype="Int64")
        sizes[is_peak] = values
        table[column] = sizes
    table["Cluster ID"] = table["Cluster ID"].astype(str)
    return table


def _tail_rows(img, tail, labels, order, first, sign, below, min_distance) -> list[list]:
    """The rows of one tail's clusters in table order, numbered from ``first``."""
    voxel_size = np.prod(img.header.get_zooms())
    boxes = ndimage.find_objects(labels)
    rows: list[list] = []
    for number, label in enumerate(order, start=first):
        rows += _cluster_rows(
            number, tail, labels, label, boxes[label - 1], img.affine,
            sign=sign, below=below, voxel_size=voxel_size, min_distance=min_distance,
        )  # fmt: skip
    return rows


def _ordered_clusters(
    tail: np.ndarray, inside: np.ndarray, below: bool
) -> tuple[np.ndarray, list[int]]:
    """Face-connected cluster labels and the labels in table order (descending peak).

    The peaks are an array of the map's dtype in label order, sorted by numpy's default
    argsort of their negation, so that equal peaks fall in nilearn's order.
    """
    labels, n = ndimage.label(inside, FACES)
    index = np.arange(1, n + 1)
    # nilearn's peak is the extreme of the tail times the cluster mask, zeros included;
    # measured on the cluster voxels only (scipy sorts the labels it is given)
    values, owners = tail[inside], labels[inside]
    if below:
        peaks = np.minimum(ndimage.minimum(values, owners, index), 0)
    else:
        peaks = np.maximum(ndimage.maximum(values, owners, index), 0)
    peaks = np.asarray(peaks).astype(tail.dtype)
    return labels, [int(index[i]) for i in (-peaks).argsort()]


def _cluster_rows(number, tail, labels, label, box, affine, *, sign, below, voxel_size,
                  min_distance) -> list[list]:  # fmt: skip
    """The peak row and up to three subpeak rows of one cluster."""
    box = tuple(
        slice(max(s.start - 1, 0), min(s.stop + 1, size))
        for s, size in zip(box, labels.shape, strict=True)
    )
    mask = labels[box] == label
    masked = tail[box] * mask
    if below:
        masked *= -1
    size_mm3 = int(np.sum(mask) * voxel_size)
    offset = np.array([s.start for s in box])
    ijk, values = _local_maxima(masked, offset, affine, min_distance)
    values *= sign
    xyz = np.asarray(coord_transform(ijk[:, 0], ijk[:, 1], ijk[:, 2], affine)).T
    rows = []
    for k in range(min(len(values), MAX_ROWS_PER_CLUSTER)):
        name = number if k == 0 else f"{number}{ascii_lowercase[k - 1]}"
        rows.append([name, *xyz[k, :3], values[k], size_mm3 if k == 0 else ""])
    return rows


def _local_maxima(masked, offset, affine, min_distance) -> tuple[np.ndarray, np.ndarray]:
    """Kept peaks (volume indices) and their values, in descending order of value."""
    ijk_box, values = _candidate_peaks(masked, offset)
    order = (-values).argsort()
    values = values[order]
    ijk = ijk_box[order] + offset
    xyz = apply_affine(affine, ijk)
    keep = np.zeros(len(values), dtype=bool)
    if len(values):
        keep[0] = True
        last = xyz[0]
        for j in range(1, len(values)):
            # each candidate is compared with the last kept one only: nilearn's rule
            if np.linalg.norm(last - xyz[j]) > min_distance:
                keep[j] = True
                last = xyz[j]
    return ijk[keep], values[keep]


def _candidate_peaks(data, offset) -> tuple[np.ndarray, np.ndarray]:
    """Local maxima of one cluster's box (box indices) and their values, in label order."""
    highest = ndimage.maximum_filter(data, 3)
    maxima = data == highest
    nonzero = data != 0
    maxima &= nonzero
    values = data[nonzero]
    if not np.isclose(values.max(), values.min()):
        maxima &= (highest - ndimage.minimum_filter(data, 3)) > 0
    labeled, n = ndimage.label(maxima)
    ijk = np.round(_centres_of_mass(data, labeled, n, offset)).astype(int) - offset
    own = labeled[ijk[:, 0], ijk[:, 1], ijk[:, 2]] == np.arange(1, n + 1)
    for i in np.flatnonzero(~own):
        members = np.argwhere(labeled == i + 1)
        ijk[i] = members[np.argmin(np.linalg.norm(members - ijk[i], axis=1))]
    return ijk, data[ijk[:, 0], ijk[:, 1], ijk[:, 2]]


def _centres_of_mass(data, labeled, n, offset) -> np.ndarray:
    """Value-weighted centre of each label in volume indices (n, 3).

    Summed as :func:`scipy.ndimage.center_of_mass` sums on the whole volume (``bincount``
    in raster order of value times volume index), so the box gives the same floats.
    """
    flat = labeled.ravel()
    weights = np.bincount(flat, weights=data.ravel(), minlength=n + 1)[1:]
    grids = np.ogrid[
        tuple(slice(start, start + size) for start, size in zip(offset, data.shape, strict=True))
    ]
    centres = [
        np.bincount(flat, weights=(data * grid.astype(float)).ravel(), minlength=n + 1)[1:]
        / weights
        for grid in grids
    ]
    return np.array(centres).T.reshape(n, 3)
