"""The whole study, side by side in ONE invocation: glmflow vs nilearn vs FitLins 0.11.0.

Issue 13's table and issue 9's benchmark, on the same generated data (``--preset
realistic``: 8 subjects x 2 runs, 97x115x97 x 200 volumes; ``tiny``: 3 subjects x 2 runs of
the small grid, 60 volumes, to check that everything runs). The model everywhere: SPM HRF
of face / house / scrambled, 8 confounds (``trans_*``, ``rot_*``, ``csf``, ``white_matter``),
cosine drift at 0.01 Hz, AR(1), one t contrast ``face - house``, runs combined per subject,
a one-sample group (FDR q < 0.05 and its cluster table where the tool makes one).

- one BOLD: ``gzip -dc`` and ``python -m isal.igzip -dc``;
- one run: nilearn ``FirstLevelModel`` (fwhm 5, on glmflow's design TSV) and ``glmflow ...
  participant`` (Linear, whole command);
- the study with nilearn: ``first_level_from_bids`` + one multi-run ``FirstLevelModel`` per
  subject (2 subjects at a time, joblib) + ``SecondLevelModel`` + FDR + ``get_clusters_table``;
- the study with glmflow (glmflow model file, fwhm 5): participant cold, group cold, a
  no-change rerun, one contrast added and a confound edit (each participant + group), and
  the sum of the nodes' own run times (Nipype's result files) divided by the cores; then the
  same study and edits as one invocation of both levels each (``participant group``);
- issue 9, the same model as a BIDS Stats Model run (glm) -> subject (meta) -> dataset (glm),
  no smoothing (BSM has no smoothing field): glmflow's BSM path and FitLins 0.11.0 (its own
  venv: ``--fitlins`` or ``GLMFLOW_FITLINS``; absent, its rows say so), cold and cached rerun.

Every row records the 1-minute load average before and after it (the machine is shared) and
the CPU seconds of its processes (``getrusage``: only processes their parents waited for, so
pool workers that are never reaped, as FitLins' forkserver workers may be, are missed).
Usage: ``python benchmarks/bench_study.py [--preset tiny|realistic] [--fitlins PATH] [--skip
...]``. Prints a markdown report and writes ``benchmarks/RESULTS-study.md`` (realistic) or
``WORK/RESULTS-study-tiny.md``.
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
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENV = {**os.environ, "NIPYPE_NO_ET": "1"}
SPACE = "MNI152NLin2009cAsym"
CONFOUNDS = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z", "csf", "white_matter"]
PRESETS = {
    "tiny": {"preset": "small", "n_subjects": 3, "n_runs": 2, "n_volumes": 60},
    "realistic": {"preset": "realistic", "n_subjects": 8, "n_runs": 2, "n_volumes": 200},
}
SECTIONS = ("read", "one-run", "nilearn", "glmflow", "edits", "bsm", "fitlins")
FWHM = 5.0


@dataclass
class Row:
    """One measured step: wall seconds, CPU seconds of its processes, load before / after."""

    name: str
    seconds: float | None
    load: tuple[float, float] | None = (0.0, 0.0)  # None: computed, not a command
    note: str = ""
    cpu: float | None = None


@dataclass
class Bench:
    rows: dict[str, Row] = field(default_factory=dict)

    def run(self, key: str, name: str, cmd: list[str], **kwargs) -> Row:
        """Run ``cmd`` to completion and record its wall time, or its failure."""
        before = os.getloadavg()[0]
        print(f"[{time.strftime('%H:%M:%S')}] {name} (load {before:.1f}) ...", flush=True)
        start, cpu = time.perf_counter(), _children_cpu()
        proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True, **kwargs)
        seconds, cpu = time.perf_counter() - start, _children_cpu() - cpu
        load = (before, os.getloadavg()[0])
        if proc.returncode != 0:  # said in the report; the other rows still run
            print(f"{name}: {' '.join(cmd)} failed:\n{proc.stderr[-4000:]}", flush=True)
            last = (proc.stderr.strip().splitlines() or ["no message"])[-1][:300]
            self.rows[key] = Row(name, None, load, f"failed (exit {proc.returncode}): {last}")
            return self.rows[key]
        row = Row(name, seconds, load, cpu=cpu)
        print(f"    {seconds:.1f} s, CPU {cpu:.1f} s", flush=True)
        self.rows[key] = row
        return row

    def skip(self, key: str, name: str, reason: str) -> None:
        print(f"{name}: skipped ({reason})", flush=True)
        self.rows[key] = Row(name, None, note=f"not run: {reason}")

    def seconds(self, *keys: str, cpu: bool = False) -> float | None:
        values = [
            (self.rows[k].cpu if cpu else self.rows[k].seconds) if k in self.rows else None
            for k in keys
        ]
        return None if any(v is None for v in values) else sum(values)


# ---------------------------------------------------------------- models


def glmflow_model(contrasts: dict[str, str], confounds: list[str]) -> dict:
    """The study's model as a glmflow model file (the packaged one, narrowed)."""
    model = json.loads((HERE.parent / "glmflow/data/models/faces_model.json").read_text())
    model["auto_contrasts"] = []
    model["contrasts"] = [
        {"name": n, "expressions": [f], "stat_type": "t", "weights": []}
        for n, f in contrasts.items()
    ]
    model["confounds"].update(columns=confounds, optional_columns=[], strategy=[])
    model["events"]["modulators"] = []
    model["design"]["high_pass"] = 0.01
    model["glm"]["smoothing_fwhm"] = FWHM
    model["group"].update(
        design="one-sample",
        group_column=None,
        covariates=[],
        contrasts=[],
        first_level_contrasts=[],
    )
    model["group"]["inference"].update(method="fdr", alpha=0.05)
    return model


