"""Scale in subjects: planning at 100, 300 and 1,000 runs; the whole participant level at 200.

Datasets: the ``small`` preset with 60 volumes and 2 runs per subject
(``glmflow make-dataset --n-subjects N --n-runs 2 --n-volumes 60``), N = 50, 150, 500.

- Planning (what runs before the first node), each step timed in a fresh process, cold
  (new work folder) then warm (the same folder again, nothing changed): indexing with pybids
  (``discover_runs``), the dataset's conditions (``dataset_conditions``), the pre-flight
  (``cached_check_first_level``). Linear growth means a constant time per run.
- The whole command on 100 subjects x 2 runs (``--full``): ``glmflow ... participant``
  cold, no-change reruns, and a rerun after one output was deleted (the level runs:
  planning, graph, hash checks), MultiProc on 2 processes (targets: cold <= 60 s, rerun
  <= 5 s).

Usage: ``python benchmarks/bench_scale.py [--data DIR] [--repeats N] [--subjects N ...] [--full]``.
Prints a markdown report and writes ``benchmarks/RESULTS-scale.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODEL = HERE.parent / "glmflow" / "data" / "models" / "task_information.json"
SUBJECTS = (50, 150, 500)
ENV = {**os.environ, "NIPYPE_NO_ET": "1"}

PLAN_CHILD = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
from glmflow.core.bids import discover_runs
from glmflow.core.model import load_model
from glmflow.core.conditions import dataset_conditions
from glmflow.core.preflight import cached_check_first_level
bids, db = sys.argv[1], sys.argv[2]
spec = load_model(sys.argv[3])
t0 = time.perf_counter()
runs = discover_runs(bids, tasks=[spec.task], task_given=False, database_dir=db,
                     spec_tr=spec.tr, model_file=spec.source)
t1 = time.perf_counter()
conditions = dataset_conditions(bids, spec, cache_dir=db) if spec.auto_contrasts else None
t2 = time.perf_counter()
cached_check_first_level(runs, spec, conditions=conditions, cache_dir=db)
t3 = time.perf_counter()
print(json.dumps({"runs": len(runs), "index": t1 - t0, "conditions": t2 - t1,
                  "preflight": t3 - t2}))
"""


def _dataset(root: Path, n_subjects: int) -> Path:
    path = root / f"ds-{n_subjects}x2"
    if not (path / "dataset_description.json").is_file():
        subprocess.run(
            [sys.executable, "-m", "glmflow.cli.main", "make-dataset", str(path),
             "--n-subjects", str(n_subjects), "--n-runs", "2", "--n-volumes", "60"],
            env=ENV, check=True, capture_output=True,
        )  # fmt: skip
    return path


def _plan(bids: Path, db: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PLAN_CHILD, str(bids), str(db), str(MODEL)],
        env=ENV, capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout)


def _command(bids: Path, out: Path, work: Path) -> float:
    cmd = [
        sys.executable, "-m", "glmflow.cli.main", str(bids), str(out), "participant",
        "--model", str(MODEL), "-w", str(work), "--plugin", "MultiProc", "--n-cpus", "2",
    ]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    return time.perf_counter() - start


def _spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/glmflow-scale"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--full", action="store_true", help="also the whole command")
    parser.add_argument("--subjects", type=int, nargs="+", default=SUBJECTS)
    args = parser.parse_args()
    lines = [
        "# Scale in subjects (small preset, 60 volumes, 2 runs per subject)",
        "",
        f"{platform.node()}, {os.cpu_count()} cores, shared with other work; seconds as "
        f"min / median / max of {args.repeats} repeats, each in a fresh process.",
        "",
        "| runs | step | cold s | warm s | cold ms per run |",
        "| --- | --- | --- | --- | --- |",
    ]
    for n_subjects in args.subjects:
        bids = _dataset(args.data, n_subjects)
        cold: dict[str, list[float]] = {}
        warm: dict[str, list[float]] = {}
        for _ in range(args.repeats):
            db = Path(tempfile.mkdtemp(prefix="scale-db-"))
            for times, result in ((cold, _plan(bids, db)), (warm, _plan(bids, db))):
                n_runs = result.pop("runs")
                for step, value in result.items():
                    times.setdefault(step, []).append(value)
            shutil.rmtree(db)
        cold["total"] = [sum(v) for v in zip(*cold.values(), strict=True)]
        warm["total"] = [sum(v) for v in zip(*warm.values(), strict=True)]
        for step in cold:
            per_run = 1000 * statistics.median(cold[step]) / n_runs
            lines.append(
                f"| {n_runs} | {step} | {_spread(cold[step])} | {_spread(warm[step])} | "
                f"{per_run:.1f} |"
            )
        print("\n".join(lines[-len(cold) :]), flush=True)
    if args.full:
        lines += _full(args)
    report = "\n".join(lines) + "\n"
    print(report)
    (HERE / "RESULTS-scale.md").write_text(report)


def _full(args) -> list[str]:
    bids = _dataset(args.data, 100)
    root = Path(tempfile.mkdtemp(prefix="scale-run-"))
    load = [os.getloadavg()[0]]
    cold = _command(bids, root / "out", root / "work")
    reruns = [_command(bids, root / "out", root / "work") for _ in range(args.repeats)]
    # one output deleted: the level runs (planning, graph, Nipype's hash checks), nothing
    # is computed again and the file is copied back
    next((root / "out" / "glmflow").rglob("*_stat-z_statmap.nii.gz")).unlink()
    graph = _command(bids, root / "out", root / "work")
    load.append(os.getloadavg()[0])
    shutil.rmtree(root)
    return [
        "",
        f"| 100 subjects x 2 runs, `glmflow ... participant`, MultiProc 2 (load "
        f"{load[0]:.1f} -> {load[1]:.1f}) | wall s | target |",
        "| --- | --- | --- |",
        f"| cold | {cold:.1f} | <= 60 |",
        f"| no-change rerun (min / median / max) | {_spread(reruns)} | <= 5 |",
        f"| rerun after deleting one output (the whole graph checked, nothing computed) | "
        f"{graph:.1f} | |",
    ]


if __name__ == "__main__":
    main()
