"""The model specification: what to fit, independent of where the data live.

A :class:`ModelSpec` is a tree of small frozen dataclasses, one per pipeline stage, so a
workflow node receives exactly the part it depends on (``spec.events.to_dict()``,
``spec.design.to_dict()`` ...) and Nipype's cache reruns only what an edit touched. Every
sub-spec validates itself when built (a spec that exists is valid; stage functions check only
what depends on the data) and round-trips through ``to_dict()`` / ``from_dict()``;
``ModelSpec.to_json()`` is canonical (sorted keys) and is glmflow's native model format.

Modules, lowest first (each imports only those above it):

- :mod:`.validation`: the validation kit (field checks, one-line messages, ``locate``).
- :mod:`.stages`: the first-level stage specs (events, confounds, design, GLM) and the
  subject level's ``SubjectSpec``.
- :mod:`.contrast_specs`: ``ContrastSpec`` and the generated contrasts.
- :mod:`.group_specs`: ``GroupSpec`` and ``InferenceSpec`` (the dataset level).
- :mod:`.jsonfile`: strict JSON reading.
- :mod:`.spec`: ``ModelSpec`` and :func:`expand_contrasts`.
- :mod:`.glm_express`: the glm-express compiler (``task_information.json`` -> ModelSpec).
- :mod:`.files`: :func:`load_model` (format detection) and :func:`check_repetition_time`.

Compilers: a model file format is turned into a ModelSpec by a module whose only job that is:
:mod:`.glm_express` today, a BIDS Stats Models compiler next (issue 9). ModelSpec holds one
chain of levels, each with its grouping, model type and contrasts, and a BSM graph compiles
onto it as follows:

===============  ==========================  ================================================
BSM level        grouping (``GroupBy``)      ModelSpec part
===============  ==========================  ================================================
run              one run                     ``events`` + ``confounds`` + ``design`` (``X``,
                                             ``HRF``, ``Options.HighPassFilterCutoffHz``),
                                             ``glm`` (``Model.Type`` "glm": AR(1) or OLS),
                                             ``contrasts`` / ``auto_contrasts``
                                             (``Contrasts``: ConditionList + Weights ->
                                             ``weights`` rows, Test "t"/"F" -> ``stat_type``;
                                             ``DummyContrasts`` -> "conditions")
session          subject x session           the runs of a session combined as ``subject``
                                             combines a subject's runs (fixed effects)
subject          subject                     ``subject`` (``Model.Type`` "meta": fixed
                                             effects; ``run_combination`` "precision"
                                             weights by inverse variance, "equal" is
                                             nilearn's multi-run fit); contrasts pass through
dataset          all subjects (or a          ``group`` (``Model.Type`` "glm": ``method``
                 ``GroupBy`` column ->       "ols" with ``design`` / ``covariates`` from
                 ``group_column``)           ``X``; "meta": ``method`` "fixed"), its
                                             ``contrasts`` over the group design's columns
                                             and ``inference``
===============  ==========================  ================================================

A BSM graph with several nodes at one level (e.g. a t-test and an F-test dataset node) becomes
one ModelSpec per chain; ``Edges`` with ``Filter`` select the contrasts handed on
(``group.first_level_contrasts``).
"""

from glmflow.core.model.contrast_specs import (
    AutoContrast,
    ContrastSpec,
    StatType,
    check_formula,
    condition_contrasts,
    default_contrasts,
)
from glmflow.core.model.files import (
    TR_TOLERANCE,
    check_repetition_time,
    load_model,
    load_task_information,
)
from glmflow.core.model.glm_express import (
    GLMX_CONFOUND_PATTERNS,
    task_information_to_spec,
)
from glmflow.core.model.group_specs import (
    MEAN_CONTRAST,
    GroupDesign,
    GroupMethod,
    GroupOutputType,
    GroupSpec,
    InferenceMethod,
    InferenceSpec,
    PermutationStat,
)
from glmflow.core.model.jsonfile import parse_json, read_json
from glmflow.core.model.spec import SCHEMA_VERSION, ModelSpec, expand_contrasts
from glmflow.core.model.stages import (
    CompcorType,
    ConfoundModel,
    ConfoundsSpec,
    ConfoundStrategy,
    DesignSpec,
    DriftModel,
    EventsSpec,
    GlmSpec,
    HrfModel,
    IncompleteEvents,
    MissingBlockColumn,
    MissingConditions,
    NoiseModel,
    RunCombination,
    SubjectSpec,
)
from glmflow.core.model.validation import FrozenMap, locate

__all__ = [
    "GLMX_CONFOUND_PATTERNS",
    "MEAN_CONTRAST",
    "SCHEMA_VERSION",
    "TR_TOLERANCE",
    "AutoContrast",
    "CompcorType",
    "ConfoundModel",
    "ConfoundStrategy",
    "ConfoundsSpec",
    "ContrastSpec",
    "DesignSpec",
    "DriftModel",
    "EventsSpec",
    "FrozenMap",
    "GlmSpec",
    "GroupDesign",
    "GroupMethod",
    "GroupOutputType",
    "GroupSpec",
    "HrfModel",
    "IncompleteEvents",
    "InferenceMethod",
    "InferenceSpec",
    "MissingBlockColumn",
    "MissingConditions",
    "ModelSpec",
    "NoiseModel",
    "PermutationStat",
    "RunCombination",
    "StatType",
    "SubjectSpec",
    "check_formula",
    "check_repetition_time",
    "condition_contrasts",
    "default_contrasts",
    "expand_contrasts",
    "load_model",
    "load_task_information",
    "locate",
    "parse_json",
    "read_json",
    "task_information_to_spec",
]
