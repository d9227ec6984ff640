"""run_workflow without a cluster: plugin arguments, scheduler requests, errors, local runs.

``build_workflow`` (a small glmflow-like graph: simulate -> fit -> contrast, writing files) is
shared with tests/test_cluster.py, which runs it on the project's SLURM and SGE clusters.
"""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from nipype import Node, Workflow
from nipype.interfaces.utility import Function

from glmflow.errors import GlmflowError
from glmflow.execution import (
    PLUGINS,
    ExecutionError,
    ExecutionOptions,
    FolderInUseError,
    hold_folder,
    nipype_plugin_args,
    parse_plugin_args,
    run_workflow,
    scheduler_args,
    validate_plugin_args,
)

TRUE_BETAS = [1.5, -2.0, 0.5]
FIT_MEM_GB, FIT_N_PROCS = 1.5, 2


# Node functions: Nipype ships their source to the job, so each imports what it uses. Each
# leaves a file in the ``runs`` directory so that tests can count how often a node ran (a
# directory, not a log file: Nipype hashes a file input by its mtime, a directory by name).
def simulate(seed, runs):
    """Y = X @ beta + noise for 7 voxels, as data.npy and design.npy."""
    import os

    import numpy as np

    open(os.path.join(runs, f"simulate-{os.urandom(6).hex()}"), "w").close()
    rng = np.random.default_rng(seed)
    design = np.column_stack([rng.standard_normal((40, 2)), np.ones(40)])
    data = design @ np.array([[1.5], [-2.0], [0.5]]) + 0.01 * rng.standard_normal((40, 7))
    np.save("design.npy", design)
    np.save("data.npy", data)
    return os.path.abspath("data.npy"), os.path.abspath("design.npy")


def fit(data, design, runs):
    """Least-squares betas (3 x 7) as betas.npy."""
    import os

    import numpy as np

    open(os.path.join(runs, f"fit-{os.urandom(6).hex()}"), "w").close()
    betas = np.linalg.lstsq(np.load(design), np.load(data), rcond=None)[0]
    np.save("betas.npy", betas)
    return os.path.abspath("betas.npy")


def contrast(betas, runs):
    """The first-minus-second effect per voxel as contrast.tsv."""
    import os

    import numpy as np

    open(os.path.join(runs, f"contrast-{os.urandom(6).hex()}"), "w").close()
    effect = np.load(betas)[0] - np.load(betas)[1]
    np.savetxt("contrast.tsv", effect, fmt="%.12f", header="effect", comments="")
    return os.path.abspath("contrast.tsv")


def explode(data, design, runs):
    """A node that fails the way a science bug would."""
    raise ValueError("synthetic failure")


def _node(function, inputs, outputs, name, **kwargs):
    interface = Function(input_names=inputs, output_names=outputs, function=function)
    return Node(interface, name=name, **kwargs)


def build_workflow(runs: Path, *, fail: bool = False, name: str = "toy_wf") -> Workflow:
    """simulate -> fit (mem_gb=1.5, n_procs=2) -> contrast; ``fail``: fit raises.

    Each node run leaves a file in the directory ``runs`` (made here), see :func:`runs_of`.
    """
    runs.mkdir(parents=True, exist_ok=True)
    sim = _node(simulate, ["seed", "runs"], ["data", "design"], "simulate")
    sim.inputs.seed = 11
    fitted = _node(
        explode if fail else fit,
        ["data", "design", "runs"],
        ["betas"],
        "fit",
        mem_gb=FIT_MEM_GB,
        n_procs=FIT_N_PROCS,
    )
    last = _node(contrast, ["betas", "runs"], ["out"], "contrast")
    for node in (sim, fitted, last):
        node.inputs.runs = str(runs)
    workflow = Workflow(name=name)
    workflow.connect(
        [
            (sim, fitted, [("data", "data"), ("design", "design")]),
            (fitted, last, [("betas", "betas")]),
        ]
    )
    return workflow


