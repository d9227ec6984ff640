"""Run a BIDS Stats Model: plan (pybids, every check) -> one cached graph -> published maps.

Every node (run, session, subject, dataset) is planned and checked before any compute
(:func:`glmflow.core.bsm.plan.plan_bids_stats_model`), fitted in one Nipype graph
(:func:`glmflow.workflows.bsm.init_bsm_wf`) and published in FitLins' layout only when the
whole graph has succeeded.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits

from glmflow.core.bids.layout import load_layout
from glmflow.core.bsm.chain import check_inference
from glmflow.core.bsm.plan import BsmPlan, plan_bids_stats_model
from glmflow.core.model import InferenceSpec
from glmflow.core.publish import write_dataset_description
from glmflow.errors import ModelSpecError
from glmflow.execution import ExecutionOptions, execute, hold_folder
from glmflow.runners.entry import enter_level
from glmflow.workflows.bsm import init_bsm_wf

PathLike = str | os.PathLike


@dataclass(frozen=True)
class BsmResult:
    """What a BSM run wrote (``output_dir/glmflow/node-<Name>/...``) and its plan."""

    output_dir: Path
    plan: BsmPlan
    files: tuple[Path, ...]
    work_dir: Path
    reports: tuple[Path, ...] = ()  # the subject and dataset pages and index.html (issue 10)

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
    drift of ``HighPassFilterCutoffHz``. ``inference``: glmflow's group inference on every
    Dataset node (:class:`glmflow.core.model.InferenceSpec` fields, e.g. ``{"method":
    "permutation", "n_perm": 1000, "permutation_stat": "tfce"}``; none by default, as
    FitLins). ``reports``: the subject and dataset nodes' HTML pages
    (:mod:`glmflow.runners.reports`). ``execution`` and ``keywords`` as
    :func:`glmflow.runners.participant.run_participant_level`.
    """
    from glmflow.runners.reports import run_reports

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
    deriv = entry.derivatives or entry.bids_dir / "derivatives" / "fmriprep"
    work = entry.work_dir
    with hold_folder(work, "work"):
        with threadpool_limits(limits=1):
            layout = load_layout(entry.bids_dir, deriv, work / "bids_db")
            plan = plan_bids_stats_model(model, layout, work / "bsm_designs", space=space,
                                         participant_label=participant_label,
                                         missing=missing_conditions)  # fmt: skip
        if spec is not None:
            check_inference(plan.units, spec.method, plan.source)
        workflow = init_bsm_wf(plan=plan, output_dir=str(entry.out), inference=spec,
                               memo_dir=str(work / "contrast_memo"))  # fmt: skip
        with hold_folder(entry.out, "output"), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            # the sinks stage; execute publishes once every node has succeeded
            written = execute(workflow, entry.options)
            write_dataset_description(entry.out, source_datasets=[entry.bids_dir, deriv])
            pages = run_reports(output_dir=entry.out, fmriprep_dir=deriv,
                                execution=entry.options) if reports else []  # fmt: skip
    files = tuple(p for p in written if p.suffix != ".json")  # maps and designs
    return BsmResult(entry.out, plan, files, work, tuple(pages))


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
    options = dict(inference)
    if options.get("method") == "tdp":
        options.setdefault("two_sided", False)  # tdp tests positive clusters only
    try:
        return InferenceSpec.from_dict(options, what="the inference options")
    except ModelSpecError as err:
        raise ModelSpecError(f"--inference: {err}") from None
