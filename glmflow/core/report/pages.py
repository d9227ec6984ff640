"""One report page rendered and staged for publishing; the index of all pages."""

from __future__ import annotations

import json
from pathlib import Path

from glmflow.core.publish import atomic_write_text, write_manifest
from glmflow.core.report import html
from glmflow.core.report.bsm import bsm_models, render_bsm_group_page
from glmflow.core.report.find import PagePlan
from glmflow.core.report.group import render_group_page
from glmflow.core.report.maps import load_atlas
from glmflow.core.report.rest import render_rest_group_page, render_rest_subject_page
from glmflow.core.report.subject import render_subject_page
from glmflow.core.report.surface_group import render_surface_group_page

INDEX = "index.html"


def render_report(
    plan_json: str, *, atlas_image: str, atlas_labels: str, output_dir: str, stage_dir: str,
    memo_dir: str | None = None,
) -> tuple[Path, Path, Path]:  # fmt: skip
    """Render the page ``plan_json`` (:meth:`PagePlan.to_json`) into ``stage_dir``
    (``memo_dir``: the parts of subject pages remembered, see ``render_subject_page``).

    Returns the page's destination at the top of ``output_dir``, the staged page and the
    manifest that :func:`glmflow.core.publish.publish` copies it with once the run succeeded.
    """
    plan = json.loads(plan_json)
    atlas = load_atlas(atlas_image, atlas_labels)
    content, title = plan["content"], plan["title"]
    if content.get("flavour") == "rest":
        rest = render_rest_subject_page if plan["kind"] == "subject" else render_rest_group_page
        text = rest(content, title)
    elif content.get("flavour") == "bsm" and plan["kind"] == "subject":
        text = render_subject_page(content, title, atlas, bsm_models(content), memo_dir)
    elif content.get("flavour") == "bsm":
        text = render_bsm_group_page(content, title, atlas)
    elif content.get("flavour") == "surface":
        text = render_surface_group_page(content, title)
    elif plan["kind"] == "subject":
        text = render_subject_page(content, title, atlas, memo_dir=memo_dir)
    else:
        text = render_group_page(content, title, atlas)
    staged = atomic_write_text(Path(stage_dir) / plan["name"], text)
    destination = Path(output_dir) / plan["name"]
    manifest = write_manifest(Path(stage_dir) / "manifest.json", [(staged, destination)])
    return destination, staged, manifest


def write_index(output_dir: str | Path, pages: list[PagePlan]) -> Path:
    """``index.html`` at the top of ``output_dir`` linking every page (written if changed)."""
    subjects = [(p.name, p.title) for p in pages if p.kind == "subject"]
    groups = [(p.name, p.title) for p in pages if p.kind == "group"]
    sections = [
        html.section("subjects", f"Subjects ({len(subjects)})", html.link_list(subjects)),
        html.section("groups", f"Group models ({len(groups)})", html.link_list(groups)),
    ]
    # no folder name in the page: the same outputs give the same bytes wherever they are
    text = html.page("glmflow reports", sections)
    path = Path(output_dir) / INDEX
    if not (path.is_file() and path.read_text() == text):
        atomic_write_text(path, text)
    return path