def bsm_model() -> dict:
    """The same model as a BIDS Stats Model: run (glm) -> subject (meta) -> dataset (glm)."""
    conditions = [f"trial_type.{c}" for c in ("face", "house", "scrambled")]
    return {
        "Name": "study_bench",
        "BIDSModelVersion": "1.0.0",
        "Input": {"task": ["faces"], "space": SPACE},
        "Nodes": [
            {
                "Level": "Run",
                "Name": "run",
                "GroupBy": ["run", "subject"],
                "Transformations": {
                    "Transformer": "pybids-transforms-v1",
                    "Instructions": [
                        {"Name": "Factor", "Input": ["trial_type"]},
                        {"Name": "Convolve", "Input": conditions, "Model": "spm"},
                    ],
                },
                "Model": {
                    "X": [*conditions, *CONFOUNDS, 1],
                    "Type": "glm",
                    "Options": {"HighPassFilterCutoffHz": 0.01},
                },
                "Contrasts": [
                    {
                        "Name": "face_gt_house",
                        "ConditionList": conditions[:2],
                        "Weights": [1, -1],
                        "Test": "t",
                    }
                ],
            },
            {
                "Level": "Subject",
                "Name": "subject",
                "GroupBy": ["subject", "contrast"],
                "Model": {"X": [1], "Type": "meta"},
                "DummyContrasts": {"Test": "t"},
            },
            {
                "Level": "Dataset",
                "Name": "dataset",
                "GroupBy": ["contrast"],
                "Model": {"X": [1], "Type": "glm"},
                "DummyContrasts": {"Test": "t"},
            },
        ],
    }


