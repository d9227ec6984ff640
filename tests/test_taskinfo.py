"""glm-express task_information.json: every key honoured, builder output, bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

import glmflow
from glmflow.core.model import (
    GLMX_CONFOUND_PATTERNS,
    ContrastSpec,
    ModelSpec,
    expand_contrasts,
    load_model,
    load_task_information,
)
from glmflow.errors import ModelSpecError

MODELS = Path(glmflow.__file__).parent / "data" / "models"


def _builder_entry() -> dict:
    """One task as glm-express 2.0.3's build_task_info() writes it (same keys and order)."""
    return {
        "block_identifier": "block_type",
        "condition_identifier": "trial_type",
        "confound_regressors": [],
        "design_contrasts": [],
        "excludes": [],
        "group_level_regressors": [],
        "tr": 1.0,
    }


def _write(tmp_path: Path, content, name: str = "task_information.json") -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content, indent=6))
    return path


def _load(tmp_path: Path, task: str = "faces", **changes) -> ModelSpec:
    entry = {**_builder_entry(), **changes}
    return load_task_information(_write(tmp_path, {task: entry, "rest": _builder_entry()}), task)


# ---------------------------------------------------------------- builder output
def test_builder_output_loads_as_it_is(tmp_path):
    spec = _load(tmp_path)
    assert (spec.name, spec.task, spec.tr, spec.excludes) == ("faces", "faces", 1.0, ())
    assert spec.events.condition_column == "trial_type"
    assert spec.events.block_column == "block_type"
    assert spec.events.missing_block_column == "warn"  # the builder writes it for every task
    assert spec.events.drop_conditions == ("fixation",)
    assert spec.confounds.columns == ()
    assert spec.confounds.optional_columns == GLMX_CONFOUND_PATTERNS
    assert spec.contrasts == () and spec.auto_contrasts == ("conditions",)
    assert spec.group.covariates == ()
    assert spec.source == str(tmp_path / "task_information.json")


def test_packaged_builder_file_is_the_builder_format():
    path = MODELS / "task_information_builder.json"
    assert json.loads(path.read_text()) == {"faces": _builder_entry()}
    assert path.read_text().startswith('{\n      "faces": {\n            "block_identifier"')
    spec = load_model(path)  # one task: no task argument needed
    assert spec.tr == 1.0 and spec.events.block_column == "block_type"


def test_packaged_example_loads():
    spec = load_model(MODELS / "task_information.json", task="faces")
    assert spec.tr is None  # null: from the data
    assert spec.events.modulators == ("rt",) and spec.events.block_column is None
    assert spec.confounds.columns[:6] == (
        "trans_x",
        "trans_y",
        "trans_z",
        "rot_x",
        "rot_y",
        "rot_z",
    )
    assert [c.name for c in spec.contrasts] == ["face-house", "face-scrambled", "face-others"]
    assert spec.group.covariates == ("age",)
    names = [c.name for c in expand_contrasts(spec, ["face", "house", "scrambled"])]
    assert names == ["face", "house", "scrambled", "face-house", "face-scrambled", "face-others"]


def test_glm_express_defaults_where_the_file_is_silent(tmp_path):
    spec = _load(tmp_path)
    assert spec.design.to_dict() == {
        "hrf_model": "spm", "drift_model": "cosine", "high_pass": 0.01, "drift_order": 1,
        "fir_delays": [], "min_onset": -24.0, "oversampling": 50,
    }  # fmt: skip
    assert (spec.glm.noise_model, spec.glm.signal_scaling, spec.glm.smoothing_fwhm) == (
        "ar1", 0, 8.0,
    )  # fmt: skip
    assert spec.glm.slice_time_ref is None  # from the data (glm-express used 0)
    assert spec.events.demean_modulators is True
    assert spec.confounds.strategy == ()
    assert spec.subject.run_combination == "equal"  # the file has no say: glmflow's default


# ---------------------------------------------------------------- every key honoured
KEYS = [
    ("tr", 2.5, lambda s: s.tr, 2.5),
    ("tr", None, lambda s: s.tr, None),
    ("excludes", ["sub-01", "02"], lambda s: s.excludes, ("01", "02")),
    ("condition_identifier", "stimulus", lambda s: s.events.condition_column, "stimulus"),
    ("confound_regressors", ["trans_x", "rot_*"],
     lambda s: (s.confounds.columns, s.confounds.optional_columns),
     (("trans_x", "rot_*"), GLMX_CONFOUND_PATTERNS)),
    ("confound_regressors", ["a_comp_cor_00", "a_comp_cor_*"],
     lambda s: (s.confounds.columns, s.confounds.optional_columns),
     (("a_comp_cor_00", "a_comp_cor_*"), ("motion_outlier*", "t_comp_cor_*"))),
    ("modulators", ["rt", "accuracy"], lambda s: s.events.modulators, ("rt", "accuracy")),
    ("block_identifier", None, lambda s: s.events.block_column, None),
    ("block_identifier", "blocks", lambda s: (s.events.block_column,
                                              s.events.missing_block_column), ("blocks", "error")),
    ("design_contrasts", "default", lambda s: (s.contrasts, s.auto_contrasts),
     ((), ("conditions", "pairwise"))),
    ("design_contrasts", {"faces>houses": "face - house"}, lambda s: s.contrasts,
     (ContrastSpec(name="faces>houses", expressions=("face - house",)),)),
    ("design_contrasts", ["face - house", "2*face-house-scrambled"],
     lambda s: [(c.name, c.expressions) for c in s.contrasts],
     [("face-house", ("face - house",)), ("2*face-house-scrambled", ("2*face-house-scrambled",))]),
    ("design_contrasts", {}, lambda s: (s.contrasts, s.auto_contrasts), ((), ("conditions",))),
    ("group_level_regressors", ["age", "sex"], lambda s: s.group.covariates, ("age", "sex")),
]  # fmt: skip


