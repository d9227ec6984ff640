"""Contrasts against nilearn (FirstLevelModel.compute_contrast and nilearn.glm.compute_contrast).

Tolerances (much tighter than the 1e-3 z / 1e-4 rtol the project asks for, since we follow
nilearn's arithmetic): |dz| < 1e-6, effect / variance / stat rtol 1e-8.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from nilearn.masking import apply_mask
from test_glm import SAMPLE_MASK, make_run, nilearn_run

from glmflow.core.bold import read_masked_bold
from glmflow.core.contrasts import MAP_KEYS, compute_contrast, contrast_weights, z_score
from glmflow.core.glm import fit_glm, load_fit, save_fit
from glmflow.errors import ContrastError

NILEARN_OUTPUT = {
    "effect": "effect_size",
    "variance": "effect_variance",
    "stat": "stat",
    "p": "p_value",
    "z": "z_score",
}
COLUMNS = ["face", "house", "motion", "drift_1", "constant"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("contrasts"), seed=1)


def _assert_same_maps(ours, reference, mask_file):
    for key, output in NILEARN_OUTPUT.items():
        theirs = apply_mask(reference[output], mask_file)
        if key != "effect":
            theirs = theirs.reshape(-1)
        if key == "z":
            assert np.abs(ours[key] - theirs).max() < 1e-6
        else:
            np.testing.assert_allclose(ours[key], theirs, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("noise_model", ["ar1", "ols"])
@pytest.mark.parametrize("sample_mask", [None, SAMPLE_MASK], ids=["all", "scrubbed"])
@pytest.mark.parametrize("fwhm", [None, 5.0], ids=["raw", "smoothed"])
def test_contrasts_match_nilearn(run, noise_model, sample_mask, fwhm):
    bold, mask_file, design = run
    reference = nilearn_run(
        bold, mask_file, design, noise_model=noise_model, sample_mask=sample_mask, fwhm=fwhm
    )
    fit = fit_glm(
        read_masked_bold(bold, mask_file, smoothing_fwhm=fwhm),
        design,
        sample_mask=sample_mask,
        noise_model=noise_model,
    )
    columns = list(design.columns)
    t_spec = {"name": "face-house", "expressions": ["face - house"], "stat_type": "t"}
    f_spec = {"name": "effects", "expressions": ["face", "house"], "stat_type": "F"}
    f_matrix = np.eye(len(columns))[[columns.index("face"), columns.index("house")]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_ref = reference.compute_contrast("face - house", output_type="all")
        f_ref = reference.compute_contrast(f_matrix, stat_type="F", output_type="all")
    t_ours = compute_contrast(fit, t_spec)
    f_ours = compute_contrast(fit, f_spec)
    _assert_same_maps(t_ours, t_ref, mask_file)
    _assert_same_maps(f_ours, f_ref, mask_file)
    assert f_ours["effect"].shape == (2, fit.n_voxels)
    assert t_ours.dof == f_ours.dof == fit.df_residuals


@pytest.mark.parametrize("noise_model", ["ar1", "ols"])
def test_contrasts_match_nilearn_compute_contrast(noise_model):
    # the public function this module re-implements, on the same data and design
    from nilearn.glm import compute_contrast as nilearn_contrast
    from nilearn.glm.first_level import run_glm

    rng = np.random.default_rng(3)
    X = np.column_stack([rng.standard_normal((80, 3)), np.ones(80)])
    noise = rng.standard_normal((80, 300))
    noise[1:] += 0.4 * noise[:-1]
    Y = X @ rng.uniform(-1, 2, (4, 300)) + noise
    names = ["face", "house", "motion", "constant"]
    fit = fit_glm(Y, X, column_names=names, noise_model=noise_model, signal_scaling=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels, results = run_glm(Y, X, noise_model=noise_model)
    for spec, matrix, stat_type in [
        ({"name": "t", "expressions": ["face - house"]}, [1, -1, 0, 0], "t"),
        ({"name": "F", "expressions": ["face", "house"], "stat_type": "F"}, np.eye(4)[:2], "F"),
    ]:
        ours = compute_contrast(fit, spec)
        theirs = nilearn_contrast(labels, results, np.asarray(matrix, float), stat_type)
        assert np.abs(ours["z"] - theirs.z_score()).max() < 1e-6
        for key, value in [("stat", theirs.stat()), ("p", theirs.p_value()),
                           ("effect", theirs.effect), ("variance", theirs.variance)]:  # fmt: skip
            np.testing.assert_allclose(ours[key], np.squeeze(value), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize(
    ("stat_type", "dim", "dof"), [("t", 1, 227.0), ("t", 1, 3.0), ("F", 1, 40.0), ("F", 3, 12.0)]
)
def test_z_score_is_nilearns_exactly(stat_type, dim, dof):
    # the CDF computed only where nilearn's z_score keeps it: the same bits, every tail
    from nilearn.glm import Contrast

    rng = np.random.default_rng(11)
    effect = np.concatenate([rng.standard_normal(dim * 4000) * 5,
                             [0.0] * dim, [40.0] * dim, [-40.0] * dim, [1e3] * dim])  # fmt: skip
    effect = effect.reshape(-1, dim).T
    variance = np.concatenate([rng.uniform(0.01, 4, effect.shape[1] - 2), [1e-30, np.nan]])

    def make():
        return Contrast(effect=effect if stat_type == "F" else effect[0], variance=variance,
                        dim=dim, dof=dof, stat_type=stat_type)  # fmt: skip

    ours, theirs = make(), make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        z, expected = z_score(ours), theirs.z_score()
    assert (z < 0).sum() > 100 or stat_type == "F"  # both tails are exercised for t
    np.testing.assert_array_equal(z, expected)
    np.testing.assert_array_equal(ours.p_value_, theirs.p_value_)


def test_weights_rows_equal_expressions(run):
    bold, mask_file, design = run
    fit = fit_glm(read_masked_bold(bold, mask_file), design)
    by_formula = compute_contrast(fit, {"name": "c", "expressions": ["2*face - 0.5*house"]})
    by_weights = compute_contrast(fit, {"name": "c", "weights": [{"face": 2, "house": -0.5}]})
    for key in MAP_KEYS:
        np.testing.assert_array_equal(by_formula[key], by_weights[key])
    assert by_weights.info() == {
        "name": "c",
        "stat_type": "t",
        "weights": [{"face": 2.0, "house": -0.5}],
        "dropped": [],
        "dof": fit.df_residuals,
    }


def test_missing_condition_error_and_drop(run):
    bold, mask_file, design = run
    fit = fit_glm(read_masked_bold(bold, mask_file), design, source="sub-1_design.tsv")
    spec = {"name": "faces-cats", "expressions": ["face - cat"], "stat_type": "t"}
    columns = ", ".join(design.columns)
    with pytest.raises(ContrastError) as err:
        compute_contrast(fit, spec)
    assert str(err.value) == (
        "Contrast 'faces-cats' uses 'cat' which is not a column of the design of "
        f"sub-1_design.tsv (columns: {columns}); fix the contrast or run with "
        "--missing-conditions drop"
    )
    with pytest.warns(UserWarning, match=r"Contrast 'faces-cats': dropped cat \(not in the"):
        dropped = compute_contrast(fit, spec, missing="drop")
    face = compute_contrast(fit, {"name": "face", "expressions": ["face"]})
    np.testing.assert_array_equal(dropped["z"], face["z"])
    assert dropped.dropped == ("cat",)
    assert dropped.info()["weights"] == [{"face": 1.0}]


def test_contrast_with_nothing_left_is_skipped(run):
    bold, mask_file, design = run
    fit = fit_glm(read_masked_bold(bold, mask_file), design, source="d.tsv")
    spec = {"name": "animals", "expressions": ["cat", "dog"], "stat_type": "F"}
    with pytest.warns(UserWarning, match=r"Contrast 'animals' skipped for d.tsv: none of its"):
        assert compute_contrast(fit, spec, missing="drop") is None
    partial = {"name": "mixed", "expressions": ["face", "cat - dog"], "stat_type": "F"}
    with pytest.warns(UserWarning, match=r"dropped cat, dog"):
        result = compute_contrast(fit, partial, missing="drop")
    assert result.weights.shape == (1, len(design.columns))  # the all-dropped row is gone


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"name": "x", "expressions": ["face", "house"], "stat_type": "t"},
            r"Contrast 'x' is a t contrast with 2 rows; give one row or set \"stat_type\": \"F\"",
        ),
        (
            {"name": "x", "expressions": ["face"], "stat_type": "z"},
            r"^Contrast 'x' has stat_type 'z'; use 't' or 'F'$",
        ),
        (
            {"name": "x"},
            r"^Contrast 'x' must give either 'expressions' or 'weights' \(not both\)$",
        ),
        (
            {"name": "x", "expressions": ["face - face"]},
            r"Contrast 'x' row 1 has zero weight on every column of the design of d.tsv",
        ),
        (
            {"name": "x", "expressions": ["face", "2*face"], "stat_type": "F"},
            r"F contrast 'x' has linearly dependent rows",
        ),
        (
            {"name": "x", "expressions": ["face -"]},
            r'Contrast \'x\': Formula "face -" does not parse \(invalid syntax\)',
        ),
        (
            {"name": "x", "weights": [{"face": 1, "houses": -1}]},
            r"Contrast 'x' uses 'houses' which is not a column of the design of d.tsv \(columns:"
            r" face, house, motion, drift_1, constant\)",
        ),
        (
            {"name": "x", "expressions": ["`face 1` - dog"]},
            r"uses 'face 1', 'dog' which are not columns of the design of d.tsv",
        ),
    ],
)
def test_bad_contrasts(spec, message):
    with pytest.raises(ContrastError, match=message):
        contrast_weights(spec, COLUMNS, source="d.tsv")


def test_column_names_with_operators_match_verbatim():
    weights, dropped = contrast_weights({"name": "x", "expressions": ["a-b"]}, ["a-b", "c"])
    assert weights.tolist() == [[1.0, 0.0]] and dropped == ()
    weights, _ = contrast_weights({"name": "y", "expressions": ["`a-b` - 2*c"]}, ["a-b", "c"])
    assert weights.tolist() == [[1.0, -2.0]]


def test_compute_contrasts_node(run, tmp_path):
    from nipype.pipeline import engine as pe

    from glmflow.interfaces.contrasts import ComputeContrasts

    bold, mask_file, design = run
    fit = fit_glm(read_masked_bold(bold, mask_file), design, source="d.tsv")
    fit_file = save_fit(fit, tmp_path / "fit.npz")
    contrasts = [
        {"name": "face-house", "expressions": ["face - house"], "stat_type": "t"},
        {"name": "cats", "expressions": ["cat"], "stat_type": "t"},
        {"name": "effects", "expressions": ["face", "house"], "stat_type": "F"},
    ]
    node = pe.Node(
        ComputeContrasts(
            fit_file=str(fit_file),
            mask_file=str(mask_file),
            contrasts=json.dumps(contrasts),
            missing_conditions="drop",
        ),
        name="contrasts",
        base_dir=str(tmp_path),
    )
    with pytest.warns(UserWarning, match="Contrast 'cats' skipped"):
        out = node.run().outputs
    assert out.contrast_names == ["face-house", "effects"]
    assert out.stat_types == ["t", "F"]
    index = json.loads(open(out.contrasts_json).read())
    assert list(index) == ["face-house", "cats", "effects"]
    assert index["cats"]["skipped"] is True
    assert index["effects"]["z"] == out.z_files[1]
    expected = compute_contrast(load_fit(fit_file), contrasts[0])
    np.testing.assert_allclose(apply_mask(out.z_files[0], mask_file), expected["z"], rtol=1e-6)
    assert apply_mask(out.effect_files[1], mask_file).shape == (2, fit.n_voxels)