def runs_of(runs: Path) -> list[str]:
    """The names of the nodes that ran, once per run, sorted."""
    return sorted(path.name.split("-")[0] for path in runs.iterdir())


def outputs(work_dir: Path, name: str = "toy_wf") -> dict[str, bytes]:
    """The files the nodes wrote, by node/file name."""
    files = sorted((work_dir / name).glob("*/*.npy")) + sorted((work_dir / name).glob("*/*.tsv"))
    return {f"{path.parent.name}/{path.name}": path.read_bytes() for path in files}


# ---------------------------------------------------------------- parse / validate arguments
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"sbatch_args": "-p debug"}', {"sbatch_args": "-p debug"}),
        ('  {"qsub_args": "-q all.q", "max_jobs": 4}', {"qsub_args": "-q all.q", "max_jobs": 4}),
        ("", {}),
        (None, {}),
    ],
)
def test_parse_plugin_args_text(text, expected):
    assert parse_plugin_args(text) == expected


def test_parse_plugin_args_file(tmp_path):
    path = tmp_path / "args.json"
    path.write_text(json.dumps({"sbatch_args": "-p debug --time=1:00:00"}))
    assert parse_plugin_args(str(path)) == {"sbatch_args": "-p debug --time=1:00:00"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{"sbatch_args": }',
            r"^--plugin-args is not valid JSON \(Expecting value at line 1 column 17\); "
            r'write an object such as \{"sbatch_args": "-p debug"\}$',
        ),
        (
            '["-p", "debug"]',
            r'^--plugin-args must be a JSON object such as \{"sbatch_args": "-p debug"\}, '
            r"got a list$",
        ),
        (
            "no_such_args.json",
            r"^--plugin-args 'no_such_args.json' is neither a JSON object nor an existing file; "
            r"pass e\.g\. '\{\"sbatch_args\": \"-p debug\"\}' or the path of a JSON file$",
        ),
    ],
)
def test_parse_plugin_args_errors(text, message):
    with pytest.raises(ExecutionError, match=message):
        parse_plugin_args(text)


def test_parse_plugin_args_bad_file(tmp_path):
    path = tmp_path / "args.json"
    path.write_text("{'sbatch_args': '-p debug'}")
    message = (
        rf"^--plugin-args file {re.escape(str(path))} is not valid JSON \(Expecting property "
        r"name enclosed in double quotes at line 1 column 2\)"
    )
    with pytest.raises(ExecutionError, match=message):
        parse_plugin_args(str(path))


@pytest.mark.parametrize(
    ("plugin", "args", "message"),
    [
        ("Condor", {}, r"^Unknown plugin 'Condor'; choose one of Linear, MultiProc, SLURM, "),
        (
            "SGE",
            {"sbatch_args": "-p debug"},
            r"^plugin_args key 'sbatch_args' is not used by plugin 'SGE' \(it takes: max_jobs, "
            r"max_tries, parallel_env, qsub_args, retry_timeout, template\)$",
        ),
        ("Linear", {"n_procs": 2}, r"not used by plugin 'Linear' \(it takes: none\)$"),
        (
            "MultiProc",
            {"n_procs": "2"},
            r"^plugin_args 'n_procs' for plugin 'MultiProc' must be a int, got '2'$",
        ),
        ("SLURM", {"max_jobs": True}, r"^plugin_args 'max_jobs' .* must be a int, got True$"),
        (
            "SLURMGraph",
            {"sbatch_args": ["-p", "debug"]},
            r"'sbatch_args' for plugin 'SLURMGraph' must be a str, got \['-p', 'debug'\]$",
        ),
    ],
)
def test_validate_plugin_args_errors(plugin, args, message):
    with pytest.raises(ExecutionError, match=message):
        validate_plugin_args(plugin, args)


def test_execution_error_is_a_glmflow_error():
    assert issubclass(ExecutionError, GlmflowError)
    assert PLUGINS == ("Linear", "MultiProc", "SLURM", "SLURMGraph", "SGE", "SGEGraph")


