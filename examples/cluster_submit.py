"""Run glmflow's participant level as SLURM or SGE batch jobs, from Python.

    python examples/cluster_submit.py OUT_DIR --plugin SLURM \
        --plugin-args '{"sbatch_args": "-p debug --time=00:30:00"}'

Makes the small synthetic dataset in OUT_DIR/bids (or reuses it) and fits every subject's
models, one batch job per node: each job asks for its node's ``mem_gb`` / ``n_procs``
(SLURM ``--mem`` / ``--cpus-per-task``, SGE ``-l mem_free`` / ``-pe smp``), after glmflow
has checked with the scheduler that it accepts those requests. Run it on a login / submit
host, with OUT_DIR on a file system the compute nodes share. The work directory
(OUT_DIR/work) is the cache: if this driver dies, run the same command again; finished nodes
are reused and jobs still in the queue are waited for. ``--plugin SLURMGraph`` / ``SGEGraph``
submit the whole graph at once with dependencies (fewer round trips, no cache check per node).

The same from the command line: ``glmflow BIDS_DIR OUT participant --model FILE --plugin
SLURM --plugin-args '...'``.
"""

from __future__ import annotations

import argparse
import sys
from importlib.resources import files
from pathlib import Path

from glmflow import ExecutionOptions, run_participant_level
from glmflow.data import make_synthetic_dataset
from glmflow.errors import GlmflowError
from glmflow.execution import BATCH_PLUGINS, parse_plugin_args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--plugin", choices=BATCH_PLUGINS, default="SLURM")
    parser.add_argument("--plugin-args", help="JSON object, or a JSON file, for the plugin")
    args = parser.parse_args(argv)

    out_dir = args.out_dir.resolve()
    bids_dir = out_dir / "bids"
    if not bids_dir.exists():
        make_synthetic_dataset(bids_dir, preset="small")
    try:
        # checked here, before any job is submitted (a bad --plugin-args is one line)
        options = ExecutionOptions(
            work_dir=out_dir / "work",
            plugin=args.plugin,
            plugin_args=parse_plugin_args(args.plugin_args),
        )
        result = run_participant_level(
            bids_dir=bids_dir,
            output_dir=out_dir / "derivatives",
            model=files("glmflow.data") / "models" / "task_information.json",
            execution=options,
        )
    except GlmflowError as exc:
        # one line: the node and its crash file, or what the scheduler refused
        print(f"glmflow: error: {exc}", file=sys.stderr)
        return 1
    print(f"{len(result.files)} file(s) in {result.output_dir}; cache in {result.work_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
