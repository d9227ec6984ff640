"""Shared fixtures: the real reference data and small synthetic datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("NIPYPE_NO_ET", "1")

ROOT = Path(__file__).resolve().parents[1]
REALDATA = Path(os.environ.get("GLMFLOW_REALDATA", ROOT.parent / "shared" / "realdata"))


@pytest.fixture(scope="session")
def realdata() -> Path:
    """Path of ../shared/realdata; tests that need it are skipped with a reason when absent."""
    if not REALDATA.is_dir():
        pytest.skip(f"real reference data not found at {REALDATA} (set GLMFLOW_REALDATA)")
    return REALDATA


@pytest.fixture(scope="session")
def synthetic_1x2(tmp_path_factory) -> Path:
    """The small synthetic dataset, 1 subject x 2 runs x 60 volumes (copy it to edit it)."""
    from glmflow.data import make_synthetic_dataset

    root = tmp_path_factory.mktemp("synthetic_1x2")
    return make_synthetic_dataset(root / "bids", n_subjects=1, n_runs=2, n_volumes=60)


@pytest.fixture(scope="session")
def synthetic_3x1(tmp_path_factory) -> Path:
    """The small synthetic dataset, 3 subjects x 1 run x 60 volumes (copy it to edit it)."""
    from glmflow.data import make_synthetic_dataset

    root = tmp_path_factory.mktemp("synthetic_3x1")
    return make_synthetic_dataset(root / "bids", n_subjects=3, n_runs=1, n_volumes=60)


# A cluster test that fails says what the schedulers held at that moment (a CI machine's
# daemons cannot be looked at afterwards): the queue, the node's state and the log tails.
_CLUSTER_STATE = (
    ["squeue", "-a", "-o", "%i %j %T %r %M"],
    ["sinfo", "-N", "-o", "%N %t %E"],
    ["qstat", "-u", "*"],
    ["qstat", "-f", "-explain", "aAcE"],
    ["tail", "-n", "30", "/tmp/glmflow-cluster/slurm/log/slurmctld.log"],
    ["tail", "-n", "15", "/tmp/glmflow-cluster/slurm/log/slurmd.log"],
)


def _cluster_state() -> str:
    import shutil
    import subprocess

    parts = []
    for command in _CLUSTER_STATE:
        if shutil.which(command[0]) is None:
            continue
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=20)
            text = proc.stdout + proc.stderr
        except subprocess.TimeoutExpired:
            text = "(no answer within 20 s)"
        parts.append(f"$ {' '.join(command)}\n{text.rstrip()}")
    return "\n".join(parts)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and item.get_closest_marker("cluster") is not None:
        report.sections.append(("cluster state at the failure", _cluster_state()))
    return report


def _queued_anywhere() -> dict[str, list[str]]:
    """{scheduler: ids of this user's queued jobs} on the clusters that answer; a job being
    deleted or completing (SGE's "d" states, SLURM's CG: a qdel'd job lingers for up to a
    minute) holds nothing and is left out."""
    import shutil
    import subprocess

    from glmflow.execution.scheduler import user

    commands = {"SLURM": ["squeue", "-h", "-u", user(), "-o", "%i %t"],
                "SGE": ["qstat", "-u", user()]}  # fmt: skip
    queued = {}
    for scheduler, command in commands.items():
        if shutil.which(command[0]) is None:
            continue
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=20).stdout
        except subprocess.TimeoutExpired:
            continue
        rows = [line.split() for line in out.splitlines()]
        if scheduler == "SLURM":
            live = [row[0] for row in rows if len(row) == 2 and row[1] != "CG"]
        else:  # job-ID prior name user state ...
            live = [row[0] for row in rows if len(row) > 4 and "d" not in row[4]]
        queued[scheduler] = [job for job in live if job.isdigit()]
    return queued


@pytest.fixture(autouse=True)
def _cluster_queue_of_its_own(request):
    """A cluster test starts on an empty queue: jobs an earlier test left behind (a node's
    whole CPUs held) would make its jobs wait without bound. They get 30 s, then are
    cancelled, with a warning naming them."""
    if request.node.get_closest_marker("cluster") is None:
        yield
        return
    import subprocess
    import time
    import warnings

    mine = _scheduler_of(request.node)  # the other scheduler's tests may run beside it
    deadline = time.monotonic() + 30
    while True:
        queued = {k: v for k, v in _queued_anywhere().items() if mine in (None, k)}
        if not any(queued.values()) or time.monotonic() >= deadline:
            break
        time.sleep(2)
    for scheduler, jobs in queued.items():
        if jobs:
            left = f"{scheduler} jobs {jobs} left by an earlier test: cancelled"
            warnings.warn(left, stacklevel=2)
            command = "scancel" if scheduler == "SLURM" else "qdel"
            subprocess.run([command, *jobs], capture_output=True, timeout=30)
    yield


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's, which reads the groups
def pytest_collection_modifyitems(config, items):
    # a cluster test that hangs costs 10 min, not the 15 of the suite's default timeout
    for item in items:
        if item.get_closest_marker("cluster") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(600))
    # under pytest-xdist (`-n N --dist loadgroup`): the cluster tests share the daemons (some
    # stop and restart a controller; fixtures list and cancel on both schedulers), so they
    # run one after another on one worker, beside the rest (SLURM's beside SGE's failed
    # there); every other file stays on one worker, which computes its module fixtures once
    if config.pluginmanager.hasplugin("xdist"):
        for item in items:
            cluster = item.get_closest_marker("cluster") is not None
            group = "cluster" if cluster else item.path.name
            item.add_marker(pytest.mark.xdist_group(group))


def _scheduler_of(item) -> str | None:
    """SLURM or SGE for a test parametrized by ``plugin``, else None."""
    plugin = getattr(getattr(item, "callspec", None), "params", {}).get("plugin")
    if not isinstance(plugin, str) or not plugin.startswith(("SLURM", "SGE")):
        return None
    return "SLURM" if plugin.startswith("SLURM") else "SGE"