@pytest.mark.parametrize(("key", "value", "get", "expected"), KEYS)
def test_every_key_is_honoured(tmp_path, key, value, get, expected):
    assert get(_load(tmp_path, **{key: value})) == expected


def test_modulators_key_is_optional_and_absent_from_builder(tmp_path):
    assert "modulators" not in _builder_entry()
    assert _load(tmp_path).events.modulators == ()


def test_default_contrasts_expand_like_glm_express(tmp_path):
    spec = _load(tmp_path, design_contrasts="default", block_identifier=None)
    contrasts = expand_contrasts(spec, ["face", "house", "scrambled"])
    assert [(c.name, c.expressions[0]) for c in contrasts] == [
        ("face", "face"), ("house", "house"), ("scrambled", "scrambled"),
        ("face-house", "face-house"), ("face-scrambled", "face-scrambled"),
        ("house-scrambled", "house-scrambled"),
    ]  # fmt: skip


def test_spec_from_task_information_round_trips_as_native(tmp_path):
    spec = _load(tmp_path, modulators=["rt"], design_contrasts={"a": "face - house"})
    native = _write(tmp_path, spec.to_json(), "native.json")
    assert load_model(native) == ModelSpec.from_json(spec.to_json(), source=str(native))
    assert load_model(native).to_json() == spec.to_json()


def test_input_file_is_not_written(tmp_path):
    path = _write(tmp_path, {"faces": _builder_entry()})
    before = path.read_bytes()
    load_task_information(path, "faces")
    assert path.read_bytes() == before


# ---------------------------------------------------------------- bad input
BAD = [
    ({"desing_contrasts": []},
     "Unknown key 'desing_contrasts' in the task's entry; did you mean 'design_contrasts'? "
     "Allowed: tr, excludes, condition_identifier, confound_regressors, modulators, "
     "block_identifier, design_contrasts, group_level_regressors (task 'faces' in "),
    ({"auxilary_regressors": []}, "Unknown key 'auxilary_regressors' in the task's entry; "),
    ({"tr": -2}, "'tr' must be a number > 0 or null; got -2 (task 'faces' in "),
    ({"tr": "2s"}, """'tr' must be a number > 0 or null; got "2s" (task 'faces' in """),
    ({"excludes": "01"}, """'excludes' must be a list of strings; got "01" (task 'faces' in"""),
    ({"excludes": [1]}, "'excludes' must be a non-empty string; got 1 (task 'faces' in "),
    ({"excludes": ["sub_01"]}, """'excludes' must be a BIDS label (letters and digits only); """
                               'got "sub_01"'),
    ({"condition_identifier": ""}, """'condition_identifier' must be a non-empty string; got"""),
    ({"condition_identifier": ["trial_type"]},
     """'condition_identifier' must be a non-empty string; got ["trial_type"] (task 'faces'"""),
    ({"confound_regressors": "trans_x"},
     """'confound_regressors' must be a list of strings; got "trans_x" (task 'faces' in """),
    ({"confound_regressors": ["trans_x", "trans_x"]},
     """'confound_regressors' lists "trans_x" twice; remove the duplicate (task 'faces' in"""),
    ({"modulators": ["trial_type"]}, "'modulators' must be numeric event columns other than "),
    ({"modulators": [""]}, """'modulators' must be a non-empty string; got "" (task 'faces'"""),
    ({"block_identifier": "trial_type"}, "'block_identifier' must be a column other than onset, "
                                         "duration and the condition column, or null"),
    ({"block_identifier": 3}, "'block_identifier' must be a non-empty string; got 3"),
    ({"design_contrasts": "Default"},
     """'design_contrasts' must be "default", a list of formulas or an object {"name": """
     '"formula"}; got "Default" (task \'faces\' in '),
    ({"design_contrasts": 3}, "'design_contrasts' must be \"default\", a list of formulas"),
    ({"design_contrasts": {"a": 1}}, "'design_contrasts.a' must be a non-empty string; got 1"),
    ({"design_contrasts": {"a": ""}}, """'design_contrasts.a' must be a non-empty string; got"""),
    ({"design_contrasts": ["face - house", "face-house"]},
     """Contrast name "face-house" is used twice; give each contrast a unique name (task """),
    ({"design_contrasts": {"x": "face -- * house"}},
     """Contrast "x": Formula "face -- * house" does not parse (invalid syntax at character"""),
    ({"design_contrasts": {"x": "face * house"}}, 'Formula "face * house" multiplies two'),
    ({"design_contrasts": {"x": "face/0"}},  # issue 14: inf weights gave all-NaN maps
     """Contrast "x": Formula "face/0" gives column "face" the non-finite weight inf; contrast """
     "weights must be finite numbers (task 'faces' in "),
    ({"design_contrasts": {" x": "face"}},
     "'design_contrasts. x' (name) must be printable, without surrounding spaces"),
    ({"group_level_regressors": ["age", "age"]},
     """'group_level_regressors' lists "age" twice; remove the duplicate (task 'faces' in """),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "message"), BAD)
