"""Design matrices: equal to nilearn's, roles, timing physics, files, bad inputs, interface."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn.glm.first_level import FirstLevelModel, make_first_level_design_matrix
from nipype.pipeline import engine as pe
from numpy.testing import assert_allclose

from glmflow.core.design import (
    HRF_MODELS,
    ROLES,
    build_design_matrix,
    read_design,
    write_design,
)
from glmflow.core.model import DesignSpec
from glmflow.errors import ConfoundsError, DesignError, EventsError, ModelSpecError
from glmflow.interfaces.design import BuildDesignMatrix

TR = 2.0
N_VOLUMES = 40
SOURCE = "sub-01_task-faces_events.tsv"


def _events() -> pd.DataFrame:
    """Two conditions and a parametric modulator of 'face' (as parse_events writes them)."""
    return pd.DataFrame(
        {
            "onset": [4.0, 24.0, 44.0, 64.0, 4.0, 44.0],
            "duration": [2.0] * 6,
            "trial_type": ["face", "house", "face", "house", "face_x_rt", "face_x_rt"],
            "modulation": [1.0, 1.0, 1.0, 1.0, 0.5, -0.5],
            "role": ["condition"] * 4 + ["modulator"] * 2,
        }
    )


def _confounds() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(rng.standard_normal((N_VOLUMES, 2)), columns=["trans_x", "rot_z"])


SPEC_FIELDS = {f.name for f in dataclasses.fields(DesignSpec)}


def _spec(**options) -> DesignSpec:
    """DesignSpec from keyword options; drift_model "none" (the tables' key) is None."""
    if options.get("drift_model") == "none":
        options["drift_model"] = None
    return DesignSpec(**options)


def _build(events=None, **kwargs):
    spec = _spec(**{k: kwargs.pop(k) for k in list(kwargs) if k in SPEC_FIELDS})
    options = {"n_volumes": N_VOLUMES, "tr": TR, "confounds": _confounds(), "source": SOURCE}
    events = _events() if events is None else events
    return build_design_matrix(events, design=spec, **(options | kwargs))


# Event regressor suffixes nilearn appends for each HRF model, and the role of each.
HRF_SUFFIXES = {
    "spm": [("", None)],
    "spm + derivative": [("", None), ("_derivative", "derivative")],
    "spm + derivative + dispersion": [
        ("", None),
        ("_derivative", "derivative"),
        ("_dispersion", "derivative"),
    ],
    "fir": [("_delay_0", "fir"), ("_delay_1", "fir"), ("_delay_3", "fir")],
}
HRF_SUFFIXES |= {m.replace("spm", "glover"): s for m, s in HRF_SUFFIXES.items() if "spm" in m}
# high_pass 0.02 Hz over 40 volumes of 2 s gives floor(2 * 40 * 2 * 0.02) = 3 cosines.
DRIFT_COLUMNS = {
    "cosine": ["drift_1", "drift_2", "drift_3"],
    "polynomial": ["drift_1", "drift_2"],
    "none": [],
}


def test_tables_cover_every_hrf_model():
    assert sorted(HRF_SUFFIXES) == sorted(HRF_MODELS)


def _expected_roles(hrf_model: str, event_roles: dict[str, str], drift_model: str) -> dict:
    expected = {}
    for trial_type, role in event_roles.items():
        for suffix, suffix_role in HRF_SUFFIXES[hrf_model]:
            expected[trial_type + suffix] = suffix_role or role
    expected |= {"trans_x": "confound", "rot_z": "confound"}
    return expected | {c: "drift" for c in DRIFT_COLUMNS[drift_model]} | {"constant": "constant"}


@pytest.mark.parametrize("drift_model", sorted(DRIFT_COLUMNS))
@pytest.mark.parametrize("hrf_model", HRF_MODELS)
def test_design_equals_nilearn_and_roles(hrf_model, drift_model):
    # Without the modulator: nilearn logs "modulation column found" by inspecting the whole
    # call stack, ~0.3 s per call under pytest; modulators are covered below.
    events = _events()[lambda e: e.role == "condition"]
    fir_delays = (0, 1, 3) if hrf_model == "fir" else ()
    options = {"hrf_model": hrf_model, "high_pass": 0.02, "drift_order": 2}
    design, roles = _build(events, drift_model=drift_model, fir_delays=fir_delays, **options)

    expected = _expected_roles(hrf_model, {"face": "condition", "house": "condition"}, drift_model)
    assert roles == expected
    assert list(design.columns) == list(expected)
    assert set(roles.values()) <= set(ROLES)
    reference = make_first_level_design_matrix(
        np.arange(N_VOLUMES) * TR,
        events.drop(columns=["role", "modulation"]),
        drift_model=None if drift_model == "none" else drift_model,
        fir_delays=list(fir_delays) or None,
        add_regs=_confounds(),
        **options,
    )
    assert_allclose(design.to_numpy(), reference[design.columns].to_numpy(), rtol=0, atol=1e-12)
    assert_allclose(design.index, np.arange(N_VOLUMES) * TR, rtol=0, atol=1e-12)


@pytest.mark.parametrize("hrf_model", ["spm + derivative + dispersion", "fir"])
def test_modulator_columns_equal_nilearn_and_roles(hrf_model):
    fir_delays = (0, 1, 3) if hrf_model == "fir" else ()
    design, roles = _build(hrf_model=hrf_model, fir_delays=fir_delays, high_pass=0.02)
    event_roles = {"face": "condition", "face_x_rt": "modulator", "house": "condition"}
    assert roles == _expected_roles(hrf_model, event_roles, "cosine")
    reference = make_first_level_design_matrix(
        np.arange(N_VOLUMES) * TR,
        _events().drop(columns="role"),
        hrf_model=hrf_model,
        high_pass=0.02,
        fir_delays=list(fir_delays) or None,
        add_regs=_confounds(),
    )
    assert list(design.columns) == list(reference.columns)
    assert_allclose(design.to_numpy(), reference.to_numpy(), rtol=0, atol=1e-12)


@pytest.mark.filterwarnings("ignore:.*a mask was given at masker creation:RuntimeWarning")
def test_design_is_bit_identical_to_first_level_model_design():
    events = _events()[lambda e: e.role == "condition"].drop(columns=["role", "modulation"])
    img = nib.Nifti1Image(np.random.default_rng(1).random((7, 8, 9, N_VOLUMES)), np.eye(4))
    mask = nib.Nifti1Image(np.ones((7, 8, 9), dtype=np.uint8), np.eye(4))
    model = FirstLevelModel(t_r=TR, slice_time_ref=0.5, hrf_model="spm", mask_img=mask)
    reference = model.fit(img, events=events).design_matrices_[0]

    design, _ = build_design_matrix(
        events, design=DesignSpec(hrf_model="spm"), n_volumes=N_VOLUMES, tr=TR, slice_time_ref=0.5
    )
    pd.testing.assert_frame_equal(design, reference, check_names=False, check_exact=True)


def test_fir_delay_k_is_delay_0_shifted_by_k_volumes():
    design, _ = _build(hrf_model="fir", fir_delays=(0, 1, 3))
    face = design.filter(regex=r"^face_delay_").to_numpy()
    assert face[:, 0].max() > 0.5  # a 2 s event sampled every 2 s fills one volume
    assert_allclose(face[1:, 1], face[:-1, 0], atol=1e-12)
    assert_allclose(face[3:, 2], face[:-3, 0], atol=1e-12)


def test_modulator_is_the_condition_response_weighted_by_its_modulation():
    design, _ = _build()
    # 'face' events at 4 s and 44 s, modulation +0.5 and -0.5; the SPM HRF has decayed
    # below 1e-3 of its peak 36 s after onset, so each half of the run holds one response.
    first, second = slice(0, 20), slice(22, 40)
    assert_allclose(design["face_x_rt"][first], 0.5 * design["face"][first], atol=1e-3)
    assert_allclose(design["face_x_rt"][second], -0.5 * design["face"][second], atol=1e-3)
    assert design["face"].max() > 0.3


def test_slice_time_ref_samples_the_response_later():
    event = pd.DataFrame({"onset": [10.0], "duration": [1.0], "trial_type": ["probe"]})
    options = {"n_volumes": 30, "tr": 1.0, "design": DesignSpec(drift_model=None)}
    early, _ = build_design_matrix(event, slice_time_ref=0.0, **options)
    late, _ = build_design_matrix(event, slice_time_ref=0.5, **options)
    shifted, _ = build_design_matrix(event.assign(onset=9.5), slice_time_ref=0.0, **options)
    assert_allclose(late.index, np.arange(30) + 0.5, rtol=0, atol=1e-12)
    early, late, shifted = early["probe"], late["probe"], shifted["probe"]
    # The response to a 1 s event peaks ~5.8 s after onset: at frame 16 (16 s) on the
    # grid sampled at volume starts, at frame 15 (15.5 s) on the grid sampled mid-volume.
    assert (early.argmax(), late.argmax()) == (16, 15)
    assert (late.to_numpy()[11:15] > early.to_numpy()[11:15] + 0.004).all()
    # Sampling half a TR later is the same as the event happening half a TR earlier (up
    # to nilearn's oversampled-grid rounding, < 1 % of the peak).
    assert_allclose(late.to_numpy(), shifted.to_numpy(), rtol=0, atol=0.01 * late.max())


def test_design_without_events_keeps_confounds_drifts_and_constant():
    design, roles = build_design_matrix(
        None, _confounds(), DesignSpec(drift_model=None), n_volumes=N_VOLUMES, tr=TR
    )
    assert roles == {"trans_x": "confound", "rot_z": "confound", "constant": "constant"}
    assert_allclose(design["trans_x"], _confounds()["trans_x"], rtol=0, atol=0)


def test_empty_confounds_file_means_no_confounds(tmp_path):
    path = tmp_path / "confounds.tsv"
    path.write_text("\n")
    _, roles = build_design_matrix(None, n_volumes=N_VOLUMES, tr=TR, confounds=path)
    assert roles == {"drift_1": "drift", "constant": "constant"}


def test_block_role_and_names_like_na_survive_a_tsv(tmp_path):
    events = pd.DataFrame(
        {
            "onset": [4.0, 30.0],
            "duration": [20.0, 20.0],
            "trial_type": ["NA", "run_block"],
            "role": ["condition", "block"],
        }
    )
    path = tmp_path / "events.tsv"
    events.to_csv(path, sep="\t", index=False)
    _, roles = build_design_matrix(path, n_volumes=N_VOLUMES, tr=TR)
    assert roles == {
        "NA": "condition",
        "run_block": "block",
        "drift_1": "drift",
        "constant": "constant",
    }


def test_write_then_read_is_exact_and_plots(tmp_path):
    design, roles = _build(hrf_model="spm + derivative")
    # Values that only survive shortest-round-trip formatting (17 significant digits).
    design["trans_x"] = np.random.default_rng(2).standard_normal(N_VOLUMES) * 1e-7 + 1 / 3
    design_tsv, sidecar, plot = write_design(design, roles, tmp_path / "out")
    assert design_tsv.read_text().splitlines()[0].split("\t")[:3] == [
        "face",
        "face_derivative",
        "face_x_rt",
    ]
    read, read_roles = read_design(design_tsv, sidecar)
    pd.testing.assert_frame_equal(read, design, check_exact=True)
    content = json.loads(sidecar.read_text())
    assert read_roles == roles == content["Roles"]
    assert content["FrameTimes"] == (np.arange(N_VOLUMES) * TR).tolist()
    assert plot.name == "design.svg" and plot.read_text().lstrip().startswith("<?xml")
    # What a user loads with pandas alone is the design, column for column
    plain = pd.read_csv(design_tsv, sep="\t")
    pd.testing.assert_frame_equal(plain, design.reset_index(drop=True), check_exact=True)


def test_design_plot_is_byte_reproducible(tmp_path):
    # matplotlib writes a date and random element ids into an SVG unless told not to: the
    # same design must give the same bytes, so a rerun's file does not change
    design, roles = _build()
    first = write_design(design, roles, tmp_path / "a")[2].read_bytes()
    second = write_design(design, roles, tmp_path / "b")[2].read_bytes()
    assert first == second and b"<dc:date>" not in first


def test_write_without_plot(tmp_path):
    design, roles = _build()
    assert write_design(design, roles, tmp_path, plot=False)[2] is None
    assert not (tmp_path / "design.svg").exists()


def test_read_design_refuses_frame_times_columns_or_mismatched_files(tmp_path):
    design, roles = _build()
    design_tsv, sidecar, _ = write_design(design, roles, tmp_path, plot=False)
    old = tmp_path / "old.tsv"
    design.to_csv(old, sep="\t", index=True)  # frame times as a column: a regressor to nilearn
    with pytest.raises(
        DesignError,
        match=rf"^Design file {re.escape(str(old))} has a 'frame_times' column, which a fit "
        "would take for a regressor; frame times belong in its sidecar: write it with "
        "write_design$",
    ):
        read_design(old)
    content = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**content, "FrameTimes": [0.0, 2.0]}))
    with pytest.raises(
        DesignError, match=r"^.*design\.json has 2 FrameTimes for the 40 rows of .*design\.tsv;"
    ):
        read_design(design_tsv, sidecar)
    sidecar.write_text(json.dumps({**content, "Roles": {"face": "condition"}}))
    with pytest.raises(DesignError, match=r"^Columns of .*design\.json \(face\) do not match"):
        read_design(design_tsv, sidecar)
    sidecar.write_text(json.dumps({"Roles": roles}))
    with pytest.raises(
        DesignError,
        match=r"^Design sidecar .*design\.json must be JSON with 'FrameTimes' \(a list\) and "
        r"'Roles' \(an object\) \(KeyError: 'FrameTimes'\); write it with write_design$",
    ):
        read_design(design_tsv, sidecar)


