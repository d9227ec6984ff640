"""Cluster tables: glmflow.core.clusters gives nilearn's get_clusters_table, whole tables."""

from __future__ import annotations

import functools
import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn.image import threshold_img
from nilearn.reporting import get_clusters_table
from scipy import ndimage

from glmflow.core.clusters import clusters_table, threshold_image

MNI_2MM = np.array(
    [[-2.0, 0, 0, 96], [0, 2.0, 0, -132], [0, 0, 2.0, -78], [0, 0, 0, 1]]
)  # fmt: skip
OBLIQUE = np.array(
    [[2.4, 0.3, 0, -40.7], [-0.2, 2.1, 0.4, -61.3], [0, -0.5, 3.1, -20.9], [0, 0, 0, 1]]
)  # fmt: skip


def _smooth_noise(shape, sigma, seed, dtype=np.float32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return (data / data.std()).astype(dtype)


def _plateaus(seed) -> np.ndarray:
    """Smooth noise rounded to 0.5: flat tops, equal peaks in many clusters."""
    return np.round(_smooth_noise((24, 26, 22), 1.2, seed) * 2) / 2


def _binary_and_donut() -> np.ndarray:
    """Flat clusters: a cube, a ring (centre of mass outside it), single voxels of one value."""
    data = np.zeros((30, 31, 29), dtype=np.float32)
    data[2:6, 2:7, 2:5] = 3.0
    yy, xx = np.mgrid[:11, :11]
    ring = np.abs(np.hypot(yy - 5, xx - 5) - 4) < 0.8
    data[12:23, 12:23, 14][ring] = 3.0
    data[25, ::3, ::4] = 3.0
    data[0, 0, 0] = 3.0  # corner: borders reflected
    return data


def _sparse_maxima(shape, seed) -> np.ndarray:
    """Many tiny clusters of random values, half of them negative."""
    rng = np.random.default_rng(seed)
    data = rng.standard_normal(shape).astype(np.float64)
    data[rng.random(shape) < 0.7] = 0
    return data


MAPS = {
    "smooth": (_smooth_noise((13, 14, 15), 1.5, 0), np.eye(4)),
    "smooth-float64": (_smooth_noise((20, 18, 16), 1.0, 1, np.float64), OBLIQUE),
    "real-shape": (_smooth_noise((97, 115, 97), 2.0, 2), MNI_2MM),
    "plateaus": (_plateaus(3), MNI_2MM),
    "binary-donut": (_binary_and_donut(), np.diag([3.0, 3.0, 3.5, 1.0])),
    "many-small": (_sparse_maxima((28, 30, 26), 4), OBLIQUE),
    "many-ties": (np.round(_sparse_maxima((20, 22, 18), 5) * 2) / 2, MNI_2MM),
}
#: (map, stat_threshold, cluster_threshold, two_sided, min_distance)
CASES = [
    ("smooth", 0.5, 0, False, 8.0),
    ("smooth", 0.0, 0, True, 8.0),
    ("smooth", 1.0, 5, True, 2.0),
    ("smooth", -0.5, 0, False, 8.0),
    ("smooth-float64", 0.8, 0, True, 4.0),
    ("smooth-float64", 0.8, 3, True, 12.0),
    ("real-shape", 3.0, 10, True, 6.0),
    ("plateaus", 0.4, 0, True, 8.0),
    ("plateaus", 0.9, 2, True, 3.0),
    ("binary-donut", 1.0, 0, False, 8.0),
    ("binary-donut", 1.0, 3, True, 2.0),
    ("many-small", 0.0, 0, True, 8.0),
    ("many-small", 0.5, 2, True, 1.0),
    ("many-small", 2.5, 0, False, 20.0),
    ("many-ties", 0.0, 0, True, 8.0),
]


@functools.cache
def _both(name, stat_threshold, cluster_threshold, two_sided, min_distance):
    data, affine = MAPS[name]
    img = nib.Nifti1Image(data, affine)
    options = {
        "stat_threshold": stat_threshold, "cluster_threshold": cluster_threshold,
        "two_sided": two_sided, "min_distance": min_distance, "return_label_maps": True,
    }  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nilearn's donut note; empty tails
        theirs = get_clusters_table(img, **options)
        ours = clusters_table(img, **options)
    return ours, theirs


@pytest.mark.parametrize("case", CASES, ids=["-".join(map(str, case)) for case in CASES])
def test_whole_table_is_nilearns(case):
    (table, labels), (expected, expected_labels) = _both(*case)
    assert len(expected) > 0
    pd.testing.assert_frame_equal(table, expected, check_exact=True)
    assert len(labels) == len(expected_labels)
    for ours, theirs in zip(labels, expected_labels, strict=True):
        np.testing.assert_array_equal(np.asanyarray(ours.dataobj), np.asanyarray(theirs.dataobj))


def test_cases_reach_the_hard_rules():
    """The maps above hold what the rules are about: subpeak rows, tied peaks across
    clusters, more than 16 clusters per tail (numpy's argsort no longer a plain insertion
    sort), both tails, flat clusters."""
    tables = {case: _both(*case)[1][0] for case in CASES}
    ids = pd.concat(tables.values())["Cluster ID"].astype(str)
    assert ids.str.endswith("c").sum() > 10
    for case in (("plateaus", 0.4, 0, True, 8.0), ("many-ties", 0.0, 0, True, 8.0)):
        peaks = tables[case].loc[tables[case]["Cluster Size (mm3)"] != "", "Peak Stat"]
        assert peaks.duplicated().sum() > 3
    ties = tables[("many-ties", 0.0, 0, True, 8.0)]
    positive = ties.loc[(ties["Cluster Size (mm3)"] != "") & (ties["Peak Stat"] > 0)]
    assert len(positive) > 16 and positive["Peak Stat"].duplicated().sum() > 16
    assert len(tables[("many-small", 0.0, 0, True, 8.0)]) > 500
    assert (tables[("smooth", 0.0, 0, True, 8.0)]["Peak Stat"] < 0).any()


def test_empty_map_is_an_empty_table_with_nilearns_warning():
    img = nib.Nifti1Image(np.zeros((5, 6, 7), dtype=np.float32), np.eye(4))
    with pytest.warns(UserWarning, match="No clusters found with stat higher than 1.0"):
        table = clusters_table(img, stat_threshold=1.0)
    assert list(table.columns) == list(get_clusters_table(img, stat_threshold=1.0).columns)
    assert table.empty


def test_min_distance_must_be_positive():
    img = nib.Nifti1Image(np.ones((3, 3, 3), dtype=np.float32), np.eye(4))
    with pytest.raises(ValueError, match=r"^'min_distance' must be positive\. Got 0 instead\.$"):
        clusters_table(img, stat_threshold=0.5, min_distance=0)


@pytest.mark.parametrize("method", ["fpr", "fdr", "threshold"])
def test_group_inference_tabulates_each_map_once(monkeypatch, method):
    import glmflow.core.inference as inference
    from glmflow.core.model import InferenceSpec

    calls = []

    def counted(*args, **kwargs):
        calls.append(kwargs["stat_threshold"])
        return clusters_table(*args, **kwargs)

    monkeypatch.setattr(inference, "clusters_table", counted)
    data, affine = MAPS["smooth"]
    spec = InferenceSpec(method=method, alpha=0.2, z_threshold=1.0)
    result = inference.run_group_inference(spec, stat_img=nib.Nifti1Image(data * 3, affine))
    assert calls == [0.0]
    assert len(result.clusters) > 0


#: (map, quantile of the map's non-zero |values| as threshold, cluster_threshold, two_sided;
#: a negative quantile: one-sided, below minus that value)
EXTENT_CASES = [
    (name, quantile, k, two_sided)
    for name in MAPS
    for quantile, k, two_sided in [(0.0, 2, True), (0.5, 5, True), (0.3, 3, False),
                                   (-0.4, 4, False), (0.8, 10, True), (0.2, 1, True)]
    if not (quantile < 0 and MAPS[name][0].min() >= 0)
]  # fmt: skip


@functools.cache
def _extents(name, quantile, cluster_threshold, two_sided):
    """(input, nilearn's threshold_img with the extent, ours, nilearn's without it)."""
    data, affine = MAPS[name]
    img = nib.Nifti1Image(data, affine)
    threshold = float(np.quantile(np.abs(data[data != 0]), abs(quantile))) * np.sign(quantile)
    options = dict(threshold=threshold, two_sided=two_sided)
    theirs = threshold_img(img, cluster_threshold=cluster_threshold, **options)
    ours = threshold_image(img, cluster_threshold=cluster_threshold, **options)
    kept = threshold_img(img, **options)
    return img, *(np.asanyarray(i.dataobj) for i in (theirs, ours, kept))


@pytest.mark.parametrize("case", EXTENT_CASES, ids=["-".join(map(str, c)) for c in EXTENT_CASES])
def test_threshold_image_drops_the_clusters_nilearn_drops(case):
    """``threshold_image`` (height by nilearn, extent by ``drop_small_clusters``) keeps the
    voxels nilearn's ``threshold_img`` keeps, value for value and in its dtype."""
    img, expected, ours, _ = _extents(*case)
    np.testing.assert_array_equal(ours, expected)
    assert ours.dtype == expected.dtype
    np.testing.assert_array_equal(np.asanyarray(img.dataobj), MAPS[case[0]][0])  # untouched


def test_extent_cases_keep_some_clusters_and_drop_others():
    """On every map but the flat one, some case keeps voxels and drops others."""
    for name in MAPS:
        counts = [
            (np.count_nonzero(expected), np.count_nonzero(kept))
            for case in EXTENT_CASES if case[0] == name
            for _, expected, _, kept in [_extents(*case)]
        ]  # fmt: skip
        assert any(0 < n < m for n, m in counts) or name == "binary-donut", name
        assert sum(n > 0 for n, _ in counts) >= len(counts) - 1, name


@pytest.mark.parametrize("height_control", ["fpr", "fdr", "bonferroni", None])
def test_threshold_map_with_an_extent_is_nilearns(height_control):
    from nilearn.glm import threshold_stats_img

    from glmflow.core.inference import threshold_map

    data, affine = MAPS["real-shape"]
    img = nib.Nifti1Image(data * 1.6, affine)
    options = dict(alpha=0.05, height_control=height_control, threshold=2.0, two_sided=True)
    ours, value = threshold_map(img, cluster_threshold=6, **options)
    without_extent, _ = threshold_map(img, cluster_threshold=0, **options)
    if height_control is not None:
        options.pop("threshold")
    theirs, expected = threshold_stats_img(img, cluster_threshold=6, **options)
    assert value == float(expected)
    np.testing.assert_array_equal(np.asanyarray(ours.dataobj), np.asanyarray(theirs.dataobj))
    kept = np.count_nonzero(np.asanyarray(ours.dataobj))
    assert 0 < kept < np.count_nonzero(np.asanyarray(without_extent.dataobj))
