"""A BIDS Stats Model rerun that nothing touched returns at once (glmflow.execution.unchanged).

One subject x one run of 60 volumes, the packaged faces model's run and subject nodes. The
no-change rerun (through the CLI, in a fresh process) imports neither pybids nor nilearn nor
Nipype and writes no node result; each change that matters (the model file's bytes, an input
file rewritten, an option, an output or its sidecar deleted or edited) plans and builds the
graph again and leaves the maps a clean run gives. Local runs poll Nipype's scheduler every
``LOCAL_POLL_SECONDS``, not its default 2 s (the BSM graph and its report pages' graph).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from importlib.resources import files
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nipype.pipeline import engine as pe

import glmflow.workflows.bsm as bsm_workflows
from glmflow.data import make_synthetic_dataset
from glmflow.execution import LOCAL_POLL_SECONDS, unchanged
from glmflow.runners.bsm import run_bids_stats_model

pytestmark = pytest.mark.slow
FACES = json.loads((files("glmflow.data") / "models" / "faces_smdl.json").read_text())
FACES["Nodes"] = FACES["Nodes"][:2]  # run -> subject (meta)
# one BSM graph built, it and the report pages' graph run at the local poll, not Nipype's 2 s
BUILT = ["built", f"bsm_wf {LOCAL_POLL_SECONDS}", f"reports_wf {LOCAL_POLL_SECONDS}"]
RUN = "node-run/sub-01/sub-01_task-faces_run-1_contrast-faceGtHouse_stat-{}_statmap.nii.gz"
SUBJECT = "node-subject/sub-01/sub-01_contrast-faceGtHouse_stat-{}_statmap.nii.gz"

# the CLI in a fresh process: its last line, and which heavy packages it imported
RERUN = """
import sys
from glmflow.cli.main import main
code = main(sys.argv[1:])
print([m for m in ("nipype", "nilearn", "bids", "pandas") if m in sys.modules])
sys.exit(code)
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("bsm_unchanged")
    bids = make_synthetic_dataset(root / "ds", n_subjects=1, n_runs=1, n_volumes=60)
    model = root / "model_smdl.json"
    model.write_text(json.dumps(FACES))
    kwargs = dict(
        bids_dir=bids,
        output_dir=root / "out",
        model=model,
        work_dir=root / "work",
        space="MNI152NLin2009cAsym",
    )  # the CLI's default space: one key for both
    first = run_bids_stats_model(**kwargs)
    out = root / "out" / "glmflow"
    maps = {name: _map(out / name) for name in _names()}
    return {"root": root, "bids": bids, "out": out, "kwargs": kwargs, "first": first,
            "maps": maps}  # fmt: skip


def _names() -> list[str]:
    stats = ("effect", "variance", "t", "z", "p")
    return [template.format(stat) for template in (RUN, SUBJECT) for stat in stats]


def _map(path: Path) -> np.ndarray:
    return np.asanyarray(nib.load(path).dataobj)


def _results(work: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in work.rglob("result_*.pklz")}


@pytest.fixture
def builds(monkeypatch) -> list[str]:
    """ "built" for each BSM graph built, "<name> <poll seconds>" for each graph run."""
    built: list[str] = []
    real_build, real_run = bsm_workflows.init_bsm_wf, pe.Workflow.run

    def build(**kwargs):
        built.append("built")
        return real_build(**kwargs)

    def run(self, *args, **kwargs):
        built.append(f"{self.name} {self.config['execution'].get('poll_sleep_duration')}")
        return real_run(self, *args, **kwargs)

    monkeypatch.setattr(bsm_workflows, "init_bsm_wf", build)
    monkeypatch.setattr(pe.Workflow, "run", run)
    return built


def _assert_clean(study) -> None:
    """Every map as the cold run wrote it, and the next rerun recalled (a stamp written)."""
    for name, expected in study["maps"].items():
        assert np.array_equal(_map(study["out"] / name), expected), name
    result = run_bids_stats_model(**study["kwargs"])
    assert isinstance(result.plans, unchanged.RecalledSequence)


def test_no_change_rerun_plans_and_builds_nothing(study):
    kwargs = study["kwargs"]
    before = _results(study["root"] / "work")
    argv = [str(kwargs["bids_dir"]), str(kwargs["output_dir"]), "participant", "--model",
            str(kwargs["model"]), "-w", str(kwargs["work_dir"]), "-q"]  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", RERUN, *argv], capture_output=True, text=True,
                          env={**os.environ, "NIPYPE_NO_ET": "1"}, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    *_, done, imported = proc.stdout.splitlines()
    assert imported == "[]"  # no pybids, nilearn, Nipype or pandas: nothing planned or built
    assert done.startswith("glmflow: 1 run(s) of 1 subject(s) done in ")  # 11 files + 2 pages
    assert done.endswith(f" s; 13 file(s) in {study['out']}; cache in {kwargs['work_dir']}")
    assert _results(study["root"] / "work") == before


def test_the_recalled_result_reads_back_the_plan(study, builds):
    result = run_bids_stats_model(**study["kwargs"])
    assert builds == []
    assert isinstance(result.plans, unchanged.RecalledSequence)
    assert result.files == study["first"].files  # 10 maps and the design
    assert result.reports == study["first"].reports and len(result.reports) == 2  # + index
    assert result.summary == "1 run(s) of 1 subject(s)" and result.subjects == ["01"]
    recalled, first = result.plan.runs[0], study["first"].plan.runs[0]
    assert dict(recalled.entities) == {"run": "1", "subject": "01", "task": "faces"}
    assert recalled.design.equals(first.design) and result.plan.graph is None


