"""User-facing error types.

Every mistake a user can make (a bad model file, a malformed events file, a missing
confound column, an inconsistent dataset) raises a subclass of :class:`GlmflowError`
whose message is one line naming the file, the field, the value and the fix. The CLI
prints that line and exits non-zero; anything else is a bug in glmflow.
"""


class GlmflowError(Exception):
    """Base class of every error caused by user input."""


class ModelSpecError(GlmflowError, ValueError):
    """The model file (BIDS Stats Model or glm-express task_information.json) is invalid."""


class EventsError(GlmflowError, ValueError):
    """An events.tsv file cannot be used."""


class ConfoundsError(GlmflowError, ValueError):
    """A confounds file or a confound selection cannot be used."""


class DesignError(GlmflowError, ValueError):
    """A design matrix cannot be built or is unusable (e.g. rank deficient)."""


class DatasetError(GlmflowError, ValueError):
    """The BIDS / fMRIPrep dataset is missing a file or is inconsistent."""


class ContrastError(GlmflowError, ValueError):
    """A contrast cannot be computed from the design it is applied to."""


class GroupModelError(GlmflowError, ValueError):
    """A group-level model cannot be built or fitted."""
