"""Surface participant level: runs on GIFTI hemispheres or CIFTI, through the volume engine.

A run's design is built by the volume level's one design node
(:class:`glmflow.interfaces.run_design.BuildRunDesign`: the design the pre-flight checked),
once per run; each *part* of the run (``L`` and ``R`` for fsaverage GIFTI, ``cifti`` for
CIFTI) is read into a 2-D array, fitted by :class:`glmflow.interfaces.glm.FitFirstLevel` and its
contrasts computed (:class:`glmflow.interfaces.surface.ComputeSurfaceContrasts`); the runs
of a subject are combined per part, and the same :class:`DerivativesSink` writes
``hemi-L|R_..._statmap.func.gii`` or ``..._statmap.dscalar.nii`` with the same sidecars.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from glmflow.core.model import ContrastSpec, ModelSpec
from glmflow.core.outputs import subject_is_its_run
from glmflow.core.surface.discover import SurfaceRun
from glmflow.core.surface.meshes import CIFTI_DENSITIES, FSAVERAGE_VERTICES
from glmflow.interfaces.glm import FitFirstLevel
from glmflow.interfaces.run_design import BuildRunDesign, model_parts
from glmflow.interfaces.surface import CombineSurfaceRuns, ComputeSurfaceContrasts, ReadSurfaceBold
from glmflow.workflows.run_level import (
    LIGHT_MEM_GB,
    MAP_OUTPUTS,
    contrasts_json,
    map_mem_gb,
)
from glmflow.workflows.subject_level import (
    SINK_FIELDS,
    derivatives_sink,
    model_metadata,
    run_wf_name,
    subject_contrasts,
    subject_entities,
)

RUN_INPUTS = ["events_file", "confounds_file", "bold_file", "n_volumes", "tr", "slice_time_ref"]
PART_OUTPUTS = ["contrast_names", "stat_types", *MAP_OUTPUTS, "contrasts_json", "geometry_file"]


def part_mem_gb(n_vertices: int, n_volumes: int) -> float:
    """Memory of a part's read and fit: the float32 series, its float64 working copy."""
    return max(LIGHT_MEM_GB, 0.3 + 16 * n_vertices * n_volumes / 1e9)


def init_surface_run_wf(
    *,
    spec: ModelSpec,
    contrasts: Sequence[ContrastSpec],
    parts: Sequence[str],
    mem_gb: float,
    missing_conditions: str = "error",
    name: str = "surface_run_wf",
) -> pe.Workflow:
    """Fit one surface run: one design, then each part read, fitted and contrasted.

    Parameters
    ----------
    spec, contrasts, missing_conditions
        As :func:`glmflow.workflows.run_level.init_run_level_wf`.
    parts
        ``("L", "R")`` or ``("cifti",)``: the input ``bold_<part>`` of each.
    mem_gb
        Memory (GB) of a part's read and fit (:func:`part_mem_gb`).
    name
        Workflow name.

    Inputs
    ------
    events_file, confounds_file, bold_file (the first part: messages), n_volumes, tr,
    slice_time_ref, bold_<part> for each part

    Outputs
    -------
    design_files, and for each part ``<field>_<part>`` of contrast_names, stat_types,
    effect_files ... z_files, contrasts_json, geometry_file
    """
    workflow = pe.Workflow(name=name)
    fields = [*RUN_INPUTS, *(f"bold_{p}" for p in parts)]
    inputnode = pe.Node(niu.IdentityInterface(fields=fields), name="inputnode")
    outs = ["design_files", *(f"{f}_{p}" for p in parts for f in PART_OUTPUTS)]
    outputnode = pe.Node(niu.IdentityInterface(fields=outs), name="outputnode")
    build_design = pe.Node(
        BuildRunDesign(model_parts=model_parts(spec)), name="build_design", mem_gb=LIGHT_MEM_GB
    )
    # fmt: off
    workflow.connect([
        (inputnode, build_design, [(field, field) for field in RUN_INPUTS]),
        (build_design, outputnode, [("design_files", "design_files")]),
    ])
    # fmt: on
    for part in parts:
        read = pe.Node(ReadSurfaceBold(), name=f"read_{part}", mem_gb=mem_gb)
        if spec.glm.smoothing_fwhm:  # on the mesh, as the node reads the part
            read.inputs.smoothing_fwhm = spec.glm.smoothing_fwhm
        fit = pe.Node(
            FitFirstLevel(
                noise_model=spec.glm.noise_model,
                signal_scaling=False if spec.glm.signal_scaling is None else 0,
            ),
            name=f"fit_{part}",
            mem_gb=mem_gb,
        )
        maps = pe.Node(
            ComputeSurfaceContrasts(
                contrasts=contrasts_json(contrasts), missing_conditions=missing_conditions
            ),
            name=f"contrasts_{part}",
            mem_gb=map_mem_gb(mem_gb),
        )
        # fmt: off
        workflow.connect([
            (inputnode, read, [(f"bold_{part}", "bold_file")]),
            (read, fit, [("data_file", "data_file"), ("geometry_file", "mask_file")]),
            (build_design, fit, [("design_file", "design_file"),
                                 ("sample_mask_file", "sample_mask_file")]),
            (fit, maps, [("fit_file", "fit_file")]),
            (read, maps, [("geometry_file", "geometry_file"), ("record_file", "run_record_file")]),
            (read, outputnode, [("geometry_file", f"geometry_file_{part}")]),
            (maps, outputnode, [(f, f"{f}_{part}") for f in PART_OUTPUTS[:-1]]),
        ])
        # fmt: on
    return workflow