# ------------------------------------------------------------------------ scheduler requests
@pytest.mark.parametrize(
    ("plugin", "mem_gb", "n_procs", "kwargs", "expected"),
    [
        ("SLURM", 1.5, 2, {}, "--mem=1536M --cpus-per-task=2"),
        ("SLURMGraph", 1.5, 2, {}, "--mem=1536M --cpus-per-task=2"),
        ("SLURM", 0.2, 1, {}, "--mem=205M --cpus-per-task=1"),
        ("SGE", 1.5, 2, {}, "-l mem_free=1536M -pe smp 2"),
        ("SGEGraph", 1.5, 2, {}, "-l mem_free=1536M -pe smp 2"),
        ("SGE", 1.5, 1, {}, "-l mem_free=1536M"),
        ("SGE", 1.5, 2, {"parallel_env": "shm"}, "-l mem_free=1536M -pe shm 2"),
        ("SGE", 1.5, 2, {"parallel_env": None}, "-l mem_free=1536M"),
    ],
)
def test_scheduler_args(plugin, mem_gb, n_procs, kwargs, expected):
    assert scheduler_args(plugin, mem_gb, n_procs, **kwargs) == expected


@pytest.mark.parametrize(
    ("plugin", "mem_gb", "n_procs", "message"),
    [
        ("MultiProc", 1.5, 2, r"^Plugin 'MultiProc' submits no batch jobs \(batch plugins: "),
        ("SLURM", 0, 1, r"^A node's mem_gb must be positive, got 0$"),
        ("SGE", 1.0, 0, r"^A node's n_procs must be an integer >= 1, got 0$"),
        ("SGE", 1.0, 1.5, r"^A node's n_procs must be an integer >= 1, got 1\.5$"),
    ],
)
def test_scheduler_args_errors(plugin, mem_gb, n_procs, message):
    with pytest.raises(ExecutionError, match=message):
        scheduler_args(plugin, mem_gb, n_procs)


def test_plugin_args_defaults(tmp_path):
    """Jobs get NIPYPE_NO_ET from the template, also below a template of the user's."""
    args = nipype_plugin_args(ExecutionOptions(plugin="SLURMGraph"))
    assert args == {
        "template": "#!/bin/bash\nexport NIPYPE_NO_ET=1\n",
        "sbatch_args": "",
        "dont_resubmit_completed_jobs": True,
    }
    template = tmp_path / "job.sh"
    template.write_text("#!/bin/bash\n#$ -l h_rt=1:00:00\n")
    args = nipype_plugin_args(
        ExecutionOptions(plugin="SGE", plugin_args={"template": str(template)}, n_procs=8)
    )
    assert args["template"] == "#!/bin/bash\n#$ -l h_rt=1:00:00\nexport NIPYPE_NO_ET=1\n"
    assert args["max_jobs"] == 8
    options = ExecutionOptions(plugin_args={"n_procs": 4}, n_procs=2, mem_gb=3.5)
    assert nipype_plugin_args(options) == {"n_procs": 2, "memory_gb": 3.5}


