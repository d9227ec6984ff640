"""Group inference: parity with nilearn's permutation, thresholding and cluster functions."""

from __future__ import annotations

import math
import re
import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn.glm import cluster_level_inference, threshold_stats_img
from nilearn.glm.second_level import non_parametric_inference
from scipy.stats import norm

from glmflow.core.clusters import clusters_table
from glmflow.core.inference import (
    fwe_threshold,
    permutation_inference,
    run_group_inference,
    threshold_map,
    true_discovery_proportion,
)
from glmflow.core.model import InferenceSpec
from glmflow.errors import GroupModelError, ModelSpecError

_SPEC_FIELDS = (
    "alpha", "z_threshold", "cluster_threshold", "two_sided", "min_distance", "n_perm",
    "permutation_stat", "cluster_forming_p", "seed",
)  # fmt: skip


def _infer(method: str, **kwargs):
    """run_group_inference with the InferenceSpec fields given as keywords (one-sided and
    unseeded unless said, as the function's old keyword defaults were)."""
    if "random_state" in kwargs:
        kwargs["seed"] = kwargs.pop("random_state")
    fields = {"two_sided": False, "seed": None}
    fields |= {key: kwargs.pop(key) for key in _SPEC_FIELDS if key in kwargs}
    return run_group_inference(InferenceSpec(method=method, **fields), **kwargs)


SHAPE = (7, 8, 9)
AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])
BOX = np.s_[1:4, 1:4, 1:4]  # planted group mean 2.5 (sd 1)


@pytest.fixture(scope="module")
def maps() -> dict:
    """10 subjects in memory (5 per group), a one-sample effect in BOX, an age covariate."""
    rng = np.random.default_rng(7)
    images = []
    for _ in range(10):
        data = rng.normal(0.0, 1.0, SHAPE)
        data[BOX] += 2.5
        images.append(nib.Nifti1Image(data, AFFINE))
    design = pd.DataFrame(
        {"a": [1.0] * 5 + [0.0] * 5, "b": [0.0] * 5 + [1.0] * 5, "age": rng.normal(0, 10, 10)}
    )
    return {"images": images, "design": design}


def _data(img) -> np.ndarray:
    return np.asanyarray(img.dataobj)


def _equivalent(design: pd.DataFrame, contrast: str) -> pd.DataFrame:
    """The design as nilearn splits it right: tested column first, then the confounds."""
    a, b, age = design["a"], design["b"], design["age"]
    return {
        # the mean with the group difference as a confound (nilearn's own split of a + b
        # keeps only age: a - b was left in the residuals)
        "a + b": pd.DataFrame({"mean": a + b, "diff": a - b, "age": age}),
        "a - b": pd.DataFrame({"diff": a - b, "age": age}),  # the mean: model_intercept
        "age": pd.DataFrame({"age": age, "diff": a - b}),
    }[contrast]


@pytest.mark.parametrize("contrast", ["a + b", "a - b", "age"])
def test_max_t_equals_nilearn_for_the_same_seed(maps, contrast):
    ours = permutation_inference(
        maps["images"], maps["design"], contrast=contrast, n_perm=40, random_state=3
    )
    design = _equivalent(maps["design"], contrast)
    theirs = non_parametric_inference(
        maps["images"],
        design_matrix=design,
        second_level_contrast=[1.0] + [0.0] * (design.shape[1] - 1),
        n_perm=40,
        random_state=3,
    )
    np.testing.assert_array_equal(_data(ours["logp_max_t"]), _data(theirs))
    # t is OLS on the whole design (dof 10 - 3) whatever the weights
    x = maps["design"].to_numpy()
    c = {"a + b": [1, 1, 0], "a - b": [1, -1, 0], "age": [0, 0, 1]}[contrast]
    y = np.stack([_data(img).ravel() for img in maps["images"]])
    beta = np.linalg.pinv(x) @ y
    sigma2 = ((y - x @ beta) ** 2).sum(0) / 7
    t = (np.asarray(c) @ beta) / np.sqrt(sigma2 * (c @ np.linalg.inv(x.T @ x) @ c))
    inside = _data(ours["t"]).ravel() != 0
    np.testing.assert_allclose(_data(ours["t"]).ravel()[inside], t[inside], atol=1e-8)


