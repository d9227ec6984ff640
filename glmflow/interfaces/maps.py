"""The outputs every contrast-computing interface shares: aligned lists of maps."""

from __future__ import annotations

from nipype.interfaces.base import File, OutputMultiObject, TraitedSpec, traits


class MapListsOutputSpec(TraitedSpec):
    """One entry per computed contrast, aligned across the lists (DerivativesSink reads them)."""

    contrast_names = traits.List(traits.Str, desc="computed contrasts, in the order given")
    stat_types = traits.List(traits.Str, desc="'t' or 'F' per computed contrast")
    effect_files = OutputMultiObject(File(exists=True), desc="effect maps (4D for F)")
    variance_files = OutputMultiObject(File(exists=True), desc="variance maps")
    stat_files = OutputMultiObject(File(exists=True), desc="t or F maps")
    p_files = OutputMultiObject(File(exists=True), desc="one-sided p-value maps")
    z_files = OutputMultiObject(File(exists=True), desc="z maps")
