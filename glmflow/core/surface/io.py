"""Surface BOLD in and surface maps out: one hemisphere's GIFTI or one CIFTI file.

A *part* is one file a run's surface data live in: ``hemi-L|R_..._bold.func.gii`` (one
hemisphere of an fsaverage mesh) or ``..._bold.dtseries.nii`` (CIFTI: cortex vertices and
subcortical voxels, the brain models of its ``BrainModelAxis``). A part is read into the
``(n_volumes, n_vertices)`` array the GLM engine fits (vertices or grayordinates
in place of voxels). Vertices whose series are non-finite or constant are left out as bad
voxels are (:data:`glmflow.core.bold.MAX_BAD_FRACTION`); the part's *geometry* file
(``geometry.json``) records which, and maps are written back in the part's own format:
``.func.gii`` (one data array per map row) or ``.dscalar.nii`` (a ``ScalarAxis`` named
after the map, the run's brain models).
"""

from __future__ import annotations

import functools
import json
import os
import re
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from glmflow.core.bold import MAX_BAD_FRACTION, ExcludedVoxelsWarning
from glmflow.errors import DatasetError

GIFTI = ".func.gii"
CIFTI = ".dtseries.nii"
DSCALAR = ".dscalar.nii"
_STRUCTURE = {"L": "CortexLeft", "R": "CortexRight"}
_PLACEHOLDER = "glmflow-map-name-placeholder"


def part_kind(path: str | os.PathLike) -> str:
    """'gifti' or 'cifti' from the file name (anything else is refused)."""
    name = str(path)
    if name.endswith(GIFTI):
        return "gifti"
    if name.endswith((CIFTI, DSCALAR)):
        return "cifti"
    raise DatasetError(
        f"{path} is not surface BOLD: expected a {GIFTI} (one hemisphere) or a {CIFTI} "
        "(CIFTI dense time series) file"
    )


def brain_model_axis(path: str | os.PathLike) -> nib.cifti2.BrainModelAxis:
    """The grayordinates (columns) of a CIFTI file; a file without one is refused.

    Remembered per file version: parsing a 91k header's XML takes most of a second.
    """
    stat = os.stat(path)
    return _brain_model_axis(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=16)
def _brain_model_axis(path: str, mtime_ns: int, size: int) -> nib.cifti2.BrainModelAxis:
    img = nib.load(path)
    axes = [img.header.get_axis(i) for i in range(len(img.shape))]
    if len(axes) != 2 or not isinstance(axes[1], nib.cifti2.BrainModelAxis):
        kinds = ", ".join(type(a).__name__ for a in axes)
        raise DatasetError(
            f"CIFTI {path} has axes ({kinds}); expected (SeriesAxis, BrainModelAxis): a "
            "dense time series whose columns are grayordinates (fMRIPrep --cifti-output)"
        )
    return axes[1]


def n_vertices(path: str | os.PathLike) -> tuple[int, int]:
    """(vertices or grayordinates, volumes) of a part, from its header / data arrays."""
    if part_kind(path) == "cifti":
        axis = brain_model_axis(path)
        return len(axis), int(nib.Nifti2Image.from_filename(path).shape[4])
    img = nib.load(path)
    shapes = {d.data.shape for d in img.darrays}
    if len(img.darrays) == 1 and img.darrays[0].data.ndim == 2:
        return img.darrays[0].data.shape
    if len(shapes) != 1 or len(next(iter(shapes), ())) != 1:
        raise DatasetError(
            f"GIFTI {path} holds data arrays of shapes {sorted(shapes)}; expected one "
            "vector of vertex values per volume"
        )
    return next(iter(shapes))[0], len(img.darrays)


def _series(path: str) -> np.ndarray:
    """(n_volumes, n_vertices) in float64, as nilearn's ``SurfaceMasker`` gives surface data
    to ``FirstLevelModel`` (float32 data would put some vertices in another AR(1) bin than
    nilearn's on the same file: measured |dz| up to 2e-2 instead of 2e-15)."""
    if part_kind(path) == "cifti":
        # the data through the NIfTI-2 header alone: the CIFTI XML (checked at discovery)
        # costs more to parse than a 91k run's data to read
        img = nib.Nifti2Image.from_filename(path)
        shape = img.shape
        return _as_series(img.dataobj, shape[4], shape[5])
    img = nib.load(path)
    if len(img.darrays) == 1 and img.darrays[0].data.ndim == 2:
        return np.ascontiguousarray(img.darrays[0].data.T, dtype=np.float64)
    n_vert, n_vol = n_vertices(path)
    out = np.empty((n_vol, n_vert), np.float64)
    for t, darray in enumerate(img.darrays):
        out[t] = darray.data
    return out


