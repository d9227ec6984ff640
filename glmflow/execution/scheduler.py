"""Talking to SLURM and SGE: resource requests, checks before submission, the job queue."""

from __future__ import annotations

import getpass
import logging
import math
import os
import re
import shlex
import shutil
import subprocess
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from glmflow.execution.folders import this_command
from glmflow.execution.plugins import (
    BATCH_PLUGINS,
    DEFAULT_PARALLEL_ENV,
    ExecutionError,
    scheduler_of,
    submit_args_key,
)

LOGGER = logging.getLogger(__name__)

# seconds between the tries of a scheduler command: 5 tries over 7.5 s
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)
_DOWN: dict[str, tuple[float, str]] = {}  # {scheduler: (when every try failed, the line)}

# how long a job may wait for someone to act (held, partition or node down) before the run
# stops and says so; a busy queue ("Resources", "Priority") is waited for without bound
STUCK_SECONDS = 300.0
# how often a wait for jobs says again what it waits for
WAIT_REPORT_SECONDS = 60.0
_SLURM_STUCK = (
    "JobHeld", "PartitionDown", "PartitionInactive", "PartitionNodeLimit", "ReqNodeNotAvail",
    "NodeDown", "BadConstraints", "InvalidAccount", "InvalidQOS",
)  # fmt: skip


class RunStopped(BaseException):
    """The run cannot go on; a BaseException so that Nipype's loop, which catches every
    Exception of a job, lets it end the run (run_workflow makes it one line)."""


class SchedulerUnreachable(RunStopped):
    """The scheduler stopped answering."""


def scheduler_command(
    cmd: list[str],
    scheduler: str,
    accept: Callable[[subprocess.CompletedProcess], bool] = lambda proc: False,
) -> subprocess.CompletedProcess:
    """Run a queue command; retry a failure (unless ``accept`` takes it) with backoff.

    Raises
    ------
    SchedulerUnreachable
        Every try failed: one line naming the command, the tries, the time and its words;
        for WAIT_REPORT_SECONDS after, one try (a run that ends does not wait them out again).
    """
    start, (since, line) = time.monotonic(), _DOWN.get(scheduler, (-math.inf, ""))
    recent = start - since < WAIT_REPORT_SECONDS
    for delay in (None,) if recent else (*RETRY_DELAYS, None):
        proc = _run(cmd)
        if proc.returncode == 0 or accept(proc):
            _DOWN.pop(scheduler, None)
            return proc
        if delay is not None:
            time.sleep(delay)
    if not recent:
        line = (
            f"{scheduler} is unreachable: '{' '.join(cmd[:2])}' failed {len(RETRY_DELAYS) + 1} "
            f"times over {time.monotonic() - start:.0f} s ({_message(proc)[:200]}); check the "
            f"controller (sinfo / qstat -f), then rerun `{this_command()}` to resume (finished "
            "nodes are reused)"
        )
        _DOWN[scheduler] = (time.monotonic(), line)
    raise SchedulerUnreachable(line)


def job_account(scheduler: str, job: str) -> str:
    """The scheduler's own words on how a job ended (state, reason, exit code)."""
    if scheduler == "SLURM":
        proc = _run(["sacct", "-j", job, "-X", "-n", "-P", "-o", "State,ExitCode"])
        if proc.returncode == 0 and proc.stdout.strip():
            state, _, code = proc.stdout.splitlines()[0].partition("|")
            return f"sacct: {state}, exit code {code}"
        proc = _run(["scontrol", "show", "job", job])
        if proc.returncode == 0:
            info = dict(t.split("=", 1) for t in proc.stdout.split() if "=" in t)
            keys = ("JobState", "Reason", "ExitCode")
            return "scontrol: " + " ".join(f"{k}={info[k]}" for k in keys if k in info)
        return "neither sacct nor scontrol knows the job any more"
    for _ in range(3):  # qacct sees a job a moment after it ended
        proc = _run(["qacct", "-j", job])
        if proc.returncode == 0:
            info = {}
            for line in proc.stdout.splitlines():
                key, _, value = line.partition(" ")
                info.setdefault(key, " ".join(value.split()))
            keys = ("failed", "exit_status", "deleted_by")
            return "qacct: " + ", ".join(f"{k} {info[k]}" for k in keys if info.get(k))
        time.sleep(1.0)
    return "qacct: no record (SGE keeps them for jobs that started): deleted while queued"


# commands a plugin cannot work without (submit, then watch the queue)
_COMMANDS = {"SLURM": ("sbatch", "squeue"), "SGE": ("qsub", "qstat")}
_FIX = {
    "SLURM": "run glmflow on a SLURM login node (or `module load slurm`)",
    "SGE": "run glmflow on an SGE submit host (or `module load sge`)",
}


def user() -> str:
    """The user name the batch plugins name jobs after (Nipype reads LOGNAME)."""
    return os.environ.get("LOGNAME") or getpass.getuser()


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
    if scheduler_of(plugin) == "SLURM":
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


