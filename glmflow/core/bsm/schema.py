"""The structure of a BIDS Stats Model file, checked before pybids or any data is read.

:func:`check_model` takes the parsed JSON and returns it ready for pybids (pre-1.0 ``Steps``
converted, ``Model.HRF`` turned into pybids' own ``Convolve``), or raises one
:class:`ModelSpecError` line naming the file, the node, the field, the value and the fix.
What depends on the data (variables, entities, contrast columns) is checked in
:mod:`glmflow.core.bsm.graph`.
"""

from __future__ import annotations

import copy
import difflib
import warnings
from collections.abc import Mapping
from typing import Any

from glmflow.core.bsm.detect import MASK_SUFFIXES
from glmflow.core.bsm.steps import DEFAULT_GROUP_BY, convert_steps
from glmflow.core.model.validation import show as _show
from glmflow.errors import ModelSpecError

LEVELS = ("Run", "Session", "Subject", "Dataset")
TESTS = ("t", "F", "FEMA")
_KEYS = {
    "the model": ("Name", "BIDSModelVersion", "Description", "Input", "Nodes", "Edges"),
    "Node": (
        "Level",
        "Name",
        "GroupBy",
        "Transformations",
        "Model",
        "Contrasts",
        "DummyContrasts",
        "Description",
    ),
    "Model": ("X", "Type", "Formula", "HRF", "Options", "Software", "Description"),
    "Options": (
        "HighPassFilterCutoffHz",
        "LowPassFilterCutoffHz",
        "Mask",
        "AggregateAutocorrelations",
        "Description",
    ),
    "HRF": ("Variables", "Model"),
    "Contrasts": ("Name", "ConditionList", "Weights", "Test", "Description"),
    "DummyContrasts": ("Contrasts", "Conditions", "Test"),
    "Edges": ("Source", "Destination", "Filter"),
}
_INPUT = ("task", "subject", "session", "run", "acquisition", "space", "desc", "res")
_REFUSED = {  # fields glmflow reads but cannot honour yet: refused, never ignored
    "AggregateAutocorrelations": "aggregated autocorrelations are not supported; remove it",
}
_HRF_MODELS = (
    "spm",
    "glover",
    "spm + derivative",
    "glover + derivative",
    "spm + derivative + dispersion",
    "glover + derivative + dispersion",
    "fir",
)


class _Checker:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> ModelSpecError:
        return ModelSpecError(f"{self.source}: {where}: {message}")

    def keys(self, data: Any, kind: str, where: str) -> Mapping:
        if not isinstance(data, Mapping):
            raise self.fail(where, f"must be a JSON object; got {_show(data)}")
        allowed = _KEYS[kind]
        for key in data:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
                hint = f"did you mean '{close[0]}'?" if close else f"allowed: {', '.join(allowed)}"
                raise self.fail(where, f"unknown key '{key}'; {hint}")
        return data


def check_model(data: Any, source: str) -> dict[str, Any]:
    """Validate a BSM document and return a copy pybids can load (see the module docstring)."""
    check = _Checker(source)
    if isinstance(data, Mapping) and "Steps" in data:
        data = convert_steps(data, source)
    model = copy.deepcopy(dict(check.keys(data, "the model", "the model")))
    for key in ("Name", "Nodes"):
        if key not in model:
            raise check.fail("the model", f"'{key}' is missing; add it")
    _check_input(check, model.get("Input", {}))
    nodes = model["Nodes"]
    if not isinstance(nodes, list) or not nodes:
        raise check.fail("'Nodes'", f"must be a non-empty list of nodes; got {_show(nodes)}")
    names = [n.get("Name") for n in nodes if isinstance(n, Mapping)]
    _check_edges(check, model.get("Edges"), names)
    seen: list[str] = []
    for i, node in enumerate(nodes):
        name = _check_node(check, node, i)
        if name in seen:
            raise check.fail(f"node '{name}'", "the name is used twice; node names must be unique")
        seen.append(name)
    _check_f_inputs(check, model)
    return model


