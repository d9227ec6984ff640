"""Nipype's SLURM and SGE plugins, with a dead job or a silent scheduler said in one line.

A job that ends without a result (cancelled with scancel / qdel, killed for its memory or
time limit) reaches Nipype's crash reporter with its traceback as a string, and
``report_crash`` then fails with ``TypeError: can only concatenate str (not "list") to
str`` (an open upstream defect), so that no node is named and no crash file written. The
plugins here hand it a list and replace Nipype's "results file does not exist" by the job
id, the scheduler's own account of the job (``sacct`` / ``scontrol``, ``qacct``) and the
command that resumes the run. A queue command that fails is retried with backoff, then ends
the run with one line saying the scheduler is unreachable (Nipype read it as "finished"),
and a job of the run that cannot start (held, partition down) ends it after a bound.

The *Graph* plugins submit every job at once and return; :class:`GraphJobDeaths` watches
the queue while glmflow waits for them: a job that leaves it with neither a result nor a
crash file died, and gets the same crash file and line, and its dependents are cancelled
(SGE's ``-hold_jid`` would release them to run without their inputs).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from nipype.pipeline.plugins import SGEPlugin, SLURMPlugin
from nipype.pipeline.plugins.tools import report_crash

from glmflow.execution.folders import this_command
from glmflow.execution.plugins import scheduler_of
from glmflow.execution.scheduler import StuckJobs, cancel_jobs, job_account, user_jobs

_NO_RESULT = "results file does not exist"


def job_died(scheduler: str, job: str) -> str:
    """The crash record of a job that ended without a result, with the scheduler's account."""
    return (
        f"JobDiedError: {scheduler} job {job} ended without a result "
        f"({job_account(scheduler, job)}); rerun `{this_command()}` to resume (finished nodes "
        "are reused)\n"
    )


class _ReportJobDeaths:
    """What both batch plugins add to Nipype's: a dead job is one clear crash record."""

    def _get_result(self, taskid):
        result = super()._get_result(taskid)
        traceback = result and result.get("traceback")
        if result and result["result"] is None and traceback and _NO_RESULT in str(traceback):
            result["traceback"] = [job_died(self.scheduler, str(taskid))]
        return result

    def _report_crash(self, node, result=None):
        # Nipype's report_crash appends a list to the traceback: hand it lines, not a string
        if result is not None and isinstance(result.get("traceback"), str):
            result = {**result, "traceback": result["traceback"].splitlines(keepends=True)}
        return super()._report_crash(node, result=result)


class _WatchStuckJobs:
    """A job of this run that waits for someone (held, partition down) stops the run."""

    scheduler = ""

    def _queue(self) -> dict[str, str]:
        jobs = user_jobs(self.scheduler)
        if not hasattr(self, "_stuck"):
            self._stuck = StuckJobs(self.scheduler, "of this run")
        mine = {str(task) for task in self._pending}  # Nipype's {job id: node folder}
        self._stuck.check({job: why for job, why in jobs.items() if job in mine})
        tracker = getattr(self, "tracker", None)  # glmflow's progress (execution/run.py)
        if tracker is not None:
            tracker.set_jobs(self.scheduler, (why for job, why in jobs.items() if job in mine))
        return jobs


class GlmflowSLURM(_ReportJobDeaths, _WatchStuckJobs, SLURMPlugin):
    """Nipype's SLURM plugin; the queue is read with retries and its exit code checked."""

    scheduler = "SLURM"

    def _is_pending(self, taskid):
        return str(taskid) in self._queue()


class GlmflowSGE(_ReportJobDeaths, _WatchStuckJobs, SGEPlugin):
    """Nipype's SGE plugin (it keeps its own qstat cache) with dead and stuck jobs reported."""

    scheduler = "SGE"

    def _is_pending(self, taskid):
        self._queue()
        return super()._is_pending(taskid)


# how long the result of a job its scheduler says finished well may take to appear (the
# attribute cache of a shared file system), and that account
LATE_RESULT_SECONDS = 30.0
_FINISHED_WELL = re.compile(r"COMPLETED(, exit code | .*ExitCode=)0:0|failed 0, exit_status 0\b")


