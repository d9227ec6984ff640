"""glmflow.core.events: reading real-world events files and parsing them into tidy events."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from nilearn.glm.first_level import make_first_level_design_matrix

from glmflow.core.events import (
    TIDY_COLUMNS,
    parse_events,
    read_events,
    read_parsed_events,
    write_parsed_events,
)
from glmflow.errors import EventsError, ModelSpecError

NAME = "sub-01_task-x_events.tsv"


def _write(tmp_path, text: str | bytes, name: str = NAME):
    path = tmp_path / name
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    return path


def _events(**columns) -> pd.DataFrame:
    """An in-memory events table as read_events returns it (text columns as object)."""
    table = pd.DataFrame({k: pd.Series(v, dtype="object") for k, v in columns.items()})
    for column in ("onset", "duration"):
        table[column] = table[column].astype("float64")
    return table


# --- read_events -------------------------------------------------------------------------


def test_read_events_survives_real_world_formatting(tmp_path):
    text = (
        "\ufeffonset\tduration\ttrial_type\tresponse_time\tnote\r\n"
        "0\t2\t face \t0.5\t\r\n"
        "2.5\t0\t1\tn/a\tfirst run\r\n"
        "5\t1\tscrambled face\t0.75\tn/a\r\n"
        "\r\n"
    )
    path = _write(tmp_path, text)
    before = path.read_bytes()
    events = read_events(path)
    assert path.read_bytes() == before
    assert list(events.columns) == ["onset", "duration", "trial_type", "response_time", "note"]
    np.testing.assert_array_equal(events["onset"], [0.0, 2.5, 5.0])
    np.testing.assert_array_equal(events["duration"], [2.0, 0.0, 1.0])
    assert events["trial_type"].tolist() == ["face", "1", "scrambled face"]
    assert events["response_time"].tolist() == ["0.5", None, "0.75"]
    assert events["note"].tolist() == [None, "first run", None]


def test_read_events_keeps_file_line_numbers_across_blank_lines(tmp_path):
    path = _write(tmp_path, "onset\tduration\ttrial_type\n1\t1\ta\n\n2\t1\tb\n\n\n")
    events = read_events(path)
    assert events["trial_type"].tolist() == ["a", None, "b"]
    with pytest.raises(EventsError, match=re.escape("(line(s) 3); nilearn cannot model")):
        parse_events(events)


def test_read_events_pads_short_rows_and_keeps_nan_onsets(tmp_path):
    path = _write(tmp_path, "onset\tduration\ttrial_type\textra\n1\t1\ta\n n/a \t1\tb\tx\n")
    events = read_events(path)
    assert events["extra"].tolist() == [None, "x"]
    assert np.isnan(events["onset"][1])


def test_read_events_warns_on_negative_onsets(tmp_path):
    path = _write(tmp_path, "onset\tduration\ttrial_type\n-2\t1\ta\n-1\t1\ta\n3\t1\ta\n")
    message = (
        f"{NAME}: 2 event(s) have negative onsets (line(s) 2, 3); they are kept, but nilearn "
        "ignores events that start before the design's min_onset (default -24 s)"
    )
    with pytest.warns(UserWarning, match=re.escape(message)):
        events = read_events(path)
    np.testing.assert_array_equal(events["onset"], [-2.0, -1.0, 3.0])


def test_read_events_condition_column_none_accepts_files_without_trial_type(tmp_path):
    path = _write(tmp_path, "onset\tduration\tstim\n0\t1\tA\n")
    assert read_events(path, condition_column=None)["stim"].tolist() == ["A"]
    assert read_events(path, condition_column="stim")["stim"].tolist() == ["A"]


BAD_FILES = [
    (None, "Events file {path} does not exist"),
    ("", "Events file {path} is empty; it needs a header line"),
    ("\n\n", "Events file {path} is empty"),
    ("onset\tduration\ttrial_type\n", "Events file {path} has a header but no events"),
    (
        "duration\ttrial_type\n1\ta\n",
        "Events file {path} has no 'onset' column (columns: duration, trial_type); "
        "BIDS events need onset and duration in seconds",
    ),
    (
        "onset,duration,trial_type\n1,1,a\n",
        "Events file {path} has no 'onset' column (columns: onset,duration,trial_type); "
        "BIDS events need onset and duration in seconds; events files must be tab-separated",
    ),
    (
        "onset\tduration\tstim_type\n1\t1\ta\n",
        "Events file {path} has no 'trial_type' column (columns: onset, duration, stim_type); "
        "set the model's condition column (glm-express: condition_identifier) to the column "
        "that names the conditions",
    ),
    (
        "onset\tduration\ttrial_type\tx\tx\n1\t1\ta\t1\t2\n",
        "Events file {path} has duplicate column(s) 'x'; column names must be unique",
    ),
    (
        "onset\tduration\ttrial_type\n1\t1\ta\t9\n",
        "Events file {path} has 4 cells on line 2 but 3 columns in the header; "
        "remove the extra tab(s)",
    ),
    (
        "onset\tduration\ttrial_type\n1\t1\ta\nabc\t1\tb\n",
        f"Column 'onset' of {NAME} has a non-numeric value 'abc' on line(s) 3; use a finite "
        "number, or n/a for a missing value",
    ),
    (
        "onset\tduration\ttrial_type\n1\tinf\ta\n",
        f"Column 'duration' of {NAME} has a non-numeric value 'inf' on line(s) 2",
    ),
    (
        "onset\tduration\ttrial_type\n1\t-0.5\ta\n2\t1\ta\n",
        f"Column 'duration' of {NAME} has a negative value (-0.5) on line(s) 2; durations "
        "must be >= 0 seconds (0 for impulse events)",
    ),
    (
        b"onset\tduration\ttrial_type\n1\t1\t\xe9\n",
        "Events file {path} is not UTF-8 text (byte 30); save it as UTF-8",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_read_events_refuses_bad_files(tmp_path, text, message):
    path = tmp_path / NAME if text is None else _write(tmp_path, text)
    with pytest.raises(EventsError, match=re.escape(message.format(path=path))):
        read_events(path)


# --- parse_events ------------------------------------------------------------------------


def test_parse_events_default_is_tidy_and_sorted():
    events = _events(onset=[4.0, 0.0, 2.0], duration=[1.0, 1.0, 0.0], trial_type=["b", "a", " a "])
    tidy = parse_events(events)
    expected = pd.DataFrame(
        {
            "onset": [0.0, 2.0, 4.0],
            "duration": [1.0, 0.0, 1.0],
            "trial_type": ["a", "a", "b"],
            "modulation": [1.0, 1.0, 1.0],
            "role": ["condition"] * 3,
        }
    )
    pd.testing.assert_frame_equal(tidy, expected, check_dtype=False)
    assert tuple(tidy.columns) == TIDY_COLUMNS
    assert [str(t) for t in tidy.dtypes[["onset", "duration", "modulation"]]] == ["float64"] * 3


def test_parse_events_condition_column_does_not_clobber_trial_type_block():
    # The condition is in 'stim'; 'trial_type' holds the block: both must survive.
    events = _events(
        onset=[0.0, 1.0], duration=[1.0, 1.0], stim=["face", "house"], trial_type=["x", "y"]
    )
    tidy = parse_events(events, condition_column="stim", block_column="trial_type")
    assert tidy["trial_type"].tolist() == ["x_face", "y_house"]


def test_parse_events_drop_then_rename_merges_on_request():
    events = _events(
        onset=[0.0, 1.0, 2.0, 3.0],
        duration=[1.0] * 4,
        trial_type=["left", "right", "fixation", "left"],
    )
    tidy = parse_events(
        events,
        drop_conditions=["fixation"],
        rename_conditions={"left": "motor", "right": "motor"},
    )
    assert tidy["trial_type"].tolist() == ["motor", "motor", "motor"]
    np.testing.assert_array_equal(tidy["onset"], [0.0, 1.0, 3.0])


def _glm_express_block_names(events: pd.DataFrame) -> list[str]:
    """glm-express 2.0.3 Subject.generate_design_matrix: drop fixation, then merge blocks."""
    kept = events[events["trial_type"] != "fixation"]
    return [f"{row['block_type']}_{row['trial_type']}" for _, row in kept.iterrows()]


def test_parse_events_missing_conditions_ignore_allows_absent_names():
    events = _events(onset=[0.0, 1.0], duration=[1.0, 1.0], trial_type=["a", "b"])
    tidy = parse_events(
        events,
        drop_conditions=["fixation", "b"],
        rename_conditions={"a": "A", "errors": "E"},
        missing_conditions="ignore",
    )
    assert tidy["trial_type"].tolist() == ["A"]


def test_parse_events_blocks_follow_glm_express():
    events = _events(
        onset=[0.0, 2.0, 4.0, 6.0, 8.0],
        duration=[2.0] * 5,
        trial_type=["trust", "fixation", "distrust", "trust", "trust"],
        block_type=["high", "high", "low", "low", "high"],
    )
    tidy = parse_events(events, drop_conditions=["fixation"], block_column="block_type")
    assert tidy["trial_type"].tolist() == _glm_express_block_names(events)
    assert tidy["trial_type"].tolist() == ["high_trust", "low_distrust", "low_trust", "high_trust"]
    assert set(tidy["role"]) == {"condition"}


def test_parse_events_na_block_keeps_plain_condition():
    events = _events(
        onset=[0.0, 1.0], duration=[1.0, 1.0], trial_type=["cue", "rest"], block_type=["A", None]
    )
    assert parse_events(events, block_column="block_type")["trial_type"].tolist() == [
        "A_cue",
        "rest",
    ]


def test_parse_events_missing_block_column_warns_or_fails():
    events = _events(onset=[0.0], duration=[1.0], trial_type=["a"])
    message = (
        "Events file run1.tsv has no block column 'block_type' (columns: onset, duration, "
        "trial_type)"
    )
    with pytest.warns(UserWarning, match=re.escape(f"{message}; modelling without blocks")):
        tidy = parse_events(events, block_column="block_type", source="run1.tsv")
    assert tidy["trial_type"].tolist() == ["a"]
    with pytest.raises(EventsError, match=re.escape(f"{message}; fix block_identifier/")):
        parse_events(
            events, block_column="block_type", missing_block_column="error", source="run1.tsv"
        )


def test_parse_events_modulators_are_demeaned_within_condition():
    events = _events(
        onset=[0.0, 2.0, 4.0, 6.0, 8.0],
        duration=[1.0] * 5,
        trial_type=["go", "stop", "go", "stop", "go"],
        rt=["0.4", "1", "0.6", "3", "0.8"],
    )
    tidy = parse_events(events, modulators=["rt"])
    go_x_rt = tidy[tidy["trial_type"] == "go_x_rt"]
    stop_x_rt = tidy[tidy["trial_type"] == "stop_x_rt"]
    np.testing.assert_allclose(go_x_rt["modulation"], [-0.2, 0.0, 0.2])
    np.testing.assert_allclose(stop_x_rt["modulation"], [-1.0, 1.0])
    np.testing.assert_array_equal(go_x_rt["onset"], [0.0, 4.0, 8.0])
    assert set(go_x_rt["role"]) == {"modulator"}
    # The unmodulated condition regressors stay, as in SPM.
    assert (tidy["role"] == "condition").sum() == 5
    raw = parse_events(events, modulators=["rt"], demean_modulators=False)
    np.testing.assert_allclose(raw.loc[raw["trial_type"] == "stop_x_rt", "modulation"], [1, 3])


def test_parse_events_modulators_with_blocks_and_nilearn_design():
    events = _events(
        onset=[0.0, 10.0, 20.0, 30.0],
        duration=[2.0] * 4,
        trial_type=["a", "a", "a", "a"],
        block_type=["x", "x", "y", "y"],
        rt=["1", "2", "3", "5"],
    )
    tidy = parse_events(events, modulators=["rt"], block_column="block_type")
    assert sorted(tidy["trial_type"].unique()) == ["x_a", "x_a_x_rt", "y_a", "y_a_x_rt"]
    frame_times = np.arange(30) * 2.0
    design = make_first_level_design_matrix(
        frame_times, tidy.drop(columns="role"), hrf_model="spm", drift_model=None
    )
    assert list(design.columns) == ["x_a", "x_a_x_rt", "y_a", "y_a_x_rt", "constant"]
    # y_a_x_rt is -1 * (response to the event at 20 s) + 1 * (response to the one at 30 s).
    single = make_first_level_design_matrix(
        frame_times,
        pd.DataFrame({"onset": [20.0, 30.0], "duration": [2.0, 2.0], "trial_type": ["p", "q"]}),
        hrf_model="spm",
        drift_model=None,
    )
    np.testing.assert_allclose(design["y_a_x_rt"], single["q"] - single["p"], atol=1e-12)


def test_parse_events_skips_uninformative_modulators_with_a_warning():
    events = _events(
        onset=[0.0, 1.0, 2.0, 3.0, 4.0],
        duration=[1.0] * 5,
        trial_type=["go", "go", "stop", "stop", "miss"],
        rt=["0.5", "0.7", None, None, "0.9"],
    )
    message = (
        "run.tsv: no regressor for miss_x_rt (constant 0.9 across 1 'miss' event(s)); "
        "stop_x_rt (n/a for every 'stop' event): the modulator carries no information there"
    )
    with pytest.warns(UserWarning, match=re.escape(message)):
        tidy = parse_events(events, modulators=["rt"], source="run.tsv")
    assert sorted(tidy["trial_type"].unique()) == ["go", "go_x_rt", "miss", "stop"]


def test_parse_events_incomplete_events_error_or_drop():
    events = _events(
        onset=[0.0, np.nan, 2.0, 3.0],
        duration=[1.0, 1.0, np.nan, 1.0],
        trial_type=["a", "a", None, "b"],
    )
    with pytest.raises(
        EventsError,
        match=re.escape(
            "Events file run.tsv has 2 event(s) with n/a onset/duration/trial_type (line(s) "
            "3, 4); nilearn cannot model them: fill them in, or set the events option "
            "incomplete_events to 'drop'"
        ),
    ):
        parse_events(events, source="run.tsv")
    message = (
        "run.tsv: dropped 2 event(s) with n/a onset/duration/trial_type (line(s) 3, 4) as "
        "incomplete_events='drop' asks"
    )
    with pytest.warns(UserWarning, match=re.escape(message)):
        tidy = parse_events(events, incomplete_events="drop", source="run.tsv")
    assert tidy["trial_type"].tolist() == ["a", "b"]


def test_parse_events_warns_on_duplicates_and_unused_modulation_column():
    events = _events(
        onset=[0.0, 0.0], duration=[1.0, 1.0], trial_type=["a", "a"], modulation=["2", "2"]
    )
    with pytest.warns(UserWarning) as record:
        parse_events(events, source="run.tsv")
    assert [str(w.message) for w in record] == [
        "run.tsv: the 'modulation' column is not used to scale condition regressors; list it "
        "in modulators to model it as a parametric modulator",
        "run.tsv: 1 event(s) repeat another event's condition, onset and duration; nilearn "
        "sums their amplitudes",
    ]


def test_parse_events_accepts_the_model_spec_events_options():
    from glmflow.core.model import EventsSpec

    spec = EventsSpec(drop_conditions=("b",), rename_conditions={"a": "A"}, modulators=("rt",))
    events = _events(
        onset=[0.0, 1.0, 2.0], duration=[1.0] * 3, trial_type=["a", "a", "b"], rt=["1", "3", "1"]
    )
    tidy = parse_events(events, **spec.to_dict(), source="run.tsv")
    assert tidy["trial_type"].tolist() == ["A", "A_x_rt", "A", "A_x_rt"]


def _base():
    return _events(
        onset=[0.0, 1.0, 2.0],
        duration=[1.0] * 3,
        trial_type=["a", "b", "a"],
        rt=["1", "x", "2"],
        gap=["1", None, "2"],
        block=["k", "k", "k"],
    )


BAD_OPTIONS = [
    (
        {"condition_column": "cond"},
        "Events file run.tsv has no column 'cond' (available: onset, duration, trial_type, "
        "rt, gap, block); fix the name in the model file",
    ),
    (
        {"modulators": ["speed"]},
        "Events file run.tsv has no modulator column 'speed' (available: onset, duration, "
        "trial_type, rt, gap, block); fix the name in the model file",
    ),
    (
        {"modulators": ["rt"]},
        "Column 'rt' of run.tsv has a non-numeric value 'x' on line(s) 3; use a finite number",
    ),
    (
        {"modulators": ["gap"], "rename_conditions": {"b": "a"}},
        "Modulator 'gap' is n/a for some 'a' events of run.tsv (line(s) 3); fill in those "
        "values or remove 'gap' from the modulators",
    ),
    (
        {"drop_conditions": ["c", "a"]},
        "Option drop_conditions names unknown condition(s) 'c' (available: a, b) in run.tsv",
    ),
    (
        {"rename_conditions": {"A": "x"}},
        "Option rename_conditions names unknown condition(s) 'A' (available: a, b) in run.tsv",
    ),
    (
        {"drop_conditions": ["a", "b"]},
        "drop_conditions removes every event of run.tsv (dropped: a, b); keep at least one "
        "condition",
    ),
    (
        {"drop_conditions": ["a", "b"], "missing_conditions": "ignore"},
        "drop_conditions removes every event of run.tsv (dropped: a, b)",
    ),
]


@pytest.mark.parametrize(("options", "message"), BAD_OPTIONS)
def test_parse_events_refuses_bad_options(options, message):
    with pytest.raises(EventsError, match=re.escape(message)):
        parse_events(_base(), source="run.tsv", **options)


# Options themselves are the spec's to check (EventsSpec validates at construction, one
# rule in one place); parse_events builds its spec from them and never checks them again.
BAD_SPEC_OPTIONS = [
    ({"condition_column": ""}, "'condition_column' must be a non-empty string; got \"\""),
    (
        {"drop_conditions": ["a"], "rename_conditions": {"a": "x"}},
        "'rename_conditions' renames \"a\", which is dropped",
    ),
    ({"drop_conditions": [""]}, "'drop_conditions' must be a non-empty string; got \"\""),
    ({"rename_conditions": {"a": ""}}, "'rename_conditions' must be a non-empty string; got \"\""),
    ({"demean_modulators": "yes"}, "'demean_modulators' must be true or false; got \"yes\""),
    (
        {"block_column": "trial_type"},
        "'block_column' must be a column other than onset, duration and the condition column, "
        'or null; got "trial_type"',
    ),
    (
        {"missing_block_column": "ignore"},
        '\'missing_block_column\' must be one of "error", "warn"; got "ignore"',
    ),
    (
        {"missing_conditions": "warn"},
        '\'missing_conditions\' must be one of "error", "ignore"; got "warn"',
    ),
    (
        {"incomplete_events": "skip"},
        '\'incomplete_events\' must be one of "error", "drop"; got "skip"',
    ),
]


@pytest.mark.parametrize(("options", "message"), BAD_SPEC_OPTIONS)
def test_parse_events_options_are_checked_by_the_spec(options, message):
    with pytest.raises(ModelSpecError) as caught:
        parse_events(_base(), source="run.tsv", **options)
    assert str(caught.value) == message


def test_parse_events_refuses_condition_named_like_a_modulator():
    events = _events(
        onset=[0.0, 1.0, 2.0, 3.0],
        duration=[1.0] * 4,
        trial_type=["a", "a", "a_x_rt", "a_x_rt"],
        rt=["1", "2", "3", "4"],
    )
    with pytest.raises(
        EventsError,
        match=re.escape(
            "Condition name(s) 'a_x_rt' in run.tsv clash with parametric modulator regressors "
            "of the same name; rename the condition(s)"
        ),
    ):
        parse_events(events, modulators=["rt"], source="run.tsv")


def test_parse_events_converts_text_onsets_of_in_memory_tables():
    events = pd.DataFrame({"onset": ["1", "oops"], "duration": [1, 1], "trial_type": ["a", "b"]})
    with pytest.raises(
        EventsError, match=re.escape("Column 'onset' of mem has a non-numeric value 'oops'")
    ):
        parse_events(events, source="mem")


# --- tidy events files -------------------------------------------------------------------


def test_parsed_events_round_trip_keeps_text_condition_names(tmp_path):
    events = _events(
        onset=[0.0, 1.5, 3.0],
        duration=[0.0, 1.0, 2.0],
        trial_type=["1", "NA", "null"],
        rt=["0.1", "0.2", "0.3"],
    )
    tidy = parse_events(events)
    path = write_parsed_events(tidy, tmp_path / "events.tsv")
    back = read_parsed_events(path)
    pd.testing.assert_frame_equal(back, tidy, check_dtype=False)
    assert back["trial_type"].tolist() == ["1", "NA", "null"]


def test_read_parsed_events_refuses_other_tables(tmp_path):
    path = _write(tmp_path, "onset\tduration\ttrial_type\n1\t1\ta\n", name="events.tsv")
    with pytest.raises(
        EventsError,
        match=re.escape(
            f"Parsed events file {path} has columns onset, duration, trial_type; expected "
            "onset, duration, trial_type, modulation, role"
        ),
    ):
        read_parsed_events(path)


def test_events_after_the_end_of_the_scan_are_left_out_with_their_lines():
    events = _events(
        onset=[0.0, 10.0, 200.0, 5000.0, 20.0],
        duration=[1.0] * 5,
        trial_type=["a", "b", "late", "a", "a"],
    )
    with pytest.warns(UserWarning) as caught:
        tidy = parse_events(events, source="run.tsv", scan_end=200.0)
    assert [str(w.message) for w in caught] == [
        "run.tsv: 2 event(s) start at or after the end of the scan (200 s = volumes x TR) "
        "on line(s) 4, 5; they are left out"
    ]
    # 'late' has no event left: the contrasts' missing-condition rule takes it from here
    assert tidy["trial_type"].tolist() == ["a", "b", "a"]
    assert tidy["onset"].tolist() == [0.0, 10.0, 20.0]
    with pytest.raises(EventsError) as error:
        parse_events(events, source="run.tsv", scan_end=0.0)
    assert str(error.value) == (
        "Every event of run.tsv starts at or after the end of the scan (0 s = volumes x TR); "
        "check that the onsets are in seconds and that the events file belongs to this run"
    )
