"""Group level: one group model of subject maps, its contrasts, inference and outputs."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from glmflow.core.group.plan import GroupPlan
from glmflow.core.model import GroupSpec
from glmflow.core.outputs import contrast_label
from glmflow.interfaces.group_fit import FitGroupModel
from glmflow.interfaces.group_inference import GroupInference, inference_outputs
from glmflow.interfaces.inference_sink import InferenceSink
from glmflow.interfaces.model_maps_sink import ModelMapsSink
from glmflow.interfaces.outputs import DerivativesSink
from glmflow.workflows.run_level import MAP_OUTPUTS, set_options

GROUP_INPUTS = ["effect_files", "variance_files", "dofs", "design_file", "mask_file"]
GROUP_OUTPUTS = ["map_files", "inference_files", "mask_file"]
DATASET_OUTPUTS = ["map_files", "inference_files"]


def _pick(items, index):
    """Connection function: one entry of a list output (Nipype runs it from its source).

    Nipype hands a one-element list output over as the element itself.
    """
    return items if isinstance(items, str) else items[index]


def init_group_level_wf(
    *,
    contrasts: Mapping[str, Any],
    group: GroupSpec,
    output_dir: str,
    entities: Mapping[str, str],
    metadata: Mapping[str, Any] | None = None,
    contrast_source: str = "the model",
    modelled: str = "group",
    use_mask: bool = False,
    mem_gb: float = 1.0,
    n_jobs: int = 1,
    name: str = "group_level_wf",
) -> pe.Workflow:
    """Fit one group model, threshold each contrast and write the maps as BIDS derivatives.

    Nothing is run or read while building; every check happens before, in
    :func:`glmflow.core.group.plan.plan_task_group`.

    Parameters
    ----------
    contrasts
        Output contrast name -> definition over the design columns (a formula, weights, or
        the model-file object ``{"expressions" | "weights", "stat_type"}``), in order.
    group
        The model's group section: method, smoothing, grid and ``inference``.
    output_dir
        Root of the glmflow derivatives; maps go to its top (dataset level).
    entities
        pybids entity names -> labels shared by the subject maps (``task``, ``space``...).
    metadata
        Written into every sidecar; a ``"Contrasts"`` object (name -> info) is split per map.
    contrast_source
        The model file, named in contrast errors.
    modelled
        Name of what is modelled (the first-level contrast): names the residual, predicted
        and r-squared maps written when ``group.minimize_memory`` is off.
    use_mask
        Connect ``inputnode.mask_file`` (a user mask) to the fit and to permutations;
        otherwise nilearn computes the mask from the maps.
    mem_gb
        Memory (GB) of the fit and permutation nodes, from the number and size of the maps.
    n_jobs
        nilearn's ``n_jobs`` in the fit and permutations (also their ``n_procs``; not hashed).
    name
        Workflow name.

    Inputs
    ------
    effect_files, variance_files and dofs (method "fixed" only), design_file (TSV with a
    ``label`` column), mask_file (with ``use_mask``)

    Outputs
    -------
    map_files: the group maps written (effect, variance, t/F, p, z of every contrast; the
    model maps are written by ``ds_model_maps`` when ``group.minimize_memory`` is off);
    inference_files: thresholded maps, cluster tables and -log10 p / TDP maps written;
    mask_file: the mask of the analysed voxels
    """
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(fields=GROUP_INPUTS), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=GROUP_OUTPUTS), name="outputnode")
    fit = _fit_node(group, contrasts, contrast_source, mem_gb, n_jobs)
    sinks = {
        "output_dir": output_dir,
        "entities": json.dumps(dict(entities), sort_keys=True),
        "metadata": json.dumps(dict(metadata or {}), sort_keys=True),
    }
    sink = pe.Node(
        DerivativesSink(level="dataset", **sinks), name="ds_group", run_without_submitting=True
    )
    inputs = ["effect_files", "design_file"]
    inputs += ["variance_files", "dofs"] if group.method == "fixed" else []
    inputs += ["mask_file"] if use_mask else []
    fields = ["contrast_names", "stat_types", "contrasts_json", *_map_fields(group)]
    # fmt: off
    connections = [
        (inputnode, fit, [(key, key) for key in inputs]),
        (fit, sink, [(key, key) for key in fields]),
        (fit, outputnode, [("mask_file", "mask_file")]),
        (sink, outputnode, [("out_files", "map_files")]),
    ]
    # fmt: on
    if not group.minimize_memory:
        model_maps = pe.Node(
            ModelMapsSink(contrast_name=modelled, **sinks),
            name="ds_model_maps",
            run_without_submitting=True,
        )
        keys = ["residuals_file", "predicted_file", "r_square_file"]
        connections.append((fit, model_maps, [(key, key) for key in keys]))
    if group.inference.method != "none":
        nodes = (inputnode, fit, outputnode)
        connections += _inference_connections(
            nodes, contrasts, group, sinks, use_mask, mem_gb, n_jobs
        )
    workflow.connect(connections)
    return workflow


def _fit_node(group: GroupSpec, contrasts, contrast_source: str, mem_gb: float, n_jobs: int):
    """The FitGroupModel node of ``group``'s fit options (unset options stay undefined)."""
    options = set_options(
        {
            "smoothing_fwhm": group.smoothing_fwhm,
            "target_affine": list(group.target_affine) if group.target_affine else None,
            "target_shape": list(group.target_shape) if group.target_shape else None,
        }
    )
    fit = pe.Node(
        FitGroupModel(
            contrasts=json.dumps(dict(contrasts)),
            contrasts_source=contrast_source,
            method=group.method,
            n_jobs=n_jobs,
            **options,
        ),
        name="fit_group_model",
        mem_gb=mem_gb,
        n_procs=n_jobs,
    )
    if not group.minimize_memory:
        fit.inputs.minimize_memory = False
    return fit


