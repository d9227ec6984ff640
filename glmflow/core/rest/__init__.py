"""Resting-state connectivity: the model, atlases, one-read extraction, measures, groups.

Modules, lowest first: :mod:`.spec` (the ``"connectivity"`` model section), :mod:`.atlas`
(atlases on the run's grid, spheres), :mod:`.extract` (the BOLD read once, nilearn's
cleaning), :mod:`.measures` (ConnectivityMeasure kinds, sparse inverse covariance, Fisher
z), :mod:`.files` (BIDS connectivity names and TSVs), :mod:`.run` (one run, a subject's
runs combined, staging), :mod:`.plan` (every run checked before compute), :mod:`.group`
(edge-wise GLM and inference) and :mod:`.group_files` (the group level from the files);
:mod:`.detect` tells a connectivity model file apart without importing any of them.
"""

from glmflow.core.rest.detect import is_connectivity_model


def __getattr__(name: str):
    # the model's classes import pandas (~0.3 s): loaded on first use, so that telling a
    # connectivity model apart (the CLI, a rerun that nothing touched) imports none of it
    if name in ("ConnectivitySpec", "connectivity_spec"):
        from glmflow.core.rest import spec

        return getattr(spec, name)
    raise AttributeError(f"module 'glmflow.core.rest' has no attribute {name!r}")


__all__ = ["ConnectivitySpec", "connectivity_spec", "is_connectivity_model"]