def _replace(frame: pd.DataFrame, row: int, column: str, value) -> pd.DataFrame:
    frame = frame.astype({column: object})
    frame.loc[row, column] = value
    return frame


EVENTS = _events()
CONFOUNDS = _confounds()


def P(name: str) -> str:  # noqa: N802 - reads like the message prefix it stands for
    return f"Design parameter '{name}' for {SOURCE} "


BAD_INPUTS = [
    ({"tr": 0}, DesignError, P("tr") + "must be a positive repetition time in seconds; got 0"),
    (
        {"tr": -2.0},
        DesignError,
        P("tr") + "must be a positive repetition time in seconds; got -2.0",
    ),
    (
        {"slice_time_ref": None},
        DesignError,
        P("slice_time_ref") + "must be a fraction of the TR in [0, 1]; got None",
    ),
    ({"n_volumes": 1}, DesignError, P("n_volumes") + "must be at least 2; got 1"),
    (
        {"n_volumes": 2.5},
        DesignError,
        P("n_volumes") + "must be an integer number of volumes; got 2.5",
    ),
    (
        {"slice_time_ref": 1.5},
        DesignError,
        P("slice_time_ref") + "must be a fraction of the TR in [0, 1]; got 1.5",
    ),
    (
        {"high_pass": 0.3},
        DesignError,
        P("high_pass")
        + "must be in [0, 0.25) Hz, below the Nyquist frequency of TR 2 s; got 0.3: "
        "give a cut-off in Hz, e.g. 1/128 s = 0.0078 Hz",
    ),
    (
        {"events": EVENTS.drop(columns="trial_type")},
        EventsError,
        f"Events table in {SOURCE} has no column trial_type (columns: onset, duration, "
        "modulation, role); pass the output of parse_events",
    ),
    (
        {"events": EVENTS.iloc[:0]},
        EventsError,
        f"Events table in {SOURCE} has no rows; pass events=None for a design without events",
    ),
    (
        {"events": _replace(EVENTS, 2, "onset", "abc")},
        EventsError,
        f"Events column 'onset' in {SOURCE} has non-numeric value 'abc' in row 3; "
        "every event needs a number",
    ),
    (
        {"events": _replace(EVENTS, 0, "modulation", np.nan)},
        EventsError,
        f"Events column 'modulation' in {SOURCE} has non-numeric value n/a in row 1; "
        "every event needs a number",
    ),
    (
        {"events": _replace(EVENTS, 1, "duration", -1.0)},
        EventsError,
        f"Events column 'duration' in {SOURCE} has negative value -1 in row 2; "
        "durations are seconds >= 0",
    ),
    (
        {"events": _replace(EVENTS, 1, "role", "nuisance")},
        EventsError,
        f"Events column 'role' in {SOURCE} has unknown value 'nuisance' "
        "(allowed: condition, modulator, block)",
    ),
    (
        {"events": _replace(EVENTS, 1, "role", "modulator")},
        EventsError,
        f"Trial type 'house' in {SOURCE} has several roles (condition, modulator); "
        "give it one role",
    ),
    (
        {"events": EVENTS.assign(onset=EVENTS.onset * 1000)},
        EventsError,
        f"All 6 events in {SOURCE} start after the end of the run (80 s = 40 volumes x TR 2 s; "
        "first onset 4000 s): check the TR and the number of volumes, and that onsets are in "
        "seconds from the first volume",
    ),
    (
        {"events": EVENTS.assign(onset=EVENTS.onset - 200)},
        DesignError,
        f"Regressor 'face' (condition) in {SOURCE} is all zero: its 2 events start between "
        "-196 and -156 s, outside the modelled window -24 to 80 s; check the onsets, TR and "
        "number of volumes, or drop it from the model",
    ),
    (
        {"events": _replace(_replace(EVENTS, 4, "modulation", 0.0), 5, "modulation", 0.0)},
        DesignError,
        f"Regressor 'face_x_rt' (modulator) in {SOURCE} is all zero: its modulation is zero "
        "for all 2 events (a modulator constant within its condition is zero once demeaned); "
        "drop it from the model",
    ),
    (
        {
            "events": _replace(EVENTS, 1, "trial_type", "face_derivative"),
            "hrf_model": "spm + derivative",
        },
        DesignError,
        f"Trial types 'face' and 'face_derivative' in {SOURCE} both produce the regressor "
        "'face_derivative'; rename one of them",
    ),
    (
        {"confounds": CONFOUNDS.iloc[:39]},
        ConfoundsError,
        f"Confounds table in {SOURCE} has 39 rows but the run has 40 volumes; give one row per "
        "volume (the confounds of this run)",
    ),
    (
        {"confounds": _replace(CONFOUNDS, 5, "rot_z", np.nan)},
        ConfoundsError,
        f"Confound column 'rot_z' in {SOURCE} has non-numeric value n/a in row 6; fill or drop "
        "it when selecting confounds",
    ),
    (
        {"confounds": CONFOUNDS.set_axis(["trans_x", "trans_x"], axis=1)},
        ConfoundsError,
        f"Confounds table in {SOURCE} has the column 'trans_x' twice; keep one",
    ),
    (
        {"confounds": CONFOUNDS.assign(constant=1.0)},
        DesignError,
        f"Confound column 'constant' in {SOURCE} has a name reserved for drift, constant and "
        "frame-time columns; rename it or leave it out",
    ),
    (
        {"confounds": CONFOUNDS.assign(house=1.0)},
        DesignError,
        f"Confound column 'house' in {SOURCE} has the name of an event regressor; rename the "
        "trial type or leave the confound out",
    ),
    (
        {"confounds": CONFOUNDS.assign(spike=0.0)},
        ConfoundsError,
        f"Confound column 'spike' in {SOURCE} is all zero; leave it out of the confound selection",
    ),
    (
        {"confounds": CONFOUNDS.assign(trans_x_2=2 * CONFOUNDS.trans_x)},
        DesignError,
        f"Design matrix in {SOURCE} is rank deficient (rank 7 for 8 columns): columns trans_x, "
        "trans_x_2 are linearly dependent; drop one of the confounds involved",
    ),
    (
        {"confounds": CONFOUNDS.assign(csf=3.0)},
        DesignError,
        f"Design matrix in {SOURCE} is rank deficient (rank 7 for 8 columns): columns csf, "
        "constant are linearly dependent; drop one of the confounds involved",
    ),
    (
        {
            "events": pd.concat(
                [EVENTS, EVENTS[EVENTS.trial_type == "face"].assign(trial_type="faces")]
            )
        },
        DesignError,
        f"Design matrix in {SOURCE} is rank deficient (rank 7 for 8 columns): columns face, "
        "faces are linearly dependent; check the events (conditions with identical timing?) "
        "and the drift model",
    ),
    (
        {"high_pass": 0.24},
        DesignError,
        f"Design in {SOURCE} has 44 columns (2 condition, 1 modulator, 2 confound, 38 drift, "
        "1 constant) "
        "for 40 volumes: a GLM needs more volumes than columns; lower high_pass, or use fewer "
        "confounds or FIR delays",
    ),
]


