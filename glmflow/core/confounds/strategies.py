"""nilearn's ``load_confounds`` strategies applied to one fMRIPrep confounds file, as is."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from glmflow.errors import ConfoundsError


def _stage(path: Path, directory: Path) -> Path:
    """Give the confounds file (and sidecar) the fMRIPrep names load_confounds looks for."""
    staged = directory / "sub-glmflow_desc-confounds_timeseries.tsv"
    pairs = [(path, staged)]
    sidecar = path.with_name(re.sub(r"\.tsv$", "", path.name) + ".json")
    if sidecar.is_file():
        pairs.append((sidecar, staged.with_suffix(".json")))
    for source, target in pairs:
        try:
            os.symlink(source.resolve(), target)
        except OSError:
            shutil.copyfile(source, target)
    # nilearn derives the confounds name from the image name and never opens the image.
    return directory / "sub-glmflow_desc-preproc_bold.nii.gz"


def load_strategies(
    path: Path, strategy: tuple[str, ...], n_volumes: int, **options: object
) -> tuple[pd.DataFrame, np.ndarray | None]:
    from nilearn.interfaces.fmriprep import load_confounds

    # nilearn always censors non-steady-state volumes and warns when asked to.
    wanted = tuple(s for s in strategy if s != "non_steady_state")
    what = f"nilearn load_confounds cannot apply strategy {list(strategy)} to {path}"
    return _load(path, n_volumes, what, load_confounds, strategy=wanted, **options)


def load_preset(
    path: Path, preset: str, n_volumes: int, **options: object
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """nilearn's ``load_confounds_strategy`` preset (``"simple"``, ``"scrubbing"``, ...)."""
    from nilearn.interfaces.fmriprep import load_confounds_strategy

    what = f"nilearn load_confounds_strategy cannot apply {preset!r} to {path}"
    return _load(path, n_volumes, what, load_confounds_strategy, denoise_strategy=preset,
                 **options)  # fmt: skip


def _load(path: Path, n_volumes: int, what: str, call, **options: object):
    with tempfile.TemporaryDirectory(prefix="glmflow-confounds-") as tmp:
        image = _stage(path, Path(tmp))
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="strategy is empty")
                warnings.filterwarnings("ignore", message="All volumes were marked")
                confounds, sample_mask = call(str(image), **options)
        except ValueError as err:
            detail = " ".join(str(err).replace(str(Path(tmp)), "").split())
            raise ConfoundsError(f"{what}: {detail}") from None
    if confounds is None:
        confounds = pd.DataFrame(index=pd.RangeIndex(n_volumes))
    if sample_mask is not None:
        sample_mask = np.asarray(sample_mask, dtype=np.int64)
    return confounds.reset_index(drop=True), sample_mask
