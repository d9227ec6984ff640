"""The report pages of a BIDS Stats Model run, from what it wrote (FitLins' layout).

``node-<Name>/sub-<s>/[ses-<x>/]`` holds a run node's maps and ``_design.tsv`` (the run
node is the folder with designs), a session or subject node's maps; a dataset node's maps
are at ``node-<Name>/`` itself. Each map's sidecar names its node, contrast and weights and
the model file (``ModelFile``), whose nodes and edges say which node fed which.

A subject gets one page (its runs' designs and motion, its subject- and session-level maps;
a run-only model shows its run maps), each dataset node one page (``group_node-<Name>.html``).
The plans are plain tuples ``(kind, name, title, content)`` that
:func:`glmflow.core.report.find.find_pages` turns into page plans.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from glmflow.core.memo import file_identity
from glmflow.core.report.bsm import bsm_methods, combination, read_model, source_node

_Z = "*_stat-z_statmap.json"
_DESIGN = "_design.tsv"


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _unthresholded(folder: Path, pattern: str = _Z) -> list[Path]:
    return sorted(p for p in folder.glob(pattern) if "_desc-" not in p.name)


def _companions(stem: str, folder: Path | None) -> dict[str, Any]:
    """fMRIPrep's confounds, brain mask and BOLD of the run ``stem`` (None where there is
    none). A BSM names its space in the model's ``Input``, not in the file names: the first
    space (sorted) that has both a mask and a BOLD is taken."""
    found: dict[str, Any] = {"confounds": None, "mask": None, "bold": None}
    if folder is None:
        return found
    confounds = folder / f"{stem}_desc-confounds_timeseries.tsv"
    found["confounds"] = str(confounds) if confounds.is_file() else None
    for mask in sorted(folder.glob(f"{stem}_space-*_desc-brain_mask.nii.gz")):
        bold = Path(str(mask).replace("_desc-brain_mask", "_desc-preproc_bold"))
        if bold.is_file():
            found.update(mask=str(mask), bold=str(bold), bold_identity=file_identity(bold))
            break
    return found


def _run(design: Path, top: Path, fmriprep: Path | None) -> dict[str, Any]:
    stem = design.name.removesuffix(_DESIGN)
    folder = fmriprep / design.parent.relative_to(top) / "func" if fmriprep else None
    return {
        "name": stem, "design": str(design), "design_sidecar": str(design.with_suffix(".json")),
        "maps": [str(p) for p in _unthresholded(design.parent, f"{stem}_contrast-{_Z}")],
        **_companions(stem, folder),
    }  # fmt: skip


def _contrast(sidecar: Path, task: str, node: str) -> dict[str, Any]:
    info = _read(sidecar)
    z = str(sidecar).removesuffix(".json") + ".nii.gz"
    return {"z": z, "sidecar": str(sidecar), "names": [info["Contrast"], task], "node": node}


def _model_file(folders: list[Path]) -> str | None:
    for folder in folders:
        for sidecar in folder.rglob(_Z):
            return _read(sidecar).get("ModelFile")
    return None


def _model_facts(path: str | None) -> dict[str, Any]:
    """What the pages say of the model file: the text, not the file (so that a contrast
    edit re-renders only the pages that show the contrast)."""
    model = read_model(path)
    return {"model_name": Path(path).name if path else None, "model": model,
            "methods": bsm_methods(model, path)}  # fmt: skip


def _subject_plan(label: str, run_nodes, other_nodes, fmriprep, facts) -> tuple | None:
    runs = [
        _run(design, node, fmriprep)
        for node in run_nodes for design in sorted((node / label).rglob(f"*{_DESIGN}"))
    ]  # fmt: skip
    if not runs:
        return None
    tasks = ", ".join(sorted({part[5:] for r in runs for part in r["name"].split("_")
                              if part.startswith("task-")}))  # fmt: skip
    contrasts = [
        _contrast(sidecar, tasks, node.name.removeprefix("node-"))
        for node in other_nodes for sidecar in sorted((node / label).rglob(_Z))
        if "_desc-" not in sidecar.name
    ]  # fmt: skip
    if not contrasts:  # a run-only model: its run maps are the subject's contrasts
        contrasts = [_contrast(Path(s), tasks, node.name.removeprefix("node-"))
                     for node in run_nodes for r in runs for s in r["maps"]
                     if Path(s).parent.is_relative_to(node)]  # fmt: skip
    content = {"flavour": "bsm", "methods": facts["methods"], "runs": runs,
               "subject": label.removeprefix("sub-"), "contrasts": contrasts,
               "not_drawn": []}  # fmt: skip
    return ("subject", f"{label}.html", f"Subject {label}", content)


def _inferences(folder: Path, z: Path) -> list[dict[str, Any]]:
    stem = z.name.removesuffix("_statmap.json")
    found = []
    for sidecar in sorted(folder.glob(f"{stem}_desc-*_statmap.json")):
        image = str(sidecar).removesuffix(".json") + ".nii.gz"
        table = image.removesuffix("_statmap.nii.gz") + "_clusters.tsv"
        found.append({"map": image, "sidecar": str(sidecar),
                      "clusters": table if Path(table).is_file() else None})  # fmt: skip
    return found


def _dataset_plan(node: Path, facts: dict[str, Any]) -> tuple | None:
    contrasts = []
    for sidecar in _unthresholded(node):
        info = _read(sidecar)
        contrasts.append({
            "names": [info["Contrast"]], "z": str(sidecar).removesuffix(".json") + ".nii.gz",
            "sidecar": str(sidecar), "inferences": _inferences(node, sidecar),
        })  # fmt: skip
    if not contrasts:
        return None
    name = node.name.removeprefix("node-")
    source = source_node(facts["model"], name)
    label = contrasts[0]["z"].split("contrast-")[-1].split("_")[0]
    inputs = [] if source is None else sorted(
        p.name for p in (node.parent / f"node-{source}").glob(
            f"sub-*/**/*_contrast-{label}_stat-effect_statmap.nii.gz"))  # fmt: skip
    content = {"flavour": "bsm", "model_name": facts["model_name"], "node": name,
               "source": source, "inputs": inputs, "contrasts": contrasts,
               "combination": combination(facts["model"], name)}  # fmt: skip
    return ("group", f"group_node-{name}.html", f"Dataset node {name}", content)


def bsm_page_plans(glmflow_dir: Path, fmriprep: Path | None) -> list[tuple]:
    """``(kind, name, title, content)`` of every page of the BSM outputs in ``glmflow_dir``
    (none when it has no ``node-*`` folder)."""
    nodes = sorted(d for d in glmflow_dir.glob("node-*") if d.is_dir())
    run_nodes = [d for d in nodes if next(d.glob(f"sub-*/**/*{_DESIGN}"), None)]
    others = [d for d in nodes if d not in run_nodes]
    if not nodes:
        return []
    facts = _model_facts(_model_file(nodes))
    labels = sorted({p.name for d in nodes for p in d.glob("sub-*") if p.is_dir()})
    plans = [_subject_plan(label, run_nodes, others, fmriprep, facts) for label in labels]
    plans += [_dataset_plan(node, facts) for node in others]
    return [plan for plan in plans if plan is not None]