# grayordinates converted at a time: a (volumes, block) float64 tile stays in cache
_BLOCK = 4096


def _as_series(proxy, n_volumes: int, n_columns: int) -> np.ndarray:
    """A CIFTI file's (volumes, grayordinates) in float64, C order: its data are stored
    grayordinate by grayordinate (NIfTI's Fortran order), so they are transposed block by
    block in cache (3x faster than numpy's whole-array conversion of the memory map)."""
    if proxy.slope != 1 or proxy.inter != 0 or proxy.order != "F":
        return np.asarray(proxy, dtype=np.float64).reshape(n_volumes, n_columns)
    raw = proxy.get_unscaled().reshape(n_volumes, n_columns, order="F")
    out = np.empty((n_volumes, n_columns), np.float64)
    for start in range(0, n_columns, _BLOCK):
        block = slice(start, start + _BLOCK)
        out[:, block] = raw[:, block]
    return out


@dataclass(frozen=True)
class SurfaceBold:
    """A part's kept series and which of its vertices were kept."""

    data: np.ndarray
    kept: np.ndarray
    source: str
    smoothing: tuple[dict[str, float], ...] = ()

    def record(self) -> dict[str, Any]:
        """Sidecar fields: vertices (or grayordinates) of the part and those left out, and
        how it was smoothed (one entry per graph: a hemisphere, or CIFTI's cortices and
        voxels)."""
        return {
            "SurfaceVertices": int(self.kept.size),
            "ExcludedVertices": int(self.kept.size - self.kept.sum()),
            **({"SurfaceSmoothing": list(self.smoothing)} if self.smoothing else {}),
        }


def read_surface_bold(path: str | os.PathLike) -> SurfaceBold:
    """Read one part; bad vertices left out (warned; more than the threshold is an error).
    :func:`glmflow.core.surface.smooth.read_smoothed_bold` smooths it too."""
    path = str(path)
    data = _series(path)
    # a sum is finite unless its series holds a NaN or an inf (float64: no overflow)
    finite = np.isfinite(data.sum(axis=0))
    constant = finite & (data == data[0]).all(axis=0)
    kept = finite & ~constant
    n_bad = int(kept.size - kept.sum())
    if n_bad:
        what = (
            f"{n_bad} of the {kept.size} vertices of {path} have no usable signal "
            f"({int((~finite).sum())} with NaN/inf values, {int(constant.sum())} constant)"
        )
        if n_bad > MAX_BAD_FRACTION * kept.size:
            raise DatasetError(
                f"{what}, more than {MAX_BAD_FRACTION:.0%}; check that its preprocessing succeeded"
            )
        warnings.warn(f"{what}; left out (their maps are 0)", ExcludedVoxelsWarning, 2)
        data = np.ascontiguousarray(data[:, kept])
    return SurfaceBold(data=data, kept=kept, source=path)


def write_geometry(bold: SurfaceBold, out_dir: str | os.PathLike) -> Path:
    """``geometry.json``: the part the maps are written like, and its kept vertices."""
    path = Path(out_dir) / "geometry.json"
    kept = np.flatnonzero(~bold.kept).tolist()
    info = {"source": bold.source, "n_vertices": int(bold.kept.size), "excluded": kept}
    path.write_text(json.dumps(info))
    return path


def read_geometry(path: str | os.PathLike) -> tuple[str, np.ndarray]:
    """(source part, kept-vertex mask) of a ``geometry.json``."""
    info = json.loads(Path(path).read_text())
    kept = np.ones(int(info["n_vertices"]), bool)
    kept[info["excluded"]] = False
    return info["source"], kept


def map_extension(source: str | os.PathLike) -> str:
    """Extension of the maps of a part: ``.func.gii`` or ``.dscalar.nii``."""
    return GIFTI if part_kind(source) == "gifti" else DSCALAR


def write_surface_map(
    values: np.ndarray, geometry: str | os.PathLike, path: str | os.PathLike, name: str
) -> Path:
    """Write kept-vertex ``values`` ((n_kept,) or (rows, n_kept)) like the part; 0 elsewhere."""
    source, kept = read_geometry(geometry)
    rows = np.atleast_2d(np.asarray(values, np.float32))
    full = np.zeros((rows.shape[0], kept.size), np.float32)
    full[:, kept] = rows
    return save_surface_map(full, source, path, name)


