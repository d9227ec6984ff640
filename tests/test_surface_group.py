"""Group level on surfaces (issue 12): OLS t and max-t as nilearn's permuted_ols, TFCE and
clusters on the mesh by their definition, planted effects found, files in and out.

The FWER check over 100 null datasets (max-t, TFCE, cluster size within 5 % +- 3 %) costs
minutes (TFCE of 100 x 101 maps): it is benchmarks/bench_surface.py's ``fwer`` part, with its
numbers in benchmarks/RESULTS-surface.md.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy import stats

from glmflow.core.surface.group import surface_group_files, surface_group_inference
from glmflow.core.surface.meshes import fsaverage5_mesh, hemisphere_adjacency
from glmflow.core.surface.tfce import cluster_sizes, edges, tfce
from glmflow.errors import GroupModelError


def path_graph(n: int) -> sp.csr_matrix:
    rows = np.r_[np.arange(n - 1), np.arange(1, n)]
    cols = np.r_[np.arange(1, n), np.arange(n - 1)]
    return sp.csr_matrix((np.ones(2 * n - 2), (rows, cols)), shape=(n, n))


def test_tfce_and_clusters_follow_their_definition():
    graph = edges(path_graph(5))
    values = np.array([0.0, 2.0, 2.0, 0.0, 1.0])
    # h = 1: clusters {1, 2} (2 vertices) and {4}; h = 2: {1, 2}. E = 1, H = 2, dh = 1
    assert tfce(values, graph, dh=1.0).tolist() == [0, 2 * 1 + 2 * 4, 2 * 1 + 2 * 4, 0, 1]
    assert cluster_sizes(values > 0.5, graph).tolist() == [0, 2, 2, 0, 1]
    assert tfce(-values, graph).tolist() == [0] * 5


@pytest.fixture(scope="module")
def patch():
    """300 neighbouring vertices of fsaverage5's left hemisphere and their adjacency."""
    coords, _ = fsaverage5_mesh("L", "sphere")
    unit = coords / np.linalg.norm(coords, axis=1, keepdims=True)
    vertices = np.argsort(-(unit @ unit[0]))[:300]
    return vertices, hemisphere_adjacency("fsaverage5", "L")[vertices][:, vertices].tocsr()


def test_t_and_max_t_are_nilearn_permuted_ols(patch):
    from nilearn.mass_univariate import permuted_ols

    _, adjacency = patch
    rng = np.random.default_rng(3)
    age = rng.normal(30, 5, 14)
    data = rng.standard_normal((14, 300)) + 0.1 * (age - 30)[:, None]
    design = pd.DataFrame({"intercept": np.ones(14), "age": age})
    out = surface_group_inference(data, design, "age", adjacency, n_perm=50, seed=1)
    ref = permuted_ols(age, data, model_intercept=True, n_perm=50, two_sided_test=False,
                       random_state=1)  # fmt: skip
    assert np.abs(out["t"] - np.ravel(ref["t"])).max() < 1e-10
    assert np.array_equal(out["logp_max_t"], np.ravel(ref["logp_max_t"]))
    assert out["dof"] == 12.0


def test_two_sample_t_is_ols_of_the_full_design(patch):
    """group_A - group_B weights every column (no intercept): the grand mean is still
    modelled. t and dof are plain OLS on both columns; max-t is nilearn's permuted_ols of
    A - B with the intercept it adds (model_intercept=True)."""
    from nilearn.mass_univariate import permuted_ols

    _, adjacency = patch
    rng = np.random.default_rng(4)
    group = np.r_[np.ones(6), np.zeros(9)]  # unbalanced: 6 and 9
    data = 5.0 + rng.standard_normal((15, 300))
    data[:6, :40] += 1.5
    design = pd.DataFrame({"group_A": group, "group_B": 1 - group})
    out = surface_group_inference(data, design, "group_A - group_B", adjacency, n_perm=40,
                                  seed=2, fwe=("max_t",))  # fmt: skip
    x, c = design.to_numpy(), np.array([1.0, -1.0])
    beta = np.linalg.pinv(x) @ data
    sigma2 = ((data - x @ beta) ** 2).sum(0) / 13
    t = (c @ beta) / np.sqrt(sigma2 * (c @ np.linalg.inv(x.T @ x) @ c))
    assert out["dof"] == 13.0
    assert np.abs(out["t"] - t).max() < 1e-10
    assert out["t"][:40].mean() > 2.5  # measured 2.99 (-0.27 before: the mean left unmodelled)
    ref = permuted_ols(group - (1 - group), data, model_intercept=True, n_perm=40,
                       two_sided_test=False, random_state=2)  # fmt: skip
    assert np.array_equal(out["logp_max_t"], np.ravel(ref["logp_max_t"]))


