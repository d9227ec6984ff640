"""Run a glmflow graph locally (Linear, MultiProc) or on a SLURM / SGE cluster.

:func:`run_workflow` is the one place where Nipype's execution is configured: it turns each
node's ``mem_gb`` / ``n_procs`` into the scheduler's request, checks the request with the
scheduler before anything runs, waits for the *Graph* plugins (which return right after
submitting), and turns every failure into one line naming the node and its crash file.
"""

from __future__ import annotations

import copy
import gc
import getpass
import json
import logging
import math
import os
import re
import shlex
import shutil
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

from nipype.pipeline.plugins import MultiProcPlugin

from glmflow.errors import GlmflowError

# Nipype asks the internet for its latest version at import time unless this is set; on
# compute nodes without internet that is a delay per job. Set before any Nipype import here;
# jobs get it through the batch-script template too.
os.environ.setdefault("NIPYPE_NO_ET", "1")

LOGGER = logging.getLogger(__name__)

PLUGINS = ("Linear", "MultiProc", "SLURM", "SLURMGraph", "SGE", "SGEGraph")
BATCH_PLUGINS = ("SLURM", "SLURMGraph", "SGE", "SGEGraph")
# the SGE parallel environment that reserves N slots on one host ("-pe smp N")
DEFAULT_PARALLEL_ENV = "smp"

# plugin_args each plugin takes, with their JSON types ("parallel_env" is glmflow's own)
_ARG_TYPES: dict[str, tuple[type, ...]] = {
    "n_procs": (int,),
    "memory_gb": (int, float),
    "raise_insufficient": (bool,),
    "maxtasksperchild": (int,),
    "max_jobs": (int,),
    "sbatch_args": (str,),
    "qsub_args": (str,),
    "template": (str,),
    "retry_timeout": (int, float),
    "max_tries": (int,),
    "dont_resubmit_completed_jobs": (bool,),
    "parallel_env": (str,),
}
_PLUGIN_KEYS = {
    "Linear": (),
    "MultiProc": ("n_procs", "memory_gb", "raise_insufficient", "maxtasksperchild"),
    "SLURM": ("sbatch_args", "template", "retry_timeout", "max_tries", "max_jobs"),
    "SLURMGraph": ("sbatch_args", "template", "dont_resubmit_completed_jobs"),
    "SGE": ("qsub_args", "template", "retry_timeout", "max_tries", "max_jobs", "parallel_env"),
    "SGEGraph": ("qsub_args", "template", "dont_resubmit_completed_jobs", "parallel_env"),
}
# commands a plugin cannot work without (submit, then watch the queue)
_COMMANDS = {"SLURM": ("sbatch", "squeue"), "SGE": ("qsub", "qstat")}
_FIX = {
    "SLURM": "run glmflow on a SLURM login node (or `module load slurm`)",
    "SGE": "run glmflow on an SGE submit host (or `module load sge`)",
}
# batch-script headers; NIPYPE_NO_ET is exported even when the scheduler does not pass the
# submitting environment on (sbatch --export=NONE, qsub without -V)
_ENV_LINE = "export NIPYPE_NO_ET=1"
_TEMPLATES = {
    "SLURM": f"#!/bin/bash\n{_ENV_LINE}\n",
    "SGE": f"#!/bin/bash\n#$ -V\n#$ -S /bin/bash\n{_ENV_LINE}\n",
}
# a traceback line that names an exception ("ValueError: ...")
_EXCEPTION_LINE = re.compile(r"^\s*((?:\w+\.)*\w*(?:Error|Exception|Exit)\b:?.*)$")


class ExecutionError(GlmflowError):
    """The workflow cannot be run with the chosen plugin, or one of its nodes failed."""


def _scheduler(plugin: str) -> str:
    return "SLURM" if plugin.startswith("SLURM") else "SGE"


def _user() -> str:
    return os.environ.get("LOGNAME") or getpass.getuser()


