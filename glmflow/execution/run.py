"""Run a glmflow graph locally (Linear, MultiProc) or on a SLURM / SGE cluster.

:func:`run_workflow` is the one place where Nipype's execution is configured: it turns each
node's ``mem_gb`` / ``n_procs`` into the scheduler's request, checks the request with the
scheduler before anything runs, waits for the *Graph* plugins (which return right after
submitting), and turns every failure into one line naming the node and its crash file.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import re
import signal
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from nipype.interfaces.base import Undefined, isdefined
from nipype.pipeline import plugins as nipype_plugins
from nipype.utils.filemanip import ensure_list

from glmflow.core.outputs import sidecar_path
from glmflow.core.publish import publish
from glmflow.execution import scheduler
from glmflow.execution.batch import BATCH_RUNNERS, GraphJobDeaths
from glmflow.execution.folders import this_command
from glmflow.execution.jobs import JOB_PREFIX, group_jobs
from glmflow.execution.multiproc import FrozenGCMultiProc
from glmflow.execution.options import ExecutionOptions
from glmflow.execution.plugins import (
    BATCH_PLUGINS,
    LOCAL_PLUGINS,
    ExecutionError,
    nipype_plugin_args,
    scheduler_of,
)
from glmflow.execution.progress import Ticker, Tracker, progress_sink

# Nipype asks the internet for its latest version at import time unless this is set; on
# compute nodes without internet that is a delay per job. Jobs get it through the
# batch-script template too.
os.environ.setdefault("NIPYPE_NO_ET", "1")

# Nipype's loop sleeps this long between passes; a no-change rerun takes ~1,000 passes
LOCAL_POLL_SECONDS = 0.002
# Nipype's own default poll (seconds) where glmflow sets none: the cluster plugins
NIPYPE_POLL_SECONDS = 2.0
# a traceback line that names an exception ("ValueError: ...")
_EXCEPTION_LINE = re.compile(r"^\s*((?:\w+\.)*\w*(?:Error|Exception|Exit)\b:?.*)$")
# Nipype's loggers that write INFO lines on stdout
_NIPYPE_LOGGERS = ("nipype.workflow", "nipype.interface", "nipype.utils")


def _crash_files(crash_dir: Path) -> set[Path]:
    return set(crash_dir.glob("crash-*")) if crash_dir.is_dir() else set()


def _failure(new_crashes: set[Path], causes: list[Path] = ()) -> ExecutionError | None:
    """One line naming the first failed node, its error and crash file.

    ``causes`` (crash files of jobs that died, written by the Graph plugins' watcher) come
    before the crashes of their dependents, whatever the order they were written in.
    """
    if not new_crashes:
        return None
    first, *rest = sorted(
        new_crashes, key=lambda p: (p not in causes, p.stat().st_mtime, p.name)
    )
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


def _check_local_budget(workflow, args: dict[str, Any]) -> None:
    """MultiProc refuses nodes larger than its budget: say which, before anything runs."""
    if not args.get("raise_insufficient", True):
        return
    from nipype.utils.profiler import get_system_total_memory_gb

    # MultiProc's own defaults: all CPUs, 90 % of the memory
    cpus = args.get("n_procs", os.cpu_count() or 1)
    memory = args.get("memory_gb", round(get_system_total_memory_gb() * 0.9, 1))
    for name, node in scheduler.iter_nodes(workflow):
        if node.n_procs > cpus or node.mem_gb > memory:
            raise ExecutionError(
                f"Node '{name}' needs n_procs={node.n_procs} and mem_gb={node.mem_gb:g}, more "
                f"than MultiProc's n_procs={cpus} and mem_gb={memory:g}; raise n_procs / "
                "mem_gb (glmflow --n-cpus / --mem-gb) or use a cluster plugin"
            )


def _missing_results(execgraph) -> list[str]:
    return sorted(
        str(node)
        for node in execgraph.nodes()
        if not Path(node.output_dir(), f"result_{node.name}.pklz").is_file()
    )


class _Tracked:
    """A plugin that tells a progress :class:`Tracker` the graph's size and its cache hits."""

    tracker: Tracker
    graph_nodes: list = []

    def run(self, graph, config, updatehash=False):
        self.graph_nodes = list(graph.nodes())
        self.tracker.begin(len(self.graph_nodes))
        return super().run(graph, config, updatehash=updatehash)

    def _task_finished_cb(self, jobid, cached=False):
        if cached:
            self.tracker.node_cached(str(self.procs[jobid]))
        return super()._task_finished_cb(jobid, cached=cached)


def _status_callback(tracker: Tracker):
    """Nipype's status_callback (Linear, MultiProc, SLURM, SGE): start / end / exception."""

    def callback(node, status: str) -> None:
        if status == "start":
            tracker.node_started(str(node))
        else:
            tracker.node_ended(str(node), ok=status == "end")

    return callback


def _runner(plugin: str, args: dict[str, Any], tracker: Tracker):
    """The plugin instance that runs the graph, reporting to ``tracker``.

    The class keeps its base's name: Nipype derives the plugin's name from it. The callback
    is set on the instance, not in plugin_args, which Nipype hands to (and pickles with) nodes.
    """
    if plugin == "MultiProc":
        base = FrozenGCMultiProc
    else:
        base = BATCH_RUNNERS.get(plugin) or getattr(nipype_plugins, f"{plugin}Plugin")
    runner = type(base.__name__, (_Tracked, base), {"tracker": tracker})(plugin_args=args)
    if not plugin.endswith("Graph"):  # the Graph plugins submit all at once: no callback
        runner._status_callback = _status_callback(tracker)
    return runner


def _graph_poll(runner, plugin: str, batch_dir: Path, every: float = 5.0):
    """The Graph plugins' progress: nodes with a result on disk, this run's jobs (every 5 s)."""
    last = [-every]

    def poll() -> None:
        results = (Path(n.output_dir(), f"result_{n.name}.pklz") for n in runner.graph_nodes)
        runner.tracker.set_done(sum(path.is_file() for path in results))
        if time.monotonic() - last[0] >= every:
            last[0] = time.monotonic()
            try:
                runner.tracker.set_jobs(
                    scheduler_of(plugin), scheduler.queued_jobs(plugin, batch_dir).values()
                )
            except scheduler.RunStopped:  # said by the run's own wait, not by its progress
                pass

    return poll


@contextlib.contextmanager
def _nipype_log(verbose: bool):
    """Nipype's INFO lines (every node, on stdout) only when asked.

    Asked: ``verbose``, or a level the user set in Nipype's own config (INFO is its default).
    """
    from nipype import config

    if verbose or config.get("logging", "workflow_level") != "INFO":
        yield
        return
    loggers = [logging.getLogger(name) for name in _NIPYPE_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.level, logging.WARNING))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _prepare(workflow, options: ExecutionOptions) -> tuple[Any, dict[str, Any], Path]:
    """A configured copy of ``workflow``, Nipype's plugin_args and the work folder."""
    args = nipype_plugin_args(options)
    if options.plugin in BATCH_PLUGINS:
        scheduler.check_commands(options.plugin)
    base = options.work_dir or workflow.base_dir
    if not base:
        raise ExecutionError(
            f"Workflow '{workflow.name}' has no work directory; pass work_dir= (a directory "
            "the compute nodes can read and write) so that results are cached there"
        )
    base = Path(base).absolute()
    # nipype's batch plugins name jobs after LOGNAME and fail without it
    os.environ["LOGNAME"] = scheduler.user()
    workflow = copy.deepcopy(workflow)
    workflow.base_dir = str(base)
    _configure(workflow, options.poll_interval, base / workflow.name / "crash")
    if options.cluster_jobs == "subject":
        workflow = group_jobs(workflow, base)
    return workflow, args, base / workflow.name


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def _cancel_on_terminate(options: ExecutionOptions, batch_dir: Path):
    """SIGTERM / SIGINT (a `timeout`, the driver's own time limit, Ctrl-C) cancel this run's
    jobs and end the run with one line; a finished node is reused by the rerun."""
    plugin = options.plugin
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if main else None
    try:
        yield
    except KeyboardInterrupt as exc:
        if plugin not in BATCH_PLUGINS:
            raise
        jobs = scheduler.queued_jobs(plugin, batch_dir)
        scheduler.cancel_jobs(plugin, jobs)
        raise ExecutionError(
            f"Interrupted ({exc or 'SIGINT'}): cancelled {len(jobs)} {plugin} job(s) of this "
            f"run; rerun `{this_command()}` to resume (finished nodes are reused)"
        ) from None
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _progress(tracker: Tracker, sink, poll):
    if sink is None:
        yield
        return
    with Ticker(tracker, sink, poll):
        yield


