"""Which connectivity pages the reports plan, from the outputs' names and sidecars alone."""

from __future__ import annotations

import json
from pathlib import Path

from glmflow.core.report.rest import rest_page_plans
from glmflow.core.rest.files import connectivity_path, subject_entities

_ENTITIES = {"segmentation": "harvardoxford", "meas": "correlation", "desc": "rest"}


def _write(path: Path, sidecar: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("1\t0.5\n0.5\t1\n")
    path.with_suffix(".json").write_text(json.dumps(sidecar))
    return path


def test_a_lone_run_without_run_entity_is_shown_as_the_subjects_run(tmp_path):
    """A subject's only run without run- is written under the subject's name alone: its
    page lists it as a run (censored volumes, motion trace), not only as the subject's."""
    run = {"subject": "01", "task": "rest", "space": "MNI152NLin2009cAsym"}
    path = connectivity_path(tmp_path, subject_entities([run]), level="subject",
                             suffix="relmat", seg="harvardoxford", meas="correlation",
                             desc="rest")  # fmt: skip
    sidecar = {"NodeLabels": ["a", "b"], "CensoredVolumes": [3, 4, 5], "Runs": [60],
               "RunCombination": "mean of the runs' matrices"}  # fmt: skip
    _write(path, sidecar)
    [(kind, name, _, content)] = rest_page_plans(tmp_path, None)
    assert (kind, name) == ("subject", "sub-01_task-rest_desc-rest_connectivity.html")
    assert content["matrices"] == [str(path.with_suffix(".json"))]
    assert [r["name"] for r in content["runs"]] == ["sub-01_task-rest_space-MNI152NLin2009cAsym"]


def test_group_outputs_of_two_spaces_get_a_page_each(tmp_path):
    for space in ("MNI152NLin2009cAsym", "T1w"):
        entities = {"task": "rest", "space": space, "segmentation": "harvardoxford"}
        z = connectivity_path(tmp_path, entities, level="dataset", suffix="relmat",
                              meas="correlation", extra=[("contrast", "intercept"),
                              ("stat", "z")], desc="rest")  # fmt: skip
        _write(z, {})
        design = connectivity_path(tmp_path, entities, level="dataset", suffix="design",
                                   meas="correlation", desc="rest")  # fmt: skip
        design.write_text("label\tintercept\n")
    plans = rest_page_plans(tmp_path, None)
    assert [(p[1], p[2]) for p in plans] == [
        ("group_task-rest_space-MNI152NLin2009cAsym_desc-rest_connectivity.html",
         "Group level: rest connectivity, space MNI152NLin2009cAsym, model rest"),
        ("group_task-rest_space-T1w_desc-rest_connectivity.html",
         "Group level: rest connectivity, space T1w, model rest"),
    ]  # fmt: skip
    for _, name, _, content in plans:
        space = name.split("_space-")[1].split("_")[0]
        assert [Path(c).name.split("_")[1] for c in content["contrasts"]] == [f"space-{space}"]
        assert f"_space-{space}_" in Path(content["design"]).name
