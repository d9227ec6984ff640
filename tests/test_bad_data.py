"""Bad first-level data through the whole command: one clear line, or a recorded exclusion.

Each case edits a copy of a small synthetic dataset (two runs of one subject), runs the
participant level and asserts the exit code and the exact line, as tests/test_cli.py does for
the mistakes found before compute. Cases found only while reading the data (an all-NaN BOLD)
end with one line naming the input file too.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from glmflow.cli.main import main
from glmflow.core.bold import ExcludedVoxelsWarning
from glmflow.data import make_synthetic_dataset

MODEL = Path(__file__).resolve().parents[1] / "glmflow" / "data" / "models"
FUNC = "sub-01/func/sub-01_task-faces_run-1"
PREP = f"derivatives/fmriprep/{FUNC}"
SPACE = "space-MNI152NLin2009cAsym"
BOLD = f"{PREP}_{SPACE}_desc-preproc_bold"
MASK = f"{PREP}_{SPACE}_desc-brain_mask.nii.gz"
CONFOUNDS = f"{PREP}_desc-confounds_timeseries.tsv"
EVENTS = f"{FUNC}_events.tsv"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return make_synthetic_dataset(
        tmp_path_factory.mktemp("bad") / "bids", n_subjects=1, n_runs=2, n_volumes=60
    )


@pytest.fixture
def dataset(pristine, tmp_path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "bids"))


def _model(tmp_path: Path, **changes) -> Path:
    data = json.loads((MODEL / "task_information.json").read_text())
    data["faces"].update(changes)
    path = tmp_path / "model.json"
    path.write_text(json.dumps(data))
    return path


def _run(dataset: Path, tmp_path: Path, *extra: str, **changes) -> int:
    return main(
        [str(dataset), str(tmp_path / "out"), "participant", "--model",
         str(_model(tmp_path, **changes)), "-w", str(tmp_path / "work"), "--plugin", "Linear",
         *extra]
    )  # fmt: skip


def _fill_bold(value):
    def edit(path: Path) -> None:
        img = nib.load(path)
        data = np.full(img.shape, value, np.float32)
        nib.Nifti1Image(data, img.affine, img.header).to_filename(path)

    return edit


def _mask_voxel_count(dataset: Path) -> int:
    return int((nib.load(dataset / MASK).get_fdata() > 0).sum())


def _error_line(capsys, *, before_compute: bool = True) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("glmflow: error:")]
    assert len(lines) == 1, err
    if before_compute:  # a node's failure is also in Nipype's own log (the runner's part)
        assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    ("fill", "counts"),
    [(np.nan, "{n} with NaN/inf values, 0 constant over time"),
     (0.0, "0 with NaN/inf values, {n} constant over time")],
    ids=["all-NaN BOLD", "all-zero BOLD"],
)  # fmt: skip
def test_a_bold_without_signal_fails_naming_the_file(dataset, tmp_path, capsys, fill, counts):
    _fill_bold(fill)(dataset / f"{BOLD}.nii.gz")
    n = _mask_voxel_count(dataset)
    assert _run(dataset, tmp_path) == 2
    line = _error_line(capsys, before_compute=False)
    expected = (
        f"BOLD {dataset / BOLD}.nii.gz: {n} of the {n} voxels of mask {dataset / MASK} have "
        f"no usable signal ({counts.format(n=n)}), more than 10% of the mask; check that its "
        "preprocessing succeeded (an empty or failed run) and that the mask is this run's"
    )
    assert expected in line, line
    # no map of the bad run, and no subject map folding it in (the other run's maps are
    # H5's staging: a failed level publishes nothing)
    written = [p.name for p in (tmp_path / "out").rglob("*stat-z_statmap.nii.gz")]
    assert not [name for name in written if "run-2" not in name], written


def test_isolated_bad_voxels_are_left_out_and_recorded(dataset, tmp_path, capsys):
    path = dataset / f"{BOLD}.nii.gz"
    img = nib.load(path)
    data = img.get_fdata(dtype=np.float32)
    mask = nib.load(dataset / MASK).get_fdata() > 0
    inside = np.argwhere(mask)
    nan_voxel, zero_voxel = tuple(inside[len(inside) // 2]), tuple(inside[len(inside) // 3])
    data[(*nan_voxel, 7)] = np.nan
    data[zero_voxel] = 0.0
    nib.Nifti1Image(data, img.affine, img.header).to_filename(path)
    with pytest.warns(ExcludedVoxelsWarning) as caught:
        assert _run(dataset, tmp_path) == 0
    assert [str(w.message) for w in caught if w.category is ExcludedVoxelsWarning] == [
        f"BOLD {path}: 2 of the {int(mask.sum())} voxels of mask {dataset / MASK} have no "
        "usable signal (1 with NaN/inf values, 1 constant over time); they are left out of "
        "this run's analysis (its maps are 0 there) and not smoothed into their neighbours"
    ]
    func = tmp_path / "out" / "glmflow" / "sub-01" / "func"
    run_z = func / f"sub-01_task-faces_run-1_{SPACE}_contrast-face_stat-z_statmap"
    record = json.loads(run_z.with_suffix(".json").read_text())
    text = json.dumps(record)
    assert '"ExcludedVoxels": 2' in text and '"ExcludedNonFiniteVoxels": 1' in text
    z = nib.load(f"{run_z}.nii.gz").get_fdata()
    assert np.isfinite(z).all() and z[nan_voxel] == 0 and z[zero_voxel] == 0
    assert np.count_nonzero(z[mask]) == mask.sum() - 2
    # the subject level combines the runs where every run has data
    subject_z = nib.load(
        func / f"sub-01_task-faces_{SPACE}_contrast-face_stat-z_statmap.nii.gz"
    ).get_fdata()
    assert np.isfinite(subject_z).all() and subject_z[nan_voxel] == subject_z[zero_voxel] == 0
    assert np.count_nonzero(subject_z[mask]) == mask.sum() - 2


def _truncate_gzip(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-2000])


def _mask_on_another_grid(path: Path) -> None:
    img = nib.load(path)
    data = np.asanyarray(img.dataobj)[:-1]  # one slice fewer along x
    nib.Nifti1Image(data, img.affine, img.header).to_filename(path)


def _rename_condition(path: Path) -> None:
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    table["trial_type"] = table["trial_type"].replace({"face": "Face"})
    table.to_csv(path, sep="\t", index=False)


def _late_condition(path: Path) -> None:
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    late = table["trial_type"] == "house"
    table.loc[late, "onset"] = [str(5000 + i) for i in range(late.sum())]
    table.to_csv(path, sep="\t", index=False)


def _inf_confound(path: Path) -> None:
    table = pd.read_csv(path, sep="\t")
    table.loc[9, "trans_y"] = np.inf
    table.to_csv(path, sep="\t", index=False, na_rep="n/a")


def _zero_confound(path: Path) -> None:
    table = pd.read_csv(path, sep="\t")
    table["rot_z"] = 0.0
    table.to_csv(path, sep="\t", index=False, na_rep="n/a")


# found before compute: (case, file edited, edit, exact line after "glmflow: error: ")
BEFORE_COMPUTE = [
    (
        "truncated .nii.gz BOLD",
        f"{BOLD}.nii.gz",
        _truncate_gzip,
        "BOLD {d}/" + BOLD + ".nii.gz is truncated or corrupt: its gzip trailer says \\d+ "
        r"bytes uncompressed but its header implies \d+ \(shape \(\d+, \d+, \d+, 60\), "
        r"float32\); re-create or copy the file again",
    ),
    (
        "mask on another grid than its single run",
        MASK,
        _mask_on_another_grid,
        "Mask {d}/" + MASK + r" \(shape \(\d+, \d+, \d+\), voxels [\dx.]+ mm\) is not on the "
        "grid of BOLD {d}/" + BOLD + r".nii.gz \(shape \(\d+, \d+, \d+\), voxels [\dx.]+ "
        r"mm\): shapes differ; use a mask in the same space and resolution as the BOLD",
    ),
    (
        "condition renamed in one run",
        EVENTS,
        _rename_condition,
        "Condition 'Face' is in the events of {d}/" + EVENTS + " but not in those of 1 of "
        "the 2 runs modelled \\(e.g. {d}/sub-01/func/sub-01_task-faces_run-2_events.tsv, "
        "which has 'face'\\); the automatic contrasts need every condition in every run: "
        "rename it in the events files \\(or with rename_conditions in the model\\), or run "
        "with --missing-conditions drop",
    ),
    (
        "a condition whose events all start after the scan",
        EVENTS,
        _late_condition,
        "Condition 'house' is in the events of {d}/sub-01/func/sub-01_task-faces_run-2_"
        "events.tsv but not in those of 1 of the 2 runs modelled \\(e.g. {d}/"
        + EVENTS
        + "\\); the automatic contrasts need every condition",
    ),
    (
        "non-finite confound",
        CONFOUNDS,
        _inf_confound,
        "Confound column 'trans_y' of {d}/" + CONFOUNDS + " has a non-finite value inf on "
        "line 11; confounds must be finite numbers \\(or n/a in the first row\\): fix the "
        "file or leave the column out",
    ),
    (
        "all-zero confound column",
        CONFOUNDS,
        _zero_confound,
        "Confound column 'rot_z' of {d}/" + CONFOUNDS + " is 0 in every volume; it would "
        "be an empty regressor: leave it out of the model's confounds or fix the file",
    ),
]


@pytest.mark.parametrize(
    ("relative", "edit", "message"),
    [case[1:] for case in BEFORE_COMPUTE],
    ids=[case[0] for case in BEFORE_COMPUTE],
)
def test_found_before_compute(dataset, tmp_path, capsys, relative, edit, message):
    edit(dataset / relative)
    assert _run(dataset, tmp_path) == 2
    line = _error_line(capsys)
    pattern = "glmflow: error: " + message.replace("{d}", re.escape(str(dataset)))
    assert re.fullmatch(pattern, line) or re.match(pattern, line), line
    assert not list((tmp_path / "out").rglob("*.nii.gz"))


def test_events_after_the_scan_warn_with_their_lines(dataset, tmp_path):
    path = dataset / EVENTS
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    table.loc[2, "onset"] = "5000"
    table.to_csv(path, sep="\t", index=False)
    with pytest.warns(UserWarning) as caught:
        assert _run(dataset, tmp_path) == 0
    messages = [str(w.message) for w in caught]
    assert (
        f"{path}: 1 event(s) start at or after the end of the scan (120 s = volumes x TR) on "
        "line(s) 4; they are left out"
    ) in messages, messages


def test_preflight_warnings_say_each_problem_once_with_a_count(dataset, tmp_path):
    with pytest.warns(UserWarning) as caught:
        assert _run(dataset, tmp_path) == 0
    spikes = [str(w.message) for w in caught if "spike regressor" in str(w.message)]
    assert spikes == [
        f"2 runs (e.g. {dataset / CONFOUNDS}): spike regressor(s) motion_outlier00 (same "
        "volume as non_steady_state_outlier01) left out: one regressor per censored volume"
    ]


def test_a_model_task_the_dataset_lacks_names_the_model_not_the_option(dataset, tmp_path, capsys):
    data = json.loads((MODEL / "task_information.json").read_text())
    model = tmp_path / "motor.json"
    model.write_text(json.dumps({"motor": data["faces"]}))
    out = tmp_path / "out"
    argv = [str(dataset), str(out), "participant", "--model", str(model), "-w",
            str(tmp_path / "work")]  # fmt: skip
    assert main(argv) == 2
    assert _error_line(capsys) == (
        f"glmflow: error: Task 'motor' of model {model} has no BOLD in "
        f"{dataset}/derivatives/fmriprep (tasks present: faces); fix the task in the model "
        "file (in a file of several tasks, choose one with --task)"
    )
    assert main([*argv, "--task", "motor"]) == 2  # asked for: the option is to blame
    assert _error_line(capsys) == (
        f"glmflow: error: Task 'motor' not found in {dataset}/derivatives/fmriprep "
        "(available: faces); fix --task"
    )


def test_a_bold_corrupt_past_the_cheap_check_fails_naming_the_file(dataset, tmp_path, capsys):
    path = dataset / f"{BOLD}.nii.gz"
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + 64] = bytes(64)  # the gzip trailer (size) stays intact
    path.write_bytes(bytes(raw))
    assert _run(dataset, tmp_path) == 2
    line = _error_line(capsys, before_compute=False)
    assert re.search(
        rf"BOLD {re.escape(str(path))} cannot be read at volume \d+ of 60 \(\w+: .+\): the "
        "file is corrupt or truncated; re-create it or copy it again",
        line,
    ), line
