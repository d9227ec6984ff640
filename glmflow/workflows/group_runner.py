"""Old home of the group runner, kept so that existing imports keep working.

The plan is data made in :mod:`glmflow.core.group.plan`, the graph is built by
:func:`glmflow.workflows.group_level.init_group_wf` and the glue lives in
:mod:`glmflow.runners.group`.
"""

from glmflow.core.group.plan import GroupAnalysis, GroupPlan, output_contrast_name
from glmflow.core.group.subject_maps import SubjectMap, find_subject_maps
from glmflow.runners.group import GroupResult, plan_group_level, run_group_level
from glmflow.workflows.group_level import init_group_wf

__all__ = [
    "GroupAnalysis",
    "GroupPlan",
    "GroupResult",
    "SubjectMap",
    "find_subject_maps",
    "init_group_wf",
    "output_contrast_name",
    "plan_group_level",
    "run_group_level",
]
