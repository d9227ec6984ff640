"""Resting-state report pages: one per subject, one per task's group level, from what
:func:`glmflow.runners.rest.run_connectivity` and ``run_connectivity_group`` wrote.

A subject page (``sub-<s>_task-<t>_desc-<model>_connectivity.html``) shows each
subject-level matrix (``relmat.tsv``, runs combined) as a figure with its node labels, the
atlas (its label, kind and file), the denoising (the sidecar's ``Denoising``) and, per run,
the censored volumes (``CensoredVolumes``) on fMRIPrep's framewise displacement. A group
page (``group_task-<t>_desc-<model>_connectivity.html``) shows each contrast's z matrix,
its threshold, the significant edges and the subjects that went in. The matrices are read,
never recomputed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from glmflow.core.report import figures, html
from glmflow.core.report.runs import framewise_displacement
from glmflow.core.rest.files import read_matrix

_RELMAT = "_relmat.json"


def _read(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def _entity(name: str, key: str) -> str | None:
    return next((p[len(key) + 1 :] for p in name.split("_") if p.startswith(f"{key}-")), None)


def _confounds(sidecar: Path, fmriprep: Path | None, top: Path) -> str | None:
    if fmriprep is None:
        return None
    stem = sidecar.name.split("_space-")[0].split("_seg-")[0]
    path = fmriprep / sidecar.parent.relative_to(top) / f"{stem}_desc-confounds_timeseries.tsv"
    return str(path) if path.is_file() else None


def _table(sidecar: Path) -> str:
    return str(sidecar).removesuffix(".json") + ".tsv"


def _edges(z_sidecar: str) -> str:
    """The edges table of a group z matrix (its name without ``stat-z``)."""
    return z_sidecar.replace("_stat-z", "").removesuffix(_RELMAT) + "_edges.tsv"


def _model_part(name: str) -> str:
    """``_desc-<model>`` of a connectivity file (outputs are named by their model), or ""."""
    desc = _entity(name, "desc")
    return f"_desc-{desc}" if desc else ""


def _subject_pages(glmflow_dir: Path, fmriprep: Path | None) -> list[tuple]:
    subjects: dict[tuple[str, str, str], dict[str, Any]] = {}
    for sidecar in sorted(glmflow_dir.glob(f"sub-*/**/*_seg-*_meas-*{_RELMAT}")):
        key = (_entity(sidecar.name, "sub"), _entity(sidecar.name, "task"),
               _model_part(sidecar.name))  # fmt: skip
        page = subjects.setdefault(key, {"flavour": "rest", "subject": key[0], "task": key[1],
                                         "runs": [], "matrices": [], "tables": []})  # fmt: skip
        run = sidecar.name.split("_seg-")[0]
        one_run = "RunCombination" not in _read(sidecar)  # the runs combined say how
        if not one_run and _entity(sidecar.name, "ses") is None:
            page["matrices"].append(str(sidecar))  # the subject's runs combined
            page["tables"].append(_table(sidecar))  # in the page's key
        elif one_run and not any(r["name"] == run for r in page["runs"]):
            confounds = _confounds(sidecar, fmriprep, glmflow_dir)
            page["runs"].append({"name": run, "sidecar": str(sidecar), "confounds": confounds})
    for page in subjects.values():
        # a subject's only run without run- is written under the subject's name alone
        # (core/rest/files.py::subject_names_are_run_names): its matrix is the run's too
        for matrix in page["matrices"] if not page["runs"] else ():
            if len(_read(Path(matrix)).get("Runs", [])) == 1:
                confounds = _confounds(Path(matrix), fmriprep, glmflow_dir)
                name = Path(matrix).name.split("_seg-")[0]
                page["runs"].append({"name": name, "sidecar": matrix, "confounds": confounds})
    return [
        ("subject", f"sub-{s}_task-{t}{m}_connectivity.html",
         f"Subject sub-{s}: {t} connectivity{m.replace('_desc-', ', model ')}", content)
        for (s, t, m), content in subjects.items() if content["matrices"]
    ]  # fmt: skip


def rest_page_plans(glmflow_dir: Path, fmriprep: Path | None) -> list[tuple]:
    """``(kind, name, title, content)`` of the connectivity pages in ``glmflow_dir``: one
    per subject, task and model, one per task and model's group level."""
    plans = _subject_pages(glmflow_dir, fmriprep)
    groups: dict[tuple[str, str, str], list[str]] = {}
    for sidecar in sorted(glmflow_dir.glob(f"task-*_meas-*_contrast-*{_RELMAT}")):
        if _entity(sidecar.name, "stat") == "z":
            space = _entity(sidecar.name, "space")
            key = (_entity(sidecar.name, "task"), f"_space-{space}" if space else "",
                   _model_part(sidecar.name))  # fmt: skip
            groups.setdefault(key, []).append(str(sidecar))
    several = len({space for _, space, _ in groups}) > 1  # spaces side by side: a page each
    for (task, space, model), sidecars in groups.items():
        design = next(glmflow_dir.glob(f"task-{task}{space}_*{model}_design.tsv"), None)
        tables = [t for s in sidecars for t in (_table(Path(s)), _edges(s)) if Path(t).is_file()]
        content = {"flavour": "rest", "task": task, "contrasts": sidecars, "tables": tables,
                   "design": str(design) if design else None}  # fmt: skip
        space = space if several else ""
        title = f"Group level: {task} connectivity{space.replace('_space-', ', space ')}"
        plans.append(("group", f"group_task-{task}{space}{model}_connectivity.html",
                      f"{title}{model.replace('_desc-', ', model ')}", content))  # fmt: skip
    return plans


