"""``glmflow`` command line: a BIDS App plus ``demo`` and ``make-dataset`` helpers.

User mistakes (any :class:`glmflow.GlmflowError`) end as one line on stderr and exit
code 2; the traceback is shown only with ``--debug``.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import get_args

from glmflow import __version__
from glmflow.cli.levels import LEVELS
from glmflow.core.formula import MissingTerms
from glmflow.core.model import InferenceMethod, PermutationStat
from glmflow.errors import GlmflowError
from glmflow.execution.options import MIN_MEM_GB
from glmflow.execution.plugins import PLUGINS

SUBCOMMANDS = ("demo", "make-dataset")
INFERENCE_METHODS = get_args(InferenceMethod)
PERMUTATION_STATS = get_args(PermutationStat)


def _bids_app_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="glmflow",
        description=(
            "Fit fMRI GLMs on a BIDS dataset preprocessed with fMRIPrep: 'participant' fits "
            "every run and subject, 'group' the group models of the subject maps, "
            "'participant group' both in one process. "
            "Other commands: 'glmflow demo OUT', 'glmflow make-dataset OUT'."
        ),
    )
    _add_inputs(parser)
    _add_group_options(parser)
    _add_execution_options(parser)
    parser.add_argument(  # issue 10
        "--reports-only", action="store_true",
        help="rebuild the HTML reports (OUTPUT_DIR/glmflow/index.html, sub-<label>.html, one "
        "page per group model) from the outputs already written; the level is not run",
    )  # fmt: skip
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action="version", version=f"glmflow {__version__}")
    return parser


def _add_inputs(parser: argparse.ArgumentParser) -> None:
    """The BIDS App's positional arguments, the model and the selection of the data."""
    parser.add_argument("bids_dir", type=Path, help="the raw BIDS dataset")
    parser.add_argument("output_dir", type=Path, help="where glmflow/ derivatives are written")
    parser.add_argument(
        "analysis_level", nargs="+", choices=LEVELS,
        help="participant, group, or both ('participant group': one process, the group "
        "level once the participant level has written the subject maps)",
    )  # fmt: skip
    parser.add_argument(
        "--model",
        type=Path,
        required=True,
        help=(
            "model file: a BIDS Stats Model (*_smdl.json), a glm-express "
            "task_information.json or a glmflow model JSON"
        ),
    )
    parser.add_argument(
        "--derivatives",
        type=Path,
        help="fMRIPrep derivatives (default: BIDS_DIR/derivatives/fmriprep)",
    )
    parser.add_argument("--participant-label", nargs="+", metavar="LABEL")
    parser.add_argument("--task", nargs="+", metavar="TASK")
    parser.add_argument("--session", nargs="+", metavar="SES")
    parser.add_argument("--run", nargs="+", metavar="RUN")
    parser.add_argument(
        "--space", nargs="+", default=["MNI152NLin2009cAsym"], metavar="SPACE",
        help="space(s) to model: a volume space, fsaverage5|6 / fsnative (GIFTI hemispheres) "
        "or fsLR (CIFTI, with --den); several run one after the other",
    )  # fmt: skip
    parser.add_argument("--den", help="den- entity of CIFTI runs and maps (fsLR), e.g. 91k")
    parser.add_argument("--desc", default="preproc", help="desc- entity of the preprocessed BOLD")
    parser.add_argument(
        "--res", help="res- entity, when fMRIPrep wrote the space at several resolutions"
    )
    parser.add_argument(
        "--smoothing-fwhm",
        type=float,
        metavar="MM",
        help="overrides the model's smoothing (of the BOLD, or of the maps with 'group')",
    )
    parser.add_argument(
        "--slice-time-ref",
        type=float,
        metavar="FRACTION",
        help="frame time reference as a fraction of the TR (default: from the fMRIPrep sidecar)",
    )
    parser.add_argument(
        "--missing-conditions",
        choices=get_args(MissingTerms),
        default="error",
        help="a contrast naming a column absent from a run's design: error (default) or drop "
        "the missing terms with a warning recorded in the map's sidecar",
    )


def _add_group_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "group level", "options of 'group' (the model's 'group' section holds the rest)"
    )
    group.add_argument(
        "--group-design",
        type=Path,
        metavar="TSV",
        help="design TSV (participant_id column, numeric regressors) used instead of the "
        "model's design; its contrasts come from the model's group.contrasts",
    )
    group.add_argument(
        "--group-mask", type=Path, metavar="NIFTI", help="group mask (default: from the maps)"
    )
    group.add_argument(
        "--inference",
        choices=INFERENCE_METHODS,
        help="thresholding: fpr, fdr, bonferroni (at --alpha), threshold (z), permutation "
        "(FWE), tdp (cluster true-discovery proportion) or none; default: the model's",
    )
    group.add_argument("--alpha", type=float, help="p, q or FWE level of --inference")
    group.add_argument(
        "--permutations", type=int, metavar="N", help="number of permutations (permutation)"
    )
    group.add_argument("--seed", type=int, help="seed of the permutations")
    group.add_argument(
        "--permutation-stat",
        choices=PERMUTATION_STATS,
        help="FWE map of --inference permutation: max_t (voxel), tfce, size or mass "
        "(clusters); default: the model's, else max_t",
    )


