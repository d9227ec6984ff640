"""Plan, build and run the group level: what the CLI and the Python API call.

The group level reads the subject-level maps that the participant level wrote in
``OUTPUT_DIR/glmflow/sub-*/func`` (found by their BIDS entities, see
:mod:`glmflow.core.group.subject_maps`) and ``participants.tsv`` of the raw dataset, checks
everything (:mod:`glmflow.core.group.plan`), then fits one group model per first-level
contrast (one in all for a paired design) and writes dataset-level maps at the top of
``OUTPUT_DIR/glmflow``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glmflow.core.outputs import write_dataset_description, write_derivatives
from glmflow.errors import GroupModelError
from glmflow.execution import ExecutionOptions, absolute_path, hold_folder, unchanged
from glmflow.runners.entry import LevelEntry, absolute_paths, enter_level

if TYPE_CHECKING:  # the plan imports nilearn, the graph Nipype: not for an unchanged rerun
    from glmflow.core.group.plan import GroupPlan

PathLike = str | os.PathLike


@dataclass(frozen=True)
class GroupResult:
    """What a group-level run produced."""

    output_dir: Path
    plans: Sequence[GroupPlan] = field(repr=False)
    files: tuple[Path, ...] = ()
    reports: tuple[Path, ...] = ()  # the group models' pages and index.html (issue 10)
    summary: str = ""  # "N group model(s) of M subject(s)"

    def __post_init__(self) -> None:
        if not self.summary:
            n_models = sum(len(plan.analyses) for plan in self.plans)
            n_subjects = len({s for plan in self.plans for s in plan.subjects})
            text = f"{n_models} group model(s) of {n_subjects} subject(s)"
            object.__setattr__(self, "summary", text)


def plan_group_level(
    *,
    bids_dir: PathLike,
    output_dir: PathLike,
    model: PathLike,
    participant_label: Sequence[str] | None = None,
    tasks: Sequence[str] | None = None,
    space: str | None = "MNI152NLin2009cAsym",
    design: PathLike | None = None,
    mask: PathLike | None = None,
    smoothing_fwhm: float | None = None,
    inference: Mapping[str, Any] | None = None,
) -> list[GroupPlan]:
    """Load the model, find the subject maps and check the group design and contrasts.

    Only TSV, JSON sidecars and NIfTI headers are read, and nothing is written: every
    mistake raises a :class:`glmflow.GlmflowError` here, before the graph exists.

    Parameters
    ----------
    bids_dir
        The raw dataset (its ``participants.tsv`` holds groups and covariates).
    output_dir
        The participant level's output folder (maps in ``output_dir/glmflow``).
    model
        Model file; its ``group`` section (glm-express: ``group_level_regressors``).
    participant_label, tasks, space
        Selection, as for the participant level.
    design
        A design TSV (one row per subject, a ``participant_id`` or ``label`` column, numeric
        regressors) used instead of the model's design: a generic design.
    mask
        Group mask (default: nilearn's, computed from the maps).
    smoothing_fwhm
        Overrides ``group.smoothing_fwhm`` (0: none).
    inference
        Overrides of ``group.inference`` keys, e.g. ``{"method": "permutation",
        "n_perm": 1000, "seed": 1}``.
    """
    from glmflow.core.group.plan import override_group, plan_task_group
    from glmflow.core.model import load_model

    specs = [load_model(model, task) for task in tasks] if tasks else [load_model(model)]
    if mask is not None and not Path(mask).is_file():
        raise GroupModelError(f"Group mask {mask} does not exist; check the path")
    return [
        plan_task_group(
            override_group(spec, smoothing_fwhm, inference),
            glmflow_dir=Path(output_dir) / "glmflow",
            bids_dir=bids_dir,
            space=space,
            participant_label=participant_label,
            design_file=design,
            mask=mask,
        )
        for spec in specs
    ]


def run_group_level(
    *,
    bids_dir: PathLike,
    output_dir: PathLike,
    model: PathLike,
    execution: ExecutionOptions | None = None,
    n_jobs: int = 1,
    reports: bool = True,
    **keywords: Any,
) -> GroupResult:
    """Fit the group models of the participant level's subject maps; write BIDS maps.

    Parameters
    ----------
    bids_dir, output_dir, model
        The raw dataset (``participants.tsv``), the participant level's output folder
        (maps are read from and written to ``output_dir/glmflow``) and the model file.
    execution
        How to run (:class:`glmflow.execution.ExecutionOptions`), or its settings one by
        one (``work_dir``, default ``./work``, ``plugin``, ``plugin_args``, ``n_procs``,
        ``mem_gb``, ``poll_interval``, ``verbose``), as
        :func:`glmflow.runners.participant.run_participant_level`. Relative paths are
        taken from the current folder, here, once.
    n_jobs
        Processes nilearn uses inside one fit or permutation node (never hashed).
    reports
        Render each group model's HTML page
        (``OUTPUT_DIR/glmflow/group_task-<t>_contrast-<c>.html``) and ``index.html`` from
        the written maps (:mod:`glmflow.runners.reports`).
    **keywords
        The execution settings above, and the selection of :func:`plan_group_level`
        (participant_label, tasks, space, design, mask, smoothing_fwhm, inference).

    Returns
    -------
    GroupResult
        ``files``: the dataset-level maps, tables and designs written.
    """
    entry, selection = enter_level(
        bids_dir=bids_dir, output_dir=output_dir, derivatives=None, execution=execution,
        keywords=keywords,
    )  # fmt: skip
    selection = absolute_paths(selection, ("design", "mask"))
    bids_dir, work_dir, out = entry.bids_dir, entry.work_dir, entry.out
    # the output dataset is read (subject maps) as well as written: held from the start
    with hold_folder(work_dir, "work"), hold_folder(out, "output", create=False):
        return _recalled_or_run(entry, absolute_path(model), n_jobs, selection, reports)


def _recalled_or_run(entry: LevelEntry, model: Path, n_jobs: int, selection, reports: bool):
    """The last run's result if nothing it read or wrote changed (see
    :mod:`glmflow.execution.unchanged`), else :func:`_run_group` and its stamp."""
    work_dir, out = entry.work_dir, entry.out
    keyed = {**selection, "reports": reports}  # the pages are outputs too
    key = group_inputs_key(entry, model, keyed)
    recalled = unchanged.recall(work_dir, "group", out, key)
    if recalled is not None:
        recalled.say_warnings()
        pages = unchanged.pages(recalled, out)
        return GroupResult(out, recalled.lazy(), recalled.files, pages, recalled.summary)
    unchanged.forget(work_dir, "group", out)
    with unchanged.WarningLog() as log:
        result = _run_group(entry, model, n_jobs, selection, reports)
    unchanged.remember(
        work_dir, "group", out, (key, group_inputs_key(entry, model, keyed)),
        files=result.files, summary=result.summary, said=log.said, payload=tuple(result.plans),
        extra_outputs=[out / "dataset_description.json", *unchanged.own_pages(result.reports)],
    )  # fmt: skip
    return result


def group_inputs_key(entry: LevelEntry, model: Path, selection: Mapping[str, Any]) -> str:
    """The key of what the group level reads: the raw dataset (participants.tsv), the
    subject folders of the output, the model, design and mask files, the selection (the
    surface group level's holds its space)."""
    files = [model, *(selection[k] for k in ("design", "mask") if selection.get(k))]
    return unchanged.level_key(
        "group",
        [str(entry.bids_dir), str(entry.out)],
        [[str(path), unchanged.file_digest(path)] for path in files],
        sorted(selection.items()),
        unchanged.tree_identity(entry.bids_dir, skip=("derivatives",)),
        [unchanged.tree_identity(folder) for folder in sorted(entry.out.glob("sub-*"))],
    )


def _run_group(
    entry: LevelEntry, model: Path, n_jobs: int, selection, reports: bool = True
) -> GroupResult:
    from glmflow.core.group.plan import write_design_tsv
    from glmflow.execution import execute
    from glmflow.runners.reports import run_reports
    from glmflow.workflows.group_level import init_group_wf

    bids_dir, work_dir, out = entry.bids_dir, entry.work_dir, entry.out
    plans = plan_group_level(
        bids_dir=bids_dir, output_dir=entry.output_dir, model=model, **selection
    )
    inputs_dir = work_dir / "group_designs"
    design_files = {plan.spec.task: str(write_design_tsv(plan, inputs_dir)) for plan in plans}
    mask = selection.get("mask")
    workflow = init_group_wf(
        plans=plans, output_dir=str(out), design_files=design_files,
        use_mask=mask is not None, n_jobs=n_jobs,
    )  # fmt: skip
    if mask is not None:
        workflow.inputs.inputnode.mask_file = str(mask)
    written = execute(workflow, entry.options)
    files = _publish_designs(out, plans, design_files, bids_dir)
    pages = run_reports(output_dir=out, fmriprep_dir=None, execution=entry.options,
                        kinds=("group",)) if reports else []  # fmt: skip
    # a design the sinks also listed is counted once
    return GroupResult(out, tuple(plans), tuple(dict.fromkeys(written + files)), tuple(pages))


def _publish_designs(out: Path, plans, design_files, bids_dir) -> list[Path]:
    """Each task's design TSV at the top of the output, and the dataset description."""
    files = []
    for plan in plans:
        files += write_derivatives(
            out,
            entities=plan.entities,
            level="dataset",
            maps=[],
            design_files=[design_files[plan.spec.task]],
        )
    if not (out / "dataset_description.json").is_file():
        write_dataset_description(out, source_datasets=[bids_dir])
    return files


__all__ = ["GroupResult", "plan_group_level", "run_group_level"]