def parse_plugin_args(text: str | None) -> dict[str, Any]:
    """Read ``--plugin-args``: a JSON object, or the path of a file that holds one.

    Parameters
    ----------
    text : str or None
        ``'{"sbatch_args": "-p debug"}'`` or ``path/to/plugin_args.json``; None or "" gives {}.

    Returns
    -------
    dict
        The parsed arguments (checked against a plugin by :func:`validate_plugin_args`).
    """
    if text is None or not text.strip():
        return {}
    source = "--plugin-args"
    if text.lstrip()[0] not in "{[":
        path = Path(text).expanduser()
        if not path.is_file():
            raise ExecutionError(
                f"--plugin-args {text!r} is neither a JSON object nor an existing file; "
                """pass e.g. '{"sbatch_args": "-p debug"}' or the path of a JSON file"""
            )
        source, text = f"--plugin-args file {path}", path.read_text()
    try:
        args = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExecutionError(
            f"{source} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            """write an object such as {"sbatch_args": "-p debug"}"""
        ) from None
    if not isinstance(args, dict):
        raise ExecutionError(
            f"{source} must be a JSON object such as "
            f"""{{"sbatch_args": "-p debug"}}, got a {type(args).__name__}"""
        )
    return args


def validate_plugin_args(plugin: str, plugin_args: dict[str, Any] | None) -> dict[str, Any]:
    """Check the plugin name and that every argument is one the plugin takes, of its type.

    Returns a copy of ``plugin_args`` ({} for None).
    """
    if plugin not in PLUGINS:
        raise ExecutionError(f"Unknown plugin {plugin!r}; choose one of {', '.join(PLUGINS)}")
    args = dict(plugin_args or {})
    allowed = _PLUGIN_KEYS[plugin]
    for key, value in args.items():
        if key not in allowed:
            takes = ", ".join(sorted(allowed)) or "none"
            raise ExecutionError(
                f"plugin_args key {key!r} is not used by plugin {plugin!r} (it takes: {takes})"
            )
        types = _ARG_TYPES[key]
        # bool is an int in Python, but true is no job count
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            names = " or ".join(t.__name__ for t in types)
            raise ExecutionError(
                f"plugin_args {key!r} for plugin {plugin!r} must be a {names}, got {value!r}"
            )
    return args


def scheduler_args(
    plugin: str, mem_gb: float, n_procs: int, *, parallel_env: str | None = DEFAULT_PARALLEL_ENV
) -> str:
    """The scheduler request of a node that needs ``mem_gb`` GB and ``n_procs`` CPUs.

    SLURM: ``--mem=<MB>M --cpus-per-task=N``. SGE: ``-l mem_free=<MB>M`` (the request for
    free memory that SGE schedules against; not ``h_vmem``, a hard limit on *virtual* memory
    that kills Python processes whose virtual size far exceeds what they use) and, for N > 1,
    ``-pe <parallel_env> N``, which needs a parallel environment; with ``parallel_env=None``
    no CPUs are requested (the caller warns).

    >>> scheduler_args("SLURM", 1.5, 2)
    '--mem=1536M --cpus-per-task=2'
    >>> scheduler_args("SGEGraph", 1.5, 2)
    '-l mem_free=1536M -pe smp 2'
    """
    if plugin not in BATCH_PLUGINS:
        raise ExecutionError(
            f"Plugin {plugin!r} submits no batch jobs (batch plugins: {', '.join(BATCH_PLUGINS)})"
        )
    if not mem_gb > 0:
        raise ExecutionError(f"A node's mem_gb must be positive, got {mem_gb!r}")
    if isinstance(n_procs, bool) or not isinstance(n_procs, int) or n_procs < 1:
        raise ExecutionError(f"A node's n_procs must be an integer >= 1, got {n_procs!r}")
    mem_mb = math.ceil(mem_gb * 1024)
    if _scheduler(plugin) == "SLURM":
        return f"--mem={mem_mb}M --cpus-per-task={n_procs}"
    args = f"-l mem_free={mem_mb}M"
    if n_procs > 1 and parallel_env:
        args += f" -pe {parallel_env} {n_procs}"
    return args


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def _message(proc: subprocess.CompletedProcess) -> str:
    """The scheduler's own words on one line."""
    lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines()]
    return (
        "; ".join(ln for ln in lines if ln and ln != "Exiting.") or f"exit code {proc.returncode}"
    )


