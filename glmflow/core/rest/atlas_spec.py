"""The ``"atlas"`` of a connectivity model (:mod:`glmflow.core.rest.spec`), validated.

One of an offline parcellation, a labels image, a 4-D probabilistic atlas (a file or an
offline one) or coordinates; every field checked here, once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from glmflow.core.model import validation as check
from glmflow.errors import ModelSpecError

CoordinateAtlas = Literal["power_2011", "dosenbach_2010", "seitzman_2018"]
VolumeAtlas = Literal["harvard_oxford", "aal", "juelich"]
MapsAtlas = Literal["harvard_oxford", "juelich"]
MissingLabels = Literal["error", "drop"]


def check_coordinate(value: Any, name: str) -> tuple[float, float, float]:
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != 3:
        raise check.bad(name, "[x, y, z] in mm", value)
    return tuple(check.number(v, name) for v in value)


@dataclass(frozen=True)
class AtlasSpec(check.Spec):
    """Exactly one of ``name`` (an offline parcellation of :mod:`glmflow.core.atlases`),
    ``labels_img`` (+ ``labels_tsv`` with ``index`` and ``name`` columns), ``maps_img`` (a
    4-D probabilistic atlas, read by nilearn's NiftiMapsMasker; ``labels_tsv`` indices are
    its 1-based volume numbers), ``maps`` (an offline probabilistic atlas) or
    ``coordinates`` (a bundled coordinate atlas or a list of [x, y, z]; spheres of
    ``radius`` mm). ``label``
    is the ``seg-`` label of the outputs (default: the name without non-alphanumerics).
    ``exclude_labels`` leaves label values out (coordinates: their 1-based positions);
    ``missing_labels`` "drop" leaves out, with a warning, the labels (spheres) with no voxel
    in some run's mask (for every run, so that all
    matrices have the same nodes), "error" (default) refuses them."""

    name: str | None = None
    labels_img: str | None = None
    labels_tsv: str | None = None
    maps_img: str | None = None
    maps: str | None = None
    coordinates: str | tuple[tuple[float, float, float], ...] | None = None
    names: tuple[str, ...] = ()
    radius: float = 5.0
    allow_overlap: bool = False
    label: str | None = None
    exclude_labels: tuple[int, ...] = ()
    missing_labels: MissingLabels = "error"

    def __post_init__(self) -> None:
        keys = ("name", "labels_img", "maps_img", "maps", "coordinates")
        given = [k for k in keys if getattr(self, k) is not None]
        if len(given) != 1:
            raise ModelSpecError(
                'The atlas needs exactly one of "name", "labels_img", "maps_img", "maps" or '
                '"coordinates"; got ' + (", ".join(given) or "none")
            )
        if self.name is not None:
            check.choice(self.name, "name", VolumeAtlas)
        if self.maps is not None:
            check.choice(self.maps, "maps", MapsAtlas)
        if isinstance(self.exclude_labels, str) or not isinstance(self.exclude_labels, Sequence):
            raise check.bad("exclude_labels", "a list of label values", self.exclude_labels)
        excluded = tuple(check.integer(v, "exclude_labels", low=1) for v in self.exclude_labels)
        check.assign(self, "exclude_labels", tuple(sorted(set(excluded))))
        check.choice(self.missing_labels, "missing_labels", MissingLabels)
        if self.labels_tsv is not None and self.labels_img is None and self.maps_img is None:
            raise check.FieldError(
                "labels_tsv", 'is only used with "labels_img" or "maps_img"; remove it'
            )
        for key in ("labels_img", "maps_img", "labels_tsv"):
            if getattr(self, key) is not None:
                check.text(getattr(self, key), key)
        self._check_coordinates()
        check.number(self.radius, "radius", low=0)
        check.flag(self.allow_overlap, "allow_overlap")
        if self.label is not None:
            check.label(self.label, "label")

    def _check_coordinates(self) -> None:
        coords, names = self.coordinates, check.texts(self.names, "names")
        check.assign(self, "names", names)
        if isinstance(coords, str):
            check.choice(coords, "coordinates", CoordinateAtlas)
        elif coords is not None:
            if not isinstance(coords, Sequence) or not coords:
                raise check.bad("coordinates", "a list of [x, y, z] or an atlas name", coords)
            coords = tuple(check_coordinate(c, "coordinates") for c in coords)
            check.assign(self, "coordinates", coords)
            if names and len(names) != len(coords):
                raise check.FieldError(
                    "names", f"has {len(names)} names for {len(coords)} coordinates"
                )
        if names and not isinstance(coords, tuple):
            raise check.FieldError("names", "names a list of coordinates; remove it")

    @property
    def kind(self) -> str:
        """ "labels" (a parcellation), "maps" (probabilistic) or "spheres" (coordinates)."""
        if self.coordinates is not None:
            return "spheres"
        return "maps" if self.maps_img is not None or self.maps is not None else "labels"

    @property
    def seg(self) -> str:
        """The ``seg-`` label of the outputs."""
        if self.label is not None:
            return self.label
        source = self.name or self.maps
        source = source or (self.coordinates if isinstance(self.coordinates, str) else None)
        image = self.labels_img or self.maps_img
        source = source or (Path(image).name.split(".")[0] if image else "")
        return "".join(c for c in source if c.isalnum()) or "custom"


__all__ = ["AtlasSpec", "CoordinateAtlas", "MapsAtlas", "MissingLabels", "VolumeAtlas",
           "check_coordinate"]  # fmt: skip
