"""What a report says about a BIDS Stats Model run: its methods, from the model file, and
its dataset nodes' pages, drawn by the same code as glmflow's own model pages.

The subject pages are :func:`~glmflow.core.report.subject.render_subject_page` with one
:class:`~glmflow.core.report.subject.TaskModel` per task read from the model file (the run
node's ``Convolve``, ``HighPassFilterCutoffHz`` and ``X``); the dataset pages are
:func:`~glmflow.core.report.group.group_page` with the design the sidecars record
(``Columns``, ``Weights``, ``InputMaps``) and the maps of the node that fed it.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from glmflow.core.atlases import VolumeAtlas
from glmflow.core.model import InferenceSpec
from glmflow.core.report import figures, html
from glmflow.core.report.group import group_page
from glmflow.core.report.methods import software
from glmflow.core.report.subject import TaskModel, task_of
from glmflow.errors import GlmflowError

_TYPES = {"glm": "ordinary least squares on the input effect maps",
          "meta": "precision-weighted fixed effects of the input maps"}  # fmt: skip


def read_model(path: str | None) -> dict[str, Any] | None:
    """The checked model file the sidecars name (None if it is gone or no longer valid)."""
    from glmflow.core.bsm import read_bids_stats_model

    if path is None or not Path(path).is_file():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a pre-1.0 'Steps' file's conversion note
        try:
            return read_bids_stats_model(path)
        except GlmflowError:
            return None


def _steps(node: dict[str, Any]) -> list[dict[str, Any]]:
    steps = node.get("Transformations") or []
    return steps.get("Instructions", []) if isinstance(steps, dict) else steps


def _kind(node: dict[str, Any]) -> str:
    kind = node["Model"]["Type"]
    return _TYPES.get(kind, kind)


def _run_sentence(node: dict[str, Any]) -> str:
    convolved = [step for step in _steps(node) if str(step.get("Name")).lower() == "convolve"]
    names = [str(v) for step in convolved for v in step.get("Input", [])]
    x = [str(v) for v in node.get("Model", {}).get("X", [])]
    hrf = ", ".join(sorted({str(step.get("Model", "spm")) for step in convolved})) or "no"
    others = [v for v in x if v not in names and v != "1"]
    cutoff = node.get("Model", {}).get("Options", {}).get("HighPassFilterCutoffHz")
    drift = (f"a discrete cosine basis with a {1 / cutoff:.0f} s high-pass cut-off" if cutoff
             else "no drift regressors")  # fmt: skip
    low = node.get("Model", {}).get("Options", {}).get("LowPassFilterCutoffHz")
    low_pass = (f"; the BOLD series and the design were low-passed at {low:g} Hz (nilearn's "
                "order 5 Butterworth filter, forwards and backwards)" if low else "")  # fmt: skip
    return (
        f"its run node '{node['Name']}' modelled each run's preprocessed BOLD series "
        f"(unsmoothed) with a general linear model: {', '.join(names) or 'no regressor'} "
        f"convolved with the {hrf} haemodynamic response function, drifts modelled with "
        f"{drift}, and the further columns {', '.join(others) or 'none'}"
        f"{' and an intercept' if '1' in x else ''}{low_pass}; it was fitted with a "
        "first-order autoregressive noise model (AR(1))"
    )


def bsm_methods(model: dict[str, Any] | None, model_file: str | None) -> str:
    """The methods paragraph of a BSM run (every node, in the model's order)."""
    name = Path(model_file).name if model_file else "an unnamed model file"
    if model is None:
        return (
            f"Statistical analysis was performed with {software()} from the BIDS Stats "
            f"Model {name}, which is no longer readable: its nodes are not described."
        )
    nodes = model["Nodes"]
    later = [
        f"the {n['Level'].lower()} node '{n['Name']}' combined its inputs by {_kind(n)}"
        for n in nodes[1:]
    ]
    return (
        f"Statistical analysis was performed with {software()} from the BIDS Stats Model "
        f"'{model['Name']}' ({name}): {_run_sentence(nodes[0])}"
        + (f"; {'; '.join(later)}" if later else "") + "."
    )  # fmt: skip


def bsm_models(content: dict[str, Any]) -> dict[str, TaskModel]:
    """The subject page's models: every task the runs have, one methods paragraph (the
    model file holds one run node for them all). Subject maps are shown at glmflow's
    default inference (a BSM states none)."""
    inference = InferenceSpec()
    tasks = sorted({task_of(run["name"]) for run in content["runs"]})
    return {task: TaskModel(content["methods"], None, inference) for task in tasks}


def source_node(model: dict[str, Any] | None, node: str) -> str | None:
    """The node whose maps fed ``node`` (its edge; by default the previous node)."""
    if model is None:
        return None
    nodes = [n["Name"] for n in model["Nodes"]]
    edges = model.get("Edges") or [{"Source": a, "Destination": b}
                                   for a, b in zip(nodes, nodes[1:], strict=False)]  # fmt: skip
    return next((e["Source"] for e in edges if e["Destination"] == node), None)


def combination(model: dict[str, Any] | None, node: str) -> str:
    """How ``node`` combined its inputs, in words."""
    nodes = model["Nodes"] if model else []
    return next((_kind(n) for n in nodes if n["Name"] == node), "its model (file unreadable)")


def _design(contrasts: list[dict], info: dict, inputs: list[str], notes: list[str]) -> list:
    columns = [str(c) for c in info.get("Columns", [])]
    weights = {}
    for contrast in contrasts:
        sidecar = json.loads(Path(contrast["sidecar"]).read_text())
        rows = np.atleast_2d(np.asarray(sidecar.get("Weights", []), dtype=float))
        for k, row in enumerate(rows):
            weights[sidecar["Contrast"] + (f" [{k + 1}]" if len(rows) > 1 else "")] = row
    matrix = pd.DataFrame.from_dict(weights, orient="index", columns=columns)
    parts = [html.heading("Design matrix")]
    if columns == ["intercept"] and inputs:
        ones = np.ones((len(inputs), 1))
        parts.append(html.svg(figures.matrix_svg(ones, inputs, columns, symmetric=False,
                                                 label="dataset design")))  # fmt: skip
    else:
        parts.append(html.paragraph(f"Columns: {', '.join(columns)}."))
        notes.append("the BSM path writes no dataset design table: only its columns are shown")
    return parts + [
        html.heading("Contrast matrix"),
        html.svg(figures.matrix_svg(matrix.to_numpy(), list(matrix.index), columns,
                                    annotate=True, label="dataset contrast matrix")),
    ]  # fmt: skip


def render_bsm_group_page(content: dict[str, Any], title: str, atlas: VolumeAtlas) -> str:
    """The HTML of one BSM dataset node's page (``content``: its page plan's content)."""
    contrasts, inputs, source = content["contrasts"], content["inputs"], content["source"]
    first = json.loads(Path(contrasts[0]["sidecar"]).read_text())
    notes: list[str] = []
    if len(inputs) != first.get("InputMaps", len(inputs)):
        notes.append(f"{first['InputMaps']} input maps went in, {len(inputs)} found in "
                     f"node-{source} (an edge's Filter selects some)")  # fmt: skip
    subjects = pd.DataFrame({"subject": [n.split("_")[0] for n in inputs], "input map": inputs})
    desc = sorted({Path(i["map"]).name.split("_desc-")[1].split("_")[0]
                   for c in contrasts for i in c["inferences"]})  # fmt: skip
    methods = (
        f"The dataset node '{content['node']}' of {content['model_name']} took "
        f"{first.get('InputMaps', len(inputs))} effect maps of node '{source}' "
        f"({subjects['subject'].nunique()} subjects) and combined them by "
        f"{content['combination']} with the columns "
        f"{', '.join(map(str, first.get('Columns', [])))}, with {software()}. "
        f"Thresholded maps: {', '.join(desc) or 'none'}."
    )
    design = _design(contrasts, first, inputs, notes)
    return group_page(title, methods, design, subjects, contrasts, atlas, notes)