def _add_execution_options(parser: argparse.ArgumentParser) -> None:
    """The settings of :class:`glmflow.execution.ExecutionOptions` (checked there)."""
    execution = parser.add_argument_group(
        "execution", "where the cache lives and what runs the graph (never invalidates it)"
    )
    execution.add_argument(
        "-w", "--work-dir", type=Path, help="Nipype working directory, the cache (default: ./work)"
    )
    execution.add_argument("--plugin", choices=PLUGINS, default="MultiProc")
    execution.add_argument(
        "--plugin-args", help="JSON (or a JSON file) of scheduler arguments for the plugin"
    )
    execution.add_argument(
        "--n-cpus",
        type=int,
        help="MultiProc: processes (default: all); SLURM / SGE: jobs queued at once",
    )
    execution.add_argument(
        "--mem-gb", type=float, help=f"memory available to MultiProc (at least {MIN_MEM_GB})"
    )
    execution.add_argument(
        "--poll-interval",
        type=float,
        metavar="SECONDS",
        help="how often running nodes / jobs are checked (default: 0.002 local, 2 on a cluster)",
    )
    execution.add_argument(
        "--cluster-jobs",
        choices=["node", "subject"],
        default="node",
        help="MultiProc / SLURM / SGE: one job per node (default) or per subject (its runs and "
        "their combination in one job; for studies of many subjects, whose per-node jobs "
        "would flood the scheduler or keep MultiProc's loop busy; with 'participant group' "
        "the group level then runs per node)",
    )
    execution.add_argument(
        "-v", "--verbose", action="store_true", help="log every Nipype node as it runs"
    )
    _add_progress_options(execution)


def _add_progress_options(parser) -> None:
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no live progress and no output summary"
    )
    parser.add_argument(
        "--progress-every",
        type=float,
        metavar="SECONDS",
        help="how often the progress is said (default: 1 on a terminal, in place; 30 otherwise)",
    )


def _demo_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="glmflow demo",
        description="Write the small synthetic dataset to OUT and run glmflow on it.",
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--n-cpus", type=int)
    parser.add_argument("--plugin", choices=PLUGINS, default="MultiProc")
    parser.add_argument("--debug", action="store_true")
    _add_progress_options(parser)
    return parser


def _make_dataset_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="glmflow make-dataset",
        description="Write a synthetic BIDS + fMRIPrep dataset with known ground truth.",
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--preset", choices=["small", "realistic"], default="small")
    parser.add_argument("--n-subjects", type=int)
    parser.add_argument("--n-runs", type=int)
    parser.add_argument("--n-sessions", type=int)
    parser.add_argument("--n-volumes", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--debug", action="store_true")
    return parser


def _run(argv: list[str]) -> int:
    if argv and argv[0] == "demo":
        from glmflow.cli.commands import run_demo

        return run_demo(_demo_parser().parse_args(argv[1:]))
    if argv and argv[0] == "make-dataset":
        from glmflow.cli.commands import run_make_dataset

        return run_make_dataset(_make_dataset_parser().parse_args(argv[1:]))
    from glmflow.cli.commands import run_bids_app

    return run_bids_app(_bids_app_parser().parse_args(argv))


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (it may be replaced, e.g. by tests)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def _configure_logging() -> None:
    """glmflow's own messages on stderr; Nipype keeps its own handler (no duplicates)."""
    logger = logging.getLogger("glmflow")
    if not logger.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s glmflow %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings as users read them: one line, no source code (``--debug`` keeps Python's).

    On a terminal the line first erases the progress line it would otherwise continue.
    """
    erase = "\r\x1b[K" if sys.stderr.isatty() else ""
    return f"{erase}glmflow: warning: {message}\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``glmflow`` console script."""
    os.environ.setdefault("NIPYPE_NO_ET", "1")
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if not debug:
        warnings.formatwarning = _one_line_warning
    _configure_logging()
    try:
        return _run(argv)
    except GlmflowError as err:
        if debug:
            raise
        print(f"glmflow: error: {err}", file=sys.stderr)
        return 2


def console_main() -> int:
    """The ``glmflow`` command (console script and ``python -m glmflow.cli.main``): :func:`main`,
    then the interpreter's exit without its last full garbage collection.

    ``gc.freeze()`` moves every object left to the permanent generation, which the collection
    at exit skips: it would traverse all of a level's objects (nilearn, scikit-learn, pybids,
    Nipype and the graph) once more only for the process to free them (0.5-0.6 s of each
    realistic invocation). Files are closed and atexit handlers run as usual; Python callers
    of :func:`main` (the tests) are left alone.
    """
    code = main()
    gc.freeze()
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(console_main())