def write_json(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    return path


# ---------------------------------------------------------------- commands and children


def glmflow_cmd(bids: Path, out: Path, work: Path, model: Path, level: str, *extra: str):
    """``level``: one level, or both ("participant group", one process)."""
    return [
        sys.executable, "-m", "glmflow.cli.main", str(bids), str(out), *level.split(),
        "--model", str(model), "-w", str(work), "-q", *extra,
    ]  # fmt: skip


NILEARN_RUN = """
import sys
import pandas as pd
from nilearn.glm.first_level import FirstLevelModel
bold, mask, design, fwhm = sys.argv[1:5]
design = pd.read_csv(design, sep="\\t")
model = FirstLevelModel(mask_img=mask, noise_model="ar1", signal_scaling=0,
                        smoothing_fwhm=float(fwhm))
model.fit(bold, design_matrices=[design])
model.compute_contrast("face - house", output_type="all")
"""

NILEARN_STUDY = """
import sys, warnings
import pandas as pd
from joblib import Parallel, delayed
from nilearn.glm import threshold_stats_img
from nilearn.glm.first_level import first_level_from_bids
from nilearn.glm.second_level import SecondLevelModel
from nilearn.reporting import get_clusters_table
warnings.simplefilter("ignore")
bids, space, fwhm, n_jobs, confounds = sys.argv[1:6]
confounds = confounds.split(",")
models, imgs, events, conf = first_level_from_bids(
    bids, "faces", space_label=space, img_filters=[("desc", "preproc")],
    derivatives_folder="derivatives/fmriprep", hrf_model="spm", drift_model="cosine",
    high_pass=0.01, noise_model="ar1", smoothing_fwhm=float(fwhm), minimize_memory=True)

def subject_effect(model, imgs, events, conf):
    events = [e[e["trial_type"] != "fixation"] for e in events]
    model.fit(imgs, events=events, confounds=[c[confounds] for c in conf])
    return model.compute_contrast("face - house", output_type="effect_size")

effects = Parallel(n_jobs=int(n_jobs))(
    delayed(subject_effect)(*args) for args in zip(models, imgs, events, conf))
design = pd.DataFrame({"intercept": [1.0] * len(effects)})
group = SecondLevelModel().fit(effects, design_matrix=design)
z = group.compute_contrast("intercept", output_type="z_score")
thresholded, threshold = threshold_stats_img(z, alpha=0.05, height_control="fdr",
                                             two_sided=True)
get_clusters_table(z, threshold, two_sided=True, min_distance=8.0)
"""


def summed_node_seconds(work: Path, since: float = 0.0) -> tuple[float, int]:
    """Sum of the ``runtime.duration`` Nipype recorded in each node's result file.

    Only result files written at or after ``since`` (a ``time.time()``) count, so that one
    work folder can hold several levels. Returns (seconds, number of nodes).
    """
    from nipype.utils.filemanip import loadpkl

    total, count = 0.0, 0
    for path in work.rglob("result_*.pklz"):
        if path.stat().st_mtime < since:
            continue
        result = loadpkl(path)
        runtimes = result.runtime if isinstance(result.runtime, list) else [result.runtime]
        for runtime in runtimes:
            duration = getattr(runtime, "duration", None)
            if duration is not None:
                total += float(duration)
                count += 1
    return total, count


def fitlins_cmd(fitlins: str, bids: Path, out: Path, work: Path, model: Path, n_procs: int):
    return [
        fitlins, str(bids), str(out), "dataset", "-d", str(bids / "derivatives" / "fmriprep"),
        "-m", str(model), "--space", SPACE, "--desc-label", "preproc", "-w", str(work),
        "--n-cpus", str(n_procs), "--estimator", "nilearn", "--drift-model", "cosine",
    ]  # fmt: skip


def find_fitlins(given: str | None) -> tuple[str | None, str]:
    """The FitLins executable and its version, or None and why not."""
    if not given:
        return None, "no FitLins: pass --fitlins PATH or set GLMFLOW_FITLINS"
    path = shutil.which(given) or given
    if not os.access(path, os.X_OK):
        return None, f"FitLins not found at {given}"
    proc = subprocess.run([path, "--version"], capture_output=True, text=True)
    words = (proc.stdout + proc.stderr).split()
    version = words[-1].lstrip("v") if words and not proc.returncode else "?"
    if version != "0.11.0":
        return None, f"{path} is FitLins {version}, not 0.11.0"
    return path, version


# ---------------------------------------------------------------- sections


def read_rows(bench: Bench, bold: Path) -> None:
    bench.run("gzip", "one BOLD: `gzip -dc`", ["sh", "-c", f"gzip -dc '{bold}' > /dev/null"])
    bench.run(
        "igzip",
        "one BOLD: `python -m isal.igzip -dc`",
        ["sh", "-c", f"'{sys.executable}' -m isal.igzip -dc '{bold}' > /dev/null"],
    )


def one_run_rows(bench: Bench, bids: Path, root: Path, model: Path) -> None:
    prep = bids / "derivatives/fmriprep/sub-01/func"
    stem = f"sub-01_task-faces_run-1_space-{SPACE}"
    out = root / "one-run-out"
    bench.run(
        "glmflow_run",
        "one run: `glmflow ... participant` (Linear, whole command)",
        glmflow_cmd(bids, out, root / "one-run-work", model, "participant",
                    "--participant-label", "01", "--run", "1", "--plugin", "Linear"),
    )  # fmt: skip
    design = out / "glmflow/sub-01/func/sub-01_task-faces_run-1_design.tsv"
    bench.run(
        "nilearn_run",
        "one run: nilearn `FirstLevelModel` (same design TSV, fwhm 5)",
        [sys.executable, "-c", NILEARN_RUN, str(prep / f"{stem}_desc-preproc_bold.nii.gz"),
         str(prep / f"{stem}_desc-brain_mask.nii.gz"), str(design), str(FWHM)],
    )  # fmt: skip


def nilearn_study(bench: Bench, bids: Path, n_procs: int) -> None:
    bench.run(
        "nilearn_study",
        f"study: nilearn `first_level_from_bids` + `SecondLevelModel` + FDR + clusters "
        f"({n_procs} subjects at a time)",
        [sys.executable, "-c", NILEARN_STUDY, str(bids), SPACE, str(FWHM), str(n_procs),
         ",".join(CONFOUNDS)],
    )  # fmt: skip


def glmflow_study(bench: Bench, bids: Path, root: Path, n_procs: int, edits: bool) -> dict:
    """Participant + group cold, the nodes' own time, then reruns from that cache."""
    model_path = root / "glmflow-model.json"
    contrasts = {"face-house": "face - house"}
    write_json(model_path, glmflow_model(contrasts, CONFOUNDS))
    out, work = root / "glmflow-out", root / "glmflow-work"
    procs = ["--n-cpus", str(n_procs)]
    nodes = {}
    for level in ("participant", "group"):
        since = time.time()  # result files written from now (ns mtimes): not the last command's
        bench.run(f"{level}_cold", f"glmflow {level} cold (MultiProc {n_procs})",
                  glmflow_cmd(bids, out, work, model_path, level, *procs))  # fmt: skip
        nodes[level] = summed_node_seconds(work, since)
    if not edits:
        return nodes

    def both(key: str, name: str) -> None:
        since = time.time()  # result files written from now (ns mtimes): not the last command's
        for level in ("participant", "group"):
            bench.run(f"{key}_{level}", f"{name}: {level}",
                      glmflow_cmd(bids, out, work, model_path, level, *procs))  # fmt: skip
        if key != "rerun":  # nothing ran in a rerun
            edit_nodes_row(bench, key, name, work, since, n_procs)

    startup_row(bench)
    both("rerun", "glmflow no-change rerun")
    contrasts["face-scrambled"] = "face - scrambled"
    write_json(model_path, glmflow_model(contrasts, CONFOUNDS))
    both("contrast", "glmflow one contrast added")
    write_json(model_path, glmflow_model(contrasts, [*CONFOUNDS, "global_signal"]))
    both("confound", "glmflow confound edit (+ global_signal)")
    return nodes


def glmflow_one_process(bench: Bench, bids: Path, root: Path, n_procs: int, edits: bool):
    """The same study and edits as :func:`glmflow_study`, each as one invocation of both
    levels (``participant group``), in folders of their own; (node seconds, count) of cold."""
    model_path = root / "glmflow-one-model.json"
    contrasts = {"face-house": "face - house"}
    write_json(model_path, glmflow_model(contrasts, CONFOUNDS))
    out, work = root / "glmflow-one-out", root / "glmflow-one-work"
    cmd = glmflow_cmd(bids, out, work, model_path, "participant group", "--n-cpus", str(n_procs))
    since = time.time()  # result files written from now (ns mtimes): not the last command's
    bench.run("one_cold", f"glmflow participant group cold, one process (MultiProc {n_procs})",
              cmd)  # fmt: skip
    cold = summed_node_seconds(work, since)
    if not edits:
        return cold
    bench.run("one_rerun", "one process: no-change rerun", cmd)
    for key, name, confounds in (
        ("one_contrast", "one process: one contrast added", CONFOUNDS),
        ("one_confound", "one process: confound edit (+ global_signal)",
         [*CONFOUNDS, "global_signal"]),
    ):  # fmt: skip
        if key == "one_contrast":
            contrasts["face-scrambled"] = "face - scrambled"
        write_json(model_path, glmflow_model(contrasts, confounds))
        since = time.time()  # result files written from now (ns mtimes): not the last command's
        bench.run(key, name, cmd)
        edit_nodes_row(bench, key, name, work, since, n_procs)
    return cold


def edit_nodes_row(bench: Bench, key: str, name: str, work: Path, since: float, n_procs: int):
    """The row ``<key>_nodes``: the own run times of the nodes an edit ran, per core."""
    seconds, count = summed_node_seconds(work, since)
    bench.rows[f"{key}_nodes"] = Row(
        f"{name}: its {count} nodes' own run times / {n_procs} cores", seconds / n_procs,
        load=None,
    )  # fmt: skip


def glmflow_rows(bench: Bench, bids: Path, root: Path, n_procs: int, edits: bool) -> dict:
    """Each level in its own process, then both in one: the nodes' times of each cold."""
    nodes = glmflow_study(bench, bids, root, n_procs, edits)
    nodes[ONE_PROCESS] = glmflow_one_process(bench, bids, root, n_procs, edits)
    return nodes


#: what a level process imports before its first node (the CLI, the planning, the graph,
#: the report pages, nilearn through them)
STARTUP = (
    "import glmflow.cli.main, glmflow.runners.participant, glmflow.runners.reports, "
    "glmflow.workflows.base, glmflow.execution.run, bids"
)


def startup_row(bench: Bench) -> None:
    """One level's fixed start-up: a fresh interpreter importing what a level needs."""
    bench.run("startup", "one level's start-up: interpreter + imports (no work)",
              [sys.executable, "-c", STARTUP])  # fmt: skip


def bsm_rows(bench: Bench, bids: Path, root: Path, n_procs: int) -> None:
    model = write_json(root / "bsm" / "study_smdl.json", bsm_model())
    out, work = root / "bsm-out", root / "bsm-work"
    for key, name in (("bsm_cold", "cold"), ("bsm_rerun", "cached rerun")):
        bench.run(
            key,
            f"BSM run -> subject -> dataset: glmflow {name} (MultiProc {n_procs})",
            glmflow_cmd(bids, out, work, model, "participant", "--n-cpus", str(n_procs)),
        )


def fitlins_rows(bench: Bench, bids: Path, root: Path, fitlins: str | None, reason: str,
                 n_procs: int) -> None:  # fmt: skip
    names = {"fitlins_cold": "cold", "fitlins_rerun": "cached rerun"}
    if fitlins is None:
        for key, name in names.items():
            bench.skip(key, f"BSM run -> subject -> dataset: FitLins 0.11.0 {name}", reason)
        return
    model = write_json(root / "bsm" / "study_smdl.json", bsm_model())
    out, work = root / "fitlins-out", root / "fitlins-work"
    for key, name in names.items():
        bench.run(
            key,
            f"BSM run -> subject -> dataset: FitLins 0.11.0 {name} (--n-cpus {n_procs})",
            fitlins_cmd(fitlins, bids, out, work, model, n_procs),
        )


# ---------------------------------------------------------------- report


def _children_cpu() -> float:
    """User + system seconds of the finished child processes (and those they waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _ratio(num: float | None, den: float | None) -> float | None:
    return None if num is None or den is None or den == 0 else num / den


COLD = ("participant_cold", "group_cold")
ONE = ("one_cold",)
ONE_PROCESS = "participant group (one process)"  # its key in the nodes' times
# (what, numerator rows, denominator rows, target, bound, shown as %, bound is a minimum)
RATIOS = (
    ("study cold: FitLins cold / glmflow participant + group cold",
     ("fitlins_cold",), COLD, ">= 10x", 10, False, True),
    ("study cold: nilearn study / glmflow participant + group cold",
     ("nilearn_study",), COLD, ">= 6x", 6, False, True),
    ("glmflow cold / (sum of its nodes' own times / cores)", COLD, ("nodes",), "<= 1.3x", 1.3,
     False, False),
    ("no-change rerun (participant + group) / cold", ("rerun_participant", "rerun_group"),
     COLD, "< 2%", 0.02, True, False),
    ("one contrast added (participant + group) / cold",
     ("contrast_participant", "contrast_group"), COLD, "< 8%", 0.08, True, False),
    ("confound edit (participant + group) / cold",
     ("confound_participant", "confound_group"), COLD, "< 25%", 0.25, True, False),
    ("the floor of a contrast edit: (its nodes' own times / cores + 2 level start-ups) / cold",
     ("contrast_nodes", "startup", "startup"), COLD, "", None, True, False),
    ("the floor of a confound edit: (its nodes' own times / cores + 2 level start-ups) / cold",
     ("confound_nodes", "startup", "startup"), COLD, "", None, True, False),
    ("study cold, one process: FitLins cold / glmflow participant group cold",
     ("fitlins_cold",), ONE, ">= 10x", 10, False, True),
    ("study cold, one process: nilearn study / glmflow participant group cold",
     ("nilearn_study",), ONE, ">= 6x", 6, False, True),
    ("one process: cold / (sum of its nodes' own times / cores)", ONE, ("nodes_one",),
     "<= 1.3x", 1.3, False, False),
    ("one process: no-change rerun / cold", ("one_rerun",), ONE, "< 2%", 0.02, True, False),
    ("one process: one contrast added / cold", ("one_contrast",), ONE, "< 8%", 0.08, True,
     False),
    ("one process: confound edit / cold", ("one_confound",), ONE, "< 25%", 0.25, True, False),
    ("the floor of a contrast edit in one process: (its nodes' own times / cores + 1 start-up)"
     " / cold", ("one_contrast_nodes", "startup"), ONE, "", None, True, False),
    ("the floor of a confound edit in one process: (its nodes' own times / cores + 1 start-up)"
     " / cold", ("one_confound_nodes", "startup"), ONE, "", None, True, False),
    ("BSM cold: FitLins / glmflow", ("fitlins_cold",), ("bsm_cold",), ">= 5x", 5, False, True),
    ("BSM cached rerun / cold, glmflow", ("bsm_rerun",), ("bsm_cold",), "<= 3%", 0.03, True,
     False),
    ("BSM cached rerun / cold, FitLins (for reference)", ("fitlins_rerun",), ("fitlins_cold",),
     "", None, True, False),
    ("one run: glmflow whole command / `gzip -dc`", ("glmflow_run",), ("gzip",), "", None,
     False, False),
    ("one run: nilearn / glmflow whole command", ("nilearn_run",), ("glmflow_run",), "", None,
     False, False),
)  # fmt: skip


def ratios(bench: Bench, nodes: dict, n_procs: int) -> list[tuple]:
    """(what, measured, target, met, measured in CPU s) for every target of issues 13 and 9."""
    apart = [seconds for level, (seconds, _) in nodes.items() if level != ONE_PROCESS]
    if apart:  # the floor: the nodes' own run times shared among the cores
        bench.rows["nodes"] = Row("sum of node times / cores", sum(apart) / n_procs)
    if ONE_PROCESS in nodes:
        bench.rows["nodes_one"] = Row("the same, one process", nodes[ONE_PROCESS][0] / n_procs)
    table = []
    for what, num, den, target, bound, percent, minimum in RATIOS:
        value = _ratio(bench.seconds(*num), bench.seconds(*den))
        cpu = _ratio(bench.seconds(*num, cpu=True), bench.seconds(*den, cpu=True))
        shown_cpu = "" if cpu is None else (f"{100 * cpu:.1f}%" if percent else f"{cpu:.2f}x")
        if value is None:
            table.append((what, "not measured", target, None, shown_cpu))
            continue
        shown = f"{100 * value:.1f}%" if percent else f"{value:.2f}x"
        met = None if bound is None else (value >= bound if minimum else value <= bound)
        table.append((what, shown, target, met, shown_cpu))
    bench.rows.pop("nodes", None)
    bench.rows.pop("nodes_one", None)
    return table


def report(bench: Bench, nodes: dict, meta: dict, n_procs: int) -> str:
    lines = [
        "# The whole study (benchmarks/bench_study.py)",
        "",
        f"Dataset: {meta['dataset']}. Machine: {platform.machine()}, {os.cpu_count()} cores "
        f"shared with other work, Python {platform.python_version()}; {meta['versions']}. "
        f"Wall times of whole commands (interpreter start and imports included), one "
        f"invocation, started {meta['start']}, {meta['minutes']:.0f} min in all.",
        "",
        "| step | wall s | CPU s | load 1-min before / after | note |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in bench.rows.values():
        wall = "—" if row.seconds is None else f"{row.seconds:.1f}"
        cpu = "" if row.cpu is None else f"{row.cpu:.1f}"
        shown = row.seconds is not None and row.load is not None
        load = f"{row.load[0]:.1f} / {row.load[1]:.1f}" if shown else ""
        lines.append(f"| {row.name} | {wall} | {cpu} | {load} | {row.note} |")
    for level, (seconds, count) in nodes.items():
        lines.append(
            f"| glmflow {level} cold: sum of its {count} nodes' own run times "
            f"(Nipype result files) | {seconds:.1f} | | | / {n_procs} cores = "
            f"{seconds / n_procs:.1f} s |"
        )
    lines += [
        "",
        "| ratio | wall | target | met (wall) | same ratio of CPU s |",
        "| --- | --- | --- | --- | --- |",
    ]
    for what, value, target, met, cpu in ratios(bench, nodes, n_procs):
        mark = "" if met is None else ("yes" if met else "**no**")
        lines.append(f"| {what} | {value} | {target} | {mark} | {cpu} |")
    for note in meta["notes"]:
        lines += ["", note]
    return "\n".join(lines) + "\n"


NOTES = [
    "The glmflow rows fit the glmflow model file (fwhm 5 mm) with its cluster table; the "
    "BSM rows (glmflow's BSM path and FitLins) fit the same design unsmoothed, since a BIDS "
    "Stats Model has no smoothing field and glmflow's BSM path refuses `--smoothing-fwhm`, "
    "so the FitLins / glmflow study ratio compares FitLins without smoothing to glmflow with it.",
    "nilearn: `first_level_from_bids` (its own mask from each run's mean, as a nilearn user "
    "gets), fixation rows dropped, the same 8 confound columns; one `FirstLevelModel` per "
    "subject over both runs, two subjects at a time (joblib), `SecondLevelModel` one-sample, "
    "`threshold_stats_img` FDR and `get_clusters_table`.",
    "Edits are made to the model file in place and run from the cold cache, in order: "
    "no change, the contrast `face - scrambled` added, the confound `global_signal` added.",
    "The one-process rows run the same study and edits as one invocation of both levels each "
    "(`glmflow BIDS OUT participant group`), in output and work folders of their own; their "
    "floors count one start-up, not two.",
]


def versions(fitlins_version: str) -> str:
    import nilearn
    import nipype

    import glmflow

    return (f"glmflow {glmflow.__version__}, nilearn {nilearn.__version__}, nipype "
            f"{nipype.__version__}, FitLins {fitlins_version}")  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=list(PRESETS), default="realistic")
    parser.add_argument("--data", type=Path, help="dataset (default: /tmp/bench-study/PRESET)")
    parser.add_argument("--work", type=Path, help="scratch (default: /tmp/bench-study/run-PRESET)")
    parser.add_argument("--n-procs", type=int, default=2)
    parser.add_argument(
        "--fitlins",
        default=os.environ.get("GLMFLOW_FITLINS"),
        help="FitLins 0.11.0 executable in its own venv (default: $GLMFLOW_FITLINS)",
    )
    parser.add_argument(
        "--skip", nargs="+", choices=SECTIONS, default=[], help="sections to leave out"
    )
    parser.add_argument("--results", type=Path, help="report file (default: see above)")
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        metavar="JSON",
        help="run nothing: one report from the rows of earlier invocations (their "
        "RESULTS-*.json; a measured row wins over a row that was not run)",
    )
    return parser.parse_args(argv)


def save_rows(path: Path, bench: Bench, nodes: dict, meta: dict) -> None:
    rows = {key: asdict(row) for key, row in bench.rows.items()}
    path.write_text(json.dumps({"rows": rows, "nodes": nodes, "meta": meta}, indent=1))


def merge(paths: list[Path], results: Path, n_procs: int) -> None:
    """One report from the saved rows of several invocations (said in the report)."""
    bench, nodes, metas = Bench(), {}, []
    for path in paths:
        saved = json.loads(path.read_text())
        metas.append(saved["meta"])
        nodes.update({k: tuple(v) for k, v in saved["nodes"].items()})
        for key, row in saved["rows"].items():
            if row["seconds"] is not None or key not in bench.rows:
                row["load"] = tuple(row["load"])
                bench.rows[key] = Row(**row)
    meta = dict(metas[0])
    meta["start"] = " and ".join(m["start"] for m in metas) + " (invocations merged)"
    meta["minutes"] = max(m.get("minutes", 0.0) for m in metas)
    meta["versions"] = max((m["versions"] for m in metas), key=lambda v: "absent" not in v)
    meta["notes"] = [
        *meta["notes"],
        f"Rows merged from {len(metas)} invocations of this script (started "
        f"{', '.join(m['start'] for m in metas)}); invocations that ran at the same time "
        "slowed each other down, as the load columns show.",
    ]
    results.write_text(report(bench, nodes, meta, n_procs))
    print(results.read_text())


def dataset(path: Path, preset: str) -> Path:
    from glmflow.data import make_synthetic_dataset

    if not (path / "derivatives" / "truth" / "truth.json").is_file():
        print(f"generating the {preset} dataset in {path} ...", flush=True)
        make_synthetic_dataset(path, **PRESETS[preset], overwrite=path.exists())
    return path


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.merge:
        merge(args.merge, args.results or HERE / "RESULTS-study.md", args.n_procs)
        return
    started, t0 = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), time.perf_counter()
    bids = dataset(args.data or Path(f"/tmp/bench-study/{args.preset}"), args.preset)
    root = args.work or Path(f"/tmp/bench-study/run-{args.preset}")
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    results = args.results or (
        HERE / "RESULTS-study.md" if args.preset == "realistic" else root / "RESULTS-study-tiny.md"
    )
    fitlins, fitlins_version = find_fitlins(args.fitlins)
    func = bids / "derivatives/fmriprep/sub-01/func"
    bold = func / f"sub-01_task-faces_run-1_space-{SPACE}_desc-preproc_bold.nii.gz"
    one_model = root / "one-run-model.json"
    write_json(one_model, glmflow_model({"face-house": "face - house"}, CONFOUNDS))
    bench, nodes = Bench(), {}
    sections = {  # the slowest last: a partial report is written after each section
        "read": lambda: read_rows(bench, bold),
        "one-run": lambda: one_run_rows(bench, bids, root, one_model),
        "glmflow": lambda: nodes.update(
            glmflow_rows(bench, bids, root, args.n_procs, "edits" not in args.skip)
        ),
        "bsm": lambda: bsm_rows(bench, bids, root, args.n_procs),
        "nilearn": lambda: nilearn_study(bench, bids, args.n_procs),
        "fitlins": lambda: fitlins_rows(bench, bids, root, fitlins, fitlins_version, args.n_procs),
    }
    meta = {
        "dataset": dataset_line(bids, bold, args.preset),
        "versions": versions(fitlins_version if fitlins else "absent"),
        "start": started,
        "notes": NOTES,
    }
    for name, section in sections.items():
        if name in args.skip:
            continue
        section()
        meta["minutes"] = (time.perf_counter() - t0) / 60
        results.write_text(report(bench, nodes, meta, args.n_procs))
        save_rows(results.with_suffix(".json"), bench, nodes, meta)
    print(results.read_text())


def dataset_line(bids: Path, bold: Path, preset: str) -> str:
    import nibabel as nib

    shape = nib.load(bold).shape
    n_runs = sum(1 for _ in (bids / "derivatives/fmriprep").rglob("*desc-preproc_bold.nii.gz"))
    grid = "x".join(map(str, shape[:3]))
    return f"preset `{preset}`, {n_runs} runs of {grid} voxels x {shape[3]} volumes"


if __name__ == "__main__":
    main()
