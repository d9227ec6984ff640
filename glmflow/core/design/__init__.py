"""First-level design matrices: nilearn's builder plus the checks a demanding user wants.

The numbers come from nilearn's public ``make_first_level_design_matrix``; this package adds
column roles, one-line errors for everything that makes a design unusable (empty or
duplicated regressors, rank deficiency, more columns than volumes) and a file format.

- :mod:`~glmflow.core.design.build`: ``build_design_matrix(events, confounds, design)``,
  with ``design`` a :class:`~glmflow.core.model.DesignSpec` (valid since construction) and
  the checks that depend on the run (length, TR, sampling time).
- :mod:`~glmflow.core.design.checks`: the checks of the events and confounds tables, the
  names, the timing and the rank, and ``check_censored_rank`` for scrubbed runs.
- :mod:`~glmflow.core.design.files`: ``design.tsv`` (exactly the design's columns, loadable
  by pandas and nilearn as it is), its sidecar ``design.json`` (frame times and roles) and
  ``design.svg``.
"""

from typing import get_args

from glmflow.core.design.build import build_design_matrix
from glmflow.core.design.checks import EVENT_ROLES, INDEX_NAME, ROLES, check_censored_rank
from glmflow.core.design.files import build_design_files, plot_design, read_design, write_design
from glmflow.core.model import DriftModel, HrfModel

HRF_MODELS: tuple[str, ...] = get_args(HrfModel)
DRIFT_MODELS: tuple[str, ...] = get_args(DriftModel)

__all__ = [
    "DRIFT_MODELS",
    "EVENT_ROLES",
    "HRF_MODELS",
    "INDEX_NAME",
    "ROLES",
    "build_design_files",
    "build_design_matrix",
    "check_censored_rank",
    "plot_design",
    "read_design",
    "write_design",
]
