"""A BIDS Stats Model on a dataset: pybids' graph, the run node's designs and contrasts.

Every variable, ``Input`` selector and transformation is pybids'
(:class:`bids.modeling.BIDSStatsModelsGraph`); glmflow adds the cosine drift of
``HighPassFilterCutoffHz`` to the run node's ``X`` (then nilearn's Butterworth low-pass of
``LowPassFilterCutoffHz`` to the whole design, as to the data), and checks before any
compute what pybids drops or defers: ``GroupBy`` entities, ``X`` variables and contrast
conditions that do not exist (pybids drops such contrasts silently; here they are an error
unless ``missing="drop"``, which warns and records the drop).
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from nilearn.glm.first_level import make_first_level_design_matrix

from glmflow.core.bsm.detect import mask_image_path
from glmflow.core.bsm.schema import check_model
from glmflow.core.model import ContrastSpec
from glmflow.core.model.jsonfile import read_json
from glmflow.core.temporal_filter import check_butterworth, low_pass_design
from glmflow.errors import DatasetError, ModelSpecError

_RUN_ENTITIES = ("subject", "session", "task", "run", "acquisition")
_LOW_PASS = "'Model.Options.LowPassFilterCutoffHz'"


@dataclass(frozen=True)
class RunDesign:
    """One unit of the run node: its entities, design (X + drift, low-passed when
    ``low_pass`` is set), contrasts and files."""

    entities: Mapping[str, str]
    design: pd.DataFrame
    roles: Mapping[str, str]
    tr: float
    contrasts: tuple[ContrastSpec, ...]
    bold_file: str
    mask_file: str
    dropped: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    low_pass: float | None = None  # Options.LowPassFilterCutoffHz: data and design filtered


def read_bids_stats_model(path: str | Path) -> dict[str, Any]:
    """Read and check a BSM file (:func:`glmflow.core.bsm.schema.check_model`)."""
    return check_model(read_json(path), str(path))


def load_graph(model: Mapping[str, Any], layout, source: str):
    """pybids' graph of a checked model on ``layout``, its collections loaded."""
    from bids.modeling import BIDSStatsModelsGraph

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pybids' notes on keys checked here
        try:
            graph = BIDSStatsModelsGraph(layout, dict(model))
            graph.load_collections(**_input_filters(model))
        except (ValueError, KeyError, TypeError) as err:
            raise ModelSpecError(f"{source}: pybids cannot load the model: {err}") from None
    return graph


def _input_filters(model: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in model.get("Input", {}).items() if k not in ("space", "desc", "res")}


def run_designs(graph, layout, source: str, *, missing: str = "error") -> list[RunDesign]:
    """The run node's units, each a design and contrasts checked against it."""
    node = graph.root_node
    where = f"{source}: node '{node.name}'"
    if node.level != "run":
        raise ModelSpecError(f"{where}: the first node must be a Run node; got {node.level!r}")
    _check_group_by(node, layout, where)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            outputs = node.run(
                group_by=node.group_by,
                force_dense=True,
                invalid_inputs="drop",
                invalid_contrasts="ignore",
                missing_values="fill",
                transformation_history=True,
            )
        except (ValueError, KeyError, TypeError) as err:
            raise ModelSpecError(f"{where}: pybids cannot build the design: {err}") from None
    if not outputs:
        raise DatasetError(
            f"{where}: no run matches the model's Input "
            f"{dict(graph.model.get('input', {}))}; check 'Input' and the dataset"
        )
    space = graph.model.get("input", {}).get("space")
    mask = node.model.get("options", {}).get("mask")
    if isinstance(mask, str):  # one image for every run: its file checked once, here
        mask = (mask, _mask_image(mask, source, where))
    return [_run_design(out, node, layout, where, missing, space, mask) for out in outputs]


def _mask_image(value: str, source: str, where: str) -> str:
    """The image an ``Options.Mask`` path names, readable as NIfTI (one line otherwise)."""
    import nibabel as nib

    path = mask_image_path(value, source)
    field = f"'Model.Options.Mask' {json.dumps(value)}"
    fix = "give a NIfTI mask on the BOLD grid, absolute or from the model file's folder"
    if not path.is_file():
        raise ModelSpecError(f"{where}: {field}: no file {path}; {fix}")
    try:
        image = nib.load(path)
    except Exception as err:  # nibabel raises several types for a file that is no image
        message = f"{where}: {field}: {path} is not a NIfTI image ({err}); {fix}"
        raise ModelSpecError(message) from None
    if len(image.shape) != 3:
        raise ModelSpecError(f"{where}: {field}: {path} has shape {image.shape}, not 3-D; {fix}")
    return str(path)


