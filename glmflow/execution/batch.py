"""Nipype's SLURM and SGE plugins, with a dead job or a silent scheduler said in one line.

A job that ends without a result (cancelled with scancel / qdel, killed for its memory or
time limit) reaches Nipype's crash reporter with its traceback as a string, and
``report_crash`` then fails with ``TypeError: can only concatenate str (not "list") to
str`` (an open upstream defect), so that no node is named and no crash file written. The
plugins here hand it a list and replace Nipype's "results file does not exist" by the job
id, the scheduler's own account of the job (``sacct`` / ``scontrol``, ``qacct``) and the
command that resumes the run. A queue command that fails is retried with backoff, then ends
the run with one line saying the scheduler is unreachable (Nipype read it as "finished").
"""

from __future__ import annotations

from nipype.pipeline.plugins import SGEPlugin, SLURMPlugin

from glmflow.execution.folders import this_command
from glmflow.execution.scheduler import job_account, scheduler_command, user

_NO_RESULT = "results file does not exist"


class _ReportJobDeaths:
    """What both batch plugins add to Nipype's: a dead job is one clear crash record."""

    scheduler = ""

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


class GlmflowSLURM(_ReportJobDeaths, SLURMPlugin):
    """Nipype's SLURM plugin; the queue is read with retries and its exit code checked."""

    scheduler = "SLURM"

    def _is_pending(self, taskid):
        cmd = ["squeue", "-h", "-u", user(), "-o", "%i"]
        return str(taskid) in scheduler_command(cmd, "SLURM").stdout.split()


class GlmflowSGE(_ReportJobDeaths, SGEPlugin):
    """Nipype's SGE plugin (it keeps its own qstat cache) with dead jobs reported."""

    scheduler = "SGE"


BATCH_RUNNERS = {"SLURM": GlmflowSLURM, "SGE": GlmflowSGE}
