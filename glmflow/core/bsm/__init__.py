"""BIDS Stats Models (BSM): model files of FitLins, bidspm and OpenNeuro's model zoo.

A BSM file is checked (:mod:`.schema`: keys, levels, contrasts, edges; pre-1.0 ``Steps``
converted with one warning) and loaded with pybids' ``BIDSStatsModelsGraph``
(:mod:`.graph`), which provides every variable, ``Input`` selector and transformation. The run
node becomes one design per run: pybids' ``X`` (after ``Convolve``) plus the cosine drift of
``Options.HighPassFilterCutoffHz``, fitted by glmflow's engine (AR(1)); its ``Contrasts`` and
``DummyContrasts`` become glmflow contrasts over ``X``'s columns.

Supported: the Run node (``glm``: AR(1), or OLS); ``Model.HRF`` (as pybids' ``Convolve``);
``Contrasts`` with t and F tests and 2-D weights, ``DummyContrasts``; ``Edges`` checked.
Not run yet: Subject (``meta``) and Dataset nodes are checked but not fitted; the runner says
so in one warning naming them (:func:`glmflow.runners.bsm.run_bids_stats_model`). Refused
with one line: Session nodes, ``LowPassFilterCutoffHz``, ``Options.Mask``,
``AggregateAutocorrelations``, tests other than t, F and FEMA.
"""

from glmflow.core.bsm.graph import (
    RunDesign,
    is_bids_stats_model,
    is_bids_stats_model_file,
    load_graph,
    read_bids_stats_model,
    run_designs,
)
from glmflow.core.bsm.schema import check_model, convert_steps

__all__ = [
    "RunDesign",
    "check_model",
    "convert_steps",
    "is_bids_stats_model",
    "is_bids_stats_model_file",
    "load_graph",
    "read_bids_stats_model",
    "run_designs",
]
