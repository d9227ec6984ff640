"""The model spec: defaults, validation messages, JSON round trip, contrasts, TR check."""

from __future__ import annotations

import copy
import inspect
import json
import os
import pickle
import re
from dataclasses import fields
from pathlib import Path

import pytest

import glmflow
from glmflow.core.model import (
    ConfoundsSpec,
    ContrastSpec,
    DesignSpec,
    EventsSpec,
    GlmSpec,
    GroupSpec,
    InferenceSpec,
    ModelSpec,
    SubjectSpec,
    check_formula,
    check_repetition_time,
    condition_contrasts,
    default_contrasts,
    expand_contrasts,
    load_model,
)
from glmflow.errors import DatasetError, ModelSpecError

MODELS = Path(glmflow.__file__).parent / "data" / "models"
SUBSPECS = [EventsSpec, ConfoundsSpec, DesignSpec, GlmSpec, SubjectSpec, GroupSpec]


def _full_spec() -> ModelSpec:
    return ModelSpec(
        name="faces",
        task="faces",
        source="models/faces.json",
        tr=2.0,
        excludes=("sub-03", "07"),
        events=EventsSpec(
            condition_column="cond",
            drop_conditions=("fixation",),
            rename_conditions={"scr": "scrambled"},
            modulators=("rt",),
            demean_modulators=False,
            block_column="block_type",
            missing_block_column="warn",
        ),
        confounds=ConfoundsSpec(
            columns=("trans_*", "csf"),
            strategy=("motion", "compcor", "high_pass", "scrub"),
            motion="basic",
            n_compcor=5,
            fd_threshold=0.3,
            scrub=0,
        ),
        design=DesignSpec(hrf_model="fir", drift_model=None, fir_delays=(0, 1, 2)),
        glm=GlmSpec(noise_model="ols", signal_scaling=None, smoothing_fwhm=5, slice_time_ref=0.5),
        contrasts=(
            ContrastSpec(name="face-house", expressions=("face - house",)),
            ContrastSpec(name="all", stat_type="F", weights=({"face": 1}, {"house": 1.5})),
        ),
        auto_contrasts=("pairwise", "conditions"),
        subject=SubjectSpec(run_combination="precision"),
        group=GroupSpec(
            design="two-sample",
            group_column="group",
            covariates=("age", "sex"),
            demean_covariates=False,
            first_level_contrasts=("face-house",),
            contrasts=(
                ContrastSpec(name="patients", expressions=("group_patient - group_control",)),
                ContrastSpec(name="age", weights=({"age": -1},)),
            ),
            smoothing_fwhm=4,
            target_affine=(3, 0, 0, 0, 3, 0, 0, 0, 3),
            target_shape=(20, 24, 20),
            minimize_memory=False,
            inference=InferenceSpec(
                method="fdr",
                alpha=0.01,
                two_sided=False,
                cluster_threshold=5,
            ),
        ),
    )


def _permutation_group() -> GroupSpec:
    return GroupSpec(
        contrasts=(ContrastSpec(name="mean", expressions=("intercept",)),),
        inference=InferenceSpec(
            method="permutation",
            alpha=0.01,
            two_sided=False,
            n_perm=500,
            seed=3,
            permutation_stat="size",
            cluster_forming_p=0.001,
            cluster_threshold=5,
        ),
    )


