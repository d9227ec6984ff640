"""The resting-state graph: per run connectivity, each subject's runs combined, the sinks."""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import groupby

from nipype.pipeline import engine as pe

from glmflow.core.bids import RunInputs
from glmflow.core.images import estimate_mem_gb
from glmflow.core.rest.files import subject_entities, subject_names_are_run_names
from glmflow.core.rest.spec import ConnectivitySpec
from glmflow.interfaces.rest import (
    CombineRunConnectivity,
    ComputeRunConnectivity,
    ConnectivitySink,
)
from glmflow.workflows.subject_level import run_wf_name


def init_rest_wf(
    *,
    runs: Sequence[RunInputs],
    spec: ConnectivitySpec,
    output_dir: str,
    name: str = "rest_wf",
) -> pe.Workflow:
    """Connectivity of every run, and of every subject's runs combined.

    Parameters
    ----------
    runs
        The resting-state runs (``discover_runs(..., need_events=False)``), checked
        (``glmflow.core.rest.plan.check_rest_runs``).
    spec
        The connectivity model.
    output_dir
        Root of the glmflow derivatives; the sinks stage, the runner publishes.
    name
        Workflow name.

    Inputs / Outputs
    ----------------
    none: every input is known when the graph is built; the sinks (``ds_*``) stage files.
    """
    workflow = pe.Workflow(name=name)
    # the run nodes' part of the model: a group or plots edit reruns none of them
    model = json.dumps(
        {k: v for k, v in spec.portable().items() if k not in ("group", "plots")}, sort_keys=True
    )
    meta = json.dumps({"ModelName": spec.name, "ModelSource": spec.source})
    atlas_files = _atlas_files(spec)
    for subject, group in groupby(runs, key=lambda r: r.subject):
        sub_wf = pe.Workflow(name=f"sub_{subject}_wf")
        subject_runs = list(group)
        entities = subject_entities([r.entities for r in subject_runs])
        # one run without run- / ses-: its matrices are the subject's, written once, there
        shared = subject_names_are_run_names([r.entities for r in subject_runs])
        combine = pe.Node(CombineRunConnectivity(plots=spec.plots), name="combine_runs")
        results = []
        for run in subject_runs:
            label = run_wf_name(run).removesuffix("_wf").removeprefix("run_")
            node = pe.Node(
                ComputeRunConnectivity(
                    bold_file=run.bold, mask_file=run.mask, confounds_file=run.confounds,
                    tr=run.tr, model=model, **atlas_files,
                ),
                name=f"connectivity_{label}",
                mem_gb=estimate_mem_gb(run.bold),
            )  # fmt: skip
            sink = pe.Node(
                ConnectivitySink(
                    output_dir=output_dir, entities=json.dumps(run.entities), level="run",
                    metadata=meta, matrices=not shared,
                ),
                name=f"ds_{label}",
                run_without_submitting=True,
            )  # fmt: skip
            sub_wf.connect([(node, sink, [("result_file", "result_file")])])
            results.append(node)
        if spec.atlas is not None and any(m != "tangent" for m in spec.measures):
            # a list of file names: no cluster job for it
            merge = pe.Node(
                _merge(len(results)), name="merge_results", run_without_submitting=True
            )
            for i, node in enumerate(results, start=1):
                sub_wf.connect([(node, merge, [("result_file", f"in{i}")])])
            ds_subject = pe.Node(
                ConnectivitySink(
                    output_dir=output_dir, entities=json.dumps(entities),
                    level="subject", metadata=meta,
                ),
                name="ds_subject",
                run_without_submitting=True,
            )  # fmt: skip
            sub_wf.connect([
                (merge, combine, [("out", "result_files")]),
                (combine, ds_subject, [("result_file", "result_file")]),
            ])  # fmt: skip
        workflow.add_nodes([sub_wf])
    return workflow


def _atlas_files(spec: ConnectivitySpec) -> dict[str, str]:
    """A user's atlas files as File inputs of the run nodes (hashed by Nipype)."""
    atlas = spec.portable().get("atlas", {})
    files = {"atlas_file": atlas.get("labels_img") or atlas.get("maps_img"),
             "labels_file": atlas.get("labels_tsv")}  # fmt: skip
    return {k: v for k, v in files.items() if v}


def _merge(n: int):
    from nipype.interfaces import utility as niu

    return niu.Merge(n)
