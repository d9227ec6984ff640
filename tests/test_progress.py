"""Live progress (issue 10 item 3): the ETA and wording without Nipype, then real runs.

A run's status is said in place on a terminal (a real pseudo-terminal here) and as periodic
lines through a pipe; ``-q`` silences it; none of them changes an output file.
"""

from __future__ import annotations

import gzip
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from glmflow.execution.progress import (
    ConsoleProgress,
    Status,
    Tracker,
    estimate_eta,
    format_duration,
    format_status,
    summarize_outputs,
)

MODEL = Path(__file__).parents[1] / "glmflow/data/models/task_information.json"


# ------------------------------------------------------------------------- plain logic
def test_eta_is_the_mean_node_time_times_the_nodes_left_over_those_running():
    assert estimate_eta([], remaining=5, running=2) is None
    assert estimate_eta([2.0, 4.0], remaining=6, running=2) == pytest.approx(9.0)
    assert estimate_eta([2.0, 4.0], remaining=6, running=0) == pytest.approx(18.0)
    assert estimate_eta([3.0], remaining=0, running=0) == 0.0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.4, "0 s"), (42.4, "42 s"), (185, "3 min 05 s"), (7620, "2 h 07 min")],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_tracker_counts_and_leaves_cache_hits_out_of_the_eta():
    clock = FakeClock()
    tracker = Tracker("participant_wf", clock=clock)
    tracker.begin(10)
    for name in ("a", "b", "c"):
        tracker.node_started(name)
    tracker.node_cached("a")
    tracker.node_ended("a")  # a cache hit: no time
    clock.now += 4.0
    tracker.node_ended("b")  # ran 4 s
    tracker.node_started("d")
    clock.now += 2.0
    tracker.node_ended("d", ok=False)
    tracker.set_jobs("SLURM", ["None", "Resources", "None"])  # 2 running, 1 pending
    sge = Tracker("wf")
    sge.set_jobs("SGE", ["r", "qw", "hqw", "t", "Rr", "Eqw"])
    assert sge.status().jobs == (3, 3)
    status = tracker.status()
    assert (status.total, status.done, status.cached, status.running, status.failed) == (
        10, 2, 1, 1, 1,
    )  # fmt: skip
    assert status.queued == 6 and status.running_names == ("c",)
    assert status.elapsed == pytest.approx(6.0)
    assert status.eta == pytest.approx(4.0 * 7 / 1)  # 4 s per node, 7 left, 1 at a time
    assert status.jobs == (1, 2)
    assert format_status(status) == (
        "participant_wf: 2/10 done (1 cached), 1 running, 6 queued, 1 failed, "
        "jobs 1 queued / 2 running, 6 s, ETA 28 s (running: c)"
    )
    assert format_status(tracker.status(final=True)) == (
        "participant_wf: 2/10 done (1 cached), 1 running, 6 queued, 1 failed, "
        "jobs 1 queued / 2 running, stopped after 6 s"
    )


def test_format_status_names_three_running_nodes_and_fits_the_width():
    status = Status(
        level="wf", total=9, done=4, running=5, queued=0, failed=0, cached=0, elapsed=61,
        eta=30, running_names=("n1", "n2", "n3", "n4", "n5"),
    )  # fmt: skip
    line = "wf: 4/9 done, 5 running, 0 queued, 1 min 01 s, ETA 30 s (running: n1, n2, n3, +2)"
    assert format_status(status) == line
    assert format_status(status, width=20) == line[:19] + "…"


def test_summary_names_the_output_folders(tmp_path):
    files = [tmp_path / f"sub-0{i}" / "func" / f"m{j}.nii.gz" for i in (1, 2) for j in range(3)]
    files.append(tmp_path / "task-faces_design.tsv")
    assert summarize_outputs(files, tmp_path) == (
        f"outputs in {tmp_path}: sub-01/ (3 files), sub-02/ (3 files), 1 file at its top"
    )
    many = [tmp_path / f"sub-{i:02d}" / "x.nii.gz" for i in range(9)]
    assert summarize_outputs(many, tmp_path, shown=2) == (
        f"outputs in {tmp_path}: sub-00/ (1 file), sub-01/ (1 file), 7 more folder(s)"
    )
    assert summarize_outputs([], tmp_path) == f"outputs in {tmp_path}: none"


def test_console_progress_off_a_terminal_writes_lines(tmp_path):
    with open(tmp_path / "log.txt", "w") as stream:
        sink = ConsoleProgress(stream)
        assert (sink.tty, sink.every) == (False, 30.0)
        sink(Status("wf", 2, 1, 1, 0, 0, 0, 3.0, 3.0, ("b",)))
    assert (tmp_path / "log.txt").read_text() == (
        "glmflow: wf: 1/2 done, 1 running, 0 queued, 3 s, ETA 3 s (running: b)\n"
    )