# ---------------------------------------------------------------- defaults and round trips
def test_defaults_are_the_documented_ones():
    spec = ModelSpec(name="m", task="faces")
    assert spec.tr is None and spec.excludes == () and spec.contrasts == ()
    assert spec.events.to_dict() == {
        "condition_column": "trial_type", "drop_conditions": [], "rename_conditions": {},
        "modulators": [], "demean_modulators": True, "block_column": None,
        "missing_block_column": "error", "incomplete_events": "error",
        "missing_conditions": "error",
    }  # fmt: skip
    assert spec.confounds.to_dict() == {
        "columns": [], "optional_columns": [], "strategy": [], "motion": "full",
        "wm_csf": "basic",
        "global_signal": "basic", "compcor": "anat_combined", "n_compcor": "all",
        "fd_threshold": 0.5, "std_dvars_threshold": 1.5, "scrub": 5, "demean": True,
    }  # fmt: skip
    assert spec.design.to_dict() == {
        "hrf_model": "spm", "drift_model": "cosine", "high_pass": 0.01, "drift_order": 1,
        "fir_delays": [], "min_onset": -24.0, "oversampling": 50,
    }  # fmt: skip
    assert spec.glm.to_dict() == {
        "noise_model": "ar1", "signal_scaling": 0, "smoothing_fwhm": None,
        "slice_time_ref": None, "minimize_memory": True,
    }  # fmt: skip
    assert spec.subject.to_dict() == {"run_combination": "equal"}  # nilearn's multi-run fit
    assert spec.group.to_dict() == {
        "design": "one-sample", "group_column": None, "conditions": [], "covariates": [],
        "demean_covariates": True, "first_level_contrasts": [], "contrasts": [],
        "method": "ols", "smoothing_fwhm": None, "target_affine": None, "target_shape": None,
        "minimize_memory": True, "output_types": ["all"],
        "inference": {
            "method": "fdr", "alpha": 0.05, "z_threshold": 3.09, "cluster_threshold": 0,
            "two_sided": True, "n_perm": 10000, "seed": 0, "permutation_stat": "max_t",
            "cluster_forming_p": None, "min_distance": 8.0,
        },
    }  # fmt: skip


def test_normalisation():
    spec = _full_spec()
    assert spec.excludes == ("03", "07")  # "sub-" stripped
    assert spec.auto_contrasts == ("conditions", "pairwise")  # canonical order
    assert spec.glm.smoothing_fwhm == 5.0 and isinstance(spec.glm.smoothing_fwhm, float)
    assert spec.contrasts[1].weights == ({"face": 1.0}, {"house": 1.5})
    assert GlmSpec(signal_scaling=False).signal_scaling is None  # nilearn's spelling
    assert GlmSpec(signal_scaling=0.0).signal_scaling == 0
    group = spec.group
    assert group.target_affine == (3.0, 0.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0, 3.0)
    assert group.target_shape == (20, 24, 20) and group.smoothing_fwhm == 4.0
    assert GroupSpec(smoothing_fwhm=0).smoothing_fwhm is None  # 0 means no smoothing


def test_subject_spec_round_trip_and_validation():
    spec = _full_spec()
    data = json.loads(spec.to_json())
    assert data["subject"] == {"run_combination": "precision"}
    assert ModelSpec.from_json(spec.to_json()).subject.run_combination == "precision"
    assert SubjectSpec.from_dict({}) == SubjectSpec(run_combination="equal")
    with pytest.raises(ModelSpecError, match=re.escape(
        """'run_combination' must be one of "equal", "precision"; got "mean\""""
    )):  # fmt: skip
        SubjectSpec(run_combination="mean")


def test_group_spec_json_round_trip():
    for group in (_full_spec().group, _permutation_group()):
        spec = ModelSpec(name="m", task="faces", group=group)
        back = ModelSpec.from_json(spec.to_json(), source=spec.source)
        assert back == spec and back.group.inference == group.inference
        assert back.group.contrasts == group.contrasts


def test_json_round_trip_is_exact_and_canonical():
    spec = _full_spec()
    text = spec.to_json()
    back = ModelSpec.from_json(text, source=spec.source)
    assert back == spec and hash(back) == hash(spec)
    assert back.to_json() == text
    data = json.loads(text)
    assert list(data) == sorted(data) and data["schema_version"] == 1
    assert "source" not in data  # moving the file must not change the cache key
    assert ModelSpec.from_json(text, source="elsewhere.json").to_json() == text


@pytest.mark.parametrize("cls", SUBSPECS)
def test_subspec_round_trip(cls):
    part = getattr(_full_spec(), cls.__name__.removesuffix("Spec").lower())
    assert cls.from_dict(json.loads(json.dumps(part.to_dict()))) == part


def test_contrast_round_trip():
    for contrast in _full_spec().contrasts:
        assert ContrastSpec.from_dict(json.loads(json.dumps(contrast.to_dict()))) == contrast


def test_specs_are_immutable_hashable_and_picklable():
    spec = _full_spec()
    with pytest.raises(AttributeError):
        spec.tr = 3.0
    with pytest.raises(TypeError):
        spec.events.rename_conditions["a"] = "b"
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert copy.deepcopy(spec) == spec
    assert len({spec, copy.deepcopy(spec)}) == 1