# ---------------------------------------------------------------------- run_workflow errors
@pytest.mark.parametrize(
    ("plugin", "command", "scheduler", "fix"),
    [
        ("SLURM", "sbatch", "SLURM", "run glmflow on a SLURM login node (or `module load slurm`)"),
        ("SLURMGraph", "sbatch", "SLURM", "run glmflow on a SLURM login node"),
        ("SGE", "qsub", "SGE", "run glmflow on an SGE submit host (or `module load sge`)"),
        ("SGEGraph", "qsub", "SGE", "run glmflow on an SGE submit host"),
    ],
)
def test_missing_scheduler_command(tmp_path, monkeypatch, plugin, command, scheduler, fix):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    message = (
        rf"^Plugin '{plugin}' needs the {scheduler} command '{command}', which is not on PATH; "
        rf"{re.escape(fix)}.*, or use --plugin MultiProc$"
    )
    with pytest.raises(ExecutionError, match=message):
        run_workflow(build_workflow(tmp_path / "runs"), plugin=plugin, work_dir=tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"plugin": "SLURM", "mem_gb": 8},
            r"^mem_gb=8 sets MultiProc's memory budget and means nothing to plugin 'SLURM' "
            r"\(batch jobs request each node's own mem_gb\); leave it out$",
        ),
        (
            {"plugin": "SGEGraph", "n_procs": 4},
            r"^n_procs=4 means nothing to plugin 'SGEGraph' \(MultiProc: processes; "
            r"SLURM / SGE: jobs queued at once\); leave it out$",
        ),
        (
            {"plugin": "Linear"},
            r"^Workflow 'toy_wf' has no work directory; pass work_dir= \(a directory the compute "
            r"nodes can read and write\) so that results are cached there$",
        ),
    ],
)
def test_run_workflow_option_errors(tmp_path, kwargs, message):
    with pytest.raises(ExecutionError, match=message):
        run_workflow(build_workflow(tmp_path / "runs"), **kwargs)


@pytest.mark.parametrize(
    ("n_procs", "mem_gb", "budget"),
    [(1, None, r"n_procs=1 and mem_gb=[\d.]+"), (None, 1.0, r"n_procs=\d+ and mem_gb=1")],
)
def test_multiproc_budget_too_small(tmp_path, n_procs, mem_gb, budget):
    message = (
        rf"^Node 'toy_wf\.fit' needs n_procs=2 and mem_gb=1\.5, more than MultiProc's {budget}; "
        r"raise n_procs / mem_gb \(glmflow --n-cpus / --mem-gb\) or use a cluster plugin$"
    )
    with pytest.raises(ExecutionError, match=message):
        run_workflow(
            build_workflow(tmp_path / "runs"),
            plugin="MultiProc",
            n_procs=n_procs,
            mem_gb=mem_gb,
            work_dir=tmp_path,
        )
    assert runs_of(tmp_path / "runs") == []


def _fake_commands(directory: Path, scripts: dict[str, str]) -> str:
    """Executables that stand in for a scheduler's client; returns a PATH that finds them."""
    directory.mkdir()
    for name, body in scripts.items():
        path = directory / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return f"{directory}{os.pathsep}{os.environ['PATH']}"


def test_rejected_request_names_nodes_and_scheduler_message(tmp_path, monkeypatch):
    """sbatch --test-only refuses fit's 1.5 GB before any job is submitted."""
    sbatch = (
        'case "$*" in *--mem=1536M*) '
        'echo "sbatch: error: Memory specification can not be satisfied" >&2; exit 1;; esac'
    )
    path = _fake_commands(tmp_path / "bin", {"sbatch": sbatch, "squeue": "exit 0"})
    monkeypatch.setenv("PATH", path)
    workflow = build_workflow(tmp_path / "runs")
    message = (
        r"^SLURM rejected the request '--mem=1536M --cpus-per-task=2' of node\(s\) toy_wf\.fit: "
        r"sbatch: error: Memory specification can not be satisfied; lower the nodes' mem_gb / "
        r"n_procs or choose a partition / queue that has them in plugin_args$"
    )
    with pytest.raises(ExecutionError, match=message):
        run_workflow(workflow, plugin="SLURMGraph", work_dir=tmp_path / "work")
    # the caller's workflow is left as it was
    assert workflow.get_node("fit").plugin_args == {}
    assert runs_of(tmp_path / "runs") == []


