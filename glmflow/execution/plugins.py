"""The plugins glmflow runs on and the Nipype plugin arguments each one takes.

The rules on plugin names and ``plugin_args`` live here once; :class:`ExecutionOptions`
applies them when it is made, and :func:`nipype_plugin_args` turns valid options into what
Nipype's plugin receives.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glmflow.errors import GlmflowError

if TYPE_CHECKING:
    from glmflow.execution.options import ExecutionOptions

PLUGINS = ("Linear", "MultiProc", "SLURM", "SLURMGraph", "SGE", "SGEGraph")
BATCH_PLUGINS = ("SLURM", "SLURMGraph", "SGE", "SGEGraph")
LOCAL_PLUGINS = ("Linear", "MultiProc")
# the SGE parallel environment that reserves N slots on one host ("-pe smp N")
DEFAULT_PARALLEL_ENV = "smp"

# plugin_args each plugin takes, with their JSON types ("parallel_env" is glmflow's own)
_ARG_TYPES: dict[str, tuple[type, ...]] = {
    "n_procs": (int,),
    "memory_gb": (int, float),
    "raise_insufficient": (bool,),
    "maxtasksperchild": (int,),
    "max_jobs": (int,),
    "sbatch_args": (str,),
    "qsub_args": (str,),
    "template": (str,),
    "retry_timeout": (int, float),
    "max_tries": (int,),
    "dont_resubmit_completed_jobs": (bool,),
    "parallel_env": (str,),
}
_PLUGIN_KEYS = {
    "Linear": (),
    "MultiProc": ("n_procs", "memory_gb", "raise_insufficient", "maxtasksperchild"),
    "SLURM": ("sbatch_args", "template", "retry_timeout", "max_tries", "max_jobs"),
    "SLURMGraph": ("sbatch_args", "template", "dont_resubmit_completed_jobs"),
    "SGE": ("qsub_args", "template", "retry_timeout", "max_tries", "max_jobs", "parallel_env"),
    "SGEGraph": ("qsub_args", "template", "dont_resubmit_completed_jobs", "parallel_env"),
}
# batch-script headers; NIPYPE_NO_ET is exported even when the scheduler does not pass the
# submitting environment on (sbatch --export=NONE, qsub without -V)
_ENV_LINE = "export NIPYPE_NO_ET=1"
_TEMPLATES = {
    "SLURM": f"#!/bin/bash\n{_ENV_LINE}\n",
    "SGE": f"#!/bin/bash\n#$ -V\n#$ -S /bin/bash\n{_ENV_LINE}\n",
}


class ExecutionError(GlmflowError):
    """The workflow cannot be run with the chosen plugin, or one of its nodes failed."""


def scheduler_of(plugin: str) -> str:
    """``"SLURM"`` or ``"SGE"``: the scheduler a batch plugin submits to."""
    return "SLURM" if plugin.startswith("SLURM") else "SGE"


def submit_args_key(plugin: str) -> str:
    """The plugin_args key holding the scheduler's submission arguments."""
    return "sbatch_args" if scheduler_of(plugin) == "SLURM" else "qsub_args"


def parse_plugin_args(text: str | None) -> dict[str, Any]:
    """Read ``--plugin-args``: a JSON object, or the path of a file that holds one.

    Parameters
    ----------
    text : str or None
        ``'{"sbatch_args": "-p debug"}'`` or ``path/to/plugin_args.json``; None or "" gives {}.

    Returns
    -------
    dict
        The parsed arguments (checked against a plugin by :func:`validate_plugin_args`).
    """
    if text is None or not text.strip():
        return {}
    source = "--plugin-args"
    if text.lstrip()[0] not in "{[":
        path = Path(text).expanduser()
        if not path.is_file():
            raise ExecutionError(
                f"--plugin-args {text!r} is neither a JSON object nor an existing file; "
                """pass e.g. '{"sbatch_args": "-p debug"}' or the path of a JSON file"""
            )
        source, text = f"--plugin-args file {path}", path.read_text()
    try:
        args = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExecutionError(
            f"{source} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            """write an object such as {"sbatch_args": "-p debug"}"""
        ) from None
    if not isinstance(args, dict):
        raise ExecutionError(
            f"{source} must be a JSON object such as "
            f"""{{"sbatch_args": "-p debug"}}, got a {type(args).__name__}"""
        )
    return args


def validate_plugin_args(plugin: str, plugin_args: dict[str, Any] | None) -> dict[str, Any]:
    """Check the plugin name and that every argument is one the plugin takes, of its type.

    Returns a copy of ``plugin_args`` ({} for None).
    """
    if plugin not in PLUGINS:
        raise ExecutionError(f"Unknown plugin {plugin!r}; choose one of {', '.join(PLUGINS)}")
    args = dict(plugin_args or {})
    allowed = _PLUGIN_KEYS[plugin]
    for key, value in args.items():
        if key not in allowed:
            takes = ", ".join(sorted(allowed)) or "none"
            raise ExecutionError(
                f"plugin_args key {key!r} is not used by plugin {plugin!r} (it takes: {takes})"
            )
        types = _ARG_TYPES[key]
        # bool is an int in Python, but true is no job count
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            names = " or ".join(t.__name__ for t in types)
            raise ExecutionError(
                f"plugin_args {key!r} for plugin {plugin!r} must be a {names}, got {value!r}"
            )
    return args


def _template(plugin: str, args: dict[str, Any]) -> str:
    template = args.get("template")
    if template is None:
        return _TEMPLATES[scheduler_of(plugin)]
    if os.path.isfile(template):
        template = Path(template).read_text()
    return f"{template.rstrip()}\n{_ENV_LINE}\n"


def nipype_plugin_args(options: ExecutionOptions) -> dict[str, Any]:
    """The ``plugin_args`` Nipype's plugin gets: the user's, with the options' settings.

    ``n_procs`` / ``mem_gb`` win over the same setting in ``plugin_args``; batch plugins get
    a template exporting NIPYPE_NO_ET, and the Graph plugins reuse finished nodes.
    """
    plugin, args = options.plugin, dict(options.plugin_args)
    if plugin == "MultiProc":
        budget = {"n_procs": options.n_procs, "memory_gb": options.mem_gb}
        args.update({key: value for key, value in budget.items() if value is not None})
    elif plugin in BATCH_PLUGINS:
        if options.n_procs is not None:
            args["max_jobs"] = options.n_procs
        args["template"] = _template(plugin, args)
        args.setdefault(submit_args_key(plugin), "")
        if plugin.endswith("Graph"):
            # reuse finished nodes on a rerun (SLURMGraph fails without this key anyway)
            args.setdefault("dont_resubmit_completed_jobs", True)
    return args
