"""The nodes after the run node, planned before any compute: one unit per fit, its inputs named.

pybids groups the maps (``GroupBy``, the ``Edges``' ``Filter``) and builds each unit's ``X``
(``1`` as the intercept, participants.tsv variables through the node's transformations) and
contrasts from the *names* of the maps below (entities and contrast), so every Session,
Subject and Dataset unit, its design, its contrasts and the maps it reads are known, and
checked, before the run node starts. :mod:`glmflow.core.bsm.higher` fits a unit;
:mod:`glmflow.workflows.bsm` makes one cached graph node of each.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from glmflow.core.bsm.graph import RunDesign, contrast_columns
from glmflow.core.bsm.outputs import unit_prefix
from glmflow.core.group.design import check_design
from glmflow.errors import ModelSpecError


@dataclass(frozen=True)
class MapSource:
    """A t contrast's maps as a later node sees them: which unit makes them, their names."""

    unit: str
    entities: Mapping[str, str]  # with "contrast"
    mask: str | None = None  # a run's brain mask; a later unit's mask is in its index


@dataclass(frozen=True)
class HigherUnit:
    """One fit of a Session, Subject or Dataset node (see the module docstring).

    ``contrasts``: name -> ``{"test": t | F | FEMA, "weights": row or rows over X}``;
    ``outputs``: name -> the entities naming that contrast's maps (without "contrast").
    """

    node: str
    level: str
    key: str
    entities: Mapping[str, str]
    design: pd.DataFrame
    rows: tuple[MapSource, ...]
    contrasts: Mapping[str, Mapping[str, Any]]
    outputs: Mapping[str, Mapping[str, str]]
    method: str  # "fixed" (meta, FEMA) or "ols" (glm)
    dropped: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def sources(self) -> list[str]:
        """The keys of the units whose maps this unit reads, in first-use order."""
        return list(dict.fromkeys(row.unit for row in self.rows))


def node_key(node: str, entities: Mapping[str, str]) -> str:
    """A graph-node name for one unit of ``node``: letters, digits and underscores."""
    label = unit_prefix({k: v for k, v in entities.items() if k != "contrast"})
    if "contrast" in entities:
        label = f"{label}_contrast_{entities['contrast']}".strip("_")
    return re.sub(r"\W", "_", f"{node}__{label}".strip("_"))


def run_sources(runs: Sequence[RunDesign], run_node: str) -> list[MapSource]:
    """The t contrasts of every run, as the node after the run node sees them."""
    return [
        MapSource(
            node_key(run_node, run.entities), {**run.entities, "contrast": c.name}, run.mask_file
        )
        for run in runs
        for c in run.contrasts
        if c.stat_type == "t"
    ]


def plan_later_nodes(
    graph, runs: Sequence[RunDesign], source: str, *, missing: str = "error"
) -> list[HigherUnit]:
    """Every unit of every node below the root, in the graph's order (inputs first)."""
    units: list[HigherUnit] = []
    keys: set[str] = {node_key(graph.root_node.name, run.entities) for run in runs}
    root = run_sources(runs, graph.root_node.name)
    pending = [(edge, root) for edge in graph.root_node.children]
    while pending:
        edge, inputs = pending.pop(0)
        node = edge.destination
        made = _plan_node(node, inputs, edge.filter or {}, source, missing)
        for unit in made:
            if unit.key in keys:
                raise ModelSpecError(
                    f"{source}: node '{node.name}': two units are both named {unit.key!r} "
                    "in the graph; rename the node"
                )
            keys.add(unit.key)
        units += made
        passed = [
            MapSource(u.key, {**u.outputs[name], "contrast": name})
            for u in made
            for name, spec in u.contrasts.items()
            if not is_f_test(spec)
        ]
        pending += [(child, passed) for child in node.children]
    return units


def _contrast_info(source: MapSource):
    from bids.modeling.statsmodels import ContrastInfo

    entities = dict(source.entities)
    return ContrastInfo(entities["contrast"], [], [], "t", entities)