@pytest.mark.parametrize("plugin", ["SLURM", "SLURMGraph", "SGE"])
def test_a_scheduler_that_does_not_answer_is_one_line(tmp_path, monkeypatch, plugin):
    """Its failed queue command is retried, then said, not read as "lower the mem_gb"."""
    slurm_words = "slurm_load_jobs error: Unable to contact slurm controller"
    sge_words = "error: commlib error: got select error (Connection refused)"
    down, qdown = (f'echo "{words}" >&2; exit 1' for words in (slurm_words, sge_words))
    scripts = {"sbatch": "exit 0", "squeue": down, "qsub": "exit 0", "qstat": qdown}
    monkeypatch.setenv("PATH", _fake_commands(tmp_path / "bin", scripts))
    monkeypatch.setattr("glmflow.execution.scheduler.RETRY_DELAYS", (0.05, 0.1))
    scheduler, command, words = "SLURM", "'squeue -h'", slurm_words
    if plugin == "SGE":
        scheduler, command, words = "SGE", "'qstat -u'", sge_words
    message = (
        rf"^{scheduler} is unreachable: {command} "
        rf"failed 3 times over 0 s \({re.escape(words)}\); check the controller \(sinfo / "
        r"qstat -f\), then rerun `.+` to resume \(finished nodes are reused\)$"
    )
    with pytest.raises(ExecutionError, match=message):
        run_workflow(build_workflow(tmp_path / "runs"), plugin=plugin, work_dir=tmp_path / "w")
    assert runs_of(tmp_path / "runs") == []


def test_missing_parallel_environment_warns(tmp_path, monkeypatch):
    """Without the PE, n_procs cannot be requested: say so, then SGE's own refusal."""
    qsub = (
        'case "$*" in *mem_free=1536M*) echo "Unable to run job: error: no suitable queues" >&2; '
        "echo Exiting. >&2; exit 1;; esac; echo 'Your job 7 (\"true\") has been submitted'"
    )
    scripts = {"qsub": qsub, "qdel": "exit 0", "qstat": "exit 0", "qconf": "echo make; echo mpi"}
    monkeypatch.setenv("PATH", _fake_commands(tmp_path / "bin", scripts))
    warning = (
        r"^SGE parallel environment 'smp' not found \(available: make, mpi\): nodes "
        r'toy_wf\.fit request 1 slot instead of n_procs; set plugin_args \{"parallel_env": '
        r'"<name>"\} to request their CPUs$'
    )
    message = (
        r"^SGE rejected the request '-l mem_free=1536M' of node\(s\) toy_wf\.fit: Unable to run "
        r"job: error: no suitable queues; lower"
    )
    with pytest.warns(UserWarning, match=warning), pytest.raises(ExecutionError, match=message):
        run_workflow(build_workflow(tmp_path / "runs"), plugin="SGE", work_dir=tmp_path)


# ------------------------------------------------------------------------------ local runs
def test_linear_and_multiproc_give_the_same_files(tmp_path):
    results = {}
    for plugin in ("Linear", "MultiProc"):
        runs = tmp_path / f"{plugin}_runs"
        work_dir = tmp_path / plugin
        run_workflow(build_workflow(runs), plugin=plugin, work_dir=work_dir, poll_interval=0.2)
        results[plugin] = outputs(tmp_path / plugin)
        assert runs_of(runs) == ["contrast", "fit", "simulate"]
    assert sorted(results["Linear"]) == [
        "contrast/contrast.tsv",
        "fit/betas.npy",
        "simulate/data.npy",
        "simulate/design.npy",
    ]
    assert results["Linear"] == results["MultiProc"]
    betas = np.load(tmp_path / "Linear" / "toy_wf" / "fit" / "betas.npy")
    np.testing.assert_allclose(betas, np.repeat([TRUE_BETAS], 7, axis=0).T, atol=0.01)
    effect = np.loadtxt(tmp_path / "Linear" / "toy_wf" / "contrast" / "contrast.tsv", skiprows=1)
    np.testing.assert_allclose(effect, 3.5, atol=0.02)