def save_surface_map(full: np.ndarray, source: str, path: str | os.PathLike, name: str) -> Path:
    """Write full-length rows (rows, n_vertices) in the format of part ``source``."""
    path = Path(path)
    full = np.atleast_2d(np.asarray(full, np.float32))
    if part_kind(source) == "cifti" and full.shape[0] == 1:
        return _save_dscalar_row(full, source, path, name)
    if part_kind(source) == "cifti":
        names = [f"{name}_{i}" for i in range(len(full))]
        axes = (nib.cifti2.ScalarAxis(names), brain_model_axis(source))
        img = nib.Cifti2Image(full, header=axes)
        img.nifti_header.set_intent("ConnDenseScalar")
        nib.save(img, path)
        return path
    hemi = "L" if "hemi-L" in Path(source).name else "R"
    meta = nib.gifti.GiftiMetaData({"AnatomicalStructurePrimary": _STRUCTURE[hemi]})
    arrays = [
        nib.gifti.GiftiDataArray(
            row,
            intent="NIFTI_INTENT_NONE",
            datatype="NIFTI_TYPE_FLOAT32",
            meta=nib.gifti.GiftiMetaData({"Name": name}),
        )
        for row in full
    ]
    nib.save(nib.gifti.GiftiImage(darrays=arrays, meta=meta), path)
    return path


_SERIES_MAP = re.compile(
    r'<MatrixIndicesMap[^>]*AppliesToMatrixDimension="0"[^>]*?(/>|>.*?</MatrixIndicesMap>)', re.S
)
_SCALAR_MAP = (
    '<MatrixIndicesMap AppliesToMatrixDimension="0" IndicesMapToDataType='
    f'"CIFTI_INDEX_TYPE_SCALARS"><NamedMap><MapName>{_PLACEHOLDER}</MapName></NamedMap>'
    "</MatrixIndicesMap>"
)


def _stored_xml(source: str) -> str | None:
    """The CIFTI XML of a little-endian NIfTI-2 file as stored (no parsing), or None."""
    with open(source, "rb") as f:
        if struct.unpack("<i", f.read(4))[0] != 540:
            return None
        f.seek(540)
        if f.read(4)[:1] != b"\x01":
            return None
        size, code = struct.unpack("<ii", f.read(8))
        return f.read(size - 8).decode().rstrip("\x00") if code == 32 else None


@functools.lru_cache(maxsize=16)
def _dscalar_xml(source: str, mtime_ns: int, size: int) -> str:
    """The CIFTI XML of a one-map dscalar on ``source``'s brain models, name left open:
    the source's own XML with its dimension-0 map made a scalar map (nibabel's way, building
    the axes and the XML again, takes 2.4 s on a 91k file, measured)."""
    stored = _stored_xml(source)
    if stored is not None and len(_SERIES_MAP.findall(stored)) == 1:
        return _SERIES_MAP.sub(_SCALAR_MAP, stored)
    axes = (nib.cifti2.ScalarAxis([_PLACEHOLDER]), brain_model_axis(source))
    return nib.cifti2.Cifti2Header.from_axes(axes).to_xml().decode()


def _save_dscalar_row(full: np.ndarray, source: str, path: Path, name: str) -> Path:
    """One-map dscalar written from the cached XML: nibabel rebuilds and copies a 91k
    header per image (1.3 s a map, measured), this costs milliseconds."""
    from xml.sax.saxutils import escape

    stat = os.stat(source)
    xml = _dscalar_xml(source, stat.st_mtime_ns, stat.st_size).replace(_PLACEHOLDER, escape(name))
    header = nib.Nifti2Header()
    header.set_data_shape((1, 1, 1, 1, 1, full.shape[1]))
    header.set_data_dtype(np.float32)
    header.set_intent("ConnDenseScalar")
    header.extensions.append(nib.nifti1.Nifti1Extension(32, xml.encode()))
    img = nib.Nifti2Image(full.reshape(header.get_data_shape()), None, header)
    img.to_filename(str(path))
    return path


def brain_models_key(path: str | os.PathLike) -> tuple:
    """(grayordinates, brain models) of a CIFTI map, to compare two maps' layouts: the
    stored XML less its dimension-0 (map names) part, read without parsing it (a 91k
    header's XML takes most of a second to parse); nibabel's axis when not stored so."""
    count = int(nib.Nifti2Image.from_filename(path).shape[-1])
    stored = _stored_xml(str(path))
    if stored is not None and len(_SERIES_MAP.findall(stored)) == 1:
        return count, _SERIES_MAP.sub("", stored)
    return count, brain_model_axis(path)


def read_surface_map(path: str | os.PathLike) -> np.ndarray:
    """A surface map's values, (n_vertices,) or (rows, n_vertices), float64."""
    if str(path).endswith(DSCALAR):  # the NIfTI-2 data alone: the XML is the writer's
        img = nib.Nifti2Image.from_filename(path)
        data = np.asarray(img.dataobj, np.float64).reshape(img.shape[4], img.shape[5])
    else:
        data = np.stack([np.asarray(d.data, np.float64) for d in nib.load(path).darrays])
    return data[0] if data.shape[0] == 1 else data
