"""Surfaces and CIFTI (issue 12): fMRIPrep's fsaverage GIFTI and fsLR 91k CIFTI runs.

Modules: :mod:`.meshes` (spaces, offline meshes, adjacency), :mod:`.io` (parts in, maps
out), :mod:`.discover` (runs found and checked), :mod:`.maps` (contrasts and fixed effects
through the volume level's functions). This module names the spaces and imports nothing,
so the command line can tell a surface space cheaply.
"""

from __future__ import annotations

#: Spaces whose runs are CIFTI dense time series (grayordinates).
CIFTI_SPACES = ("fsLR",)
#: Spaces whose runs are one GIFTI per hemisphere.
GIFTI_SPACES = ("fsaverage5", "fsaverage6", "fsaverage", "fsnative")


def is_surface_space(space: str) -> bool:
    """Whether ``space`` names surface data (GIFTI hemispheres or CIFTI)."""
    return space in CIFTI_SPACES or space in GIFTI_SPACES
