"""Atlases of a connectivity model: a labels image on the run's grid, maps, or spheres.

Named parcellations and the bundled coordinate atlases come from
:mod:`glmflow.core.atlases` (offline); a user's labels image comes with a BIDS
``dseg.tsv`` (``index`` and ``name`` columns). Semantics are nilearn's maskers':
``NiftiLabelsMasker`` (labels resampled to the data's grid by nearest neighbour, voxels
outside the mask are background) and ``NiftiSpheresMasker`` (mask voxels within ``radius``
mm of the seed, plus the voxel nearest to it). A label or a sphere with no voxel in the
run's mask is an error naming it: its time series would be undefined. A probabilistic
atlas (``maps``: one 4-D volume per region) is read by nilearn's ``NiftiMapsMasker``
(maps resampled to the data's grid, continuous interpolation); a map with no weight in
the run's mask is refused likewise. Maps overlap by nature: no overlap check applies.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from glmflow.core.images import load_image
from glmflow.core.rest.spec import AtlasSpec, ConnectivitySpec
from glmflow.errors import DatasetError, ModelSpecError


class ResampledAtlasWarning(UserWarning):
    """An atlas on another grid than the BOLD was resampled to it (nearest neighbour)."""


@dataclass(frozen=True)
class Atlas:
    """Resolved atlas: ``labels_img`` + ``indices`` (labels) or ``coordinates`` (spheres)."""

    kind: str
    seg: str
    names: tuple[str, ...]
    labels_img: str | None = None
    indices: tuple[int, ...] = ()
    coordinates: tuple[tuple[float, float, float], ...] = ()
    radius: float = 5.0
    allow_overlap: bool = False
    source: str = ""
    name: str | None = None
    maps_img: str | None = None

    def image(self) -> nib.Nifti1Image:
        """The labels image (an offline atlas is built in memory, a user's read); for
        ``maps``, the 4-D image of the kept maps (volumes ``indices`` - 1)."""
        if self.kind == "maps":
            from nilearn.image import index_img

            img = load_image(self.maps_img, "Atlas")
            return index_img(img, [i - 1 for i in self.indices])
        if self.name is not None:
            from glmflow.core.atlases import volume_atlas

            return volume_atlas(self.name).image
        return load_image(self.labels_img, "Atlas")


def resolve_atlas(spec: ConnectivitySpec) -> Atlas:
    """The model's atlas with its files and names (model-time checks only)."""
    atlas = spec.atlas
    if atlas is None:
        raise ModelSpecError(f"The connectivity model {spec.source} has no atlas")
    if atlas.coordinates is not None:
        found = _coordinates(atlas)
    elif atlas.name is not None:
        found = _named(atlas)
    elif atlas.kind == "maps":
        found = _maps(atlas, spec)
    else:
        img = _user_file(spec, "labels_img")
        tsv = spec.resolve(atlas.labels_tsv) if atlas.labels_tsv else None
        indices, names = _image_labels(img, tsv)
        found = Atlas("labels", atlas.seg, names, img, indices, source=img)
    unknown = sorted(set(atlas.exclude_labels) - set(found.indices))
    if unknown:
        raise ModelSpecError(
            f"'atlas.exclude_labels' lists {unknown[0]}, which is not a label of atlas "
            f"{found.source} ({spec.source}); remove it"
        )
    keep = [i for i, v in enumerate(found.indices) if v not in atlas.exclude_labels]
    coordinates = tuple(found.coordinates[i] for i in keep) if found.coordinates else ()
    return dataclasses.replace(
        found,
        indices=tuple(found.indices[i] for i in keep),
        names=tuple(found.names[i] for i in keep),
        coordinates=coordinates,
    )


def _user_file(spec: ConnectivitySpec, key: str) -> str:
    given = getattr(spec.atlas, key)
    img = spec.resolve(given)
    if not Path(img).is_file():
        raise ModelSpecError(
            f"'atlas.{key}' {given} does not exist (looked for {img}; "
            f"relative paths start at the folder of {spec.source})"
        )
    return img


def _maps(atlas: AtlasSpec, spec: ConnectivitySpec) -> Atlas:
    """A probabilistic atlas: the user's 4-D ``maps_img`` or an offline one (``maps``)."""
    if atlas.maps is not None:
        from glmflow.core.atlases import VOLUME_ATLASES, probabilistic_atlas

        path, labels = probabilistic_atlas(atlas.maps)
        description, licence = VOLUME_ATLASES[atlas.maps]
        return Atlas(
            "maps", atlas.seg, tuple(labels.values()), indices=tuple(labels),
            source=f"{description} ({licence}; probability maps)", maps_img=str(path),
        )  # fmt: skip
    img = _user_file(spec, "maps_img")
    shape = nib.load(img).shape
    if len(shape) != 4:
        raise DatasetError(
            f"Atlas {img} (atlas.maps_img) is a {len(shape)}-D image of shape {shape}; a "
            "probabilistic atlas is 4-D, one map per region: pass a 3-D labels image as "
            '"labels_img" instead'
        )
    indices = tuple(range(1, shape[3] + 1))
    names = tuple(str(i) for i in indices)
    if atlas.labels_tsv:
        tsv = spec.resolve(atlas.labels_tsv)
        table = pd.read_csv(tsv, sep="\t", dtype={"name": str})
        if list(table.get("index", ())) != list(indices) or "name" not in table:
            raise DatasetError(
                f"Atlas table {tsv} needs 'index' and 'name' columns with one row per map "
                f"of {img}, indices 1..{shape[3]} in order (its volume numbers)"
            )
        names = tuple(table["name"])
    return Atlas("maps", atlas.seg, names, indices=indices, source=img, maps_img=img)


def maps_on_grid(atlas: Atlas, shape, affine, where: str) -> nib.Nifti1Image:
    """The kept maps on the BOLD grid, resampled as nilearn's ``NiftiMapsMasker`` does
    (continuous, ``resampling_target="data"``) with a :class:`ResampledAtlasWarning`."""
    img = atlas.image()
    if img.shape[:3] == tuple(shape[:3]) and np.allclose(img.affine, affine):
        return img
    from nilearn.image import resample_img

    warnings.warn(
        f"Atlas {atlas.maps_img} (shape {img.shape[:3]}) is not on the grid of {where} "
        f"(shape {tuple(shape[:3])}): its maps are resampled to it (continuous), as nilearn's "
        "NiftiMapsMasker does; give an atlas in the BOLD's space and resolution to avoid it",
        ResampledAtlasWarning,
        stacklevel=3,
    )
    return resample_img(
        img, target_affine=affine, target_shape=shape[:3], interpolation="continuous",
        force_resample=True, copy_header=True,
    )  # fmt: skip


def empty_maps(maps: nib.Nifti1Image, atlas: Atlas, mask: np.ndarray) -> list[tuple[int, str]]:
    """The (index, name) of the maps (:func:`maps_on_grid`) with no weight in ``mask``."""
    data = np.asarray(maps.dataobj)
    weight = np.abs(data[mask]).sum(axis=0)
    return [(i, n) for i, n, w in zip(atlas.indices, atlas.names, weight, strict=True) if w == 0]


def _image_labels(img: str, tsv: str | None) -> tuple[tuple[int, ...], tuple[str, ...]]:
    data = np.asanyarray(load_image(img, "Atlas").dataobj)
    if data.ndim != 3:
        raise DatasetError(f"Atlas {img} must be a 3D labels image; got shape {data.shape}")
    present = [int(v) for v in np.unique(data) if v != 0]
    if tsv is None:
        return tuple(present), tuple(str(v) for v in present)
    table = pd.read_csv(tsv, sep="\t", dtype={"name": str})
    if not {"index", "name"} <= set(table.columns):
        raise DatasetError(
            f"Atlas table {tsv} needs 'index' and 'name' columns (BIDS dseg.tsv); it has "
            f"{', '.join(table.columns)}"
        )
    table = table[table["index"] != 0]
    missing = sorted(set(table["index"]) - set(present))
    if missing:
        name = table.set_index("index").loc[missing[0], "name"]
        raise DatasetError(
            f"Atlas table {tsv} lists index {missing[0]} ({name}) "
            f"that labels no voxel of {img}; remove the row or use the matching image"
        )
    extra = sorted(set(present) - set(table["index"]))
    if extra:
        raise DatasetError(
            f"Atlas {img} has label {extra[0]} that {tsv} does not name; add a row for it"
        )
    table = table.sort_values("index")
    return tuple(int(v) for v in table["index"]), tuple(table["name"])


def _named(atlas: AtlasSpec) -> Atlas:
    from glmflow.core.atlases import volume_atlas

    found = volume_atlas(atlas.name)
    present = {int(v) for v in np.unique(np.asarray(found.image.dataobj)) if v != 0}
    indices = tuple(sorted(v for v in found.labels if v in present))
    return Atlas(
        "labels", atlas.seg, tuple(found.labels[v] for v in indices), indices=indices,
        source=f"{found.description} ({found.licence}; {found.source})", name=atlas.name,
    )  # fmt: skip


def _coordinates(atlas: AtlasSpec) -> Atlas:
    coords, names = atlas.coordinates, atlas.names
    if isinstance(coords, str):
        from glmflow.core.atlases import coordinate_atlas

        found = coordinate_atlas(coords)
        coords, names = tuple(map(tuple, found.coords.tolist())), found.labels
    names = names or tuple(f"roi{i + 1:03d}" for i in range(len(coords)))
    return Atlas(
        "spheres", atlas.seg, names, indices=tuple(range(1, len(coords) + 1)),
        coordinates=coords, radius=atlas.radius,
        allow_overlap=atlas.allow_overlap, source=str(atlas.coordinates)[:60],
    )  # fmt: skip


def grid_labels(atlas: Atlas, shape, affine, mask: np.ndarray, where: str) -> np.ndarray:
    """The atlas labels on the BOLD grid: 0 outside ``mask`` and for labels left out.

    Resampled by nearest neighbour with a :class:`ResampledAtlasWarning` when its grid is
    not the BOLD's (nilearn's ``NiftiLabelsMasker`` with ``resampling_target="data"``).
    """
    img = atlas.image()
    label = atlas.name or atlas.labels_img
    if img.shape[:3] != tuple(shape[:3]) or not np.allclose(img.affine, affine):
        from nilearn.image import resample_img

        warnings.warn(
            f"Atlas {label} (shape {img.shape[:3]}) is not on the grid of {where} (shape "
            f"{tuple(shape[:3])}): resampled to it by nearest neighbour, as nilearn's "
            "NiftiLabelsMasker does; give an atlas in the BOLD's space and resolution to avoid it",
            ResampledAtlasWarning,
            stacklevel=3,
        )
        img = resample_img(
            img, target_affine=affine, target_shape=shape[:3], interpolation="nearest",
            force_resample=True, copy_header=True,
        )  # fmt: skip
    labels = np.asarray(img.dataobj).astype(np.int64)
    labels[~mask | ~np.isin(labels, atlas.indices)] = 0
    return labels


def missing_labels(labels: np.ndarray, atlas: Atlas) -> list[tuple[int, str]]:
    """The atlas' (index, name) pairs with no voxel in ``labels`` (:func:`grid_labels`)."""
    counts = np.bincount(labels.ravel(), minlength=max(atlas.indices) + 1)
    return [(i, n) for i, n in zip(atlas.indices, atlas.names, strict=True) if counts[i] == 0]


def labels_on_grid(atlas: Atlas, shape, affine, mask: np.ndarray, where: str) -> np.ndarray:
    """:func:`grid_labels`, refusing a label with no voxel left in the mask (DatasetError)."""
    labels = grid_labels(atlas, shape, affine, mask, where)
    refuse_missing(missing_labels(labels, atlas), atlas, where)
    return labels


def refuse_missing(missing: list[tuple[int, str]], atlas: Atlas, where: str) -> None:
    """Raise DatasetError for the first label (map) with no voxel (weight) in the mask."""
    if missing:
        index, name = missing[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        what = f"map {index} ({name}){more} has no weight" if atlas.kind == "maps" else (
            f"label {index} ({name}){more} has no voxel")  # fmt: skip
        raise DatasetError(
            f"Atlas {atlas.name or atlas.labels_img or atlas.maps_img} {what} "
            f'in the brain mask of {where}; set "missing_labels": "drop" in the atlas, list '
            'it in "exclude_labels", or use an atlas that the mask covers'
        )


def sphere_voxels(
    atlas: Atlas, affine, mask: np.ndarray, where: str, *, allow_empty: bool = False
) -> list[np.ndarray]:
    """For each coordinate, the C-order indices (among the mask's voxels) of its sphere.

    nilearn's ``NiftiSpheresMasker``: mask voxels within ``radius`` mm, plus the voxel
    nearest to the seed when it is in the mask. An empty sphere raises DatasetError (is an
    empty array with ``allow_empty``).
    """
    from sklearn.neighbors import NearestNeighbors

    ijk = np.argwhere(mask)
    world = nib.affines.apply_affine(affine, ijk)
    position = {tuple(v): i for i, v in enumerate(ijk)}
    seeds = np.asarray(atlas.coordinates, dtype=float)
    graph = NearestNeighbors(radius=atlas.radius).fit(world).radius_neighbors_graph(seeds)
    graph = graph.tolil()
    nearest = np.round(nib.affines.apply_affine(np.linalg.inv(affine), seeds)).astype(int)
    truncated = {tuple(v): i for i, v in reversed(list(enumerate(world.astype(int).tolist())))}
    spheres = []
    for i, (row, near) in enumerate(zip(graph.rows, nearest, strict=True)):
        members = set(row)
        if tuple(near) in position:
            members.add(position[tuple(near)])
        # nilearn also adds the voxel whose mm coordinates, truncated, equal the seed's
        own = truncated.get(tuple(int(c) for c in seeds[i]))
        if own is not None:
            members.add(own)
        if not members and allow_empty:
            spheres.append(np.zeros(0, dtype=np.int64))
            continue
        if not members:
            x, y, z = atlas.coordinates[i]
            raise DatasetError(
                f"Seed {atlas.names[i]} at ({x:g}, {y:g}, {z:g}) mm is outside the brain: no "
                f"voxel of the mask of {where} within {atlas.radius:g} mm; check the "
                "coordinates' space (MNI mm) or enlarge the radius"
            )
        spheres.append(np.array(sorted(members), dtype=np.int64))
    if not atlas.allow_overlap:
        _check_overlap(spheres, atlas)
    return spheres


def _check_overlap(spheres: list[np.ndarray], atlas: Atlas) -> None:
    seen: dict[int, int] = {}
    for i, sphere in enumerate(spheres):
        for voxel in sphere.tolist():
            if voxel in seen:
                raise DatasetError(
                    f"Spheres {atlas.names[seen[voxel]]} and {atlas.names[i]} of atlas "
                    f"{atlas.seg} overlap (radius {atlas.radius:g} mm); set "
                    '"allow_overlap": true or a smaller radius'
                )
            seen[voxel] = i