def _plan_node(node, inputs, filters, source, missing) -> list[HigherUnit]:
    where = f"{source}: node '{node.name}'"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            outputs = node.run(
                [_contrast_info(u) for u in inputs],
                group_by=node.group_by,
                invalid_contrasts="ignore",
                missing_values="fill",
                **filters,
            )
        except (ValueError, KeyError, TypeError) as err:
            raise ModelSpecError(f"{where}: pybids cannot build the model: {err}") from None
    if not outputs:
        raise ModelSpecError(
            f"{where}: no map reaches this node (edge Filter {dict(filters)}); "
            "check the Filter's contrast names"
        )
    units = [_plan_unit(node, out, inputs, where, missing) for out in outputs]
    return [u for u in units if u.contrasts]


def _rows(out, inputs: Sequence[MapSource], unit: str) -> tuple[MapSource, ...]:
    rows = []
    for _, row in out.metadata.iterrows():
        found = [
            u
            for u in inputs
            if all(k not in row or str(row[k]) == str(v) for k, v in u.entities.items())
        ]
        if len(found) != 1:
            raise ModelSpecError(
                f"{unit}: {len(found)} input maps match the row "
                f"{dict(row.dropna())}; 'GroupBy' must give one map per row"
            )
        rows.append(found[0])
    return tuple(rows)


def _plan_unit(node, out, inputs, where, missing) -> HigherUnit:
    entities = {k: str(v) for k, v in out.entities.items()}
    unit = f"{where} ({', '.join(f'{k} {v}' for k, v in sorted(entities.items()))})"
    rows = _rows(out, inputs, unit)
    design = out.X.astype(float).reset_index(drop=True)
    contrasts, outputs, dropped = _contrasts(out.contrasts, list(design.columns), unit, missing)
    fixed = node.model.get("type") == "meta" or any(
        c["test"] == "FEMA" for c in contrasts.values()
    )
    if contrasts and not fixed and len(rows) == 1:
        raise ModelSpecError(
            f"{unit}: 'Model.Type' \"glm\" (OLS) needs at least two maps, but this unit has one "
            f"({', '.join(f'{k} {v}' for k, v in sorted(rows[0].entities.items()))}); set "
            "'Model.Type' to \"meta\" (fixed effects pass one map through with its dof) "
            "or group more maps into a unit ('GroupBy')"
        )
    if contrasts:  # a meta unit of one map passes it through (the group engine's rule)
        check_design(design, source=f"the X of {unit}", fixed=fixed)
    return HigherUnit(
        node=node.name,
        level=node.level,
        key=node_key(node.name, entities),
        entities=entities,
        design=design,
        rows=rows,
        contrasts=contrasts,
        outputs=outputs,
        method="fixed" if fixed else "ols",
        dropped=dropped,
    )


def is_f_test(spec: Mapping[str, Any]) -> bool:
    """Whether a unit's contrast (``{"test", "weights"}``) is an F test: its test says so, or
    it has several rows."""
    return spec.get("test") == "F" or np.ndim(spec["weights"]) == 2


def _contrasts(infos, columns: list[str], unit: str, missing: str):
    contrasts, outputs, dropped = {}, {}, {}
    for info in infos:
        name, conditions, absent = contrast_columns(info, columns, unit, missing)
        if absent:
            warnings.warn(f"{unit}: contrast '{name}' is dropped: {absent} not in X", stacklevel=2)
            dropped[name] = tuple(absent)
            continue
        rows = np.atleast_2d(np.asarray(info.weights, dtype=float))
        matrix = np.zeros((len(rows), len(columns)))
        for j, c in enumerate(conditions):
            matrix[:, columns.index(c)] = rows[:, j]
        test = info.test or "t"
        # an F contrast keeps its rows even when it has one: later nodes and the inference
        # checks tell t from F by the test, and nilearn's F needs a matrix
        weights = matrix if test == "F" or len(rows) > 1 else matrix[0]
        contrasts[name] = {"test": test, "weights": weights.tolist()}
        outputs[name] = {k: str(v) for k, v in info.entities.items() if k != "contrast"}
    return contrasts, outputs, dropped


def check_inference(units: Sequence[HigherUnit], method: str, source: str) -> None:
    """Group inference on Dataset nodes: a permutation test permutes one t contrast."""
    if method != "permutation":
        return
    for unit in units:
        if unit.level.lower() != "dataset":
            continue
        for name, spec in unit.contrasts.items():
            if is_f_test(spec):
                raise ModelSpecError(
                    f"{source}: node '{unit.node}': contrast '{name}' is an F test, and "
                    "--inference permutation permutes t contrasts only; use a height method "
                    "(fdr, fpr, bonferroni, threshold, tdp) or remove the F contrast"
                )
