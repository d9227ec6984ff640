"""Resting-state connectivity: the model, atlases, one-read extraction, measures, groups.

Modules, lowest first: :mod:`.spec` (the ``"connectivity"`` model section), :mod:`.atlas`
(atlases on the run's grid, spheres), :mod:`.extract` (the BOLD read once, nilearn's
cleaning), :mod:`.measures` (ConnectivityMeasure kinds, sparse inverse covariance, Fisher
z), :mod:`.files` (BIDS connectivity names and TSVs), :mod:`.run` (one run, a subject's
runs combined, staging), :mod:`.plan` (every run checked before compute), :mod:`.group`
(edge-wise GLM and inference) and :mod:`.group_files` (the group level from the files).
"""

from glmflow.core.rest.spec import ConnectivitySpec, connectivity_spec, is_connectivity_model

__all__ = ["ConnectivitySpec", "connectivity_spec", "is_connectivity_model"]
