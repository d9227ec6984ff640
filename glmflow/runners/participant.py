"""Check, build and run the participant level: what the CLI and the Python API call."""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glmflow.core.outputs import write_dataset_description
from glmflow.execution import ExecutionOptions, absolute_path, hold_folder, unchanged
from glmflow.runners.entry import LevelEntry, enter_level

if TYPE_CHECKING:  # the planning and the graph import pybids, nilearn and Nipype (~3 s):
    # loaded when the level runs, not for a rerun that nothing touched
    from glmflow.core.bids import RunInputs
    from glmflow.workflows.base import TaskAnalysis

LOGGER = logging.getLogger("glmflow")
PathLike = str | os.PathLike


@dataclass(frozen=True)
class ParticipantResult:
    """What a participant-level run produced (``work_dir``: the cache it used)."""

    output_dir: Path
    analyses: Sequence[TaskAnalysis]
    files: tuple[Path, ...]
    work_dir: Path | None = None
    reports: tuple[Path, ...] = ()  # the subject pages and index.html (issue 10)
    summary: str = ""  # "N run(s) of M subject(s)"

    def __post_init__(self) -> None:
        if not self.summary:
            text = f"{len(self.runs)} run(s) of {len(self.subjects)} subject(s)"
            object.__setattr__(self, "summary", text)

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
    memo_dir: PathLike | None = None,
) -> list[TaskAnalysis]:
    """Load the model, find the runs and check every run's design and contrasts.

    Only headers and masks are read; nothing is written but the pybids index and checks in
    ``database_dir`` and the designs in ``memo_dir`` (the graph's ``build_design`` recalls
    them). Every user mistake raises a :class:`glmflow.GlmflowError` here.
    """
    from glmflow.core import preflight
    from glmflow.core.bids import discover_runs
    from glmflow.core.conditions import dataset_conditions
    from glmflow.core.model import load_model
    from glmflow.workflows.base import TaskAnalysis

    specs = [load_model(model, task) for task in tasks] if tasks else [load_model(model)]
    analyses = []
    for spec in map(partial(with_smoothing, smoothing_fwhm=smoothing_fwhm), specs):
        found = discover_runs(
            bids_dir,
            derivatives=derivatives,
            space=space,
            desc=desc,
            res=res,
            tasks=[spec.task],
            task_given=bool(tasks),  # else the task is the model's: a missing one blames it
            sessions=sessions,
            runs=runs,
            participant_label=participant_label,
            excludes=spec.excludes,
            database_dir=database_dir,
            slice_time_ref=spec.glm.slice_time_ref if slice_time_ref is None else slice_time_ref,
            spec_tr=spec.tr,
            model_file=spec.source,
        )
        auto = spec.auto_contrasts  # named from the whole dataset, not the selection
        conditions = dataset_conditions(bids_dir, spec, cache_dir=database_dir) if auto else None
        check = dict(missing_conditions=missing_conditions, conditions=conditions)
        check.update(memo_dir=memo_dir)
        if database_dir is None:
            plan = preflight.check_first_level(found, spec, **check)
        else:
            plan = preflight.cached_check_first_level(found, spec, **check, cache_dir=database_dir)
        analyses.append(TaskAnalysis(spec, tuple(found), plan.contrasts, plan.skipped))
    return analyses


def with_smoothing(spec, smoothing_fwhm: float | None):
    """``spec`` with the smoothing given on the command line (None: the model's; 0: none)."""
    if smoothing_fwhm is None:
        return spec
    glm = dataclasses.replace(spec.glm, smoothing_fwhm=smoothing_fwhm or None)
    return dataclasses.replace(spec, glm=glm)


def run_participant_level(
    *,
    bids_dir: PathLike,
    output_dir: PathLike,
    model: PathLike,
    execution: ExecutionOptions | None = None,
    derivatives: PathLike | None = None,
    missing_conditions: str = "error",
    reports: bool = True,
    **keywords: Any,
) -> ParticipantResult:
    """Fit the first-level models of a BIDS / fMRIPrep dataset and write BIDS derivatives.

    Parameters
    ----------
    bids_dir, output_dir, model
        The raw dataset, the output folder (maps go to ``output_dir/glmflow``) and the
        model file (glm-express ``task_information.json`` or a glmflow model). Relative
        paths are taken from the current folder, here, once.
    execution
        How to run (:class:`glmflow.execution.ExecutionOptions`); or its settings one by
        one: ``work_dir`` (the cache, default ``./work``; a rerun with the same one
        recomputes only what a change touched), ``plugin``, ``plugin_args``, ``n_procs``,
        ``mem_gb``, ``poll_interval``, ``verbose``, which override the object's. None of
        them invalidates the cache.
    derivatives, missing_conditions, **keywords
        As :func:`plan_participant_level` (participant_label, tasks, sessions, runs, space,
        desc, res, smoothing_fwhm, slice_time_ref).
    reports
        Render each subject's HTML page (``OUTPUT_DIR/glmflow/sub-<label>.html``) and
        ``index.html`` from the written outputs (:mod:`glmflow.runners.reports`).

    Raises
    ------
    glmflow.execution.FolderInUseError
        Another run holds the work or output folder (one line naming it).

    A rerun that nothing touched returns the last run's result at once, its ``analyses``
    read back on first use (:mod:`glmflow.execution.unchanged`).
    """
    entry, selection = enter_level(
        bids_dir=bids_dir, output_dir=output_dir, derivatives=derivatives, execution=execution,
        keywords=keywords,
    )  # fmt: skip
    model = absolute_path(model)
    from glmflow.core.bsm import is_bids_stats_model_file

    if is_bids_stats_model_file(model):  # issue 9: BSM files have their own runner (and stamp)
        from glmflow.runners.bsm import run_bids_stats_model

        return run_bids_stats_model(bids_dir=bids_dir, output_dir=output_dir, model=model,
            execution=execution, derivatives=derivatives,
            missing_conditions=missing_conditions, reports=reports, **keywords)  # fmt: skip
    selection = {**selection, "reports": reports}  # (part of the key: pages are outputs)
    key = _inputs_key(entry, model, missing_conditions, selection)
    recalled = _recalled(entry, key)
    if recalled is not None:
        return recalled
    with hold_folder(entry.work_dir, "work"):
        return _run_stamped(entry, model, missing_conditions, selection, key)


