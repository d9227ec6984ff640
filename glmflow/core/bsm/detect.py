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
