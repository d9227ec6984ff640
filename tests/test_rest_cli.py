"""``glmflow BIDS OUT participant|group --model rest.json`` on a tiny resting-state dataset."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from glmflow.cli.main import main
from glmflow.data.rest import add_resting_state

SPACE = "space-MNI152NLin2009cAsym"
GROUP = f"task-rest_{SPACE}_seg-synth"  # the group level's names


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


@pytest.fixture(scope="module")
def participant(dataset):
    root, tmp, model = dataset
    argv = [str(root), str(tmp / "out"), "participant", "--model", str(model),
            "-w", str(tmp / "work"), "-q"]  # fmt: skip
    return main(argv)


def test_participant_then_group(dataset, participant, capsys):
    root, tmp, model = dataset
    out, work = tmp / "out", tmp / "work"
    common = ["--model", str(model), "-w", str(work), "-q"]
    assert participant == 0
    func = out / "glmflow/sub-03/func"
    for name in (f"sub-03_task-rest_run-1_{SPACE}_seg-synth_desc-rest_timeseries.tsv",
                 f"sub-03_task-rest_run-1_{SPACE}_seg-synth_meas-correlation_desc-rest_"
                 "relmat.tsv",
                 f"sub-03_task-rest_{SPACE}_seg-synth_meas-correlation_desc-rest_"
                 "relmat.json"):  # fmt: skip
        assert (func / name).is_file(), name
    assert main([str(root), str(out), "group", *common]) == 0
    assert "connectivity group model of rest done" in capsys.readouterr().out
    stem = out / f"glmflow/{GROUP}_meas-correlation_contrast-patientMinusControl"
    assert (stem.parent / f"{stem.name}_desc-rest_edges.tsv").is_file()
    assert (stem.parent / f"{stem.name}_stat-t_desc-rest_relmat.tsv").is_file()


def test_both_levels_in_one_process(dataset, participant, tmp_path, capsys):
    """``participant group``: the same tables as the two levels run one after the other."""
    root, tmp, model = dataset
    assert participant == 0
    apart = tmp_path / "apart"  # the module's participant outputs, its group level run apart
    shutil.copytree(tmp / "out", apart / "out")
    assert main([str(root), str(apart / "out"), "group", "--model", str(model),
                 "-w", str(apart / "work"), "-q"]) == 0  # fmt: skip
    capsys.readouterr()
    argv = [str(root), str(tmp_path / "out"), "participant", "group", "--model", str(model),
            "-w", str(tmp_path / "work"), "-q"]  # fmt: skip
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    done = [line.split(" done in ")[0] for line in lines if " done in " in line]
    assert done == ["glmflow: connectivity of 4 run(s) of 4 subject(s)",
                    "glmflow: connectivity group model of rest"]  # fmt: skip
    name = f"glmflow/{GROUP}_meas-correlation_contrast-patientMinusControl_stat-t_desc-rest_"
    name += "relmat.tsv"
    both, apart = (
        pd.read_csv(folder / name, sep="\t", header=None)
        for folder in (tmp_path / "out", apart / "out")
    )
    pd.testing.assert_frame_equal(both, apart)
    assert np.nanmax(np.abs(both.iloc[1:, 1:].to_numpy(float))) > 1


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


def _covariates_model(root, covariates: list[str]) -> dict:
    data = _model(root)
    data["connectivity"]["group"] = {"design": "covariates", "covariates": covariates,
                                     "inference": {"method": "none"}}  # fmt: skip
    return data


def test_covariate_design_end_to_end(dataset, participant):
    import numpy as np
    import pandas as pd
    from scipy import stats

    from glmflow.core.rest.files import read_matrix
    from glmflow.runners.rest import run_connectivity_group

    root, tmp, _ = dataset
    assert participant == 0
    result = run_connectivity_group(root, tmp / "out", _covariates_model(root, ["age"]),
                                    work_dir=tmp / "work")  # fmt: skip
    top = tmp / "out/glmflow"
    t_file = top / f"{GROUP}_meas-correlation_contrast-age_stat-t_desc-rest_relmat.tsv"
    assert t_file in result.files
    age = pd.read_csv(root / "participants.tsv", sep="\t")["age"].to_numpy(float)
    subjects = [read_matrix(top / f"sub-0{s}/func/sub-0{s}_task-rest_{SPACE}_seg-synth_"
                            "meas-correlation_desc-rest_relmat.tsv")
                for s in range(1, 5)]  # fmt: skip
    y = np.stack(subjects)[:, 0, 1]  # edge A1-A2, Fisher z
    fit = stats.linregress(age, y)
    assert abs(read_matrix(t_file)[0, 1] - fit.slope / fit.stderr) < 1e-6
    design = f"{GROUP}_meas-correlation_desc-rest_design.tsv"
    design = pd.read_csv(top / design, sep="\t")
    assert abs(design["age"].mean()) < 1e-12  # demeaned


def test_missing_covariate_column_names_the_model(dataset, participant, tmp_path, capsys):
    root, tmp, _ = dataset
    model = tmp_path / "rest_cov.json"
    model.write_text(json.dumps(_covariates_model(root, ["height"])))
    before = sorted((tmp / "out/glmflow").iterdir())
    argv = [str(root), str(tmp / "out"), "group", "--model", str(model), "-w", str(tmp / "work")]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == (
        f"glmflow: error: 'group.covariates' 'height' of the connectivity model {model} is not "
        f"a column of {root / 'participants.tsv'} (columns: group, age); add the column to "
        "participants.tsv or change 'group.covariates' in the model"
    )
    assert sorted((tmp / "out/glmflow").iterdir()) == before


def test_connectivity_report_pages(dataset, participant):
    """The pages the two levels write (issue 10): matrix, atlas, denoising, censoring."""
    import re

    import numpy as np

    from glmflow.core.rest.files import read_matrix

    root, tmp, model = dataset
    assert participant == 0
    # the two-sample group level, whatever ran before in this worker (none, the same level:
    # recalled at once, or another group model, whose pages this one replaces)
    argv = [str(root), str(tmp / "out"), "group", "--model", str(model), "-w", str(tmp / "work"),
            "-q"]  # fmt: skip
    assert main(argv) == 0
    out = tmp / "out" / "glmflow"
    page = (out / "sub-03_task-rest_desc-rest_connectivity.html").read_text()
    for section in ("methods", "runs", "matrices", "warnings",
                    f"run-sub-03_task-rest_run-1_{SPACE}"):  # fmt: skip
        assert f'<section id="{section}">' in page, section
    assert "Atlas &#x27;synth&#x27; (labels, from atlas-rest_dseg.nii.gz): 8 nodes." in page
    assert "strategies motion, scrub (regressors rot_x, rot_y, rot_z, trans_x" in page
    assert "high-pass 0.01 Hz, low-pass 0.08 Hz" in page
    name = f"sub-03_task-rest_run-1_{SPACE}_seg-synth_meas-correlation_desc-rest_relmat.json"
    run = json.loads((out / "sub-03/func" / name).read_text())
    n = len(run["CensoredVolumes"])
    assert n > 0 and f"{n} of 80 volumes censored ({100 * (n / 80):.1f} %)" in page
    assert page.count('fill="#d62728"') == n  # one red band per censored volume
    # the matrix drawn is the written one: its cells' colours are the relmat's, its labels
    matrix = read_matrix(out / "sub-03/func" / f"sub-03_task-rest_{SPACE}_seg-synth_"
                         "meas-correlation_desc-rest_relmat.tsv")  # fmt: skip
    assert matrix.shape == (8, 8) and np.isnan(np.diag(matrix)).all()
    labels = re.findall(r'rotate\(-90\)">(\w+)</text>', page)
    assert labels == ["A1", "A2", "A3", "B1", "B2", "B3", "solo1", "solo2"]
    group = (out / "group_task-rest_desc-rest_connectivity.html").read_text()
    for section in ("design", "subjects", "maps", "contrast-correlation-patientMinusControl"):
        assert f'<section id="{section}">' in group, section
    assert "<h2>Subjects (4)</h2>" in group and "Benjamini-Hochberg FDR q &lt;= 0.05" in group
    index = (out / "index.html").read_text()
    assert 'href="group_task-rest_desc-rest_connectivity.html"' in index
    assert index.count("_task-rest_desc-rest_connectivity.html") == 5


def test_group_reads_the_space_given(dataset, participant, capsys):
    """--space reaches the group level: the participant level wrote no MNI152NLin6Asym files."""
    root, tmp, model = dataset
    assert participant == 0
    argv = [str(root), str(tmp / "out"), "group", "--model", str(model), "--space",
            "MNI152NLin6Asym", "-w", str(tmp / "work"), "-q"]  # fmt: skip
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == (
        "glmflow: error: No subject-level space-MNI152NLin6Asym seg-synth desc-rest "
        f"meas-correlation relmat files of task 'rest' in {tmp / 'out' / 'glmflow'}; run the "
        "participant level of this connectivity model first (same output folder and --space)"
    )