def _check_f_inputs(check: _Checker, model: Mapping) -> None:
    """What a node passes on: some contrast, and no F contrast (it has no single effect map)."""
    nodes = model["Nodes"]
    edges = model.get("Edges") or [
        {"Source": a["Name"], "Destination": b["Name"]}
        for a, b in zip(nodes, nodes[1:], strict=False)
    ]
    for node in nodes:
        f_names = [c["Name"] for c in node.get("Contrasts", []) if c.get("Test") == "F"]
        out = [e for e in edges if e["Source"] == node["Name"]]
        dummy = node.get("DummyContrasts")
        if out and not node.get("Contrasts") and (dummy is None or dummy is False):
            raise check.fail(
                f"node '{node['Name']}'",
                f"it has no 'Contrasts' and no 'DummyContrasts', so no map reaches node "
                f"'{out[0]['Destination']}'; add contrasts (e.g. \"DummyContrasts\": "
                '{"Test": "t"})',
            )
        for edge in out:
            wanted = (edge.get("Filter") or {}).get("contrast")
            passed = [n for n in f_names if wanted is None or n in _as_list(wanted)]
            if passed:
                raise check.fail(
                    f"node '{node['Name']}'",
                    f"F contrast {_show(passed[0])} "
                    f"feeds node '{edge['Destination']}', but only t contrasts "
                    "(an effect and its variance) can; list the t contrasts in "
                    'the edge\'s "Filter": {"contrast": [...]}',
                )


