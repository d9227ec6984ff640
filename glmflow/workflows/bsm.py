"""A whole BIDS Stats Model as one cached graph: run nodes, later units, staged outputs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from glmflow.core.bsm.chain import HigherUnit, node_key
from glmflow.core.bsm.higher import rows_json
from glmflow.core.bsm.outputs import unit_prefix
from glmflow.core.bsm.plan import BsmPlan
from glmflow.core.model import InferenceSpec
from glmflow.interfaces.bsm import FitBsmUnit, StageBsmMaps
from glmflow.interfaces.group_inference import GroupInference, inference_outputs
from glmflow.interfaces.inference_sink import InferenceSink
from glmflow.workflows.bsm_run import init_bsm_run_wf


def _run_mem_gb(bold_file: str) -> float:
    return max(0.5, 4 * os.path.getsize(bold_file) / 1e9 + 0.3)


def _unit_mem_gb(plan: BsmPlan, n_maps: int) -> float:
    # float64 effect and variance maps of every row, and nilearn's copies of them
    voxels = nib.load(plan.runs[0].mask_file).header.get_data_shape()[:3]
    n_voxels = int(voxels[0]) * int(voxels[1]) * int(voxels[2])
    return max(0.5, 4 * 2 * 8 * n_voxels * n_maps / 1e9 + 0.3)


def _run_metadata(metadata: str, low_pass: float | None) -> str:
    """The run node's sidecar metadata: the model's, and the low-pass cutoff when set."""
    if low_pass is None:
        return metadata
    return json.dumps({**json.loads(metadata), "LowPassFilterCutoffHz": low_pass})


def _pick(files, index: int):
    # Nipype hands a one-element OutputMultiObject on as the element itself
    return (files if isinstance(files, list) else [files])[index]


def _inference_options(spec: InferenceSpec, f_test: bool, n_jobs: int) -> dict[str, Any]:
    options = {
        "method": spec.method,
        "alpha": spec.alpha,
        "z_threshold": spec.z_threshold,
        "cluster_threshold": spec.cluster_threshold,
        # an F map has one tail: its z is very negative where F is ~0 (no effect at all)
        "two_sided": spec.two_sided and not f_test,
        "min_distance": spec.min_distance,
    }
    if spec.method == "permutation":
        options |= {"n_perm": spec.n_perm, "permutation_stat": spec.permutation_stat,
                    "n_jobs": n_jobs}  # fmt: skip
        if spec.cluster_forming_p is not None:
            options["cluster_forming_p"] = spec.cluster_forming_p
        if spec.seed is not None:
            options["random_state"] = spec.seed
    return options


def _inference_connections(unit: HigherUnit, fit, design_file, spec, folder, metadata, n_jobs):
    """One GroupInference and one InferenceSink per contrast of a Dataset unit."""
    connections = []
    extra = unit_prefix({k: v for k, v in unit.entities.items() if k != "contrast"})
    for index, (name, contrast) in enumerate(unit.contrasts.items()):
        f_test = np.ndim(contrast["weights"]) == 2
        label = f"{extra}_{name}" if extra else name
        node = pe.Node(
            GroupInference(contrast_name=label, **_inference_options(spec, f_test, n_jobs)),
            name=f"inference_{unit.key}_{index}",
            n_procs=n_jobs if spec.method == "permutation" else 1,
        )
        sink = pe.Node(
            InferenceSink(
                output_dir=folder, entities="{}", metadata=metadata, contrast_name=label,
                method=spec.method, permutation_stat=spec.permutation_stat,
            ),
            name=f"ds_inference_{unit.key}_{index}",
        )  # fmt: skip
        if spec.method == "permutation":
            node.inputs.contrast = json.dumps(contrast["weights"])
            node.inputs.design_file = design_file
            inputs = [("input_effect_files", "effect_files"), ("mask_file", "mask_file")]
        else:
            inputs = [(("z_files", _pick, index), "stat_file"), ("mask_file", "mask_file")]
        connections += [
            (fit, node, inputs),
            (node, sink, [(key, key) for key in inference_outputs(spec)]),
        ]
    return connections


def init_bsm_wf(
    *,
    plan: BsmPlan,
    output_dir: str,
    memo_dir: str | None = None,
    inference: InferenceSpec | None = None,
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
    inference
        glmflow's group inference (fdr, permutation, TFCE, cluster tables, ...) on every
        contrast of every Dataset node: ``inference_<unit>_<i>`` and its
        ``ds_inference_<unit>_<i>`` (maps and ``clusters.tsv`` in ``node-<Name>/``).
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
            low_pass=run.low_pass,
            tr=run.tr,
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
                metadata=_run_metadata(metadata, run.low_pass),
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
        if inference is not None and unit.level.lower() == "dataset":
            folder = str(Path(output_dir) / f"node-{unit.node}")
            connections += _inference_connections(
                unit, fit, design_file, inference, folder, metadata, n_jobs
            )
    workflow.connect(connections)
    return workflow
