"""Check, build and run the participant level on surfaces (GIFTI fsaverage, CIFTI fsLR)."""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from threadpoolctl import threadpool_limits

from glmflow.core.model import ContrastSpec, ModelSpec, load_model
from glmflow.core.outputs import write_dataset_description
from glmflow.core.preflight import check_first_level, dataset_conditions
from glmflow.core.surface.discover import SurfaceRun, discover_surface_runs
from glmflow.errors import ModelSpecError
from glmflow.execution import ExecutionOptions, absolute_path, execute, hold_folder
from glmflow.runners.entry import enter_level
from glmflow.runners.participant import ParticipantResult
from glmflow.workflows.surface import init_surface_wf

PathLike = str | os.PathLike


@dataclass(frozen=True)
class SurfaceAnalysis:
    """One task's model on one surface space: its runs and checked contrasts."""

    spec: ModelSpec
    runs: tuple[SurfaceRun, ...]
    contrasts: tuple[ContrastSpec, ...]
    skipped: dict[str, set[str]] = field(default_factory=dict)


def check_surface_spec(spec: ModelSpec, space: str) -> None:
    """What a surface analysis refuses, in one line each (never silently ignored)."""
    if spec.glm.smoothing_fwhm:
        raise ModelSpecError(
            f"smoothing_fwhm={spec.glm.smoothing_fwhm:g} in {spec.source} cannot be applied "
            f"on surface space {space}: glmflow does not smooth surfaces (nilearn 0.14 has "
            "no surface smoothing); set it to 0 / --smoothing-fwhm 0, or smooth the data "
            "beforehand (e.g. wb_command -cifti-smoothing)"
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
    for spec in specs:
        if smoothing_fwhm is not None:
            glm = dataclasses.replace(spec.glm, smoothing_fwhm=smoothing_fwhm or None)
            spec = dataclasses.replace(spec, glm=glm)
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
    :class:`SurfaceAnalysis` objects).
    """
    entry, selection = enter_level(
        bids_dir=bids_dir,
        output_dir=output_dir,
        derivatives=derivatives,
        execution=execution,
        keywords=keywords,
    )
    with hold_folder(entry.work_dir, "work"):
        with threadpool_limits(limits=1):
            analyses = plan_surface_level(
                bids_dir=entry.bids_dir,
                model=absolute_path(model),
                space=space,
                den=den,
                derivatives=entry.derivatives,
                missing_conditions=missing_conditions,
                database_dir=entry.work_dir / "bids_db",
                **selection,
            )
        workflow = init_surface_wf(
            analyses=analyses,
            output_dir=str(entry.out),
            missing_conditions=missing_conditions,
            name=f"glmflow_{space}_wf",
        )
        fmriprep = entry.derivatives or entry.bids_dir / "derivatives" / "fmriprep"
        with hold_folder(entry.out, "output"), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            files = execute(workflow, entry.options)
            write_dataset_description(entry.out, source_datasets=[entry.bids_dir, fmriprep])
    return ParticipantResult(entry.out, tuple(analyses), tuple(files), entry.work_dir)


__all__ = ["SurfaceAnalysis", "plan_surface_level", "run_surface_level"]