def atlas_sentence(info: dict[str, Any]) -> str:
    """The atlas a matrix's nodes come from, in words."""
    atlas = info.get("Atlas", {})
    source = atlas.get("Source")
    where = f", from {Path(source).name}" if source else ""
    n = len(info.get("NodeLabels", []))
    return f"Atlas '{atlas.get('Label')}' ({atlas.get('Kind')}{where}): {n} nodes."


def denoising_sentence(info: dict[str, Any]) -> str:
    """The denoising the sidecar records, in words."""
    d = info.get("Denoising", {})
    confounds = d.get("confounds", {})
    columns = ", ".join(d.get("confound_columns", [])) or "no confound columns"
    strategy = ", ".join(confounds.get("strategy", [])) or "none"
    text = (
        f"Denoised with {d.get('method', 'an unrecorded method')}: nilearn's load_confounds "
        f"strategies {strategy} (regressors {columns})"
    )
    if "scrub" in confounds.get("strategy", ()):
        text += (
            f"; volumes with framewise displacement above {confounds['fd_threshold']} mm "
            f"or standardised DVARS above {confounds['std_dvars_threshold']} censored "
            f"(segments shorter than {confounds['scrub']} volumes too)"
        )
    bands = [
        f"high-pass {d['high_pass']} Hz" if d.get("high_pass") else "",
        f"low-pass {d['low_pass']} Hz" if d.get("low_pass") else "",
        "detrended" if d.get("detrend") else "",
        f"standardised ({d['standardize']})" if d.get("standardize") else "",
    ]
    bands = [b for b in bands if b]
    return text + (f"; {', '.join(bands)}" if bands else "") + "."


def _matrix_part(sidecar: str) -> str:
    info = _read(sidecar)
    labels = [str(n) for n in info["NodeLabels"]]
    values = np.nan_to_num(read_matrix(_table(Path(sidecar))))
    measure = info["Measure"] + (" (Fisher z)" if info.get("FisherZ") else "")
    return "\n".join(
        [
            html.heading(f"{measure}, runs combined: {info.get('RunCombination', 'one run')}"),
            html.svg(figures.matrix_svg(values, labels, labels, label=f"{measure} matrix")),
        ]
    )