# ------------------------------------------------------------------ the Python API's callback
def test_run_workflow_hands_the_callback_each_status(tmp_path):
    from test_execution import build_workflow

    from glmflow.execution import ExecutionError, run_workflow

    seen: list[Status] = []

    def callback(status: Status) -> None:
        seen.append(status)

    callback.every = 0.05
    run_workflow(build_workflow(tmp_path / "runs"), plugin="MultiProc", work_dir=tmp_path / "w",
                 poll_interval=0.01, progress=callback)  # fmt: skip
    final = seen[-1]
    assert final.final and (final.level, final.total, final.done, final.cached) == (
        "toy_wf", 3, 3, 0,
    )  # fmt: skip
    assert all(not s.final for s in seen[:-1])
    seen.clear()
    run_workflow(build_workflow(tmp_path / "runs"), plugin="Linear", work_dir=tmp_path / "w",
                 progress=callback)  # fmt: skip
    assert (seen[-1].total, seen[-1].done, seen[-1].running) == (3, 3, 0)
    seen.clear()
    run_workflow(build_workflow(tmp_path / "runs"), plugin="MultiProc", work_dir=tmp_path / "w",
                 poll_interval=0.01, progress=callback)  # fmt: skip
    assert (seen[-1].done, seen[-1].cached) == (3, 3)  # the rerun: every node a cache hit
    with pytest.raises(ExecutionError, match=r"^progress must be None \(log it\), False "):
        run_workflow(build_workflow(tmp_path / "runs"), work_dir=tmp_path / "w", progress=3)


# ------------------------------------------------------------------------ the command line
@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from glmflow.data import make_synthetic_dataset

    return make_synthetic_dataset(
        tmp_path_factory.mktemp("progress") / "bids", n_subjects=1, n_runs=2, n_volumes=60
    )


def _command(dataset: Path, root: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "glmflow.cli.main", str(dataset), str(root / "out"),
        "participant", "--model", str(MODEL), "-w", str(root / "work"), "--n-cpus", "2", *extra,
    ]  # fmt: skip


def _under_pty(cmd: list[str], timeout: float = 600) -> tuple[int, str]:
    """Run ``cmd`` with a pseudo-terminal as its stdout and stderr; (exit code, output)."""
    leader, follower = pty.openpty()
    env = {**os.environ, "NIPYPE_NO_ET": "1", "COLUMNS": "200"}
    proc = subprocess.Popen(cmd, stdout=follower, stderr=follower, env=env, close_fds=True)
    os.close(follower)
    chunks, deadline = [], time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline, "the run under a terminal did not end"
        ready, _, _ = select.select([leader], [], [], 1.0)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the follower closed: the run ended
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(leader)
    return proc.wait(timeout=60), b"".join(chunks).decode(errors="replace")


# what differs between any two runs: matplotlib's SVG date and its random element ids
_SVG_VOLATILE = re.compile(rb"<dc:date>[^<]*</dc:date>|(?<=id=\")\w+|(?<=\"#)\w+|(?<=url\(#)\w+")


def _content(path: Path) -> bytes:
    """A file's bytes; a .gz file's inflated (its header holds the time); an SVG's without
    its date and element ids."""
    data = path.read_bytes()
    if path.suffix == ".gz":
        return gzip.decompress(data)
    return _SVG_VOLATILE.sub(b"", data) if path.suffix == ".svg" else data


def _outputs(root: Path) -> dict[str, bytes]:
    out = root / "out"
    return {str(p.relative_to(out)): _content(p) for p in sorted(out.rglob("*")) if p.is_file()}


STATUS = r"glmflow_wf: (\d+)/(\d+) done"


def test_progress_in_place_on_a_terminal_lines_in_a_pipe_none_with_q(dataset, tmp_path):
    code, text = _under_pty(_command(dataset, tmp_path / "tty", "--progress-every", "0.2"))
    assert code == 0, text[-3000:]
    # each update rewrites the line: carriage return, erase line, the status
    updates = re.findall(rf"\r\x1b\[K{STATUS}", text)
    assert len(updates) >= 3, text[-3000:]
    total = int(updates[-1][1])
    assert updates[-1][0] == str(total) and total > 10
    assert [int(done) for done, _ in updates] == sorted(int(done) for done, _ in updates)
    assert re.search(
        rf"\r\x1b\[K{STATUS}, 0 running, 0 queued, finished in \d+ s\r?\n", text
    )  # a tty writes \r\n
    assert "running: glmflow_wf." in text  # the names of the running nodes
    assert "\r\x1b[Kglmflow: warning: 2 runs " in text  # a warning erases the status line
    assert f"glmflow: outputs in {tmp_path / 'tty' / 'out' / 'glmflow'}: sub-01/ (" in text

    env = {**os.environ, "NIPYPE_NO_ET": "1"}
    piped = subprocess.run(_command(dataset, tmp_path / "pipe", "--progress-every", "0.2"),
                           capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert piped.returncode == 0, piped.stderr[-3000:]
    lines = [ln for ln in piped.stderr.splitlines() if re.match(rf"^glmflow: {STATUS}", ln)]
    assert len(lines) >= 3, piped.stderr[-3000:]
    assert "\r" not in piped.stderr and "\x1b" not in piped.stderr
    assert re.match(rf"^glmflow: {STATUS}, 0 running, 0 queued, finished in \d+ s$", lines[-1])
    assert lines[-1].startswith(f"glmflow: glmflow_wf: {total}/{total} done")

    quiet = subprocess.run(_command(dataset, tmp_path / "quiet", "-q"),
                           capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert not re.search(STATUS, quiet.stderr + quiet.stdout)
    assert "outputs in" not in quiet.stdout
    assert "1 run(s)" not in quiet.stdout and "2 run(s) of 1 subject(s) done" in quiet.stdout

    # progress changes no output file: the same names and bytes in all three
    outputs = {name: _outputs(tmp_path / name) for name in ("tty", "pipe", "quiet")}
    assert len(outputs["quiet"]) > 50
    assert outputs["tty"] == outputs["quiet"] and outputs["pipe"] == outputs["quiet"]
