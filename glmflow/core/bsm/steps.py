"""Pre-1.0 BIDS Stats Models (``Steps``) converted to 1.0 ``Nodes``, with one warning."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping
from typing import Any

from glmflow.core.model.validation import show as _show
from glmflow.errors import ModelSpecError

# pre-1.0 "Steps" spellings -> 1.0
_STEP_RENAMES = {"AutoContrasts": "DummyContrasts"}
DEFAULT_GROUP_BY = {
    "run": ["run", "session", "subject"],
    "session": ["session", "subject"],
    "subject": ["subject", "contrast"],
    "dataset": ["contrast"],
}


def convert_steps(data: Mapping, source: str) -> dict[str, Any]:
    """A pre-1.0 ``Steps`` model as BSM 1.0, with one warning naming each renamed key."""
    renamed: list[str] = []
    model = {k: copy.deepcopy(v) for k, v in data.items() if k != "Steps"}
    model.setdefault("BIDSModelVersion", "1.0.0")
    nodes = []
    for i, step in enumerate(data["Steps"]):
        step = dict(copy.deepcopy(step))
        level = str(step.get("Level", "")).lower()
        where = f"Steps[{i}]"
        for old, new in _STEP_RENAMES.items():
            if old in step:
                value = step.pop(old)
                step[new] = {"Contrasts": value} if isinstance(value, list) else value
                renamed.append(f"{where}.{old} -> {new}")
        if isinstance(step.get("DummyContrasts"), Mapping) and "Type" in step["DummyContrasts"]:
            step["DummyContrasts"]["Test"] = step["DummyContrasts"].pop("Type")
            renamed.append(f"{where}.DummyContrasts.Type -> Test")
        for k, contrast in enumerate(step.get("Contrasts", [])):
            for old, new in (("Type", "Test"), ("type", "Test"), ("weights", "Weights")):
                if old in contrast:
                    contrast[new] = contrast.pop(old)
                    renamed.append(f"{where}.Contrasts[{k}].{old} -> {new}")
            if isinstance(contrast.get("Test"), str) and contrast["Test"].lower() == "t":
                contrast["Test"] = "t"
        options = step.get("Model", {}).get("Options", {})
        if "high_pass_filter_cutoff_secs" in options:
            seconds = options.pop("high_pass_filter_cutoff_secs")
            if not isinstance(seconds, int | float) or seconds <= 0:
                raise ModelSpecError(
                    f"{source}: {where}: 'high_pass_filter_cutoff_secs' must be a positive "
                    f"number of seconds; got {_show(seconds)}"
                )
            options["HighPassFilterCutoffHz"] = 1 / seconds
            renamed.append(
                f"{where}.Model.Options.high_pass_filter_cutoff_secs -> "
                "HighPassFilterCutoffHz (1 / s)"
            )
        dummies = step.get("DummyContrasts", {})
        if "Model" not in step and isinstance(dummies, Mapping) and dummies.get("Contrasts"):
            # pre-1.0: a step without a model fits the incoming contrasts it names
            step["Model"] = {"X": list(dummies["Contrasts"]), "Type": "glm"}
            step.setdefault("GroupBy", [])
            renamed.append(f"{where}.Model.X = {_show(step['Model']['X'])} (its contrasts)")
        step.setdefault("Name", level)
        if level in DEFAULT_GROUP_BY:
            step.setdefault("GroupBy", DEFAULT_GROUP_BY[level])
        nodes.append(step)
    model["Nodes"] = nodes
    renames = "; ".join(renamed) if renamed else "no key renamed"
    warnings.warn(
        f"{source}: pre-1.0 'Steps' model converted to BIDS Stats Models 1.0 "
        f"'Nodes' (node names = levels, edges in order): {renames}",
        stacklevel=2,
    )
    return model