def _check_group_by(node, layout, where: str) -> None:
    from bids.layout import Config

    # an entity the dataset does not use ("run" in a one-run dataset) groups nothing apart;
    # a name that is no BIDS entity at all is a mistake
    names = [Config.load(c).entities for c in ("bids", "derivatives")]
    known = set(layout.get_entities()) | {"contrast"} | {k for n in names for k in n}
    for entity in node.group_by:
        if entity not in known:
            close = difflib.get_close_matches(entity, sorted(known), n=1)
            hint = f"did you mean '{close[0]}'?" if close else "remove it"
            raise ModelSpecError(
                f"{where}: 'GroupBy' entity '{entity}' does not exist in the dataset; {hint}"
            )


def _run_design(out, node, layout, where, missing, space, mask_option) -> RunDesign:
    entities = {k: str(v) for k, v in out.entities.items() if k in _RUN_ENTITIES}
    meta = out.metadata
    units = meta[[c for c in _RUN_ENTITIES if c in meta]].drop_duplicates()
    if len(units) > 1:
        raise ModelSpecError(
            f"{where}: 'GroupBy' {node.group_by} puts {len(units)} runs in one "
            'unit; a Run node fits one run: add "run" (and "session")'
        )
    entities |= {k: str(v) for k, v in units.iloc[0].items() if pd.notna(v)}
    unit = f"{where} ({_describe(entities)})"
    _check_x(node, out, unit)
    x = out.X.astype(float)
    tr = float(meta["RepetitionTime"].iloc[0])
    design, roles = _with_drift(x, node.model, tr)
    contrasts, dropped = _contrasts(out.contrasts, list(x.columns), unit, missing)
    bold, mask = _bold_and_mask(layout, entities, space, unit, len(design))
    cutoff = node.model.get("options", {}).get("low_pass_filter_cutoff_hz")
    if cutoff is not None:
        cutoff = float(cutoff)
        design = _low_passed(design, cutoff, tr, bold, unit)
    if isinstance(mask_option, tuple):  # (the model's value, the image it names)
        value, path = mask_option
        mask = _on_grid(path, bold, unit, f"'Model.Options.Mask' {json.dumps(value)} names")
    elif mask_option:
        mask = _model_mask(layout, entities, bold, dict(mask_option), unit)
    return RunDesign(entities, design, roles, tr, contrasts, bold, mask, dropped, cutoff)


def _low_passed(design: pd.DataFrame, cutoff: float, tr: float, bold: str, unit: str):
    """The design low-passed as the run's data will be, once the TR and the run's length
    can carry nilearn's filter (the data are filtered by the run's graph node)."""
    check_butterworth(
        len(design), tr, bold, low_pass=cutoff, fields=("", _LOW_PASS), prefix=f"{unit}: ",
        kind="low-pass", length_fix=f"remove {_LOW_PASS} or leave this run out of 'Input'",
    )  # fmt: skip
    return low_pass_design(design, cutoff, tr)


