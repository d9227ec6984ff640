"""glmflow: cached, cluster-ready Nipype workflows for fMRI general linear models."""

from glmflow.errors import (
    ConfoundsError,
    ContrastError,
    DatasetError,
    DesignError,
    EventsError,
    GlmflowError,
    GroupModelError,
    ModelSpecError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfoundsError",
    "ContrastError",
    "DatasetError",
    "DesignError",
    "EventsError",
    "GlmflowError",
    "GroupModelError",
    "ModelSpecError",
    "__version__",
]
