"""The BIDS App's analysis levels and the options that belong to each (checked once, here,
before any level runs)."""

from __future__ import annotations

import argparse

from glmflow.errors import GlmflowError

# options of one level only, with the value that means "not given"
PARTICIPANT_ONLY = {
    "derivatives": None, "session": None, "run": None, "desc": "preproc", "res": None,
    "slice_time_ref": None, "missing_conditions": "error",
}  # fmt: skip
GROUP_ONLY = {
    "group_design": None, "group_mask": None, "inference": None, "alpha": None,
    "permutations": None, "seed": None, "permutation_stat": None,
}  # fmt: skip


# group inference options a BIDS Stats Model's Dataset nodes take at the participant level
BSM_INFERENCE = ("inference", "alpha", "permutations", "seed", "permutation_stat")


#: the BIDS App's analysis levels, in the order an invocation of both runs them
LEVELS = ("participant", "group")


def analysis_levels(args: argparse.Namespace) -> tuple[str, ...]:
    """The levels asked for, each once, in the order they run: the participant level first
    (the group level reads the subject maps it writes), whatever order they were typed in."""
    given = args.analysis_level
    given = [given] if isinstance(given, str) else list(given)
    return tuple(level for level in LEVELS if level in given)


def is_bsm(args: argparse.Namespace) -> bool:
    """The model is a BIDS Stats Model (its participant level runs all its nodes)."""
    from glmflow.core.bsm import is_bids_stats_model_file

    return is_bids_stats_model_file(args.model)


def check_level_options(args: argparse.Namespace, levels: tuple[str, ...]) -> None:
    """Each option given belongs to a level asked for (one line naming it, else)."""
    foreign = {**({} if "group" in levels else GROUP_ONLY),
               **({} if "participant" in levels else PARTICIPANT_ONLY)}  # fmt: skip
    bsm = "participant" in levels and is_bsm(args)
    if bsm:  # its Dataset nodes take the inference options, not a design or a mask
        foreign = {key: unset for key, unset in {**foreign, **GROUP_ONLY}.items()
                   if key not in BSM_INFERENCE}  # fmt: skip
    for key, unset in foreign.items():
        if getattr(args, key, unset) == unset:
            continue
        option = f"--{key.replace('_', '-')}"
        if bsm and key in GROUP_ONLY:
            raise GlmflowError(
                f"{option} does not apply to the BIDS Stats Model {args.model} (its Dataset "
                "nodes hold their own design and mask); remove it"
            )
        level = "participant" if key in PARTICIPANT_ONLY else "group"
        raise GlmflowError(
            f"{option} is an option of the {level} level, not of '{' '.join(levels)}'; "
            "remove it, or run both levels ('participant group')"
        )


def bsm_levels(args: argparse.Namespace, levels: tuple[str, ...]) -> tuple[str, ...]:
    """A BIDS Stats Model runs every node, its Dataset nodes too, at the participant level:
    'participant group' runs it once; 'group' alone has nothing to run."""
    if not is_bsm(args):
        return levels
    if "participant" not in levels:
        raise GlmflowError(
            f"{args.model} is a BIDS Stats Model: its Dataset nodes (the group models) run "
            "with its other nodes at the participant level; run 'participant' (or "
            "'participant group') instead of 'group'"
        )
    return ("participant",)


def inference(args: argparse.Namespace) -> dict:
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
