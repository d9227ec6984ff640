"""Subject maps equal nilearn's FirstLevelModel fitted on all runs at once (issue 15).

Runs of one subject are given different noise levels (extra Gaussian noise added to the
preprocessed BOLD of runs 2 and 3), so that the equal-weight rule (nilearn's multi-run
``FirstLevelModel``, glm-express) and the precision-weighted rule give different maps.
Tolerance: |d| < 1e-3 on z, t, effect and variance (float32 maps; the run maps agree with
nilearn to ~1e-6).
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from glmflow.core.design import read_design
from glmflow.data import make_synthetic_dataset
from glmflow.runners.participant import run_participant_level

pytestmark = pytest.mark.slow

MODELS = Path(__file__).resolve().parents[1] / "glmflow" / "data" / "models"
SPACE = "space-MNI152NLin2009cAsym"
# extra noise sd per run, in units of the generator's 0.5 % noise sd
EXTRA_NOISE = {"1": 0.0, "2": 4.0, "3": 1.5}
STATS = {"z": "z_score", "t": "stat", "effect": "effect_size", "variance": "effect_variance"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = make_synthetic_dataset(tmp_path_factory.mktemp("combine") / "bids", n_subjects=1,
                                  n_runs=3)  # fmt: skip
    rng = np.random.default_rng(15)
    func = root / "derivatives" / "fmriprep" / "sub-01" / "func"
    for run, gain in EXTRA_NOISE.items():
        if not gain:
            continue
        (bold,) = func.glob(f"*run-{run}_*desc-preproc_bold.nii.gz")
        img = nib.load(bold)
        data = np.asanyarray(img.dataobj).astype(np.float32)
        mean = data.mean(axis=-1, keepdims=True)
        data += (rng.standard_normal(data.shape) * gain * 0.005 * mean).astype(np.float32)
        nib.save(nib.Nifti1Image(data, img.affine, img.header), bold)
    return root


def _model(tmp_path: Path, **subject) -> Path:
    """The packaged glmflow model with the subject keys changed.

    Its confounds are given as columns, not as a strategy: a strategy censors the
    non-steady-state volumes (a sample mask the output folder does not hold).
    """
    data = json.loads((MODELS / "faces_model.json").read_text())
    data["confounds"] = {"columns": ["trans_*", "rot_*", "csf", "white_matter"]}
    data["subject"] = subject
    path = tmp_path / "faces_model.json"
    path.write_text(json.dumps(data))
    return path


def _participant(dataset, tmp_path, model, runs):
    result = run_participant_level(
        bids_dir=dataset, output_dir=tmp_path / "out", model=model, work_dir=tmp_path / "work",
        runs=runs, n_procs=2,
    )  # fmt: skip
    return result, tmp_path / "out" / "glmflow" / "sub-01" / "func"


def _load(path) -> np.ndarray:
    return np.asanyarray(nib.load(path).dataobj).astype(np.float64)


def _subject_maps(func: Path, label: str) -> dict[str, np.ndarray]:
    stem = f"sub-01_task-faces_{SPACE}_contrast-{label}"
    return {stat: _load(func / f"{stem}_stat-{stat}_statmap.nii.gz") for stat in STATS}


def _nilearn_all_runs(result, func: Path, smoothing_fwhm):
    """One FirstLevelModel on every run at once, with glmflow's own design matrices."""
    from nilearn.glm.first_level import FirstLevelModel

    runs = result.runs
    designs = [
        read_design(next(func.glob(f"sub-01_task-faces_run-{r.run}_*design*.tsv")))[0]
        for r in runs
    ]
    return FirstLevelModel(
        t_r=runs[0].tr, slice_time_ref=runs[0].slice_time_ref, mask_img=runs[0].mask,
        smoothing_fwhm=smoothing_fwhm, noise_model="ar1", signal_scaling=0,
        minimize_memory=True,
    ).fit([r.bold for r in runs], design_matrices=designs)  # fmt: skip


