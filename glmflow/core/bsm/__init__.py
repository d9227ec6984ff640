"""BIDS Stats Models (BSM): model files of FitLins, bidspm and OpenNeuro's model zoo.

A BSM file is checked (:mod:`.schema`: keys, levels, contrasts, edges; pre-1.0 ``Steps``
converted with one warning) and loaded with pybids' ``BIDSStatsModelsGraph``
(:mod:`.graph`), which provides every variable, ``Input`` selector and transformation. The run
node becomes one design per run: pybids' ``X`` (after ``Convolve``) plus the cosine drift of
``Options.HighPassFilterCutoffHz``, fitted by glmflow's engine (AR(1)); its ``Contrasts`` and
``DummyContrasts`` become glmflow contrasts over ``X``'s columns.

Supported: Run nodes (``glm``: AR(1)), fitted in a cached Nipype graph; Subject and Dataset
nodes (:mod:`.higher`: ``meta`` or a ``FEMA`` test = precision-weighted fixed effects,
``glm`` = OLS on the effect maps, participants.tsv variables through pybids), fitted after the
graph with glmflow's group engine (not cached yet); ``Model.HRF`` (as pybids' ``Convolve``);
``Contrasts`` with t and F tests and 2-D weights, ``DummyContrasts``; ``Edges`` with
``Filter``; several nodes at one level. Refused with one line: Session nodes,
``LowPassFilterCutoffHz``, ``Options.Mask``, ``AggregateAutocorrelations``, tests other than
t, F and FEMA, an F contrast feeding a later node.
"""

from glmflow.core.bsm.graph import (
    RunDesign,
    is_bids_stats_model,
    is_bids_stats_model_file,
    load_graph,
    read_bids_stats_model,
    run_designs,
)
from glmflow.core.bsm.higher import UnitMap, fit_later_nodes
from glmflow.core.bsm.schema import check_model, convert_steps

__all__ = [
    "RunDesign",
    "UnitMap",
    "check_model",
    "convert_steps",
    "fit_later_nodes",
    "is_bids_stats_model",
    "is_bids_stats_model_file",
    "load_graph",
    "read_bids_stats_model",
    "run_designs",
]
