"""Run a BIDS Stats Model: plan (pybids, every check) -> graph -> FitLins-named outputs."""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nipype.pipeline import engine as pe
from threadpoolctl import threadpool_limits

from glmflow.core.bids.layout import load_layout
from glmflow.core.bsm.higher import UnitMap, fit_later_nodes
from glmflow.core.bsm.outputs import node_dir, unit_prefix, write_unit_maps
from glmflow.core.bsm.plan import BsmPlan, plan_bids_stats_model
from glmflow.core.publish import write_dataset_description
from glmflow.errors import ModelSpecError
from glmflow.execution import ExecutionOptions, hold_folder, run_workflow
from glmflow.runners.entry import enter_level
from glmflow.workflows.bsm_run import init_bsm_run_wf

PathLike = str | os.PathLike


@dataclass(frozen=True)
class BsmResult:
    """What a BSM run wrote (``output_dir/glmflow/node-<Name>/...``) and its plan."""

    output_dir: Path
    plan: BsmPlan
    files: tuple[Path, ...]
    work_dir: Path

    @property
    def runs(self) -> list:
        return list(self.plan.runs)

    @property
    def subjects(self) -> list[str]:
        return sorted({run.entities["subject"] for run in self.plan.runs})


def _mem_gb(bold_file: str) -> float:
    return max(0.5, 4 * os.path.getsize(bold_file) / 1e9 + 0.3)


def init_bsm_wf(*, plan: BsmPlan, memo_dir: str | None = None, name: str = "bsm_wf"):
    """One :func:`init_bsm_run_wf` per run of ``plan``, inputs set (nothing is run)."""
    workflow = pe.Workflow(name=name)
    for run, design_file in zip(plan.runs, plan.design_files, strict=True):
        run_wf = init_bsm_run_wf(
            contrasts=run.contrasts,
            mem_gb=_mem_gb(run.bold_file),
            memo_dir=memo_dir,
            name=f"{unit_prefix(run.entities).replace('-', '_')}_wf",
        )
        run_wf.inputs.inputnode.bold_file = run.bold_file
        run_wf.inputs.inputnode.mask_file = run.mask_file
        run_wf.inputs.inputnode.design_file = design_file
        workflow.add_nodes([run_wf])
    return workflow


def run_bids_stats_model(
    *,
    bids_dir: PathLike,
    output_dir: PathLike,
    model: PathLike,
    execution: ExecutionOptions | None = None,
    derivatives: PathLike | None = None,
    missing_conditions: str = "error",
    participant_label: list[str] | None = None,
    **keywords: Any,
) -> BsmResult:
    """Fit a BIDS Stats Model (``*_smdl.json``) on a BIDS / fMRIPrep dataset.

    Every check (the model's structure, its variables, entities and contrasts against the
    dataset) runs before any compute; each run's design is pybids' ``X`` plus the cosine
    drift of ``HighPassFilterCutoffHz``. ``execution`` and ``keywords`` as
    :func:`glmflow.runners.participant.run_participant_level`.
    """
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
            plan = plan_bids_stats_model(
                model,
                layout,
                work / "bsm_designs",
                participant_label=participant_label,
                space=space,
                missing=missing_conditions,
            )
        workflow = init_bsm_wf(plan=plan, memo_dir=str(work / "contrast_memo"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            execgraph = run_workflow(workflow, entry.options)
        with hold_folder(entry.out, "output"):
            files, root_maps = _write_outputs(plan, execgraph, entry.out)
            with threadpool_limits(limits=1):
                files += fit_later_nodes(
                    plan.graph, root_maps, entry.out, work, plan.source, missing=missing_conditions
                )
            write_dataset_description(entry.out, source_datasets=[entry.bids_dir, deriv])
    return BsmResult(entry.out, plan, tuple(files), work)


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


def _write_outputs(plan: BsmPlan, execgraph, out: Path) -> tuple[list[Path], list[UnitMap]]:
    indexes = {}
    for node in execgraph.nodes():
        if node.name == "compute_contrasts":
            indexes[node.fullname.split(".")[-2]] = node.result.outputs.contrasts_json
    files: list[Path] = []
    maps: list[UnitMap] = []
    meta = {"ModelFile": plan.source, "Model": plan.model.get("Name")}
    for run, design_file in zip(plan.runs, plan.design_files, strict=True):
        index = indexes[f"{unit_prefix(run.entities).replace('-', '_')}_wf"]
        files += write_unit_maps(out, plan.run_node, run.entities, index, meta)
        design = (
            node_dir(out, plan.run_node, run.entities) / f"{unit_prefix(run.entities)}_design.tsv"
        )
        design.write_bytes(Path(design_file).read_bytes())
        files.append(design)
        for name, record in json.loads(Path(index).read_text()).items():
            if not record.get("skipped") and record["stat_type"] == "t":
                entities = {**run.entities, "contrast": name}
                maps.append(
                    UnitMap(
                        entities,
                        record["effect"],
                        record["variance"],
                        float(record["dof"]),
                        run.mask_file,
                    )
                )
    return files, maps
