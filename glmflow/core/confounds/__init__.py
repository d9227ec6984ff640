"""Select nuisance regressors from an fMRIPrep confounds file.

Two ways to choose, combinable: nilearn's denoising strategies
(:func:`nilearn.interfaces.fmriprep.load_confounds`, used as is, :mod:`.strategies`) and
explicit column names or ``fnmatch`` wildcards (glm-express's ``confound_regressors``),
both from a :class:`~glmflow.core.model.ConfoundsSpec`. The result is one row per volume with
no n/a left, plus a sample mask (indices of the volumes to keep, as nilearn returns it) when
a strategy censors volumes (non-steady-state volumes, ``scrub``).

Rules (:func:`select_confounds`): a name or wildcard that matches nothing is an error, except
wildcards for fMRIPrep's spike columns (``motion_outlier*``, ``non_steady_state_outlier*``),
which exist only when there are outliers, and ``optional_columns`` (glm-express's implicit
compcor and outlier columns: a warning). Explicit columns stay regressors (no censoring); one
that varies only in volumes a strategy censors is an error (it would be constant). n/a in the
first row (derivative columns) is filled with the second row's value, as nilearn does; n/a
elsewhere, an infinite value or an all-zero column is an error naming the confounds file,
the column, the line and the value. Any strategy also censors non-steady-state volumes, as
nilearn always does. Columns are demeaned over the kept volumes when ``demean``.

Files written between workflow nodes (:func:`write_confounds` / :func:`read_confounds`):

- ``confounds.tsv``: the selected regressors, one column each, one row per volume, no
  index column (an empty file when nothing is selected);
- ``sample_mask.json``: ``{"sample_mask": [kept volume indices] or null, "n_volumes": N}``.
"""

from typing import get_args

from glmflow.core.confounds.files import read_confounds, write_confounds
from glmflow.core.confounds.select import OPTIONAL_PREFIXES, resolve_columns, select_confounds
from glmflow.core.model import CompcorType, ConfoundModel, ConfoundStrategy

#: nilearn load_confounds strategies glmflow supports (ica_aroma and tedana need other
#: inputs than a confounds file).
STRATEGIES: tuple[str, ...] = get_args(ConfoundStrategy)
#: Expansion levels of the motion, wm_csf and global_signal strategies.
LEVELS: tuple[str, ...] = get_args(ConfoundModel)
#: Variants of the compcor strategy.
COMPCOR: tuple[str, ...] = get_args(CompcorType)

__all__ = [
    "COMPCOR",
    "LEVELS",
    "OPTIONAL_PREFIXES",
    "STRATEGIES",
    "read_confounds",
    "resolve_columns",
    "select_confounds",
    "write_confounds",
]
