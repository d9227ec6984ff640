"""Run node of a BIDS Stats Model: one run from its pybids design to contrast maps."""

from __future__ import annotations

from collections.abc import Sequence

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from glmflow.core.model import ContrastSpec
from glmflow.interfaces.bold import LowPassBold, MaskAndSmooth
from glmflow.interfaces.glm import FitFirstLevel
from glmflow.workflows.run_level import (
    MAP_OUTPUTS,
    contrasts_node,
    fit_and_contrast_connections,
)

BSM_RUN_INPUTS = ["bold_file", "mask_file", "design_file"]
BSM_RUN_OUTPUTS = ["contrast_names", "stat_types", *MAP_OUTPUTS, "contrasts_json", "mask_file"]


def init_bsm_run_wf(
    *,
    contrasts: Sequence[ContrastSpec],
    mem_gb: float,
    noise_model: str = "ar1",
    missing_conditions: str = "error",
    memo_dir: str | None = None,
    low_pass: float | None = None,
    tr: float | None = None,
    name: str = "bsm_run_wf",
) -> pe.Workflow:
    """Fit one run on the design pybids built for it and compute the run node's contrasts.

    Parameters
    ----------
    contrasts
        The run node's contrasts for this run (``glmflow.core.bsm.RunDesign.contrasts``).
    mem_gb
        Memory (GB) of the read and fit nodes, from the BOLD size.
    noise_model
        "ar1" (nilearn's and FitLins' default) or "ols".
    missing_conditions
        "error" or "drop" (already applied when the contrasts were built; kept for the record).
    memo_dir
        Folder remembering each contrast's maps (not hashed).
    low_pass, tr
        ``Options.LowPassFilterCutoffHz`` (Hz) and the run's TR (s): when set, a
        ``low_pass_bold`` node (:class:`~glmflow.interfaces.bold.LowPassBold`) filters the
        masked data between ``mask_bold`` and the fit, as the plan filtered the design.
    name
        Workflow name.

    Inputs
    ------
    bold_file, mask_file, design_file (design.tsv of the run, written by the plan)

    Outputs
    -------
    contrast_names, stat_types, effect_files, variance_files, stat_files, p_files, z_files,
    contrasts_json, mask_file
    """
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(fields=BSM_RUN_INPUTS), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=BSM_RUN_OUTPUTS), name="outputnode")
    mask_bold = pe.Node(MaskAndSmooth(), name="mask_bold", mem_gb=mem_gb)
    fit = pe.Node(FitFirstLevel(noise_model=noise_model), name="fit_first_level", mem_gb=mem_gb)
    compute_contrasts = contrasts_node(
        contrasts, missing_conditions=missing_conditions, memo_dir=memo_dir, mem_gb=mem_gb
    )
    connections = fit_and_contrast_connections(mask_bold, fit, compute_contrasts, outputnode)
    if low_pass is not None:
        # a chunk of voxels at a time (glmflow.core.temporal_filter), whatever the run's size
        filter_node = pe.Node(
            LowPassBold(cutoff_hz=low_pass, repetition_time=tr), name="low_pass_bold", mem_gb=0.5
        )
        connections = _through(connections, mask_bold, fit, filter_node, "data_file")
    # fmt: off
    workflow.connect([
        (inputnode, mask_bold, [("bold_file", "bold_file"), ("mask_file", "mask_file")]),
        (inputnode, fit, [("design_file", "design_file")]),
        *connections,
    ])
    # fmt: on
    return workflow


def _through(connections: list, source, dest, via, field: str) -> list:
    """``connections`` with ``source.field -> dest.field`` passed through ``via``."""
    out = []
    for a, b, ports in connections:
        if a is source and b is dest:
            ports = [p for p in ports if p != (field, field)]
        if ports:
            out.append((a, b, ports))
    return [*out, (source, via, [(field, field)]), (via, dest, [(field, field)])]
