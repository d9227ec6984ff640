"""The command line: user mistakes end as one line, exit code 2, nothing written."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from glmflow.cli.main import main
from glmflow.data import make_synthetic_dataset

MODEL = Path(__file__).resolve().parents[1] / "glmflow" / "data" / "models"
FUNC = "sub-01/func/sub-01_task-faces_run-1"
PREP = f"derivatives/fmriprep/{FUNC}"
BOLD = f"{PREP}_space-MNI152NLin2009cAsym_desc-preproc_bold"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return make_synthetic_dataset(
        tmp_path_factory.mktemp("cli") / "bids", n_subjects=1, n_runs=1, n_volumes=60
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


def _delete(path: Path) -> None:
    path.unlink()


def _set_tr(path: Path) -> None:
    sidecar = json.loads(path.read_text())
    sidecar["RepetitionTime"] = 3.0
    path.write_text(json.dumps(sidecar))


def _empty_mask(path: Path) -> None:
    img = nib.load(path)
    nib.Nifti1Image(np.zeros(img.shape, "uint8"), img.affine, img.header).to_filename(path)


def _collinear_confound(path: Path) -> None:
    table = pd.read_csv(path, sep="\t")
    table["trans_x_copy"] = 2 * table["trans_x"]
    table.to_csv(path, sep="\t", index=False, na_rep="n/a")


# (case, dataset edit, model changes, message regex)
BAD_INPUTS = [
    (
        "missing events",
        (f"{FUNC}_events.tsv", _delete),
        {},
        r"^glmflow: error: No events file for \S+run-1_space-MNI152NLin2009cAsym_desc-preproc_bold"
        r"\.nii\.gz: expected sub-01_task-faces_run-1_events\.tsv in \S+/sub-01/func; add it",
    ),
    (
        "missing confounds",
        (f"{PREP}_desc-confounds_timeseries.tsv", _delete),
        {},
        r"^glmflow: error: No confounds file for \S+_bold\.nii\.gz: expected "
        r"sub-01_task-faces_run-1_desc-confounds_timeseries\.tsv in \S+; rerun fMRIPrep",
    ),
    (
        "missing mask",
        (f"{PREP}_space-MNI152NLin2009cAsym_desc-brain_mask.nii.gz", _delete),
        {},
        r"^glmflow: error: No brain mask for \S+_bold\.nii\.gz: expected "
        r"sub-01_task-faces_run-1_space-MNI152NLin2009cAsym_desc-brain_mask\.nii\.gz",
    ),
    (
        "TR sidecar vs header",
        (f"{BOLD}.json", _set_tr),
        {},
        r"^glmflow: error: \S+_bold\.nii\.gz: the sidecar says RepetitionTime 3 s but the NIfTI "
        r"header \(pixdim\[4\]\) says 2 s",
    ),
    (
        "empty mask",
        (f"{PREP}_space-MNI152NLin2009cAsym_desc-brain_mask.nii.gz", _empty_mask),
        {},
        r"^glmflow: error: Mask \S+desc-brain_mask\.nii\.gz is empty \(no non-zero voxel\)",
    ),
    (
        "rank-deficient design",
        (f"{PREP}_desc-confounds_timeseries.tsv", _collinear_confound),
        {"confound_regressors": ["trans_x", "trans_x_copy"]},
        r"^glmflow: error: Design matrix in \S+_events\.tsv is rank deficient \(rank 24 for 25 "
        r"columns\): columns trans_x, trans_x_copy are linearly dependent; drop one",
    ),
    (
        "contrast naming an absent column",
        None,
        {"design_contrasts": {"faces-houses": "face - houses"}},
        r"^glmflow: error: Contrast 'faces-houses' uses 'houses' which is not a column of the "
        r"design of \S+_bold\.nii\.gz \(columns: face, .*\); fix the contrast or run with "
        r"--missing-conditions drop$",
    ),
    (
        "model key typo",
        None,
        {"confound_regresors": []},
        r"^glmflow: error: Unknown key 'confound_regresors' in the task's entry; did you mean "
        r"'confound_regressors'\?",
    ),
    (
        "model tr disagrees with the data",
        None,
        {"tr": 1.0},
        r'^glmflow: error: "tr" is 1 s in \S+model\.json but \S+_bold\.nii\.gz has 2 s \(sidecar '
        r'RepetitionTime\); set "tr" to 2 in \S+model\.json or remove it',
    ),
]


@pytest.mark.parametrize(
    ("edit", "changes", "message"),
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
def test_bad_input_is_one_line_and_writes_nothing(
    dataset, tmp_path, capsys, edit, changes, message
):
    if edit is not None:
        relative, action = edit
        action(dataset / relative)
    before = {p: p.stat().st_mtime_ns for p in dataset.rglob("*") if p.is_file()}
    out = tmp_path / "out"
    code = main(
        [str(dataset), str(out), "participant", "--model", str(_model(tmp_path, **changes)),
         "-w", str(tmp_path / "work"), "--plugin", "Linear"]
    )  # fmt: skip
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("glmflow: error:")]
    assert code == 2
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert re.search(message, lines[0]), lines[0]
    assert not out.exists()  # nothing half-written: not even the folder
    after = {p: p.stat().st_mtime_ns for p in dataset.rglob("*") if p.is_file()}
    assert after == before  # the input dataset is never written to


def test_missing_conditions_drop_records_the_dropped_terms(dataset, tmp_path):
    model = _model(tmp_path, design_contrasts={"faces-houses": "face - houses"})
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="houses"):
        code = main(
            [str(dataset), str(out), "participant", "--model", str(model),
             "-w", str(tmp_path / "work"), "--missing-conditions", "drop"]
        )  # fmt: skip
    assert code == 0
    sidecar = out / (
        "glmflow/sub-01/func/sub-01_task-faces_run-1_space-MNI152NLin2009cAsym_"
        "contrast-facesMinusHouses_stat-z_statmap.json"
    )
    contrast = json.loads(sidecar.read_text())["Contrast"]
    assert contrast["DroppedConditions"] == ["houses"]
    assert contrast["Weights"] == [{"face": 1.0}]
    assert not [key for key in contrast if not key[0].isupper()]  # one spelling: CamelCase


def test_debug_shows_the_traceback(dataset, tmp_path):
    model = _model(tmp_path, confound_regresors=[])
    with pytest.raises(Exception, match="confound_regresors"):
        main([str(dataset), str(tmp_path / "out"), "participant", "--model", str(model),
              "--debug"])  # fmt: skip


def test_console_script_runs_the_participant_level(dataset, tmp_path):
    """The installed ``glmflow`` command, as a user types it."""
    env = {**os.environ, "NIPYPE_NO_ET": "1"}
    cmd = [
        sys.executable, "-m", "glmflow.cli.main", str(dataset), str(tmp_path / "out"),
        "participant", "--model", str(MODEL / "task_information.json"),
        "-w", str(tmp_path / "work"), "--n-cpus", "2",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "1 run(s) of 1 subject(s) done" in proc.stdout
    z = (
        tmp_path
        / "out"
        / (
            "glmflow/sub-01/func/sub-01_task-faces_space-MNI152NLin2009cAsym_contrast-face_"
            "stat-z_statmap.nii.gz"
        )
    )
    assert z.is_file()
    bad = subprocess.run(
        [*cmd[:7], str(tmp_path / "nope.json")], capture_output=True, text=True, env=env
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith("glmflow: error:") and len(bad.stderr.splitlines()) == 1


def test_make_dataset_command(tmp_path, capsys):
    assert main(["make-dataset", str(tmp_path / "ds"), "--n-subjects", "1", "--n-runs", "1"]) == 0
    assert (tmp_path / "ds" / "participants.tsv").is_file()
    assert main(["make-dataset", str(tmp_path / "ds")]) == 2
    assert "not empty" in capsys.readouterr().err


# ---------------------------------------------------------------------- execution options
# (command-line arguments, exact message): refused before anything is read or written
BAD_EXECUTION = [
    (["--n-cpus", "0"], "n_procs (--n-cpus) must be an integer >= 1. Got 0 instead."),
    (["--n-cpus", "-3"], "n_procs (--n-cpus) must be an integer >= 1. Got -3 instead."),
    (
        ["--mem-gb", "0.001"],
        "mem_gb (--mem-gb) must be at least 0.2 GB, the memory Nipype reserves for one node. "
        "Got 0.001 instead.",
    ),
    (
        ["--mem-gb", "-4"],
        "mem_gb (--mem-gb) must be at least 0.2 GB, the memory Nipype reserves for one node. "
        "Got -4.0 instead.",
    ),
    (
        ["--poll-interval", "0"],
        "poll_interval (--poll-interval) must be positive seconds. Got 0.0 instead.",
    ),
    (
        ["--plugin", "SLURM", "--mem-gb", "8"],
        "mem_gb=8.0 sets MultiProc's memory budget and means nothing to plugin 'SLURM' (batch "
        "jobs request each node's own mem_gb); leave it out",
    ),
]


@pytest.mark.parametrize(("level", "args", "message"), [
    (level, *case) for level in ("participant", "group") for case in BAD_EXECUTION
])  # fmt: skip
def test_bad_execution_option_is_one_line(dataset, tmp_path, capsys, level, args, message):
    out, work = tmp_path / "out", tmp_path / "work"
    code = main(
        [str(dataset), str(out), level, "--model", str(MODEL / "task_information.json"),
         "-w", str(work), *args]
    )  # fmt: skip
    assert code == 2
    assert capsys.readouterr().err.splitlines() == [f"glmflow: error: {message}"]
    assert not out.exists() and not work.exists()


@pytest.mark.parametrize("level", ["participant", "group"])
def test_work_folder_inside_the_output_dataset_is_refused(dataset, tmp_path, capsys, level):
    out = tmp_path / "out"
    work = out / "glmflow" / "work"
    code = main(
        [str(dataset), str(out), level, "--model", str(MODEL / "task_information.json"),
         "-w", str(work)]
    )  # fmt: skip
    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"glmflow: error: Work directory {work} is inside the output dataset {out / 'glmflow'}; "
        f"pass -w (work_dir=) outside it, e.g. {tmp_path / 'work'}"
    ]
    assert not out.exists()


# ------------------------------------------------------------------------- relative paths
def _glmflow(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NIPYPE_NO_ET": "1"}
    cmd = [sys.executable, "-m", "glmflow.cli.main", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def test_both_levels_with_relative_paths_from_another_folder(tmp_path):
    """``cd elsewhere && glmflow ../ds out participant ... && glmflow ../ds out group ...``."""
    make_synthetic_dataset(tmp_path / "ds", n_subjects=3, n_runs=1, n_volumes=60)
    shutil.copy(MODEL / "task_information.json", tmp_path / "model.json")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    common = ["--model", "../model.json", "-w", "work", "--n-cpus", "2"]
    participant = _glmflow("../ds", "out", "participant", *common, cwd=elsewhere)
    assert participant.returncode == 0, participant.stderr[-2000:]
    out, work = elsewhere / "out" / "glmflow", elsewhere / "work"
    assert participant.stdout.rstrip().endswith(f"file(s) in {out}; cache in {work}")
    group = _glmflow("../ds", "out", "group", *common, cwd=elsewhere)
    assert group.returncode == 0, group.stderr[-2000:]
    assert "Traceback" not in group.stderr
    summary = (
        r"^glmflow: 6 group model\(s\) of 3 subject\(s\) done in [\d.]+ s; \d+ file\(s\) "
        rf"in {re.escape(str(out))}; cache in {re.escape(str(work))}$"
    )
    assert re.search(summary, group.stdout.strip()), group.stdout
    z = out / "task-faces_space-MNI152NLin2009cAsym_contrast-face_stat-z_statmap.nii.gz"
    assert np.isfinite(nib.load(z).get_fdata()).any()


def test_the_command_skips_the_exit_s_last_garbage_collection(tmp_path):
    """``console_main`` (the installed script, ``python -m``): the command, then
    ``gc.freeze`` so the exit does not traverse every object once more (0.5-0.6 s)."""
    import tomllib

    code = (
        "import gc, sys; from glmflow.cli.main import console_main; "
        "sys.argv = ['glmflow', 'make-dataset', sys.argv[1], '--n-subjects', '1', "
        "'--n-runs', '1', '--n-volumes', '30']; "
        "code = console_main(); print(code, gc.get_freeze_count() > 0)"
    )
    env = {**os.environ, "NIPYPE_NO_ET": "1"}
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "ds")],
                          capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-2:] == ["0", "True"]
    assert (tmp_path / "ds" / "dataset_description.json").is_file()
    pyproject = tomllib.loads((MODEL.parents[2] / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["glmflow"] == "glmflow.cli.main:console_main"
