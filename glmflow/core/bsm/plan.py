"""The plan of a BIDS Stats Model analysis: every run's design written before any compute."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glmflow.core.bsm.chain import HigherUnit, plan_later_nodes
from glmflow.core.bsm.graph import RunDesign, load_graph, read_bids_stats_model, run_designs
from glmflow.core.bsm.outputs import unit_prefix
from glmflow.core.bsm.variables import check_factor_values
from glmflow.core.design.files import write_design
from glmflow.core.publish import atomic_write_text


@dataclass(frozen=True)
class BsmPlan:
    """A checked model, its run node's name and one design file per run; every unit of the
    later nodes (:class:`~glmflow.core.bsm.chain.HigherUnit`) with its design file."""

    model: dict
    source: str
    run_node: str
    runs: tuple[RunDesign, ...]
    design_files: tuple[str, ...]
    graph: Any = None  # pybids' BIDSStatsModelsGraph
    units: tuple[HigherUnit, ...] = ()
    unit_design_files: tuple[str, ...] = ()


def plan_bids_stats_model(
    model_file: str | os.PathLike,
    layout,
    design_dir: str | os.PathLike,
    *,
    participant_label: list[str] | None = None,
    missing: str = "error",
    space: str | None = None,
) -> BsmPlan:
    """Check the model against the dataset and write every unit's design into ``design_dir``.

    Every node is planned here, before any compute: the later nodes' units, designs and
    contrasts come from the names of the maps below (:mod:`glmflow.core.bsm.chain`).

    A design file is rewritten only when its content changed, so an unchanged rerun keeps the
    cache (Nipype hashes files by time stamp). ``space`` is used when the model's ``Input``
    names none.
    """
    source = str(model_file)
    model = read_bids_stats_model(model_file)
    if space and "space" not in model.get("Input", {}):
        model.setdefault("Input", {})["space"] = space
    if participant_label:
        model.setdefault("Input", {})["subject"] = list(participant_label)
    check_factor_values(model, layout, source)
    graph = load_graph(model, layout, source)
    runs = tuple(run_designs(graph, layout, source, missing=missing))
    files = []
    for run in runs:
        folder = Path(design_dir) / unit_prefix(run.entities)
        files.append(str(_write_if_changed(run, folder)))
    units = tuple(plan_later_nodes(graph, runs, source, missing=missing))
    unit_files = []
    for unit in units:
        path = Path(design_dir) / f"node-{unit.node}" / f"{unit.key}_design.tsv"
        unit_files.append(
            str(_write_text_if_changed(path, unit.design.to_csv(sep="\t", index=False)))
        )
    return BsmPlan(
        model, source, graph.root_node.name, runs, tuple(files), graph, units, tuple(unit_files)
    )


def _write_text_if_changed(path: Path, text: str) -> Path:
    if not (path.is_file() and path.read_text() == text):
        atomic_write_text(path, text)
    return path


def _write_if_changed(run: RunDesign, folder: Path) -> Path:
    staging = folder / "new"
    staging.mkdir(parents=True, exist_ok=True)
    tsv, sidecar, _ = write_design(run.design, dict(run.roles), staging, plot=False)
    for path in (tsv, sidecar):
        final = folder / path.name
        if not final.exists() or final.read_bytes() != path.read_bytes():
            os.replace(path, final)
        else:
            path.unlink()
    staging.rmdir()
    return folder / tsv.name
