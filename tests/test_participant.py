"""The participant level end to end on the synthetic dataset: outputs, truth, nilearn, cache."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from glmflow.data import make_synthetic_dataset
from glmflow.runners.participant import run_participant_level

pytestmark = pytest.mark.slow

MODEL = Path(__file__).resolve().parents[1] / "glmflow" / "data" / "models"
SPACE = "space-MNI152NLin2009cAsym"
# files of 2 subjects x 2 runs: 6 contrasts x 5 stats at 2 runs + 1 subject level, each
# with a JSON sidecar, and the design's .tsv, .svg and .json of each run
COUNTED = 2 * (2 + 1) * 6 * 5 * 2 + 2 * 2 * 3


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_synthetic_dataset(
        tmp_path_factory.mktemp("participant") / "bids", n_subjects=2, n_runs=2
    )


def _model(tmp_path: Path, **changes) -> Path:
    """The packaged glm-express model with some task keys changed."""
    data = json.loads((MODEL / "task_information.json").read_text())
    data["faces"].update(changes)
    path = tmp_path / "task_information.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def first_run(dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    model = _model(root)
    kwargs = dict(bids_dir=dataset, output_dir=root / "out", model=model, work_dir=root / "work")
    result = run_participant_level(**kwargs, n_procs=2)
    return root, kwargs, result


def _load(path) -> np.ndarray:
    return np.asanyarray(nib.load(path).dataobj)


def test_outputs_are_bids_derivatives(first_run):
    root, _, result = first_run
    out = root / "out" / "glmflow"
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Name"] == "glmflow"
    func = out / "sub-01" / "func"
    contrasts = ["face", "house", "scrambled", "faceMinusHouse", "faceMinusScrambled"]
    for label in contrasts:
        for stat in ("effect", "variance", "t", "p", "z"):
            for run in ("_run-1", "_run-2", ""):
                name = f"sub-01_task-faces{run}_{SPACE}_contrast-{label}_stat-{stat}_statmap"
                assert (func / f"{name}.nii.gz").is_file(), name
                assert (func / f"{name}.json").is_file(), name
    assert (func / "sub-01_task-faces_run-1_design.tsv").is_file()
    assert (func / "sub-01_task-faces_run-1_design.svg").is_file()
    sidecar = json.loads(
        (
            func / f"sub-01_task-faces_{SPACE}_contrast-faceMinusHouse_stat-z_statmap.json"
        ).read_text()
    )
    assert sidecar["Level"] == "subject" and sidecar["Statistic"] == "z"
    assert sidecar["Contrast"]["Name"] == "face-house"
    assert sidecar["Contrast"]["Expressions"] == ["face - house"]
    assert sidecar["Model"]["Task"] == "faces"
    assert len(result.files) == len(set(result.files)) > 0
    assert {p.parent for p in result.files} <= {func, out / "sub-02" / "func"}
    # nothing but BIDS derivatives: no temporary files left behind
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]


def test_run_maps_equal_nilearn_first_level_model(first_run, dataset):
    from nilearn.glm.first_level import FirstLevelModel

    root, _, result = first_run
    run = next(r for r in result.runs if r.subject == "01" and r.run == "1")
    out = root / "out" / "glmflow" / "sub-01" / "func"
    # The TSV as pandas reads it, handed to nilearn as it is: every column is a regressor.
    design = pd.read_csv(out / "sub-01_task-faces_run-1_design.tsv", sep="\t")
    model = FirstLevelModel(
        t_r=run.tr,
        slice_time_ref=run.slice_time_ref,
        mask_img=run.mask,
        smoothing_fwhm=8.0,
        noise_model="ar1",
        signal_scaling=0,
        minimize_memory=True,
    ).fit(run.bold, design_matrices=[design])
    theirs = model.compute_contrast("face - house", output_type="all")
    mask = _load(run.mask) > 0
    stem = f"sub-01_task-faces_run-1_{SPACE}_contrast-faceMinusHouse"
    for stat, key in (
        ("z", "z_score"),
        ("effect", "effect_size"),
        ("variance", "effect_variance"),
    ):
        ours = _load(out / f"{stem}_stat-{stat}_statmap.nii.gz")[mask]
        ref = theirs[key].get_fdata()[mask]
        if stat == "z":
            assert np.max(np.abs(ours - ref)) < 1e-3
        else:
            np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-6 * np.abs(ref).max())


def test_subject_maps_are_equal_weight_fixed_effects(first_run):
    """A glm-express file combines runs as glm-express (nilearn's multi-run model) does."""
    from nilearn.glm import compute_fixed_effects

    root, _, result = first_run
    runs = [r for r in result.runs if r.subject == "02"]
    out = root / "out" / "glmflow" / "sub-02" / "func"
    stem = f"{SPACE}_contrast-faceMinusHouse"
    effects = [
        out / f"sub-02_task-faces_run-{r.run}_{stem}_stat-effect_statmap.nii.gz" for r in runs
    ]
    variances = [str(e).replace("stat-effect", "stat-variance") for e in effects]
    dofs = [
        json.loads(Path(str(e).replace(".nii.gz", ".json")).read_text())["Contrast"][
            "DegreesOfFreedom"
        ]
        for e in effects
    ]
    _, _, _, z = compute_fixed_effects(
        [str(e) for e in effects],
        variances,
        runs[0].mask,
        precision_weighted=False,
        dofs=dofs,
    )
    ours = _load(out / f"sub-02_task-faces_{stem}_stat-z_statmap.nii.gz")
    mask = _load(runs[0].mask) > 0
    assert np.max(np.abs(ours[mask] - z.get_fdata()[mask])) < 1e-3


def test_true_effects_are_found_and_the_null_region_is_not(dataset, tmp_path):
    """Sensitivity and false positives against the generator's truth (no smoothing)."""
    from glmflow.data import load_truth

    truth_dir = dataset / "derivatives" / "truth"
    run_participant_level(
        bids_dir=dataset,
        output_dir=tmp_path / "out",
        model=_model(tmp_path),
        work_dir=tmp_path / "work",
        smoothing_fwhm=0,
        participant_label=["01"],
    )
    out = tmp_path / "out" / "glmflow" / "sub-01" / "func"
    truth = load_truth(dataset)
    assert truth["conditions"][:3] == ["face", "house", "scrambled"]

    def region(name):
        return _load(truth_dir / f"desc-{name}_mask.nii.gz") > 0

    for condition in ("face", "house"):
        stem = f"sub-01_task-faces_{SPACE}_contrast-{condition}"
        z = _load(out / f"{stem}_stat-z_statmap.nii.gz")
        effect = _load(out / f"{stem}_stat-effect_statmap.nii.gz")
        true_effect = _load(truth_dir / f"sub-01_desc-{condition}_effect.nii.gz")
        active = region(condition)
        # the effect is recovered in percent signal change, within 15 %
        assert effect[active].mean() == pytest.approx(true_effect[active].mean(), rel=0.15)
        sensitivity = np.mean(z[active] > 3.1)
        false_positive_rate = np.mean(np.abs(z[region("null")]) > 3.1)
        assert sensitivity > 0.3, (condition, sensitivity)
        assert false_positive_rate < 0.01, (condition, false_positive_rate)


def _results(work: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in work.rglob("result_*.pklz")}


def _executed(before: dict[str, int], after: dict[str, int]) -> set[str]:
    """Names of the nodes whose result file was written again."""
    return {Path(p).parent.name for p, t in after.items() if before.get(p) != t}


def test_no_change_rerun_executes_nothing(first_run):
    root, kwargs, _ = first_run
    before = _results(root / "work")
    run_participant_level(**kwargs, n_procs=1)  # n_procs is not part of any hash
    assert _executed(before, _results(root / "work")) == set()


@pytest.fixture
def cold(tmp_path_factory, tmp_path):
    """A fresh cold run of one subject's run in its own work directory."""
    dataset = make_synthetic_dataset(tmp_path / "bids", n_subjects=1, n_runs=1)
    kwargs = dict(
        bids_dir=dataset,
        output_dir=tmp_path / "out",
        model=_model(tmp_path),
        work_dir=tmp_path / "work",
    )
    run_participant_level(**kwargs)
    return tmp_path, kwargs


def test_contrast_edit_reruns_only_contrast_nodes(cold):
    root, kwargs = cold
    contrasts = {"face-house": "face - house", "house-face": "house - face"}
    out = root / "out" / "glmflow" / "sub-01" / "func"
    kept = out / f"sub-01_task-faces_run-1_{SPACE}_contrast-faceMinusHouse_stat-z_statmap.nii.gz"
    inode = kept.stat().st_ino
    before = _results(root / "work")
    run_participant_level(**{**kwargs, "model": _model(root, design_contrasts=contrasts)})
    executed = _executed(before, _results(root / "work"))
    assert {"compute_contrasts", "combine_runs", "ds_subject"} <= executed
    assert {n for n in executed if not n.startswith("ds_")} == {
        "compute_contrasts",
        "merge_contrast_indices",
        "combine_runs",
    }
    name = f"sub-01_task-faces_{SPACE}_contrast-houseMinusFace_stat-z_statmap.nii.gz"
    assert (out / name).is_file()
    # the unchanged contrast was not computed again: the same file, linked from the memo
    assert kept.stat().st_ino == inode


def test_confound_edit_keeps_the_masked_data(cold):
    root, kwargs = cold
    before = _results(root / "work")
    confounds = ["trans_x", "non_steady_state_outlier*"]
    run_participant_level(**{**kwargs, "model": _model(root, confound_regressors=confounds)})
    executed = _executed(before, _results(root / "work"))
    assert {"build_design", "fit_first_level", "compute_contrasts"} <= executed
    assert "mask_and_smooth" not in executed


def test_design_tsv_holds_the_model_columns(first_run):
    root, _, result = first_run
    stem = root / "out/glmflow/sub-01/func/sub-01_task-faces_run-1_design"
    design = pd.read_csv(f"{stem}.tsv", sep="\t")
    assert "frame_times" not in design.columns
    for column in ("face", "house", "scrambled", "face_x_rt", "trans_x", "constant"):
        assert column in design.columns
    assert len(design) == 100
    # frame times live in the sidecar: (i + slice_time_ref) * tr
    sidecar = json.loads(Path(f"{stem}.json").read_text())
    run = next(r for r in result.runs if r.subject == "01" and r.run == "1")
    expected = (np.arange(100) + run.slice_time_ref) * run.tr
    np.testing.assert_allclose(sidecar["FrameTimes"], expected, rtol=0, atol=1e-12)
    assert list(sidecar["Roles"]) == list(design.columns)
    assert sidecar["Roles"]["face"] == "condition" and sidecar["Roles"]["trans_x"] == "confound"


def test_model_maps_are_written_when_memory_is_not_minimized(tmp_path):
    from glmflow.core.model import load_model

    dataset = make_synthetic_dataset(tmp_path / "bids", n_subjects=1, n_runs=1, n_volumes=60)
    spec = load_model(MODEL / "faces_model.json")
    data = json.loads(spec.to_json())
    data["glm"]["minimize_memory"] = False
    model = tmp_path / "model.json"
    model.write_text(json.dumps(data))
    with pytest.warns(UserWarning, match="F contrast"):
        run_participant_level(
            bids_dir=dataset, output_dir=tmp_path / "out", model=model, work_dir=tmp_path / "w"
        )
    func = tmp_path / "out" / "glmflow" / "sub-01" / "func"
    stem = f"sub-01_task-faces_run-1_{SPACE}"
    r_square = _load(func / f"{stem}_stat-rSquare_statmap.nii.gz")
    residuals = nib.load(func / f"{stem}_desc-residuals_bold.nii.gz")
    predicted = nib.load(func / f"{stem}_desc-predicted_bold.nii.gz")
    confounds = pd.read_csv(
        next((dataset / "derivatives/fmriprep").rglob("*desc-confounds_timeseries.tsv")), sep="\t"
    )
    censored = confounds.filter(like="non_steady_state_outlier").shape[1]
    # the model censors non-steady-state volumes: residuals exist for the kept ones only
    assert censored > 0
    assert residuals.shape[-1] == predicted.shape[-1] == 60 - censored
    mask = r_square != 0
    assert mask.sum() > 100 and 0 < r_square[mask].mean() < 1


def test_the_files_counted_are_the_files_on_disk(first_run):
    root, _, result = first_run
    out = root / "out" / "glmflow"
    on_disk = {p for p in out.rglob("*") if p.is_file()} - {out / "dataset_description.json"}
    # issue 10: the subject pages and the index are the level's other files, its reports
    pages = {out / "sub-01.html", out / "sub-02.html", out / "index.html"}
    assert set(result.reports) == pages <= on_disk
    on_disk -= pages
    assert len(result.files) == len(set(result.files)) == len(on_disk) == COUNTED
    assert set(result.files) == on_disk
    assert result.work_dir == root / "work"


# ------------------------------------------------------------------ concurrent and killed runs
def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "glmflow.cli.main", *args]