def test_to_dict_keys_are_the_stage_function_keywords():
    # stage functions take the sub-spec (parse_events(df, spec.events)) or its fields as
    # keywords (parse_events(df, **spec.events.to_dict()), which build the spec): both bind
    events = {f.name for f in fields(EventsSpec)}
    confounds = {f.name for f in fields(ConfoundsSpec)}
    assert set(EventsSpec().to_dict()) == events
    assert set(ConfoundsSpec().to_dict()) == confounds
    for module, func, names in [
        ("glmflow.core.events", "parse_events", events),
        ("glmflow.core.confounds", "select_confounds", confounds),
    ]:
        try:
            target = getattr(__import__(module, fromlist=[func]), func)
        except (ImportError, AttributeError):
            continue  # the other stage is not written yet
        signature = inspect.signature(target)
        assert "spec" in signature.parameters, func
        signature.bind(None, **dict.fromkeys(names))  # every field is an accepted keyword


def test_packaged_native_model_loads():
    spec = load_model(MODELS / "faces_model.json")
    assert spec.task == "faces" and spec.source == str(MODELS / "faces_model.json")
    assert [c.name for c in spec.contrasts] == [
        "face-house", "face-others", "face_x_rt", "effects-of-interest",
    ]  # fmt: skip
    assert spec.contrasts[-1].stat_type == "F" and len(spec.contrasts[-1].weights) == 3
    assert spec.to_json() == (MODELS / "faces_model.json").read_text()


# ---------------------------------------------------------------- bad input
def _model(**changes):
    data = {"schema_version": 1, "name": "faces", "task": "faces"}
    for key, value in changes.items():
        section, _, sub = key.partition("__")
        if sub:
            data.setdefault(section, {})[sub] = value
        else:
            data[section] = value
    return data