def _run_part(run: dict[str, Any], notes: list[str]) -> str:
    info = _read(run["sidecar"])
    n = int(info["NumberOfVolumes"])
    censored = np.zeros(n, dtype=bool)
    censored[np.asarray(info.get("CensoredVolumes", []), dtype=int)] = True
    text = f"{int(censored.sum())} of {n} volumes censored ({100 * censored.mean():.1f} %)"
    if censored.any():
        notes.append(f"{run['name']}: {text}")
    parts = [html.paragraph(text + ".")]
    fd = framewise_displacement(run["confounds"])
    if fd is not None and len(fd) == n:
        threshold = info.get("Denoising", {}).get("confounds", {}).get("fd_threshold", 0.5)
        parts.append(
            html.svg(
                figures.trace_svg(
                    fd,
                    censored,
                    step_s=info["RepetitionTime"],
                    line=threshold,
                    label=f"FD (mm); {text} (red)",
                )
            )
        )
    else:
        parts.append(html.paragraph("No framewise_displacement column in the confounds."))
    return html.section(f"run-{run['name']}", run["name"], *parts, level=3)


def render_rest_subject_page(content: dict[str, Any], title: str) -> str:
    """The HTML of one subject's connectivity page."""
    first = _read(content["matrices"][0])
    notes: list[str] = []
    runs = [_run_part(run, notes) for run in content["runs"]]
    sections = [
        html.section(
            "methods",
            "Atlas and denoising",
            html.paragraph(atlas_sentence(first), "atlas"),
            html.paragraph(denoising_sentence(first), "methods"),
        ),
        html.section("runs", "Runs and censored volumes", *runs),
        html.section(
            "matrices", "Connectivity matrices", *[_matrix_part(m) for m in content["matrices"]]
        ),
        html.section("warnings", "Warnings", html.warnings_list(notes)),
    ]
    return html.page(title, sections, nav=[("index.html", "All reports")])


def _contrast_part(sidecar: str, notes: list[str]) -> str:
    info = _read(sidecar)
    labels = [str(n) for n in info["NodeLabels"]]
    values = np.nan_to_num(read_matrix(_table(Path(sidecar))))
    edges_file = _edges(sidecar)
    edges = pd.read_csv(edges_file, sep="\t") if Path(edges_file).is_file() else pd.DataFrame()
    name = f"{info['Measure']}: {info['Contrast']}"
    if edges.empty:
        notes.append(f"{name}: no edge survives {info['Threshold']}")
    label = _entity(Path(sidecar).name, "contrast")
    return html.section(
        f"contrast-{_entity(Path(sidecar).name, 'meas')}-{label}",
        name,
        html.paragraph(
            f"z of the edge-wise {info['Design']} GLM; edges shown: {info['Threshold']}."
        ),
        html.svg(figures.matrix_svg(values, labels, labels, label=f"z matrix of {name}")),
        html.table(edges, css="edges", empty="No edge survives."),
        level=3,
    )


def render_rest_group_page(content: dict[str, Any], title: str) -> str:
    """The HTML of one task's connectivity group page."""
    notes: list[str] = []
    first = _read(content["contrasts"][0])
    contrasts = [_contrast_part(sidecar, notes) for sidecar in content["contrasts"]]
    design = (
        pd.read_csv(content["design"], sep="\t")
        if content["design"]
        else pd.DataFrame({"subject": first["Subjects"]})
    )
    sections = [
        html.section("design", "Design", html.table(design)),
        html.section(
            "subjects",
            f"Subjects ({len(first['Subjects'])})",
            html.paragraph(", ".join(f"sub-{s}" for s in first["Subjects"])),
        ),
        html.section("maps", "Contrasts", *contrasts),
        html.section("warnings", "Warnings", html.warnings_list(notes)),
    ]
    return html.page(title, sections, nav=[("index.html", "All reports")])