def _close(actual, desired, err_msg):
    np.testing.assert_allclose(actual, desired, rtol=1e-10, atol=1e-10, err_msg=err_msg)


def test_cluster_and_tfce_maps_equal_nilearn_and_t_matches(maps):
    options = dict(n_perm=20, random_state=0, two_sided=True)
    ours = permutation_inference(
        maps["images"], maps["design"], contrast="age", cluster_forming_p=0.01, tfce=True,
        **options,
    )  # fmt: skip
    # nilearn on its own split of (a, b, age) adds an intercept to a and b and takes the
    # cluster-forming t at dof 6 for 7; on the equivalent design the dof is right
    theirs = non_parametric_inference(
        maps["images"],
        design_matrix=_equivalent(maps["design"], "age"),
        second_level_contrast=[1, 0],
        threshold=0.01,
        tfce=True,
        n_perm=20,
        random_state=0,
        two_sided_test=True,
    )
    assert sorted(ours) == sorted(theirs)
    for key, img in theirs.items():
        # p-values equal; t, TFCE, sizes and masses to rounding (ours is fitted on the
        # reparametrised design: the same model, other columns)
        compare = np.testing.assert_array_equal if key.startswith("logp") else _close
        compare(_data(ours[key]), _data(img), err_msg=key)
    # Without cluster or TFCE inference nilearn returns no t map; ours is computed the same way.
    voxel_only = permutation_inference(maps["images"], maps["design"], contrast="age", **options)
    np.testing.assert_allclose(_data(voxel_only["t"]), _data(theirs["t"]), atol=1e-10)


def test_permutation_finds_the_planted_effect(maps):
    out = permutation_inference(
        maps["images"], maps["design"], contrast="a + b", n_perm=100, random_state=0
    )
    significant = _data(out["logp_max_t"]) > -math.log10(0.05)
    # Sign flips of a few subjects leave the planted voxels' t high, so the max-t null is
    # wide and only the strongest planted voxels pass: some, and nothing outside.
    assert significant[BOX].sum() >= 8
    assert significant[_outside()].sum() == 0
    thresholded = _data(fwe_threshold(out["t"], out["logp_max_t"], alpha=0.05))
    np.testing.assert_array_equal(thresholded != 0, significant)
    assert thresholded[significant].min() > 0


@pytest.fixture(scope="module")
def z_img() -> nib.Nifti1Image:
    """A z map: a 2x2x2 block of 5 with a peak of 6, a single voxel of 4, a block of -4.5."""
    data = np.random.default_rng(1).normal(0, 0.5, SHAPE)
    data[1:3, 1:3, 1:3] = 5.0
    data[1, 1, 1] = 6.0
    data[5, 6, 7] = 4.0
    data[4:6, 1:3, 5:7] = -4.5
    return nib.Nifti1Image(data, AFFINE)


@pytest.mark.parametrize("height_control", ["fpr", "fdr", "bonferroni"])
def test_threshold_map_equals_nilearn(z_img, height_control):
    img, value = threshold_map(z_img, alpha=0.01, height_control=height_control)
    ref_img, ref_value = threshold_stats_img(z_img, alpha=0.01, height_control=height_control)
    assert value == pytest.approx(float(ref_value))
    np.testing.assert_array_equal(_data(img), _data(ref_img))


def test_bonferroni_threshold_value(z_img):
    mask = nib.Nifti1Image(np.ones(SHAPE, "uint8"), AFFINE)
    _, value = threshold_map(
        z_img, mask=mask, alpha=0.05, height_control="bonferroni", two_sided=True
    )
    assert value == pytest.approx(norm.isf(0.05 / (2 * np.prod(SHAPE))))


def test_cluster_table_has_sizes_in_voxels_and_mm3(z_img):
    table = clusters_table(z_img, stat_threshold=3.0, two_sided=True, voxel_sizes=True)
    peaks = table[table["Cluster Size (voxels)"].notna()]
    assert peaks["Cluster Size (voxels)"].tolist() == [8, 1, 8]
    assert peaks["Cluster Size (mm3)"].tolist() == [64, 8, 64]
    assert peaks["Peak Stat"].tolist() == [6.0, 4.0, -4.5]
    # world coordinates of the 6.0 peak at voxel (1, 1, 1)
    assert peaks[["X", "Y", "Z"]].iloc[0].tolist() == [2.0, 2.0, 2.0]
    assert table["Cluster ID"].iloc[0] == "1"
    big_only = clusters_table(
        z_img, stat_threshold=3.0, cluster_threshold=2, two_sided=True, voxel_sizes=True
    )
    assert big_only["Cluster Size (voxels)"].dropna().tolist() == [8, 8]