def _rewrite(path: Path) -> None:
    """The same bytes written again: a new modification time."""
    path.write_bytes(path.read_bytes())


@pytest.mark.parametrize(
    "inputs",
    [
        "sub-01/func/sub-01_task-faces_run-1_events.tsv",
        "derivatives/fmriprep/sub-01/func/sub-01_task-faces_run-1_desc-confounds_timeseries.tsv",
    ],
)
def test_a_rewritten_input_file_runs_the_level_again(study, builds, inputs):
    _rewrite(study["bids"] / inputs)
    run_bids_stats_model(**study["kwargs"])
    assert builds == BUILT
    _assert_clean(study)


def test_model_file_bytes_and_options_run_the_level_again(study, builds):
    model = Path(study["kwargs"]["model"])
    model.write_text(json.dumps(FACES, indent=2))  # the same model, other bytes
    run_bids_stats_model(**study["kwargs"])
    run_bids_stats_model(**study["kwargs"], missing_conditions="drop")  # nothing to drop
    run_bids_stats_model(**study["kwargs"], participant_label=["01"])
    run_bids_stats_model(**study["kwargs"])  # the cold run's options again: one stamp
    assert builds == BUILT * 4
    _assert_clean(study)


def test_an_edited_contrast_runs_again_with_its_maps(study, builds):
    model = Path(study["kwargs"]["model"])
    edited = json.loads(json.dumps(FACES))
    edited["Nodes"][0]["Contrasts"][0]["Weights"] = [2, -2]
    model.write_text(json.dumps(edited))
    run_bids_stats_model(**study["kwargs"])
    assert builds == BUILT
    new = {name: _map(study["out"] / name) for name in _names()}
    for name, expected in study["maps"].items():  # the effect doubles, the statistics do not
        scale = {"effect": 2, "variance": 4}.get(name.split("stat-")[1].split("_")[0], 1)
        np.testing.assert_allclose(new[name], scale * expected, rtol=1e-5, atol=1e-6)
    model.write_text(json.dumps(FACES))
    run_bids_stats_model(**study["kwargs"])
    _assert_clean(study)


def test_deleted_or_edited_outputs_are_written_again(study, builds):
    paths = [study["out"] / RUN.format("z"), study["out"] / SUBJECT.format("effect")]
    sidecars = [path.with_name(path.name.replace(".nii.gz", ".json")) for path in paths]
    before = _results(study["root"] / "work")
    for path in paths:
        path.unlink()
    run_bids_stats_model(**study["kwargs"])
    for path in paths:
        image = nib.load(path)
        nib.save(nib.Nifti1Image(np.zeros(image.shape, np.float32), image.affine), path)
    run_bids_stats_model(**study["kwargs"])
    for sidecar in sidecars:
        sidecar.write_text("{}")
    run_bids_stats_model(**study["kwargs"])
    assert [json.loads(p.read_text())["Node"] for p in sidecars] == ["run", "subject"]
    assert builds == BUILT * 3
    assert _results(study["root"] / "work") == before  # the cache had it all
    _assert_clean(study)


def test_a_mask_image_path_is_the_fit_mask_and_part_of_the_key(study, builds, tmp_path):
    brain = nib.load(study["first"].plan.runs[0].mask_file)
    inside = np.asanyarray(brain.dataobj) > 0
    inside[: inside.shape[0] // 2] = False
    roi = tmp_path / "roi_mask.nii.gz"  # outside the dataset
    nib.save(nib.Nifti1Image(inside.astype(np.uint8), brain.affine), roi)
    model = Path(study["kwargs"]["model"])
    edited = json.loads(json.dumps(FACES))
    edited["Nodes"][0]["Model"]["Options"]["Mask"] = str(roi)
    model.write_text(json.dumps(edited))
    result = run_bids_stats_model(**study["kwargs"])
    assert [run.mask_file for run in result.plan.runs] == [str(roi)]
    z = _map(study["out"] / RUN.format("z"))
    assert np.count_nonzero(z[~inside]) == 0 and np.count_nonzero(z[inside]) == inside.sum()
    np.testing.assert_allclose(z[inside], study["maps"][RUN.format("z")][inside], atol=1e-4)
    _rewrite(roi)  # the mask is read beside the dataset: part of the level's key
    run_bids_stats_model(**study["kwargs"])
    assert builds == BUILT * 2
    model.write_text(json.dumps(FACES))
    run_bids_stats_model(**study["kwargs"])
    _assert_clean(study)


def test_warnings_are_said_again_by_a_recalled_run(study, builds):
    model = Path(study["kwargs"]["model"])
    edited = json.loads(json.dumps(FACES))
    edited["Nodes"][0]["Contrasts"][0]["ConditionList"].append("trial_type.nothing")
    edited["Nodes"][0]["Contrasts"][0]["Weights"].append(1)
    model.write_text(json.dumps(edited))
    said = []
    for _ in range(2):  # planned and run, then recalled
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run_bids_stats_model(**study["kwargs"], missing_conditions="drop")
        said.append(sorted({str(w.message) for w in caught if "nothing" in str(w.message)}))
    assert builds == BUILT  # the second run was recalled
    assert (
        said[0]
        == said[1]
        == [
            f"{model}: node 'run' (run 1, subject 01, task faces): contrast 'face_gt_house' "
            "drops ['trial_type.nothing'] (not columns of X)"
        ]
    )
    model.write_text(json.dumps(FACES))
    run_bids_stats_model(**study["kwargs"])
    _assert_clean(study)
