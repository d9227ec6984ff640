"""Participant level: every subject of every task in one graph."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from nipype.pipeline import engine as pe

from glmflow.core.bids import RunInputs
from glmflow.core.model import ContrastSpec, ModelSpec
from glmflow.workflows.subject_level import init_subject_level_wf


@dataclass(frozen=True)
class TaskAnalysis:
    """One task's model, its runs, and the contrasts checked against every run's design.

    ``skipped`` maps a BOLD file to the contrasts with no term left in that run's design
    (only with ``--missing-conditions drop``).
    """

    spec: ModelSpec
    runs: tuple[RunInputs, ...]
    contrasts: tuple[ContrastSpec, ...]
    skipped: dict[str, set[str]] = field(default_factory=dict)


def init_glmflow_wf(
    *,
    analyses: Sequence[TaskAnalysis],
    output_dir: str,
    missing_conditions: str = "error",
    memo_dir: str | None = None,
    name: str = "glmflow_wf",
) -> pe.Workflow:
    """Build the participant-level graph: one subject-level workflow per subject and task.

    Parameters
    ----------
    analyses
        One :class:`TaskAnalysis` per task (see
        :func:`glmflow.runners.participant.plan_participant_level`).
    output_dir
        Root of the glmflow derivatives (``OUTPUT_DIR/glmflow``).
    missing_conditions
        ``"error"`` or ``"drop"``.
    memo_dir
        Folder remembering each contrast's maps, so a contrast edit recomputes only the
        contrasts that changed (e.g. inside the work directory); None: no memo.
    name
        Workflow name (also the top folder in the working directory).

    Returns
    -------
    nipype.pipeline.engine.Workflow
        Nothing is run while building it.
    """
    workflow = pe.Workflow(name=name)
    for analysis in analyses:
        by_subject: dict[str, list[RunInputs]] = {}
        for run in analysis.runs:
            by_subject.setdefault(run.subject, []).append(run)
        for subject, runs in sorted(by_subject.items()):
            subject_wf = init_subject_level_wf(
                runs=runs,
                spec=analysis.spec,
                contrasts=analysis.contrasts,
                output_dir=output_dir,
                skipped=analysis.skipped,
                missing_conditions=missing_conditions,
                memo_dir=memo_dir,
                name=f"sub_{subject}_task_{analysis.spec.task}_wf",
            )
            workflow.add_nodes([subject_wf])
    return workflow
