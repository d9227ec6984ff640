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
"""

from __future__ import annotations

from nipype.pipeline.plugins import SGEPlugin, SLURMPlugin

from glmflow.execution.folders import this_command
from glmflow.execution.scheduler import StuckJobs, job_account, user_jobs

_NO_RESULT = "results file does not exist"


class _ReportJobDeaths:
    """What both batch plugins add to Nipype's: a dead job is one clear crash record."""

    def _get_result(self, taskid):
        result = super()._get_result(taskid)
        traceback = result and result.get("traceback")
        if result and result["result"] is None and traceback and _NO_RESULT in str(traceback):
            scheduler = self.scheduler
            result["traceback"] = [
                f"JobDiedError: {scheduler} job {taskid} ended without a result "
                f"({job_account(scheduler, str(taskid))}); rerun `{this_command()}` to "
                "resume (finished nodes are reused)\n"
            ]
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


BATCH_RUNNERS = {"SLURM": GlmflowSLURM, "SGE": GlmflowSGE}
