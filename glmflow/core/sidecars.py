"""JSON sidecars of glmflow's outputs: where they go and how their keys are spelled.

One spelling per key, BIDS CamelCase (the records the nodes write use snake_case, and
:func:`sidecar_key` is the one translation); a sidecar lists the settings of the confound
strategies that were applied, and no others.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["applied_confounds", "sidecar_key", "sidecar_path"]

# Record keys whose BIDS spelling is not their CamelCase (see sidecar_key).
_SIDECAR_NAMES = {"dof": "DegreesOfFreedom", "dropped": "DroppedConditions"}
# nilearn load_confounds' settings of each strategy: a sidecar lists only the applied ones.
_STRATEGY_SETTINGS = {
    "motion": ("motion",),
    "wm_csf": ("wm_csf",),
    "global_signal": ("global_signal",),
    "compcor": ("compcor", "n_compcor"),
    "scrub": ("fd_threshold", "std_dvars_threshold", "scrub"),
}


def sidecar_key(key: str) -> str:
    """One spelling per sidecar key, BIDS CamelCase: ``stat_type`` -> ``StatType``,
    ``run_combination`` -> ``RunCombination``, ``dof`` -> ``DegreesOfFreedom``,
    ``dropped`` -> ``DroppedConditions``; a CamelCase key stays as it is."""
    if key in _SIDECAR_NAMES:
        return _SIDECAR_NAMES[key]
    return "".join(word[:1].upper() + word[1:] for word in key.split("_"))


def sidecar_path(map_path: str | os.PathLike) -> Path:
    """Return the JSON sidecar path of a ``.nii.gz`` / ``.nii`` / ``.dscalar.nii`` /
    ``.func.gii`` map (the whole extension replaced)."""
    path = Path(map_path)
    for ext in (".nii.gz", ".dscalar.nii", ".func.gii"):
        if path.name.endswith(ext):
            return path.with_name(path.name[: -len(ext)] + ".json")
    return path.with_name(path.stem + ".json")


def applied_confounds(confounds: Mapping[str, Any]) -> dict[str, Any]:
    """A confounds spec (``ConfoundsSpec.to_dict()``) without the settings of strategies
    that are not applied (a glm-express model, which names columns, lists none of them)."""
    unused = {
        setting
        for strategy, settings in _STRATEGY_SETTINGS.items()
        if strategy not in confounds.get("strategy", ())
        for setting in settings
    }
    return {k: v for k, v in confounds.items() if k not in unused}
