"""The dataset's variables that a BIDS Stats Model's transformations read, checked first.

pybids' ``Factor`` makes one column per distinct value; when a column mixes numbers and
text (``2`` in one run, ``house`` in another, or both in one file), it makes columns of
both kinds (``trial_type.2``, ``trial_type.house``) and a model naming one of them fails
later, for some runs only, with a message about a missing variable. Here it is one line
before pybids runs: the file, the node, the field, a value of each kind and the fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from glmflow.errors import ModelSpecError

_TABLES = {"run": "events", "session": "participants", "subject": "participants",
           "dataset": "participants"}  # fmt: skip


def _instructions(node: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    steps = node.get("Transformations") or []
    if isinstance(steps, Mapping):
        steps = steps.get("Instructions") or []
    return [s for s in steps if isinstance(s, Mapping)]


def _factor_inputs(node: Mapping[str, Any]) -> list[str]:
    names = []
    for step in _instructions(node):
        if str(step.get("Name", "")).lower() == "factor":
            value = step.get("Input", [])
            names += [value] if isinstance(value, str) else [str(v) for v in value]
    return names


def _tables(layout, node: Mapping[str, Any], filters: Mapping[str, Any]) -> Iterable[Path]:
    if _TABLES.get(str(node.get("Level", "")).lower()) == "events":
        query = {k: v for k, v in filters.items() if k in ("task", "subject", "session", "run")}
        return [Path(f.path) for f in layout.get(suffix="events", extension=".tsv", **query)]
    path = Path(layout.root) / "participants.tsv"
    return [path] if path.is_file() else []


def check_factor_values(model: Mapping[str, Any], layout, source: str) -> None:
    """Refuse a ``Factor`` whose input column holds both numbers and text (see above)."""
    filters = model.get("Input", {})
    for node in model["Nodes"]:
        names = _factor_inputs(node)
        if not names:
            continue
        seen: dict[str, dict[str, tuple[str, str]]] = {n: {} for n in names}
        for path in _tables(layout, node, filters):
            table = pd.read_csv(path, sep="\t", dtype=str, na_values=["n/a"])
            for name in names:
                if name not in table:
                    continue
                values = table[name].dropna()
                numeric = pd.to_numeric(values, errors="coerce").notna()
                for kind, chosen in (("numbers", values[numeric]), ("text", values[~numeric])):
                    if len(chosen):
                        seen[name].setdefault(kind, (chosen.iloc[0], path.name))
        for name, kinds in seen.items():
            if len(kinds) == 2:
                (number, in_a), (text, in_b) = kinds["numbers"], kinds["text"]
                raise ModelSpecError(
                    f"{source}: node '{node['Name']}': 'Transformations' Factor of "
                    f"'{name}' has mixed-type values: numbers ({number} in {in_a}) and text "
                    f"('{text}' in {in_b}), which make columns of both kinds ('{name}.{number}', "
                    f"'{name}.{text}'); recode '{name}' as text in every file (e.g. "
                    f"'{name}{number}')"
                )
