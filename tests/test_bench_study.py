"""benchmarks/bench_study.py's helpers (the benchmark itself never runs in the tests)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_study.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_study", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_help_lists_the_options():
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    for option in ("--preset", "--fitlins", "--skip", "--n-procs", "--results"):
        assert option in proc.stdout


def test_models_are_valid_and_the_same_design(bench, tmp_path):
    from glmflow.core.model import load_model

    path = bench.write_json(
        tmp_path / "model.json", bench.glmflow_model({"face-house": "face - house"}, ["csf"])
    )
    spec = load_model(path)
    assert spec.confounds.columns == ("csf",)
    assert [c.name for c in spec.contrasts] == ["face-house"]
    assert spec.glm.smoothing_fwhm == 5.0
    assert spec.group.design == "one-sample"
    assert spec.group.inference.method == "fdr"
    bsm = bench.bsm_model()  # checked by glmflow's BSM path when the benchmark runs
    run_x = bsm["Nodes"][0]["Model"]["X"]
    assert run_x[3:-1] == bench.CONFOUNDS and len(bench.CONFOUNDS) == 8
    assert [n["Model"]["Type"] for n in bsm["Nodes"]] == ["glm", "meta", "glm"]


def _pause(seconds):
    import time

    time.sleep(seconds)
    return seconds


def test_summed_node_seconds_reads_nipype_result_files(bench, tmp_path):
    from nipype.interfaces.utility import Function
    from nipype.pipeline import engine as pe

    wf = pe.Workflow(name="wf", base_dir=str(tmp_path))
    for i in range(2):
        node = pe.Node(Function(function=_pause, input_names=["seconds"]), name=f"pause{i}")
        node.inputs.seconds = 0.3
        wf.add_nodes([node])
    wf.run(plugin="Linear")
    seconds, count = bench.summed_node_seconds(tmp_path)
    assert count == 2
    assert 0.6 <= seconds < 3.0
    assert bench.summed_node_seconds(tmp_path, since=2e9) == (0.0, 0)


def test_fitlins_absent_or_wrong_version_is_said(bench, tmp_path):
    assert bench.find_fitlins(None) == (
        None,
        "no FitLins: pass --fitlins PATH or set GLMFLOW_FITLINS",
    )
    missing = str(tmp_path / "nope")
    assert bench.find_fitlins(missing) == (None, f"FitLins not found at {missing}")
    fake = tmp_path / "fitlins"
    fake.write_text("#!/bin/sh\necho fitlins v0.10.1\n")
    os.chmod(fake, 0o755)
    assert bench.find_fitlins(str(fake)) == (None, f"{fake} is FitLins 0.10.1, not 0.11.0")
    fake.write_text("#!/bin/sh\necho fitlins v0.11.0\n")
    assert bench.find_fitlins(str(fake)) == (str(fake), "0.11.0")


def test_ratios_and_targets(bench):
    rows = {
        "participant_cold": 80.0, "group_cold": 20.0, "fitlins_cold": 900.0,
        "nilearn_study": 650.0, "rerun_participant": 1.5, "rerun_group": 1.0,
        "bsm_cold": 100.0, "bsm_rerun": 3.0, "contrast_nodes": 4.0, "startup": 1.5,
    }  # fmt: skip
    b = bench.Bench({k: bench.Row(k, v) for k, v in rows.items()})
    b.skip("fitlins_rerun", "FitLins rerun", "absent")
    table = {
        what: (shown, met) for what, shown, _, met, _ in bench.ratios(b, {"p": (150.0, 9)}, 2)
    }
    assert table["study cold: FitLins cold / glmflow participant + group cold"] == ("9.00x", False)
    assert table["study cold: nilearn study / glmflow participant + group cold"] == ("6.50x", True)
    assert table["glmflow cold / (sum of its nodes' own times / cores)"] == ("1.33x", False)
    assert table["no-change rerun (participant + group) / cold"] == ("2.5%", False)
    assert table["one contrast added (participant + group) / cold"] == ("not measured", None)
    floor = "the floor of a {} edit: (its nodes' own times / cores + 2 level start-ups) / cold"
    assert table[floor.format("contrast")] == ("7.0%", None)  # (4 + 2 x 1.5) / 100
    assert table[floor.format("confound")] == ("not measured", None)
    assert table["BSM cold: FitLins / glmflow"] == ("9.00x", True)
    assert table["BSM cached rerun / cold, glmflow"] == ("3.0%", True)
    assert table["BSM cached rerun / cold, FitLins (for reference)"] == ("not measured", None)
    assert "nodes" not in b.rows


def test_one_process_ratios_use_its_own_cold_and_nodes(bench):
    rows = {"participant_cold": 80.0, "group_cold": 20.0, "one_cold": 90.0,
            "fitlins_cold": 900.0, "one_rerun": 0.9, "one_contrast": 9.0,
            "one_contrast_nodes": 3.0, "startup": 2.0}  # fmt: skip
    b = bench.Bench({k: bench.Row(k, v) for k, v in rows.items()})
    nodes = {"participant": (140.0, 9), "group": (10.0, 3), bench.ONE_PROCESS: (144.0, 12)}
    table = {what: (shown, met) for what, shown, _, met, _ in bench.ratios(b, nodes, 2)}
    assert table["glmflow cold / (sum of its nodes' own times / cores)"] == ("1.33x", False)
    assert table["one process: cold / (sum of its nodes' own times / cores)"] == ("1.25x", True)
    assert table["study cold, one process: FitLins cold / glmflow participant group cold"] == (
        "10.00x", True)  # fmt: skip
    assert table["one process: no-change rerun / cold"] == ("1.0%", True)
    assert table["one process: one contrast added / cold"] == ("10.0%", False)
    floor = "the floor of a contrast edit in one process: (its nodes' own times / cores + 1 "
    assert table[floor + "start-up) / cold"] == ("5.6%", None)  # (3 + 2) / 90
    assert "nodes_one" not in b.rows and "nodes" not in b.rows


def test_both_levels_are_one_command(bench, tmp_path):
    cmd = bench.glmflow_cmd(tmp_path / "ds", tmp_path / "out", tmp_path / "w",
                            tmp_path / "m.json", "participant group")  # fmt: skip
    assert cmd[3:7] == [str(tmp_path / "ds"), str(tmp_path / "out"), "participant", "group"]


def test_merge_takes_the_measured_rows_of_each_invocation(bench, tmp_path):
    meta = {"dataset": "d", "versions": "FitLins absent", "start": "12:00", "notes": []}
    first, second = bench.Bench(), bench.Bench()
    first.rows["participant_cold"] = bench.Row("glmflow participant cold", 80.0, (9.0, 9.5))
    first.rows["group_cold"] = bench.Row("glmflow group cold", 20.0, (9.5, 9.0))
    first.skip("fitlins_cold", "FitLins cold", "left to the other invocation")
    second.rows["fitlins_cold"] = bench.Row("FitLins cold", 1200.0, (12.0, 13.0), cpu=900.0)
    bench.save_rows(tmp_path / "a.json", first, {"participant": (150.0, 9)}, meta)
    bench.save_rows(
        tmp_path / "b.json", second, {}, {**meta, "start": "12:10", "versions": "FitLins 0.11.0"}
    )
    out = tmp_path / "report.md"
    bench.merge([tmp_path / "a.json", tmp_path / "b.json"], out, 2)
    text = out.read_text()
    assert "| FitLins cold | 1200.0 | 900.0 | 12.0 / 13.0 |  |" in text
    assert (
        "| study cold: FitLins cold / glmflow participant + group cold | 12.00x | >= 10x "
        "| yes |  |" in text
    )
    assert "started 12:00 and 12:10 (invocations merged)" in text
    assert "FitLins 0.11.0" in text
