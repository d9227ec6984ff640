"""Running glmflow graphs: execution options, local and cluster execution, run folders.

This package imports only :mod:`glmflow.core`, :mod:`glmflow.errors` and Nipype; the level
runners (:mod:`glmflow.runners`) and the CLI hand it an :class:`ExecutionOptions`.
"""

from glmflow.execution.folders import FolderInUseError, hold_folder, validate_work_dir
from glmflow.execution.options import MIN_MEM_GB, ExecutionOptions, absolute_path
from glmflow.execution.plugins import (
    BATCH_PLUGINS,
    LOCAL_PLUGINS,
    PLUGINS,
    ExecutionError,
    nipype_plugin_args,
    parse_plugin_args,
    validate_plugin_args,
)
from glmflow.execution.run import LOCAL_POLL_SECONDS, execute, run_workflow
from glmflow.execution.scheduler import scheduler_args

__all__ = [
    "BATCH_PLUGINS",
    "LOCAL_PLUGINS",
    "LOCAL_POLL_SECONDS",
    "MIN_MEM_GB",
    "PLUGINS",
    "ExecutionError",
    "ExecutionOptions",
    "FolderInUseError",
    "absolute_path",
    "execute",
    "hold_folder",
    "nipype_plugin_args",
    "parse_plugin_args",
    "run_workflow",
    "scheduler_args",
    "validate_plugin_args",
    "validate_work_dir",
]
