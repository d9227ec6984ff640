"""ParseEvents and SelectConfounds run as Nipype nodes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from nipype.pipeline import engine as pe

from glmflow.core.confounds import read_confounds
from glmflow.core.events import read_parsed_events
from glmflow.interfaces.confounds import SelectConfounds
from glmflow.interfaces.events import ParseEvents


def test_parse_events_node(tmp_path):
    events_file = tmp_path / "sub-01_task-x_events.tsv"
    events_file.write_text(
        "onset\tduration\ttrial_type\tblock_type\trt\n"
        "0\t1\tface\tA\t0.5\n"
        "2\t1\tfixation\tA\tn/a\n"
        "4\t1\tface\tA\t0.9\n"
        "6\t1\thouse\tB\t0.7\n"
        "8\t1\thouse\tB\t0.3\n"
    )
    node = pe.Node(
        ParseEvents(
            events_file=str(events_file),
            drop_conditions=["fixation", "errors"],
            missing_conditions="ignore",
            rename_conditions={"house": "place"},
            modulators=["rt"],
            block_column="block_type",
        ),
        name="parse_events",
        base_dir=str(tmp_path),
    )
    result = node.run()
    out = Path(result.outputs.events_file)
    assert out.parent == tmp_path / "parse_events" and out.name == "events.tsv"
    tidy = read_parsed_events(out)
    assert tidy["trial_type"].tolist() == [
        "A_face",
        "A_face_x_rt",
        "A_face",
        "A_face_x_rt",
        "B_place",
        "B_place_x_rt",
        "B_place",
        "B_place_x_rt",
    ]
    np.testing.assert_allclose(
        tidy.loc[tidy["role"] == "modulator", "modulation"], [-0.2, 0.2, 0.2, -0.2]
    )


def test_parse_events_node_without_options_uses_defaults(tmp_path):
    events_file = tmp_path / "run_events.tsv"
    events_file.write_text("onset\tduration\ttrial_type\n0\t1\ta\n")
    result = pe.Node(
        ParseEvents(events_file=str(events_file)), name="parse", base_dir=str(tmp_path)
    ).run()
    tidy = read_parsed_events(result.outputs.events_file)
    assert tidy.to_dict("list") == {
        "onset": [0.0],
        "duration": [1.0],
        "trial_type": ["a"],
        "modulation": [1.0],
        "role": ["condition"],
    }


@pytest.fixture
def confounds_file(tmp_path):
    n = 10
    rng = np.random.default_rng(3)
    table = {name: rng.normal(size=n) for name in ("trans_x", "trans_y", "trans_z")}
    table |= {name: rng.normal(size=n) for name in ("rot_x", "rot_y", "rot_z", "csf")}
    table["non_steady_state_outlier00"] = np.eye(n)[0]
    path = tmp_path / "sub-01_task-x_desc-confounds_timeseries.tsv"
    pd.DataFrame(table).to_csv(path, sep="\t", index=False)
    return path


def test_select_confounds_node(tmp_path, confounds_file):
    node = pe.Node(
        SelectConfounds(
            confounds_file=str(confounds_file),
            strategy=["motion"],
            motion="basic",
            columns=["csf"],
        ),
        name="select_confounds",
        base_dir=str(tmp_path),
    )
    result = node.run()
    confounds, mask = read_confounds(
        result.outputs.confounds_file, result.outputs.sample_mask_file
    )
    assert list(confounds.columns) == [
        "rot_x",
        "rot_y",
        "rot_z",
        "trans_x",
        "trans_y",
        "trans_z",
        "csf",
    ]
    np.testing.assert_array_equal(mask, np.arange(1, 10))
    np.testing.assert_allclose(confounds.iloc[1:].mean(), 0.0, atol=1e-12)
    assert json.loads(Path(result.outputs.sample_mask_file).read_text())["n_volumes"] == 10


def test_select_confounds_node_without_selection_writes_empty_table(tmp_path, confounds_file):
    result = pe.Node(
        SelectConfounds(confounds_file=str(confounds_file)), name="none", base_dir=str(tmp_path)
    ).run()
    assert Path(result.outputs.confounds_file).read_text() == ""
    meta = json.loads(Path(result.outputs.sample_mask_file).read_text())
    assert meta == {"sample_mask": None, "n_volumes": 10}