def _maps(out: Path) -> dict[str, bytes]:
    """Every map's data and every table of an output dataset, by relative path."""
    found = {}
    for path in sorted(out.rglob("*")):
        if path.name.endswith(".nii.gz"):
            found[str(path.relative_to(out))] = nib.load(path).get_fdata().tobytes()
        elif path.suffix == ".tsv":
            found[str(path.relative_to(out))] = path.read_bytes()
    return found


@pytest.fixture(scope="module")
def single(dataset, tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    """One clean run's maps, the reference of the concurrent and killed runs."""
    root = tmp_path_factory.mktemp("single")
    model = _model(root)
    run_participant_level(
        bids_dir=dataset, output_dir=root / "out", model=model, work_dir=root / "work"
    )
    return model, _maps(root / "out" / "glmflow")


ENV = {**os.environ, "NIPYPE_NO_ET": "1"}
# two runs at once on the same folders: tests/test_concurrency.py


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_rerun_after_kill_9_takes_the_lock_over_and_gives_the_same_maps(dataset, single, tmp_path):
    model, reference = single
    out, work = tmp_path / "out", tmp_path / "work"
    cmd = _cli(str(dataset), str(out), "participant", "--model", str(model), "-w", str(work))
    driver = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not list(work.glob("glmflow_wf/*/*/*/result_*.pklz")):
            assert driver.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no node finished within 120 s"
            time.sleep(0.02)
        workers = _children(driver.pid)  # the MultiProc pool's
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    assert workers, "the driver had no MultiProc worker"
    deadline = time.monotonic() + 20  # they end with their driver, not idle forever
    while alive := [pid for pid in workers if Path(f"/proc/{pid}").exists()]:
        assert time.monotonic() < deadline, f"workers {alive} outlived the killed driver"
        time.sleep(0.1)
    assert (work / ".glmflow.lock").is_file()  # left behind by the killed run
    rerun = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    taken = [line for line in rerun.stderr.splitlines() if "taking over the lock" in line]
    folders = [f"Work folder {work}", f"Output folder {out / 'glmflow'}"]
    assert [line.split(": taking")[0] for line in taken] == [
        f"glmflow: warning: {f}" for f in folders
    ]
    assert all(f"(pid {driver.pid} on " in line for line in taken), rerun.stderr
    assert all(f"(glmflow {dataset} {out} participant" in line for line in taken), taken
    assert _maps(out / "glmflow") == reference
    assert (
        not (work / ".glmflow.lock").exists() and not (out / "glmflow" / ".glmflow.lock").exists()
    )
