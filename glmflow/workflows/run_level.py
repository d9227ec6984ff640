"""Run level: one BOLD run from events and confounds to contrast maps."""

from __future__ import annotations

import json
from collections.abc import Sequence

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from glmflow.core.model import ContrastSpec, ModelSpec
from glmflow.interfaces.bold import MaskAndSmooth
from glmflow.interfaces.contrasts import ComputeContrasts
from glmflow.interfaces.glm import FitFirstLevel
from glmflow.interfaces.run_design import BuildRunDesign, model_parts

RUN_INPUTS = [
    "bold_file",
    "mask_file",
    "events_file",
    "confounds_file",
    "n_volumes",
    "tr",
    "slice_time_ref",
]
MAP_OUTPUTS = ["effect_files", "variance_files", "stat_files", "p_files", "z_files"]
RUN_OUTPUTS = [
    "contrast_names",
    "stat_types",
    *MAP_OUTPUTS,
    "design_files",
    "design_file",
    "sidecar_file",
    "plot_file",
    "fit_file",
    "contrasts_json",
    "mask_file",
    "residuals_file",
    "predicted_file",
    "r_square_file",
]


# Interpreter + numpy/pandas/nilearn: what even the lightest node needs (a cluster that
# enforces requests kills a job asking Nipype's default 0.2 GB)
LIGHT_MEM_GB = 0.5


def map_mem_gb(mem_gb: float) -> float:
    """Memory of the nodes that handle a run's maps (contrasts, combining): a share of the
    fit's, which holds the whole masked time series."""
    return max(LIGHT_MEM_GB, 0.6 * mem_gb)


def contrasts_json(contrasts: Sequence[ContrastSpec]) -> str:
    """Contrasts as canonical JSON: the one model input of the contrast node."""
    return json.dumps([c.to_dict() for c in contrasts], sort_keys=True)


def contrasts_node(
    contrasts: Sequence[ContrastSpec], *, missing_conditions: str, memo_dir: str | None,
    mem_gb: float,
) -> pe.Node:  # fmt: skip
    """The ``compute_contrasts`` node of a run (contrasts hashed as canonical JSON)."""
    node = pe.Node(
        ComputeContrasts(
            contrasts=contrasts_json(contrasts), missing_conditions=missing_conditions
        ),
        name="compute_contrasts",
        mem_gb=map_mem_gb(mem_gb),
    )
    if memo_dir:
        node.inputs.memo_dir = memo_dir
    return node


def fit_and_contrast_connections(mask_and_smooth, fit, compute_contrasts, outputnode) -> list:
    """The wiring every run shares: masked data -> fit -> contrasts -> outputnode."""
    contrast_outputs = ["contrasts_json", "contrast_names", "stat_types", *MAP_OUTPUTS]
    # fmt: off
    return [
        (mask_and_smooth, fit, [("data_file", "data_file"), ("mask_file", "mask_file")]),
        (fit, compute_contrasts, [("fit_file", "fit_file")]),
        (mask_and_smooth, compute_contrasts, [("mask_file", "mask_file"),
                                              ("record_file", "run_record_file")]),
        (mask_and_smooth, outputnode, [("mask_file", "mask_file")]),
        (compute_contrasts, outputnode, [(field, field) for field in contrast_outputs]),
    ]
    # fmt: on


def set_options(options: dict) -> dict:
    """Options for an interface: unset (None) values stay at the interface's default."""
    return {key: value for key, value in options.items() if value is not None}


