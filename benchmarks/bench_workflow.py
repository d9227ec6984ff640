"""Whole-workflow speed: cold run, reruns after edits, and peak memory per node.

Everything is measured side by side in ONE invocation on the ``realistic`` synthetic preset
(2-mm MNI grid 97x115x97, 240 volumes, gzip float32), through the ``glmflow`` command as a
user runs it (imports and pre-flight checks included):

- one run: ``gzip -dc`` of its BOLD, glmflow's participant level on that run alone
  (Linear plugin, cold work directory), nilearn ``FirstLevelModel`` (ar1) on the same run
  with the same design and contrasts;
- the whole study cold, participant then group level (MultiProc, 2 processes), against
  the floor: the sum of its nodes' own run times (Nipype's ``runtime.duration`` of every
  node that ran) divided by the processes;
- both levels again after no change, after a contrast edit (one contrast added) and after
  a confound edit (one confound added), each from the previous cache, as % of cold;
- peak RSS of each heavy node type: the node of one run rerun alone in a fresh process
  from the inputs Nipype recorded, against the float32 size of the BOLD.

Usage: ``python benchmarks/bench_workflow.py [--data DIR] [--work DIR] [--n-procs 2]
[--no-one-run]`` (``--no-one-run``: skip the one-run and peak-RSS rows).
Prints a markdown report and writes it to ``benchmarks/RESULTS-workflow.md``. Generating the
realistic dataset (first use) takes a few minutes and about 3 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODEL = {
    "faces": {
        "tr": None,
        "excludes": [],
        "condition_identifier": "trial_type",
        "confound_regressors": ["trans_*", "rot_*", "non_steady_state_outlier*"],
        "modulators": ["rt"],
        "block_identifier": None,
        "design_contrasts": {
            "face-house": "face - house",
            "face-scrambled": "face - scrambled",
            "face-others": "face - 0.5*house - 0.5*scrambled",
        },
        "group_level_regressors": ["age"],
    }
}
HEAVY_NODES = ("mask_and_smooth", "fit_first_level", "compute_contrasts", "combine_runs")
ENV = {**os.environ, "NIPYPE_NO_ET": "1"}


def _timed(cmd: list[str], **kwargs) -> tuple[float, float]:
    """Wall seconds and peak RSS (GB) of a command run to completion in a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True, **kwargs)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) / 1024**2


def _model(path: Path, **changes) -> Path:
    data = json.loads(json.dumps(MODEL))
    data["faces"].update(changes)
    path.write_text(json.dumps(data, indent=2))
    return path


def _glmflow(
    bids: Path, out: Path, work: Path, model: Path, *extra: str, level: str = "participant"
) -> list[str]:
    return [
        sys.executable, "-m", "glmflow.cli.main", str(bids), str(out), level,
        "--model", str(model), "-w", str(work), *extra,
    ]  # fmt: skip


NODE_TIMES_CHILD = """
import json, sys
from pathlib import Path
from nipype.utils.filemanip import loadpkl
since, total, count = float(sys.argv[2]), 0.0, 0
for path in Path(sys.argv[1]).rglob("result_*.pklz"):
    if path.stat().st_mtime >= since:
        total += loadpkl(path).runtime.duration
        count += 1
print(json.dumps([total, count]))
"""


def _node_seconds(work: Path, since: float) -> tuple[float, int]:
    """Sum of the own run times of the nodes whose result was written after ``since``."""
    proc = subprocess.run(
        [sys.executable, "-c", NODE_TIMES_CHILD, str(work), str(since)],
        env=ENV, capture_output=True, text=True, check=True,
    )  # fmt: skip
    total, count = json.loads(proc.stdout.splitlines()[-1])
    return total, count


def _study(bids: Path, out: Path, work: Path, model: Path, procs: list[str]) -> float:
    """Wall seconds of both levels, participant then group, one command each."""
    first, _ = _timed(_glmflow(bids, out, work, model, *procs))
    second, _ = _timed(_glmflow(bids, out, work, model, *procs[:2], level="group"))
    return first + second


