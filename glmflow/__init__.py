"""glmflow: cached, cluster-ready Nipype workflows for fMRI general linear models.

The light names (errors, ``read_events``, ``load_model``, ``ModelSpec``) import at once;
the ones that need Nipype or the dataset generator are loaded on first use.
"""

import os

# Nipype asks the internet for its latest version on import unless this is set; compute
# nodes often have no internet, so every glmflow process (and its batch jobs) skips it.
os.environ.setdefault("NIPYPE_NO_ET", "1")

from glmflow.errors import (  # noqa: E402
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

_LAZY = {
    "read_events": "glmflow.core.events",
    "ModelSpec": "glmflow.core.model",
    "load_model": "glmflow.core.model",
    "discover_runs": "glmflow.core.bids",
    "make_synthetic_dataset": "glmflow.data",
    "load_truth": "glmflow.data",
    "init_glmflow_wf": "glmflow.workflows.base",
    "init_subject_level_wf": "glmflow.workflows.subject_level",
    "init_run_level_wf": "glmflow.workflows.run_level",
    "plan_participant_level": "glmflow.runners.participant",
    "run_participant_level": "glmflow.runners.participant",
    "init_group_level_wf": "glmflow.workflows.group_level",
    "plan_group_level": "glmflow.runners.group",
    "run_group_level": "glmflow.runners.group",
    "run_workflow": "glmflow.execution",
    "execute": "glmflow.execution",
    "ExecutionOptions": "glmflow.execution",
}

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
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'glmflow' has no attribute {name!r}")
