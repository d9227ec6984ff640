"""Read BIDS events files and turn them into tidy events for nilearn's design builder.

Two steps keep concerns apart: :func:`read_events` (:mod:`.read`) reads one ``*_events.tsv``
as it is (robust to real-world files), :func:`parse_events` (:mod:`.parse`) applies the
model's :class:`~glmflow.core.model.EventsSpec` and returns the tidy table that
:func:`write_parsed_events` (:mod:`.table`) stores between workflow nodes.

:func:`parse_events` steps, in order:

1. Events lacking an onset, a duration or a condition (``n/a``) are refused or, with
   ``incomplete_events="drop"``, dropped with a warning that counts them.
2. ``trial_type`` is the stripped text of the condition column.
3. ``drop_conditions`` then ``rename_conditions`` apply to those values (the names in the
   file, as glm-express drops fixation trials before merging blocks); a name the run does
   not have is an error unless ``missing_conditions="ignore"``.
4. Events that start at or after the end of the scan (``scan_end``, volumes x TR) are left
   out with a warning naming their lines: nilearn would model nothing of them, silently. A
   condition left with no event then follows the missing-condition rule of the contrasts.
5. Blocks (glm-express 2.0.3, ``auto_block_regressors``): when the block column is set and
   present, ``trial_type`` becomes ``f"{block}_{trial_type}"``; events whose block is ``n/a``
   keep their plain condition name. An absent column warns once and models no blocks
   (``missing_block_column="warn"``; glm-express's builder writes ``block_type`` for every
   task) or is an error (``"error"``).
6. Parametric modulators, as in SPM: the condition regressor stays, and each condition ``c``
   x modulator ``m`` adds rows named ``f"{c}_x_{m}"`` (role ``"modulator"``) whose
   ``modulation`` is ``m`` demeaned within ``c`` (when ``demean_modulators``). A modulator
   that is ``n/a`` for every event of a condition, or constant within it, carries no
   information there: that regressor is not made, with a warning. A modulator ``n/a`` for
   only some events of a condition is an error.

Tidy events columns: ``onset`` and ``duration`` (seconds), ``trial_type`` (regressor name,
str), ``modulation`` (1.0 for condition rows, the modulator value for modulator rows),
``role`` (``"condition"`` or ``"modulator"``).

Error messages name line numbers of the events file: the header is line 1, so the event with
index ``i`` in the table returned by :func:`read_events` is on line ``i + 2``.
"""

from glmflow.core.events.parse import parse_events
from glmflow.core.events.read import read_events
from glmflow.core.events.table import (
    MISSING_VALUES,
    MODULATOR_SEPARATOR,
    TIDY_COLUMNS,
    read_parsed_events,
    to_numbers,
    write_parsed_events,
)

__all__ = [
    "MISSING_VALUES",
    "MODULATOR_SEPARATOR",
    "TIDY_COLUMNS",
    "parse_events",
    "read_events",
    "read_parsed_events",
    "to_numbers",
    "write_parsed_events",
]