def _inference_connections(nodes, contrasts, group, sinks, use_mask, mem_gb, n_jobs) -> list:
    """One GroupInference and one InferenceSink per contrast, and how they connect."""
    inputnode, fit, outputnode = nodes
    inference = group.inference
    permutation = inference.method == "permutation"
    merge = pe.Node(
        niu.Merge(len(contrasts)), name="merge_inference_files", run_without_submitting=True
    )
    connections = [(merge, outputnode, [("out", "inference_files")])]
    for index, (contrast, definition) in enumerate(contrasts.items()):
        label = contrast_label(contrast)
        options = _inference_options(group, n_jobs)
        if _is_f_test(definition):
            # an F map has one tail: its z is very negative where F is ~0 (no effect at all)
            options["two_sided"] = False
        node = pe.Node(
            GroupInference(contrast_name=contrast, **options),
            name=f"inference_{label}",
            mem_gb=mem_gb,
            n_procs=n_jobs if permutation else 1,
        )
        write = pe.Node(
            InferenceSink(
                contrast_name=contrast,
                method=inference.method,
                permutation_stat=inference.permutation_stat,
                **sinks,
            ),
            name=f"ds_inference_{label}",
            run_without_submitting=True,
        )
        if permutation:
            node.inputs.contrast = json.dumps(definition)
            # as nilearn: the mask is the user's or learnt from the maps
            keys = ["effect_files", "design_file"] + (["mask_file"] if use_mask else [])
            connections.append((inputnode, node, [(key, key) for key in keys]))
        else:
            stat = [(("z_files", _pick, index), "stat_file"), ("mask_file", "mask_file")]
            connections.append((fit, node, stat))
        connections += [
            (node, write, [(key, key) for key in _inference_outputs(group)]),
            (write, merge, [("out_files", f"in{index + 1}")]),
        ]
    return connections


# nilearn's output types -> the fit's map outputs
_OUTPUT_TYPES = {
    "effect_size": "effect_files",
    "effect_variance": "variance_files",
    "stat": "stat_files",
    "p_value": "p_files",
    "z_score": "z_files",
}


def _map_fields(group: GroupSpec) -> list[str]:
    """The group maps written: every one, or the model's ``output_types``."""
    if "all" in group.output_types:
        return list(MAP_OUTPUTS)
    return [_OUTPUT_TYPES[kind] for kind in _OUTPUT_TYPES if kind in group.output_types]


