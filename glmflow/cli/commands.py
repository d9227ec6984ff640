"""What each ``glmflow`` command does: turn options into factory arguments and run."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time

from glmflow.cli.levels import (
    GROUP_ONLY,
    analysis_levels,
    bsm_levels,
    check_level_options,
    inference,
    is_bsm,
)
from glmflow.core.surface import is_surface_space
from glmflow.errors import GlmflowError

LOGGER = logging.getLogger("glmflow")


def run_make_dataset(args: argparse.Namespace) -> int:
    """``glmflow make-dataset OUT``."""
    from glmflow.data import make_synthetic_dataset

    options = {
        key: getattr(args, key)
        for key in ("n_subjects", "n_runs", "n_sessions", "n_volumes")
        if getattr(args, key) is not None
    }
    out = make_synthetic_dataset(
        args.out_dir, preset=args.preset, seed=args.seed, overwrite=args.overwrite, **options
    )
    print(f"glmflow: synthetic dataset written to {out}")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    """``glmflow demo OUT``: make the small dataset, then run both levels on it."""
    from importlib.resources import files

    out_dir = args.out_dir.resolve()
    bids_dir = out_dir / "bids"
    if bids_dir.exists():
        print(f"glmflow: reusing the synthetic dataset in {bids_dir}")
    else:
        from glmflow.data import make_synthetic_dataset  # imports nilearn: only to make it

        make_synthetic_dataset(bids_dir, preset="small")
        print(f"glmflow: synthetic dataset written to {bids_dir}")
    options = argparse.Namespace(
        bids_dir=bids_dir,
        output_dir=out_dir / "derivatives",
        analysis_level=["participant", "group"],
        model=files("glmflow.data") / "models" / "task_information.json",
        derivatives=None,
        participant_label=None,
        task=None,
        session=None,
        run=None,
        space="MNI152NLin2009cAsym",
        desc="preproc",
        res=None,
        smoothing_fwhm=None,
        slice_time_ref=None,
        missing_conditions="error",
        work_dir=out_dir / "work",
        plugin=args.plugin,
        plugin_args=None,
        n_cpus=args.n_cpus,
        mem_gb=None,
        debug=args.debug,
        verbose=False,
        quiet=args.quiet,
        progress_every=args.progress_every,
        reports_only=False,
        **GROUP_ONLY,
    )
    # both levels in one process: the group mean and the age effect of every contrast follow
    return run_bids_app(options)


# the path options, made absolute once, here, whichever folder the nodes run in
PATH_OPTIONS = ("bids_dir", "output_dir", "model", "derivatives", "group_design", "group_mask")


def _execution_options(args: argparse.Namespace):
    """The execution options of the command line, checked (one line on a bad value)."""
    import sys

    from glmflow.execution import ExecutionOptions, parse_plugin_args
    from glmflow.execution.progress import ConsoleProgress

    every = getattr(args, "progress_every", None)
    if every is not None and not every > 0:
        raise GlmflowError(f"--progress-every must be positive seconds. Got {every!r} instead.")
    quiet = getattr(args, "quiet", False)
    return ExecutionOptions(
        work_dir=args.work_dir,
        plugin=args.plugin,
        plugin_args=parse_plugin_args(args.plugin_args),
        n_procs=args.n_cpus,
        mem_gb=args.mem_gb,
        poll_interval=getattr(args, "poll_interval", None),
        verbose=getattr(args, "verbose", False),
        progress=False if quiet else ConsoleProgress(sys.stderr, every),
        cluster_jobs=getattr(args, "cluster_jobs", "node"),
    ).with_default_work_dir()


def _summary(args: argparse.Namespace, result) -> None:
    """The folders the outputs went to, with their counts (not with -q)."""
    from glmflow.execution.progress import summarize_outputs

    if not getattr(args, "quiet", False):
        print(f"glmflow: {summarize_outputs(result.files, result.output_dir)}")
        _say_reports(getattr(result, "reports", ()))


def _say_reports(pages) -> None:
    """Where the report pages are (issue 10): the index and the page count."""
    if pages:
        print(f"glmflow: reports: {pages[-1]} ({len(pages) - 1} page(s) rendered or reused)")


def _rebuild_reports(args: argparse.Namespace, options) -> int:
    """``--reports-only``: every report page from the outputs already written."""
    from glmflow.runners.reports import rebuild_reports

    start = time.perf_counter()
    pages = rebuild_reports(bids_dir=args.bids_dir, output_dir=args.output_dir,
                            derivatives=args.derivatives, execution=options)  # fmt: skip
    _say_reports(pages)
    print(f"glmflow: {len(pages) - 1} report page(s) done in {time.perf_counter() - start:.1f} s")
    return 0


def run_bids_app(args: argparse.Namespace) -> int:
    """``glmflow BIDS_DIR OUTPUT_DIR participant|group|participant group --model FILE ...``.

    Both levels run in one process, the group level once the participant level succeeded
    (one interpreter start and one set of imports for the study, not two).
    """
    from glmflow.runners.entry import absolute_paths

    levels = analysis_levels(args)
    check_level_options(args, levels)
    options = _execution_options(args)
    args = argparse.Namespace(**absolute_paths(vars(args), PATH_OPTIONS))
    if getattr(args, "reports_only", False):
        return _rebuild_reports(args, options)
    from glmflow.core.rest import is_connectivity_model

    if is_connectivity_model(args.model):  # issue 11: resting state has its own runner
        from glmflow.cli.rest import run_rest_app

        return _run_levels(levels, lambda level: run_rest_app(args, options, level))
    levels = bsm_levels(args, levels)
    if "group" in levels:  # its checks of the options, before the participant level runs
        _check_group_options(args)
    return _run_levels(levels, lambda level: (
        _run_participants(args, options) if level == "participant"
        # after the participant level its subject jobs, if asked, are done: per node
        else _run_group(args, _group_options(options, levels))
    ))  # fmt: skip


def _run_levels(levels: tuple[str, ...], run_level) -> int:
    """Each level in turn; the first that fails ends the invocation with its exit code."""
    for level in levels:
        code = run_level(level)
        if code:
            return code
    return 0


def _group_options(options, levels: tuple[str, ...]):
    """``--cluster-jobs subject`` with both levels makes the participant level's subjects
    jobs; the group level, which is not made of subjects, runs one job per node."""
    if "participant" in levels and options.cluster_jobs == "subject":
        return dataclasses.replace(options, cluster_jobs="node")
    return options


def _run_participants(args: argparse.Namespace, options) -> int:
    """The participant level on every --space (a surface space, or several, render the
    subject pages once all have written their maps)."""
    spaces = _spaces(args)
    if len(spaces) > 1 or is_surface_space(spaces[0]):  # issue 12: surfaces, several spaces
        codes = [_run_participant(args, options, space, reports=False) for space in spaces]
        _subject_pages(args, options)
        return max(codes)
    return _run_participant(args, options, spaces[0])


def _subject_pages(args: argparse.Namespace, options) -> None:
    """The subject pages of an invocation of several spaces (or a surface space), once all
    its levels have written their maps: each page shows every space's."""
    from glmflow.runners.reports import rebuild_reports

    pages = rebuild_reports(bids_dir=args.bids_dir, output_dir=args.output_dir,
                            derivatives=args.derivatives, execution=options,
                            kinds=("subject",))  # fmt: skip
    _say_reports(pages)


