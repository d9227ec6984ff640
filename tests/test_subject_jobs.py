"""One cluster job per subject (``--cluster-jobs subject``, glmflow.execution.jobs).

On the project's real SLURM and SGE clusters (scripts/cluster; skipped with the reason when
they do not answer, see tests/test_cluster.py): a participant level of 2 subjects is 2 jobs,
and its maps equal MultiProc's bit for bit; so do MultiProc's own subject jobs. Without a
cluster: the option's one-line errors.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nibabel as nib
import pytest
from test_cluster import POLL, require_cluster

from glmflow.data import make_synthetic_dataset
from glmflow.execution import ExecutionError, ExecutionOptions
from glmflow.runners.group import run_group_level
from glmflow.runners.participant import run_participant_level

MODEL = Path(__file__).parents[1] / "glmflow/data/models/task_information.json"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("subject_jobs")
    return make_synthetic_dataset(root / "bids", n_subjects=2, n_runs=2, n_volumes=40)


def _maps(dataset: Path, root: Path, model=MODEL, **execution) -> tuple[dict[str, bytes], Path]:
    result = run_participant_level(
        bids_dir=dataset, output_dir=root / "out", model=model, work_dir=root / "work",
        smoothing_fwhm=0, **execution,
    )  # fmt: skip
    found = {}
    for path in sorted(result.files):
        if path.name.endswith(".nii.gz"):
            found[path.name] = nib.load(path).get_fdata().tobytes()
        elif path.name.endswith((".tsv", ".json")):
            found[path.name] = path.read_bytes()
    return found, root / "work" / "glmflow_wf"


@pytest.fixture(scope="module")
def multiproc(dataset, tmp_path_factory):
    return _maps(dataset, tmp_path_factory.mktemp("multiproc"), n_procs=2)[0]


@pytest.mark.cluster
@pytest.mark.parametrize("plugin", ["SLURM", "SGE"])
def test_one_job_per_subject_gives_the_maps_of_multiproc(plugin, dataset, multiproc, tmp_path):
    require_cluster(plugin)
    maps, top = _maps(dataset, tmp_path, plugin=plugin, cluster_jobs="subject",
                      poll_interval=POLL)  # fmt: skip
    assert len(maps) == len(multiproc) > 100
    assert [name for name in maps if maps[name] != multiproc[name]] == []
    # 2 jobs (Nipype writes one batch script per job), each a subject's whole sub-workflow
    scripts = sorted(p.name for p in (top / "batch").glob("batchscript_*.sh"))
    assert len(scripts) == 2, scripts
    assert {p.parent.name for p in top.glob("job_*/result_*.pklz")} == {
        "job_sub_01_task_faces_wf", "job_sub_02_task_faces_wf"
    }  # fmt: skip
    # the runs' nodes are in the folders of a per-node run: one cache for both modes
    assert len(list(top.glob("sub_0*_task_faces_wf/run_run_*_wf/fit_first_level"))) == 4


def test_one_job_per_subject_on_multiproc_gives_its_per_node_maps(dataset, multiproc, tmp_path):
    maps, top = _maps(dataset, tmp_path, n_procs=2, cluster_jobs="subject")
    assert len(maps) == len(multiproc) > 100
    assert [name for name in maps if maps[name] != multiproc[name]] == []
    assert {p.parent.name for p in top.glob("job_*/result_*.pklz")} == {
        "job_sub_01_task_faces_wf", "job_sub_02_task_faces_wf"
    }  # fmt: skip
    # the runs' nodes ran inside the jobs, in the folders of a per-node run
    assert len(list(top.glob("sub_01_task_faces_wf/run_*/fit_first_level/result_*.pklz"))) == 2


def test_subject_jobs_are_refused_by_linear():
    with pytest.raises(ExecutionError) as caught:
        ExecutionOptions(plugin="Linear", cluster_jobs="subject")
    assert str(caught.value) == (
        "cluster_jobs='subject' groups the jobs of MultiProc or a cluster plugin and means "
        "nothing to plugin 'Linear'; leave it out"
    )
    with pytest.raises(ExecutionError, match=r"^cluster_jobs \(--cluster-jobs\) must be one of "
                       r"node, subject\. Got 'run' instead\.$"):  # fmt: skip
        ExecutionOptions(plugin="SLURM", cluster_jobs="run")


def test_the_group_level_is_not_made_of_subjects(dataset, tmp_path):
    # refused before anything is submitted: only SLURM's commands need to be on PATH
    if shutil.which("sbatch") is None:
        pytest.skip("sbatch not on PATH: no SLURM commands (`scripts/cluster/slurm.sh start`)")
    data = json.loads(MODEL.read_text())
    data["faces"]["group_level_regressors"] = []  # 2 subjects: the mean only
    model = tmp_path / "task_information.json"
    model.write_text(json.dumps(data))
    _maps(dataset, tmp_path, model, n_procs=2)
    with pytest.raises(ExecutionError) as caught:
        run_group_level(
            bids_dir=dataset, output_dir=tmp_path / "out", model=model,
            work_dir=tmp_path / "work", plugin="SLURM", cluster_jobs="subject",
        )  # fmt: skip
    assert re.fullmatch(
        r"--cluster-jobs subject runs each sub-workflow of 'glmflow_group_wf' as one job, but "
        r"it has node '[\w.]+' at its top \(only the participant level is made of "
        r"independent subjects\); use --cluster-jobs node",
        str(caught.value),
    )
