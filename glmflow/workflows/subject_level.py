"""Subject level: every run of one subject and task, combined by fixed effects.

The sinks, the subject's contrasts and entities and the sidecars' model metadata are public:
the surface subject level (:mod:`glmflow.workflows.surface`) wires its parts with them.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from glmflow.core.bids import RunInputs
from glmflow.core.bold import estimate_mem_gb
from glmflow.core.model import ContrastSpec, ModelSpec
from glmflow.core.outputs import subject_is_its_run
from glmflow.core.sidecars import applied_confounds
from glmflow.interfaces.combine import CombineRuns
from glmflow.interfaces.outputs import DerivativesSink
from glmflow.workflows.run_level import MAP_OUTPUTS, init_run_level_wf, map_mem_gb

MODEL_MAP_KINDS = ("r_square", "residuals", "predicted")
SINK_FIELDS = ["contrast_names", "stat_types", "contrasts_json", "design_files", *MAP_OUTPUTS]


def run_wf_name(run: RunInputs) -> str:
    """A Nipype-safe name for the workflow of one run: every entity but subject and task.

    Two preprocessed versions of one run (e.g. res-1 and res-2) get different names, and
    the pre-flight check refuses to combine runs on different grids.
    """
    parts = [
        f"{key}_{value}"
        for key, value in run.entities.items()
        if key not in ("subject", "task", "space") and value
    ]
    return "_".join(["run", *parts, "wf"]) if parts else "run_wf"


def init_subject_level_wf(
    *,
    runs: Sequence[RunInputs],
    spec: ModelSpec,
    contrasts: Sequence[ContrastSpec],
    output_dir: str,
    skipped: dict[str, set[str]] | None = None,
    missing_conditions: str = "error",
    memo_dir: str | None = None,
    name: str = "subject_level_wf",
) -> pe.Workflow:
    """Model every run of one subject and task, then combine runs per contrast.

    Run-level maps and designs, and subject-level (fixed-effects) maps of every t contrast
    go to BIDS-derivative paths under ``output_dir``: the sinks stage them, and
    :func:`glmflow.execution.execute` publishes them once the whole graph has succeeded.
    F contrasts are combined at the run level only (a fixed-effects F needs a joint model
    across runs; a warning says so).

    Parameters
    ----------
    runs
        The runs of this subject and task (``discover_runs`` output).
    spec
        The model.
    contrasts
        Expanded contrasts (``check_first_level(...).contrasts``).
    output_dir
        Root of the glmflow derivatives.
    skipped
        Bold file -> names of contrasts whose every term is absent from that run's design
        (only with ``missing_conditions="drop"``).
    missing_conditions
        ``"error"`` or ``"drop"``.
    memo_dir
        Folder remembering each contrast's maps (see :func:`init_run_level_wf`).
    name
        Workflow name.

    Inputs
    ------
    none: every input is known when the graph is built.

    Outputs
    -------
    subject_files: the subject-level derivative files written (run-level sinks report
    their own files).
    """
    skipped = skipped or {}
    workflow = pe.Workflow(name=name)
    outputnode = pe.Node(niu.IdentityInterface(fields=["subject_files"]), name="outputnode")
    metadata = json.dumps(model_metadata(spec, contrasts), sort_keys=True)
    # cheap bookkeeping nodes run in the driver, not as cluster jobs
    merge_index = pe.Node(
        niu.Merge(len(runs)), name="merge_contrast_indices", run_without_submitting=True
    )
    # each run's maps are on the mask its data were read with (bad voxels left out)
    merge_masks = pe.Node(niu.Merge(len(runs)), name="merge_masks", run_without_submitting=True)
    names = [c.name for c in subject_contrasts(runs, contrasts, skipped)]
    shared = len(runs) == 1 and subject_is_its_run(runs[0].entities, subject_entities(runs))
    for i, run in enumerate(runs, start=1):
        run_wf = _run_wf(run, spec, contrasts, missing_conditions, memo_dir)
        sink = derivatives_sink(
            output_dir, run.entities, "run", metadata, name=f"ds_{run_wf.name[:-3]}"
        )
        if shared:  # one set of files: the subject's (its F contrasts and design: the run's)
            sink.inputs.leave_out = names
        # fmt: off
        workflow.connect([
            (run_wf, merge_index, [("outputnode.contrasts_json", f"in{i}")]),
            (run_wf, merge_masks, [("outputnode.mask_file", f"in{i}")]),
            (run_wf, sink, [(f"outputnode.{field}", field) for field in SINK_FIELDS]),
        ])
        # fmt: on
        if not spec.glm.minimize_memory:  # the fit's model maps go out with the run
            workflow.connect(
                [(run_wf, sink, [(f"outputnode.{k}_file", f"{k}_file") for k in MODEL_MAP_KINDS])]
            )

    if names:
        combine = _combine_node(runs, spec, names, memo_dir)
        sink = derivatives_sink(
            output_dir, subject_entities(runs), "subject", metadata, name="ds_subject"
        )
        # fmt: off
        workflow.connect([
            (merge_index, combine, [("out", "index_files")]),
            (merge_masks, combine, [("out", "mask_files")]),
            (combine, sink, [(field, field) for field in SINK_FIELDS if field != "design_files"]),
            (sink, outputnode, [("out_files", "subject_files")]),
        ])
        # fmt: on
    return workflow


def _run_wf(run: RunInputs, spec, contrasts, missing_conditions, memo_dir) -> pe.Workflow:
    """One run's workflow (:func:`init_run_level_wf`) with its files as inputs."""
    run_wf = init_run_level_wf(
        spec=spec,
        contrasts=contrasts,
        mem_gb=estimate_mem_gb(run.bold, minimize_memory=spec.glm.minimize_memory),
        missing_conditions=missing_conditions,
        memo_dir=memo_dir,
        name=run_wf_name(run),
    )
    for field in ("bold", "mask", "events", "confounds"):
        setattr(run_wf.get_node("inputnode").inputs, f"{field}_file", getattr(run, field))
    run_wf.inputs.inputnode.n_volumes = run.n_volumes
    run_wf.inputs.inputnode.tr = run.tr
    run_wf.inputs.inputnode.slice_time_ref = run.slice_time_ref
    return run_wf


