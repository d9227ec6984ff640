"""A glm-express 2.0.3 script on glmflow: the same script, only its import line changed.

    python examples/glm_express_demo.py [FOLDER] [--subjects N]

The first run writes ``glmflow demo``'s synthetic dataset (8 subjects x 2 runs, TR 2 s)
to ``FOLDER/bids`` and glm-express's ``task_information.json`` beside it (the packaged
glm-express file), then runs :func:`glm_express_script`: every subject's first level with
``Subject``, the group models with ``GroupLevel``. Rerun it: every node is cached and it
takes seconds. Maps go where glm-express puts its own, under ``bids/derivatives``
(``glmflow/``, as BIDS derivatives), the cache to ``bids/derivatives/glmflow-work``.
A mistake (a subject or contrast that does not exist) is one line and exit code 2.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import pandas as pd

from glmflow import GlmflowError, make_synthetic_dataset

# glm-express:  from glm_express import Subject, GroupLevel
from glmflow.glm_express import GroupLevel, Subject

MODEL = Path(__file__).resolve().parents[1] / "glmflow/data/models/task_information.json"


def glm_express_script(bids_root: str) -> None:
    """A glm-express script as its users write them (nothing glmflow-specific below)."""
    participants = pd.read_csv(f"{bids_root}/participants.tsv", sep="\t")
    for sub_id in participants["participant_id"].str.replace("sub-", ""):
        subject = Subject(sub_id, "faces", bids_root=bids_root, suppress=True)
        subject.run_first_level_glm(smoothing=8.0, plot_brains=False, verbose=False)
        print(f"sub-{sub_id}: {subject.functional_runs} runs, TR {subject.t_r} s, "
              f"contrasts {sorted(subject.contrast_maps)}")  # fmt: skip

    group = GroupLevel(task="faces", bids_root=bids_root)
    print(f"{len(group.subjects)} subjects modelled: {group.all_contrasts}")
    z_map = group.uncorrected_model(contrast="face-house", sub_smoothing=8.0)
    print(f"face-house group z: {z_map.get_fdata().min():.2f} .. {z_map.get_fdata().max():.2f}")
    thresholded = group.corrected_model(
        contrast="face-house", height_control="fpr", alpha=0.001, sub_smoothing=8.0
    )
    clusters = group.get_clusters(thresholded, stat_thresh=3.29, two_sided=True)
    print(clusters.head(10).to_string(index=False))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default="glmflow-glm-express-demo", type=Path)
    parser.add_argument("--subjects", type=int, default=None, help="fewer subjects (faster)")
    args = parser.parse_args(argv)
    root = args.folder.absolute()
    bids = root / "bids"
    try:
        if not bids.exists():
            make_synthetic_dataset(bids, preset="small", n_subjects=args.subjects)
        if not (root / "task_information.json").exists():
            shutil.copy(MODEL, root / "task_information.json")  # where glm-express keeps it
        glm_express_script(str(bids))
    except GlmflowError as err:
        print(f"glmflow: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
