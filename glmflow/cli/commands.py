"""What each ``glmflow`` command does: turn options into factory arguments and run."""

from __future__ import annotations

import argparse
import logging
import time

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
        analysis_level="participant",
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
    code = run_bids_app(options)
    if code:
        return code
    # the group level of the same model: the group mean and the age effect of every contrast
    options.analysis_level = "group"
    return run_bids_app(options)


# options of one level only, with the value that means "not given"
PARTICIPANT_ONLY = {
    "derivatives": None, "session": None, "run": None, "desc": "preproc", "res": None,
    "slice_time_ref": None, "missing_conditions": "error",
}  # fmt: skip
GROUP_ONLY = {
    "group_design": None, "group_mask": None, "inference": None, "alpha": None,
    "permutations": None, "seed": None, "permutation_stat": None,
}  # fmt: skip


# the path options, made absolute once, here, whichever folder the nodes run in
PATH_OPTIONS = ("bids_dir", "output_dir", "model", "derivatives", "group_design", "group_mask")


# group inference options a BIDS Stats Model's Dataset nodes take at the participant level
BSM_INFERENCE = ("inference", "alpha", "permutations", "seed", "permutation_stat")


def _is_bsm(args: argparse.Namespace) -> bool:
    from glmflow.core.bsm import is_bids_stats_model_file

    return args.analysis_level == "participant" and is_bids_stats_model_file(args.model)


def _check_level_options(args: argparse.Namespace) -> None:
    other = GROUP_ONLY if args.analysis_level == "participant" else PARTICIPANT_ONLY
    if _is_bsm(args):
        other = {key: unset for key, unset in other.items() if key not in BSM_INFERENCE}
    for key, unset in other.items():
        if getattr(args, key, unset) != unset:
            level = "group" if args.analysis_level == "participant" else "participant"
            raise GlmflowError(
                f"--{key.replace('_', '-')} is an option of the {level} level, not of "
                f"'{args.analysis_level}'; remove it"
            )


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
    """``glmflow BIDS_DIR OUTPUT_DIR participant|group --model FILE ...``."""
    from glmflow.runners.entry import absolute_paths

    _check_level_options(args)
    options = _execution_options(args)
    args = argparse.Namespace(**absolute_paths(vars(args), PATH_OPTIONS))
    if getattr(args, "reports_only", False):
        return _rebuild_reports(args, options)
    from glmflow.core.rest import is_connectivity_model

    if is_connectivity_model(args.model):  # issue 11: resting state has its own runner
        from glmflow.cli.rest import run_rest_app

        return run_rest_app(args, options)
    if args.analysis_level == "group":
        return _run_group(args, options)
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
        **({"inference": _inference(args)} if _is_bsm(args) else {}),
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

    spaces = _spaces(args)
    if len(spaces) > 1:
        raise GlmflowError(
            f"--space {' '.join(spaces)}: the group level takes one space; run it once per --space"
        )
    start = time.perf_counter()
    if is_surface_space(spaces[0]):  # issue 12: the surface subject maps
        return _run_surface_group(args, options, start)
    result = run_group_level(
        **_level_options(args, options),
        design=args.group_design,
        mask=args.group_mask,
        inference=_inference(args),
    )
    elapsed = time.perf_counter() - start
    return _done(result.summary, elapsed, result, options)


def _run_surface_group(args: argparse.Namespace, options, start: float) -> int:
    """The group level on a surface --space (GIFTI hemispheres or CIFTI)."""
    from glmflow.runners.surface import run_surface_group_level

    if args.group_mask is not None:
        raise GlmflowError(
            f"--group-mask {args.group_mask}: a NIfTI mask has no meaning on surface space "
            f"{_spaces(args)[0]}; leave it out "
            "(vertices no subject map covers are left out)"
        )
    result = run_surface_group_level(
        **_level_options(args, options), den=getattr(args, "den", None),
        design=args.group_design, inference=_inference(args),
    )  # fmt: skip
    return _done(result.summary, time.perf_counter() - start, result, options)


def _inference(args: argparse.Namespace) -> dict:
    """The --inference, --alpha, --permutations and --seed given (group level, BSM)."""
    if args.permutation_stat is not None and args.inference not in (None, "permutation"):
        raise GlmflowError(
            f"--permutation-stat sets a permutation test, but --inference is "
            f"'{args.inference}'; add --inference permutation or leave it out"
        )
    if (args.permutations is not None or args.seed is not None) and (
        args.inference not in (None, "permutation")
    ):
        raise GlmflowError(
            f"--permutations and --seed set a permutation test, but --inference is "
            f"'{args.inference}'; use --inference permutation or leave them out"
        )
    overrides = {"method": args.inference, "alpha": args.alpha, "n_perm": args.permutations,
                 "permutation_stat": args.permutation_stat}  # fmt: skip
    inference = {key: value for key, value in overrides.items() if value is not None}
    if args.seed is not None:
        inference["seed"] = args.seed
    return inference
