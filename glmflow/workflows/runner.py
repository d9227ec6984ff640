"""Moved to :mod:`glmflow.runners.participant` (execution: :mod:`glmflow.execution`).

This name stays until the group runner has moved to :mod:`glmflow.runners`.
"""

from glmflow.execution import execute, validate_work_dir  # noqa: F401
from glmflow.runners.participant import *  # noqa: F403
from glmflow.runners.participant import __all__  # noqa: F401
