"""glm-express's modelling objects on glmflow's cached graph.

``from glmflow.glm_express import Subject, GroupLevel, Aggregator, RestingState`` keeps a
glm-express 2.0.3 script's shape: the same constructor arguments and methods, each
translated into glmflow runner calls (:mod:`glmflow.runners`), so that every result is
glmflow's (cached, checked before compute, cluster-ready) and written as glmflow's BIDS
derivatives. The README's glm-express table maps every method and lists the deliberate
differences from glm-express.
"""

from glmflow.glm_express.aggregator import Aggregator
from glmflow.glm_express.group import GroupLevel
from glmflow.glm_express.project import UnsupportedError
from glmflow.glm_express.rest import RestingState
from glmflow.glm_express.subject import Subject

__all__ = ["Aggregator", "GroupLevel", "RestingState", "Subject", "UnsupportedError"]