def _check_commands(plugin: str) -> None:
    scheduler = _scheduler(plugin)
    for command in _COMMANDS[scheduler]:
        if shutil.which(command) is None:
            raise ExecutionError(
                f"Plugin {plugin!r} needs the {scheduler} command {command!r}, which is not on "
                f"PATH; {_FIX[scheduler]}, or use --plugin MultiProc"
            )


def _parallel_envs() -> set[str] | None:
    """SGE's parallel environments, or None when qconf cannot tell."""
    if shutil.which("qconf") is None:
        return None
    proc = _run(["qconf", "-spl"])
    return set(proc.stdout.split()) if proc.returncode == 0 else None


def _iter_nodes(workflow):
    """(full name, node) of every node, nested workflows included."""
    for name in workflow.list_node_names():
        yield f"{workflow.name}.{name}", workflow.get_node(name)


def _request_resources(workflow, plugin: str, args: dict[str, Any]) -> dict[str, list[str]]:
    """Put each node's request into its plugin_args; return {request: [node names]}."""
    key = "sbatch_args" if _scheduler(plugin) == "SLURM" else "qsub_args"
    pe = None
    if _scheduler(plugin) == "SGE":
        pe = args.pop("parallel_env", DEFAULT_PARALLEL_ENV)
        wide = sorted(name for name, node in _iter_nodes(workflow) if node.n_procs > 1)
        known = _parallel_envs() if wide else set()
        if wide and (known is None or pe not in known):
            have = "unknown (no qconf)" if known is None else ", ".join(sorted(known)) or "none"
            warnings.warn(
                f"SGE parallel environment {pe!r} not found (available: {have}): nodes "
                f"{', '.join(wide)} request 1 slot instead of n_procs; set plugin_args "
                """{"parallel_env": "<name>"} to request their CPUs""",
                stacklevel=3,
            )
            pe = None
    requests: dict[str, list[str]] = {}
    for name, node in _iter_nodes(workflow):
        request = scheduler_args(plugin, node.mem_gb, node.n_procs, parallel_env=pe)
        requests.setdefault(request, []).append(name)
        node_args = dict(node.plugin_args or {})
        # ours first so that a node's own arguments win; the leading space matters to the
        # Graph plugins, which concatenate global and node arguments as they are
        node_args[key] = f" {request} {node_args.get(key, '')}".rstrip()
        node.plugin_args = node_args
    return requests


def _check_requests(plugin: str, requests: dict[str, list[str]], args: dict[str, Any]) -> None:
    """Ask the scheduler whether it accepts each distinct request before anything runs."""
    for request, names in requests.items():
        if _scheduler(plugin) == "SLURM":
            cmd = ["sbatch", "--test-only", *shlex.split(args.get("sbatch_args", ""))]
            cmd += [*request.split(), "--wrap", "true"]
            proc = _run(cmd)
        else:
            # qsub -w v ignores load values (mem_free), so submit a held job and delete it
            cmd = ["qsub", "-h", "-b", "y", "-o", os.devnull, "-e", os.devnull]
            cmd += ["-N", "glmflow_check", *shlex.split(args.get("qsub_args", ""))]
            proc = _run([*cmd, *request.split(), "true"])
            if proc.returncode == 0 and proc.stdout.split()[:2] == ["Your", "job"]:
                _run(["qdel", proc.stdout.split()[2]])
        if proc.returncode != 0:
            shown = ", ".join(names[:3]) + (
                f" and {len(names) - 3} more" if len(names) > 3 else ""
            )
            raise ExecutionError(
                f"{_scheduler(plugin)} rejected the request '{request}' of node(s) {shown}: "
                f"{_message(proc)}; lower the nodes' mem_gb / n_procs or choose a partition / "
                "queue that has them in plugin_args"
            )