def _result_file(node) -> Path:
    return Path(node.output_dir(), f"result_{node.name}.pklz")


class GraphJobDeaths:
    """Watch a Graph plugin's jobs; a dead job gets a crash file and its dependents cancelled.

    ``nodes`` are the executed graph's nodes; a job is matched to its node by the name of
    its script, which Nipype ends with ``_<hierarchy>_<node id>.sh``.
    """

    def __init__(self, plugin: str, nodes, crash_dir: Path):
        self.plugin, self.crash_dir = plugin, crash_dir
        self.ends = {f"_{n._hierarchy}_{n._id}.sh" if n._hierarchy else f"_{n._id}.sh": n
                     for n in nodes}  # fmt: skip
        by_result = {_result_file(node): node for node in nodes}
        sources = {node: {Path(src[0]) for src in node.input_source.values()} for node in nodes}
        self.parents = {node: {by_result[p] for p in paths if p in by_result}
                        for node, paths in sources.items()}  # fmt: skip
        self.crashes = set(crash_dir.glob("crash-*"))
        self.seen: dict[str, object] = {}  # {job id: node} of this run's queued jobs
        self.late: dict[str, tuple[object, float, str]] = {}  # finished well, no result yet
        # the crash files this watcher wrote: the deaths, which the run's line names first
        # (SGE releases a dependent's -hold_jid when qdel removes its parent, and the
        # dependent's own crash, for its missing inputs, can be written before the cause's)
        self.reported: list[Path] = []

    def _node(self, script: str):
        ends = [end for end in self.ends if script.endswith(end)]
        return self.ends[max(ends, key=len)] if ends else None

    def _crashed(self, node) -> bool:
        new = set(self.crash_dir.glob(f"crash-*-{node._id}-*")) - self.crashes
        return any(f"Node: {node.fullname}\n" in path.read_text(errors="replace") for path in new)

    def _had_inputs(self, node) -> bool:
        """Every upstream node finished (Nipype saves the result of a failed node too)."""
        parents = self.parents[node]
        return all(_result_file(p).is_file() and not self._crashed(p) for p in parents)

    def _descendants(self, nodes: set) -> set:
        found = set(nodes)
        while more := {n for n, parents in self.parents.items() if parents & found} - found:
            found |= more
        return found - nodes

    def __call__(self, queued: dict[str, tuple[str, str]]) -> bool:
        """One listing of the queue (:func:`scheduler.queued_scripts`); True while a result
        is awaited."""
        for job, (_, script) in queued.items():
            if job not in self.seen and (node := self._node(script)) is not None:
                self.seen[job] = node
        ended = {job: self.seen.pop(job) for job in list(self.seen) if job not in queued}
        ended.update({job: node for job, (node, _, _) in self.late.items()})
        dead = {job: node for job, node in ended.items()
                if not _result_file(node).is_file() and not self._crashed(node)}  # fmt: skip
        # the dependents SLURM cancels with a dead or failed job (kill_invalid_depend) lacked
        # inputs: a death is a job whose inputs were all there
        causes = {}
        for job, node in dead.items():
            if self._had_inputs(node) and (line := self._died(job, node)) is not None:
                causes[node] = line
        self.late = {job: late for job, late in self.late.items() if job in dead}
        if causes:
            doomed = self._descendants(set(causes))
            cancel_jobs(self.plugin, [job for job, node in self.seen.items() if node in doomed])
            for node, line in causes.items():
                self.reported.append(Path(report_crash(node, traceback=[line])))
        return bool(self.late)

    def _died(self, job: str, node) -> str | None:
        """The crash record of a job that ended without a result, or None while the result
        of a job the scheduler says finished well may still appear (a shared file system)."""
        if job in self.late:
            _, since, line = self.late[job]
            if time.monotonic() - since < LATE_RESULT_SECONDS:
                return None
            del self.late[job]
            return line
        line = job_died(scheduler_of(self.plugin), job)
        if _FINISHED_WELL.search(line):
            self.late[job] = (node, time.monotonic(), line)
            return None
        return line


BATCH_RUNNERS = {"SLURM": GlmflowSLURM, "SGE": GlmflowSGE}