def _recalled(entry: LevelEntry, key: str) -> ParticipantResult | None:
    """The last run's result if nothing it read or wrote changed since (its warnings said)."""
    with hold_folder(entry.work_dir, "work"):
        recalled = unchanged.recall(entry.work_dir, "participant", entry.out, key)
    if recalled is None:
        return None
    recalled.say_warnings()
    pages = unchanged.pages(recalled, entry.out)
    return ParticipantResult(
        entry.out, recalled.lazy(), recalled.files, entry.work_dir, pages, recalled.summary
    )


def _run_stamped(entry: LevelEntry, model: Path, missing_conditions: str, selection, key: str):
    """:func:`_run`, then the stamp of its success (its inputs' key before and after it)."""
    unchanged.forget(entry.work_dir, "participant", entry.out)
    with unchanged.WarningLog() as log:
        result = _run(entry, model, missing_conditions, selection)
    unchanged.remember(
        entry.work_dir, "participant", entry.out,
        (key, _inputs_key(entry, model, missing_conditions, selection)),
        files=result.files, summary=result.summary, said=log.said,
        payload=tuple(result.analyses),
        extra_outputs=[entry.out / DESCRIPTION, *unchanged.own_pages(result.reports)],
    )  # fmt: skip
    return result


DESCRIPTION = "dataset_description.json"


def _inputs_key(entry: LevelEntry, model: Path, missing_conditions: str, selection) -> str:
    """The key of everything the level reads (:func:`glmflow.execution.unchanged.level_key`).

    The raw dataset but its ``derivatives`` (work and output folders may live there), the
    fMRIPrep folder, the model file's bytes, the selection and the output folder.
    """
    fmriprep = entry.derivatives or entry.bids_dir / "derivatives" / "fmriprep"
    return unchanged.dataset_level_key(
        "participant", bids_dir=entry.bids_dir, fmriprep=fmriprep, output_dir=entry.out,
        model=model, options=[missing_conditions, sorted(selection.items())],
    )  # fmt: skip


def _run(
    entry: LevelEntry, model: Path, missing_conditions: str, selection: dict[str, Any]
) -> ParticipantResult:
    """Plan, build and run, in the held work folder; hold the output folder to write it."""
    from threadpoolctl import threadpool_limits

    from glmflow.execution import execute
    from glmflow.runners.reports import run_reports
    from glmflow.workflows.base import init_glmflow_wf

    selection = dict(selection)
    reports = selection.pop("reports", True)
    bids_dir, derivatives, work_dir, out = (
        entry.bids_dir, entry.derivatives, entry.work_dir, entry.out
    )  # fmt: skip
    memo_dir = work_dir / "contrast_memo"
    # small SVDs (design checks) run 100x slower with BLAS threads fighting on a busy machine
    with threadpool_limits(limits=1):
        analyses = plan_participant_level(
            bids_dir=bids_dir,
            model=model,
            derivatives=derivatives,
            missing_conditions=missing_conditions,
            database_dir=work_dir / "bids_db",
            memo_dir=memo_dir,
            **selection,
        )
    workflow = init_glmflow_wf(
        analyses=analyses,
        output_dir=str(out),
        missing_conditions=missing_conditions,
        memo_dir=str(memo_dir),
    )
    fmriprep = derivatives or bids_dir / "derivatives" / "fmriprep"
    with hold_folder(out, "output"), warnings.catch_warnings():
        # the nodes repeat the pre-flight's steps and would say its warnings again (local
        # workers inherit this filter; cluster jobs write theirs to the job logs)
        warnings.simplefilter("ignore", UserWarning)
        files = execute(workflow, entry.options)  # publishes the outputs once all succeeded
        write_dataset_description(out, source_datasets=[bids_dir, fmriprep])
        pages = run_reports(output_dir=out, fmriprep_dir=fmriprep, execution=entry.options,
                            kinds=("subject",)) if reports else []  # fmt: skip
    return ParticipantResult(out, tuple(analyses), tuple(files), work_dir, tuple(pages))


__all__ = ["ParticipantResult", "plan_participant_level", "run_participant_level"]