BAD_MODELS = [
    (_model(glm__noise_model="ar2"),
     """'glm.noise_model' must be one of "ar1", "ols"; got "ar2" (in m.json)"""),
    (_model(tr=-2), "'tr' must be a number > 0 or null; got -2 (in m.json)"),
    (_model(tr="2"), """'tr' must be a number > 0 or null; got "2" (in m.json)"""),
    (_model(tr=True), "'tr' must be a number > 0 or null; got true (in m.json)"),
    (_model(glm__noise_modle="ols"),
     "Unknown key 'noise_modle' in 'glm'; did you mean 'noise_model'? Allowed: noise_model, "
     "signal_scaling, smoothing_fwhm, slice_time_ref, minimize_memory (in m.json)"),
    (_model(contrast=[]), "Unknown key 'contrast' in the model; did you mean 'contrasts'?"),
    (_model(events=[]), "'events' must be a JSON object; got [] (in m.json)"),
    (_model(events__modulators="rt"),
     """'events.modulators' must be a list of strings; got "rt" (in m.json)"""),
    (_model(events__modulators=["rt", "rt"]),
     """'events.modulators' lists "rt" twice; remove the duplicate (in m.json)"""),
    (_model(events__modulators=["trial_type"]),
     "'events.modulators' must be numeric event columns other than onset, duration, the "
     'condition and block columns; got ["trial_type"] (in m.json)'),
    (_model(events__condition_column=""),
     """'events.condition_column' must be a non-empty string; got "" (in m.json)"""),
    (_model(events__missing_block_column="ignore"),
     """'events.missing_block_column' must be one of "error", "warn"; got "ignore\""""),
    (_model(events__drop_conditions=["a"], events__rename_conditions={"a": "b"}),
     """'events.rename_conditions' renames "a", which is dropped (in m.json)"""),
    (_model(confounds__strategy=["compcor"]),
     """'confounds.strategy' contains "compcor", which needs "high_pass" too (in m.json)"""),
    (_model(confounds__strategy=["aroma"]),
     """'confounds.strategy' must be one of "motion", "wm_csf", "global_signal", "compcor", """
     '"scrub", "non_steady_state", "high_pass"; got "aroma" (in m.json)'),
    (_model(confounds__motion="all"), "'confounds.motion' must be one of \"basic\""),
    (_model(confounds__n_compcor=0), "'confounds.n_compcor' must be an integer >= 1; got 0"),
    (_model(confounds__fd_threshold=0), "'confounds.fd_threshold' must be a number > 0; got 0"),
    (_model(confounds__demean="yes"), """'confounds.demean' must be true or false; got "yes\""""),
    (_model(design__hrf_model="canonical"), "'design.hrf_model' must be one of \"spm\","),
    (_model(design__hrf_model="fir"),
     "'design.fir_delays' must list the delays (in scans) for hrf_model \"fir\" (in m.json)"),
    (_model(design__fir_delays=[1, 1]), "'design.fir_delays' must be distinct integers"),
    (_model(design__high_pass=-0.01), "'design.high_pass' must be a number > 0; got -0.01"),
    (_model(design__oversampling=0.5), "'design.oversampling' must be an integer >= 1; got 0.5"),
    (_model(glm__signal_scaling=1),
     "'glm.signal_scaling' must be 0 (percent signal change) or null (none); got 1 (in m.json)"),
    (_model(glm__signal_scaling=[0, 1]), "'glm.signal_scaling' must be 0 (percent signal"),
    (_model(glm__signal_scaling=True), "'glm.signal_scaling' must be 0 (percent signal"),
    (_model(glm__slice_time_ref=1.5),
     "'glm.slice_time_ref' must be a number between 0 and 1 or null; got 1.5 (in m.json)"),
    (_model(glm__smoothing_fwhm=-4), "'glm.smoothing_fwhm' must be a number >= 0 or null"),
    (_model(subject__run_combination="weighted"),
     """'subject.run_combination' must be one of "equal", "precision"; got "weighted" """
     "(in m.json)"),
    (_model(subject__combination="equal"),
     "Unknown key 'combination' in 'subject'; did you mean 'run_combination'? Allowed: "
     "run_combination (in m.json)"),
    (_model(subject="equal"), """'subject' must be a JSON object; got "equal" (in m.json)"""),
    (_model(group__regressors=["age"]),
     "Unknown key 'regressors' in 'group'; Allowed: design, group_column, conditions, "
     "covariates, demean_covariates, first_level_contrasts, contrasts, method, "
     "smoothing_fwhm, target_affine, target_shape, minimize_memory, output_types, inference "
     "(in m.json)"),
    (_model(group__method="fixed", group__minimize_memory=False),
     """'group.minimize_memory' must be true with method "fixed" (residual, predicted and"""),
    (_model(group__target_affine=[1, 2, 3]),
     "'group.target_affine' must be 9 (3x3) or 16 (4x4) numbers in row order, or null; got "
     "[1, 2, 3] (in m.json)"),
    (_model(group__target_shape=[10, 10, 0], group__target_affine=[2, 0, 0, 0, 2, 0, 0, 0, 2]),
     "'group.target_shape' must be an integer >= 1; got 0 (in m.json)"),
    (_model(group__target_shape=[10, 10, 10]),
     "'group.target_shape' needs target_affine; give both or neither (in m.json)"),
    (_model(group__target_affine=[2, 0, 0, 0, 2, 0, 0, 0, 2],
            group__inference={"method": "permutation"}),
     """'group.target_affine' cannot be used with inference method "permutation" (nilearn"""),
    (_model(group__covariates=["participant_id"]),
     "'group.covariates' must be participants.tsv columns other than participant_id; got "
     '["participant_id"] (in m.json)'),
    (_model(group__design="anova"),
     """'group.design' must be one of "one-sample", "two-sample", "paired", "covariates"; """
     'got "anova" (in m.json)'),
    (_model(group__design="two-sample"),
     "'group.group_column' must name the participants.tsv column of the groups with design "
     '"two-sample" (in m.json)'),
    (_model(group__group_column="group"),
     """'group.group_column' is only used by design "two-sample", not "one-sample"; remove it"""),
    (_model(group__design="two-sample", group__group_column="group", group__covariates=["group"]),
     """'group.covariates' lists the group column "group"; remove it (in m.json)"""),
    (_model(group__design="paired", group__conditions=["face"]),
     """'group.conditions' must be the two first-level contrasts compared by design "paired"; """
     'got ["face"] (in m.json)'),
    (_model(group__design="paired", group__conditions=["face", "house"], group__covariates=["a"]),
     """'group.covariates' cannot be used with design "paired": its subject columns absorb"""),
    (_model(group__conditions=["face", "house"]),
     """'group.conditions' is only used by design "paired", not "one-sample"; remove it"""),
    (_model(group__design="covariates"),
     """'group.covariates' must name at least one column with design "covariates" (in m.json)"""),
    (_model(group__method="mixed"),
     """'group.method' must be one of "ols", "fixed"; got "mixed" (in m.json)"""),
    (_model(group__method="fixed", group__smoothing_fwhm=6),
     """'group.smoothing_fwhm' cannot be used with method "fixed" (smoothing would change"""),
    (_model(group__contrasts=[{"name": "x", "expressions": ["a"]}] * 2),
     """Contrast name "x" is used twice; give each contrast a unique name (in m.json)"""),
    (_model(group__contrasts=[{"name": "x", "weights": [{"a": "1"}]}]),
     """'group.contrasts[0].weights' must be a number; got "1" (in m.json)"""),
    (_model(group__inference={"alfa": 0.1}),
     "Unknown key 'alfa' in 'group.inference'; did you mean 'alpha'? Allowed: method, alpha,"),
    (_model(group__inference={"method": "holm"}),
     """'group.inference.method' must be one of "none", "fpr", "fdr", "bonferroni", """
     '"threshold", "permutation", "tdp"; got "holm" (in m.json)'),
    (_model(group__inference={"alpha": 1}),
     "'group.inference.alpha' must be a number between 0 and 1 (exclusive); got 1 (in m.json)"),
    (_model(group__inference={"n_perm": 0}),
     "'group.inference.n_perm' must be an integer >= 1; got 0 (in m.json)"),
    (_model(group__inference={"cluster_threshold": -1}),
     "'group.inference.cluster_threshold' must be an integer >= 0; got -1 (in m.json)"),
    (_model(group__inference={"method": "tdp"}),
     """'group.inference.two_sided' must be false with method "tdp" (it tests positive"""),
    (_model(group__inference={"method": "permutation", "permutation_stat": "mass"}),
     """'group.inference.cluster_forming_p' must be set for permutation_stat "mass" (the """),
    (_model(group__method="fixed", group__inference={"method": "permutation"}),
     """'group.inference.method' "permutation" permutes an OLS model; use method "ols" or"""),
    (_model(
        group__contrasts=[{"name": "x", "stat_type": "F", "expressions": ["a", "b"]}],
        group__inference={"method": "permutation"},
    ),
     """'group.inference.method' "permutation" tests t contrasts, but contrast "x" is an F """
     "test; use a parametric method or make it a t contrast (in m.json)"),
    (_model(name="faces model"),
     """'name' must be a BIDS label (letters and digits only); got "faces model" (in m.json)"""),
    (_model(excludes=["sub-01", "01"]),
     """'excludes' lists "01" twice; remove the duplicate (in m.json)"""),
    (_model(auto_contrasts=["all"]),
     """'auto_contrasts' must be one of "conditions", "pairwise"; got "all" (in m.json)"""),
    (_model(schema_version=2), "'schema_version' must be 1; got 2 (in m.json)"),
    ({"schema_version": 1, "task": "faces"}, "The model has no 'name'; add it (in m.json)"),
    (_model(contrasts={"a": "b"}), """'contrasts' must be a list of contrasts; got {"a": "b"}"""),
    (_model(contrasts=[{"name": "a", "formula": "a"}]),
     "Unknown key 'formula' in contrasts[0]; Allowed: name, expressions, weights, stat_type"),
    (_model(contrasts=[{"name": "a-b", "expressions": ["a-b"]}] * 2),
     """Contrast name "a-b" is used twice; give each contrast a unique name (in m.json)"""),
    (_model(contrasts=[{"name": "x", "expressions": ["face -* house"]}]),
     """Contrast "x": Formula "face -* house" does not parse (invalid syntax at character 7)"""),
    (_model(contrasts=[{"name": "x", "expressions": ["face*house"]}]),
     """Contrast "x": Formula "face*house" multiplies two columns"""),
    (_model(contrasts=[{"name": "x"}]),
     """Contrast 'x' must give either 'expressions' or 'weights' (not both) (in m.json)"""),
    (_model(contrasts=[{"name": "x", "expressions": ["a", "b"]}]),
     """Contrast 'x' is a t contrast with 2 rows; give one row or set "stat_type": "F\""""),
    (_model(contrasts=[{"name": "x", "weights": [{"a": 0}]}]),
     """'contrasts[0].weights' must be rows with at least one non-zero weight; got {"a": 0}"""),
    (_model(contrasts=[{"name": "x", "weights": [{"a": "1"}]}]),
     """'contrasts[0].weights' must be a number; got "1" (in m.json)"""),
    (_model(contrasts=[{"name": "x/y", "expressions": ["a"]}]),
     "'contrasts[0].name' must be printable, without surrounding spaces, '/' or "
     """'\\'; got "x/y\""""),
    (_model(contrasts=[{"name": "x", "expressions": ["a"], "stat_type": "T"}]),
     """'contrasts[0].stat_type' must be one of "t", "F"; got "T" (in m.json)"""),
]  # fmt: skip