def check_failure(error: ExecutionError, work_dir: Path) -> re.Match:
    """The one line for the failing fit node; group 1: its crash file, 2: other failures."""
    crash_dir = re.escape(str(work_dir / "toy_wf" / "crash"))
    message = (
        rf"^Node 'toy_wf\.fit' failed with ValueError: synthetic failure; "
        rf"crash file: ({crash_dir}/crash-[^ ]+-fit-[^ ]+\.txt)"
        rf"( \(\d+ more failed node\(s\), crash files in {crash_dir}\))?$"
    )
    match = re.match(message, str(error))
    assert match, str(error)
    assert Path(match[1]).read_text().startswith("Node: toy_wf.fit\n")
    return match


def test_failed_node_names_node_and_crash_file(tmp_path):
    with pytest.raises(ExecutionError) as info:
        run_workflow(
            build_workflow(tmp_path / "runs", fail=True),
            plugin="MultiProc",
            work_dir=tmp_path,
            poll_interval=0.2,
        )
    assert check_failure(info.value, tmp_path)[2] is None
    # the dependent contrast never ran
    assert runs_of(tmp_path / "runs") == ["simulate"]


# ------------------------------------------------------------------------------- options
@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"n_procs": 0}, "n_procs (--n-cpus) must be an integer >= 1. Got 0 instead."),
        ({"n_procs": -1}, "n_procs (--n-cpus) must be an integer >= 1. Got -1 instead."),
        ({"n_procs": 2.5}, "n_procs (--n-cpus) must be an integer >= 1. Got 2.5 instead."),
        ({"n_procs": True}, "n_procs (--n-cpus) must be an integer >= 1. Got True instead."),
        (
            {"mem_gb": 0.001},
            "mem_gb (--mem-gb) must be at least 0.2 GB, the memory Nipype reserves for one "
            "node. Got 0.001 instead.",
        ),
        (
            {"mem_gb": "4"},
            "mem_gb (--mem-gb) must be at least 0.2 GB, the memory Nipype reserves for one "
            "node. Got '4' instead.",
        ),
        (
            {"poll_interval": -1},
            "poll_interval (--poll-interval) must be positive seconds. Got -1 instead.",
        ),
        (
            {"poll_interval": float("inf")},
            "poll_interval (--poll-interval) must be positive seconds. Got inf instead.",
        ),
        ({"plugin": "Condor"}, "Unknown plugin 'Condor'; choose one of Linear, MultiProc, "),
    ],
)
def test_execution_options_are_checked_when_made(settings, message):
    with pytest.raises(ExecutionError) as info:
        ExecutionOptions(**settings)
    assert str(info.value).startswith(message)


def test_execution_options_settings_override_the_object(tmp_path, monkeypatch):
    base = ExecutionOptions(plugin="Linear", work_dir="rel")
    monkeypatch.chdir(tmp_path)
    assert ExecutionOptions().with_default_work_dir().work_dir == tmp_path / "work"
    options, rest = ExecutionOptions.split({"plugin": "MultiProc", "n_procs": 2, "tasks": ["a"]})
    assert (options.plugin, options.n_procs, rest) == ("MultiProc", 2, {"tasks": ["a"]})
    assert ExecutionOptions.from_settings(base, poll_interval=1.0).plugin == "Linear"
    assert base.work_dir.is_absolute() and base.work_dir.name == "rel"
    with pytest.raises(TypeError, match="^unknown execution setting"):
        ExecutionOptions.from_settings(base, plugn="Linear")


