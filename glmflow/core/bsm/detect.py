"""Whether a model file is a BIDS Stats Model: read without pybids or nilearn.

The CLI and the participant runner ask this before anything else, and a rerun that nothing
touched (:mod:`glmflow.execution.unchanged`) must not pay for importing what planning needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from glmflow.core.model.jsonfile import read_json
from glmflow.errors import ModelSpecError

MASK_SUFFIXES = (".nii", ".nii.gz")


def mask_image_path(value: str, source: str | Path) -> Path:
    """An ``Options.Mask`` image path: as given if absolute, else from the model file's folder."""
    path = Path(value)
    return path if path.is_absolute() else Path(source).absolute().parent / path


def mask_images(path: str | Path) -> list[Path]:
    """The mask images a model file's nodes name by path (``Options.Mask`` strings)."""
    try:
        data = read_json(path)
    except (ModelSpecError, OSError):
        return []
    nodes = data.get("Nodes", data.get("Steps", [])) if isinstance(data, Mapping) else []
    found = []
    for node in nodes if isinstance(nodes, list) else []:
        model = node.get("Model", {}) if isinstance(node, Mapping) else {}
        options = model.get("Options", {}) if isinstance(model, Mapping) else {}
        mask = options.get("Mask") if isinstance(options, Mapping) else None
        if isinstance(mask, str):
            found.append(mask_image_path(mask, path))
    return found


def is_bids_stats_model(data: Any) -> bool:
    """True when a parsed model file is a BIDS Stats Model (``Nodes``, ``Steps`` with
    ``Level``s, or ``BIDSModelVersion``)."""
    if not isinstance(data, Mapping):
        return False
    return "Nodes" in data or "BIDSModelVersion" in data or "Steps" in data


def is_bids_stats_model_file(path: str | Path) -> bool:
    """True when ``path`` is a JSON file holding a BIDS Stats Model (an unreadable file is
    left to the model reader's one-line error)."""
    try:
        return is_bids_stats_model(read_json(path))
    except (ModelSpecError, OSError):
        return False
