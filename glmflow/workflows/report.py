"""``init_reports_wf``: one report node per page, all fed by one atlas node."""

from __future__ import annotations

from collections.abc import Sequence

from nipype.pipeline import engine as pe

from glmflow.core.report import PagePlan
from glmflow.interfaces.report import RenderReport, SaveReportAtlas

#: Memory of a report node (GB): a few maps of one grid and small figures.
REPORT_MEM_GB = 0.5


def init_reports_wf(
    *, pages: Sequence[PagePlan], output_dir: str, memo_dir: str | None = None,
    name: str = "reports_wf",
) -> pe.Workflow:  # fmt: skip
    """The report pages of an output dataset, one cached node each.

    Parameters
    ----------
    pages
        :func:`glmflow.core.report.find_pages` of the output dataset.
    output_dir
        The output dataset (``OUTPUT_DIR/glmflow``); pages are published at its top.
    memo_dir
        Where the parts of subject pages are remembered by their contents (not hashed):
        a page that must be drawn again draws only the runs' and contrasts' parts that
        changed (:func:`glmflow.core.report.subject.render_subject_page`).

    Inputs / Outputs
    ----------------
    None: each ``ds_report_*`` node stages its page, which
    :func:`glmflow.execution.execute` publishes. A node reruns only when its plan or what its page
    shows changes (:attr:`glmflow.core.report.PagePlan.content_key`).
    """
    workflow = pe.Workflow(name=name)
    atlas = pe.Node(SaveReportAtlas(), name="report_atlas", mem_gb=2.0)
    connections = []
    for page in pages:
        node = pe.Node(
            RenderReport(output_dir=output_dir, plan=page.to_json(), content_key=page.content_key),
            name=page.node_name,
            mem_gb=REPORT_MEM_GB,
        )
        if memo_dir:
            node.inputs.memo_dir = memo_dir
        connections.append(
            (atlas, node, [("atlas_image", "atlas_image"), ("atlas_labels", "atlas_labels")])
        )
    workflow.connect(connections)
    if not pages:
        workflow.add_nodes([atlas])
    return workflow
