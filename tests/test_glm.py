"""fit_glm against nilearn's FirstLevelModel, save/load, errors and the FitFirstLevel node.

Tolerances: theta and dispersion rtol 1e-10 (we follow nilearn's arithmetic, in float64 like
it), AR(1) coefficients must be identical after nilearn's quantisation, residual maps 1e-5
(stored float32), r-square 1e-6.
"""

from __future__ import annotations

import json
import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn.glm.first_level import FirstLevelModel, make_first_level_design_matrix
from nilearn.masking import apply_mask

from glmflow.core.bold import read_masked_bold
from glmflow.core.design import read_design
from glmflow.core.glm import fit_glm, load_fit, read_sample_mask, save_fit
from glmflow.errors import ConfoundsError, DesignError, ModelSpecError

SHAPE = (7, 8, 9)
N_VOLUMES = 60
TR = 2.0
AFFINE = np.array([[-3.0, 0, 0, 30], [0, 3.0, 0, -40], [0, 0, 3.5, -20], [0, 0, 0, 1]])
SAMPLE_MASK = np.r_[0:20, 24:N_VOLUMES]


def make_design(seed: int = 0, n_volumes: int = N_VOLUMES) -> pd.DataFrame:
    """Two conditions, one confound and a cosine drift (nilearn's own design builder)."""
    rng = np.random.default_rng(seed)
    events = pd.DataFrame(
        {
            "onset": [6.0, 30.0, 52.0, 76.0, 98.0],
            "duration": [6.0] * 5,
            "trial_type": ["face", "house", "face", "house", "face"],
        }
    )
    confounds = pd.DataFrame({"motion": rng.standard_normal(n_volumes)})
    return make_first_level_design_matrix(
        np.arange(n_volumes) * TR,
        events,
        hrf_model="spm",
        drift_model="cosine",
        high_pass=0.01,
        add_regs=confounds,
    )


def make_run(tmp_path, seed: int = 0, design: pd.DataFrame | None = None):
    """A small float32 run with AR(1) noise of varying strength; returns bold, mask, design."""
    rng = np.random.default_rng(seed)
    design = make_design(seed) if design is None else design
    phi = rng.uniform(-0.2, 0.6, SHAPE)[..., None]
    noise = np.zeros((*SHAPE, N_VOLUMES))
    shocks = rng.standard_normal((*SHAPE, N_VOLUMES))
    for t in range(N_VOLUMES):
        noise[..., t] = shocks[..., t] + (phi[..., 0] * noise[..., t - 1] if t else 0)
    betas = rng.uniform(-1, 3, (*SHAPE, design.shape[1])) * 10
    signal = np.einsum("tk,xyzk->xyzt", design.to_numpy(), betas)
    data = (800 + signal + 8 * noise).astype(np.float32)
    mask = np.zeros(SHAPE, dtype=np.uint8)
    mask[1:6, 1:7, 2:8] = 1
    mask[0, 0, 0] = 1  # an isolated voxel at the corner of the box
    bold, mask_file = tmp_path / f"bold{seed}.nii.gz", tmp_path / f"mask{seed}.nii.gz"
    nib.save(nib.Nifti1Image(data, AFFINE), bold)
    nib.save(nib.Nifti1Image(mask, AFFINE), mask_file)
    return bold, mask_file, design


def nilearn_run(bold, mask_file, design, *, noise_model, sample_mask=None, fwhm=None, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return FirstLevelModel(
            mask_img=str(mask_file), noise_model=noise_model, smoothing_fwhm=fwhm, **kw
        ).fit(
            str(bold),
            design_matrices=[design],
            sample_masks=None if sample_mask is None else [sample_mask],
        )


def nilearn_per_voxel(model, attribute):
    labels, results = model.labels_[0], model.results_[0]
    first = getattr(next(iter(results.values())), attribute)
    out = np.zeros((*np.shape(first)[:-1], labels.size))
    for label, result in results.items():
        out[..., labels == label] = getattr(result, attribute)
    return out, labels


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("glm"))


