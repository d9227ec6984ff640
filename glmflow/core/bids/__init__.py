"""Find the runs to model in a BIDS dataset preprocessed with fMRIPrep.

:func:`discover_runs` (:mod:`.runs`) indexes the raw dataset and its fMRIPrep derivatives
with pybids (:mod:`.layout`), selects the BOLD runs asked for (:mod:`.select`) and returns one
:class:`RunInputs` per preprocessed BOLD run, with its events, brain mask, confounds
(:mod:`.companions`), repetition time, slice-timing reference and number of volumes, or
raises a :class:`~glmflow.errors.DatasetError` naming the missing or inconsistent file.

Decisions
---------
- ``validate=False``: the pybids validator silently drops files with non-BIDS names and
  requires a valid raw ``dataset_description.json``; glmflow prefers to index everything and
  report problems itself. The raw BOLD images are never read (they may be placeholders).
- Index reuse and atomicity: see :mod:`.layout`.
- Slice timing follows nilearn 0.14.1 ``first_level_from_bids``: ``StartTime / RepetitionTime``
  from the derivative BOLD sidecar, 0.0 with a warning when ``StartTime`` is absent.
  ``SliceTimingCorrected`` is not consulted (nilearn does not either). Unlike nilearn, which
  reads the first sidecar of the whole dataset, the value is read per run.
"""

from glmflow.core.bids.companions import GRID_ENTITIES, RAW_ENTITIES
from glmflow.core.bids.layout import dataset_fingerprint
from glmflow.core.bids.runs import DEFAULT_SPACE, RunInputs, discover_runs

__all__ = [
    "DEFAULT_SPACE",
    "GRID_ENTITIES",
    "RAW_ENTITIES",
    "RunInputs",
    "dataset_fingerprint",
    "discover_runs",
]