def _spaces(args: argparse.Namespace) -> list[str]:
    """The --space values (one string from Python callers such as the demo)."""
    return [args.space] if isinstance(args.space, str) else list(args.space)


def _run_participant(args: argparse.Namespace, options, space: str, reports: bool = True) -> int:
    """The participant level on one space (a surface space goes to the surface runner);
    ``reports``: the volume level renders the subject pages itself."""
    from glmflow.runners.participant import run_participant_level

    start = time.perf_counter()
    if is_surface_space(space):
        from glmflow.runners.surface import run_surface_level

        result = run_surface_level(
            **{**_level_options(args, options), "space": space}, den=getattr(args, "den", None),
            derivatives=args.derivatives, sessions=args.session, runs=args.run,
            slice_time_ref=args.slice_time_ref, missing_conditions=args.missing_conditions,
        )  # fmt: skip
        elapsed = time.perf_counter() - start
        _summary(args, result)
        return _done(f"{len(result.runs)} {space} run(s) of {len(result.subjects)} subject(s)",
                     elapsed, result, options)  # fmt: skip
    result = run_participant_level(
        **{**_level_options(args, options), "space": space},
        derivatives=args.derivatives,
        sessions=args.session,
        runs=args.run,
        desc=args.desc,
        res=getattr(args, "res", None),
        slice_time_ref=args.slice_time_ref,
        missing_conditions=args.missing_conditions,
        reports=reports,
        **({"inference": inference(args)} if is_bsm(args) else {}),
    )
    elapsed = time.perf_counter() - start
    _summary(args, result)  # the folders first: the last line stays the count and the cache
    # a recalled level says its stored count (its plan is read back only when used)
    what = getattr(result, "summary", "")
    what = what or f"{len(result.runs)} run(s) of {len(result.subjects)} subject(s)"
    return _done(what, elapsed, result, options)


