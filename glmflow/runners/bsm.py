"""Run a BIDS Stats Model: plan (pybids, every check) -> one cached graph -> published maps.

Every node (run, session, subject, dataset) is planned and checked before any compute
(:func:`glmflow.core.bsm.plan.plan_bids_stats_model`), fitted in one Nipype graph
(:func:`glmflow.workflows.bsm.init_bsm_wf`) and published in FitLins' layout only when the
whole graph has succeeded.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glmflow.core.bsm.detect import mask_images
from glmflow.errors import ModelSpecError
from glmflow.execution import ExecutionOptions, absolute_path, hold_folder, unchanged
from glmflow.runners.entry import LevelEntry, enter_level

if TYPE_CHECKING:  # planning and the graph import pybids, nilearn and Nipype (~4 s): loaded
    # when the level runs, not for a rerun that nothing touched
    from glmflow.core.bsm.plan import BsmPlan
    from glmflow.core.model import InferenceSpec

PathLike = str | os.PathLike
LEVEL = "bsm"
DESCRIPTION = "dataset_description.json"


@dataclass(frozen=True)
class BsmResult:
    """What a BSM run wrote (``output_dir/glmflow/node-<Name>/...``) and its plan.

    ``plans`` holds the one plan (read back on first use when the run was recalled; pybids'
    graph is not kept); ``summary``: "N run(s) of M subject(s)".
    """

    output_dir: Path
    plans: Sequence[BsmPlan]
    files: tuple[Path, ...]
    work_dir: Path
    reports: tuple[Path, ...] = ()  # the subject and dataset pages and index.html (issue 10)
    summary: str = ""

    def __post_init__(self) -> None:
        if not self.summary:
            text = f"{len(self.runs)} run(s) of {len(self.subjects)} subject(s)"
            object.__setattr__(self, "summary", text)

    @property
    def plan(self) -> BsmPlan:
        return self.plans[0]

    @property
    def runs(self) -> list:
        return list(self.plan.runs)

    @property
    def subjects(self) -> list[str]:
        return sorted({run.entities["subject"] for run in self.plan.runs})


def run_bids_stats_model(
    *,
    bids_dir: PathLike,
    output_dir: PathLike,
    model: PathLike,
    execution: ExecutionOptions | None = None,
    derivatives: PathLike | None = None,
    missing_conditions: str = "error",
    participant_label: list[str] | None = None,
    inference: Mapping[str, Any] | None = None,
    reports: bool = True,
    **keywords: Any,
) -> BsmResult:
    """Fit a BIDS Stats Model (``*_smdl.json``) on a BIDS / fMRIPrep dataset.

    Every check (the model's structure, its variables, entities and contrasts against the
    dataset) runs before any compute; each run's design is pybids' ``X`` plus the cosine
    drift of ``HighPassFilterCutoffHz`` (with ``LowPassFilterCutoffHz``, the design and the
    run's data low-passed alike by nilearn's Butterworth filter). ``inference``: glmflow's
    group inference on every Dataset node (:class:`glmflow.core.model.InferenceSpec`
    fields, e.g. ``{"method": "permutation", "n_perm": 1000, "permutation_stat": "tfce"}``;
    none by default, as FitLins). ``reports``: the subject and dataset nodes' HTML pages
    (:mod:`glmflow.runners.reports`). ``execution`` and ``keywords`` as
    :func:`glmflow.runners.participant.run_participant_level`.

    A rerun that nothing touched (the model file's bytes, every input file, the options,
    every output) returns the last run's result at once, without pybids or a graph
    (:mod:`glmflow.execution.unchanged`); its plan is read back on first use.
    """
    spec = None if not inference else inference_spec(inference)
    entry, rest = enter_level(
        bids_dir=bids_dir,
        output_dir=output_dir,
        derivatives=derivatives,
        execution=execution,
        keywords=keywords,
    )
    space = rest.pop("space", None)  # the CLI always gives one; the model's Input wins
    if rest.get("desc") == "preproc":  # the CLI's default: fMRIPrep's preprocessed BOLD
        rest.pop("desc")
    _refuse_selection(rest)
    run = _BsmRun(entry, absolute_path(model), spec, {
        "missing": missing_conditions, "participant_label": participant_label, "space": space,
        "inference": sorted((inference or {}).items()), "reports": reports,
    })  # fmt: skip
    with hold_folder(entry.work_dir, "work"):
        return run.recalled() or run.stamped()


@dataclass(frozen=True)
class _BsmRun:
    """One BSM level run: its folders, model file, inference and options (the key's)."""

    entry: LevelEntry
    model: Path
    spec: InferenceSpec | None
    options: Mapping[str, Any]

    def key(self) -> str:
        """The level key, with the mask images the model names by path (outside the data)."""
        masks = unchanged.file_identities(mask_images(self.model))
        return unchanged.dataset_level_key(
            LEVEL, bids_dir=self.entry.bids_dir, fmriprep=self.fmriprep,
            output_dir=self.entry.out, model=self.model,
            options=[sorted(self.options.items()), masks],
        )  # fmt: skip

    @property
    def fmriprep(self) -> Path:
        return self.entry.derivatives or self.entry.bids_dir / "derivatives" / "fmriprep"

    def recalled(self) -> BsmResult | None:
        """The last run's result if nothing it read or wrote changed (its warnings said)."""
        entry = self.entry
        recalled = unchanged.recall(entry.work_dir, LEVEL, entry.out, self.key())
        if recalled is None:
            return None
        recalled.say_warnings()
        files = tuple(p for p in recalled.files if p.suffix != ".json")  # maps and designs
        pages = unchanged.pages(recalled, entry.out)
        return BsmResult(
            entry.out, recalled.lazy(), files, entry.work_dir, pages, summary=recalled.summary
        )

    def stamped(self) -> BsmResult:
        """The level run, then the stamp of its success (its inputs' key before and after)."""
        entry, key = self.entry, self.key()
        unchanged.forget(entry.work_dir, LEVEL, entry.out)
        with unchanged.WarningLog() as log:
            result, sidecars = self.run()
        plan = dataclasses.replace(result.plan, graph=None)  # pybids' graph holds the index
        unchanged.remember(
            entry.work_dir, LEVEL, entry.out, (key, self.key()),
            files=[*result.files, *sidecars], summary=result.summary, said=log.said,
            payload=(plan,),
            extra_outputs=[entry.out / DESCRIPTION, *unchanged.own_pages(result.reports)],
        )  # fmt: skip
        return result

    def run(self) -> tuple[BsmResult, list[Path]]:
        """Plan, build and run (the work folder held): the result and the sidecars written."""
        from threadpoolctl import threadpool_limits

        from glmflow.core.bids.layout import load_layout
        from glmflow.core.bsm.chain import check_inference
        from glmflow.core.bsm.plan import plan_bids_stats_model
        from glmflow.core.publish import write_dataset_description
        from glmflow.execution import execute
        from glmflow.runners.reports import run_reports
        from glmflow.workflows.bsm import init_bsm_wf

        entry, options, work = self.entry, self.options, self.entry.work_dir
        with threadpool_limits(limits=1):
            layout = load_layout(entry.bids_dir, self.fmriprep, work / "bids_db")
            plan = plan_bids_stats_model(self.model, layout, work / "bsm_designs",
                                         space=options["space"],
                                         participant_label=options["participant_label"],
                                         missing=options["missing"])  # fmt: skip
        if self.spec is not None:
            check_inference(plan.units, self.spec.method, plan.source)
        workflow = init_bsm_wf(plan=plan, output_dir=str(entry.out), inference=self.spec,
                               memo_dir=str(work / "contrast_memo"))  # fmt: skip
        with hold_folder(entry.out, "output"), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            # the sinks stage; execute publishes once every node has succeeded
            written = execute(workflow, entry.options)
            write_dataset_description(entry.out, source_datasets=[entry.bids_dir, self.fmriprep])
            pages = run_reports(output_dir=entry.out, fmriprep_dir=self.fmriprep,
                                execution=entry.options) if options["reports"] else []  # fmt: skip
        files = tuple(p for p in written if p.suffix != ".json")  # maps and designs
        sidecars = [p for p in written if p.suffix == ".json"]
        return BsmResult(entry.out, (plan,), files, work, tuple(pages)), sidecars


# participant-level options that a BSM file states itself (Input) or does not have
_IN_MODEL = {
    "tasks": "--task",
    "sessions": "--session",
    "runs": "--run",
    "desc": "--desc",
    "res": "--res",
    "smoothing_fwhm": "--smoothing-fwhm",
    "slice_time_ref": "--slice-time-ref",
}


def _refuse_selection(rest: dict[str, Any]) -> None:
    for key, value in rest.items():
        if value is None:
            continue
        option = _IN_MODEL.get(key)
        if option is None:
            raise TypeError(f"run_bids_stats_model got an unknown keyword '{key}'")
        raise ModelSpecError(
            f"{option} is not used with a BIDS Stats Model: select the data "
            'in the model\'s "Input" (task, session, run, space) instead'
        )


def inference_spec(inference: Mapping[str, Any]) -> InferenceSpec:
    """The inference options checked (one line naming the option on a bad value)."""
    from glmflow.core.model import InferenceSpec

    options = dict(inference)
    if options.get("method") == "tdp":
        options.setdefault("two_sided", False)  # tdp tests positive clusters only
    try:
        return InferenceSpec.from_dict(options, what="the inference options")
    except ModelSpecError as err:
        raise ModelSpecError(f"--inference: {err}") from None
