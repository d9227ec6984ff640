"""Where a BIDS Stats Model's maps go: FitLins' layout, so its users' scripts keep working.

``node-<Name>/sub-<label>/[ses-<label>/]sub-<label>_[ses-]task-<t>_[run-<r>_]contrast-<c>_
stat-<effect|variance|t|F|p|z>_statmap.nii.gz``, the run node's ``..._design.tsv`` beside its
maps, and dataset nodes at ``node-<Name>/contrast-<c>_stat-<s>_statmap.nii.gz``. Contrast
labels are glmflow's (:func:`glmflow.core.outputs.contrast_label`, FitLins' camelCase).
Each map has a JSON sidecar with the node, the contrast, its weights and dof.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from glmflow.core.outputs import contrast_label
from glmflow.core.publish import atomic_write_json, write_manifest
from glmflow.core.sidecars import sidecar_path

_ORDER = (
    ("subject", "sub"),
    ("session", "ses"),
    ("task", "task"),
    ("acquisition", "acq"),
    ("run", "run"),
)


def unit_prefix(entities: Mapping[str, str]) -> str:
    """``sub-01_task-x_run-1`` for the entities of one unit (BIDS order), then any other
    grouping variable (e.g. ``sex-0`` from a ``GroupBy`` on a participants column)."""
    known = {key for key, _ in _ORDER} | {"contrast"}
    parts = [f"{short}-{entities[key]}" for key, short in _ORDER if key in entities]
    parts += [
        f"{contrast_label(str(key))}-{contrast_label(str(value))}"
        for key, value in sorted(entities.items())
        if key not in known
    ]
    return "_".join(parts)


def node_dir(output_dir: str | os.PathLike, node: str, entities: Mapping[str, str]) -> Path:
    """``node-<Name>/[sub-<s>/][ses-<s>/]`` under ``output_dir``."""
    folder = Path(output_dir) / f"node-{node}"
    if "subject" in entities:
        folder /= f"sub-{entities['subject']}"
    if "session" in entities:
        folder /= f"ses-{entities['session']}"
    return folder


def map_path(output_dir, node: str, entities: Mapping[str, str], contrast: str, stat: str) -> Path:
    """The path of one statmap (see the module docstring)."""
    parts = [unit_prefix(entities), f"contrast-{contrast_label(contrast)}", f"stat-{stat}"]
    name = "_".join(p for p in parts if p) + "_statmap.nii.gz"
    return node_dir(output_dir, node, entities) / name


def stage_unit_maps(
    output_dir: str | os.PathLike,
    *,
    stage_dir: str | os.PathLike,
    node: str,
    index_file: str | os.PathLike,
    outputs: Mapping[str, Mapping[str, str]],
    metadata: Mapping[str, Any],
    design: tuple[str, Mapping[str, str]] | None = None,
) -> tuple[list[Path], list[Path], Path]:
    """Stage one unit's maps (its ``contrasts.json`` index) under their FitLins names.

    ``outputs``: contrast name -> the entities naming its maps; ``design``: the run's design
    TSV and its entities. Sidecars are written into ``stage_dir``; nothing goes into
    ``output_dir`` until :func:`glmflow.core.publish.publish` copies the manifest's pairs,
    once the whole graph has succeeded. Returns (destinations, staged sidecars, manifest).
    """
    index = json.loads(Path(index_file).read_text())
    stage = Path(stage_dir)
    pairs, written, staged = [], [], []
    for name, record in index.items():
        if record.get("skipped") or name not in outputs:
            continue
        for key in ("effect", "variance", "stat", "p", "z"):
            stat = record["stat_type"] if key == "stat" else key
            dest = map_path(output_dir, node, outputs[name], name, stat)
            sidecar = {
                **metadata,
                "Node": node,
                "Contrast": name,
                "Stat": stat,
                "Weights": record.get("weights"),
                "DegreesOfFreedom": record.get("dof"),
                "DroppedConditions": record.get("dropped", []),
                **({"Test": record["test"]} if "test" in record else {}),
                **({"InputMaps": record["inputs"]} if "inputs" in record else {}),
                **({"Combination": record["combination"]} if "combination" in record else {}),
                **({"Columns": record["columns"]} if "columns" in record else {}),
            }
            staged.append(atomic_write_json(stage / sidecar_path(dest).name, sidecar))
            pairs += [(Path(record[key]), dest), (staged[-1], sidecar_path(dest))]
            written.append(dest)
    if design is not None:
        tsv, entities = design
        dest = node_dir(output_dir, node, entities) / f"{unit_prefix(entities)}_design.tsv"
        pairs.append((Path(tsv), dest))
        written.append(dest)
    return written, staged, write_manifest(stage / "manifest.json", pairs)
