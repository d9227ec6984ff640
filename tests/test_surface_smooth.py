"""Surface smoothing (issue 12): the achieved FWHM measured on meshes against the requested one.

The FWHM of a smoothing is measured from its kernel: an impulse smoothed, its second moment
about the impulse's vertex (sigma^2 per axis = sum w d^2 / (D sum w), FWHM = 2.3548 sigma).
On a flat triangular lattice (1 mm edges) it is the requested FWHM exactly (the step
count's derivation); on fsaverage5's midthickness, with Euclidean distances on an irregular
folded mesh, measured medians 5.5 mm for 6 and 9.7 mm for 10 (over 20 vertices).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from glmflow.core.surface.meshes import fsaverage5_mesh, hemisphere_adjacency, mesh_adjacency
from glmflow.core.surface.smooth import FWHM_PER_SIGMA, plan_smoothing, smooth_on_graph


def kernel_fwhm(weights: np.ndarray, coords: np.ndarray, centre: int, dim: int = 2) -> float:
    d2 = ((coords - coords[centre]) ** 2).sum(axis=1)
    return FWHM_PER_SIGMA * math.sqrt((weights * d2).sum() / weights.sum() / dim)


def lattice(n: int = 61) -> tuple[np.ndarray, object, int]:
    """A flat triangular lattice of n x n vertices, 1 mm edges; its centre vertex."""
    ii, jj = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    coords = np.stack([jj + 0.5 * (ii % 2), ii * math.sqrt(3) / 2, 0 * ii], -1).reshape(-1, 3)
    index = ii * n + jj
    faces = []
    for i in range(n - 1):
        for j in range(n - 1):
            a, b, c, d = index[i, j], index[i, j + 1], index[i + 1, j], index[i + 1, j + 1]
            faces += [(a, b, c), (b, d, c)] if i % 2 == 0 else [(a, b, d), (a, d, c)]
    return coords.astype(float), mesh_adjacency(np.array(faces), n * n), index[n // 2, n // 2]


@pytest.mark.parametrize("fwhm", [3.0, 8.0])
def test_achieved_fwhm_on_a_flat_mesh_is_the_requested_one(fwhm):
    coords, adjacency, centre = lattice()
    impulse = np.zeros(len(coords))
    impulse[centre] = 1.0
    smoothed, plan = smooth_on_graph(impulse, adjacency, coords, fwhm)
    assert kernel_fwhm(smoothed, coords, centre) == pytest.approx(fwhm, rel=1e-6)
    assert plan.weight <= 0.5 and smoothed.min() >= 0
    assert smoothed.sum() == pytest.approx(1.0)  # a regular mesh: mass kept


def test_achieved_fwhm_on_fsaverage5_within_ten_percent():
    coords = (fsaverage5_mesh("L", "pial")[0] + fsaverage5_mesh("L", "white_matter")[0]) / 2
    adjacency = hemisphere_adjacency("fsaverage5", "L")
    vertices = np.random.default_rng(0).choice(len(coords), 20, replace=False)
    impulses = np.zeros((20, len(coords)))
    impulses[np.arange(20), vertices] = 1.0
    for fwhm in (6.0, 10.0):
        smoothed, plan = smooth_on_graph(impulses, adjacency, coords, fwhm)
        measured = [kernel_fwhm(w, coords, v) for w, v in zip(smoothed, vertices, strict=True)]
        assert abs(np.median(measured) / fwhm - 1) < 0.10
    assert plan.steps == 8  # mean edge 3.1 mm: few steps on fsaverage5
    assert plan_smoothing(10.0, 1.0).steps == 73  # on 1 mm edges, (FWHM / 2.3548)^2 / 0.25


def test_read_smoothed_bold_smooths_within_kept_vertices(tmp_path):
    from glmflow.core.bold import ExcludedVoxelsWarning
    from glmflow.core.surface.smooth import read_smoothed_bold

    rng = np.random.default_rng(1)
    data = rng.standard_normal((5, 10242)).astype(np.float32) + 100
    data[:, :30] = 7.0  # constant: left out, and out of the smoothing
    path = tmp_path / "sub-01_task-x_hemi-L_space-fsaverage5_bold.func.gii"
    arrays = [nib.gifti.GiftiDataArray(row, datatype="NIFTI_TYPE_FLOAT32") for row in data]
    nib.save(nib.gifti.GiftiImage(darrays=arrays), path)
    with pytest.warns(ExcludedVoxelsWarning, match="30 of the 10242 vertices"):
        bold = read_smoothed_bold(path, smoothing_fwhm=6.0)
    kept = np.arange(10242) >= 30
    coords = (fsaverage5_mesh("L", "pial")[0] + fsaverage5_mesh("L", "white_matter")[0]) / 2
    adjacency = hemisphere_adjacency("fsaverage5", "L")[kept][:, kept]
    expected, plan = smooth_on_graph(data[:, kept], adjacency, coords[kept], 6.0)
    assert np.abs(bold.data - expected).max() < 1e-9
    assert bold.data.std(axis=0).mean() < 0.8 * data[:, kept].std(axis=0).mean()
    assert bold.record()["SurfaceSmoothing"] == [plan.record()]
    assert bold.record()["SurfaceSmoothing"][0]["Iterations"] == 3


def test_cifti_smoothing_stays_within_cortex_and_voxels(tmp_path):
    """A 91k CIFTI: each cortex on fsLR's midthickness (2-D), the subcortical voxels on
    their face-neighbour graph (3-D, 2 mm): an impulse in a voxel reaches no vertex, and its
    FWHM the requested one within 10 % (measured 5.6 for 6: the kernel meets the edge of the
    structure)."""
    from glmflow.core.surface.smooth import part_graph, smooth_part
    from glmflow.data.surface import brain_models

    axis = brain_models()
    path = tmp_path / "x.dscalar.nii"
    img = nib.Cifti2Image(np.zeros((1, len(axis)), np.float32),
                          header=(nib.cifti2.ScalarAxis(["x"]), axis))  # fmt: skip
    nib.save(img, path)
    graph = part_graph(path)
    assert [len(index) for index, *_ in graph.blocks] == [29696, 29716, 31870]
    assert [dim for *_, dim in graph.blocks] == [2, 2, 3]
    voxels, _, mm, _ = graph.blocks[2]
    centre = int(np.argmin(((mm - np.median(mm, axis=0)) ** 2).sum(axis=1)))
    impulse = np.zeros((1, len(axis)))
    impulse[0, voxels[centre]] = 1.0
    smoothed, records = smooth_part(impulse, np.ones(len(axis), bool), graph, 6.0)
    assert np.abs(smoothed[0, : 29696 + 29716]).max() == 0
    measured = kernel_fwhm(smoothed[0, voxels], mm, centre, dim=3)
    assert abs(measured / 6.0 - 1) < 0.10
    assert [r["MeanEdgeLength"] for r in records][2] == pytest.approx(2.0)


def test_read_node_smooths_and_records_it(tmp_path):
    from nipype.pipeline import engine as pe

    from glmflow.interfaces.surface import ReadSurfaceBold

    data = np.random.default_rng(2).standard_normal((4, 10242)).astype(np.float32)
    path = tmp_path / "sub-01_task-x_hemi-R_space-fsaverage5_bold.func.gii"
    arrays = [nib.gifti.GiftiDataArray(row, datatype="NIFTI_TYPE_FLOAT32") for row in data]
    nib.save(nib.gifti.GiftiImage(darrays=arrays), path)
    node = pe.Node(ReadSurfaceBold(bold_file=str(path), smoothing_fwhm=6.0), name="read",
                   base_dir=tmp_path)  # fmt: skip
    outputs = node.run().outputs
    record = json.loads(Path(outputs.record_file).read_text())
    assert record["SurfaceSmoothing"][0]["FWHM"] == 6.0
    assert np.load(outputs.data_file).std() < 0.8 * data.std()