def _describe(entities: Mapping[str, str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(entities.items()))


def _check_x(node, out, unit: str) -> None:
    available = sorted(set(out.X.columns) | set(_variables(out)))
    for name in node.model["x"]:
        if name == 1:
            continue
        if any(c in name for c in "*?["):
            if not fnmatch.filter(out.X.columns, name):
                raise ModelSpecError(
                    f"{unit}: 'Model.X' pattern '{name}' matches no variable; "
                    f"available: {', '.join(available)}"
                )
        elif name not in out.X.columns and not node.model.get("formula"):
            close = difflib.get_close_matches(name, available, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"available: {', '.join(available)}"
            raise ModelSpecError(
                f"{unit}: 'Model.X' variable '{name}' does not exist (after "
                f"the transformations); {hint}"
            )


def _variables(out) -> list[str]:
    history = getattr(out, "trans_hist", None) or []
    if history:
        return list(history[-1].output.variables)
    return []


def _with_drift(x: pd.DataFrame, model: Mapping, tr: float) -> tuple[pd.DataFrame, dict]:
    roles = {c: ("constant" if c == "intercept" else "condition") for c in x.columns}
    cutoff = model.get("options", {}).get("high_pass_filter_cutoff_hz")
    design = x.reset_index(drop=True)
    if cutoff:
        times = np.arange(len(x)) * tr
        drift = make_first_level_design_matrix(times, drift_model="cosine", high_pass=cutoff)
        drift = drift.drop(columns="constant").reset_index(drop=True)
        design = pd.concat([design, drift], axis=1)
        roles |= dict.fromkeys(drift.columns, "drift")
    return design, roles


def contrast_columns(info, columns: Sequence[str], unit: str, missing: str):
    """(name, conditions, absent conditions) of a pybids contrast over ``columns``; a condition
    absent from X is an error unless ``missing`` is "drop" (pybids drops such contrasts)."""
    name = "intercept" if info.name == 1 else str(info.name)
    conditions = ["intercept" if c == 1 else str(c) for c in info.conditions]
    absent = [c for c in conditions if c not in columns]
    if absent and missing != "drop":
        close = difflib.get_close_matches(absent[0], columns, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ModelSpecError(
            f"{unit}: contrast '{name}' names '{absent[0]}'{hint}, which is not a column "
            f"of X ({', '.join(columns)}); fix 'ConditionList' or pass "
            "--missing-conditions drop"
        )
    return name, conditions, absent


def _contrasts(infos, columns: Sequence[str], unit: str, missing: str):
    contrasts, dropped = [], {}
    for info in infos:
        name, conditions, absent = contrast_columns(info, columns, unit, missing)
        rows = np.atleast_2d(np.asarray(info.weights, dtype=float))
        if absent:
            warnings.warn(
                f"{unit}: contrast '{name}' drops {absent} (not columns of X)", stacklevel=2
            )
            dropped[name] = tuple(absent)
        keep = [i for i, c in enumerate(conditions) if c not in absent]
        weights = [{conditions[i]: float(r[i]) for i in keep if r[i] != 0} for r in rows]
        weights = [w for w in weights if w]
        if not weights:
            continue
        test = "F" if info.test == "F" else "t"
        contrasts.append(ContrastSpec(name=name, weights=tuple(weights), stat_type=test))
    return tuple(contrasts), dropped


def _bold_and_mask(layout, entities, space, unit: str, n_rows: int) -> tuple[str, str]:
    query = {k: v for k, v in entities.items() if k in _RUN_ENTITIES}
    if space:
        query["space"] = space
    bolds = layout.get(**query, desc="preproc", suffix="bold", extension=[".nii", ".nii.gz"])
    spaces = sorted({b.entities.get("space") for b in bolds if b.entities.get("space")})
    if len(bolds) != 1:
        what = f"{len(bolds)} preprocessed BOLD files" + (f" (spaces {spaces})" if spaces else "")
        raise DatasetError(
            f"{unit}: found {what} in the fMRIPrep derivatives; exactly one is "
            "needed: add \"space\" to the model's 'Input'"
        )
    bold = bolds[0]
    masks = layout.get(
        **{**query, "space": bold.entities.get("space")},
        desc="brain",
        suffix="mask",
        extension=[".nii", ".nii.gz"],
    )
    if len(masks) != 1:
        raise DatasetError(f"{unit}: found {len(masks)} brain masks for {bold.path}; need one")
    n_volumes = bold.get_image().shape[3]
    if n_volumes != n_rows:
        raise DatasetError(
            f"{unit}: {bold.path} has {n_volumes} volumes but the raw BOLD "
            f"(read by pybids) gives {n_rows} rows of X; they must match"
        )
    return bold.path, masks[0].path


def _on_grid(mask: str, bold: str, unit: str, what: str) -> str:
    """``mask`` if it is on the grid of ``bold`` (shape and affine), else one line."""
    import nibabel as nib

    header, image = nib.load(mask), nib.load(bold)
    if header.shape[:3] != image.shape[:3] or not np.allclose(header.affine, image.affine):
        raise DatasetError(
            f"{unit}: {what} {mask}, which is not on the grid of {bold} "
            f"(shape {header.shape[:3]} vs {image.shape[:3]}); select a mask in its space"
        )
    return mask


def _model_mask(layout, entities, bold: str, wanted: dict, unit: str) -> str:
    """The mask ``Options.Mask`` selects for one run: the run's entities, then its session's,
    its subject's, the dataset's (a mask without task / run entities serves every run)."""
    query = {"suffix": "mask", "extension": [".nii", ".nii.gz"], **wanted}
    space = layout.get_file(bold).entities.get("space")
    if space and "space" not in query:
        query["space"] = space
    field = f"'Model.Options.Mask' {json.dumps(wanted)}"
    for keys in (_RUN_ENTITIES, ("subject", "session"), ("subject",), ()):
        found = layout.get(**{k: v for k, v in entities.items() if k in keys}, **query)
        found = [f for f in found if all(f.entities.get(k) == entities.get(k) for k in keys)]
        if len(found) > 1:
            raise DatasetError(
                f"{unit}: {field} selects {len(found)} masks "
                f"({', '.join(f.filename for f in found[:3])}); add entities to select one"
            )
        if found:
            return _on_grid(found[0].path, bold, unit, f"{field} selects")
    raise DatasetError(f"{unit}: {field} selects no mask image in the dataset; check its entities")
