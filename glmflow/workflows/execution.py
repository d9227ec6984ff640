"""Moved to :mod:`glmflow.execution`; this name stays until the group runner has moved."""

from glmflow.execution import *  # noqa: F403
from glmflow.execution import __all__  # noqa: F401