@pytest.mark.parametrize("noise_model", ["ar1", "ols"])
@pytest.mark.parametrize("sample_mask", [None, SAMPLE_MASK], ids=["all", "scrubbed"])
@pytest.mark.parametrize("fwhm", [None, 5.0], ids=["raw", "smoothed"])
def test_fit_matches_nilearn(run, noise_model, sample_mask, fwhm):
    bold, mask_file, design = run
    reference = nilearn_run(
        bold, mask_file, design, noise_model=noise_model, sample_mask=sample_mask, fwhm=fwhm
    )
    data = read_masked_bold(bold, mask_file, smoothing_fwhm=fwhm)
    fit = fit_glm(data, design, sample_mask=sample_mask, noise_model=noise_model)

    theta, labels = nilearn_per_voxel(reference, "theta")
    dispersion, _ = nilearn_per_voxel(reference, "dispersion")
    np.testing.assert_allclose(fit.theta, theta, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(fit.dispersion, dispersion, rtol=1e-10)
    if noise_model == "ar1":
        np.testing.assert_array_equal(fit.rho[fit.labels], labels.astype(float))
        assert fit.rho.size > 5  # the simulated noise spans several AR groups
    else:
        assert fit.rho.tolist() == [0.0]
    n_kept = N_VOLUMES if sample_mask is None else sample_mask.size
    result = next(iter(reference.results_[0].values()))
    assert fit.n_timepoints == n_kept
    assert fit.df_residuals == result.df_residuals == n_kept - design.shape[1]
    assert fit.column_names == tuple(design.columns)


@pytest.mark.parametrize("noise_model", ["ar1", "ols"])
@pytest.mark.parametrize("sample_mask", [None, SAMPLE_MASK], ids=["all", "scrubbed"])
def test_many_chunks_match_nilearn(run, noise_model, sample_mask, monkeypatch):
    # chunks of 13 voxels: every chunk but the first starts past 0 (the second pass's
    # sorted reads and kept means are offset), the last one is short
    from glmflow.core.glm import engine

    bold, mask_file, design = run
    reference = nilearn_run(bold, mask_file, design, noise_model=noise_model,
                            sample_mask=sample_mask)  # fmt: skip
    data = read_masked_bold(bold, mask_file)
    before = data.copy()
    monkeypatch.setattr(engine, "_CHUNK_ELEMENTS", 13 * N_VOLUMES)
    fit = fit_glm(data, design, sample_mask=sample_mask, noise_model=noise_model)
    assert data.shape[1] > 5 * 13 and data.shape[1] % 13
    theta, _ = nilearn_per_voxel(reference, "theta")
    dispersion, _ = nilearn_per_voxel(reference, "dispersion")
    np.testing.assert_allclose(fit.theta, theta, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(fit.dispersion, dispersion, rtol=1e-10)
    np.testing.assert_array_equal(data, before)


@pytest.mark.parametrize("noise_model", ["ar1", "ols"])
def test_fit_equals_nilearn_run_glm(run, noise_model):
    """Pinned to the installed nilearn's public run_glm (the function fit_glm re-implements).

    Same unscaled Y and design to both. Tolerances: theta and dispersion rtol 1e-10 (same
    float64 arithmetic, other operation order), AR(1) coefficients identical after the
    quantisation to 1/bins, t rtol 1e-9.
    """
    from nilearn.glm.contrasts import compute_contrast as nilearn_contrast
    from nilearn.glm.first_level import run_glm

    from glmflow.core.contrasts import compute_contrast

    bold, mask_file, design = run
    data = read_masked_bold(bold, mask_file)
    labels, results = run_glm(data, design.to_numpy(), noise_model=noise_model)
    fit = fit_glm(data, design, noise_model=noise_model, signal_scaling=False)

    theta = np.empty_like(fit.theta)
    dispersion = np.empty_like(fit.dispersion)
    for label, result in results.items():
        theta[:, labels == label] = result.theta
        dispersion[labels == label] = result.dispersion
    np.testing.assert_allclose(fit.theta, theta, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(fit.dispersion, dispersion, rtol=1e-10)
    np.testing.assert_array_equal(fit.rho[fit.labels], labels.astype(float))
    assert (fit.rho.size > 5) == (noise_model == "ar1")  # the noise spans several AR groups

    weights = (design.columns == "face").astype(float) - (design.columns == "house")
    theirs = nilearn_contrast(labels, results, weights, stat_type="t")
    ours = compute_contrast(fit, {"name": "fh", "expressions": ["face - house"]})
    np.testing.assert_allclose(ours["stat"], theirs.stat(), rtol=1e-9)
    np.testing.assert_allclose(ours["effect"], np.ravel(theirs.effect), rtol=1e-9, atol=1e-10)
    assert fit.df_residuals == next(iter(results.values())).df_residuals


@pytest.mark.parametrize("noise_model", ["ar1", "ols"])
def test_residuals_predicted_r_square_match_nilearn(run, noise_model):
    bold, mask_file, design = run
    reference = nilearn_run(
        bold,
        mask_file,
        design,
        noise_model=noise_model,
        sample_mask=SAMPLE_MASK,
        minimize_memory=False,
    )
    fit = fit_glm(
        read_masked_bold(bold, mask_file),
        design,
        sample_mask=SAMPLE_MASK,
        noise_model=noise_model,
        minimize_memory=False,
    )
    for ours, img in [
        (fit.residuals, reference.residuals_[0]),
        (fit.predicted, reference.predicted_[0]),
    ]:
        assert ours.shape == (SAMPLE_MASK.size, fit.n_voxels)
        np.testing.assert_allclose(ours, apply_mask(img, mask_file), rtol=1e-5, atol=1e-4)
    # nilearn takes var(Y) of the OLS model in float32 (OLS does not cast Y): hence 1e-6
    np.testing.assert_allclose(
        fit.r_square, apply_mask(reference.r_square_[0], mask_file)[0], rtol=1e-6
    )


def test_recovers_simulated_betas_without_scaling():
    rng = np.random.default_rng(3)
    design = make_design(3)
    beta = rng.normal(size=(design.shape[1], 500)) * 5
    data = (design.to_numpy() @ beta + 0.01 * rng.standard_normal((N_VOLUMES, 500))).astype(
        np.float32
    )
    fit = fit_glm(data, design, noise_model="ols", signal_scaling=False)
    np.testing.assert_allclose(fit.theta, beta, atol=0.05)
    ar = fit_glm(data, design, noise_model="ar1", signal_scaling=False)
    np.testing.assert_allclose(ar.theta, beta, atol=0.05)
    assert np.sign(ar.theta[0]).tolist() == np.sign(beta[0]).tolist()


def test_constant_and_zero_voxels_match_nilearn_run_glm():
    from nilearn.glm.first_level import mean_scaling, run_glm

    design = make_design(5)
    rng = np.random.default_rng(5)
    data = (1000 + 10 * rng.standard_normal((N_VOLUMES, 40))).astype(np.float32)
    data[:, 3] = 500.0  # constant: zero residuals but for nilearn's global centring
    data[:, 7] = 0.0  # empty voxel: mean 0, scaled by 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels, results = run_glm(mean_scaling(data.copy())[0], design.to_numpy())
        fit = fit_glm(data, design)
    theta = np.zeros_like(fit.theta)
    for label, result in results.items():
        theta[:, labels == label] = result.theta
    np.testing.assert_array_equal(fit.rho[fit.labels], labels.astype(float))
    np.testing.assert_allclose(fit.theta, theta, rtol=1e-10, atol=1e-10)
    assert np.isfinite(fit.dispersion).all()


def test_input_data_not_modified_and_bool_sample_mask(run):
    bold, mask_file, design = run
    data = read_masked_bold(bold, mask_file)
    before = data.copy()
    keep = np.zeros(N_VOLUMES, bool)
    keep[SAMPLE_MASK] = True
    by_flag = fit_glm(data, design, sample_mask=keep)
    by_index = fit_glm(data, design, sample_mask=SAMPLE_MASK)
    fit_glm(data, design, noise_model="ols")
    fit_glm(data, design, noise_model="ar1")
    np.testing.assert_array_equal(data, before)
    np.testing.assert_array_equal(by_flag.theta, by_index.theta)


def test_save_load_round_trip(run, tmp_path):
    bold, mask_file, design = run
    fit = fit_glm(read_masked_bold(bold, mask_file), design, source="design.tsv")
    loaded = load_fit(save_fit(fit, tmp_path / "fit.npz"))
    for key in ("theta", "dispersion", "labels", "rho", "normalized_cov"):
        np.testing.assert_array_equal(getattr(loaded, key), getattr(fit, key))
    for key in ("df_residuals", "column_names", "noise_model", "n_timepoints", "source"):
        assert getattr(loaded, key) == getattr(fit, key)


def test_read_design_round_trips_floats(tmp_path):
    design = make_design()
    path = tmp_path / "design.tsv"
    design.to_csv(path, sep="\t", float_format="%.17g", index=False)
    read, _ = read_design(path)
    np.testing.assert_array_equal(read.to_numpy(), design.to_numpy())
    assert list(read.columns) == list(design.columns)


DATA = np.ones((10, 3), np.float32)
DESIGN = pd.DataFrame({"a": np.arange(10.0), "constant": 1.0})


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        # noise_model and signal_scaling: the spec's rule and wording (GlmSpec)
        (
            dict(noise_model="ar2"),
            ModelSpecError,
            r"'noise_model' must be one of \"ar1\", \"ols\"; got \"ar2\"",
        ),
        (dict(signal_scaling=1), ModelSpecError, r"'signal_scaling' must be 0 .*; got 1"),
        (dict(signal_scaling=True), ModelSpecError, r"'signal_scaling' must be 0 .*; got true"),
        (dict(bins=0), ModelSpecError, r"bins must be a positive integer, got 0"),
        (
            dict(design=DESIGN.iloc[:8]),
            DesignError,
            r"Design d.tsv has 8 rows but the BOLD data has 10 volumes",
        ),
        (
            dict(design=DESIGN.assign(a=np.r_[np.nan, np.arange(9.0)])),
            DesignError,
            r"Design d.tsv has non-finite values in column\(s\) a; fill or drop them",
        ),
        (
            dict(sample_mask=[0, 1, 12]),
            ConfoundsError,
            r"sample_mask index 12 is outside the run's volumes 0..9",
        ),
        (
            dict(sample_mask=[3, 2, 4, 5]),
            ConfoundsError,
            r"sample_mask indices must be strictly increasing .* got \[3, 2, 4, 5\]",
        ),
        (dict(sample_mask=[]), ConfoundsError, r"sample_mask keeps no volume"),
        (
            dict(sample_mask=np.ones(9, bool)),
            ConfoundsError,
            r"Boolean sample_mask has 9 entries but the run has 10 volumes",
        ),
        (
            dict(sample_mask=[0, 1]),
            DesignError,
            r"Design d.tsv has 2 columns but only 2 volumes are kept: no degrees of freedom",
        ),
    ],
)
def test_bad_inputs(kwargs, error, message):
    kwargs = {"design": DESIGN, **kwargs}
    design = kwargs.pop("design")
    with pytest.raises(error, match=message):
        fit_glm(DATA, design, source="d.tsv", **kwargs)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"sample_mask": None, "n_volumes": 9}, r"is for 9 volumes but the BOLD data has 10"),
        ({"kept": [1]}, r"must be JSON with keys 'sample_mask' .* and 'n_volumes'"),
    ],
)
def test_bad_sample_mask_file(tmp_path, content, message):
    path = tmp_path / "sample_mask.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ConfoundsError, match=message):
        read_sample_mask(path, 10)