@pytest.mark.parametrize(
    ("source", "runs", "smoothing_fwhm"),
    [("task_information.json", ["1", "2"], 8.0), ("faces_model.json", ["1", "2", "3"], 6.0)],
)
def test_subject_maps_equal_one_nilearn_model_of_all_runs(
    dataset, tmp_path, source, runs, smoothing_fwhm
):
    model = MODELS / source if source.endswith("information.json") else _model(tmp_path)
    result, func = _participant(dataset, tmp_path, model, runs)
    assert [r.run for r in result.runs] == runs
    assert result.analyses[0].spec.glm.smoothing_fwhm == smoothing_fwhm
    model = _nilearn_all_runs(result, func, smoothing_fwhm)
    mask = _load(result.runs[0].mask) > 0
    for label, expression in (("faceMinusHouse", "face - house"), ("face", "face")):
        with pytest.warns(RuntimeWarning, match=f"same contrast will be used for all {len(runs)}"):
            theirs = model.compute_contrast(expression, output_type="all")
        ours = _subject_maps(func, label)
        for stat, key in STATS.items():
            diff = np.abs(ours[stat][mask] - theirs[key].get_fdata()[mask])
            assert diff.max() < 1e-3, (label, stat, diff.max())
        sidecar = json.loads(
            (func / f"sub-01_task-faces_{SPACE}_contrast-{label}_stat-z_statmap.json").read_text()
        )
        assert sidecar["Contrast"]["RunCombination"] == "equal"
        assert sorted(sidecar["Contrast"]) == sorted(
            ["Name", "Label", "Expressions", "StatType", "DegreesOfFreedom", "Mask",
             "DroppedConditions", "Runs", "RunCombination", "RunCombinationRule"]
        )  # fmt: skip
        assert sidecar["Contrast"]["RunCombinationRule"].startswith("runs weighted equally")


def test_precision_option_equals_nilearn_precision_weighted_fixed_effects(dataset, tmp_path):
    from nilearn.glm import compute_fixed_effects

    model = _model(tmp_path, run_combination="precision")
    result, func = _participant(dataset, tmp_path, model, ["1", "2", "3"])
    mask_img = result.runs[0].mask
    mask = _load(mask_img) > 0
    stem = f"{SPACE}_contrast-faceMinusHouse"
    effects = [
        func / f"sub-01_task-faces_run-{r}_{stem}_stat-effect_statmap.nii.gz" for r in "123"
    ]
    variances = [str(e).replace("stat-effect", "stat-variance") for e in effects]
    dofs = [
        json.loads(Path(str(e).replace(".nii.gz", ".json")).read_text())["Contrast"][
            "DegreesOfFreedom"
        ]
        for e in effects
    ]
    theirs = compute_fixed_effects(
        [str(e) for e in effects], variances, mask_img, precision_weighted=True, dofs=dofs
    )
    ours = _subject_maps(func, "faceMinusHouse")
    for stat, img in zip(("effect", "variance", "t", "z"), theirs, strict=True):
        diff = np.abs(ours[stat][mask] - img.get_fdata()[mask])
        assert diff.max() < 1e-3, (stat, diff.max())
    # the rules differ on these runs: equal weights (nilearn's default) give other maps
    _, _, _, equal_z = compute_fixed_effects(
        [str(e) for e in effects], variances, mask_img, precision_weighted=False, dofs=dofs
    )
    assert np.abs(ours["z"][mask] - equal_z.get_fdata()[mask]).max() > 0.5
    sidecar = json.loads((func / f"sub-01_task-faces_{stem}_stat-z_statmap.json").read_text())
    assert sidecar["Contrast"]["RunCombination"] == "precision"


def test_changing_the_rule_reruns_only_the_combination(dataset, tmp_path):
    def results() -> dict[str, int]:
        return {str(p): p.stat().st_mtime_ns for p in (tmp_path / "work").rglob("result_*.pklz")}

    _participant(dataset, tmp_path, _model(tmp_path, run_combination="precision"), ["1", "2"])
    before = results()
    _, func = _participant(dataset, tmp_path, _model(tmp_path), ["1", "2"])
    executed = {Path(p).parent.name for p, t in results().items() if before.get(p) != t}
    assert {n for n in executed if not n.startswith("ds_")} == {"combine_runs"}
    sidecar = func / f"sub-01_task-faces_{SPACE}_contrast-face_stat-z_statmap.json"
    assert json.loads(sidecar.read_text())["Contrast"]["RunCombination"] == "equal"
