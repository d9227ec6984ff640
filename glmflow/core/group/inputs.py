"""Group inputs: the subject maps (and a group mask) checked and loaded on one grid.

Headers are read and gzip trailers compared with them before any compute, so a truncated
or unreadable map is one line naming the file (issue 14), not a traceback from a fit.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nilearn.image import resample_img, resample_to_img

from glmflow.core.images import expected_bytes, stored_completely
from glmflow.errors import GroupModelError

ImageLike = str | PathLike | nib.Nifti1Image
_STAT_ENTITY = re.compile(r"(?:^|_)stat-(z|t|p|F)(?:_|\.)")
_REWRITE = "rerun the participant level to write it again"


def read_map_header(path: str | PathLike, what: str = "Map") -> nib.Nifti1Image:
    """A map's header (its data unread), refused in one line when unreadable or truncated.

    Truncation is found without reading the data: the gzip trailer (or the file size of a
    ``.nii``) must hold the header's offset plus the array's bytes; only a mismatch is
    confirmed by decompressing the file (a file with several gzip members).
    """
    path = Path(path)
    try:
        img = nib.load(path)
        expected = expected_bytes(img)
    except Exception as err:  # nibabel raises several types for a bad header or gzip stream
        raise GroupModelError(f"{what} {path} cannot be read ({err}); {_REWRITE}") from None
    if not stored_completely(img):
        raise GroupModelError(
            f"{what} {path} is truncated or corrupt (its header needs {expected} bytes of "
            f"image data); {_REWRITE}"
        )
    return img


def check_group_inputs(
    effect_files: Sequence[ImageLike],
    *,
    variance_files: Sequence[ImageLike] | None = None,
    target_affine: Sequence[float] | np.ndarray | None = None,
) -> None:
    """Check that maps exist, are readable effect maps (not z/t/p), are 3-D and share one grid.

    Maps on different grids are only allowed when ``target_affine`` resamples them.
    """
    files = list(effect_files) + list(variance_files or [])
    headers = []
    for item in files:
        if isinstance(item, nib.Nifti1Image):
            headers.append(("<in-memory image>", item))
            continue
        path = Path(item)
        match = _STAT_ENTITY.search(path.name)
        if match:
            raise GroupModelError(
                f"Group models take effect maps, but {path} is a stat-{match.group(1)} map; "
                "pass the stat-effect (and stat-variance) maps of the first level"
            )
        if not path.is_file():
            raise GroupModelError(f"Map {path} does not exist; check the path")
        headers.append((str(path), read_map_header(path)))
    for label, img in headers:
        if len(img.shape) < 3 or int(np.prod(img.shape[3:])) != 1:
            raise GroupModelError(
                f"Map {label} has shape {img.shape}; group models take one 3-D map per "
                "subject, split 4-D images first"
            )
    if target_affine is not None:
        return
    ref_label, ref = headers[0]
    for label, img in headers[1:]:
        if img.shape[:3] != ref.shape[:3] or not np.allclose(img.affine, ref.affine, atol=1e-4):
            raise GroupModelError(
                f"Maps are on different grids: {ref_label} has shape {ref.shape[:3]} and "
                f"affine {ref.affine.round(3).tolist()}, {label} has shape {img.shape[:3]} and "
                f"affine {img.affine.round(3).tolist()}; resample them or set target_affine "
                "(in a model file: group.target_affine)"
            )


def check_group_mask(
    mask: str | PathLike, maps: Sequence[str | PathLike], *, resampled: bool = False
) -> None:
    """A group mask must be readable; voxels of it outside the subject ``maps`` (0 or NaN in
    all) are left out by the fit (:func:`mask_with_data`), said here once with their
    count; on another grid than the maps (and unless the maps are ``resampled`` to a target
    grid) it warns, naming the grid every map will be resampled to (nilearn fits on the
    mask's grid)."""
    img = read_map_header(mask, "Group mask")
    _, left_out, size = mask_with_data(mask, maps)
    if left_out:
        warnings.warn(
            f"Group mask {mask}: {left_out} of its {size} voxels are 0 or NaN in every subject "
            "map (outside the brains); they are left out of the group fit",
            stacklevel=2,
        )
    ref = nib.load(maps[0])
    same = img.shape[:3] == ref.shape[:3] and np.allclose(img.affine, ref.affine, atol=1e-4)
    if same or resampled:
        return
    warnings.warn(
        f"Group mask {mask} is on another grid than the subject maps (shape "
        f"{ref.shape[:3]}, affine {ref.affine.round(3).tolist()}): every map is resampled to "
        f"the mask's grid, shape {img.shape[:3]} and affine {img.affine.round(3).tolist()}; "
        "resample the mask to the maps (nilearn.image.resample_to_img) to fit on their grid",
        stacklevel=2,
    )


def mask_with_data(mask: ImageLike, maps: Sequence[ImageLike]) -> tuple[nib.Nifti1Image, int, int]:
    """The group mask less its voxels that are 0 or NaN in every map (outside every brain).

    A fit there has a zero variance, and nilearn's statistics divide by it (a
    RuntimeWarning per contrast, issue 14). Returns (the mask on its own grid, the number of
    its voxels left out, the number it had); on another grid than the maps the voxels with
    data are taken at the nearest map voxel.
    """
    mask_img = mask if isinstance(mask, nib.Nifti1Image) else nib.load(mask)
    images = [m if isinstance(m, nib.Nifti1Image) else nib.load(m) for m in maps]
    data = np.zeros(images[0].shape[:3], bool)
    for img in images:
        values = np.asanyarray(img.dataobj).reshape(img.shape[:3])
        data |= np.isfinite(values) & (values != 0)
    has_data = nib.Nifti1Image(data.astype(np.uint8), images[0].affine)
    inside = np.asanyarray(mask_img.dataobj).reshape(mask_img.shape[:3]) != 0
    same = has_data.shape == inside.shape and np.allclose(has_data.affine, mask_img.affine)
    if not same:
        has_data = resample_to_img(
            has_data, mask_img, interpolation="nearest", force_resample=True, copy_header=True
        )
    kept = inside & (np.asanyarray(has_data.dataobj) > 0)
    kept_img = nib.Nifti1Image(kept.astype(np.uint8), mask_img.affine)
    return kept_img, int(inside.sum() - kept.sum()), int(inside.sum())


def as_affine(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """A target affine from 9 (3x3) or 16 (4x4) numbers in row order (the model's
    ``group.target_affine``, validated there), or a matrix."""
    array = np.asarray(values, dtype=float)
    if array.ndim == 2:
        return array
    return array.reshape(3, 3) if array.size == 9 else array.reshape(4, 4)


def load_maps(
    files: Sequence[ImageLike],
    *,
    target_affine: np.ndarray | None = None,
    target_shape: Sequence[int] | None = None,
) -> list[nib.Nifti1Image]:
    """Load maps once into memory as 3-D images (nilearn re-reads paths for every contrast).

    With ``target_affine``, maps are resampled (continuous interpolation) to one grid: the
    target grid, or, without ``target_shape``, the first map's grid under ``target_affine``.
    nilearn's SecondLevelModel cannot average maps of different shapes to learn its mask.
    """
    images = []
    for item in files:
        img = item if isinstance(item, nib.Nifti1Image) else nib.load(item)
        data = np.asanyarray(img.dataobj).reshape(img.shape[:3])
        images.append(nib.Nifti1Image(data, img.affine))
    if target_affine is None:
        return images
    reference = resample_img(images[0], target_affine=target_affine, target_shape=target_shape)
    affine, shape = reference.affine, reference.shape[:3]
    return [
        img
        if img.shape[:3] == shape and np.allclose(img.affine, affine)
        else resample_img(img, target_affine=affine, target_shape=shape)
        for img in images
    ]


def check_design_rows(
    effect_files: Sequence[ImageLike], design: pd.DataFrame | None, source: str
) -> list[ImageLike]:
    """The maps as a list, one per row of ``design``."""
    if design is None:
        raise GroupModelError(
            "A list of effect maps needs a design (one row per map); build one with "
            "make_group_design or read_design"
        )
    files = list(effect_files)
    if len(files) != len(design):
        raise GroupModelError(
            f"The design in {source} has {len(design)} rows but {len(files)} effect maps "
            "were given; give one row per map, in the same order"
        )
    return files