def init_run_level_wf(
    *,
    spec: ModelSpec,
    contrasts: Sequence[ContrastSpec],
    mem_gb: float,
    missing_conditions: str = "error",
    memo_dir: str | None = None,
    name: str = "run_level_wf",
) -> pe.Workflow:
    """Fit the first-level GLM of one run and compute its contrasts.

    Each step receives only the part of ``spec`` it depends on, so the cache reruns only
    what a model edit touched: a contrast edit reruns ``compute_contrasts``; an events,
    confounds or design edit reruns ``build_design`` (events parsed, confounds selected
    and design built in one node: the split bought no reuse), fit and contrasts, never
    ``mask_and_smooth``. Five nodes a run, with the sink.

    Parameters
    ----------
    spec
        The model.
    contrasts
        The contrasts to compute (the model's, expanded for the dataset's conditions).
    mem_gb
        Memory (GB) of the heavy nodes (read, fit), from the BOLD size.
    missing_conditions
        ``"error"`` or ``"drop"``: what to do with a contrast naming a column absent from
        this run's design.
    memo_dir
        glmflow's memo folder (not part of any hash): each contrast's maps are remembered
        there, so that a contrast edit recomputes only the contrasts that changed, and
        ``build_design`` recalls the design the pre-flight built there.
    name
        Workflow name.

    Inputs
    ------
    bold_file, mask_file, events_file, confounds_file, n_volumes, tr, slice_time_ref

    Outputs
    -------
    contrast_names, stat_types, effect_files, variance_files, stat_files, p_files, z_files
    (aligned lists, one entry per computed contrast), design_files ([design.tsv,
    design.json, plot]), design_file, sidecar_file, plot_file, fit_file, contrasts_json
    (index of the contrast maps), mask_file, residuals_file, predicted_file, r_square_file
    (the last three only when ``spec.glm.minimize_memory`` is off)
    """
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(fields=RUN_INPUTS), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=RUN_OUTPUTS), name="outputnode")

    nodes = _run_nodes(spec, contrasts, mem_gb, missing_conditions, memo_dir)
    build_design, mask_and_smooth, fit, compute_contrasts = nodes.values()
    run_fields = [field for field in RUN_INPUTS if field != "mask_file"]
    design_outputs = ["design_file", "sidecar_file", "plot_file", "design_files"]

    # fmt: off
    workflow.connect([
        (inputnode, build_design, [(field, field) for field in run_fields]),
        (inputnode, mask_and_smooth, [("bold_file", "bold_file"),
                                      ("mask_file", "mask_file")]),
        (build_design, fit, [("design_file", "design_file"),
                             ("sample_mask_file", "sample_mask_file")]),
        (build_design, outputnode, [(field, field) for field in design_outputs]),
        (fit, outputnode, [("fit_file", "fit_file")]),
        *fit_and_contrast_connections(mask_and_smooth, fit, compute_contrasts, outputnode),
    ])
    # fmt: on
    if not spec.glm.minimize_memory:
        workflow.connect(
            fit,
            "residuals_file",
            outputnode,
            "residuals_file",
        )
        workflow.connect(fit, "predicted_file", outputnode, "predicted_file")
        workflow.connect(fit, "r_square_file", outputnode, "r_square_file")
    return workflow


def _run_nodes(spec, contrasts, mem_gb, missing_conditions, memo_dir) -> dict[str, pe.Node]:
    """The run's nodes, each given only the part of the spec it depends on."""
    build_design = pe.Node(
        BuildRunDesign(model_parts=model_parts(spec)), name="build_design", mem_gb=LIGHT_MEM_GB
    )
    if memo_dir:  # the design the pre-flight built and remembered there
        build_design.inputs.memo_dir = memo_dir
    mask_and_smooth = pe.Node(MaskAndSmooth(), name="mask_and_smooth", mem_gb=mem_gb)
    if spec.glm.smoothing_fwhm:
        mask_and_smooth.inputs.smoothing_fwhm = spec.glm.smoothing_fwhm
    fit = pe.Node(
        FitFirstLevel(
            noise_model=spec.glm.noise_model,
            signal_scaling=False if spec.glm.signal_scaling is None else 0,
            minimize_memory=spec.glm.minimize_memory,
        ),
        name="fit_first_level",
        mem_gb=mem_gb,
    )
    compute_contrasts = contrasts_node(
        contrasts, missing_conditions=missing_conditions, memo_dir=memo_dir, mem_gb=mem_gb
    )
    nodes = [build_design, mask_and_smooth, fit, compute_contrasts]
    return {node.name: node for node in nodes}