def _level_options(args: argparse.Namespace, options) -> dict:
    """What both levels take from the command line: data, model, selection, execution."""
    return {
        "bids_dir": args.bids_dir,
        "output_dir": args.output_dir,
        "model": args.model,
        "participant_label": args.participant_label,
        "tasks": args.task,
        "space": _spaces(args)[0],
        "smoothing_fwhm": args.smoothing_fwhm,
        "execution": options,
    }


def _done(what: str, elapsed: float, result, options) -> int:
    """The last line of a level: what was done, its time, its files and the cache."""
    # the level's report pages and index (issue 10) are files it wrote too
    count = len(set(result.files) | set(getattr(result, "reports", ())))
    print(
        f"glmflow: {what} done in {elapsed:.1f} s; {count} file(s) in "
        f"{result.output_dir}; cache in {options.work_dir}"
    )
    return 0


def _run_group(args: argparse.Namespace, options) -> int:
    """``glmflow BIDS_DIR OUTPUT_DIR group --model FILE ...``."""
    from glmflow.runners.group import run_group_level

    start = time.perf_counter()
    if is_surface_space(_group_space(args)):  # issue 12: the surface subject maps
        return _run_surface_group(args, options, start)
    result = run_group_level(
        **_level_options(args, options),
        design=args.group_design,
        mask=args.group_mask,
        inference=inference(args),
    )
    elapsed = time.perf_counter() - start
    return _done(result.summary, elapsed, result, options)


def _group_space(args: argparse.Namespace) -> str:
    """The one space of the group level."""
    spaces = _spaces(args)
    if len(spaces) > 1:
        raise GlmflowError(
            f"--space {' '.join(spaces)}: the group level takes one space; run it once per --space"
        )
    return spaces[0]


def _check_group_options(args: argparse.Namespace) -> None:
    """The group level's own option mistakes (one line each), raised before any level runs."""
    space = _group_space(args)
    inference(args)
    if is_surface_space(space) and args.group_mask is not None:
        raise GlmflowError(
            f"--group-mask {args.group_mask}: a NIfTI mask has no meaning on surface space "
            f"{space}; leave it out (vertices no subject map covers are left out)"
        )


def _run_surface_group(args: argparse.Namespace, options, start: float) -> int:
    """The group level on a surface --space (GIFTI hemispheres or CIFTI)."""
    from glmflow.runners.surface import run_surface_group_level

    result = run_surface_group_level(
        **_level_options(args, options), den=getattr(args, "den", None),
        design=args.group_design, inference=inference(args),
    )  # fmt: skip
    return _done(result.summary, time.perf_counter() - start, result, options)