@pytest.mark.parametrize(("data", "message"), BAD_MODELS)
def test_bad_model_is_refused_with_one_line(data, message):
    with pytest.raises(ModelSpecError, match=re.escape(message)) as info:
        ModelSpec.from_dict(data, source="m.json")
    assert "\n" not in str(info.value)


# Validate once: every option rule the stage functions used to re-check on their keyword
# arguments (design._validate_parameters, events._check_options, confounds._check_options,
# glm's option check) is the spec's, so a stage given a sub-spec checks only the data.
STAGE_OPTION_RULES = [
    (EventsSpec, "condition_column", ""),
    (EventsSpec, "rename_conditions", {"a": ""}),
    (EventsSpec, "rename_conditions", {"": "a"}),
    (EventsSpec, "demean_modulators", "yes"),
    (EventsSpec, "block_column", ""),
    (EventsSpec, "block_column", "trial_type"),  # the condition column
    (EventsSpec, "missing_block_column", "ignore"),
    (EventsSpec, "incomplete_events", "skip"),
    (EventsSpec, "missing_conditions", "drop"),
    (EventsSpec, "drop_conditions", [""]),
    (EventsSpec, "modulators", [" "]),
    (ConfoundsSpec, "strategy", ["aroma"]),
    (ConfoundsSpec, "strategy", ["compcor"]),  # needs high_pass
    (ConfoundsSpec, "motion", "all"),
    (ConfoundsSpec, "wm_csf", "none"),
    (ConfoundsSpec, "global_signal", 2),
    (ConfoundsSpec, "compcor", "anat"),
    (ConfoundsSpec, "n_compcor", 0),
    (ConfoundsSpec, "n_compcor", 2.5),
    (ConfoundsSpec, "fd_threshold", 0),
    (ConfoundsSpec, "std_dvars_threshold", -1.5),
    (ConfoundsSpec, "scrub", -1),
    (ConfoundsSpec, "demean", 1),
    (ConfoundsSpec, "columns", [""]),
    (ConfoundsSpec, "optional_columns", [""]),
    (DesignSpec, "hrf_model", "canonical"),
    (DesignSpec, "drift_model", "linear"),
    (DesignSpec, "high_pass", -0.01),
    (DesignSpec, "drift_order", -1),
    (DesignSpec, "drift_order", True),
    (DesignSpec, "oversampling", 0),
    (DesignSpec, "min_onset", float("inf")),
    (DesignSpec, "fir_delays", [1, 2]),  # only with hrf_model "fir"
    (DesignSpec, "fir_delays", [-1]),
    (GlmSpec, "noise_model", "ar2"),
    (GlmSpec, "signal_scaling", 1),
    (GlmSpec, "slice_time_ref", 1.5),
    (GlmSpec, "slice_time_ref", -0.1),
    (GlmSpec, "smoothing_fwhm", -1),
]