def _part_entities(entities: dict, part: str) -> dict:
    """A part's output entities: a hemisphere's carry ``hemi`` (before ``space``)."""
    return entities if part == "cifti" else {**entities, "hemi": part}


def init_surface_subject_wf(
    *,
    runs: Sequence[SurfaceRun],
    spec: ModelSpec,
    contrasts: Sequence[ContrastSpec],
    output_dir: str,
    skipped: dict[str, set[str]] | None = None,
    missing_conditions: str = "error",
    name: str = "surface_subject_wf",
) -> pe.Workflow:
    """Every surface run of one subject and task, and each part's runs combined.

    As :func:`glmflow.workflows.subject_level.init_subject_level_wf` (same sidecars and
    names, ``hemi-`` added for GIFTI parts); the design goes out with the first part.

    Outputs
    -------
    subject_files: the subject-level derivative files written.
    """
    workflow = pe.Workflow(name=name)
    outputnode = pe.Node(niu.IdentityInterface(fields=["subject_files"]), name="outputnode")
    metadata = json.dumps(model_metadata(spec, contrasts), sort_keys=True)
    parts = tuple(runs[0].parts)
    merges = {
        (part, kind): pe.Node(
            niu.Merge(len(runs)), name=f"merge_{kind}_{part}", run_without_submitting=True
        )
        for part in parts
        for kind in ("index", "geometry")
    }
    names = [c.name for c in subject_contrasts([r.inputs for r in runs], contrasts, skipped or {})]
    entities = subject_entities([r.inputs for r in runs])
    shared = len(runs) == 1 and subject_is_its_run(runs[0].inputs.entities, entities)
    for i, run in enumerate(runs, start=1):
        inputs = run.inputs
        space = inputs.entities.get("space", "")
        n_vertices = CIFTI_DENSITIES.get(inputs.entities.get("den", ""), 91282)
        if "cifti" not in run.parts:  # fsnative: fsaverage's count, an upper bound
            n_vertices = FSAVERAGE_VERTICES.get(space, FSAVERAGE_VERTICES["fsaverage"])
        run_wf = init_surface_run_wf(
            spec=spec,
            contrasts=contrasts,
            parts=parts,
            mem_gb=part_mem_gb(n_vertices, inputs.n_volumes),
            missing_conditions=missing_conditions,
            name=run_wf_name(inputs),
        )
        node = run_wf.get_node("inputnode")
        node.inputs.events_file, node.inputs.confounds_file = inputs.events, inputs.confounds
        node.inputs.bold_file, node.inputs.n_volumes = inputs.bold, inputs.n_volumes
        node.inputs.tr, node.inputs.slice_time_ref = inputs.tr, inputs.slice_time_ref
        for part, path in run.parts.items():
            setattr(node.inputs, f"bold_{part}", path)
        for part in parts:
            sink = derivatives_sink(
                output_dir,
                _part_entities(inputs.entities, part),
                "run",
                metadata,
                name=f"ds_{run_wf.name[:-3]}_{part}",
            )
            if shared:  # one set of files: the subject's (its F contrasts: the run's)
                sink.inputs.leave_out = names
            fields = [f for f in SINK_FIELDS if f != "design_files"]
            workflow.connect(
                [
                    (run_wf, sink, [(f"outputnode.{f}_{part}", f) for f in fields]),
                    (
                        run_wf,
                        merges[part, "index"],
                        [(f"outputnode.contrasts_json_{part}", f"in{i}")],
                    ),
                    (
                        run_wf,
                        merges[part, "geometry"],
                        [(f"outputnode.geometry_file_{part}", f"in{i}")],
                    ),
                ]
            )
        # the design is the run's, not a part's: no hemi- in its name, but its space
        design_sink = derivatives_sink(
            output_dir, inputs.entities, "run", metadata, name=f"ds_{run_wf.name[:-3]}_design"
        )
        design_sink.inputs.contrast_names = []
        design_sink.inputs.design_grid = True  # not the volume level's design of the run
        workflow.connect(run_wf, "outputnode.design_files", design_sink, "design_files")
    if not names:
        return workflow
    collect = pe.Node(niu.Merge(len(parts)), name="subject_files", run_without_submitting=True)
    for j, part in enumerate(parts, start=1):
        combine = pe.Node(
            CombineSurfaceRuns(
                names=names,
                run_labels=[run_wf_name(r.inputs)[4:-3] for r in runs],
                run_combination=spec.subject.run_combination,
            ),
            name=f"combine_runs_{part}",
            mem_gb=map_mem_gb(LIGHT_MEM_GB * 2),
        )
        sink = derivatives_sink(
            output_dir,
            _part_entities(entities, part),
            "subject",
            metadata,
            name=f"ds_subject_{part}",
        )
        # fmt: off
        workflow.connect([
            (merges[part, "index"], combine, [("out", "index_files")]),
            (merges[part, "geometry"], combine, [("out", "geometry_files")]),
            (combine, sink, [(f, f) for f in SINK_FIELDS if f != "design_files"]),
            (sink, collect, [("out_files", f"in{j}")]),
        ])
        # fmt: on
    workflow.connect(collect, "out", outputnode, "subject_files")
    return workflow


def init_surface_wf(
    *,
    analyses: Sequence,
    output_dir: str,
    missing_conditions: str = "error",
    name: str = "glmflow_surface_wf",
) -> pe.Workflow:
    """The surface participant-level graph: one subject workflow per subject, task, space.

    ``analyses``: :class:`glmflow.runners.surface.SurfaceAnalysis` objects (spec, runs,
    contrasts, skipped). Nothing is run while building.
    """
    workflow = pe.Workflow(name=name)
    for analysis in analyses:
        by_subject: dict[str, list[SurfaceRun]] = {}
        for run in analysis.runs:
            by_subject.setdefault(run.inputs.subject, []).append(run)
        space = analysis.runs[0].inputs.entities.get("space", "surface")
        for subject, runs in sorted(by_subject.items()):
            workflow.add_nodes(
                [
                    init_surface_subject_wf(
                        runs=runs,
                        spec=analysis.spec,
                        contrasts=analysis.contrasts,
                        output_dir=output_dir,
                        skipped=analysis.skipped,
                        missing_conditions=missing_conditions,
                        name=f"sub_{subject}_task_{analysis.spec.task}_{space}_wf",
                    )
                ]
            )
    return workflow
