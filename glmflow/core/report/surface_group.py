"""A surface group model's page: methods, design, subjects, and each contrast's maps as the
surface group level wrote them (GIFTI per hemisphere on fsaverage5, CIFTI on fsLR 91k),
drawn on the mesh (:mod:`.surfaces`): the unthresholded z map and every thresholded map,
with the inference that made it, read from its sidecar. The surface group level writes no
cluster table, and the page says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from glmflow.core.report import html
from glmflow.core.report.group import GROUP_SECTIONS, design_part, subjects_table
from glmflow.core.report.methods import group_methods
from glmflow.core.report.surfaces import (
    DRAWN_MESHES,
    SurfaceMap,
    read_surface,
    surface_picture,
)

__all__ = ["GROUP_SECTIONS", "render_surface_group_page"]

_FWE = {"maxtFWE": "max-t", "sizeFWE": "cluster size", "tfceFWE": "TFCE"}


def inference_text(sidecar: dict[str, Any], desc: str) -> str:
    """How the thresholded surface group map ``desc-<desc>`` was made, from its sidecar."""
    inference = sidecar["GroupModel"]["inference"]
    if desc in _FWE:
        text = (f"permutation test, {_FWE[desc]} FWE-corrected p < {inference['alpha']:g} "
                f"({inference['n_perm']} permutations), t shown")  # fmt: skip
    else:
        threshold = sidecar.get("Threshold")
        shown = isinstance(threshold, int | float) and not isinstance(threshold, bool)
        rule = (f"z > {inference['z_threshold']:g}" if inference["method"] == "threshold"
                else f"{inference['method']} at alpha {inference['alpha']:g}")  # fmt: skip
        text = f"{rule} (z threshold {threshold:.3g})" if shown else f"{rule} (none survives)"
        if inference.get("cluster_threshold"):
            text += f", clusters of at least {inference['cluster_threshold']} vertices"
    excluded = sidecar.get("ExcludedVertices", 0)
    return f"{text}; {sidecar.get('Tail', 'two-sided')}; {excluded} element(s) left out"


def _map_part(title: str, lead: str, parts: dict[str, str], alt: str,
              kept: str = "pass the threshold") -> tuple[list[str], SurfaceMap]:  # fmt: skip
    """A written map drawn as it is (0: not shown), under ``title``."""
    smap = read_surface(parts)
    figure, counts = surface_picture(smap, np.nan_to_num(smap.values), alt, kept)
    return [html.heading(title), html.paragraph(f"{lead}{counts}"), figure], smap


def _contrast_section(contrast: dict[str, Any], notes: list[str]) -> str:
    name = contrast["names"][0]
    parts, z = _map_part("Unthresholded z", "", contrast["z"], f"z map of {name}", "with data")
    for inference in contrast["inferences"]:
        desc = inference["desc"]
        sidecar = json.loads(Path(inference["sidecar"]).read_text())
        more, shown = _map_part(f"Inference {desc}", f"{inference_text(sidecar, desc)}. ",
                                inference["map"], f"{name}, {desc}")  # fmt: skip
        parts += more
        if not np.nan_to_num(shown.values).any():
            notes.append(f"group contrast '{name}': nothing survives {desc}")
    if not contrast["inferences"]:
        notes.append(f"group contrast '{name}': no thresholded map written (inference 'none')")
    parts.append(html.paragraph(f"Drawn on {DRAWN_MESHES[z.space]}. The surface group level "
                                "writes no cluster table."))  # fmt: skip
    label = Path(next(iter(contrast["z"].values()))).name.split("_contrast-")[1].split("_")[0]
    return html.section(f"group-contrast-{label}", f"Group contrast {name}", *parts, level=3)


def render_surface_group_page(content: dict[str, Any], title: str) -> str:
    """The HTML of a surface group model's page (``content``: :class:`~.find.PagePlan`
    content of ``flavour`` "surface")."""
    contrasts = [c for c in content["contrasts"] if c["sidecar"] is not None]
    if not contrasts:
        raise ValueError(f"surface group model of {content['first_level']} on "
                         f"{content['space']} has no unthresholded z map")  # fmt: skip
    first = json.loads(Path(contrasts[0]["sidecar"]).read_text())
    notes: list[str] = []
    design = design_part(content["design"], contrasts, first, notes)
    subjects = subjects_table(first)
    n_subjects = subjects.iloc[:, 0].nunique()
    maps = [_contrast_section(contrast, notes) for contrast in contrasts]
    methods = group_methods(first["GroupModel"], n_subjects,
                            surface=content["space"].replace("_den-", " ").removeprefix("space-"))
    sections = [
        html.section("methods", "Methods", html.paragraph(methods, "methods")),
        html.section("design", "Design and contrasts", *design),
        html.section("subjects", f"Subjects ({n_subjects})", html.table(subjects)),
        html.section("maps", "Maps", *maps),
        html.section("warnings", "Warnings", html.warnings_list(notes)),
    ]  # fmt: skip
    return html.page(title, sections, nav=[("index.html", "All reports")])