@pytest.mark.parametrize(("cls", "name", "value"), STAGE_OPTION_RULES)
def test_the_spec_holds_every_stage_option_rule(cls, name, value):
    with pytest.raises(ModelSpecError, match=f"^'{name}' "):
        cls(**{name: value})


def test_fir_rules_are_the_spec_s():
    for delays in ([], [1, 1], [0.5]):
        with pytest.raises(ModelSpecError, match="^'fir_delays' "):
            DesignSpec(hrf_model="fir", fir_delays=delays)


BAD_JSON = [
    (
        '{"name": "a",\n "task": }',
        "m.json is not valid JSON: Expecting value at line 2, column 10",
    ),
    ('{"name": "a", "name": "b"}', "Key 'name' appears twice in one JSON object"),
    ('{"tr": NaN}', "NaN is not valid JSON; use a number or null (in m.json)"),
    ("", "m.json is not valid JSON: Expecting value at line 1, column 1; fix the syntax there"),
]


@pytest.mark.parametrize(("text", "message"), BAD_JSON)
def test_bad_json_is_refused(text, message):
    with pytest.raises(ModelSpecError, match=re.escape(message)):
        ModelSpec.from_json(text, source="m.json")


def test_load_model_file_errors(tmp_path):
    with pytest.raises(ModelSpecError, match=re.escape("does not exist; check the path")):
        load_model(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "faces": {\n    "tr": 2,\n  }\n}')
    with pytest.raises(ModelSpecError, match=re.escape(f"{bad} is not valid JSON: Expecting")):
        load_model(bad)
    with pytest.raises(ModelSpecError, match="line 4, column 3"):
        load_model(bad)
    bsm = tmp_path / "model-bsm_smdl.json"
    bsm.write_text(json.dumps({"Name": "x", "BIDSModelVersion": "1.0.0", "Nodes": []}))
    with pytest.raises(ModelSpecError, match="is a BIDS Stats Model, which is not a ModelSpec"):
        load_model(bsm)
    native = tmp_path / "native.json"
    native.write_text(ModelSpec(name="m", task="faces").to_json())
    assert load_model(native, task="faces").task == "faces"
    with pytest.raises(ModelSpecError, match="is for task 'faces', not 'rest'"):
        load_model(native, task="rest")