QUIET_DRIVER = """
import sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from test_execution import build_workflow
from glmflow import run_workflow
run_workflow(build_workflow(Path({runs!r})), plugin="Linear", work_dir={work!r}, verbose={verbose})
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_nipype_info_log_stays_off_stdout_unless_asked(tmp_path, verbose):
    """From Python (a fresh interpreter: Nipype's handler holds the stdout of its import)."""
    code = QUIET_DRIVER.format(
        tests=str(Path(__file__).parent), runs=str(tmp_path / "runs"), work=str(tmp_path),
        verbose=verbose,
    )  # fmt: skip
    env = {**os.environ, "NIPYPE_NO_ET": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert ("[Node] Finished" in proc.stdout) is verbose, proc.stdout[:500]
    assert runs_of(tmp_path / "runs") == ["contrast", "fit", "simulate"]


# --------------------------------------------------------------------------- folder locks
def _lock(folder: Path, **holder) -> Path:
    record = {"pid": os.getpid(), "host": socket.gethostname(), "since": "2026-12-01 09:00:00 UTC",
              "started": None, "command": "glmflow ds out participant"}  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".glmflow.lock").write_text(json.dumps({**record, **holder}))
    return folder / ".glmflow.lock"


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_held_folder_is_refused_with_its_holder(tmp_path):
    with hold_folder(tmp_path / "work", "work"):
        lock = json.loads((tmp_path / "work" / ".glmflow.lock").read_text())
        assert (lock["pid"], lock["host"]) == (os.getpid(), socket.gethostname())
        with pytest.raises(FolderInUseError) as info:
            with hold_folder(tmp_path / "work", "work"):
                pass
    expected = (
        rf"^Work folder {re.escape(str(tmp_path / 'work'))} is in use by another glmflow run: "
        rf"pid {os.getpid()} on {re.escape(socket.gethostname())} since "
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \w+ \(.+\); wait for it to finish or pass another -w "
        r"\(work_dir=\)$"
    )
    assert re.match(expected, str(info.value)), str(info.value)
    assert not (tmp_path / "work").exists()  # released, and the folder it made removed


def test_a_lock_of_another_host_names_the_file_to_delete(tmp_path):
    lock = _lock(tmp_path / "out", host="node07", pid=4242)
    with pytest.raises(FolderInUseError) as info:
        with hold_folder(tmp_path / "out", "output"):
            pass
    assert str(info.value) == (
        f"Output folder {tmp_path / 'out'} is in use by another glmflow run: pid 4242 on node07 "
        "since 2026-12-01 09:00:00 UTC (glmflow ds out participant); wait for it to finish or "
        f"choose another output folder (if that run is gone, delete {lock})"
    )


@pytest.mark.parametrize("holder", ["dead pid", "reused pid"])
def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path, holder):
    changes = {"pid": _dead_pid()} if holder == "dead pid" else {"started": "1"}
    _lock(tmp_path / "work", **changes)
    warning = (
        rf"^Work folder {re.escape(str(tmp_path / 'work'))}: taking over the lock of a glmflow "
        r"run that ended without releasing it \(pid \d+ on .+\)$"
    )
    with pytest.warns(UserWarning, match=warning), hold_folder(tmp_path / "work", "work"):
        lock = json.loads((tmp_path / "work" / ".glmflow.lock").read_text())
        assert lock["pid"] == os.getpid()
    assert not (tmp_path / "work" / ".glmflow.lock").exists()


def test_a_missing_folder_held_without_create_is_not_made(tmp_path):
    with hold_folder(tmp_path / "absent", "output", create=False):
        pass
    assert not (tmp_path / "absent").exists()


def test_a_folder_made_for_a_run_that_wrote_nothing_is_removed(tmp_path):
    with pytest.raises(RuntimeError), hold_folder(tmp_path / "out" / "glmflow", "output"):
        assert (tmp_path / "out" / "glmflow" / ".glmflow.lock").is_file()
        raise RuntimeError("the level failed")
    assert list(tmp_path.iterdir()) == []
    with hold_folder(tmp_path / "out" / "glmflow", "output") as out:
        (out / "map.nii.gz").write_bytes(b"")
    assert [p.name for p in (tmp_path / "out" / "glmflow").iterdir()] == ["map.nii.gz"]


