"""``glmflow BIDS OUT participant|group|participant group --model rest.json``: its levels.

A model file with a top-level ``"connectivity"`` object (``glmflow.core.rest.spec``) runs
``glmflow.runners.rest``; the options that do not apply to it are refused, one line each.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from glmflow.errors import GlmflowError

# options that mean nothing to a connectivity model, with their "not given" value
_NOT_FOR_REST = {
    "smoothing_fwhm": None, "slice_time_ref": None, "missing_conditions": "error",
    "desc": "preproc", "res": None, "group_design": None, "group_mask": None,
}  # fmt: skip


def run_rest_app(args: argparse.Namespace, options, level: str) -> int:
    """Run ``level`` (participant or group) of the connectivity model ``args.model``."""
    from glmflow.core.rest.spec import connectivity_spec
    from glmflow.runners import rest

    for key, unset in _NOT_FOR_REST.items():
        if getattr(args, key, unset) != unset:
            raise GlmflowError(
                f"--{key.replace('_', '-')} does not apply to the connectivity model "
                f"{args.model}; remove it"
            )
    spec = connectivity_spec(args.model)
    space = _volume_space(args)
    if args.task and list(args.task) != [spec.task]:
        raise GlmflowError(
            f"--task {' '.join(args.task)}: the connectivity model {args.model} is for task "
            f"'{spec.task}'; remove --task or use a model of that task"
        )
    common = {"participant_label": args.participant_label, "execution": options}
    start = time.perf_counter()
    if level == "group":
        result = rest.run_connectivity_group(
            args.bids_dir, args.output_dir, _inference(spec, args), space=space, **common
        )
        what = f"connectivity group model of {spec.task}"
    else:
        result = rest.run_connectivity(
            args.bids_dir, args.output_dir, spec, derivatives=args.derivatives, space=space,
            sessions=args.session, runs=args.run, **common,
        )  # fmt: skip
        what = f"connectivity of {len(result.runs)} run(s) of {len(result.subjects)} subject(s)"
    print(
        f"glmflow: {what} done in {time.perf_counter() - start:.1f} s; {len(result.files)} "
        f"file(s) in {result.output_dir}; cache in {options.work_dir}"
    )
    if result.reports:  # as the GLM levels say theirs
        print(f"glmflow: reports: {result.reports[-1]} ({len(result.reports) - 1} page(s) "
              "rendered or reused)")  # fmt: skip
    return 0


def _volume_space(args: argparse.Namespace) -> str:
    """The one volume space of a connectivity model (``--space`` takes several for GLMs)."""
    from glmflow.core.surface import is_surface_space

    spaces = [args.space] if isinstance(args.space, str) else list(args.space)
    if len(spaces) != 1:
        raise GlmflowError(
            f"--space {' '.join(spaces)}: the connectivity model {args.model} runs on one "
            "volume space; give one"
        )
    if is_surface_space(spaces[0]):
        raise GlmflowError(
            f"--space {spaces[0]}: the connectivity model {args.model} needs a volume space "
            "(atlases are volumes); give a volume space such as MNI152NLin2009cAsym"
        )
    return spaces[0]


def _inference(spec, args: argparse.Namespace):
    """The model with --inference / --alpha / --permutations / --seed applied."""
    from glmflow.core.rest.spec import connectivity_spec

    overrides = {"method": args.inference, "alpha": args.alpha, "n_perm": args.permutations,
                 "seed": args.seed}  # fmt: skip
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if not overrides:
        return spec
    data = spec.portable()  # atlas files as absolute paths: the spec is rebuilt from a dict
    data["group"]["inference"] = {**data["group"]["inference"], **overrides}
    return dataclasses.replace(
        connectivity_spec({"connectivity": data}, source=spec.source), source=spec.source
    )