def _is_f_test(definition: Any) -> bool:
    """A group contrast tested with F: the model-file object says so, or a weight matrix."""
    if isinstance(definition, dict):
        return definition.get("stat_type") == "F"
    rows = definition if isinstance(definition, list | tuple) else [definition]
    return len(rows) > 1 and all(isinstance(r, list | tuple | str) for r in rows)


def _inference_options(group: GroupSpec, n_jobs: int) -> dict[str, Any]:
    inference = group.inference
    options = {
        "method": inference.method,
        "alpha": inference.alpha,
        "z_threshold": inference.z_threshold,
        "cluster_threshold": inference.cluster_threshold,
        "two_sided": inference.two_sided,
        "min_distance": inference.min_distance,
    }
    if inference.method == "permutation":
        options |= {
            "n_perm": inference.n_perm,
            "permutation_stat": inference.permutation_stat,
            "n_jobs": n_jobs,
            "cluster_forming_p": inference.cluster_forming_p,
            "random_state": inference.seed,
            "smoothing_fwhm": group.smoothing_fwhm,
        }
    return set_options(options)


def _inference_outputs(group: GroupSpec) -> list[str]:
    """GroupInference outputs that this inference produces (others stay unconnected)."""
    return inference_outputs(group.inference)


def init_group_wf(
    *,
    plans: Sequence[GroupPlan],
    output_dir: str,
    design_files: Mapping[str, str],
    use_mask: bool = False,
    n_jobs: int = 1,
    name: str = "glmflow_group_wf",
) -> pe.Workflow:
    """The group-level graph: one :func:`init_group_level_wf` per analysis of every plan.

    Nothing is run or read while building (the plans were checked in core).

    Parameters
    ----------
    plans
        :class:`glmflow.core.group.plan.GroupPlan` of each task: maps, design, contrasts.
    output_dir
        Root of the glmflow derivatives; group maps go to its top.
    design_files
        Task -> the design TSV its fits read (:func:`~glmflow.core.group.plan.write_design_tsv`).
    use_mask
        Connect ``inputnode.mask_file`` (a user mask) to every fit and permutation.
    n_jobs
        nilearn's ``n_jobs`` inside one fit or permutation node (never hashed).
    name
        Workflow name.

    Inputs
    ------
    mask_file (with ``use_mask``)

    Outputs
    -------
    map_files, inference_files: every group map, table and thresholded map written
    """
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(fields=["mask_file"]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=DATASET_OUTPUTS), name="outputnode")
    pairs = [(plan, analysis) for plan in plans for analysis in plan.analyses]
    merges = {
        key: pe.Node(
            niu.Merge(len(pairs), ravel_inputs=True),
            name=f"merge_{key}",
            run_without_submitting=True,
        )
        for key in DATASET_OUTPUTS
    }
    for index, (plan, analysis) in enumerate(pairs, start=1):
        design_file = design_files[plan.spec.task]
        wf = _analysis_wf(plan, analysis, design_file, output_dir, use_mask, n_jobs)
        if use_mask:
            workflow.connect(inputnode, "mask_file", wf, "inputnode.mask_file")
        for key, merge in merges.items():
            workflow.connect(wf, f"outputnode.{key}", merge, f"in{index}")
    for key, merge in merges.items():
        workflow.connect(merge, "out", outputnode, key)
    return workflow


def _analysis_wf(plan: GroupPlan, analysis, design_file, output_dir, use_mask, n_jobs):
    """One :func:`init_group_level_wf` with the analysis' maps set on its inputnode."""
    group = plan.spec.group
    wf = init_group_level_wf(
        contrasts=analysis.contrasts,
        group=group,
        output_dir=output_dir,
        entities=plan.entities,
        metadata=plan.metadata(analysis),
        contrast_source=plan.spec.source,
        modelled=" vs ".join(analysis.first_level),
        use_mask=use_mask,
        mem_gb=analysis.mem_gb,
        n_jobs=n_jobs,
        name=f"task_{plan.spec.task}_{analysis.name}_wf",
    )
    inputs = wf.get_node("inputnode").inputs
    inputs.effect_files = [str(m.effect) for m in analysis.maps]
    inputs.design_file = design_file
    if group.method == "fixed":
        inputs.variance_files = [str(m.variance) for m in analysis.maps]
        inputs.dofs = [m.fixed_effects_dof for m in analysis.maps]
    return wf
