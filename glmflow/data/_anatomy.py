"""Template anatomy of the synthetic dataset: box, brain ellipsoid, tissues, truth regions.

Deterministic given a :class:`numpy.random.Generator`; the constants are the ground truth and
are copied verbatim into ``derivatives/truth/truth.json``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CENTER_MM = (0.0, -18.0, 18.0)  # MNI position of the box centre (middle of the brain)
SEMI_AXES = (0.37, 0.40, 0.355)  # brain ellipsoid semi-axes as fractions of the box: ~22 %
BRAIN_JITTER = 0.03  # per-subject relative change of the semi-axes
REGION_HALF_WIDTH = 0.1  # region box half-width as a fraction of the semi-axis (>= 1 voxel)
#: Region centres in ellipsoid coordinates (x right, y anterior, z superior; 1 = brain edge).
REGION_CENTERS = {
    "face": (0.55, -0.2, -0.3),
    "house": (-0.55, -0.2, -0.3),
    "both": (0.0, -0.55, 0.3),
    "rt": (0.55, 0.2, 0.3),
    "block": (-0.55, 0.2, 0.3),
    "group": (0.0, 0.5, -0.3),
    "null": (0.0, 0.15, 0.45),
}
CSF_CENTER, CSF_RADII = (0.0, 0.0, 0.0), (0.25, 0.3, 0.2)  # "ventricles", ellipsoid coords
WM_SHELL = (0.3, 0.5)  # "white matter": ellipsoid radius range, minus regions and CSF
TISSUE_GAIN = {"csf": 1.3, "wm": 0.85}  # baseline contrast relative to grey matter


@dataclass(frozen=True)
class Anatomy:
    """Template geometry shared by all subjects (voxel arrays have the box shape)."""

    shape: tuple[int, int, int]
    affine: np.ndarray
    coords: np.ndarray  # (3, *shape) ellipsoid coordinates of every voxel (brain: norm < 1)
    regions: dict[str, tuple[slice, slice, slice]]
    csf: np.ndarray
    wm: np.ndarray
    baseline: np.ndarray  # template baseline before the subject scale (tissue contrast)


def mni_like_affine(shape: tuple[int, int, int], voxel_size: float) -> np.ndarray:
    """Affine with the box centred at :data:`CENTER_MM` and MNI (0, 0, 0) on a voxel centre.

    For (97, 115, 97) at 2 mm this is exactly the MNI152NLin2009cAsym res-2 affine.
    """
    half = voxel_size * (np.asarray(shape) - 1) / 2
    origin = voxel_size * np.round((np.asarray(CENTER_MM) - half) / voxel_size)
    affine = np.diag([voxel_size] * 3 + [1.0])
    affine[:3, 3] = origin
    return affine


def region_boxes(shape: tuple[int, int, int]) -> dict[str, tuple[slice, slice, slice]]:
    """Voxel boxes of the truth regions for a box shape."""
    centre = (np.asarray(shape) - 1) / 2
    semi = np.asarray(SEMI_AXES) * shape
    half = np.maximum(1, np.round(REGION_HALF_WIDTH * semi)).astype(int)
    boxes = {}
    for name, pos in REGION_CENTERS.items():
        mid = np.round(centre + np.asarray(pos) * semi).astype(int)
        boxes[name] = tuple(
            slice(int(m - h), int(m + h + 1)) for m, h in zip(mid, half, strict=True)
        )
    return boxes


def layout_problem(shape: tuple[int, int, int]) -> str | None:
    """Say why the truth regions do not fit apart inside the brain of ``shape``, or None."""
    boxes = region_boxes(shape)
    coords = _ellipsoid_coords(shape)
    rho = np.sqrt((coords**2).sum(0))
    csf = _csf_mask(coords)
    taken = np.zeros(shape, dtype=int)
    for name, box in boxes.items():
        if any(s.start < 0 or s.stop > n for s, n in zip(box, shape, strict=True)):
            return f"region '{name}' falls outside the box"
        # margin for the per-subject shrink of the brain
        if rho[box].max() >= 0.95 or csf[box].any():
            return f"region '{name}' reaches the brain edge or the ventricles"
        # a one-voxel gap keeps the regions apart
        grown = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)
        if taken[grown].any():
            return f"region '{name}' touches another region"
        taken[box] = 1
    return None


def _ellipsoid_coords(shape: tuple[int, int, int]) -> np.ndarray:
    centre = (np.asarray(shape) - 1) / 2
    semi = np.asarray(SEMI_AXES) * shape
    grid = np.indices(shape, dtype=float)
    return (grid - centre[:, None, None, None]) / semi[:, None, None, None]


def _csf_mask(coords: np.ndarray) -> np.ndarray:
    rel = (coords - np.asarray(CSF_CENTER)[:, None, None, None]) / np.asarray(CSF_RADII)[
        :, None, None, None
    ]
    return (rel**2).sum(0) < 1


def make_anatomy(
    shape: tuple[int, int, int], voxel_size: float, rng: np.random.Generator
) -> Anatomy:
    """Build the template brain, tissue masks, regions and the smooth baseline."""
    coords = _ellipsoid_coords(shape)
    rho = np.sqrt((coords**2).sum(0))
    regions = region_boxes(shape)
    region_any = np.zeros(shape, dtype=bool)
    for box in regions.values():
        region_any[box] = True
    csf = _csf_mask(coords) & ~region_any
    wm = (rho >= WM_SHELL[0]) & (rho < WM_SHELL[1]) & ~csf & ~region_any
    # smooth intensity inhomogeneity: three random plane waves of about one cycle per brain
    field = np.zeros(shape)
    for _ in range(3):
        freq = rng.uniform(-1.0, 1.0, size=3)
        field += np.cos(np.pi * np.tensordot(freq, coords, axes=1) + rng.uniform(0, 2 * np.pi))
    baseline = 1 + 0.1 * field / 3
    baseline[csf] *= TISSUE_GAIN["csf"]
    baseline[wm] *= TISSUE_GAIN["wm"]
    return Anatomy(
        shape=tuple(shape),
        affine=mni_like_affine(shape, voxel_size),
        coords=coords,
        regions=regions,
        csf=csf,
        wm=wm,
        baseline=baseline,
    )


def subject_brain(anat: Anatomy, rng: np.random.Generator) -> np.ndarray:
    """Boolean brain mask: the template ellipsoid with jittered semi-axes."""
    scale = 1 + rng.uniform(-BRAIN_JITTER, BRAIN_JITTER, size=3)
    rho = np.sqrt(((anat.coords / scale[:, None, None, None]) ** 2).sum(0))
    return rho < 1
