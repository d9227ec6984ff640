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
from glmflow.execution.scheduler import scheduler_args

# these import Nipype (~1 s): loaded on first use, so that the CLI's parser starts at once
_LAZY = {"LOCAL_POLL_SECONDS", "execute", "run_workflow"}


def __getattr__(name: str):
    if name in _LAZY:
        from glmflow.execution import run

        return getattr(run, name)
    raise AttributeError(f"module 'glmflow.execution' has no attribute {name!r}")


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
