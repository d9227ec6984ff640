"""Check, build and run the participant and group levels on surfaces (GIFTI fsaverage,
CIFTI fsLR)."""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from threadpoolctl import threadpool_limits

from glmflow.core.conditions import dataset_conditions
from glmflow.core.model import ContrastSpec, ModelSpec, load_model
from glmflow.core.outputs import write_dataset_description
from glmflow.core.preflight import check_first_level
from glmflow.core.surface.discover import SurfaceRun, discover_surface_runs
from glmflow.errors import ModelSpecError
from glmflow.execution import ExecutionOptions, absolute_path, execute, hold_folder, unchanged
from glmflow.runners.entry import absolute_paths, enter_level
from glmflow.runners.group import GroupResult, group_inputs_key
from glmflow.runners.participant import ParticipantResult, with_smoothing
from glmflow.workflows.surface import init_surface_wf

if TYPE_CHECKING:
    from glmflow.core.group.plan import GroupPlan

PathLike = str | os.PathLike
#: Surface spaces whose runs glmflow smooths (the offline meshes of core/surface/meshes.py).
SMOOTHING_SPACES = ("fsaverage5", "fsLR")


@dataclass(frozen=True)
class SurfaceAnalysis:
    """One task's model on one surface space: its runs and checked contrasts."""

    spec: ModelSpec
    runs: tuple[SurfaceRun, ...]
    contrasts: tuple[ContrastSpec, ...]
    skipped: dict[str, set[str]] = field(default_factory=dict)


def check_surface_spec(spec: ModelSpec, space: str) -> None:
    """What a surface analysis refuses, in one line each (never silently ignored): smoothing
    without an offline mesh, the residual maps."""
    if spec.glm.smoothing_fwhm and space not in SMOOTHING_SPACES:
        raise ModelSpecError(
            f"smoothing_fwhm={spec.glm.smoothing_fwhm:g} in {spec.source} cannot be applied "
            f"on surface space {space}: glmflow smooths on the meshes it ships offline "
            f"({', '.join(SMOOTHING_SPACES)}); set it to 0 / --smoothing-fwhm 0, or smooth "
            "the data beforehand (e.g. mri_surf2surf --fwhm)"
        )
    if not spec.glm.minimize_memory:
        raise ModelSpecError(
            f"minimize_memory=false in {spec.source}: residual, predicted and r-square maps "
            f"are volume-only; set it to true for surface space {space}"
        )


def plan_surface_level(
    *,
    bids_dir: PathLike,
    model: PathLike,
    space: str,
    den: str | None = None,
    derivatives: PathLike | None = None,
    participant_label: Sequence[str] | None = None,
    tasks: Sequence[str] | None = None,
    sessions: Sequence[str] | None = None,
    runs: Sequence[str] | None = None,
    smoothing_fwhm: float | None = None,
    slice_time_ref: float | None = None,
    missing_conditions: str = "error",
    database_dir: PathLike | None = None,
) -> list[SurfaceAnalysis]:
    """Load the model, find the surface runs and check every run's design and contrasts
    (:func:`glmflow.core.preflight.check_first_level`, as for volumes)."""
    specs = [load_model(model, task) for task in tasks] if tasks else [load_model(model)]
    analyses = []
    for spec in (with_smoothing(s, smoothing_fwhm) for s in specs):
        check_surface_spec(spec, space)
        found = discover_surface_runs(
            bids_dir,
            space=space,
            den=den,
            derivatives=derivatives,
            tasks=[spec.task],
            sessions=sessions,
            runs=runs,
            participant_label=participant_label,
            excludes=spec.excludes,
            database_dir=database_dir,
            slice_time_ref=spec.glm.slice_time_ref if slice_time_ref is None else slice_time_ref,
            spec_tr=spec.tr,
            model_file=spec.source,
        )
        auto = spec.auto_contrasts
        conditions = dataset_conditions(bids_dir, spec, cache_dir=database_dir) if auto else None
        plan = check_first_level(
            [r.inputs for r in found],
            spec,
            missing_conditions=missing_conditions,
            conditions=conditions,
        )
        analyses.append(SurfaceAnalysis(spec, tuple(found), plan.contrasts, plan.skipped))
    return analyses