def _run(workflow, options: ExecutionOptions, args: dict[str, Any], top: Path):
    """Workflow.run, with the Graph plugins waited for and failures made one line."""
    plugin, batch_dir, crash_dir = options.plugin, top / "batch", top / "crash"
    poll = float(workflow.config["execution"].get("poll_sleep_duration", NIPYPE_POLL_SECONDS))
    crashes_before = _crash_files(crash_dir)
    causes: list[Path] = []  # the deaths the Graph plugins' watcher said
    try:
        runner = _runner(plugin, args, Tracker(workflow.name))
        refresh = _graph_poll(runner, plugin, batch_dir) if plugin.endswith("Graph") else None
        with (
            _nipype_log(options.verbose),
            _cancel_on_terminate(options, batch_dir),
            _progress(runner.tracker, progress_sink(options.progress), refresh),
        ):
            execgraph = workflow.run(plugin=runner, plugin_args=args)
            if plugin.endswith("Graph"):
                deaths = GraphJobDeaths(plugin, runner.graph_nodes, crash_dir)
                causes = deaths.reported
                scheduler.wait_for_jobs(plugin, batch_dir, poll, "submitted by this run", deaths)
    except RuntimeError as exc:
        error = _failure(_crash_files(crash_dir) - crashes_before, causes)
        error = error or scheduler.submission_error(exc, plugin)
        if error is None:
            raise
        raise error from exc
    error = _failure(_crash_files(crash_dir) - crashes_before, causes)
    if error is not None:
        raise error
    return execgraph