def _check_local_budget(workflow, args: dict[str, Any]) -> None:
    """MultiProc refuses nodes larger than its budget: say which, before anything runs."""
    if not args.get("raise_insufficient", True):
        return
    from nipype.utils.profiler import get_system_total_memory_gb

    # MultiProc's own defaults: all CPUs, 90 % of the memory
    cpus = args.get("n_procs", os.cpu_count() or 1)
    memory = args.get("memory_gb", round(get_system_total_memory_gb() * 0.9, 1))
    for name, node in _iter_nodes(workflow):
        if node.n_procs > cpus or node.mem_gb > memory:
            raise ExecutionError(
                f"Node '{name}' needs n_procs={node.n_procs} and mem_gb={node.mem_gb:g}, more "
                f"than MultiProc's n_procs={cpus} and mem_gb={memory:g}; raise n_procs / "
                "mem_gb (glmflow --n-cpus / --mem-gb) or use a cluster plugin"
            )


def _template(plugin: str, args: dict[str, Any]) -> str:
    template = args.get("template")
    if template is None:
        return _TEMPLATES[_scheduler(plugin)]
    if os.path.isfile(template):
        template = Path(template).read_text()
    return f"{template.rstrip()}\n{_ENV_LINE}\n"


def _queued_jobs(plugin: str, batch_dir: Path) -> dict[str, str]:
    """{job id: SLURM reason / SGE state} of this user's jobs whose script is in batch_dir."""
    user, prefix = _user(), f"{batch_dir}{os.sep}"
    jobs = {}
    if _scheduler(plugin) == "SLURM":
        out = _run(["squeue", "-h", "-u", user, "-o", "%i|%r|%o"]).stdout
        for line in out.splitlines():
            job, reason, command = line.split("|", 2)
            if command.startswith(prefix):
                jobs[job] = reason
        return jobs
    # qstat lists job-ID prior name user state ...; only qstat -j tells the script
    states = {}
    for line in _run(["qstat", "-u", user]).stdout.splitlines()[2:]:
        fields = line.split()
        states[fields[0]] = fields[4]
    if states:
        job = None
        for line in _run(["qstat", "-j", ",".join(states)]).stdout.splitlines():
            field, _, value = line.partition(":")
            if field == "job_number":
                job = value.strip()
            elif field == "script_file" and value.strip().startswith(prefix):
                jobs[job] = states.get(job, "")
    return jobs


def _never_runs(plugin: str, why: str) -> bool:
    if _scheduler(plugin) == "SLURM":
        return why == "DependencyNeverSatisfied"
    return "E" in why


def _cancel(plugin: str, jobs) -> None:
    if jobs:
        _run(["scancel" if _scheduler(plugin) == "SLURM" else "qdel", *jobs])


def _wait_for_jobs(plugin: str, batch_dir: Path, poll: float, why: str) -> None:
    """Wait until no job of this work directory is queued or running."""
    said = False
    while jobs := _queued_jobs(plugin, batch_dir):
        # jobs that can never run: SLURM keeps the dependents of a failed job pending unless
        # the site sets kill_invalid_depend; SGE keeps jobs in error state (Eqw)
        _cancel(plugin, [j for j, why in jobs.items() if _never_runs(plugin, why)])
        if not said:
            LOGGER.info("waiting for %d %s job(s) %s", len(jobs), plugin, why)
            said = True
        time.sleep(poll)


def _crash_files(crash_dir: Path) -> set[Path]:
    return set(crash_dir.glob("crash-*")) if crash_dir.is_dir() else set()