@pytest.mark.parametrize(("change", "error", "message"), BAD_INPUTS)
def test_bad_inputs_raise_one_line_errors(change, error, message):
    change = dict(change)
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        _build(events=change.pop("events", None), **change)


# Options that do not depend on the data are refused once, when the DesignSpec is made
# (before, build_design_matrix checked them again with its own wording).
SPEC_BAD_INPUTS = [
    (
        {"hrf_model": "canonical"},
        '\'hrf_model\' must be one of "spm", "spm + derivative", "spm + derivative + '
        'dispersion", "glover", "glover + derivative", "glover + derivative + dispersion", '
        '"fir"; got "canonical"',
    ),
    (
        {"drift_model": "linear"},
        '\'drift_model\' must be one of "cosine", "polynomial"; got "linear"',
    ),
    (
        {"drift_model": "polynomial", "drift_order": -1},
        "'drift_order' must be an integer >= 0; got -1",
    ),
    ({"oversampling": 0}, "'oversampling' must be an integer >= 1; got 0"),
    (
        {"fir_delays": [0, 1]},
        '\'fir_delays\' is only used with hrf_model "fir", not "spm"; got [0, 1]',
    ),
    ({"hrf_model": "fir"}, "'fir_delays' must list the delays (in scans) for hrf_model \"fir\""),
    (
        {"hrf_model": "fir", "fir_delays": [0, 0]},
        "'fir_delays' must be distinct integers; got [0, 0]",
    ),
]