def run_surface_level(
    *,
    bids_dir: PathLike,
    output_dir: PathLike,
    model: PathLike,
    space: str,
    den: str | None = None,
    execution: ExecutionOptions | None = None,
    derivatives: PathLike | None = None,
    missing_conditions: str = "error",
    **keywords: Any,
) -> ParticipantResult:
    """Fit the first level on ``space`` (and ``den``) and write BIDS derivatives.

    As :func:`glmflow.runners.participant.run_participant_level` (its result holds
    :class:`SurfaceAnalysis` objects), with its no-change stamp
    (:mod:`glmflow.execution.unchanged`, one per space): a rerun that nothing touched
    returns the last result at once.
    """
    entry, selection = enter_level(
        bids_dir=bids_dir,
        output_dir=output_dir,
        derivatives=derivatives,
        execution=execution,
        keywords=keywords,
    )
    model, level = absolute_path(model), f"participant-{space}-{den or ''}"
    fmriprep = entry.derivatives or entry.bids_dir / "derivatives" / "fmriprep"

    def key() -> str:
        return unchanged.dataset_level_key(
            level, bids_dir=entry.bids_dir, fmriprep=fmriprep, output_dir=entry.out,
            model=model, options=[missing_conditions, sorted(selection.items())],
        )  # fmt: skip

    with hold_folder(entry.work_dir, "work"):
        before = key()
        recalled = unchanged.recall(entry.work_dir, level, entry.out, before)
        if recalled is not None:
            recalled.say_warnings()
            return ParticipantResult(entry.out, recalled.lazy(), recalled.files,
                                     entry.work_dir, summary=recalled.summary)  # fmt: skip
        unchanged.forget(entry.work_dir, level, entry.out)
        with unchanged.WarningLog() as log:
            result = _run_surface(entry, model, space, den, missing_conditions, selection)
        unchanged.remember(
            entry.work_dir, level, entry.out, (before, key()), files=result.files,
            summary=result.summary, said=log.said, payload=tuple(result.analyses),
            extra_outputs=[entry.out / "dataset_description.json"],
        )  # fmt: skip
    return result


