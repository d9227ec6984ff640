"""Resting state end to end: the graph, its outputs, its cache, the group level of edges."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from glmflow.core.rest.files import read_matrix
from glmflow.data.rest import PLANTED_EDGE, add_resting_state
from glmflow.runners.rest import run_connectivity, run_connectivity_group

SPACE = "space-MNI152NLin2009cAsym"
GROUP = f"task-rest_{SPACE}_seg-synth"  # the group level's names


def _model(root, plots=True, **group):
    return {"connectivity": {
        "plots": plots,
        "name": "rest", "task": "rest",
        "atlas": {"labels_img": str(root / "derivatives/truth/atlas-rest_dseg.nii.gz"),
                  "labels_tsv": str(root / "derivatives/truth/atlas-rest_dseg.tsv"),
                  "label": "synth"},
        "confounds": {"strategy": ["motion", "scrub"], "motion": "basic"},
        "measures": ["correlation", "partial correlation", "tangent"],
        "group": {"design": "two-sample", "group_column": "group", **group},
    }}  # fmt: skip


@pytest.fixture(scope="module")
def participant(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rest_runner")
    root = add_resting_state(tmp / "bids", n_subjects=12, n_runs=2, n_volumes=120)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_connectivity(root, tmp / "out", _model(root), work_dir=tmp / "work",
                                  plugin="Linear")  # fmt: skip
    return root, tmp, result


def test_participant_outputs(participant):
    root, tmp, result = participant
    out = tmp / "out" / "glmflow" / "sub-02" / "func"
    run = f"sub-02_task-rest_run-2_{SPACE}_seg-synth_meas-partialCorrelation_desc-rest_relmat.tsv"
    run = out / run
    subject = out / f"sub-02_task-rest_{SPACE}_seg-synth_meas-correlation_desc-rest_relmat.tsv"
    series = out / f"sub-02_task-rest_run-1_{SPACE}_seg-synth_desc-rest_timeseries.tsv"
    for path in (run, subject, series):
        assert path in result.files and path.with_suffix(".json") in result.files
    name = "sub-02_task-rest_run-{}_" + SPACE + "_seg-synth_meas-correlation_desc-rest_relmat.tsv"
    runs = [read_matrix(out / name.format(r)) for r in (1, 2)]
    combined = read_matrix(subject)
    assert np.allclose(combined, (runs[0] + runs[1]) / 2, equal_nan=True)
    assert np.isnan(np.diag(combined)).all()  # Fisher z: the diagonal is n/a
    sidecar = json.loads(subject.with_suffix(".json").read_text())
    assert sidecar["Runs"] == [120, 120] and sidecar["Measure"] == "correlation"
    assert sidecar["NodeLabels"][6:] == ["solo1", "solo2"]
    # 12 subjects x 2 runs x (time series + 2 run matrices) + 12 x 2 subject matrices, each
    # with a sidecar; + 12 x 2 pictures of the subject matrices
    assert len(result.files) == 2 * (12 * 2 * 3 + 12 * 2) + 12 * 2
    assert subject.with_suffix(".svg").read_text().startswith("<?xml")
    assert len(sidecar["NodeCoordinates"]) == 8


def test_rerun_executes_nothing(participant):
    root, tmp, first = participant
    results = sorted((tmp / "work" / "rest_wf").glob("sub_*_wf/*/result_*.pklz"))
    assert len(results) == 12 * (2 * 2 + 3)  # per run: compute + sink; merge, combine, sink
    before = {path: path.stat().st_mtime_ns for path in results}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = run_connectivity(root, tmp / "out", _model(root), work_dir=tmp / "work",
                                 plugin="Linear")  # fmt: skip
    assert set(again.files) == set(first.files)
    compute = [p for p in results if p.parent.name.startswith("connectivity_")]
    assert len(compute) == 24 and all(p.stat().st_mtime_ns == before[p] for p in compute)
    # no pictures, another group inference: the runs' nodes are still not rerun
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        edited = _model(root, plots=False, inference={"method": "bonferroni"})
        third = run_connectivity(root, tmp / "out", edited, work_dir=tmp / "work", plugin="Linear")
    assert all(p.stat().st_mtime_ns == before[p] for p in compute)
    assert len(third.files) == len(first.files) - 12 * 2  # the subject pictures


@pytest.mark.parametrize("method", ["fdr", "permutation"])
def test_group_finds_the_planted_edge_only(participant, method):
    root, tmp, _ = participant
    inference = {"method": method, "alpha": 0.05, "n_perm": 2000, "seed": 0}
    result = run_connectivity_group(
        root,
        tmp / "out",
        _model(root, plots=method == "fdr", inference=inference),
        work_dir=tmp / "work",
    )
    top = tmp / "out" / "glmflow"
    for meas in ("correlation", "tangent"):
        edges = pd.read_csv(
            top / f"{GROUP}_meas-{meas}_contrast-patientMinusControl_desc-rest_edges.tsv",
            sep="\t",
        )
        assert [(int(r.node_i), int(r.node_j)) for r in edges.itertuples()] == [PLANTED_EDGE]
        assert edges.loc[0, "label_i"] == "solo1" and edges.loc[0, "t"] > 4
        reverse = f"{GROUP}_meas-{meas}_contrast-controlMinusPatient_desc-rest_edges.tsv"
        reverse = top / reverse
        reverse = pd.read_csv(reverse, sep="\t")  # the same edge, negative t
        assert len(reverse) == 1 and reverse.loc[0, "t"] == -edges.loc[0, "t"]
    stem = f"{GROUP}_meas-correlation_contrast-patientMinusControl_stat-"
    t = read_matrix(top / f"{stem}t_desc-rest_relmat.tsv")
    assert t.shape == (8, 8) and np.isnan(np.diag(t)).all() and np.allclose(t, t.T, equal_nan=True)
    sidecar = json.loads((top / f"{stem}p_desc-rest_relmat.json").read_text())
    assert len(sidecar["Subjects"]) == 12 and sidecar["Threshold"].startswith(
        {"fdr": "Benjamini-Hochberg", "permutation": "permutation max-t"}[method]
    )
    assert any(p.name.endswith("_design.tsv") for p in result.files)
    if method == "fdr":  # pictures are drawn when the model says "plots" (the default)
        assert (top / f"{stem}t_desc-rest_relmat.svg") in result.files
        connectome = f"{stem[:-6]}_desc-rest_connectome.svg"
        assert (top / connectome) in result.files


def test_command_line(participant, tmp_path, capsys):
    from glmflow.cli.main import main

    root, tmp, _ = participant
    model = tmp_path / "rest.json"
    model.write_text(json.dumps(_model(root, plots=False)))
    common = [str(root), str(tmp / "out"), "group", "--model", str(model), "-w", str(tmp / "work")]
    assert main([*common, "--inference", "bonferroni", "-q"]) == 0
    assert "connectivity group model of rest done" in capsys.readouterr().out
    edges = f"{GROUP}_meas-correlation_contrast-patientMinusControl_desc-rest_edges.tsv"
    edges = tmp / "out/glmflow" / edges
    sidecar = json.loads(edges.with_suffix(".json").read_text())
    assert sidecar["Threshold"] == "p < 0.05 / 28 edges (Bonferroni)"
    assert main([*common, "--group-mask", str(model)]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(f"--group-mask does not apply to the connectivity model {model}; remove it")
    )