@pytest.mark.parametrize(("change", "message"), SPEC_BAD_INPUTS)
def test_bad_design_options_are_refused_by_the_spec(change, message):
    with pytest.raises(ModelSpecError, match=f"^{re.escape(message)}$"):
        _build(**change)


@pytest.mark.parametrize(
    ("house_onsets", "message"),
    [
        ([20.0, 85.0], r"^1 of 6 events \(house\) in .* start after the end of the run \(80 s\)"),
        (
            [-30.0, 20.0],
            r"^1 of 6 events \(house\) in .* end before -24 s \(min_onset -24 s\); lower",
        ),
    ],
)
def test_events_outside_the_run_warn_with_count(house_onsets, message):
    events = EVENTS.copy()
    events.loc[events.trial_type == "house", "onset"] = house_onsets
    with pytest.warns(UserWarning, match=message):
        design, _ = _build(events=events)
    if house_onsets[0] < 0:
        # Left out, not snapped to a pulse at -24 s as nilearn would: the response to the
        # 20 s event alone starts after 20 s.
        assert design["house"].to_numpy()[:10].max() == 0


def test_interface_runs_as_a_node(tmp_path):
    events_file, confounds_file = tmp_path / "events.tsv", tmp_path / "confounds.tsv"
    EVENTS.to_csv(events_file, sep="\t", index=False)
    CONFOUNDS.to_csv(confounds_file, sep="\t", index=False)
    node = pe.Node(
        BuildDesignMatrix(
            events_file=str(events_file),
            confounds_file=str(confounds_file),
            n_volumes=N_VOLUMES,
            tr=TR,
            hrf_model="glover + derivative",
            drift_model=None,
            fir_delays=(),  # what DesignSpec passes; nipype turns an empty tuple into Undefined
        ),
        name="build_design",
        base_dir=tmp_path,
    )
    outputs = node.run().outputs
    design, roles = read_design(outputs.design_file, outputs.sidecar_file)
    expected, expected_roles = build_design_matrix(
        EVENTS,
        CONFOUNDS,
        DesignSpec(hrf_model="glover + derivative", drift_model=None),
        n_volumes=N_VOLUMES,
        tr=TR,
    )
    pd.testing.assert_frame_equal(design, expected, check_exact=True)
    assert roles == expected_roles
    assert outputs.plot_file.endswith("design.svg")


