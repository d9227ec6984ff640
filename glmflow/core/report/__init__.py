"""HTML reports of glmflow's outputs: one page per subject and per group model, an index.

Built from what the levels wrote (maps, design TSVs, sidecars, cluster tables) and fMRIPrep's
confounds, masks and BOLD runs; nothing is refitted. :func:`find_pages` lists the pages an
output dataset has, :func:`render_report` writes one, :func:`write_index` links them.
"""

from glmflow.core.report.find import PagePlan, find_pages
from glmflow.core.report.pages import render_report, write_index

__all__ = ["PagePlan", "find_pages", "render_report", "write_index"]