def _before_submitting(workflow, plugin: str, args: dict[str, Any], batch_dir: Path) -> None:
    """Requests checked by a scheduler that answers; jobs of a killed driver waited for."""
    scheduler.check_reachable(plugin)
    requests = scheduler.request_resources(workflow, plugin, args)
    scheduler.check_requests(plugin, requests, args)
    # a driver killed earlier leaves its jobs running: let them finish their nodes
    poll = float(workflow.config["execution"].get("poll_sleep_duration", NIPYPE_POLL_SECONDS))
    scheduler.wait_for_jobs(
        plugin, batch_dir, poll, "left by an earlier run of this work directory"
    )


def run_workflow(workflow, options: ExecutionOptions | None = None, /, **settings: Any):
    """Run a Nipype workflow and check that every node produced its result.

    Parameters
    ----------
    workflow : nipype.pipeline.engine.Workflow
        Not modified: a copy is configured and run.
    options : ExecutionOptions, optional
        How to run it; or give its settings one by one (``plugin="SLURM"``, ``work_dir=``,
        ``plugin_args=``, ``n_procs=``, ``mem_gb=``, ``poll_interval=``), which override
        the object's. The work folder defaults to ``workflow.base_dir``; crash files go to
        ``<work_dir>/<name>/crash``.

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
    options = ExecutionOptions.from_settings(options, **settings)
    workflow, args, top = _prepare(workflow, options)
    plugin = options.plugin
    if plugin == "MultiProc":
        _check_local_budget(workflow, args)
    try:
        if plugin in BATCH_PLUGINS:
            _before_submitting(workflow, plugin, args, top / "batch")
        execgraph = _run(workflow, options, args, top)
    except scheduler.RunStopped as exc:
        raise ExecutionError(str(exc)) from None
    missing = _missing_results(execgraph)
    if missing:
        raise ExecutionError(
            f"Node(s) {', '.join(missing)} produced no result and no crash file with plugin "
            f"{plugin!r}: the scheduler may have killed the job (time or memory limit); see "
            f"the job logs in {top / 'batch'}"
        )
    return execgraph


def execute(workflow, options: ExecutionOptions | None = None, /, **settings: Any) -> list[Path]:
    """Run a glmflow graph (see :func:`run_workflow`); return the files its sinks wrote.

    The sinks' (``ds_*`` nodes') results say what they wrote (the output folder is never
    listed or indexed), and each map or table its JSON sidecar; each file is counted once,
    and only if it is on disk (a warning names any that is not).
    """
    options = ExecutionOptions.from_settings(options, **settings)
    if options.poll_interval is None and options.plugin in LOCAL_PLUGINS:
        # Nipype's default 2 s poll dominates a chain of small local nodes
        options = ExecutionOptions.from_settings(options, poll_interval=LOCAL_POLL_SECONDS)
    execgraph = run_workflow(workflow, options)
    listed: dict[Path, None] = {}
    manifests = []  # sinks that stage their outputs: published now that the graph succeeded
    for node in execgraph.nodes():
        if node.name.startswith(("ds_", JOB_PREFIX)):  # sinks, and jobs of sub-workflows
            outputs = node.result.outputs
            if outputs is not None and outputs.out_files:
                listed.update(dict.fromkeys(Path(f) for f in ensure_list(outputs.out_files)))
            if outputs is not None and isdefined(getattr(outputs, "manifest_file", Undefined)):
                manifests.append(outputs.manifest_file)
    publish(manifests)
    files = [path for path in listed if path.is_file()]
    if len(files) < len(listed):
        gone = next(path for path in listed if not path.is_file())
        warnings.warn(
            f"{len(listed) - len(files)} file(s) the graph wrote are no longer on disk "
            f"(first: {gone}) and are not counted",
            stacklevel=2,
        )
    # each map's or table's JSON sidecar, where it has one, is a file written too
    sidecars = {sidecar_path(path): None for path in files}
    return files + [path for path in sidecars if path not in listed and path.is_file()]