def test_planted_patch_found_by_tfce_and_max_t(patch):
    vertices, adjacency = patch
    rng = np.random.default_rng(0)
    data = rng.standard_normal((12, 300))
    planted = np.arange(300) < 30  # the 30 vertices nearest vertex 0: one connected patch
    data[:, planted] += 1.5
    out = surface_group_inference(data, pd.DataFrame({"intercept": np.ones(12)}), [1.0],
                                  adjacency, n_perm=200, seed=0)  # fmt: skip
    fwe = -np.log10(0.05)
    assert (out["logp_max_tfce"][planted] > fwe).mean() > 0.9
    assert (out["logp_max_tfce"][~planted] > fwe).sum() < 15  # TFCE spreads to the rim
    # max-t finds half of it (measured 0.5 at d = 1.5, 12 subjects): TFCE's gain in power
    assert 0.3 < (out["logp_max_t"][planted] > fwe).mean() < 0.9
    assert (out["logp_max_t"][~planted] > fwe).sum() == 0
    assert np.isfinite(out["fdr_threshold"])
    # at p < 0.001 the patch is one cluster of 27 of its 30 vertices (3 below threshold)
    assert out["cluster_size"][planted].max() == 27
    assert (out["logp_max_size"][out["cluster_size"] == 27] > fwe).all()
    assert out["cluster_forming_t"] == pytest.approx(stats.t.isf(0.001, 11))


def test_two_sided_clusters_form_at_nilearns_threshold(patch):
    """Two-sided, clusters of either sign form at |t| > t.isf(p / 2) (nilearn's permuted_ols,
    the volume level's rule), not at the one-sided t.isf(p)."""
    _, adjacency = patch
    rng = np.random.default_rng(3)
    data = rng.standard_normal((8, 300))
    design = pd.DataFrame({"intercept": np.ones(8)})
    out = surface_group_inference(data, design, [1.0], adjacency, n_perm=10, seed=0,
                                  fwe=["cluster_size"], two_sided=True)  # fmt: skip
    assert out["cluster_forming_t"] == pytest.approx(stats.t.isf(0.0005, 7))  # 5.41, not 4.79
    t = out["t"]
    expected = cluster_sizes(t > out["cluster_forming_t"], edges(adjacency)) + cluster_sizes(
        -t > out["cluster_forming_t"], edges(adjacency)
    )
    assert np.array_equal(out["cluster_size"], expected.astype(float))


def test_f_contrast_is_refused(patch):
    _, adjacency = patch
    design = pd.DataFrame({"a": np.ones(6), "b": np.arange(6.0)})
    with pytest.raises(GroupModelError) as err:
        surface_group_inference(np.zeros((6, 300)), design, [[1, 0], [0, 1]], adjacency)
    assert str(err.value) == (
        "Surface group inference tests one t contrast, got 2 rows from the design matrix; "
        "give a single formula or weight vector"
    )


def _gifti(path, values):
    nib.save(nib.gifti.GiftiImage(darrays=[nib.gifti.GiftiDataArray(values.astype(np.float32))]),
             path)  # fmt: skip
    return path


def test_group_files_on_both_hemispheres(tmp_path):
    rng = np.random.default_rng(5)
    maps = []
    for s in range(8):
        parts = {}
        for hemi in ("L", "R"):
            values = rng.standard_normal(10242)
            if hemi == "L":
                values[:40] += 2.0
            name = f"sub-{s}_task-x_hemi-{hemi}_space-fsaverage5_stat-effect_statmap.func.gii"
            parts[hemi] = _gifti(tmp_path / name, values)
        maps.append(parts)
    out = surface_group_files(maps, pd.DataFrame({"intercept": np.ones(8)}), [1.0],
                              out_dir=tmp_path, n_perm=10, seed=0)  # fmt: skip
    assert sorted(out) == sorted(["t", "z", "logp_max_t", "tfce", "logp_max_tfce",
                                  "cluster_size", "logp_max_size"])  # fmt: skip
    t_left = nib.load(out["t"]["L"]).darrays[0].data
    assert out["t"]["L"].name == "L_t.func.gii" and t_left.shape == (10242,)
    assert t_left[:40].mean() > 3 and abs(nib.load(out["t"]["R"]).darrays[0].data.mean()) < 0.2


def test_tfce_null_uses_the_observed_maps_step(patch):
    """Every permuted map's TFCE is integrated at the observed map's dh (item 18): the null
    maxima equal TFCE at that step of the sign-flipped t maps, rebuilt here."""
    _, adjacency = patch
    rng = np.random.default_rng(8)
    data = rng.standard_normal((8, 300))
    data[:, :30] += 1.0
    out = surface_group_inference(data, pd.DataFrame({"intercept": np.ones(8)}), [1.0],
                                  adjacency, n_perm=6, seed=4, fwe=("tfce",))  # fmt: skip
    assert out["tfce_step"] == pytest.approx(out["t"].max() / 50, rel=1e-12)
    graph = edges(adjacency)
    flips = np.random.default_rng(4).choice([-1.0, 1.0], size=(6, 8))
    maxima = []
    for flip in flips:
        y = flip[:, None] * data
        t = y.mean(0) / (y.std(0, ddof=1) / np.sqrt(8))
        maxima.append(tfce(t, graph, dh=out["tfce_step"]).max())
    np.testing.assert_allclose(out["h0_max_tfce"], maxima, rtol=1e-9)