# ---------------------------------------------------------------- formulas and contrasts
@pytest.mark.parametrize(
    "formula",
    ["face", "face - house", "2*face - house/2", "-(face + house)/2", "face up", "1back",
     "`1back` - `0back`", "face_x_rt", "0.5*(a - b) + c"],
)  # fmt: skip
def test_formulas_accepted(formula):
    check_formula(formula)


@pytest.mark.parametrize(
    ("formula", "message"),
    [
        ("", 'Formula "" must be a non-empty string'),
        ("3", 'Formula "3" names no design column'),
        ("2 * 3", 'Formula "2 * 3" names no design column'),
        ("face * house", "multiplies two columns; a contrast is a weighted sum"),
        ("face / house", 'Formula "face / house" divides by a column'),
        ("face ** 2", "uses unsupported syntax (Pow); use numbers, column names"),
        ("abs(face)", "uses unsupported syntax (Call)"),
        ("face > house", "uses unsupported syntax (Compare)"),
        ("1back - 0back", "does not parse (invalid decimal literal at character 1)"),
        ("`face - house", "has an unmatched backtick"),
    ],
)
def test_formulas_refused(formula, message):
    with pytest.raises(ModelSpecError, match=re.escape(message)):
        check_formula(formula)


def test_default_contrasts_match_glm_express_on_three_conditions():
    contrasts = default_contrasts(["face", "house", "scrambled"])
    assert [(c.name, c.expressions, c.stat_type) for c in contrasts] == [
        ("face-house", ("face-house",), "t"),
        ("face-scrambled", ("face-scrambled",), "t"),
        ("house-scrambled", ("house-scrambled",), "t"),
    ]
    # glm-express keeps the order it is given (first appearance in the events)
    assert [c.name for c in default_contrasts(["b", "a", "c"])] == ["b-a", "b-c", "a-c"]
    assert default_contrasts(["face"]) == ()
    assert [c.name for c in default_contrasts(["a", "b", "a"])] == ["a-b"]
    quoted = default_contrasts(["1back", "face up"])
    assert quoted[0].name == "1back-face up"
    assert quoted[0].expressions == ("`1back`-`face up`",)


# glm-express 2.0.3's source: a folder holding glm_express/ (.ci/run unpacks PyPI's sdist
# and sets GLMFLOW_GLM_EXPRESS_SRC; glm-express itself is not installed: its pins clash)
GLMX_SUBJECT = (
    Path(os.environ.get("GLMFLOW_GLM_EXPRESS_SRC", "/tmp/glmx/src"))
    / "glm_express" / "subject" / "subject.py"
)  # fmt: skip


@pytest.mark.skipif(
    not GLMX_SUBJECT.is_file(),
    reason="glm-express 2.0.3 source not unpacked (set GLMFLOW_GLM_EXPRESS_SRC)",
)
@pytest.mark.parametrize(
    "conditions", [["face", "house", "scrambled"], ["b", "a", "c", "d"], ["high_face", "low_face"]]
)
def test_default_contrasts_equal_glm_express_source(conditions):
    import ast
    from types import SimpleNamespace

    tree = ast.parse(GLMX_SUBJECT.read_text())
    func = next(
        n for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef) and n.name == "_default_contrasts"
    )  # fmt: skip
    namespace: dict = {}
    exec(compile(ast.Module([func], []), str(GLMX_SUBJECT), "exec"), namespace)
    expected = namespace["_default_contrasts"](SimpleNamespace(conditions=conditions))
    ours = {c.name: c.expressions[0] for c in default_contrasts(conditions)}
    assert list(ours.items()) == list(expected.items())