def test_cluster_table_subpeaks_have_no_size():
    data = np.zeros((20, 8, 8))
    data[2:18, 4, 4] = 4.0 + np.abs(np.arange(2, 18) - 9.2)  # a line peaking at both ends
    table = clusters_table(nib.Nifti1Image(data, AFFINE), stat_threshold=3.0, voxel_sizes=True)
    assert table["Cluster ID"].tolist() == ["1", "1a"]
    assert table["Peak Stat"].tolist() == pytest.approx([11.8, 11.2])
    assert table["Cluster Size (voxels)"].isna().tolist() == [False, True]
    assert table["Cluster Size (voxels)"].iloc[0] == 16
    assert table["Cluster Size (mm3)"].iloc[0] == 128


def test_cluster_table_without_clusters_is_empty(z_img):
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="No clusters")  # not passed on: table is empty
        table = clusters_table(z_img, stat_threshold=10.0, voxel_sizes=True)
    assert table.empty and "Cluster Size (voxels)" in table.columns


def test_true_discovery_proportion_equals_nilearn(z_img):
    ours = true_discovery_proportion(z_img, threshold=3.1, alpha=0.05)
    theirs = cluster_level_inference(z_img, threshold=3.1, alpha=0.05)
    np.testing.assert_array_equal(_data(ours), _data(theirs))
    assert _data(ours)[1, 1, 1] > 0 and _data(ours)[4, 1, 5] == 0  # positive clusters only


def test_run_group_inference_parametric_and_tdp(z_img):
    result = _infer("fpr", stat_img=z_img, alpha=0.001, two_sided=True)
    assert result.threshold == pytest.approx(norm.isf(0.0005))
    assert result.clusters["Cluster Size (voxels)"].dropna().tolist() == [8, 1, 8]
    explicit = _infer("threshold", stat_img=z_img, z_threshold=4.2)
    assert explicit.threshold == 4.2
    assert explicit.clusters["Peak Stat"].tolist() == [6.0]
    tdp = _infer("tdp", stat_img=z_img, z_threshold=3.1)
    assert tdp.tdp_img is not None
    kept = _data(tdp.thresholded_img) != 0
    np.testing.assert_array_equal(kept, _data(tdp.tdp_img) > 0)


@pytest.mark.parametrize(
    ("stat", "cluster_forming_p", "logp_keys"),
    [
        ("max_t", None, ["logp_max_t"]),
        ("size", 0.001, ["logp_max_mass", "logp_max_size", "logp_max_t"]),
        ("tfce", None, ["logp_max_t", "logp_max_tfce"]),
    ],
)
def test_run_group_inference_permutation(maps, stat, cluster_forming_p, logp_keys):
    result = _infer(
        "permutation",
        effect_files=maps["images"],
        design=maps["design"],
        contrast="a + b",
        n_perm=50,
        random_state=0,
        permutation_stat=stat,
        cluster_forming_p=cluster_forming_p,
    )
    assert sorted(result.logp_imgs) == logp_keys
    kept = _data(result.thresholded_img) != 0
    logp = _data(result.logp_imgs[f"logp_max_{stat.removeprefix('max_')}"])
    np.testing.assert_array_equal(kept, logp > -math.log10(0.05))
    np.testing.assert_array_equal(_data(result.thresholded_img)[kept], _data(result.t_img)[kept])
    assert kept.any() and not kept[_outside()].any()
    assert result.clusters["Cluster Size (voxels)"].sum() == kept.sum()
    assert result.threshold == pytest.approx(-math.log10(0.05))


def _outside() -> np.ndarray:
    outside = np.ones(SHAPE, bool)
    outside[BOX] = False
    return outside


