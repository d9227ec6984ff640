"""BIDS Stats Models (BSM): model files of FitLins, bidspm and OpenNeuro's model zoo.

A BSM file is checked (:mod:`.schema`: keys, levels, contrasts, edges; pre-1.0 ``Steps``
converted with one warning) and loaded with pybids' ``BIDSStatsModelsGraph``
(:mod:`.graph`), which provides every variable, ``Input`` selector and transformation. The run
node becomes one design per run: pybids' ``X`` (after ``Convolve``) plus the cosine drift of
``Options.HighPassFilterCutoffHz``, fitted by glmflow's engine (AR(1)); its ``Contrasts`` and
``DummyContrasts`` become glmflow contrasts over ``X``'s columns. With
``Options.LowPassFilterCutoffHz`` the design and the run's masked BOLD are both low-passed by
nilearn's ``nilearn.signal.butterworth`` (order 5, its defaults;
:mod:`glmflow.core.temporal_filter`, whose rule refuses a cutoff at or above Nyquist and a run
too short for the filter before compute), and the fit stays AR(1), as nilearn's
``FirstLevelModel`` would fit the filtered image.

Supported: Run nodes (``glm``: AR(1); ``Options.Mask``: BIDS entities selecting one mask
per run, or the path of one NIfTI mask for every run, absolute or from the model file's
folder, its grid checked against every run's BOLD); Session, Subject and Dataset nodes
(:mod:`.higher`: ``meta`` or a ``FEMA`` test = precision-weighted fixed effects, ``glm`` =
OLS on the effect maps, participants.tsv variables through pybids), every unit planned and
checked before compute (:mod:`.chain`) and fitted in the same cached Nipype graph as the
runs; ``Model.HRF`` (as pybids' ``Convolve``); ``Contrasts`` with t and F tests and 2-D
weights, ``DummyContrasts``; ``Edges`` with ``Filter``; several nodes at one level;
``Options.LowPassFilterCutoffHz`` at the Run node (above ``HighPassFilterCutoffHz``).
Refused with one line: ``Options.Mask`` or ``LowPassFilterCutoffHz`` on a later node (it
fits effect maps, not time series), ``AggregateAutocorrelations``, tests other than t, F and
FEMA, an F contrast feeding a later node, a node that passes no contrast on.
"""

from glmflow.core.bsm.detect import is_bids_stats_model, is_bids_stats_model_file

# these import pandas, nilearn and pybids (~3 s): loaded on first use, so that telling a BSM
# file apart (the CLI, a rerun that nothing touched) imports none of them
_LAZY = {
    "HigherUnit": "chain",
    "MapSource": "chain",
    "plan_later_nodes": "chain",
    "RunDesign": "graph",
    "load_graph": "graph",
    "read_bids_stats_model": "graph",
    "run_designs": "graph",
    "check_model": "schema",
    "convert_steps": "schema",
}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f"glmflow.core.bsm.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'glmflow.core.bsm' has no attribute {name!r}")


__all__ = [
    "RunDesign",
    "HigherUnit",
    "MapSource",
    "check_model",
    "convert_steps",
    "is_bids_stats_model",
    "is_bids_stats_model_file",
    "load_graph",
    "plan_later_nodes",
    "read_bids_stats_model",
    "run_designs",
]
