"""Issue 14's fault test: a node that raises and a node killed while it runs.

Under MultiProc and under SLURM (the project's own daemons, scripts/cluster; skipped with the
reason when they are down, as in tests/test_cluster.py), through ``python -m
glmflow.cli.main``: the failed level leaves nothing in the output folder, and the rerun
finishes with maps and tables identical to a clean run's. A MultiProc worker killed -9
is one line naming the node (glmflow.execution.multiproc; Nipype alone waited forever),
bounded at 90 s. Measured here, clean run included: the raising node 2.5 min (MultiProc), 2.8 min
(SLURM); the cancelled SLURM jobs 2.8 min (with the MultiProc xfail).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from test_cli import _model as write_model
from test_participant import _maps as maps

pytestmark = pytest.mark.slow

SPACE = "space-MNI152NLin2009cAsym"
BOLD = f"derivatives/fmriprep/sub-01/func/sub-01_task-faces_run-1_{SPACE}_desc-preproc_bold.nii.gz"
ENV = {**os.environ, "NIPYPE_NO_ET": "1"}
PLUGINS = ["MultiProc", pytest.param("SLURM", marks=pytest.mark.cluster)]
BATCH = ("SLURM", "SGE")


def command(dataset: Path, root: Path, plugin: str) -> list[str]:
    extra = ["--poll-interval", "0.5"] if plugin in BATCH else ["--n-cpus", "2"]
    return [sys.executable, "-m", "glmflow.cli.main", str(dataset), str(root / "out"),
            "participant", "--model", str(write_model(root)), "-w", str(root / "work"),
            "--plugin", plugin, *extra]  # fmt: skip


def files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []


@pytest.fixture(scope="module")
def clean(synthetic_1x2, tmp_path_factory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("clean")
    proc = subprocess.run(
        command(synthetic_1x2, root, "MultiProc"), capture_output=True, text=True, env=ENV,
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = maps(root / "out" / "glmflow")
    assert len(found) > 50
    return found


def _require(plugin: str) -> None:
    if plugin in BATCH:
        from test_cluster import require_cluster

        require_cluster(plugin)


@pytest.mark.parametrize("plugin", PLUGINS)
def test_a_node_that_raises_then_the_rerun(synthetic_1x2, clean, tmp_path, plugin):
    """An all-NaN BOLD makes mask_and_smooth raise; the file restored, the rerun completes."""
    _require(plugin)
    dataset = Path(shutil.copytree(synthetic_1x2, tmp_path / "bids"))
    good = (dataset / BOLD).read_bytes()
    img = nib.load(dataset / BOLD)
    nib.Nifti1Image(np.full(img.shape, np.nan, np.float32), img.affine, img.header).to_filename(
        dataset / BOLD
    )
    cmd = command(dataset, tmp_path, plugin)
    failed = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=900)
    assert failed.returncode == 2, failed.stderr[-3000:]
    last = failed.stderr.splitlines()[-1]
    assert last.startswith("glmflow: error: Node 'glmflow_wf.sub_01_task_faces_wf.run_run_1_wf."
                           "mask_and_smooth' failed with glmflow.errors.DatasetError: BOLD "
                           f"{dataset / BOLD}: 2120 of the 2120 voxels"), last  # fmt: skip
    assert files_in(tmp_path / "out") == []
    (dataset / BOLD).write_bytes(good)
    rerun = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert maps(tmp_path / "out" / "glmflow") == clean


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (Linux /proc)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                found.append(int(stat.parent.name))
                todo.append(int(stat.parent.name))
    return found


def _kill_a_running_node(driver: subprocess.Popen, work: Path, plugin: str) -> None:
    """Once a first node has finished, kill -9 what runs the others (worker or batch job)."""
    deadline = time.monotonic() + 300
    while not list(work.glob("glmflow_wf/*/*/*/result_*.pklz")):
        assert driver.poll() is None, driver.communicate()
        assert time.monotonic() < deadline, "no node finished within 300 s"
        time.sleep(0.05)
    if plugin in BATCH:
        from glmflow.execution.scheduler import cancel_jobs, queued_jobs

        while not (jobs := queued_jobs(plugin, work / "glmflow_wf" / "batch")):
            assert driver.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        cancel_jobs(plugin, list(jobs))
        return
    while not (workers := _children(driver.pid)):
        assert driver.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    for pid in workers:
        os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    "plugin",
    ["MultiProc", PLUGINS[1], pytest.param("SGE", marks=pytest.mark.cluster)],
)  # SLURM, SGE: scancel / qdel of the running jobs (the path of an out-of-memory or time-limit
# kill): one line naming the node, the job and the scheduler's account of it
def test_a_node_killed_while_it_runs_then_the_rerun(synthetic_1x2, clean, tmp_path, plugin):
    _require(plugin)
    cmd = command(synthetic_1x2, tmp_path, plugin)
    driver = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True)  # fmt: skip
    try:
        _kill_a_running_node(driver, tmp_path / "work", plugin)
        _, stderr = driver.communicate(timeout=90)  # bounded: a hang fails the test
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    assert driver.returncode != 0, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("glmflow: error:")]
    assert len(errors) == 1 and stderr.splitlines()[-1] == errors[0], stderr[-3000:]
    if plugin in BATCH:
        account = "(sacct|scontrol): .*CANCELLED" if plugin == "SLURM" else r"qacct: failed \d+"
        if plugin == "SGE":  # a job deleted while it waited has no accounting record
            account = rf"({account}|qacct: no record \(SGE keeps them for jobs that started\): "
            account += "deleted while queued)"
        assert re.match(
            rf"^glmflow: error: Node 'glmflow_wf\.\S+' failed with JobDiedError: {plugin} job "
            rf"\d+ ended without a result \({account}.*\); rerun `glmflow .+` to resume "
            r"\(finished nodes are reused\); crash file: \S+\.txt", errors[0]
        ), errors[0]  # fmt: skip
    assert files_in(tmp_path / "out") == []  # nothing half-written
    rerun = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert maps(tmp_path / "out" / "glmflow") == clean