def _run_surface(entry, model, space, den, missing_conditions, selection) -> ParticipantResult:
    """Plan, build and run the surface graph (in the held work folder)."""
    with threadpool_limits(limits=1):
        analyses = plan_surface_level(
            bids_dir=entry.bids_dir, model=model, space=space, den=den,
            derivatives=entry.derivatives, missing_conditions=missing_conditions,
            database_dir=entry.work_dir / "bids_db", **selection,
        )  # fmt: skip
    workflow = init_surface_wf(analyses=analyses, output_dir=str(entry.out),
                               missing_conditions=missing_conditions,
                               name=f"glmflow_{space}_wf")  # fmt: skip
    fmriprep = entry.derivatives or entry.bids_dir / "derivatives" / "fmriprep"
    with hold_folder(entry.out, "output"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        files = execute(workflow, entry.options)
        write_dataset_description(entry.out, source_datasets=[entry.bids_dir, fmriprep])
    return ParticipantResult(entry.out, tuple(analyses), tuple(files), entry.work_dir)


def plan_surface_group_level(
    *,
    bids_dir: PathLike,
    output_dir: PathLike,
    model: PathLike,
    space: str,
    den: str | None = None,
    participant_label: Sequence[str] | None = None,
    tasks: Sequence[str] | None = None,
    design: PathLike | None = None,
    smoothing_fwhm: float | None = None,
    inference: Mapping[str, Any] | None = None,
) -> list[GroupPlan]:
    """As :func:`glmflow.runners.group.plan_group_level` on the surface subject maps of
    ``space`` (and ``den``): the same design and contrast rules, then every subject map
    checked to be on one mesh / brain-model layout, before any map is read whole."""
    from glmflow.core.group.plan import override_group, plan_task_group
    from glmflow.core.surface.group_level import (
        check_surface_contrasts,
        check_surface_group_spec,
        check_surface_maps,
        find_surface_maps,
    )

    specs = [load_model(model, task) for task in tasks] if tasks else [load_model(model)]
    glmflow_dir = Path(output_dir) / "glmflow"
    plans = []
    for spec in specs:
        spec = override_group(spec, smoothing_fwhm, inference)
        check_surface_group_spec(spec, space)
        plan = plan_task_group(
            spec, glmflow_dir=glmflow_dir, bids_dir=bids_dir, space=space,
            participant_label=participant_label, design_file=design,
            maps=find_surface_maps(glmflow_dir, task=spec.task, space=space, den=den),
            check_maps=check_surface_maps,
        )  # fmt: skip
        check_surface_contrasts(plan)
        entities = {k: v for k, v in plan.entities.items() if k != "hemi"}  # set per part
        plans.append(dataclasses.replace(plan, entities=entities))
    return plans


def run_surface_group_level(
    *,
    bids_dir: PathLike,
    output_dir: PathLike,
    model: PathLike,
    space: str,
    den: str | None = None,
    execution: ExecutionOptions | None = None,
    reports: bool = True,
    **keywords: Any,
) -> GroupResult:
    """The group level on surface subject maps (:func:`plan_surface_group_level`): one
    node per group contrast, maps written as GIFTI per hemisphere or CIFTI dscalar at the
    top of ``OUTPUT_DIR/glmflow`` once every node succeeded, as
    :func:`glmflow.runners.group.run_group_level` writes volumes, and with ``reports``
    each group model's page (``group_task-<t>_space-<s>[_den-<d>]_contrast-<c>.html``) and
    ``index.html``; with its no-change stamp (one per space and density).
    """
    entry, selection = enter_level(bids_dir=bids_dir, output_dir=output_dir, derivatives=None,
                                   execution=execution, keywords=keywords)  # fmt: skip
    selection = absolute_paths(selection, ("design",))
    model, level = absolute_path(model), f"group-{space}-{den or ''}"
    keyed = {**selection, "space": space, "den": den, "reports": reports}
    with hold_folder(entry.work_dir, "work"), hold_folder(entry.out, "output", create=False):
        before = group_inputs_key(entry, model, keyed)
        recalled = unchanged.recall(entry.work_dir, level, entry.out, before)
        if recalled is not None:
            recalled.say_warnings()
            return GroupResult(entry.out, recalled.lazy(), recalled.files,
                               unchanged.pages(recalled, entry.out), recalled.summary)  # fmt: skip
        unchanged.forget(entry.work_dir, level, entry.out)
        with unchanged.WarningLog() as log:
            result = _run_surface_group(entry, model, space, den, selection, reports)
        unchanged.remember(
            entry.work_dir, level, entry.out, (before, group_inputs_key(entry, model, keyed)),
            files=result.files, summary=result.summary, said=log.said,
            payload=tuple(result.plans), extra_outputs=[
                entry.out / "dataset_description.json", *unchanged.own_pages(result.reports)],
        )  # fmt: skip
    return result


def _run_surface_group(entry, model, space, den, selection, reports=True) -> GroupResult:
    """Plan, build and run the surface group graph, then write the designs (and pages)."""
    from glmflow.core.group.plan import write_design_tsv
    from glmflow.core.outputs import write_derivatives
    from glmflow.runners.reports import run_reports
    from glmflow.workflows.surface_group import init_surface_group_wf

    with threadpool_limits(limits=1):
        plans = plan_surface_group_level(
            bids_dir=entry.bids_dir, output_dir=entry.output_dir, model=model, space=space,
            den=den, **selection,
        )  # fmt: skip
    designs = entry.work_dir / "surface_group_designs"
    design_files = {plan.spec.task: str(write_design_tsv(plan, designs)) for plan in plans}
    workflow = init_surface_group_wf(plans=plans, output_dir=str(entry.out),
                                     design_files=design_files,
                                     name=f"glmflow_{space}_group_wf")  # fmt: skip
    files = execute(workflow, entry.options)
    for plan in plans:
        design_file = design_files[plan.spec.task]
        files += write_derivatives(entry.out, entities=plan.entities, level="dataset",
                                   maps=[], design_files=[design_file],
                                   design_grid=True)  # fmt: skip
    if not (entry.out / "dataset_description.json").is_file():
        write_dataset_description(entry.out, source_datasets=[entry.bids_dir])
    pages = run_reports(output_dir=entry.out, fmriprep_dir=None, execution=entry.options,
                        kinds=("group",)) if reports else []  # fmt: skip
    return GroupResult(entry.out, tuple(plans), tuple(dict.fromkeys(files)), tuple(pages))


__all__ = [
    "SurfaceAnalysis",
    "plan_surface_group_level",
    "plan_surface_level",
    "run_surface_group_level",
    "run_surface_level",
]