def _failure(new_crashes: set[Path]) -> ExecutionError | None:
    """One line naming the first failed node, its error and crash file."""
    if not new_crashes:
        return None
    first, *rest = sorted(new_crashes, key=lambda p: (p.stat().st_mtime, p.name))
    lines = first.read_text(errors="replace").splitlines() if first.suffix == ".txt" else []
    node = next((ln[len("Node: ") :] for ln in lines if ln.startswith("Node: ")), first.name)
    # the innermost exception ("ValueError: ..."), not nipype's NodeExecutionError around it
    cause = next((m[1] for ln in reversed(lines) if (m := _EXCEPTION_LINE.match(ln))), "")
    more = f" ({len(rest)} more failed node(s), crash files in {first.parent})" if rest else ""
    cause = f" with {cause}" if cause else ""
    return ExecutionError(f"Node '{node}' failed{cause}; crash file: {first}{more}")


def _configure(workflow, poll_interval: float | None, crash_dir: Path) -> None:
    # the workflow's config wins over Nipype's global one in Workflow.run and is handed to
    # every node (and so to every batch job)
    execution = workflow.config.setdefault("execution", {})
    execution.update(
        {
            "crashdump_dir": str(crash_dir),
            "crashfile_format": "txt",
            # glmflow's outputs are read from node directories after the run
            "remove_unnecessary_outputs": "false",
            # independent branches (other subjects) finish and are cached when one fails
            "stop_on_first_crash": "false",
        }
    )
    if poll_interval is not None:
        execution["poll_sleep_duration"] = str(poll_interval)


def _plugin_args(plugin, args, n_procs, mem_gb) -> dict[str, Any]:
    if mem_gb is not None and plugin != "MultiProc":
        raise ExecutionError(
            f"mem_gb={mem_gb} sets MultiProc's memory budget and means nothing to plugin "
            f"{plugin!r} (batch jobs request each node's own mem_gb); leave it out"
        )
    if n_procs is not None and plugin in ("Linear", "SLURMGraph", "SGEGraph"):
        raise ExecutionError(
            f"n_procs={n_procs} means nothing to plugin {plugin!r} "
            "(MultiProc: processes; SLURM / SGE: jobs queued at once); leave it out"
        )
    # the keywords win over the same setting in plugin_args
    if plugin == "MultiProc":
        budget = {"n_procs": n_procs, "memory_gb": mem_gb}
        args.update({key: value for key, value in budget.items() if value is not None})
    elif plugin in BATCH_PLUGINS:
        if n_procs is not None:
            args["max_jobs"] = n_procs
        args["template"] = _template(plugin, args)
        key = "sbatch_args" if _scheduler(plugin) == "SLURM" else "qsub_args"
        args.setdefault(key, "")
        if plugin.endswith("Graph"):
            # reuse finished nodes on a rerun (SLURMGraph fails without this key anyway)
            args.setdefault("dont_resubmit_completed_jobs", True)
    return args


def _submission_error(exc: Exception, plugin: str) -> ExecutionError | None:
    """Nipype's "Could not submit ... task for node X" as one line with the scheduler's words."""
    text = str(exc)
    if not text.startswith("Could not submit"):
        return None
    head, _, rest = text.partition("\n")
    node = head.rsplit(" ", 1)[-1]
    err = rest.split("Standard error:", 1)[-1].split("Return code:", 1)[0]
    words = "; ".join(ln.strip() for ln in err.splitlines() if ln.strip() and ln != "Exiting.")
    return ExecutionError(f"{_scheduler(plugin)} rejected the job of node '{node}': {words}")


def _missing_results(execgraph) -> list[str]:
    return sorted(
        str(node)
        for node in execgraph.nodes()
        if not Path(node.output_dir(), f"result_{node.name}.pklz").is_file()
    )


class _FrozenGCMultiProc(MultiProcPlugin):
    """MultiProc whose gc.collect() between jobs skips the objects alive at its start.

    Nipype's loop collects garbage at every pass; with the graph, pybids and nilearn in the
    driver each pass cost 20-500 ms. Freezing them out of the collector keeps collecting
    what the loop itself creates and drops that cost.
    """

    def run(self, graph, config, updatehash=False):
        gc.collect()
        gc.freeze()
        try:
            return super().run(graph, config, updatehash=updatehash)
        finally:
            gc.unfreeze()


