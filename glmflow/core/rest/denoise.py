"""nilearn's denoising presets for a connectivity model, and one run's confounds either way.

``"confounds": {"denoise_strategy": "scrubbing", "fd_threshold": 0.5}`` in a connectivity
model uses ``nilearn.interfaces.fmriprep.load_confounds_strategy`` with that preset and only
the options given (nilearn's own defaults otherwise); any other ``confounds`` section is a
:class:`~glmflow.core.model.ConfoundsSpec` (:func:`glmflow.core.confounds.select_confounds`).
``"simple"`` and ``"scrubbing"`` need fMRIPrep's motion, ``csf`` / ``white_matter`` and
``cosine*`` columns (scrubbing also ``framewise_displacement`` and ``std_dvars``);
``"compcor"`` the CompCor columns and the confounds JSON sidecar (nilearn's error names what
is missing); ``"ica_aroma"`` is refused: it needs fMRIPrep's ICA-AROMA-denoised BOLD, which
glmflow does not read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from glmflow.core.confounds.files import check_volumes, read_raw
from glmflow.core.confounds.select import select_confounds
from glmflow.core.confounds.strategies import load_preset
from glmflow.core.model import validation as check
from glmflow.core.model.stages import ConfoundsSpec
from glmflow.errors import ConfoundsError

_SHARED = ("motion", "wm_csf", "global_signal", "demean")
#: The presets glmflow applies and the options each takes (nilearn's).
PRESET_OPTIONS = {
    "simple": _SHARED,
    "scrubbing": (*_SHARED, "scrub", "fd_threshold", "std_dvars_threshold"),
    "compcor": ("motion", "n_compcor", "compcor", "demean"),
}
_REFUSED = {
    "ica_aroma": "needs fMRIPrep's ICA-AROMA-denoised BOLD (desc-smoothAROMAnonaggr), which "
    "glmflow does not read",
}


@dataclass(frozen=True)
class DenoiseSpec:
    """One ``load_confounds_strategy`` preset and the options given with it."""

    denoise_strategy: str
    options: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DenoiseSpec:
        name = data["denoise_strategy"]
        if name in _REFUSED:
            raise check.FieldError(
                "denoise_strategy",
                f'"{name}" {_REFUSED[name]}; use one of "simple", "scrubbing", "compcor"',
            )
        if name not in PRESET_OPTIONS:
            raise check.bad("denoise_strategy", 'one of "simple", "scrubbing", "compcor"', name)
        options = {k: v for k, v in data.items() if k != "denoise_strategy"}
        for key in options:
            if key not in PRESET_OPTIONS[name]:
                raise check.FieldError(
                    key, f'is not an option of the "{name}" denoise_strategy (its options: '
                    f"{', '.join(PRESET_OPTIONS[name])}); remove it",
                )  # fmt: skip
        ConfoundsSpec(**options)  # the values, checked as glmflow's own confounds options
        return cls(name, tuple(sorted(options.items())))

    def to_dict(self) -> dict[str, Any]:
        return {"denoise_strategy": self.denoise_strategy, **dict(self.options)}


def run_confounds(
    confounds_file: str | os.PathLike,
    confounds: ConfoundsSpec,
    denoise: DenoiseSpec | None,
    *,
    bold_file: str | os.PathLike | None = None,
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """One run's regressors and sample mask: the preset's when given, else ``confounds``'.

    The one home of "every volume censored" for resting state (the pre-flight and the run
    node both call this): a ConfoundsError naming the file and the strategy.
    """
    path = Path(confounds_file)
    if denoise is None:
        table, sample_mask = select_confounds(path, confounds, bold_file=bold_file)
        what = f"strategy {list(confounds.strategy)}"
    else:
        n_volumes = len(read_raw(path))
        if bold_file is not None:
            check_volumes(path, n_volumes, Path(bold_file))
        table, sample_mask = load_preset(
            path, denoise.denoise_strategy, n_volumes, **dict(denoise.options)
        )
        what = f'"{denoise.denoise_strategy}" denoise_strategy'
    if sample_mask is not None and sample_mask.size == 0:
        raise ConfoundsError(
            f"The confounds' {what} censors every volume of {path} (scrubbing and "
            "non-steady-state volumes); nothing is left to correlate: raise fd_threshold / "
            "std_dvars_threshold, use another strategy or leave the run out"
        )
    return table.astype("float64"), sample_mask