def _check_input(check: _Checker, value: Any) -> None:
    if not isinstance(value, Mapping):
        raise check.fail("'Input'", f"must be a JSON object of entities; got {_show(value)}")
    for key in value:
        if key not in _INPUT:
            close = difflib.get_close_matches(str(key), _INPUT, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"allowed: {', '.join(_INPUT)}"
            raise check.fail("'Input'", f"unknown entity '{key}'; {hint}")


def _check_node(check: _Checker, node: Any, i: int) -> str:
    check.keys(node, "Node", f"Nodes[{i}]")
    name = node.get("Name")
    if not isinstance(name, str) or not name:
        raise check.fail(f"Nodes[{i}]", f"'Name' must be a non-empty string; got {_show(name)}")
    where = f"node '{name}'"
    level = node.get("Level")
    if not isinstance(level, str) or level.capitalize() not in LEVELS:
        raise check.fail(where, f"'Level' must be one of {', '.join(LEVELS)}; got {_show(level)}")
    if "GroupBy" not in node:
        raise check.fail(
            where,
            "'GroupBy' is missing; add the entities that define one "
            f"analysis unit, e.g. {_show(DEFAULT_GROUP_BY[level.lower()])}",
        )
    group_by = node["GroupBy"]
    if not isinstance(group_by, list) or not all(isinstance(g, str) for g in group_by):
        raise check.fail(where, f"'GroupBy' must be a list of entity names; got {_show(group_by)}")
    model = node.get("Model")
    if model is None:
        node["Model"] = {"X": [1], "Type": "glm"}  # intercept-only (FitLins' dataset default)
    else:
        _check_model_section(check, model, where, level)
    for k, contrast in enumerate(node.get("Contrasts", [])):
        _check_contrast(check, contrast, f"{where} Contrasts[{k}]", level)
    dummy = node.get("DummyContrasts")
    if dummy is not None and dummy is not False:
        if dummy is True:
            node["DummyContrasts"] = dummy = {}
        check.keys(dummy, "DummyContrasts", f"{where} DummyContrasts")
        if "Conditions" in dummy:  # pre-1.0 spelling, still in FitLins' examples
            dummy["Contrasts"] = dummy.pop("Conditions")
        _check_test(check, dummy.get("Test", "t"), f"{where} DummyContrasts", level)
    _apply_hrf(node)
    return name


def _check_model_section(check: _Checker, model: Any, where: str, level: str) -> None:
    check.keys(model, "Model", f"{where} Model")
    x = model.get("X")
    if not isinstance(x, list) or not x or not all(v == 1 or isinstance(v, str) for v in x):
        raise check.fail(
            where,
            f"'Model.X' must be a non-empty list of variable names and 1 "
            f"(the intercept); got {_show(x)}",
        )
    kind = model.setdefault("Type", "glm")
    if not isinstance(kind, str) or kind.lower() not in ("glm", "meta"):
        raise check.fail(where, f'\'Model.Type\' must be "glm" or "meta"; got {_show(kind)}')
    model["Type"] = kind.lower()
    if model["Type"] == "meta" and level.lower() == "run":
        raise check.fail(
            where,
            "'Model.Type' \"meta\" needs inputs from a lower node; a Run "
            'node fits the BOLD data: use "glm"',
        )
    options = model.get("Options", {})
    check.keys(options, "Options", f"{where} Model.Options")
    for key, fix in _REFUSED.items():
        if key in options:
            raise check.fail(where, f"'Model.Options.{key}' {_show(options[key])}: {fix}")
    if "Mask" in options:
        _check_mask(check, options["Mask"], where, level)
    for key, example in (("HighPassFilterCutoffHz", "0.0078125 for 128 s"),
                         ("LowPassFilterCutoffHz", "0.1 for 10 s")):  # fmt: skip
        cutoff = options.get(key)
        if cutoff is not None and (
            not isinstance(cutoff, int | float) or isinstance(cutoff, bool) or cutoff <= 0
        ):
            raise check.fail(
                where,
                f"'Model.Options.{key}' must be a positive "
                f"frequency in Hz (e.g. {example}); got {_show(cutoff)}",
            )
    if "LowPassFilterCutoffHz" in options:
        _check_low_pass(check, options, where, level)
    if "HRF" in model:
        hrf = check.keys(model["HRF"], "HRF", f"{where} Model.HRF")
        if hrf.get("Model", "spm") not in _HRF_MODELS:
            raise check.fail(
                where,
                f"'Model.HRF.Model' must be one of {', '.join(_HRF_MODELS)}; "
                f"got {_show(hrf.get('Model'))}",
            )


def _check_low_pass(check: _Checker, options: Mapping, where: str, level: str) -> None:
    """``Options.LowPassFilterCutoffHz``: a Run node's, above its high-pass cutoff (what
    depends on the data, the TR's Nyquist frequency and the run's length, is checked with the
    data, :mod:`glmflow.core.bsm.graph`)."""
    low, high = options["LowPassFilterCutoffHz"], options.get("HighPassFilterCutoffHz")
    field = f"'Model.Options.LowPassFilterCutoffHz' {_show(low)}"
    if level.lower() != "run":
        raise check.fail(
            where,
            f"{field}: a later node fits effect maps, not time series; move it to the Run node",
        )
    if high is not None and low <= high:
        raise check.fail(
            where,
            f"{field}: the low-pass cutoff must be above 'Model.Options.HighPassFilterCutoffHz' "
            f"{_show(high)} (the band kept lies between them); raise it or lower the high-pass",
        )


def _check_mask(check: _Checker, mask: Any, where: str, level: str) -> None:
    """``Options.Mask``: BIDS entities selecting one mask image per run, or the path of one
    NIfTI mask for every run (Run nodes only; the file and its grid are checked with the
    data, :mod:`glmflow.core.bsm.graph`)."""
    field = f"'Model.Options.Mask' {_show(mask)}"
    if level.lower() != "run":
        raise check.fail(
            where,
            f"{field}: glmflow masks at the Run node (a later node fits within the "
            "intersection of its inputs' masks); move it to the Run node",
        )
    if isinstance(mask, str) and mask.endswith(MASK_SUFFIXES):
        return
    if (
        not isinstance(mask, Mapping)
        or not mask
        or not all(isinstance(k, str) and isinstance(v, str | list) for k, v in mask.items())
    ):
        raise check.fail(
            where,
            f"{field} must be an object of BIDS entities selecting one mask image per run, "
            'e.g. {"desc": "brain", "suffix": "mask"}, or the path of a NIfTI mask (.nii, '
            ".nii.gz; absolute or from the model file's folder)",
        )


def _check_contrast(check: _Checker, contrast: Any, where: str, level: str) -> None:
    if isinstance(contrast, dict) and "Condition_list" in contrast:  # pybids' test models
        contrast["ConditionList"] = contrast.pop("Condition_list")
        warnings.warn(
            f"{check.source}: {where}: 'Condition_list' read as 'ConditionList' "
            "(its BIDS Stats Models spelling)",
            stacklevel=2,
        )
    check.keys(contrast, "Contrasts", where)
    for key in ("Name", "ConditionList", "Weights"):
        if key not in contrast:
            raise check.fail(where, f"'{key}' is missing; add it")
    conditions, weights = contrast["ConditionList"], contrast["Weights"]
    if not isinstance(conditions, list) or not conditions:
        raise check.fail(
            where, f"'ConditionList' must be a non-empty list; got {_show(conditions)}"
        )
    rows = (
        weights
        if isinstance(weights, list) and weights and isinstance(weights[0], list)
        else [weights]
    )
    for row in rows:
        if not isinstance(row, list) or len(row) != len(conditions):
            raise check.fail(
                where,
                f"contrast {_show(contrast['Name'])}: 'Weights' "
                f"{_show(weights)} must have one weight per condition of "
                f"'ConditionList' ({len(conditions)}: {_show(conditions)})",
            )
    test = contrast.get("Test", "t")
    _check_test(check, test, f"{where} ({_show(contrast['Name'])})", level)
    if test == "t" and len(rows) > 1:
        raise check.fail(
            where,
            f"contrast {_show(contrast['Name'])}: a t test has one row of "
            f'\'Weights\'; got {len(rows)}: use "Test": "F"',
        )


def _check_test(check: _Checker, test: Any, where: str, level: str) -> None:
    if test not in TESTS:
        raise check.fail(where, f"'Test' must be one of {', '.join(TESTS)}; got {_show(test)}")
    if test == "FEMA" and level.lower() == "run":
        raise check.fail(
            where,
            "'Test' \"FEMA\" (fixed-effects meta-analysis) combines the maps of a lower node; "
            'a Run node fits the BOLD data: use "t"',
        )


def _check_edges(check: _Checker, edges: Any, names: list[str]) -> None:
    if edges is None:
        return
    if not isinstance(edges, list):
        raise check.fail("'Edges'", f"must be a list of edges; got {_show(edges)}")
    for i, edge in enumerate(edges):
        check.keys(edge, "Edges", f"Edges[{i}]")
        for key in ("Source", "Destination"):
            if key not in edge:
                raise check.fail(f"Edges[{i}]", f"'{key}' is missing; add the node name")
            if edge[key] not in names:
                close = difflib.get_close_matches(str(edge[key]), names, n=1)
                hint = f"did you mean '{close[0]}'?" if close else f"nodes: {', '.join(names)}"
                raise check.fail(
                    f"Edges[{i}]", f"'{key}' names unknown node {_show(edge[key])}; {hint}"
                )


def _apply_hrf(node: dict) -> None:
    """``Model.HRF`` (which pybids does not read) as pybids' ``Convolve`` of the variables no
    ``Convolve`` already touched."""
    hrf = node.get("Model", {}).pop("HRF", None)
    if not hrf:
        return
    transformations = node.setdefault("Transformations", [])
    steps = (
        transformations.get("Instructions", [])
        if isinstance(transformations, dict)
        else transformations
    )
    done = {
        v
        for s in steps
        if str(s.get("Name", "")).lower() == "convolve"
        for v in _as_list(s.get("Input", []))
    }
    todo = [v for v in _as_list(hrf.get("Variables", [])) if v not in done]
    if todo:
        parts = str(hrf.get("Model", "spm")).split(" + ")
        steps.append(
            {
                "Name": "Convolve",
                "Input": todo,
                "Model": parts[0],
                "Derivative": "derivative" in parts,
                "Dispersion": "dispersion" in parts,
            }
        )


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]
