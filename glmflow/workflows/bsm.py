"""A whole BIDS Stats Model as one cached graph: run nodes, later units, staged outputs."""

from __future__ import annotations

import json
import os

import nibabel as nib
from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from glmflow.core.bsm.chain import node_key
from glmflow.core.bsm.higher import rows_json
from glmflow.core.bsm.plan import BsmPlan
from glmflow.interfaces.bsm import FitBsmUnit, StageBsmMaps
from glmflow.workflows.bsm_run import init_bsm_run_wf


def _run_mem_gb(bold_file: str) -> float:
    return max(0.5, 4 * os.path.getsize(bold_file) / 1e9 + 0.3)


def _unit_mem_gb(plan: BsmPlan, n_maps: int) -> float:
    # float64 effect and variance maps of every row, and nilearn's copies of them
    voxels = nib.load(plan.runs[0].mask_file).header.get_data_shape()[:3]
    n_voxels = int(voxels[0]) * int(voxels[1]) * int(voxels[2])
    return max(0.5, 4 * 2 * 8 * n_voxels * n_maps / 1e9 + 0.3)


def init_bsm_wf(
    *,
    plan: BsmPlan,
    output_dir: str,
    memo_dir: str | None = None,
    n_jobs: int = 1,
    name: str = "bsm_wf",
) -> pe.Workflow:
    """Every node of a planned BIDS Stats Model, wired from the runs to the last node.

    Each run is an :func:`~glmflow.workflows.bsm_run.init_bsm_run_wf`; each unit of a later
    node (``plan.units``) a ``merge_<unit>`` of the indexes below it, a ``fit_<unit>``
    (:class:`~glmflow.interfaces.bsm.FitBsmUnit`) and every unit a ``ds_<unit>`` sink
    (:class:`~glmflow.interfaces.bsm.StageBsmMaps`) that stages its maps: nothing reaches
    ``output_dir`` before the whole graph has succeeded
    (:func:`glmflow.execution.execute` publishes the manifests). Every node is cached:
    an edit reruns only the nodes whose inputs changed.

    Parameters
    ----------
    plan
        :func:`glmflow.core.bsm.plan.plan_bids_stats_model`'s plan (designs written).
    output_dir
        Where the maps are published (``OUTPUT_DIR/glmflow``).
    memo_dir
        Folder remembering each run contrast's maps (not hashed).
    n_jobs
        Processes nilearn uses inside one later unit's fit (not hashed).
    name
        Workflow name.

    Inputs / Outputs
    ----------------
    None: the inputs are set from the plan, and the sinks' manifests are the result.
    """
    workflow = pe.Workflow(name=name)
    metadata = json.dumps({"ModelFile": plan.source, "Model": plan.model.get("Name")})
    producers: dict[str, tuple[pe.Node | pe.Workflow, str]] = {}
    connections = []
    for run, design_file in zip(plan.runs, plan.design_files, strict=True):
        key = node_key(plan.run_node, run.entities)
        run_wf = init_bsm_run_wf(
            contrasts=run.contrasts,
            mem_gb=_run_mem_gb(run.bold_file),
            memo_dir=memo_dir,
            name=key,
        )
        run_wf.inputs.inputnode.bold_file = run.bold_file
        run_wf.inputs.inputnode.mask_file = run.mask_file
        run_wf.inputs.inputnode.design_file = design_file
        sink = pe.Node(
            StageBsmMaps(
                output_dir=output_dir,
                node=plan.run_node,
                entities=json.dumps(dict(run.entities)),
                outputs=json.dumps({c.name: dict(run.entities) for c in run.contrasts}),
                metadata=metadata,
                design_file=design_file,
            ),
            name=f"ds_{key}",
        )
        connections.append((run_wf, sink, [("outputnode.contrasts_json", "index_file")]))
        producers[key] = (run_wf, "outputnode.contrasts_json")
    for unit, design_file in zip(plan.units, plan.unit_design_files, strict=True):
        sources = unit.sources
        merge = pe.Node(niu.Merge(len(sources)), name=f"merge_{unit.key}")
        fit = pe.Node(
            FitBsmUnit(
                rows=rows_json(unit.rows, sources),
                design_file=design_file,
                contrasts=json.dumps(unit.contrasts),
                method=unit.method,
                unit=f"{plan.source}: node '{unit.node}' ({unit.key})",
                n_jobs=n_jobs,
            ),
            name=f"fit_{unit.key}",
            mem_gb=_unit_mem_gb(plan, len(unit.rows)),
        )
        sink = pe.Node(
            StageBsmMaps(
                output_dir=output_dir,
                node=unit.node,
                entities=json.dumps(dict(unit.entities)),
                outputs=json.dumps({k: dict(v) for k, v in unit.outputs.items()}),
                metadata=metadata,
            ),
            name=f"ds_{unit.key}",
        )
        for i, source in enumerate(sources, start=1):
            producer, field = producers[source]
            connections.append((producer, merge, [(field, f"in{i}")]))
        connections += [
            (merge, fit, [("out", "index_files")]),
            (fit, sink, [("contrasts_json", "index_file")]),
        ]
        producers[unit.key] = (fit, "contrasts_json")
    workflow.connect(connections)
    return workflow