def test_interface_confounds_only_and_error_names_the_file(tmp_path):
    confounds_file = tmp_path / "confounds.tsv"
    CONFOUNDS.iloc[:30].to_csv(confounds_file, sep="\t", index=False)
    interface = BuildDesignMatrix(
        confounds_file=str(confounds_file), n_volumes=N_VOLUMES, tr=TR, plot=False
    )
    message = f"Confounds table in {confounds_file} has 30 rows but the run has 40 volumes"
    with pytest.raises(ConfoundsError, match=f"^{re.escape(message)}"):
        interface.run(cwd=str(tmp_path))


def test_run_level_workflow_passes_the_design_files_on():
    """Every design output of the run's build_design node reaches its outputnode."""
    from glmflow.core.model import ContrastSpec, ModelSpec
    from glmflow.workflows.run_level import init_run_level_wf

    contrasts = (ContrastSpec(name="face", expressions=("face",)),)
    wf = init_run_level_wf(spec=ModelSpec(name="m", task="faces"), contrasts=contrasts, mem_gb=1.0)
    # a workflow's inputs are the node inputs left unconnected
    unconnected = set(wf.inputs.outputnode.get())
    assert not {"design_file", "sidecar_file", "plot_file", "design_files"} & unconnected
    assert unconnected >= {"residuals_file"}  # (connected only when minimize_memory is off)