def check_commands(plugin: str) -> None:
    """The scheduler's submit and queue commands are on PATH."""
    scheduler = scheduler_of(plugin)
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


def iter_nodes(workflow):
    """(full name, node) of every node, nested workflows included."""
    for name in workflow.list_node_names():
        yield f"{workflow.name}.{name}", workflow.get_node(name)


def _sge_parallel_env(workflow, args: dict[str, Any]) -> str | None:
    """The parallel environment wide nodes request their CPUs in, or None (with a warning)."""
    pe = args.pop("parallel_env", DEFAULT_PARALLEL_ENV)
    wide = sorted(name for name, node in iter_nodes(workflow) if node.n_procs > 1)
    known = _parallel_envs() if wide else set()
    if wide and (known is None or pe not in known):
        have = "unknown (no qconf)" if known is None else ", ".join(sorted(known)) or "none"
        warnings.warn(
            f"SGE parallel environment {pe!r} not found (available: {have}): nodes "
            f"{', '.join(wide)} request 1 slot instead of n_procs; set plugin_args "
            """{"parallel_env": "<name>"} to request their CPUs""",
            stacklevel=4,
        )
        return None
    return pe


def request_resources(workflow, plugin: str, args: dict[str, Any]) -> dict[str, list[str]]:
    """Put each node's request into its plugin_args; return {request: [node names]}."""
    key = submit_args_key(plugin)
    pe = _sge_parallel_env(workflow, args) if scheduler_of(plugin) == "SGE" else None
    requests: dict[str, list[str]] = {}
    for name, node in iter_nodes(workflow):
        request = scheduler_args(plugin, node.mem_gb, node.n_procs, parallel_env=pe)
        requests.setdefault(request, []).append(name)
        node_args = dict(node.plugin_args or {})
        # ours first so that a node's own arguments win; the leading space matters to the
        # Graph plugins, which concatenate global and node arguments as they are
        node_args[key] = f" {request} {node_args.get(key, '')}".rstrip()
        node.plugin_args = node_args
    return requests


def check_requests(plugin: str, requests: dict[str, list[str]], args: dict[str, Any]) -> None:
    """Ask the scheduler whether it accepts each distinct request before anything runs."""
    for request, names in requests.items():
        if scheduler_of(plugin) == "SLURM":
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
                f"{scheduler_of(plugin)} rejected the request '{request}' of node(s) {shown}: "
                f"{_message(proc)}; lower the nodes' mem_gb / n_procs or choose a partition / "
                "queue that has them in plugin_args"
            )


def queued_scripts(plugin: str, batch_dir: Path) -> dict[str, tuple[str, str]]:
    """{job id: (SLURM reason / SGE state, job script)} of this user's jobs in batch_dir.

    Raises SchedulerUnreachable when the queue cannot be read (after retries).
    """
    prefix, scheduler = f"{batch_dir}{os.sep}", scheduler_of(plugin)
    jobs = {}
    if scheduler == "SLURM":
        cmd = ["squeue", "-h", "-u", user(), "-o", "%i|%r|%o"]
        for line in scheduler_command(cmd, scheduler).stdout.splitlines():
            job, reason, command = line.split("|", 2)
            if command.startswith(prefix):
                jobs[job] = (reason, command)
        return jobs
    states = _sge_listing()
    if not states:
        return jobs
    # a job that ended since the listing is no failure of the scheduler
    proc = scheduler_command(
        ["qstat", "-j", ",".join(states)], scheduler, lambda p: "do not exist" in p.stderr
    )
    for block in re.split(r"^=+$", proc.stdout, flags=re.M):
        fields = (line.partition(":") for line in block.splitlines())
        info = {key.strip(): value.strip() for key, _, value in fields}
        job, script = info.get("job_number"), info.get("script_file", "")
        if script.startswith(prefix):
            jobs[job] = (states.get(job, ""), script)
    # -hold_jid is an "h" state too: a job held by no one but its predecessors is not stuck
    if any("h" in state for state, _ in jobs.values()):
        held = {job for kind in ("hu", "ho", "hs") for job in _sge_listing("-s", kind)}
        for job, (state, script) in jobs.items():
            if "h" in state and job not in held:
                jobs[job] = (f"{state} (after its predecessors)", script)
    return jobs


def _sge_listing(*args: str) -> dict[str, str]:
    """{job id: state} of this user's SGE jobs (qstat's job-ID prior name user state ...)."""
    lines = scheduler_command(["qstat", "-u", user(), *args], "SGE").stdout.splitlines()[2:]
    return {fields[0]: fields[4] for fields in map(str.split, lines) if len(fields) > 4}


def queued_jobs(plugin: str, batch_dir: Path) -> dict[str, str]:
    """{job id: SLURM reason / SGE state} of this user's jobs whose script is in batch_dir."""
    return {job: why for job, (why, _) in queued_scripts(plugin, batch_dir).items()}


