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
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from glmflow.core.outputs import contrast_label

_ORDER = (
    ("subject", "sub"),
    ("session", "ses"),
    ("task", "task"),
    ("acquisition", "acq"),
    ("run", "run"),
)
STATS = {"effect": "effect", "variance": "variance", "p": "p", "z": "z"}


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


def write_unit_maps(
    output_dir: str | os.PathLike,
    node: str,
    entities: Mapping[str, str],
    index_file: str | os.PathLike,
    metadata: Mapping[str, Any],
) -> list[Path]:
    """Copy one unit's maps (a ``contrasts.json`` index) to their FitLins names, with sidecars."""
    index = json.loads(Path(index_file).read_text())
    written = []
    for name, record in index.items():
        if record.get("skipped"):
            continue
        for key in ("effect", "variance", "stat", "p", "z"):
            stat = record["stat_type"] if key == "stat" else STATS[key]
            dest = map_path(output_dir, node, entities, name, stat)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(record[key], dest)
            sidecar = {
                **metadata,
                "Node": node,
                "Contrast": name,
                "Stat": stat,
                "Weights": record.get("weights"),
                "DegreesOfFreedom": record.get("dof"),
                "DroppedConditions": record.get("dropped", []),
            }
            dest.with_name(dest.name.replace(".nii.gz", ".json")).write_text(
                json.dumps(sidecar, indent=2, sort_keys=True, default=str) + "\n"
            )
            written.append(dest)
    return written