def test_the_line_names_a_dead_job_before_the_dependent_that_crashed_first(tmp_path):
    """SGE releases a dependent's -hold_jid when qdel removes its parent: the dependent's
    crash (missing inputs) can be written before the watcher writes the death's; the one
    line still names the death, and counts the other."""
    from glmflow.execution.run import _failure

    dependent, death = tmp_path / "crash-1-step1-a.txt", tmp_path / "crash-2-step0-b.txt"
    dependent.write_text("Node: chain_wf.step1\nRuntimeError: Error populating the inputs\n")
    death.write_text("Node: chain_wf.step0\nJobDiedError: SGE job 7 ended without a result\n")
    os.utime(dependent, (1_000, 1_000))
    os.utime(death, (2_000, 2_000))
    both = {dependent, death}
    assert str(_failure(both)).startswith("Node 'chain_wf.step1' failed with RuntimeError")
    assert str(_failure(both, [death])) == (
        "Node 'chain_wf.step0' failed with JobDiedError: SGE job 7 ended without a result; "
        f"crash file: {death} (1 more failed node(s), crash files in {tmp_path})"
    )


def _blas_threads_here() -> list[int]:
    from threadpoolctl import threadpool_info

    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_multiproc_workers_share_the_cores_among_their_blas():
    from glmflow.execution.multiproc import FrozenGCMultiProc, blas_threads

    cores = os.cpu_count()
    assert blas_threads(2) == max(1, cores // 2) and blas_threads(cores * 4) == 1
    runner = FrozenGCMultiProc(plugin_args={"n_procs": 2})
    try:
        seen = runner.pool.submit(_blas_threads_here).result()
    finally:
        runner.pool.shutdown()
    assert seen and set(seen) == {blas_threads(2)}


def test_an_error_around_a_node_fails_it_instead_of_hanging_the_run():
    from concurrent.futures import Future

    from glmflow.execution.multiproc import FrozenGCMultiProc

    runner = FrozenGCMultiProc(plugin_args={"n_procs": 1})
    runner.pool.shutdown()
    lost = Future()
    lost.set_exception(OSError(28, "No space left on device"))
    runner._task_obj[7] = lost
    runner._async_callback(lost)  # Nipype's own callback raises here; the task never ended
    result = runner._taskresult[7]
    assert result["result"] is None and result["taskid"] == 7
    assert "OSError: [Errno 28] No space left on device" in "".join(result["traceback"])


def nap(seconds, after):
    import time

    time.sleep(seconds)
    return after + 1


def test_multiproc_driver_waits_for_its_workers_instead_of_polling(tmp_path, monkeypatch):
    """While nodes run, the driver sleeps until one ends (its callback wakes it): a handful
    of loop passes, not one every 2 ms (glmflow's poll: ~1,500 passes for these 3 s), and no
    pass waits out the safety timeout (made 120 s here)."""
    import time

    from glmflow.execution import LOCAL_POLL_SECONDS, multiproc

    passes = []
    send = multiproc.FrozenGCMultiProc._send_procs_to_workers

    def counted(self, *args, **kwargs):
        passes.append(time.monotonic())
        return send(self, *args, **kwargs)

    monkeypatch.setattr(multiproc.FrozenGCMultiProc, "_send_procs_to_workers", counted)
    monkeypatch.setattr(multiproc, "WAKE_SECONDS", 120.0)
    workflow = Workflow(name="naps_wf")
    previous = None
    for k in range(3):  # a chain: each node starts when the one before ends
        node = _node(nap, ["seconds", "after"], ["out"], f"nap{k}")
        node.inputs.seconds = 1.0
        if previous is None:
            node.inputs.after = 0
        else:
            workflow.connect(previous, "out", node, "after")
        previous = node
    started = time.monotonic()
    graph = run_workflow(
        workflow, plugin="MultiProc", work_dir=tmp_path, poll_interval=LOCAL_POLL_SECONDS
    )
    elapsed = time.monotonic() - started
    last = next(node for node in graph.nodes() if node.name == "nap2")
    assert last.result.outputs.out == 3
    assert 3 <= len(passes) <= 20, len(passes)
    assert elapsed < 60, elapsed  # a lost wake-up would wait out the 120 s
