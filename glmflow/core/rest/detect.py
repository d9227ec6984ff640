"""Whether a model file is a resting-state connectivity model: read without pandas or nilearn.

The CLI asks this of every model file before anything else, and a rerun that nothing touched
(:mod:`glmflow.execution.unchanged`) must not pay for importing what planning needs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from glmflow.core.model.jsonfile import read_json
from glmflow.errors import ModelSpecError


def is_connectivity_model(path: str | os.PathLike) -> bool:
    """Whether a model file is a connectivity model (a top-level "connectivity" object)."""
    try:
        data = read_json(path)
    except (ModelSpecError, OSError):
        return False
    return isinstance(data, Mapping) and "connectivity" in data
