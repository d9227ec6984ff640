"""Check, build and run the participant level: what the CLI and the Python API call."""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nipype.utils.filemanip import ensure_list
from threadpoolctl import threadpool_limits

from glmflow.core.bids import RunInputs, discover_runs
from glmflow.core.model import load_model
from glmflow.core.outputs import check_output_dir, write_dataset_description
from glmflow.core.preflight import (
    cached_check_first_level,
    check_first_level,
    dataset_conditions,
)
from glmflow.errors import DatasetError
from glmflow.workflows.base import TaskAnalysis, init_glmflow_wf
from glmflow.workflows.execution import ExecutionError, run_workflow, validate_plugin_args

LOGGER = logging.getLogger("glmflow")
PathLike = str | os.PathLike
# Nipype's loop sleeps this long between passes; a no-change rerun takes ~1,000 passes
LOCAL_POLL_SECONDS = 0.002


@dataclass(frozen=True)
class ParticipantResult:
    """What a participant-level run produced."""

    output_dir: Path
    analyses: tuple[TaskAnalysis, ...]
    files: tuple[Path, ...]

    @property
    def runs(self) -> list[RunInputs]:
        return [run for analysis in self.analyses for run in analysis.runs]

    @property
    def subjects(self) -> list[str]:
        return sorted({run.subject for run in self.runs})


def plan_participant_level(
    *,
    bids_dir: PathLike,
    model: PathLike,
    derivatives: PathLike | None = None,
    participant_label: Sequence[str] | None = None,
    tasks: Sequence[str] | None = None,
    sessions: Sequence[str] | None = None,
    runs: Sequence[str] | None = None,
    space: str = "MNI152NLin2009cAsym",
    desc: str = "preproc",
    res: str | None = None,
    smoothing_fwhm: float | None = None,
    slice_time_ref: float | None = None,
    missing_conditions: str = "error",
    database_dir: PathLike | None = None,
) -> list[TaskAnalysis]:
    """Load the model, find the runs and check every run's design and contrasts.

    Nothing is computed on images (only headers and masks are read) and nothing is
    written but the pybids index in ``database_dir``. Every user mistake raises a
    :class:`glmflow.GlmflowError` here, before the graph exists.
    """
    specs = [load_model(model, task) for task in tasks] if tasks else [load_model(model)]
    analyses = []
    for spec in specs:
        if smoothing_fwhm is not None:
            glm = dataclasses.replace(spec.glm, smoothing_fwhm=smoothing_fwhm or None)
            spec = dataclasses.replace(spec, glm=glm)
        found = discover_runs(
            bids_dir,
            derivatives=derivatives,
            space=space,
            desc=desc,
            res=res,
            tasks=[spec.task],
            sessions=sessions,
            runs=runs,
            participant_label=participant_label,
            excludes=spec.excludes,
            database_dir=database_dir,
            slice_time_ref=slice_time_ref
            if slice_time_ref is not None
            else spec.glm.slice_time_ref,
            spec_tr=spec.tr,
            model_file=spec.source,
        )
        # automatic contrasts are named from the whole dataset, whatever the selection
        conditions = dataset_conditions(bids_dir, spec) if spec.auto_contrasts else None
        if database_dir is None:
            plan = check_first_level(
                found, spec, missing_conditions=missing_conditions, conditions=conditions
            )
        else:
            plan = cached_check_first_level(
                found,
                spec,
                missing_conditions=missing_conditions,
                conditions=conditions,
                cache_dir=database_dir,
            )
        analyses.append(TaskAnalysis(spec, tuple(found), plan.contrasts, plan.skipped))
    return analyses


