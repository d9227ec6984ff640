"""ParseEvents: one run's events.tsv as tidy events for BuildDesignMatrix."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from nipype.interfaces.base import BaseInterfaceInputSpec, File, TraitedSpec, traits

from glmflow.core.events import parse_events, read_events, write_parsed_events
from glmflow.core.model import EventsSpec
from glmflow.interfaces.base import CoreInterface, given, set_inputs


class _ParseEventsInputSpec(BaseInterfaceInputSpec):
    events_file = File(exists=True, mandatory=True, desc="BIDS *_events.tsv of one run")
    condition_column = traits.Str(
        "trial_type",
        usedefault=True,
        desc="column naming each event's condition (glm-express condition_identifier)",
    )
    drop_conditions = traits.List(
        traits.Str, desc="conditions whose events are removed (names as in the file)"
    )
    rename_conditions = traits.Dict(
        traits.Str, traits.Str, desc="{old: new} condition names, applied after dropping"
    )
    modulators = traits.List(
        traits.Str, desc="numeric columns; one '{condition}_x_{modulator}' regressor each"
    )
    demean_modulators = traits.Bool(
        True, usedefault=True, desc="demean each modulator within each condition"
    )
    block_column = traits.Str(
        desc="column naming each event's block (glm-express block_identifier); conditions "
        "become '{block}_{condition}'; undefined means no blocks"
    )
    missing_block_column = traits.Enum(
        "warn", "error", usedefault=True, desc="block_column absent from the file: warn or fail"
    )
    incomplete_events = traits.Enum(
        "error",
        "drop",
        usedefault=True,
        desc="events with n/a onset, duration or condition: fail, or drop them with a warning",
    )
    missing_conditions = traits.Enum(
        "error",
        "ignore",
        usedefault=True,
        desc="drop_conditions/rename_conditions naming a condition absent from this run: "
        "fail (catches typos) or ignore (defaults such as glm-express's 'fixation')",
    )
    n_volumes = traits.Int(desc="volumes of the run; with tr, events after the scan warn")
    tr = traits.Float(desc="repetition time (s); with n_volumes, the end of the scan")


class _ParseEventsOutputSpec(TraitedSpec):
    events_file = File(
        exists=True,
        desc="events.tsv: columns onset, duration (s), trial_type (regressor name), "
        "modulation (1 for conditions, modulator value), role ('condition' or 'modulator')",
    )


class ParseEvents(CoreInterface):
    """Read and parse one events file with glmflow.core.events.parse_events."""

    input_spec = _ParseEventsInputSpec
    output_spec = _ParseEventsOutputSpec

    def _run_core(self, inputs, out_dir):
        source = inputs.events_file
        scan_end = None
        if given(inputs.n_volumes) is not None and given(inputs.tr) is not None:
            scan_end = inputs.n_volumes * inputs.tr
        events = parse_events(
            read_events(source, condition_column=inputs.condition_column),
            source=Path(source).name,
            scan_end=scan_end,
            **set_inputs(inputs, (f.name for f in fields(EventsSpec))),
        )
        return {"events_file": str(write_parsed_events(events, Path(out_dir) / "events.tsv"))}