def run_workflow(
    workflow,
    *,
    plugin: str = "MultiProc",
    plugin_args: dict[str, Any] | None = None,
    n_procs: int | None = None,
    mem_gb: float | None = None,
    poll_interval: float | None = None,
    work_dir: str | os.PathLike | None = None,
):
    """Run a Nipype workflow and check that every node produced its result.

    Parameters
    ----------
    workflow : nipype.pipeline.engine.Workflow
        Not modified: a copy is configured and run.
    plugin : str
        One of :data:`PLUGINS`.
    plugin_args : dict, optional
        Nipype plugin arguments (see :func:`validate_plugin_args`), e.g. ``sbatch_args``
        ("-p debug --time=1:00:00"), ``qsub_args``, ``template`` (text or file); SGE also takes
        ``parallel_env`` (default "smp").
    n_procs : int, optional
        MultiProc: processes (default: all CPUs). SLURM / SGE: jobs in the queue at once.
    mem_gb : float, optional
        MultiProc: memory budget in GB (default: 90 % of the machine's).
    poll_interval : float, optional
        Seconds between checks of running nodes / jobs (Nipype's default: 2).
    work_dir : path, optional
        Where node directories go (default: ``workflow.base_dir``); on a cluster it must be
        on a file system the compute nodes share. Crash files go to ``<work_dir>/<name>/crash``.

    Returns
    -------
    networkx.DiGraph
        The executed graph (as from ``Workflow.run``).

    Raises
    ------
    ExecutionError
        Bad plugin or arguments, missing scheduler commands, a request the scheduler rejects,
        or a failed node (named, with its crash file).
    """
    args = _plugin_args(plugin, validate_plugin_args(plugin, plugin_args), n_procs, mem_gb)
    if plugin in BATCH_PLUGINS:
        _check_commands(plugin)
    base = work_dir or workflow.base_dir
    if not base:
        raise ExecutionError(
            f"Workflow '{workflow.name}' has no work directory; pass work_dir= (a directory "
            "the compute nodes can read and write) so that results are cached there"
        )
    base = Path(base).absolute()
    # nipype's batch plugins name jobs after LOGNAME and fail without it
    os.environ["LOGNAME"] = _user()

    workflow = copy.deepcopy(workflow)
    workflow.base_dir = str(base)
    crash_dir = base / workflow.name / "crash"
    batch_dir = base / workflow.name / "batch"
    _configure(workflow, poll_interval, crash_dir)
    poll = float(workflow.config["execution"].get("poll_sleep_duration", 2))
    if plugin == "MultiProc":
        _check_local_budget(workflow, args)
    if plugin in BATCH_PLUGINS:
        _check_requests(plugin, _request_resources(workflow, plugin, args), args)
        # a driver killed earlier leaves its jobs running: let them finish their nodes
        _wait_for_jobs(plugin, batch_dir, poll, "left by an earlier run of this work directory")

    crashes_before = _crash_files(crash_dir)
    try:
        runner = _FrozenGCMultiProc(plugin_args=args) if plugin == "MultiProc" else plugin
        execgraph = workflow.run(plugin=runner, plugin_args=args)
        if plugin.endswith("Graph"):
            _wait_for_jobs(plugin, batch_dir, poll, "submitted by this run")
    except KeyboardInterrupt:
        if plugin in BATCH_PLUGINS:
            _cancel(plugin, _queued_jobs(plugin, batch_dir))
        raise
    except RuntimeError as exc:
        error = _failure(_crash_files(crash_dir) - crashes_before)
        error = error or _submission_error(exc, plugin)
        if error is None:
            raise
        raise error from exc
    error = _failure(_crash_files(crash_dir) - crashes_before)
    if error is not None:
        raise error
    missing = _missing_results(execgraph)
    if missing:
        raise ExecutionError(
            f"Node(s) {', '.join(missing)} produced no result and no crash file with plugin "
            f"{plugin!r}: the scheduler may have killed the job (time or memory limit); see "
            f"the job logs in {batch_dir}"
        )
    return execgraph