def _whole_study(bids: Path, root: Path, n_procs: int) -> tuple[list, list[str]]:
    """Cold, then no-change / contrast / confound edits of both levels, with the floor."""
    work, out = root / "work", root / "out"
    procs = ["--n-cpus", str(n_procs), "--smoothing-fwhm", "0"]
    start = time.time()
    cold = _study(bids, out, work, _model(root / "model.json"), procs)
    node_s, n_nodes = _node_seconds(work, start - 1)
    rerun = _study(bids, out, work, root / "model.json", procs)
    contrasts = {**MODEL["faces"]["design_contrasts"], "house-face": "house - face"}
    contrast = _study(bids, out, work, _model(root / "model.json", design_contrasts=contrasts),
                      procs)  # fmt: skip
    confounds = ["trans_*", "rot_*", "non_steady_state_outlier*", "csf"]
    confound_model = _model(
        root / "model.json", design_contrasts=contrasts, confound_regressors=confounds
    )
    confound = _study(bids, out, work, confound_model, procs)
    floor = node_s / n_procs
    rows = [
        (f"whole study cold: participant + group (MultiProc {n_procs})", cold, "100%"),
        (f"floor: {n_nodes} nodes' own run times / {n_procs} processes", floor,
         f"cold = {cold / floor:.2f}x the floor"),
        ("no-change rerun (both levels)", rerun, f"{100 * rerun / cold:.1f}% of cold"),
        ("contrast edit (both levels)", contrast, f"{100 * contrast / cold:.1f}% of cold"),
        ("confound edit (both levels)", confound, f"{100 * confound / cold:.1f}% of cold"),
    ]  # fmt: skip
    loads = [f"{os.getloadavg()[0]:.1f}"]
    return rows, loads


NILEARN_CHILD = """
import sys, json
import pandas as pd
from nilearn.glm.first_level import FirstLevelModel
bold, mask, design, contrasts = sys.argv[1:5]
design = pd.read_csv(design, sep="\\t")  # the design TSV is the design, as it is
model = FirstLevelModel(mask_img=mask, noise_model="ar1", signal_scaling=0, smoothing_fwhm=None)
model.fit(bold, design_matrices=[design])
for formula in json.loads(contrasts):
    model.compute_contrast(formula, output_type="all")
"""