def test_sample_mask_file(tmp_path):
    path = tmp_path / "sample_mask.json"
    path.write_text(json.dumps({"sample_mask": [0, 2, 3], "n_volumes": 4}))
    assert read_sample_mask(path, 4).tolist() == [0, 2, 3]
    path.write_text(json.dumps({"sample_mask": None, "n_volumes": 4}))
    assert read_sample_mask(path, 4) is None


def test_fit_first_level_node(run, tmp_path):
    from nipype.pipeline import engine as pe

    from glmflow.interfaces.bold import MaskAndSmooth
    from glmflow.interfaces.glm import FitFirstLevel

    bold, mask_file, design = run
    design_file = tmp_path / "design.tsv"
    design.to_csv(design_file, sep="\t", float_format="%.17g", index=False)
    sample_mask_file = tmp_path / "sample_mask.json"
    sample_mask_file.write_text(
        json.dumps({"sample_mask": SAMPLE_MASK.tolist(), "n_volumes": N_VOLUMES})
    )
    masked = pe.Node(
        MaskAndSmooth(bold_file=str(bold), mask_file=str(mask_file)),
        name="mask",
        base_dir=str(tmp_path),
    ).run()
    node = pe.Node(
        FitFirstLevel(
            data_file=masked.outputs.data_file,
            design_file=str(design_file),
            sample_mask_file=str(sample_mask_file),
            mask_file=str(mask_file),
            minimize_memory=False,
        ),
        name="fit",
        base_dir=str(tmp_path),
    )
    out = node.run().outputs
    fit = load_fit(out.fit_file)
    expected = fit_glm(read_masked_bold(bold, mask_file), design, sample_mask=SAMPLE_MASK)
    np.testing.assert_allclose(fit.theta, expected.theta, rtol=1e-12)
    assert out.dof == N_VOLUMES - 4 - design.shape[1]
    assert nib.load(out.residuals_file).shape == (*SHAPE, SAMPLE_MASK.size)
    r_square = apply_mask(out.r_square_file, mask_file)
    assert 0 < r_square.min() and r_square.max() < 1