def test_expand_contrasts_order_dedupe_and_clash():
    face = ContrastSpec(name="face", expressions=("face",))
    spec = ModelSpec(
        name="m",
        task="faces",
        contrasts=(face, ContrastSpec(name="f-h", expressions=("face - house",))),
        auto_contrasts=("pairwise", "conditions"),
    )
    names = [c.name for c in expand_contrasts(spec, ["face", "house"])]
    assert names == ["face", "house", "face-house", "f-h"]  # identical "face" kept once
    assert condition_contrasts(["face", "house"])[1] == ContrastSpec("house", ("house",))
    clash = ModelSpec(
        name="m",
        task="faces",
        source="m.json",
        contrasts=(ContrastSpec(name="face", expressions=("face - house",)),),
        auto_contrasts=("conditions",),
    )
    with pytest.raises(ModelSpecError, match=r'Contrast "face" is defined twice .* in m\.json; '):
        expand_contrasts(clash, ["face", "house"])
    assert expand_contrasts(ModelSpec(name="m", task="faces"), ["face"]) == ()


# ---------------------------------------------------------------- repetition time
@pytest.mark.parametrize(
    ("spec_tr", "sidecar_tr", "header_tr", "expected"),
    [
        (None, 2.0, 2.0, 2.0),
        (None, 2.0, None, 2.0),
        (None, None, 2.5, 2.5),
        (None, 2.0, 0.0, 2.0),  # header 0 = unknown
        (2.0, 2.0004, 2.0, 2.0004),  # within 1 ms
        (2.0, None, None, 2.0),
        (1.5, 1.5, 1.5, 1.5),
    ],
)
def test_repetition_time_agrees(spec_tr, sidecar_tr, header_tr, expected):
    tr = check_repetition_time(
        spec_tr=spec_tr, sidecar_tr=sidecar_tr, header_tr=header_tr,
        bold_file="bold.nii.gz", model_file="model.json",
    )  # fmt: skip
    assert tr == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("spec_tr", "sidecar_tr", "header_tr", "error", "message"),
    [
        (1.0, 2.0, 2.0, ModelSpecError,
         '"tr" is 1 s in model.json but bold.nii.gz has 2 s (sidecar RepetitionTime); set "tr" '
         "to 2 in model.json or remove it to use the data's value (glm-express's builder "
         "writes tr 1.0 whatever the data)"),
        (2.5, None, 2.0, ModelSpecError,
         '"tr" is 2.5 s in model.json but bold.nii.gz has 2 s (NIfTI header pixdim[4]); set '
         '"tr" to 2 in model.json or remove it'),
        (None, 2.0, 1.0, DatasetError,
         "bold.nii.gz: the sidecar says RepetitionTime 2 s but the NIfTI header (pixdim[4]) "
         "says 1 s; BIDS takes the sidecar as authoritative: fix the header"),
        (None, None, None, DatasetError,
         "bold.nii.gz has no repetition time (no sidecar RepetitionTime, header pixdim[4] is "
         '0); add RepetitionTime to its sidecar or set "tr" in model.json'),
        (None, 0, 2.0, DatasetError,
         "the sidecar's RepetitionTime of bold.nii.gz must be a positive number of seconds; "
         "got 0"),
        (None, "2", 2.0, DatasetError, "the sidecar's RepetitionTime of bold.nii.gz must be"),
        (-1.0, 2.0, 2.0, ModelSpecError, "'tr' must be a number > 0; got -1.0 (in model.json)"),
    ],
)  # fmt: skip
def test_repetition_time_disagreement(spec_tr, sidecar_tr, header_tr, error, message):
    with pytest.raises(error, match=re.escape(message)):
        check_repetition_time(
            spec_tr=spec_tr, sidecar_tr=sidecar_tr, header_tr=header_tr,
            bold_file="bold.nii.gz", model_file="model.json",
        )  # fmt: skip