def _combine_node(runs, spec: ModelSpec, names: list[str], memo_dir) -> pe.Node:
    """CombineRuns fed the spec part it depends on (``subject.run_combination``)."""
    combine = CombineRuns(
        names=names,
        run_labels=[run_wf_name(run)[4:-3] for run in runs],
        run_combination=spec.subject.run_combination,
        **({"memo_dir": memo_dir} if memo_dir else {}),
    )
    mem_gb = map_mem_gb(estimate_mem_gb(runs[0].bold))
    return pe.Node(combine, name="combine_runs", mem_gb=mem_gb)


def derivatives_sink(
    output_dir: str, entities: dict, level: str, metadata: str, *, name: str
) -> pe.Node:
    """A DerivativesSink; cheap bookkeeping, so it runs in the driver, not as a cluster job."""
    sink = DerivativesSink(
        output_dir=output_dir,
        entities=json.dumps(entities, sort_keys=True),
        level=level,
        metadata=metadata,
    )
    return pe.Node(sink, name=name, run_without_submitting=True)


def subject_contrasts(
    runs: Sequence[RunInputs], contrasts: Sequence[ContrastSpec], skipped: dict[str, set[str]]
) -> list[ContrastSpec]:
    """t contrasts present in at least one run; say which ones are left at the run level."""
    kept = []
    for contrast in contrasts:
        if contrast.stat_type != "t":
            warnings.warn(
                f"F contrast '{contrast.name}' is written per run only: fixed effects combine "
                "t contrasts across runs",
                stacklevel=2,
            )
            continue
        if all(contrast.name in skipped.get(run.bold, ()) for run in runs):
            warnings.warn(
                f"Contrast '{contrast.name}' has no term in any run of sub-{runs[0].subject} "
                f"(task {runs[0].task}); no subject-level map",
                stacklevel=2,
            )
            continue
        kept.append(contrast)
    return kept


def subject_entities(runs: Sequence[RunInputs]) -> dict[str, str]:
    """Entities shared by every run (subject, task, space...): run and session combine."""
    common = dict(runs[0].entities)
    for run in runs[1:]:
        common = {k: v for k, v in common.items() if run.entities.get(k) == v}
    common.pop("run", None)
    return common


def model_metadata(spec: ModelSpec, contrasts: Sequence[ContrastSpec]) -> dict:
    """What every first-level sidecar says of the model: its name and source, the spec (only
    the applied confound strategies) and each contrast's expressions and type."""
    model = json.loads(spec.to_json())
    return {
        "Model": {"Name": spec.name, "Task": spec.task, "Source": spec.source},
        "ModelSpec": {**model, "confounds": applied_confounds(model["confounds"])},
        "Contrasts": {
            c.name: {"Expressions": list(c.expressions), "StatType": c.stat_type}
            for c in contrasts
        },
    }