def test_a_remembered_design_is_recalled_with_its_warnings_until_a_file_changes(tmp_path):
    from glmflow.core.design.run import design_from_files
    from glmflow.core.model import load_model
    from glmflow.data import make_synthetic_dataset

    bids = make_synthetic_dataset(tmp_path / "bids", n_subjects=1, n_runs=1, n_volumes=40)
    spec = load_model(Path(__file__).parents[1] / "glmflow/data/models/task_information.json")
    func = bids / "derivatives/fmriprep/sub-01/func"
    events = next((bids / "sub-01/func").glob("*_events.tsv"))
    confounds = next(func.glob("*_desc-confounds_timeseries.tsv"))
    options = dict(events=spec.events, confounds=spec.confounds, design=spec.design,
                   n_volumes=40, tr=2.0, memo_dir=tmp_path / "memo")  # fmt: skip
    with pytest.warns(UserWarning) as first:
        built = design_from_files(events, confounds, **options)
    with pytest.warns(UserWarning) as again:
        recalled = design_from_files(events, confounds, **options)
    assert [str(w.message) for w in again] == [str(w.message) for w in first] != []
    pd.testing.assert_frame_equal(recalled.design, built.design)
    pd.testing.assert_frame_equal(recalled.events, built.events)
    assert len(list((tmp_path / "memo" / "designs").glob("*.pkl"))) == 1
    without = design_from_files(events, confounds, **{**options, "memo_dir": None})
    pd.testing.assert_frame_equal(without.design, built.design)
    # the events rewritten (every onset 2 s later): a new key, a new design
    table = pd.read_csv(events, sep="\t")
    table["onset"] += 2.0
    table.to_csv(events, sep="\t", index=False)
    moved = design_from_files(events, confounds, **options)
    assert len(list((tmp_path / "memo" / "designs").glob("*.pkl"))) == 2
    assert not moved.design.equals(built.design)
