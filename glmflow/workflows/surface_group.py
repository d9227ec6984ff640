"""Surface group level: one node per group contrast of every surface group model (a
``ds_`` node: it stages its maps, published once the level has succeeded)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from glmflow.core.group.plan import GroupPlan
from glmflow.core.outputs import contrast_label
from glmflow.core.surface.group_level import surface_parts
from glmflow.interfaces.surface_group import SurfaceGroupInference


def surface_group_mem_gb(n_maps: int, n_vertices: int = 91282) -> float:
    """Memory of one contrast's node: a few float64 copies of every map, and a permutation
    block of 100 t maps."""
    return round(max(0.5, 0.3 + 8 * n_vertices * (4 * n_maps + 200) / 1e9), 2)


def init_surface_group_wf(
    *,
    plans: Sequence[GroupPlan],
    output_dir: str,
    design_files: Mapping[str, str],
    name: str = "glmflow_surface_group_wf",
) -> pe.Workflow:
    """The surface group-level graph: one :class:`SurfaceGroupInference` per contrast.

    Nothing is run or read while building (the plans were checked in core,
    :func:`glmflow.runners.surface.plan_surface_group_level`).

    Parameters
    ----------
    plans
        :class:`glmflow.core.group.plan.GroupPlan` of each task, its maps surface maps.
    output_dir
        Root of the glmflow derivatives; group maps go to its top.
    design_files
        Task -> the design TSV its nodes read.
    name
        Workflow name.

    Outputs
    -------
    map_files: every group map written
    """
    workflow = pe.Workflow(name=name)
    outputnode = pe.Node(niu.IdentityInterface(fields=["map_files"]), name="outputnode")
    nodes = []
    for plan in plans:
        inference = plan.spec.group.inference.to_dict()
        for analysis in plan.analyses:
            effects = [str(m.effect) for m in analysis.maps]
            right = [str(p["R"]) for p in map(surface_parts, effects) if "R" in p]
            metadata = json.dumps(plan.metadata(analysis), sort_keys=True)
            for contrast, definition in analysis.contrasts.items():
                node = pe.Node(
                    SurfaceGroupInference(
                        effect_files=effects, design_file=design_files[plan.spec.task],
                        contrast_name=contrast, output_dir=output_dir,
                        entities=json.dumps(plan.entities, sort_keys=True), metadata=metadata,
                        inference=json.dumps({**inference, "definition": definition}),
                        **({"right_files": right} if right else {}),
                    ),
                    name=f"ds_surface_group_{plan.spec.task}_{contrast_label(contrast)}",
                    mem_gb=surface_group_mem_gb(len(effects)),
                )  # fmt: skip
                nodes.append(node)
    merge = pe.Node(niu.Merge(max(len(nodes), 1), ravel_inputs=True), name="merge_maps",
                    run_without_submitting=True)  # fmt: skip
    for index, node in enumerate(nodes, start=1):
        workflow.connect(node, "out_files", merge, f"in{index}")
    workflow.connect(merge, "out", outputnode, "map_files")
    return workflow
