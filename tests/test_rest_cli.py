"""``glmflow BIDS OUT participant|group --model rest.json`` on a tiny resting-state dataset."""

from __future__ import annotations

import json

import pytest

from glmflow.cli.main import main
from glmflow.data.rest import add_resting_state

SPACE = "space-MNI152NLin2009cAsym"


def _model(root) -> dict:
    truth = root / "derivatives/truth"
    return {"connectivity": {
        "name": "rest", "task": "rest", "plots": False,
        "atlas": {"labels_img": str(truth / "atlas-rest_dseg.nii.gz"),
                  "labels_tsv": str(truth / "atlas-rest_dseg.tsv"), "label": "synth"},
        "confounds": {"strategy": ["motion", "scrub"], "motion": "basic"},
        "measures": ["correlation"],
        "group": {"design": "two-sample", "group_column": "group"},
    }}  # fmt: skip


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rest_cli")
    root = add_resting_state(tmp / "bids", n_subjects=4, n_runs=1, n_volumes=80)
    model = tmp / "rest.json"
    model.write_text(json.dumps(_model(root)))
    return root, tmp, model


def test_participant_then_group(dataset, capsys):
    root, tmp, model = dataset
    out, work = tmp / "out", tmp / "work"
    common = ["--model", str(model), "-w", str(work), "-q"]
    assert main([str(root), str(out), "participant", *common]) == 0
    assert "connectivity of 4 run(s) of 4 subject(s) done" in capsys.readouterr().out
    func = out / "glmflow/sub-03/func"
    for name in (f"sub-03_task-rest_run-1_{SPACE}_seg-synth_timeseries.tsv",
                 f"sub-03_task-rest_run-1_{SPACE}_seg-synth_meas-correlation_relmat.tsv",
                 f"sub-03_task-rest_{SPACE}_seg-synth_meas-correlation_relmat.json"):  # fmt: skip
        assert (func / name).is_file(), name
    assert main([str(root), str(out), "group", *common]) == 0
    assert "connectivity group model of rest done" in capsys.readouterr().out
    stem = out / "glmflow/task-rest_seg-synth_meas-correlation_contrast-patientMinusControl"
    assert (stem.parent / f"{stem.name}_edges.tsv").is_file()
    assert (stem.parent / f"{stem.name}_stat-t_relmat.tsv").is_file()


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (["MNI152NLin2009cAsym", "MNI152NLin6Asym"],
         "--space MNI152NLin2009cAsym MNI152NLin6Asym: the connectivity model {model} runs on "
         "one volume space; give one"),
        (["fsaverage5"],
         "--space fsaverage5: the connectivity model {model} needs a volume space (atlases are "
         "volumes); give a volume space such as MNI152NLin2009cAsym"),
    ],
)  # fmt: skip
def test_bad_space_is_one_line(dataset, tmp_path, capsys, space, message):
    root, _, model = dataset
    out = tmp_path / "out"
    argv = [str(root), str(out), "participant", "--model", str(model), "--space", *space,
            "-w", str(tmp_path / "work")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"glmflow: error: {message.format(model=model)}"
    assert not out.exists() or not any(out.iterdir())