def test_bad_task_entry_is_refused_with_one_line(tmp_path, changes, message):
    with pytest.raises(ModelSpecError, match=re.escape(message)) as info:
        _load(tmp_path, **changes)
    assert str(tmp_path / "task_information.json") in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_required_keys(tmp_path):
    entry = _builder_entry()
    del entry["design_contrasts"], entry["condition_identifier"]
    path = _write(tmp_path, {"faces": entry})
    with pytest.raises(
        ModelSpecError,
        match=re.escape(
            "Missing key(s) condition_identifier, design_contrasts (glm-express requires them)"
        ),
    ):
        load_task_information(path, "faces")
    minimal = {k: entry[k] for k in ("confound_regressors",)}
    minimal.update(condition_identifier="trial_type", design_contrasts="default")
    spec = load_task_information(_write(tmp_path, {"faces": minimal}), "faces")
    assert spec.tr is None and spec.events.block_column is None


@pytest.mark.parametrize(
    ("content", "task", "message"),
    [
        ({"faces": _builder_entry()}, "face",
         "Task 'face' is not in {path}: did you mean 'faces'? (tasks in the file: faces)"),
        ({"faces": _builder_entry(), "rest": _builder_entry()}, "motor",
         "Task 'motor' is not in {path}: (tasks in the file: faces, rest)"),
        ({"faces": _builder_entry(), "rest": _builder_entry()}, None,
         "{path} describes several tasks (faces, rest); choose one with --task"),
        ({"faces": []}, "faces", "the task's entry must be a JSON object; got []"),
        ([], None, "{path} must be a JSON object keyed by task name"),
        ({}, None, "{path} must be a JSON object keyed by task name"),
        ('{"faces": {"tr": 1.0,}}', "faces",
         "{path} is not valid JSON: Expecting property name enclosed in double quotes at "
         "line 1, column 22; fix the syntax there"),
        ('{"faces": {"tr": 1.0, "tr": 2.0}}', "faces",
         "Key 'tr' appears twice in one JSON object (JSON readers would silently keep the "
         "last); remove one (in {path})"),
        ('{"faces": {"tr": Infinity}}', "faces", "Infinity is not valid JSON"),
    ],
)  # fmt: skip
def test_bad_file_is_refused(tmp_path, content, task, message):
    path = _write(tmp_path, content)
    with pytest.raises(ModelSpecError, match=re.escape(message.format(path=path))):
        load_model(path, task=task)


def test_bom_is_tolerated(tmp_path):
    path = tmp_path / "task_information.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"faces": _builder_entry()}).encode())
    assert load_task_information(path, "faces").tr == 1.0


def test_specs_feed_parse_events(tmp_path):
    events_module = pytest.importorskip("glmflow.core.events")
    events = pd.DataFrame(
        {
            "onset": [0.0, 10.0, 20.0, 30.0, 40.0, 50.0],
            "duration": [1.0, 1.0, 1.0, 1.0, 8.0, 1.0],
            "trial_type": ["face", "house", "face", "house", "fixation", "face"],
            "block_type": ["high", "high", "low", "low", "n/a", "low"],
            "rt": [0.5, 0.7, 0.6, 0.9, None, 0.4],
        }
    )
    builder = load_model(MODELS / "task_information_builder.json")
    tidy = events_module.parse_events(events, **builder.events.to_dict(), source="ev.tsv")
    assert sorted(tidy["trial_type"].unique()) == [
        "high_face",
        "high_house",
        "low_face",
        "low_house",
    ]
    curated = load_model(MODELS / "task_information.json")
    tidy = events_module.parse_events(events, **curated.events.to_dict(), source="ev.tsv")
    assert sorted(tidy["trial_type"].unique()) == ["face", "face_x_rt", "house", "house_x_rt"]
