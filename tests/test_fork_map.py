"""The planning's per-run work in forked processes (glmflow.core.fork_map): the same results
in the same order as one after another, errors in the runs' order."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from glmflow.core import conditions as conditions_module
from glmflow.core import preflight
from glmflow.core.bids import discover_runs
from glmflow.core.fork_map import MIN_ITEMS, fork_map
from glmflow.core.model import load_model
from glmflow.data import make_synthetic_dataset
from glmflow.errors import EventsError

MODELS = Path(__file__).resolve().parents[1] / "glmflow" / "data" / "models"
FORKS = os.cpu_count() > 1 and hasattr(os, "fork")


def _square_and_pid(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


def _refuse_seven(x: int) -> int:
    if x == 7:
        raise ValueError(f"item {x} refused")
    return x


@pytest.mark.skipif(not FORKS, reason="one core or no fork start method: fork_map runs here")
def test_many_items_run_in_forked_processes_in_order():
    results = fork_map(_square_and_pid, range(40))
    assert [value for value, _ in results] == [x * x for x in range(40)]
    assert os.getpid() not in {pid for _, pid in results}


def test_few_items_run_here():
    results = fork_map(_square_and_pid, range(MIN_ITEMS - 1))
    assert results == [(x * x, os.getpid()) for x in range(MIN_ITEMS - 1)]
    assert fork_map(_square_and_pid, []) == []


def test_an_error_propagates_as_it_would_here():
    with pytest.raises(ValueError, match=r"^item 7 refused$"):
        fork_map(_refuse_seven, range(30))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_synthetic_dataset(
        tmp_path_factory.mktemp("fork") / "bids", n_subjects=5, n_runs=2, n_volumes=60
    )


def _serial(function, items, **_):
    return [function(item) for item in items]


def test_the_preflight_of_many_runs_finds_what_one_after_another_finds(dataset, monkeypatch):
    spec = load_model(MODELS / "task_information.json", task="faces")
    runs = discover_runs(dataset, tasks=["faces"])
    assert len(runs) == 10 >= MIN_ITEMS
    with pytest.warns(UserWarning) as forked_warnings:
        forked = preflight.check_first_level(runs, spec)
    conditions = conditions_module.dataset_conditions(dataset, spec)
    monkeypatch.setattr(preflight, "fork_map", _serial)
    monkeypatch.setattr(conditions_module, "fork_map", _serial)
    with pytest.warns(UserWarning) as serial_warnings:
        serial = preflight.check_first_level(runs, spec)
    assert forked == serial and forked.warnings  # the warnings grouped the same way too
    assert [str(w.message) for w in forked_warnings] == [str(w.message) for w in serial_warnings]
    assert conditions_module.dataset_conditions(dataset, spec) == conditions  # first appearance
    assert set(conditions) == {"face", "house", "scrambled"}


def test_the_first_bad_run_in_order_is_the_one_said(dataset, tmp_path):
    """Two runs' events are broken: the error names the earlier run's file, as a check of
    one run after another would, whichever worker finished first."""
    copy = Path(shutil.copytree(dataset, tmp_path / "bids"))
    spec = load_model(MODELS / "task_information.json", task="faces")
    runs = discover_runs(copy, tasks=["faces"])
    early, late = runs[2], runs[8]
    Path(late.events).write_text("onset\tduration\n1\t1\n")  # no trial_type: refused
    Path(early.events).write_text("duration\ttrial_type\n1\tface\n")  # no onset: refused
    with pytest.raises(EventsError) as caught:
        preflight.check_first_level(runs, spec)
    assert early.events in str(caught.value) and late.events not in str(caught.value)
    shutil.copyfile(dataset / Path(early.events).relative_to(copy), early.events)
    with pytest.raises(EventsError) as caught:
        preflight.check_first_level(runs, spec)
    assert late.events in str(caught.value)
