"""Issue 14, every case of items 1-5 and 7, through the real command.

Each case runs ``python -m glmflow.cli.main`` as a subprocess (as a user types it) on a copy
of a small synthetic dataset made once per session (tests/conftest.py), and asserts the exit
code, the exact line and what is left in the output folder: nothing, for every error. The
cases that are not errors (a warning, a recorded exclusion, a lock taken over) run once, all
together, and are asserted line by line. The unit-level tables of the same rules stay in
their modules (test_bold, test_events, test_confounds, test_formula, test_group, ...).

Catalogued bad inputs across the suite, counted on 2026-12-01 with
``pytest --collect-only -q tests`` and the test ids whose function name says an input is
refused (``error|bad|refus|invalid|reject|one_line|fail|raise|unknown|wrong|corrupt|truncat|
missing``) and that are parametrized tables: 45 tables holding 409 cases before this module
(e.g. test_model 76 + 10, test_design 28, test_taskinfo 25, test_bsm 21, test_bids 21,
test_events 13, test_group_level 12, test_cli 9 + 12), plus this module's table of 19 and
its 3 other errors (a task the dataset lacks, with and without --task; a corrupt subject map):
431 in all, against the issue's 60. Counting every test id of that grep, parametrized or
not, gives 460 before this module.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from test_cli import _model as write_model

pytestmark = pytest.mark.slow

MODEL = Path(__file__).resolve().parents[1] / "glmflow" / "data" / "models"
SPACE = "space-MNI152NLin2009cAsym"
FUNC = "sub-01/func/sub-01_task-faces_run-1"
PREP = f"derivatives/fmriprep/{FUNC}"
BOLD = f"{PREP}_{SPACE}_desc-preproc_bold"
MASK = f"{PREP}_{SPACE}_desc-brain_mask.nii.gz"
CONFOUNDS = f"{PREP}_desc-confounds_timeseries.tsv"
EVENTS = f"{FUNC}_events.tsv"
ENV = {**os.environ, "NIPYPE_NO_ET": "1"}


def glmflow(*args: str | Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "glmflow.cli.main", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)


def files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []


def error_line(proc: subprocess.CompletedProcess, *, late: bool) -> str:
    """The one ``glmflow: error:`` line; it ends stderr, and before compute it is all."""
    lines = proc.stderr.splitlines()
    errors = [line for line in lines if line.startswith("glmflow: error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr[-3000:]
    if not late:  # a node's failure is also in Nipype's own log, above the line
        assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return errors[0]


# ----------------------------------------------------------------------------- data edits
def _edit_image(relative: str, change: Callable[[np.ndarray, np.ndarray], np.ndarray]):
    def edit(dataset: Path, root: Path) -> None:
        path = dataset / relative
        img = nib.load(path)
        mask = nib.load(dataset / MASK).get_fdata() > 0
        data = change(img.get_fdata(dtype=np.float32), mask)
        nib.Nifti1Image(data, img.affine, img.header).to_filename(path)

    return edit


def _filled(value: float):
    return _edit_image(f"{BOLD}.nii.gz", lambda data, mask: np.full_like(data, value))


def _nan_in_a_fifth(data: np.ndarray, mask: np.ndarray) -> np.ndarray:
    data[tuple(np.argwhere(mask)[::5].T)] = np.nan  # 424 of the mask's 2120 voxels
    return data


def _two_bad_voxels(data: np.ndarray, mask: np.ndarray) -> np.ndarray:
    inside = np.argwhere(mask)
    data[(*inside[len(inside) // 2], 7)] = np.nan
    data[tuple(inside[len(inside) // 3])] = 0.0
    return data


def _edit_table(relative: str, change: Callable[[pd.DataFrame], None], **read):
    def edit(dataset: Path, root: Path) -> None:
        path = dataset / relative
        table = pd.read_csv(path, sep="\t", **read)
        change(table)
        table.to_csv(path, sep="\t", index=False, na_rep="n/a")

    return edit


def _events(change: Callable[[pd.DataFrame], None], relative: str = EVENTS):
    return _edit_table(relative, change, dtype=str, keep_default_na=False)


def _houses_after_the_scan(table: pd.DataFrame) -> None:
    late = table["trial_type"] == "house"
    table.loc[late, "onset"] = [str(5000 + i) for i in range(late.sum())]


def _one_event_after_the_scan(table: pd.DataFrame) -> None:
    table.loc[2, "onset"] = "5000"


def _rename_face(table: pd.DataFrame) -> None:
    table["trial_type"] = table["trial_type"].replace({"face": "Face"})


def _set(column: str, row: slice | int, value: float):
    def change(table: pd.DataFrame) -> None:
        table.loc[row, column] = value

    return change


def _truncate(relative: str, n_bytes: int = 2000):
    def edit(dataset: Path, root: Path) -> None:
        path = dataset / relative
        path.write_bytes(path.read_bytes()[:-n_bytes])

    return edit


def _invalid_json(dataset: Path, root: Path) -> None:
    (dataset / f"{BOLD}.json").write_text('{"RepetitionTime": 2,')


def _output_is_a_file(dataset: Path, root: Path) -> None:
    (root / "out").write_text("not a folder")


def _write_lock(folder: Path, pid: int) -> None:
    folder.mkdir(parents=True)
    holder = {"pid": pid, "host": socket.gethostname(), "since": "2026-12-01 09:00:00 UTC",
              "started": None, "command": "glmflow ds out participant"}  # fmt: skip
    (folder / ".glmflow.lock").write_text(json.dumps(holder))


def _work_held_by_a_live_run(dataset: Path, root: Path) -> None:
    _write_lock(root / "work", os.getpid())


# --------------------------------------------------------------------- participant errors
D, R = "{d}", "{r}"  # the dataset copy and the case's root folder, in messages


def signal_line(n: int, counts: str) -> str:
    return (
        f"BOLD {D}/{BOLD}.nii.gz: {n} of the 2120 voxels of mask {D}/{MASK} have no usable "
        f"signal ({counts}), more than 10% of the mask; check that its preprocessing succeeded "
        "(an empty or failed run) and that the mask is this run's"
    )


IN_USE = (
    f"Work folder {R}/work is in use by another glmflow run: pid {os.getpid()} on "
    f"{socket.gethostname()} since 2026-12-01 09:00:00 UTC (glmflow ds out participant); "
    "wait for it to finish or pass another -w (work_dir=)"
)
# (id, issue item, dataset edit, model changes, extra arguments, found late, exact line;
# a line holding <regex>...</regex> parts is matched with those parts as regexes)
ERRORS = [
    ("all-NaN BOLD", "14.1", _filled(np.nan), {}, [], True,
     signal_line(2120, "2120 with NaN/inf values, 0 constant over time")),
    ("all-zero BOLD", "14.1", _filled(0.0), {}, [], True,
     signal_line(2120, "0 with NaN/inf values, 2120 constant over time")),
    ("NaN in a fifth of the voxels", "14.1", _edit_image(f"{BOLD}.nii.gz", _nan_in_a_fifth),
     {}, [], True, signal_line(424, "424 with NaN/inf values, 0 constant over time")),
    ("contrast face/0", "14.1", None, {"design_contrasts": {"f": "face/0"}}, [], False,
     'Contrast "f": Formula "face/0" gives column "face" the non-finite weight inf; contrast '
     f"weights must be finite numbers (task 'faces' in {R}/model.json)"),
    ("a condition whose events all start after the scan", "14.1",
     _events(_houses_after_the_scan), {}, [], False,
     f"Condition 'house' is in the events of {D}/sub-01/func/sub-01_task-faces_run-2_events.tsv"
     f" but not in those of 1 of the 2 runs modelled (e.g. {D}/{EVENTS}); the automatic "
     "contrasts need every condition in every run: rename it in the events files (or with "
     "rename_conditions in the model), or run with --missing-conditions drop"),
    ("work folder held by a live run", "14.3", _work_held_by_a_live_run, {}, [], False, IN_USE),
    ("truncated .nii.gz BOLD", "14.4", _truncate(f"{BOLD}.nii.gz"), {}, [], False,
     f"BOLD {D}/{BOLD}.nii.gz is truncated or corrupt: its gzip trailer says <regex>\\d+"
     "</regex> bytes uncompressed but its header implies <regex>\\d+</regex> (shape (20, 24, "
     "20, 60), float32); re-create or copy the file again"),
    ("300-character contrast name", "14.4", None,
     {"design_contrasts": {"face-" + "x" * 295: "face - house"}}, [], False,
     "Contrast 'face-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'... gives a file label of 304 "
     f"characters in {R}/model.json; output file names are limited to 255 bytes, so a label "
     "may have at most 120: give the contrast a shorter name"),
    ("mask on another grid than its single run", "14.4 14.5",
     _edit_image(MASK, lambda data, mask: data[:-1]), {}, [], False,
     f"Mask {D}/{MASK} (shape (19, 24, 20), voxels 4x4x4 mm) is not on the grid of BOLD "
     f"{D}/{BOLD}.nii.gz (shape (20, 24, 20), voxels 4x4x4 mm): shapes differ; use a mask in "
     "the same space and resolution as the BOLD"),
    ("invalid sidecar JSON", "14.4", _invalid_json, {}, [], False,
     f"Sidecar {D}/{BOLD}.json is not valid JSON (Expecting property name enclosed in double "
     "quotes: line 1 column 22 (char 21)); fix the file (pybids cannot index the dataset)"),
    ("output path that is a file", "14.4", _output_is_a_file, {}, [], False,
     f"Output folder {R}/out/glmflow cannot be made: {R}/out is a file, not a folder; choose "
     "another OUTPUT_DIR or move the file away"),
    ("non-finite confound", "14.5", _edit_table(CONFOUNDS, _set("trans_y", 9, np.inf)), {}, [],
     False,
     f"Confound column 'trans_y' of {D}/{CONFOUNDS} has a non-finite value inf on line 11; "
     "confounds must be finite numbers (or n/a in the first row): fix the file or leave the "
     "column out"),
    ("all-zero confound column", "14.5", _edit_table(CONFOUNDS, _set("rot_z", slice(None), 0.0)),
     {}, [], False,
     f"Confound column 'rot_z' of {D}/{CONFOUNDS} is 0 in every volume; it would be an empty "
     "regressor: leave it out of the model's confounds or fix the file"),
    ("condition renamed in one run", "14.5", _events(_rename_face), {}, [], False,
     f"Condition 'Face' is in the events of {D}/{EVENTS} but not in those of 1 of the 2 runs "
     f"modelled (e.g. {D}/sub-01/func/sub-01_task-faces_run-2_events.tsv, which has 'face'); "
     "the automatic contrasts need every condition in every run: rename it in the events "
     "files (or with rename_conditions in the model), or run with --missing-conditions drop"),
    ("--task the model file lacks", "14.5", None, {}, ["--task", "motor"], False,
     f"Task 'motor' is not in {R}/model.json: (tasks in the file: faces)"),
    ("--n-cpus 0", "14.5", None, {}, ["--n-cpus", "0"], False,
     "n_procs (--n-cpus) must be an integer >= 1. Got 0 instead."),
    ("--n-cpus -3", "14.5", None, {}, ["--n-cpus", "-3"], False,
     "n_procs (--n-cpus) must be an integer >= 1. Got -3 instead."),
    ("--mem-gb 0.001", "14.5", None, {}, ["--mem-gb", "0.001"], False,
     "mem_gb (--mem-gb) must be at least 0.2 GB, the memory Nipype reserves for one node. "
     "Got 0.001 instead."),
    ("work folder inside the output dataset", "14.5", None, {}, ["-w", "{r}/out/glmflow/work"],
     False,
     f"Work directory {R}/out/glmflow/work is inside the output dataset {R}/out/glmflow; pass "
     f"-w (work_dir=) outside it, e.g. {R}/work"),
]  # fmt: skip


def _matches(line: str, expected: str) -> bool:
    parts = re.split(r"<regex>(.*?)</regex>", expected)
    pattern = "".join(re.escape(p) if i % 2 == 0 else p for i, p in enumerate(parts))
    return re.fullmatch(pattern, line) is not None


@pytest.fixture
def case_root(tmp_path, synthetic_1x2) -> tuple[Path, Path]:
    """(a fresh copy of the 1-subject, 2-run dataset, the case's folder)."""
    return Path(shutil.copytree(synthetic_1x2, tmp_path / "bids")), tmp_path


@pytest.mark.parametrize(
    ("edit", "changes", "extra", "late", "expected"),
    [case[2:] for case in ERRORS],
    ids=[f"{case[1]} {case[0]}" for case in ERRORS],
)
def test_participant_bad_input(case_root, edit, changes, extra, late, expected):
    dataset, root = case_root
    if edit is not None:
        edit(dataset, root)
    before = {p: p.stat().st_mtime_ns for p in files_in(dataset)}
    out, model = root / "out", write_model(root, **changes)
    extra = [arg.replace("{r}", str(root)) for arg in extra]
    args = ["-w", root / "work", *extra] if "-w" not in extra else extra
    proc = glmflow(dataset, out, "participant", "--model", model, "--plugin", "Linear", *args)
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = error_line(proc, late=late)
    if late:  # the node that read the file, the message, its crash file
        expected = (
            "Node 'glmflow_wf.sub_01_task_faces_wf.run_run_1_wf.mask_and_smooth' failed with "
            f"glmflow.errors.DatasetError: {expected}; crash file: {R}/" "work/glmflow_wf/crash/"
            "crash-<regex>\\S+</regex>-mask_and_smooth-<regex>\\S+</regex>.txt"
        )
    wanted = "glmflow: error: " + expected.replace(D, str(dataset)).replace(R, str(root))
    assert _matches(line, wanted), f"\n{line}\n{wanted}"
    assert files_in(out) == [] or out.is_file()  # a failed level leaves nothing there
    assert {p: p.stat().st_mtime_ns for p in files_in(dataset)} == before


def test_a_model_task_the_dataset_lacks_blames_the_model_when_no_task_was_given(case_root):
    dataset, root = case_root
    data = json.loads((MODEL / "task_information.json").read_text())
    model = root / "motor.json"
    model.write_text(json.dumps({"motor": data["faces"]}))
    proc = glmflow(dataset, root / "out", "participant", "--model", model, "-w", root / "work")
    assert proc.returncode == 2
    assert error_line(proc, late=False) == (
        f"glmflow: error: Task 'motor' of model {model} has no BOLD in "
        f"{dataset}/derivatives/fmriprep (tasks present: faces); fix the task in the model "
        "file (in a file of several tasks, choose one with --task)"
    )
    assert files_in(root / "out") == []
    model.write_text(json.dumps({"faces": data["faces"], "motor": data["faces"]}))
    proc = glmflow(dataset, root / "out", "participant", "--model", model, "-w", root / "work",
                   "--task", "motor")  # fmt: skip
    assert proc.returncode == 2  # asked for: the option is to blame
    assert error_line(proc, late=False) == (
        f"glmflow: error: Task 'motor' not found in {dataset}/derivatives/fmriprep "
        "(available: faces); fix --task"
    )
    assert files_in(root / "out") == []


# --------------------------------------------------------------- participant, not errors
@pytest.fixture(scope="module")
def warned_run(synthetic_1x2, tmp_path_factory):
    """One run with every participant-level case that warns and goes on (items 1, 3, 7)."""
    root = tmp_path_factory.mktemp("warned")
    dataset = Path(shutil.copytree(synthetic_1x2, root / "bids"))
    _edit_image(f"{BOLD}.nii.gz", _two_bad_voxels)(dataset, root)
    _events(_one_event_after_the_scan)(dataset, root)
    finished = subprocess.Popen(["true"])  # its pid names a run that is gone
    finished.wait()
    _write_lock(root / "work", finished.pid)
    args = (
        dataset,
        root / "out",
        "participant",
        "--model",
        write_model(root),
        "-w",
        root / "work",
    )
    return dataset, root, args, glmflow(*args)


def _warnings(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("glmflow: warning:")]


def test_participant_warnings_are_one_line_each(warned_run):
    dataset, root, _, proc = warned_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    prep = dataset / PREP
    expected = [
        # 14.1: isolated bad voxels are left out, with a warning, and recorded
        f"glmflow: warning: BOLD {dataset / BOLD}.nii.gz: 2 of the 2120 voxels of mask "
        f"{dataset / MASK} have no usable signal (1 with NaN/inf values, 1 constant over time);"
        " they are left out of this run's analysis (its maps are 0 there) and not smoothed "
        "into their neighbours",
        # 14.1: an event after the scan's end warns with its line
        f"glmflow: warning: {dataset / EVENTS}: 1 event(s) start at or after the end of the "
        "scan (120 s = volumes x TR) on line(s) 4; they are left out",
        # 14.3: a stale lock of a dead run is recognised
        f"glmflow: warning: Work folder {root / 'work'}: taking over the lock of a glmflow run "
        "that ended without releasing it (pid ",
        # 14.7: one line per distinct problem, with a count
        f"glmflow: warning: 2 runs (e.g. {prep}_desc-confounds_timeseries.tsv): spike "
        "regressor(s) motion_outlier00 (same volume as non_steady_state_outlier01) left out: "
        "one regressor per censored volume",
    ]
    found = _warnings(proc)
    for start in expected:
        assert len([line for line in found if line.startswith(start)]) == 1, (start, found)
    assert len(found) == len(set(found)) == len(expected), found


def test_participant_outputs_are_named_counted_and_recorded(warned_run):
    """14.7: BIDS design names; the count is what is on disk; the cache's place is said."""
    _, root, _, proc = warned_run
    out = root / "out" / "glmflow"
    on_disk = files_in(out)
    names = [p.name for p in on_disk]
    assert "sub-01_task-faces_run-1_design.tsv" in names
    assert "sub-01_task-faces_run-1_design.svg" in names
    assert not [n for n in names if "desc-design" in n or "design_matrix" in n]
    counted = len(on_disk) - 1  # dataset_description.json is not an output of a run
    assert re.fullmatch(
        rf"glmflow: 2 run\(s\) of 1 subject\(s\) done in [\d.]+ s; {counted} file\(s\) in "
        rf"{re.escape(str(out))}; cache in {re.escape(str(root / 'work'))}",
        proc.stdout.strip().splitlines()[-1],
    ), proc.stdout[-1000:]
    run_z = out / "sub-01/func" / f"sub-01_task-faces_run-1_{SPACE}_contrast-face_stat-z_statmap"
    record = json.loads(run_z.with_suffix(".json").read_text())
    assert '"ExcludedVoxels": 2' in json.dumps(record)
    assert not (root / "work" / ".glmflow.lock").exists()  # released at the end


def test_an_output_edited_in_place_is_rewritten_by_the_rerun(warned_run):
    """14.2: outputs share no storage with the cache; a rerun restores the edited map."""
    _, root, args, _ = warned_run
    func = root / "out" / "glmflow" / "sub-01" / "func"
    edited = func / f"sub-01_task-faces_{SPACE}_contrast-face_stat-z_statmap.nii.gz"
    content = edited.read_bytes()
    img = nib.load(edited)
    nib.save(nib.Nifti1Image(np.full(img.shape, 42.0, np.float32), img.affine), edited)
    rerun = glmflow(*args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert edited.read_bytes() == content


# --------------------------------------------------------------------------- group level
@pytest.fixture(scope="module")
def group_inputs(synthetic_3x1, tmp_path_factory) -> tuple[Path, Path]:
    """The 3-subject dataset and its participant-level outputs (made once)."""
    root = tmp_path_factory.mktemp("group_inputs")
    proc = glmflow(synthetic_3x1, root / "out", "participant", "--model",
                   MODEL / "task_information.json", "-w", root / "work")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return synthetic_3x1, root / "out"


def _group(group_inputs, tmp_path, edit=None, *extra: str):
    dataset, out = group_inputs
    out = Path(shutil.copytree(out, tmp_path / "out"))
    before = files_in(out)
    if edit is not None:
        edit(out, tmp_path, dataset)
    proc = glmflow(dataset, out, "group", "--model", MODEL / "task_information.json",
                   "-w", tmp_path / "work", *extra)  # fmt: skip
    return out, before, proc


def test_group_corrupt_subject_map(group_inputs, tmp_path):
    """14.4: found before compute, named, nothing written."""
    name = f"sub-02_task-faces_{SPACE}_contrast-face_stat-effect_statmap.nii.gz"
    path = Path("glmflow/sub-02/func") / name
    truncate = _truncate(str(path), 500)
    out, before, proc = _group(group_inputs, tmp_path, lambda out, *_: truncate(out, None))
    assert proc.returncode == 2
    assert error_line(proc, late=False) == (
        f"glmflow: error: Map {out / path} is truncated or corrupt (its header needs 38752 "
        "bytes of image data); rerun the participant level to write it again"
    )
    assert files_in(out) == before


def _off_grid_mask(out: Path, tmp_path: Path, dataset: Path) -> None:
    """A subject's brain mask less two slices: same voxels, another grid."""
    (mask,) = dataset.glob(f"**/sub-01_*{SPACE}_desc-brain_mask.nii.gz")
    img = nib.load(mask)
    nib.Nifti1Image(np.asanyarray(img.dataobj)[:-2], img.affine).to_filename(
        tmp_path / "group_mask.nii.gz"
    )


def test_group_warnings_are_one_line_each_and_name_the_contrast(group_inputs, tmp_path):
    """14.5: an off-grid group mask says the target grid once; fdr names each contrast."""
    out, before, proc = _group(
        group_inputs, tmp_path, _off_grid_mask, "--group-mask",
        str(tmp_path / "group_mask.nii.gz"), "--inference", "fdr", "--alpha", "1e-12",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = _warnings(proc)
    grid = "shape (18, 24, 20) and affine [[4.0, 0.0, 0.0, -40.0], [0.0, 4.0, 0.0, -64.0], "
    resampled = [line for line in found if "resampled" in line]
    assert len(resampled) == 1 and resampled[0].startswith(
        f"glmflow: warning: Group mask {tmp_path / 'group_mask.nii.gz'} is on another grid than "
        "the subject maps (shape (20, 24, 20), affine "
    ), resampled
    assert f"every map is resampled to the mask's grid, {grid}" in resampled[0]
    empty = sorted(line for line in found if "No voxel survives" in line)
    contrasts = [line.split("'")[1] for line in empty]
    assert len(empty) == len(set(contrasts)) == 12, empty
    assert all(
        re.fullmatch(
            r"glmflow: warning: No voxel survives fdr at alpha=1e-12 in contrast '[^']+': "
            "the thresholded map is empty",
            line,
        )
        for line in empty
    ), empty
    assert len(found) == 1 + 12, found
    assert len(files_in(out)) > len(before)
