"""``RestingState``'s pictures: a matrix as a heat map, a matrix as a connectome.

glm-express draws them with seaborn and nilearn; here both are nilearn's
(``plot_matrix``, ``plot_connectome``), written as PNG files and shown only when asked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _pyplot():
    import matplotlib

    if matplotlib.get_backend().lower() != "agg" and not matplotlib.is_interactive():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def matrix(values, labels, title: str, limits, lower_triangle: bool, target: Path | None,
           show: bool) -> None:  # fmt: skip
    """``values`` (its diagonal drawn as 0) with the node labels."""
    from nilearn import plotting

    plt = _pyplot()
    shown = np.array(values, dtype=float)
    np.fill_diagonal(shown, 0)
    vmin, vmax = limits
    plotting.plot_matrix(shown, labels=list(labels) if labels else None, title=title,
                         vmin=vmin, vmax=vmax, tri="lower" if lower_triangle else "full",
                         cmap="RdBu_r", figure=(12, 10))  # fmt: skip
    if target is not None:
        plt.savefig(target)
    if show:
        plt.show()
    plt.close("all")


def connectome(values, coords, title: str, folder: Path | None, show: bool,
               display_mode: str = "lyrz") -> None:  # fmt: skip
    """``values`` as edges between the nodes at ``coords`` (mm) on a glass brain."""
    from nilearn import plotting

    plt = _pyplot()
    shown = np.nan_to_num(np.array(values, dtype=float))
    target = str(folder / f"{title}_connectome.png") if folder is not None else None
    plotting.plot_connectome(shown, coords, title=title, display_mode=display_mode,
                             output_file=target)  # fmt: skip
    if show:
        plt.show()
    plt.close("all")


def parcel_coordinates(atlas_map: Any) -> np.ndarray:
    """Centres (mm) of a 3-D labels image's parcels, a 4-D atlas's maps (as glm-express),
    or an offline atlas's nodes."""
    from nilearn.image import load_img
    from nilearn.plotting import (
        find_parcellation_cut_coords,
        find_probabilistic_atlas_cut_coords,
    )

    from glmflow.core.atlases import COORDINATE_ATLASES, coordinate_atlas, volume_atlas

    if isinstance(atlas_map, str) and atlas_map in COORDINATE_ATLASES:
        return coordinate_atlas(atlas_map).coords
    if isinstance(atlas_map, str) and not Path(atlas_map).is_file():
        atlas_map = volume_atlas(atlas_map).image
    if len(load_img(atlas_map).shape) == 4:
        return find_probabilistic_atlas_cut_coords(maps_img=atlas_map)
    return find_parcellation_cut_coords(labels_img=atlas_map)


def node_coordinates(spec, meta: dict[str, Any], bold: str) -> np.ndarray:
    """The nodes of a connectivity call's matrix (the sidecar's), in mm."""
    from nilearn.plotting import find_parcellation_cut_coords

    from glmflow.core.atlases import volume_atlas

    if "NodeCoordinates" in meta:
        return np.asarray(meta["NodeCoordinates"], dtype=float)
    atlas = spec.atlas
    image = volume_atlas(atlas.name).image if atlas.name else spec.resolve(atlas.labels_img)
    coords, values = find_parcellation_cut_coords(labels_img=image, return_label_names=True)
    where = {int(v): c for v, c in zip(values, coords, strict=True)}
    return np.asarray([where[int(i)] for i in meta["NodeIndices"]])


__all__ = ["connectome", "matrix", "node_coordinates", "parcel_coordinates"]
