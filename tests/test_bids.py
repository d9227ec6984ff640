"""Run discovery on tiny fixture datasets (raw BIDS + fMRIPrep-like derivatives)."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from glmflow.core.bids import RunInputs, dataset_fingerprint, discover_runs
from glmflow.errors import DatasetError, ModelSpecError

SPACE = "MNI152NLin2009cAsym"
SHAPE = (7, 8, 9)


def _nifti(path: Path, shape, *, tr=None, units="sec", dtype=np.float32) -> None:
    img = nib.Nifti1Image(np.zeros(shape, dtype=dtype), np.diag([2.0, 2.0, 2.0, 1.0]))
    if tr is not None:
        img.header.set_zooms((2.0, 2.0, 2.0, tr))
        img.header.set_xyzt_units("mm", units)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, path)


def _json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def make_dataset(
    root: Path,
    *,
    subjects=("01", "02"),
    sessions=(None,),
    tasks=("faces",),
    runs=("1", "2"),
    n_volumes=5,
    tr=2.0,
    start_time=1.0,
) -> Path:
    """Write a raw BIDS dataset with fMRIPrep-like derivatives; return its root.

    Raw BOLD images are header-only placeholders (glmflow never reads them).
    """
    _json(root / "dataset_description.json", {"Name": "t", "BIDSVersion": "1.9.0"})
    prep = root / "derivatives" / "fmriprep"
    _json(
        prep / "dataset_description.json",
        {
            "Name": "fMRIPrep",
            "BIDSVersion": "1.9.0",
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "fMRIPrep", "Version": "23.2.0"}],
        },
    )
    for sub in subjects:
        for ses in sessions:
            for task in tasks:
                for run in runs:
                    rel = Path(f"sub-{sub}") / (f"ses-{ses}" if ses else "") / "func"
                    stem = "_".join(
                        p
                        for p in (
                            f"sub-{sub}",
                            f"ses-{ses}" if ses else "",
                            f"task-{task}",
                            f"run-{run}" if run else "",
                        )
                        if p
                    )
                    _nifti(root / rel / f"{stem}_bold.nii.gz", (2, 2, 2, n_volumes), tr=tr)
                    _json(root / rel / f"{stem}_bold.json", {"RepetitionTime": tr})
                    (root / rel / f"{stem}_events.tsv").write_text(
                        "onset\tduration\ttrial_type\n0\t1\tface\n"
                    )
                    bold = prep / rel / f"{stem}_space-{SPACE}_desc-preproc_bold.nii.gz"
                    _nifti(bold, (*SHAPE, n_volumes), tr=tr)
                    meta = {"RepetitionTime": tr, "SliceTimingCorrected": True}
                    if start_time is not None:
                        meta["StartTime"] = start_time
                    _json(_sidecar(bold), meta)
                    mask = prep / rel / f"{stem}_space-{SPACE}_desc-brain_mask.nii.gz"
                    _nifti(mask, SHAPE, dtype=np.uint8)
                    conf = prep / rel / f"{stem}_desc-confounds_timeseries.tsv"
                    conf.write_text("trans_x\n" + "0\n" * n_volumes)
    return root


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name.replace(".nii.gz", ".json"))


def _prep(root: Path) -> Path:
    return root / "derivatives" / "fmriprep"


def _bold(root, stem="sub-01_task-faces_run-1", sub="01") -> Path:
    return _prep(root) / f"sub-{sub}" / "func" / f"{stem}_space-{SPACE}_desc-preproc_bold.nii.gz"


@pytest.fixture
def ds(tmp_path) -> Path:
    return make_dataset(tmp_path / "ds")


def test_discovers_runs_with_companions_tr_and_slice_timing(ds):
    runs = discover_runs(ds)
    assert [(r.subject, r.run) for r in runs] == [
        ("01", "1"),
        ("01", "2"),
        ("02", "1"),
        ("02", "2"),
    ]
    r = runs[0]
    func, pfunc = ds / "sub-01" / "func", _prep(ds) / "sub-01" / "func"
    assert r == RunInputs(
        subject="01",
        session=None,
        task="faces",
        run="1",
        bold=str(pfunc / f"sub-01_task-faces_run-1_space-{SPACE}_desc-preproc_bold.nii.gz"),
        mask=str(pfunc / f"sub-01_task-faces_run-1_space-{SPACE}_desc-brain_mask.nii.gz"),
        events=str(func / "sub-01_task-faces_run-1_events.tsv"),
        confounds=str(pfunc / "sub-01_task-faces_run-1_desc-confounds_timeseries.tsv"),
        tr=2.0,
        slice_time_ref=0.5,  # StartTime 1.0 / RepetitionTime 2.0
        n_volumes=5,
        entities={"subject": "01", "task": "faces", "run": "1", "space": SPACE},
    )
    assert list(r.entities) == ["subject", "task", "run", "space"]  # BIDS order
    assert RunInputs.from_dict(json.loads(json.dumps(r.to_dict()))) == r


def test_sessions_tasks_and_zero_padded_runs(tmp_path):
    root = make_dataset(
        tmp_path / "ds", subjects=("01",), sessions=("a", "b"), tasks=("faces", "motor"),
        runs=("01", "02"),
    )  # fmt: skip
    runs = discover_runs(root)
    assert [(r.session, r.task, r.run) for r in runs] == [
        (s, t, n) for s in "ab" for t in ("faces", "motor") for n in ("01", "02")
    ]
    assert runs[0].entities == {
        "subject": "01", "session": "a", "task": "faces", "run": "01", "space": SPACE
    }  # fmt: skip
    assert runs[0].events.endswith("sub-01/ses-a/func/sub-01_ses-a_task-faces_run-01_events.tsv")
    assert len(discover_runs(root, runs=[1])) == 4
    assert len(discover_runs(root, runs=["02"], sessions=["b"], tasks=["motor"])) == 1


def test_runs_without_run_entity(tmp_path):
    root = make_dataset(tmp_path / "ds", subjects=("01",), runs=(None,))
    (r,) = discover_runs(root)
    assert (r.run, r.entities) == (None, {"subject": "01", "task": "faces", "space": SPACE})


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"participant_label": ["02"]}, [("02", "1"), ("02", "2")]),
        ({"participant_label": ["sub-01"]}, [("01", "1"), ("01", "2")]),
        ({"runs": [2]}, [("01", "2"), ("02", "2")]),
        ({"runs": ["1"], "participant_label": ["01"]}, [("01", "1")]),
        ({"tasks": ["faces"], "excludes": ["sub-01"]}, [("02", "1"), ("02", "2")]),
        ({"excludes": ["02"]}, [("01", "1"), ("01", "2")]),
        ({"participant_label": "01", "runs": 2, "tasks": "faces"}, [("01", "2")]),
        ({"excludes": "sub-01"}, [("02", "1"), ("02", "2")]),
    ],
)
def test_filters(ds, kwargs, expected):
    assert [(r.subject, r.run) for r in discover_runs(ds, **kwargs)] == expected


def test_excludes_are_logged_and_unknown_ones_warn(ds, caplog):
    with caplog.at_level(logging.INFO, logger="glmflow.core.bids"):
        with pytest.warns(UserWarning, match=r"excludes lists sub-09, which has no selected"):
            runs = discover_runs(ds, excludes=["01", "sub-09"])
    assert {r.subject for r in runs} == {"02"}
    assert "Excluding sub-01 (listed in the model's excludes)" in caplog.messages


def test_missing_start_time_gives_zero_with_nilearn_like_warning(tmp_path):
    root = make_dataset(tmp_path / "ds", subjects=("01",), start_time=None)
    with pytest.warns(UserWarning, match=r"StartTime missing from the sidecar of 2 BOLD run"):
        runs = discover_runs(root)
    assert [r.slice_time_ref for r in runs] == [0.0, 0.0]


def test_slice_time_ref_override(ds):
    with pytest.warns(UserWarning, match=r"slice_time_ref 0.25 overrides .* = 0.5 from"):
        runs = discover_runs(ds, slice_time_ref=0.25, participant_label=["01"])
    assert [r.slice_time_ref for r in runs] == [0.25, 0.25]


@pytest.mark.parametrize("bad", [-0.1, 1.5, "0.5", True])
def test_slice_time_ref_out_of_range(ds, bad):
    msg = f"'slice_time_ref' must be a number between 0 and 1 (a fraction of the TR). Got {bad!r}"
    with pytest.raises(ModelSpecError, match=re.escape(msg)):
        discover_runs(ds, slice_time_ref=bad)


def test_tr_falls_back_to_raw_sidecar_then_header(ds):
    bold = _bold(ds)
    _json(_sidecar(bold), {"StartTime": 0.5})  # no RepetitionTime in the derivative sidecar
    assert discover_runs(ds, participant_label=["01"], runs=[1])[0].tr == 2.0
    (ds / "sub-01" / "func" / "sub-01_task-faces_run-1_bold.json").write_text("{}")
    (r,) = discover_runs(ds, participant_label=["01"], runs=[1])
    assert (r.tr, r.slice_time_ref) == (2.0, 0.25)  # from the header


def test_model_tr_checked_against_the_data(ds):
    msg = (
        f'"tr" is 2.5 s in models/m.json but {_bold(ds)} has 2 s (sidecar RepetitionTime); set '
        '"tr" to 2 in models/m.json or remove it'
    )
    with pytest.raises(ModelSpecError, match="^" + re.escape(msg)):
        discover_runs(ds, spec_tr=2.5, model_file="models/m.json")
    assert discover_runs(ds, spec_tr=2.0, participant_label=["01"])[0].tr == 2.0


def test_header_tr_in_milliseconds(ds):
    _nifti(_bold(ds), (*SHAPE, 5), tr=2000.0, units="msec")
    assert discover_runs(ds, participant_label=["01"], runs=[1])[0].tr == 2.0


def test_companions_inherited_from_higher_levels(ds):
    """Events at the dataset root and a subject-level mask apply to every matching run."""
    func, pfunc = ds / "sub-01" / "func", _prep(ds) / "sub-01" / "func"
    (func / "sub-01_task-faces_run-2_events.tsv").unlink()
    (ds / "task-faces_events.tsv").write_text("onset\tduration\ttrial_type\n0\t1\tface\n")
    (pfunc / f"sub-01_task-faces_run-2_space-{SPACE}_desc-brain_mask.nii.gz").unlink()
    _nifti(pfunc / f"sub-01_space-{SPACE}_desc-brain_mask.nii.gz", SHAPE, dtype=np.uint8)
    run1, run2 = discover_runs(ds, participant_label=["01"])
    assert run1.events == str(func / "sub-01_task-faces_run-1_events.tsv")  # most specific
    assert run2.events == str(ds / "task-faces_events.tsv")
    assert run1.mask.endswith(f"sub-01_task-faces_run-1_space-{SPACE}_desc-brain_mask.nii.gz")
    assert run2.mask == str(pfunc / f"sub-01_space-{SPACE}_desc-brain_mask.nii.gz")


def _rm(path):
    return lambda root: (root / path).unlink()


def _write_json(path, data):
    return lambda root: _json(root / path, data)


P = f"derivatives/fmriprep/sub-01/func/sub-01_task-faces_run-1_space-{SPACE}"
RAW = "sub-01/func/sub-01_task-faces_run-1"


def _no_tr(root):
    _json(root / f"{P}_desc-preproc_bold.json", {})
    _json(root / f"{RAW}_bold.json", {})
    _nifti(root / f"{P}_desc-preproc_bold.nii.gz", (*SHAPE, 5), tr=0.0)


def _ambiguous_mask(root):
    _nifti(root / f"{P}_desc-brain_mask.nii", SHAPE, dtype=np.uint8)


def _bad_sidecar(root):
    (root / f"{P}_desc-preproc_bold.json").write_text("{bad json")


def _no_description(root):
    (root / "derivatives/fmriprep/dataset_description.json").unlink()


@pytest.mark.parametrize(
    ("change", "kwargs", "message"),
    [
        (
            _rm(f"{RAW}_events.tsv"),
            {},
            "No events file for {root}/{P}_desc-preproc_bold.nii.gz: expected "
            "sub-01_task-faces_run-1_events.tsv in {root}/sub-01/func; add it or leave this run"
            " out (--task / --run / excludes)",
        ),
        (
            _rm(f"{P}_desc-brain_mask.nii.gz"),
            {},
            "No brain mask for {root}/{P}_desc-preproc_bold.nii.gz: expected "
            f"sub-01_task-faces_run-1_space-{SPACE}_desc-brain_mask.nii.gz in "
            "{root}/derivatives/fmriprep/sub-01/func; rerun fMRIPrep or add the mask",
        ),
        (
            _rm(
                "derivatives/fmriprep/sub-01/func/sub-01_task-faces_run-1_desc-confounds_timeseries.tsv"
            ),
            {},
            "No confounds file for {root}/{P}_desc-preproc_bold.nii.gz: expected "
            "sub-01_task-faces_run-1_desc-confounds_timeseries.tsv in "
            "{root}/derivatives/fmriprep/sub-01/func; rerun fMRIPrep or add the confounds file",
        ),
        (
            _no_tr,
            {},
            "{root}/{P}_desc-preproc_bold.nii.gz has no repetition time (no sidecar "
            'RepetitionTime, header pixdim[4] is 0); add RepetitionTime to its sidecar or set "tr"'
            " in the model",
        ),
        (
            _write_json(f"{P}_desc-preproc_bold.json", {"RepetitionTime": 2.5}),
            {},
            "{root}/{P}_desc-preproc_bold.nii.gz: the sidecar says RepetitionTime 2.5 s but the "
            "NIfTI header (pixdim[4]) says 2 s; BIDS takes the sidecar as authoritative: fix the "
            "header (or the sidecar, whichever is wrong)",
        ),
        (
            _write_json(f"{P}_desc-preproc_bold.json", {"RepetitionTime": "two"}),
            {},
            "the sidecar's RepetitionTime of {root}/{P}_desc-preproc_bold.nii.gz must be a "
            'positive number of seconds; got "two"',
        ),
        (
            _write_json(f"{P}_desc-preproc_bold.json", {"RepetitionTime": 2.0, "StartTime": 2}),
            {},
            "StartTime 2 in {root}/{P}_desc-preproc_bold.json is not a number within [0, "
            "RepetitionTime=2); fix the sidecar or set slice_time_ref in the model",
        ),
        (
            _write_json(f"{P}_desc-preproc_bold.json", {"RepetitionTime": 2.0, "StartTime": "x"}),
            {},
            "StartTime 'x' in {root}/{P}_desc-preproc_bold.json is not a number within [0, "
            "RepetitionTime=2); fix the sidecar or set slice_time_ref in the model",
        ),
        (
            lambda root: _nifti(root / f"{P}_desc-preproc_bold.nii.gz", SHAPE, tr=None),
            {},
            "BOLD {root}/{P}_desc-preproc_bold.nii.gz has shape (7, 8, 9), expected 4D "
            "(x, y, z, time); point glmflow at the preprocessed 4D series",
        ),
        (
            _ambiguous_mask,
            {},
            "Several files match {root}/{P}_desc-preproc_bold.nii.gz equally: "
            "{root}/{P}_desc-brain_mask.nii and {root}/{P}_desc-brain_mask.nii.gz; remove or "
            "rename one of them",
        ),
        (
            None,
            {"space": "T1w"},
            "No BOLD with space 'T1w' and desc 'preproc' in {root}/derivatives/fmriprep (spaces "
            f"available: {SPACE}; desc available: preproc); pass one of them with --space / "
            "--desc",
        ),
        (
            None,
            {"desc": "smooth", "tasks": ["faces"]},
            "No BOLD with space 'MNI152NLin2009cAsym' and desc 'smooth' for task faces in "
            "{root}/derivatives/fmriprep (spaces available: MNI152NLin2009cAsym; desc "
            "available: preproc); pass one of them with --space / --desc",
        ),
        (
            None,
            {"tasks": ["house"]},
            "Task 'house' not found in {root}/derivatives/fmriprep (available: faces); fix --task",
        ),
        (
            None,
            {"tasks": ["house"], "task_given": False, "model_file": "models/m.json"},
            "Task 'house' of model models/m.json has no BOLD in {root}/derivatives/fmriprep "
            "(tasks present: faces); fix the task in the model file (in a file of several "
            "tasks, choose one with --task)",
        ),
        (
            _bad_sidecar,
            {},
            "Sidecar {root}/{P}_desc-preproc_bold.json is not valid JSON (Expecting property "
            "name enclosed in double quotes: line 1 column 2 (char 1)); fix the file (pybids "
            "cannot index the dataset)",
        ),
        (
            None,
            {"participant_label": ["sub-05"]},
            "Participant label '05' not found in {root}/derivatives/fmriprep (available: 01, "
            "02); fix --participant-label",
        ),
        (
            None,
            {"sessions": ["1"]},
            "Session '1' not found in {root}/derivatives/fmriprep (available: none); fix "
            "--session",
        ),
        (
            None,
            {"runs": [3]},
            "Run '3' not found in {root}/derivatives/fmriprep (available: 1, 2); fix --run",
        ),
        (
            None,
            {"excludes": ["01", "02"]},
            "All subjects with selected BOLD in {root}/derivatives/fmriprep are excluded (01, "
            "02); check the model's excludes",
        ),
        (
            None,
            {"derivatives": "nowhere"},
            "fMRIPrep derivatives folder {cwd}/nowhere does not exist; pass --derivatives",
        ),
        (
            _no_description,
            {},
            "{root}/derivatives/fmriprep has no dataset_description.json, so it is not a BIDS "
            "derivatives dataset; pass the fMRIPrep output folder itself with --derivatives",
        ),
    ],
    ids=[
        "no-events",
        "no-mask",
        "no-confounds",
        "no-tr",
        "tr-mismatch",
        "tr-not-number",
        "start-time-too-late",
        "start-time-text",
        "bold-3d",
        "ambiguous-mask",
        "unknown-space",
        "unknown-desc",
        "unknown-task",
        "model-task-absent",
        "invalid-sidecar-json",
        "unknown-participant",
        "unknown-session",
        "unknown-run",
        "all-excluded",
        "no-derivatives",
        "derivatives-no-description",
    ],
)
def test_dataset_errors(ds, change, kwargs, message):
    if change is not None:
        change(ds)
    expected = message.format(root=ds, P=P, cwd=Path.cwd())
    with pytest.raises(DatasetError, match="^" + re.escape(expected) + "$"):
        discover_runs(ds, **kwargs)


def test_missing_dataset_folder(tmp_path):
    with pytest.raises(DatasetError, match=re.escape(f"{tmp_path}/x does not exist; check")):
        discover_runs(tmp_path / "x")


def test_database_reused_until_the_dataset_changes(ds, tmp_path, caplog):
    from glmflow.core.bids.layout import load_layout

    db = tmp_path / "work" / "bids_db"
    with caplog.at_level(logging.INFO, logger="glmflow.core.bids"):
        first = discover_runs(ds, database_dir=db)
        (layout_dir,) = db.iterdir()
        sqlite = layout_dir / "layout_index.sqlite"
        before = sqlite.stat()
        caplog.clear()
        assert discover_runs(ds, database_dir=db) == first  # the runs found, recalled
        assert caplog.messages == [
            f"Reusing the runs found in the BIDS index in {layout_dir} (dataset unchanged)"
        ]
        caplog.clear()
        load_layout(ds, _prep(ds), db)
        assert caplog.messages == [f"Reusing the BIDS index in {layout_dir} (dataset unchanged)"]
        after = sqlite.stat()
        assert (after.st_ino, after.st_mtime_ns, after.st_size) == (
            before.st_ino, before.st_mtime_ns, before.st_size
        )  # fmt: skip

        # A new run appears: the stored index is stale and must be rebuilt.
        make_dataset(ds, subjects=("03",), runs=("1",))
        caplog.clear()
        third = discover_runs(ds, database_dir=db)
        assert caplog.messages[0].startswith(f"Indexing {ds} and {_prep(ds)} into {layout_dir}")
    assert len(third) == len(first) + 1 and third[-1].subject == "03"


def test_recalled_runs_say_what_the_search_said(tmp_path, caplog):
    """A second search of the same index with the same selection recalls the runs found,
    with the warnings (said from the caller, as the search says them) and log lines of the
    search; another selection searches again."""
    root = make_dataset(tmp_path / "ds", subjects=("01", "02"), start_time=None)
    db = tmp_path / "db"
    said = []
    for _ in range(2):
        caplog.clear()
        with (
            caplog.at_level(logging.INFO, logger="glmflow.core.bids"),
            pytest.warns(UserWarning) as caught,
        ):
            runs = discover_runs(root, database_dir=db, excludes=["01", "09"])
        logged = [m for m in caplog.messages if not m.startswith("Indexing")]
        said.append(([(str(w.message), w.filename) for w in caught], logged))
        assert [(r.subject, r.run) for r in runs] == [("02", "1"), ("02", "2")]
    (index,) = db.iterdir()
    assert said[1][1] == [
        f"Reusing the runs found in the BIDS index in {index} (dataset unchanged)",
        "Excluding sub-01 (listed in the model's excludes)",
    ]
    assert said[0] == (said[1][0], said[1][1][1:])
    assert said[0][0] == [
        (f"excludes lists sub-09, which has no selected BOLD in {_prep(root)}", __file__),
        ("'slice_time_ref' not provided and StartTime missing from the sidecar of 2 BOLD "
         f"run(s) (e.g. {runs[0].bold}); assuming 0.0 (the start of each TR) as nilearn does. "
         "Set slice_time_ref in the model if the data were slice-time corrected to another "
         "reference.", __file__),
    ]  # fmt: skip
    assert len(list(index.glob("runs-*.json"))) == 1
    with pytest.warns(UserWarning, match="StartTime missing"):
        assert [r.subject for r in discover_runs(root, database_dir=db)] == ["01"] * 2 + ["02"] * 2
    assert len(list(index.glob("runs-*.json"))) == 2


def test_recalled_runs_say_the_lines_of_a_search_made_without_info_logging(ds, tmp_path, caplog):
    """From Python with logging left as it is (WARNING), the search says no INFO line; a
    later recall at INFO (the command line) still says the subjects it excluded."""
    db = tmp_path / "db"
    with caplog.at_level(logging.WARNING, logger="glmflow.core.bids"):
        discover_runs(ds, database_dir=db, excludes=["01"])
    assert caplog.messages == []
    with caplog.at_level(logging.INFO, logger="glmflow.core.bids"):
        assert {r.subject for r in discover_runs(ds, database_dir=db, excludes=["01"])} == {"02"}
    assert caplog.messages[-1] == "Excluding sub-01 (listed in the model's excludes)"
    assert caplog.messages[0].startswith("Reusing the runs found in the BIDS index in ")


def test_runs_found_while_the_dataset_changed_are_not_kept(ds, tmp_path):
    """A file edited while the search runs (or an index rebuilt meanwhile) keeps nothing:
    the next search looks again and sees the edit."""
    from glmflow.core.bids.remembered import remembered_runs

    db = tmp_path / "db"
    discover_runs(ds, database_dir=db)  # the stored index
    (index,) = db.iterdir()
    before = sorted(index.glob("runs-*.json"))

    def find():
        found = discover_runs(ds)  # in memory: the answer before the edit
        make_dataset(ds, subjects=("03",), runs=("1",))
        return found

    prep = _prep(ds)
    found = remembered_runs(find, RunInputs.from_dict, ds, prep, db, {"a": 1})
    assert len(found) == 4
    assert sorted(index.glob("runs-*.json")) == before
    assert len(discover_runs(ds, database_dir=db)) == 5


def test_runs_kept_only_in_an_index_folder_still_there(tmp_path):
    """A record is written into the index's folder, never a folder made for it (which would
    take the place of an index another run is moving in)."""
    from glmflow.core.bids.remembered import _keep

    gone = tmp_path / "layout-0123" / "runs-x.json"
    _keep(gone, {"runs": []})
    assert not gone.parent.exists()
    (tmp_path / "layout-0123").mkdir()
    _keep(gone, {"runs": []})
    assert json.loads(gone.read_text()) == {"runs": []}
    assert [p.name for p in gone.parent.iterdir()] == ["runs-x.json"]


def test_recalled_runs_need_no_pybids(ds, tmp_path):
    """Recalled runs are read without importing pybids (its import and the index's load
    are most of what a search costs); the index folder's name is pybids' version's."""
    import subprocess
    import sys
    from importlib import metadata

    import bids

    assert metadata.version("pybids") == bids.__version__  # the key of layout-<key>
    db = tmp_path / "db"
    code = (
        "import sys; from glmflow.core.bids import discover_runs; "
        f"runs = discover_runs({str(ds)!r}, database_dir={str(db)!r}); "
        "print(len(runs), 'bids' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    outs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=env, check=True).stdout.split() for _ in range(2)]  # fmt: skip
    assert outs == [["4", "True"], ["4", "False"]]


def test_database_folder_shared_by_two_datasets(tmp_path):
    db = tmp_path / "db"
    a = make_dataset(tmp_path / "a", subjects=("01",))
    b = make_dataset(tmp_path / "b", subjects=("07",))
    assert {r.subject for r in discover_runs(a, database_dir=db)} == {"01"}
    assert {r.subject for r in discover_runs(b, database_dir=db)} == {"07"}
    assert {r.subject for r in discover_runs(a, database_dir=db)} == {"01"}
    assert len(list(db.iterdir())) == 2


def test_fingerprint_sees_edits_but_not_ignored_folders(ds):
    ref = dataset_fingerprint(ds, _prep(ds))
    (ds / "sourcedata").mkdir()
    (ds / "sourcedata" / "x.dcm").write_text("x")
    (ds / "derivatives" / "glmflow").mkdir()
    (ds / "derivatives" / "glmflow" / "out.txt").write_text("x")
    assert dataset_fingerprint(ds, _prep(ds)) == ref
    events = ds / "sub-01" / "func" / "sub-01_task-faces_run-1_events.tsv"
    os.utime(events, ns=(0, 123))
    assert dataset_fingerprint(ds, _prep(ds)) != ref


def test_copy_of_dataset_is_independent(ds, tmp_path):
    """Paths are absolute and resolved; a copy of the dataset reports its own files."""
    copy = Path(shutil.copytree(ds, tmp_path / "copy"))
    assert discover_runs(copy)[0].bold.startswith(str(copy.resolve()))


def test_synthetic_dataset(tmp_path):
    synthetic = pytest.importorskip("glmflow.data.synthetic")
    root = synthetic.make_synthetic_dataset(
        tmp_path / "syn", n_subjects=2, n_runs=2, n_sessions=2, n_volumes=30
    )
    runs = discover_runs(root, database_dir=tmp_path / "db")
    assert [(r.subject, r.session, r.run) for r in runs] == [
        (s, ses, run) for s in ("01", "02") for ses in ("01", "02") for run in ("1", "2")
    ]
    assert {(r.tr, r.slice_time_ref, r.n_volumes) for r in runs} == {(2.0, 0.5, 30)}
    assert all(Path(p).is_file() for r in runs for p in (r.bold, r.mask, r.events, r.confounds))


def test_unreadable_bold_header_is_one_line(ds):
    bold = ds / f"{P}_desc-preproc_bold.nii.gz"
    bold.write_bytes(b"not a nifti file at all")
    with pytest.raises(DatasetError, match=rf"^BOLD {re.escape(str(bold))} is not a NIfTI image "):
        discover_runs(ds)


def _discover(args):
    root, db = args
    return [r.to_dict() for r in discover_runs(root, database_dir=db)]


def test_two_runs_indexing_at_once_never_read_a_half_built_index(ds, tmp_path):
    """The stored index appears whole (built aside, then renamed) or not at all."""
    from concurrent.futures import ProcessPoolExecutor

    db = tmp_path / "db"
    discover_runs(ds, database_dir=db)
    make_dataset(ds, subjects=("03",), runs=("1",))  # the stored index is stale now
    expected = [r.to_dict() for r in discover_runs(ds)]
    with ProcessPoolExecutor(2) as pool:
        results = list(pool.map(_discover, [(ds, db)] * 4))
    assert all(r == expected for r in results)
    (index,) = db.iterdir()  # one complete index, nothing half-built left beside it
    # pybids keeps the derivatives' index in a folder named after them; beside it the runs
    # found in it (the four searches' one record, each written whole)
    names = sorted(p.name for p in index.iterdir())
    assert [n for n in names if not n.startswith("runs-")] == [
        "fmriprep",
        "glmflow_fingerprint.txt",
        "layout_index.sqlite",
    ]
    assert len([n for n in names if re.fullmatch(r"runs-[0-9a-f]{32}\.json", n)]) == 1
    assert (index / "glmflow_fingerprint.txt").read_text() == dataset_fingerprint(ds, _prep(ds))