def run_participant_level(
    *,
    bids_dir: PathLike,
    output_dir: PathLike,
    model: PathLike,
    work_dir: PathLike | None = None,
    plugin: str = "MultiProc",
    plugin_args: dict[str, Any] | None = None,
    n_procs: int | None = None,
    mem_gb: float | None = None,
    poll_interval: float | None = None,
    derivatives: PathLike | None = None,
    missing_conditions: str = "error",
    **selection: Any,
) -> ParticipantResult:
    """Fit the first-level models of a BIDS / fMRIPrep dataset and write BIDS derivatives.

    Parameters
    ----------
    bids_dir, output_dir, model
        The raw dataset, the output folder (maps go to ``output_dir/glmflow``) and the
        model file (glm-express ``task_information.json`` or a glmflow model).
    work_dir
        Nipype working directory: the cache. Rerunning with the same one recomputes only
        what a change touched. Default: ``./work``.
    plugin, plugin_args, n_procs, mem_gb, poll_interval
        Execution (see :func:`glmflow.workflows.execution.run_workflow`); they never
        invalidate the cache. The poll interval defaults to 0.01 s for local plugins and
        to Nipype's 2 s on a cluster.
    derivatives, missing_conditions, **selection
        As :func:`plan_participant_level` (participant_label, tasks, sessions, runs, space,
        desc, res, smoothing_fwhm, slice_time_ref).
    """
    work_dir = Path(work_dir or Path.cwd() / "work").absolute()
    out = check_output_dir(Path(output_dir) / "glmflow", bids_dir, derivatives)
    validate_work_dir(work_dir, bids_dir, derivatives)
    validate_plugin_args(plugin, plugin_args)  # before minutes of checks, not after
    if poll_interval is not None and not poll_interval > 0:
        raise ExecutionError(f"poll_interval must be positive seconds. Got {poll_interval}")
    # small SVDs (design checks) run 100x slower with BLAS threads fighting on a busy machine
    with threadpool_limits(limits=1):
        analyses = plan_participant_level(
            bids_dir=bids_dir,
            model=model,
            derivatives=derivatives,
            missing_conditions=missing_conditions,
            database_dir=work_dir / "bids_db",
            **selection,
        )
    workflow = init_glmflow_wf(
        analyses=analyses,
        output_dir=str(out),
        missing_conditions=missing_conditions,
        memo_dir=str(work_dir / "contrast_memo"),
    )
    workflow.base_dir = str(work_dir)
    fmriprep = Path(derivatives) if derivatives else Path(bids_dir) / "derivatives" / "fmriprep"
    write_dataset_description(out, source_datasets=[bids_dir, fmriprep])
    with warnings.catch_warnings():
        # the nodes repeat the pre-flight's steps and would say its warnings again (local
        # workers inherit this filter; cluster jobs write theirs to the job logs)
        warnings.simplefilter("ignore", UserWarning)
        files = execute(
            workflow,
            plugin=plugin,
            plugin_args=plugin_args,
            n_procs=n_procs,
            mem_gb=mem_gb,
            poll_interval=poll_interval,
        )
    return ParticipantResult(out, tuple(analyses), tuple(files))


def validate_work_dir(work_dir: Path, bids_dir: PathLike, derivatives: PathLike | None) -> None:
    """The cache never goes inside the inputs (the input dataset is never written to)."""
    work = work_dir.resolve()
    bids = Path(bids_dir).resolve()
    fmriprep = Path(derivatives).resolve() if derivatives else bids / "derivatives" / "fmriprep"
    inside = [folder for folder in (fmriprep, bids) if work == folder or folder in work.parents]
    if inside and not (inside[0] == bids and bids / "derivatives" in work.parents):
        raise DatasetError(
            f"Work directory {work_dir} is inside the input dataset {inside[0]}; pass -w "
            "(work_dir=) outside it (the default ./work is relative to the current folder)"
        )


def execute(
    workflow,
    *,
    plugin: str = "MultiProc",
    plugin_args: dict[str, Any] | None = None,
    n_procs: int | None = None,
    mem_gb: float | None = None,
    poll_interval: float | None = None,
) -> list[Path]:
    """Run a glmflow graph (see :func:`run_workflow`); return the files its sinks wrote.

    The sinks' results say what they wrote: the output folder is never listed or indexed.
    """
    local = plugin in ("Linear", "MultiProc")
    execgraph = run_workflow(
        workflow,
        plugin=plugin,
        plugin_args=plugin_args,
        n_procs=n_procs,
        mem_gb=mem_gb,
        # Nipype's default 2 s poll dominates a chain of small local nodes
        poll_interval=poll_interval
        if poll_interval is not None
        else (LOCAL_POLL_SECONDS if local else None),
    )
    files = []
    for node in execgraph.nodes():
        if node.name.startswith("ds_"):
            outputs = node.result.outputs
            if outputs is not None and outputs.out_files:
                files += [Path(f) for f in ensure_list(outputs.out_files)]
    return files


__all__ = ["ParticipantResult", "plan_participant_level", "run_participant_level"]
