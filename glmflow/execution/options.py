"""The execution settings of a run, as one object validated when it is made."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glmflow.execution.plugins import (
    BATCH_PLUGINS,
    PLUGINS,
    ExecutionError,
    validate_plugin_args,
)

# Nipype reserves 0.2 GB for a node that says nothing: a smaller budget can run no node
MIN_MEM_GB = 0.2
# the level runners' cache when none is given, in the current folder
DEFAULT_WORK_DIR = "work"
# cluster jobs: one per node, or one per subject (glmflow.execution.jobs)
CLUSTER_JOBS = ("node", "subject")


def absolute_path(path: str | os.PathLike) -> Path:
    """``path`` made absolute against the current folder, ``~`` expanded, once.

    Symbolic links are kept (a site's /scratch link stays readable in messages); ``..`` is
    folded so that messages name the folder the user meant.
    """
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path))))


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class ExecutionOptions:
    """How a glmflow graph runs: where its cache lives and which scheduler runs it.

    Every glmflow entry point (the CLI, :func:`glmflow.run_participant_level`,
    :func:`glmflow.run_group_level`, :func:`glmflow.run_workflow`) takes these settings, one
    by one or as this object, and hands the object down to the scheduler. None of them
    changes what is computed, so none invalidates the cache.

    Parameters
    ----------
    work_dir : path, optional
        Nipype working directory, the cache (made absolute here). On a cluster it must be
        on a file system the compute nodes share. The level runners default it to ./work.
    plugin : str
        One of :data:`glmflow.execution.PLUGINS`.
    plugin_args : dict
        Nipype plugin arguments (see :func:`glmflow.execution.validate_plugin_args`).
    n_procs : int, optional
        MultiProc: processes (default: all CPUs). SLURM / SGE: jobs in the queue at once.
    mem_gb : float, optional
        MultiProc: memory budget in GB (default: 90 % of the machine's); at least 0.2.
    poll_interval : float, optional
        Seconds between checks of running nodes / jobs (default: 0.002 locally, 2 on a
        cluster).
    verbose : bool
        Log every Nipype node as it runs (Nipype's INFO log, on stdout).
    progress : callable, bool or None
        The live status of the level (:mod:`glmflow.execution.progress`): None logs it on
        the ``glmflow.progress`` logger (INFO, every 30 s), False says nothing, True writes
        it to stderr (in place on a terminal), a callable receives a ``Status`` every
        ``progress.every`` seconds (10 without that attribute) and once at the end.
    cluster_jobs : str
        SLURM / SGE / MultiProc: ``"node"`` (default) runs each node as a job; ``"subject"``
        each subject, its runs and their combination run in it one after the other
        (:mod:`glmflow.execution.jobs`): for studies whose per-node jobs would flood the
        scheduler, or, locally, whose thousands of nodes keep MultiProc's loop busy (100
        subjects x 2 runs: benchmarks/RESULTS-scale.md). The same cache and the same maps
        either way.
    """

    work_dir: Path | None = None
    plugin: str = "MultiProc"
    plugin_args: Mapping[str, Any] = field(default_factory=dict)
    n_procs: int | None = None
    mem_gb: float | None = None
    poll_interval: float | None = None
    verbose: bool = False
    progress: Callable[..., Any] | bool | None = None
    cluster_jobs: str = "node"

    def __post_init__(self) -> None:
        if self.work_dir is not None:
            object.__setattr__(self, "work_dir", absolute_path(self.work_dir))
        args = validate_plugin_args(self.plugin, self.plugin_args)
        object.__setattr__(self, "plugin_args", args)
        if self.n_procs is not None and (
            isinstance(self.n_procs, bool) or not isinstance(self.n_procs, int) or self.n_procs < 1
        ):
            raise ExecutionError(
                f"n_procs (--n-cpus) must be an integer >= 1. Got {self.n_procs!r} instead."
            )
        if self.mem_gb is not None and not (_number(self.mem_gb) and self.mem_gb >= MIN_MEM_GB):
            raise ExecutionError(
                f"mem_gb (--mem-gb) must be at least {MIN_MEM_GB} GB, the memory Nipype "
                f"reserves for one node. Got {self.mem_gb!r} instead."
            )
        poll = self.poll_interval
        if poll is not None and not (_number(poll) and math.isfinite(poll) and poll > 0):
            raise ExecutionError(
                f"poll_interval (--poll-interval) must be positive seconds. Got {poll!r} instead."
            )
        progress = self.progress
        if not (progress is None or isinstance(progress, bool) or callable(progress)):
            raise ExecutionError(
                "progress must be None (log it), False (silent), True (stderr) or a callable "
                f"taking a Status. Got {self.progress!r} instead."
            )
        self._check_plugin_settings()

    def _check_plugin_settings(self) -> None:
        if self.cluster_jobs not in CLUSTER_JOBS:
            raise ExecutionError(
                f"cluster_jobs (--cluster-jobs) must be one of {', '.join(CLUSTER_JOBS)}. "
                f"Got {self.cluster_jobs!r} instead."
            )
        if self.cluster_jobs != "node" and self.plugin not in (*BATCH_PLUGINS, "MultiProc"):
            raise ExecutionError(
                f"cluster_jobs={self.cluster_jobs!r} groups the jobs of MultiProc or a cluster "
                f"plugin and means nothing to plugin {self.plugin!r}; leave it out"
            )
        if self.mem_gb is not None and self.plugin != "MultiProc":
            raise ExecutionError(
                f"mem_gb={self.mem_gb} sets MultiProc's memory budget and means nothing to "
                f"plugin {self.plugin!r} (batch jobs request each node's own mem_gb); leave it out"
            )
        if self.n_procs is not None and self.plugin in ("Linear", "SLURMGraph", "SGEGraph"):
            raise ExecutionError(
                f"n_procs={self.n_procs} means nothing to plugin {self.plugin!r} "
                "(MultiProc: processes; SLURM / SGE: jobs queued at once); leave it out"
            )

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        """The names of the settings (the keywords every entry point accepts)."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_settings(
        cls, options: ExecutionOptions | None = None, **settings: Any
    ) -> ExecutionOptions:
        """``options`` (or the defaults) with the settings given one by one applied on top."""
        unknown = sorted(set(settings) - set(cls.fields()))
        if unknown:
            raise TypeError(f"unknown execution setting(s) {', '.join(unknown)}")
        if options is None:
            return cls(**settings)
        return dataclasses.replace(options, **settings) if settings else options

    @classmethod
    def split(
        cls, keywords: dict[str, Any], options: ExecutionOptions | None = None
    ) -> tuple[ExecutionOptions, dict[str, Any]]:
        """(the options, the other keywords) of an entry point's ``**keywords``."""
        settings = {key: value for key, value in keywords.items() if key in cls.fields()}
        rest = {key: value for key, value in keywords.items() if key not in settings}
        return cls.from_settings(options, **settings), rest

    def with_default_work_dir(self) -> ExecutionOptions:
        """These options, with ``./work`` (of the current folder) when no work folder was given.

        The level runners' default; :func:`glmflow.run_workflow` uses the workflow's base_dir.
        """
        if self.work_dir is not None:
            return self
        return dataclasses.replace(self, work_dir=Path.cwd() / DEFAULT_WORK_DIR)


__all__ = ["MIN_MEM_GB", "PLUGINS", "ExecutionOptions", "absolute_path"]
