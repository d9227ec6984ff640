"""What the HTML reports cost, against the participant level's cold time (issue 10).

Dataset: ``make_synthetic_dataset(preset="realistic")`` (8 subjects x 2 runs, 2-mm MNI grid
97x115x97, 240 volumes). Each step runs in a fresh process, MultiProc on 2 processes:

1. the participant level, cold (new work folder), without reports;
2. the group level of the same model, without reports;
3. every report page (8 subject pages, one per group model, the index) with
   ``rebuild_reports`` in the same work folder, cold: the atlas node and every page;
4. the same again, nothing changed: no page may be rendered.

Target (issue 10): step 3 <= 15 % of step 1. Usage:
``python benchmarks/bench_reports.py [--data DIR] [--keep]``; prints a markdown report and
writes ``benchmarks/RESULTS-reports.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODEL = HERE.parent / "glmflow" / "data" / "models" / "task_information.json"
ENV = {**os.environ, "NIPYPE_NO_ET": "1"}
TARGET = 0.15

CHILD = """
import json, sys, warnings
from pathlib import Path
warnings.simplefilter("ignore")
step, bids, out, work, model = sys.argv[1:6]
common = dict(plugin="MultiProc", n_procs=2, progress=False, work_dir=work)
if step == "participant":
    from glmflow import run_participant_level
    run_participant_level(bids_dir=bids, output_dir=out, model=model, reports=False, **common)
elif step == "group":
    from glmflow import run_group_level
    run_group_level(bids_dir=bids, output_dir=out, model=model, reports=False, **common)
else:
    from glmflow.runners.reports import rebuild_reports
    pages = rebuild_reports(bids_dir=bids, output_dir=out, **common)
    stamps = {p.name: p.stat().st_mtime_ns for p in pages}
    results = sorted(Path(work, "reports_wf").glob("ds_report_*/result_*.pklz"))
    print(json.dumps({"pages": stamps, "results": {str(p): p.stat().st_mtime_ns
                                                   for p in results}}))
"""


def _step(step: str, bids: Path, out: Path, work: Path) -> tuple[float, dict]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, step, str(bids), str(out), str(work), str(MODEL)],
        env=ENV, capture_output=True, text=True,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{step} failed:\n{proc.stderr[-3000:]}")
    lines = proc.stdout.strip().splitlines()
    return elapsed, (json.loads(lines[-1]) if step == "reports" else {})


def _dataset(path: Path) -> Path:
    if not (path / "derivatives" / "truth" / "truth.json").is_file():
        from glmflow.data import make_synthetic_dataset

        make_synthetic_dataset(path, preset="realistic", overwrite=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/glmflow-bench-reports"))
    parser.add_argument("--keep", action="store_true", help="keep the output and work folders")
    args = parser.parse_args()
    bids = _dataset(args.data / "bids")
    out, work = args.data / "out", args.data / "work"
    for folder in (out, work):
        shutil.rmtree(folder, ignore_errors=True)
    participant, _ = _step("participant", bids, out, work)
    group, _ = _step("group", bids, out, work)
    cold, first = _step("reports", bids, out, work)
    rerun, second = _step("reports", bids, out, work)
    rendered_again = [p for p, t in second["results"].items() if first["results"].get(p) != t]
    pages = len(first["pages"]) - 1
    share = cold / participant
    lines = [
        "# Reports on the realistic preset (8 subjects x 2 runs, 2-mm MNI grid, 240 volumes)",
        "",
        f"{platform.node()}, {os.cpu_count()} cores, shared with other work (load "
        f"{os.getloadavg()[0]:.1f} at the end); MultiProc, 2 processes; each step one fresh "
        "process, seconds.",
        "",
        "| step | s |",
        "| --- | --- |",
        f"| participant level, cold, no reports | {participant:.1f} |",
        f"| group level, no reports | {group:.1f} |",
        f"| all reports, cold ({pages} pages + index, atlas node included) | {cold:.1f} |",
        f"| all reports, no change | {rerun:.1f} |",
        "",
        f"Reports cost {100 * share:.1f} % of the participant level's cold time (target "
        f"<= {100 * TARGET:.0f} %: {'met' if share <= TARGET else 'NOT met'}); the no-change "
        f"rerun rendered {len(rendered_again)} page(s).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    (HERE / "RESULTS-reports.md").write_text(text)
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
