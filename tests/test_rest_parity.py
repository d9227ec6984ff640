"""Parity with nilearn: parcel and sphere time series, connectivity matrices (< 1e-6)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn.connectome import ConnectivityMeasure
from nilearn.maskers import NiftiLabelsMasker, NiftiSpheresMasker

from glmflow.core.rest.atlas import Atlas, ResampledAtlasWarning
from glmflow.core.rest.extract import clean_signals, read_signals
from glmflow.core.rest.measures import RUN_MEASURES
from glmflow.core.rest.spec import CleanSpec

SHAPE, N = (7, 8, 9), 60
CLEAN = [
    CleanSpec(high_pass=0.01, low_pass=0.1),
    CleanSpec(detrend=False, standardize="psc", high_pass=None, low_pass=0.2),
    CleanSpec(detrend=True, standardize=None, high_pass=None, low_pass=None),
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    rng = np.random.default_rng(0)
    d = tmp_path_factory.mktemp("parity")
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    affine[:3, 3] = [-10, -12, -12]
    shared = rng.normal(size=(N, 1, 1, 1))
    data = 100 + rng.normal(size=(*SHAPE, N)) + np.moveaxis(shared, 0, -1)
    nib.save(nib.Nifti1Image(data.astype(np.float32), affine), d / "bold.nii.gz")
    mask = np.zeros(SHAPE, np.uint8)
    mask[1:6, 1:7, 1:8] = 1
    nib.save(nib.Nifti1Image(mask, affine), d / "mask.nii.gz")
    labels = np.zeros(SHAPE, np.int16)
    labels[1:4, 1:4, 1:8], labels[4:6, 1:4, 1:8] = 1, 3
    labels[1:6, 4:7, 1:4], labels[1:6, 4:7, 4:8] = 2, 5
    nib.save(nib.Nifti1Image(labels, affine), d / "labels.nii.gz")
    confounds = rng.normal(size=(N, 3))
    sample_mask = np.array([t for t in range(N) if t not in (10, 11, 30)])
    return d, confounds, sample_mask


def _ours(d, atlas, clean, confounds, sample_mask):
    raw = read_signals(d / "bold.nii.gz", d / "mask.nii.gz", atlas)
    return clean_signals(
        raw.regions, clean, tr=2.0, confounds=confounds, sample_mask=sample_mask, where="x"
    )


@pytest.mark.parametrize("clean", CLEAN)
@pytest.mark.parametrize("censor", [False, True])
def test_labels_equal_nilearn_labels_masker(run, clean, censor):
    d, confounds, sample_mask = run
    sample_mask = sample_mask if censor else None
    atlas = Atlas("labels", "x", ("a", "b", "c", "d"), str(d / "labels.nii.gz"), (1, 2, 3, 5))
    ours = _ours(d, atlas, clean, confounds, sample_mask)
    masker = NiftiLabelsMasker(d / "labels.nii.gz", mask_img=d / "mask.nii.gz", t_r=2.0,
                               **clean.to_dict())  # fmt: skip
    theirs = masker.fit_transform(d / "bold.nii.gz", confounds=confounds, sample_mask=sample_mask)
    assert ours.shape == theirs.shape == ((N - 3) if censor else N, 4)
    assert np.abs(ours - theirs).max() < 1e-6


def test_atlas_on_another_grid_is_resampled_like_nilearn(run, tmp_path):
    d, confounds, _ = run
    img = nib.load(d / "labels.nii.gz")
    big = np.repeat(np.repeat(np.repeat(np.asarray(img.dataobj), 3, 0), 3, 1), 3, 2)
    affine = img.affine.copy()
    affine[:3, :3] /= 3
    affine[:3, 3] -= 1  # 1-mm voxels whose centres tile the 3-mm ones
    nib.save(nib.Nifti1Image(big, affine), tmp_path / "fine.nii.gz")
    atlas = Atlas("labels", "x", ("a", "b", "c", "d"), str(tmp_path / "fine.nii.gz"), (1, 2, 3, 5))
    with pytest.warns(ResampledAtlasWarning, match="resampled to it by nearest neighbour"):
        ours = _ours(d, atlas, CLEAN[0], confounds, None)
    masker = NiftiLabelsMasker(tmp_path / "fine.nii.gz", mask_img=d / "mask.nii.gz", t_r=2.0,
                               **CLEAN[0].to_dict())  # fmt: skip
    theirs = masker.fit_transform(d / "bold.nii.gz", confounds=confounds)
    assert np.abs(ours - theirs).max() < 1e-6


@pytest.mark.parametrize("radius", [0.0, 4.0, 7.0])
def test_spheres_equal_nilearn_spheres_masker(run, radius):
    d, confounds, sample_mask = run
    seeds = [(-6.0, -6.0, -6.0), (-3.0, 6.0, 6.0), (4.0, 0.0, 3.0)]
    atlas = Atlas("spheres", "s", ("a", "b", "c"), coordinates=tuple(seeds), radius=radius,
                  allow_overlap=True)  # fmt: skip
    ours = _ours(d, atlas, CLEAN[0], confounds, sample_mask)
    masker = NiftiSpheresMasker(seeds, radius=radius, mask_img=d / "mask.nii.gz", t_r=2.0,
                                allow_overlap=True, **CLEAN[0].to_dict())  # fmt: skip
    theirs = masker.fit_transform(d / "bold.nii.gz", confounds=confounds, sample_mask=sample_mask)
    assert np.abs(ours - theirs).max() < 1e-6


# ---- the runner's written matrices against nilearn computed here on the same inputs
MOTION = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z", "csf", "white_matter"]
MEASURES = [*RUN_MEASURES, "tangent"]
SUBJECTS = ("01", "02", "03", "04")


def _rest_model(root, fisher_z: bool) -> dict:
    truth = root / "derivatives/truth"
    return {"connectivity": {
        "name": "rest", "task": "rest", "plots": False, "fisher_z": fisher_z,
        "atlas": {"labels_img": str(truth / "atlas-rest_dseg.nii.gz"),
                  "labels_tsv": str(truth / "atlas-rest_dseg.tsv"), "label": "synth"},
        "confounds": {"columns": MOTION}, "measures": MEASURES,
        "group": {"design": "two-sample", "group_column": "group",
                  "inference": {"method": "none"}},
    }}  # fmt: skip


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """4 subjects (2 control, 2 patient) x 1 run x 80 volumes, Fisher z on and off."""
    import warnings

    from glmflow.data.rest import add_resting_state
    from glmflow.runners.rest import run_connectivity, run_connectivity_group

    tmp = tmp_path_factory.mktemp("rest_written")
    root = add_resting_state(tmp / "bids", n_subjects=4, n_runs=1, n_volumes=80)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for z in (False, True):
            kwargs = {"work_dir": tmp / f"work{z}", "plugin": "Linear"}
            run_connectivity(root, tmp / f"out{z}", _rest_model(root, z), **kwargs)
            run_connectivity_group(root, tmp / f"out{z}", _rest_model(root, z), **kwargs)
    return root, tmp


def _nilearn_series(root, sub: str) -> np.ndarray:
    func = root / "derivatives/fmriprep" / f"sub-{sub}" / "func"
    stem = f"sub-{sub}_task-rest_run-1"
    confounds = pd.read_csv(func / f"{stem}_desc-confounds_timeseries.tsv", sep="\t")
    space = f"{stem}_space-MNI152NLin2009cAsym"
    masker = NiftiLabelsMasker(
        root / "derivatives/truth/atlas-rest_dseg.nii.gz",
        mask_img=func / f"{space}_desc-brain_mask.nii.gz",
        t_r=2.0, detrend=True, standardize="zscore_sample", standardize_confounds=True,
        high_pass=0.01, low_pass=0.08,
    )  # fmt: skip
    bold = func / f"{space}_desc-preproc_bold.nii.gz"
    return masker.fit_transform(bold, confounds=confounds[MOTION].fillna(0).to_numpy())


def _nilearn_matrix(series: np.ndarray, measure: str, fisher_z: bool) -> np.ndarray:
    if measure == "sparse inverse covariance":
        from sklearn.covariance import GraphicalLassoCV

        return GraphicalLassoCV().fit(series).precision_
    matrix = ConnectivityMeasure(kind=measure).fit_transform([series])[0]
    if fisher_z and measure in ("correlation", "partial correlation"):
        with np.errstate(divide="ignore"):
            matrix = np.arctanh(np.clip(matrix, -1, 1))
        np.fill_diagonal(matrix, np.nan)
    return matrix


def _same(ours: np.ndarray, theirs: np.ndarray) -> None:
    assert ours.shape == theirs.shape
    assert (np.isnan(ours) == np.isnan(theirs)).all()
    assert np.nanmax(np.abs(ours - theirs)) < 1e-6


@pytest.mark.parametrize("fisher_z", [False, True])
@pytest.mark.parametrize("measure", RUN_MEASURES)
def test_written_run_matrices_equal_nilearn(written, measure, fisher_z):
    from glmflow.core.rest.files import read_matrix
    from glmflow.core.rest.measures import MEASURE_LABELS

    root, tmp = written
    for sub in SUBJECTS:
        func = tmp / f"out{fisher_z}" / "glmflow" / f"sub-{sub}" / "func"
        name = (f"sub-{sub}_task-rest_run-1_space-MNI152NLin2009cAsym_seg-synth_"
                f"meas-{MEASURE_LABELS[measure]}_desc-rest_relmat.tsv")  # fmt: skip
        theirs = _nilearn_matrix(_nilearn_series(root, sub), measure, fisher_z)
        _same(read_matrix(func / name), theirs)
        if fisher_z and measure == "correlation":  # the transform is applied, not skipped
            assert np.isnan(np.diag(read_matrix(func / name))).all()


@pytest.mark.parametrize("fisher_z", [False, True])
def test_written_group_tangent_equals_nilearn(written, fisher_z):
    from scipy import stats

    from glmflow.core.rest.files import read_matrix, read_timeseries

    root, tmp = written
    top = tmp / f"out{fisher_z}" / "glmflow"
    t_file = top / (
        "task-rest_space-MNI152NLin2009cAsym_seg-synth_meas-tangent_"
        "contrast-patientMinusControl_stat-t_desc-rest_relmat.tsv"
    )
    groups = pd.read_csv(root / "participants.tsv", sep="\t").set_index("participant_id")["group"]
    # the written series are nilearn's to its float32 output's last bit; a t of 2 against 2
    # subjects' tangent matrices turns that bit into ~3e-6, so nilearn's tangent and t are
    # taken of the series glmflow wrote, and the series compared to nilearn's here
    series = []
    for sub in SUBJECTS:
        (written_file,) = (top / f"sub-{sub}").glob("**/*_desc-rest_timeseries.tsv")
        series.append(read_timeseries(written_file))
        theirs = _nilearn_series(root, sub)
        assert theirs.dtype == np.float32  # nilearn's masker output
        assert np.abs(series[-1] - theirs).max() <= 2 * np.spacing(np.abs(theirs).max())
    tangent = ConnectivityMeasure(kind="tangent").fit_transform(series)
    patient = np.array([groups[f"sub-{sub}"] == "patient" for sub in SUBJECTS])
    assert patient.sum() == 2
    theirs = stats.ttest_ind(tangent[patient], tangent[~patient], axis=0).statistic
    np.fill_diagonal(theirs, np.nan)
    _same(read_matrix(t_file), theirs)