NODE_CHILD = """
import sys, os, resource
os.environ["NIPYPE_NO_ET"] = "1"
from nipype.utils.filemanip import loadpkl
node = loadpkl(sys.argv[1])
inputs = loadpkl(sys.argv[2])
interface = node.interface.__class__(**{k: v for k, v in inputs.items()})
os.chdir(sys.argv[3])
interface.run(cwd=sys.argv[3])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _node_peak_gb(node_dir: Path, scratch: Path) -> float:
    """Peak RSS of one node rerun alone in a fresh process, from its recorded inputs."""
    scratch.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [
            sys.executable, "-c", NODE_CHILD, str(node_dir / "_node.pklz"),
            str(node_dir / "_inputs.pklz"), str(scratch),
        ],  # fmt: skip
        env=ENV,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"rerunning {node_dir.name} failed:\n{proc.stderr[-3000:]}")
    return int(proc.stdout.split()[-1]) / 1024**2


def _one_run(bids: Path, root: Path, model: Path) -> list:
    """One run side by side: gzip -dc, the glmflow command (Linear), nilearn."""
    prep = bids / "derivatives/fmriprep/sub-01/func"
    bold = prep / "sub-01_task-faces_run-1_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"
    mask = prep / "sub-01_task-faces_run-1_space-MNI152NLin2009cAsym_desc-brain_mask.nii.gz"
    gzip_s, _ = _timed(["sh", "-c", f"gzip -dc '{bold}' > /dev/null"])
    one_run, one_rss = _timed(
        _glmflow(bids, root / "out1", root / "work1", model, "--participant-label", "01",
                 "--run", "1", "--plugin", "Linear", "--smoothing-fwhm", "0")
    )  # fmt: skip
    design = root / "out1/glmflow/sub-01/func/sub-01_task-faces_run-1_design.tsv"
    formulas = [f for f in MODEL["faces"]["design_contrasts"].values()]
    formulas += ["face", "house", "scrambled"]  # glm-express's condition maps
    nilearn_s, nilearn_rss = _timed(
        [sys.executable, "-c", NILEARN_CHILD, str(bold), str(mask), str(design),
         json.dumps(formulas)]
    )  # fmt: skip
    return [
        ("one run: `gzip -dc` of the BOLD", gzip_s, "1.00x gzip"),
        ("one run: glmflow participant (Linear, cold, whole command)", one_run,
         f"{one_run / gzip_s:.2f}x gzip; peak RSS {one_rss:.2f} GB"),
        ("one run: nilearn FirstLevelModel ar1 + same 6 contrasts", nilearn_s,
         f"{nilearn_s / gzip_s:.2f}x gzip; peak RSS {nilearn_rss:.2f} GB"),
    ]  # fmt: skip


def _node_peaks(work: Path, root: Path, bold_gb: float) -> list:
    """Peak RSS per heavy node (one run's node, alone, fresh process)."""
    wf = work / "glmflow_wf" / "sub_01_task_faces_wf"
    node_rows = []
    for name in HEAVY_NODES:
        node_dir = next(wf.rglob(name), None)
        if node_dir is not None:
            peak = _node_peak_gb(node_dir, root / "scratch" / name)
            node_rows.append((name, peak, peak / bold_gb))
    return node_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/glmflow-bench/realistic"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/glmflow-bench/run"))
    parser.add_argument("--n-procs", type=int, default=2)
    parser.add_argument("--no-one-run", action="store_true", help="only the whole study")
    args = parser.parse_args()

    from glmflow.data import make_synthetic_dataset

    if not (args.data / "derivatives" / "truth" / "truth.json").is_file():
        print(f"generating the realistic dataset in {args.data} ...", flush=True)
        make_synthetic_dataset(args.data, preset="realistic", overwrite=args.data.exists())
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    bids, root = args.data, args.work
    import nibabel as nib

    bold = next((bids / "derivatives/fmriprep").rglob("*desc-preproc_bold.nii.gz"))
    shape = nib.load(bold).shape
    bold_gb = 4 * float(shape[0] * shape[1] * shape[2] * shape[3]) / 1024**3
    n_runs = sum(1 for _ in (bids / "derivatives/fmriprep").rglob("*desc-preproc_bold.nii.gz"))
    load_start = os.getloadavg()[0]
    rows = [] if args.no_one_run else _one_run(bids, root, _model(root / "model.json"))
    study, _ = _whole_study(bids, root, args.n_procs)
    rows += study
    node_rows = [] if args.no_one_run else _node_peaks(root / "work", root, bold_gb)
    report = [
        "# Workflow benchmark (benchmarks/bench_workflow.py)",
        "",
        f"Dataset: realistic preset, {shape[0]}x{shape[1]}x{shape[2]} voxels x {shape[3]} "
        f"volumes per run, {n_runs} runs; float32 BOLD {bold_gb:.2f} GB per run. No smoothing.",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; load average {load_start:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end. Wall times of whole commands (imports included).",
        "",
        "| case | wall s | relative |",
        "|---|---|---|",
        *[f"| {name} | {seconds:.1f} | {note} |" for name, seconds, note in rows],
        "",
        "| node (one run, alone) | peak RSS GB | / float32 BOLD |",
        "|---|---|---|",
        *[f"| {name} | {gb:.2f} | {ratio:.2f} |" for name, gb, ratio in node_rows],
        "",
        "Targets (issue 13): one run <= 1.5x gzip -dc; cold <= 1.3x the floor; no-change "
        "rerun < 2% of cold; contrast edit < 8%; confound edit < 25%; peak RSS per run node "
        "<= 1.0x the float32 BOLD.",
    ]
    text = "\n".join(report) + "\n"
    print(text)
    (HERE / "RESULTS-workflow.md").write_text(text)


if __name__ == "__main__":
    main()