def user_jobs(plugin: str) -> dict[str, str]:
    """{job id: SLURM reason / SGE state} of every queued job of this user."""
    if scheduler_of(plugin) == "SLURM":
        cmd = ["squeue", "-h", "-u", user(), "-o", "%i|%r"]
        lines = scheduler_command(cmd, "SLURM").stdout.splitlines()
        return dict(line.split("|", 1) for line in lines if "|" in line)
    return _sge_listing()


def check_reachable(plugin: str) -> None:
    """The scheduler answers (before its answers to the requests are believed)."""
    scheduler = scheduler_of(plugin)
    cmd = ["squeue", "-h", "-u", user()] if scheduler == "SLURM" else ["qstat", "-u", user()]
    scheduler_command(cmd, scheduler)


def _never_runs(plugin: str, why: str) -> bool:
    return why == "DependencyNeverSatisfied" if scheduler_of(plugin) == "SLURM" else "E" in why


def cancel_jobs(plugin: str, jobs) -> None:
    """scancel / qdel the given job ids."""
    if jobs:
        _run(["scancel" if scheduler_of(plugin) == "SLURM" else "qdel", *jobs])


def _cannot_start(plugin: str, why: str) -> bool:
    """A pending job that waits for someone to act: held, or its partition / node down."""
    if scheduler_of(plugin) == "SLURM":
        return why.startswith(_SLURM_STUCK)
    return ("h" in why and "(after" not in why) or "E" in why


def _shown(jobs: dict[str, str]) -> str:
    listed = [f"{job} ({why})" for job, why in sorted(jobs.items())]
    return ", ".join(listed[:5]) + (f" and {len(listed) - 5} more" if len(listed) > 5 else "")


class StuckJobs:
    """Jobs pending for a reason that needs a person, timed: past STUCK_SECONDS, one line."""

    def __init__(self, plugin: str, what: str):
        self.plugin, self.what, self.since = plugin, what, {}

    def check(self, jobs: dict[str, str]) -> None:
        """``jobs``: {id: SLURM reason / SGE state} now queued. Raises RunStopped when overdue."""
        now = time.monotonic()
        stuck = {job: why for job, why in jobs.items() if _cannot_start(self.plugin, why)}
        self.since = {job: self.since.get(job, now) for job in stuck}
        overdue = {job: stuck[job] for job in stuck if now - self.since[job] >= STUCK_SECONDS}
        if overdue:
            cancel = "scancel" if scheduler_of(self.plugin) == "SLURM" else "qdel"
            raise RunStopped(
                f"{len(overdue)} {self.plugin} job(s) {self.what} cannot start after "
                f"{STUCK_SECONDS:.0f} s: {_shown(overdue)}; release them (or {cancel} them and "
                f"fix the partition / queue), then rerun `{this_command()}` to resume"
            )


def wait_for_jobs(
    plugin: str,
    batch_dir: Path,
    poll: float,
    why: str,
    watch: Callable[[dict[str, tuple[str, str]]], None] | None = None,
) -> None:
    """Wait until no job of this work directory is queued or running, saying for what.

    Jobs that can never run are cancelled; jobs that cannot start without someone's help
    (held, partition down) end the wait after STUCK_SECONDS with one line naming them.
    ``watch`` sees every listing of :func:`queued_scripts`, the empty one included; while
    it returns True the wait goes on (a result it waits for), with the queue empty.
    """
    stuck, said = StuckJobs(plugin, why), -math.inf
    while True:
        queued = queued_scripts(plugin, batch_dir)
        later = watch is not None and watch(queued)
        if not (jobs := {job: why for job, (why, _) in queued.items()}) and not later:
            return
        # jobs that can never run: SLURM keeps the dependents of a failed job pending unless
        # the site sets kill_invalid_depend; SGE keeps jobs in error state (Eqw)
        cancel_jobs(plugin, [j for j, why in jobs.items() if _never_runs(plugin, why)])
        if jobs and time.monotonic() - said >= WAIT_REPORT_SECONDS:
            LOGGER.info("waiting for %d %s job(s) %s: %s", len(jobs), plugin, why, _shown(jobs))
            said = time.monotonic()
        stuck.check(jobs)
        time.sleep(poll)


def submission_error(exc: Exception, plugin: str) -> ExecutionError | None:
    """Nipype's "Could not submit ... task for node X" as one line with the scheduler's words."""
    text = str(exc)
    if not text.startswith("Could not submit"):
        return None
    head, _, rest = text.partition("\n")
    node = head.rsplit(" ", 1)[-1]
    err = rest.split("Standard error:", 1)[-1].split("Return code:", 1)[0]
    words = "; ".join(ln.strip() for ln in err.splitlines() if ln.strip() and ln != "Exiting.")
    return ExecutionError(f"{scheduler_of(plugin)} rejected the job of node '{node}': {words}")
