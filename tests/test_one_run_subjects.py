"""A subject whose only run has no run- entity: its run and subject maps have one name.

The participant level then writes each t contrast once, as the subject's (the group level
reads it; its maps are the run's own), and the run's F contrasts and design as the run's;
no file is written by two sinks (which one won depended on the graph's order).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

MODEL = Path(__file__).resolve().parents[1] / "glmflow" / "data" / "models" / "faces_model.json"


@pytest.fixture(scope="module")
def one_run(tmp_path_factory) -> tuple[Path, Path]:
    """Four subjects with one run each, the run- entity taken out of every file name."""
    from glmflow.cli.main import main
    from glmflow.data import make_synthetic_dataset

    root = tmp_path_factory.mktemp("one-run")
    ds = make_synthetic_dataset(root / "bids", n_subjects=4, n_runs=1, n_volumes=60)
    for path in sorted(ds.rglob("*_run-1_*")):
        path.rename(path.with_name(path.name.replace("_run-1_", "_")))
    out = root / "out"
    args = [str(ds), str(out), "participant", "--model", str(MODEL), "-w", str(root / "work"),
            "-q"]  # fmt: skip
    assert main(args) == 0
    return ds, out / "glmflow"


def test_each_file_has_one_writer_and_t_maps_are_the_subjects(one_run):
    _, glm = one_run
    manifests = sorted(glm.parent.parent.glob("work/**/ds_*/manifest.json"))
    destinations = Counter(dst for m in manifests for _, dst in json.loads(m.read_text()))
    assert destinations and max(destinations.values()) == 1
    func = glm / "sub-01" / "func"
    stem = "sub-01_task-faces_space-MNI152NLin2009cAsym_contrast-{}_stat-{}_statmap.json"
    t_map = json.loads((func / stem.format("faceMinusHouse", "z")).read_text())
    f_map = json.loads((func / stem.format("effectsMinusOfMinusInterest", "F")).read_text())
    assert t_map["Level"] == "subject" and f_map["Level"] == "run"
    assert (func / "sub-01_task-faces_design.tsv").is_file()


def test_group_level_reads_every_one_run_subject(one_run, tmp_path):
    from glmflow.cli.main import main

    ds, glm = one_run
    args = [str(ds), str(glm.parent), "group", "--model", str(MODEL), "-w", str(tmp_path),
            "-q"]  # fmt: skip
    assert main(args) == 0
    sidecar = next(glm.glob("task-faces_*contrast-faceMinusHouse_stat-z_statmap.json"))
    assert len(json.loads(sidecar.read_text())["Inputs"]) == 4
    z = np.asarray(__import__("nibabel").load(str(sidecar).replace(".json", ".nii.gz")).dataobj)
    assert np.isfinite(z).all()