ERRORS = [
    (dict(method="fdr"), "Inference method 'fdr' needs a z map (stat_img)"),
    (dict(method="permutation"), "Inference method 'permutation' needs the effect maps, their "
     "design and a contrast"),
    (dict(method="permutation", contrast=["a", "b"], maps=True), "Permutation inference tests "
     "one t contrast, got 2 rows (an F test) from the contrasts; give a single formula or "
     "weight vector"),
    (dict(method="permutation", contrast="c", maps=True), "Contrast 'permutation' in the "
     "contrasts uses unknown column 'c' (available: a, b, age)"),
]  # fmt: skip


# Rules of the inference section: the spec refuses them when it is made (they used to be
# checked again, with other words, in core/inference.py).
SPEC_RULES = [
    (dict(method="spm"), '\'method\' must be one of "none", "fpr", "fdr", "bonferroni", '
     '"threshold", "permutation", "tdp"; got "spm"'),
    (dict(method="fdr", alpha=1.5), "'alpha' must be a number between 0 and 1; got 1.5"),
    (dict(method="threshold", z_threshold=-1.0), "'z_threshold' must be a number >= 0; got -1.0"),
    (dict(method="tdp", two_sided=True), '\'two_sided\' must be false with method "tdp" (it '
     "tests positive clusters; add the negated contrast for negative effects)"),
    (dict(method="fpr", cluster_threshold=-2),
     "'cluster_threshold' must be an integer >= 0; got -2"),
    (dict(method="fpr", min_distance=0.0), "'min_distance' must be a number > 0; got 0.0"),
    (dict(method="permutation", n_perm=0), "'n_perm' must be an integer >= 1; got 0"),
    (dict(method="permutation", permutation_stat="mass"), "'cluster_forming_p' must be set for "
     'permutation_stat "mass" (the cluster-forming p-value, e.g. 0.001)'),
    (dict(method="permutation", permutation_stat="cluster"), '\'permutation_stat\' must be one '
     'of "max_t", "size", "mass", "tfce"; got "cluster"'),
    (dict(method="permutation", cluster_forming_p=2.0), "'cluster_forming_p' must be a number "
     "between 0 and 1 or null; got 2.0"),
]  # fmt: skip


@pytest.mark.parametrize(("fields", "message"), SPEC_RULES)
def test_inference_rules_live_in_the_spec(fields, message):
    with pytest.raises(ModelSpecError, match=f"^{re.escape(message)}$"):
        InferenceSpec(**fields)


@pytest.mark.parametrize(("kwargs", "message"), ERRORS)
def test_run_group_inference_errors(maps, z_img, kwargs, message):
    kwargs = dict(kwargs)
    if kwargs.pop("stat", None):
        kwargs["stat_img"] = z_img
    if kwargs.pop("maps", False):
        kwargs.update(effect_files=maps["images"], design=maps["design"])
    with pytest.raises(GroupModelError, match=f"^{re.escape(message)}$"):
        _infer(**kwargs)


def test_permutation_cluster_extent_applies_to_the_map_as_to_the_table(maps):
    # the mean with age (what "a + b" on (a, b, age) was tested as before its a - b part
    # was modelled: split_contrast; that model leaves one cluster)
    design = pd.DataFrame({"intercept": 1.0, "age": maps["design"]["age"]})
    common = dict(
        effect_files=maps["images"], design=design, contrast="intercept", n_perm=50,
        random_state=0,
    )  # fmt: skip
    plain = _infer("permutation", **common)
    sizes = plain.clusters["Cluster Size (voxels)"].dropna()
    assert len(set(sizes)) > 1  # clusters of different sizes: the extent removes some
    k = int(sizes.max())  # keep only the largest cluster(s)
    extent = _infer("permutation", cluster_threshold=k, **common)
    kept = _data(extent.thresholded_img) != 0
    assert (
        kept.sum()
        == extent.clusters["Cluster Size (voxels)"].sum()
        == int(sizes[sizes >= k].sum())
    )
    assert kept.sum() < (_data(plain.thresholded_img) != 0).sum()


def test_nothing_surviving_is_said_once_and_names_the_contrast():
    z_img = nib.Nifti1Image(np.random.default_rng(3).normal(0, 0.3, SHAPE), AFFINE)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = _infer("fdr", stat_img=z_img, contrast_name="face age")
    messages = [str(w.message) for w in caught if "survives" in str(w.message)]
    assert messages == [
        "No voxel survives fdr at alpha=0.05 in contrast 'face age': the thresholded map is empty"
    ]
    assert not _data(result.thresholded_img).any()
