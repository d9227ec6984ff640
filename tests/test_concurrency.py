"""Issue 14.3: two glmflow runs at once on the same folders really overlap, and one refuses.

The second run is started only once the first holds the folder and is computing (a node
result on disk), and the first is paused (SIGSTOP to its process group, SIGCONT after) while
the second runs, so that the runs overlap by construction, not by luck of the load: the
second must refuse with one line naming the first (its pid, host and start, as in the lock
file); the first, resumed, finishes with an output identical, map by map, to a single clean
run's (``scripts/compare_outputs.py`` and the data of every map and table). Every wait is
bounded.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from test_cli import _model as write_model
from test_participant import _maps as maps

from glmflow.execution.folders import LOCK_NAME

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "NIPYPE_NO_ET": "1"}
IN_USE = (
    r"^glmflow: error: (Work|Output) folder (\S+) is in use by another glmflow run: pid (\d+) "
    r"on (\S+) since ([\d-]+ [\d:]+ \w+) \((.+)\); wait for it to finish or (pass another -w "
    r"\(work_dir=\)|choose another output folder)$"
)


def command(dataset: Path, out: Path, model: Path, work: Path) -> list[str]:
    return [sys.executable, "-m", "glmflow.cli.main", str(dataset), str(out), "participant",
            "--model", str(model), "-w", str(work), "--n-cpus", "2"]  # fmt: skip


@pytest.fixture(scope="module")
def single(synthetic_1x2, tmp_path_factory) -> tuple[Path, Path]:
    """One clean run alone: the model and its output dataset, the reference."""
    root = tmp_path_factory.mktemp("single")
    model = write_model(root)
    cmd = command(synthetic_1x2, root / "out", model, root / "work")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return model, root / "out" / "glmflow"


def _wait_until(condition, first: subprocess.Popen, what: str, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert first.poll() is None, (what, first.communicate())
        assert time.monotonic() < deadline, f"{what}: not within {seconds:.0f} s"
        time.sleep(0.02)


def _holder(lock: Path) -> dict | None:
    try:
        return json.loads(lock.read_text())
    except (OSError, ValueError):
        return None  # not there yet, or being written


@pytest.mark.parametrize("shared", ["work and output", "output"])
def test_two_runs_at_once_overlap_and_the_second_refuses(synthetic_1x2, single, tmp_path, shared):
    model, reference = single
    out = tmp_path / "out"
    if shared == "work and output":
        works = [tmp_path / "work"] * 2
    else:
        works = [tmp_path / "w1", tmp_path / "w2"]
    held = works[0] if shared == "work and output" else out / "glmflow"
    lock = held / LOCK_NAME
    first = subprocess.Popen(
        command(synthetic_1x2, out, model, works[0]), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=ENV, start_new_session=True,
    )  # fmt: skip
    try:
        # the first holds the folder and computes: a node of its graph has finished
        _wait_until(lambda: (_holder(lock) or {}).get("pid") == first.pid, first, "lock taken")
        _wait_until(
            lambda: list(works[0].glob("glmflow_wf/*/*/*/result_*.pklz")), first, "a node done"
        )
        holder = _holder(lock)
        os.killpg(first.pid, signal.SIGSTOP)  # driver and workers: the first cannot finish
        try:
            second_started = time.time()
            second = subprocess.run(
                command(synthetic_1x2, out, model, works[1]), capture_output=True, text=True,
                env=ENV, timeout=300,
            )  # fmt: skip
            second_ended = time.time()
            first_still_running = first.poll() is None
        finally:
            os.killpg(first.pid, signal.SIGCONT)
        _, first_err = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    # the second ran while the first held the lock and had not finished
    since = datetime.strptime(holder["since"], "%Y-%m-%d %H:%M:%S %Z").timestamp()
    assert since - 1 <= second_started < second_ended
    assert first_still_running
    assert second.returncode == 2, second.stderr[-3000:]
    assert "Traceback" not in second.stderr, second.stderr[-3000:]
    errors = [line for line in second.stderr.splitlines() if line.startswith("glmflow: error")]
    assert len(errors) == 1 and second.stderr.splitlines()[-1] == errors[0], second.stderr
    match = re.match(IN_USE, errors[0])
    assert match, errors[0]
    kind = "Work" if shared == "work and output" else "Output"
    assert (match[1], Path(match[2])) == (kind, held)
    assert (int(match[3]), match[4], match[5]) == (first.pid, socket.gethostname(),
                                                   holder["since"])  # fmt: skip
    assert match[6] == holder["command"] and match[6].startswith(f"glmflow {synthetic_1x2} ")

    assert first.returncode == 0, first_err[-3000:]
    compared = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "compare_outputs.py"), str(reference),
         str(out / "glmflow")], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert compared.returncode == 0, compared.stdout
    last = compared.stdout.splitlines()[-1]
    assert re.match(r"^\d+ maps compared, max \|difference\| 0; 0 over 0; 0 on one side only$",
                    last), last  # fmt: skip
    assert maps(out / "glmflow") == maps(reference)
    assert not list(tmp_path.rglob(LOCK_NAME))  # both released
