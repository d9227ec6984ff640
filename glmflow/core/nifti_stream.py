"""Stream the volumes of a NIfTI file as stored: one read, ISA-L inflation, clear errors.

Used by :mod:`glmflow.core.bold`; a file that is truncated or corrupt (a gzip stream that
ends early, a CRC that fails) is one line naming the file and the volume, never a traceback.

A ``.nii.gz`` is inflated by ISA-L (``isal.igzip``), streamed a volume at a time: any number
of gzip members, any size (the 4-byte trailer size, modulo 2**32, is never trusted).
libdeflate (the ``deflate`` package) inflates only whole buffers, so it would hold the
compressed file and the whole series in memory, and was not faster on a realistic run
(benchmarks/RESULTS-read.md). An uncompressed ``.nii`` is mapped (``np.memmap``): each volume
is read from the page cache where it lies, with no copy into a read buffer.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
from isal import igzip, isal_zlib
from nibabel.arrayproxy import ArrayProxy

from glmflow.errors import DatasetError

_GZIP_MAGIC = b"\x1f\x8b"
_READ_ERRORS = (EOFError, OSError, ValueError, isal_zlib.error)


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == _GZIP_MAGIC


def streamable(img: nib.spatialimages.SpatialImage) -> bool:
    proxy = img.dataobj
    return isinstance(proxy, ArrayProxy) and proxy.order == "F"


def _unreadable(path, t: int, n_volumes: int, err: Exception) -> DatasetError:
    return DatasetError(
        f"BOLD {path} cannot be read at volume {t} of {n_volumes} ({type(err).__name__}: "
        f"{err}): the file is corrupt or truncated; re-create it or copy it again"
    )


def iter_raw_volumes(img: nib.spatialimages.SpatialImage) -> Iterator[np.ndarray]:
    """Yield each volume as a flat array in file (Fortran) order, valid until the next one.

    Unscaled on-disk values when the image is streamable, else nibabel's scaled values.
    """
    proxy = img.dataobj
    n_volumes = img.shape[3]
    if not streamable(img):
        # not a plain NIfTI data block: let nibabel read one volume at a time
        path = img.get_filename()
        for t in range(n_volumes):
            try:
                volume = np.asarray(proxy[..., t])
            except _READ_ERRORS as err:
                raise _unreadable(path, t, n_volumes, err) from None
            yield volume.ravel("F")
        return
    path = Path(img.file_map["image"].filename)
    n_bytes = int(np.prod(img.shape[:3])) * proxy.dtype.itemsize
    if not _is_gzip(path):
        yield from _mapped_volumes(path, proxy, n_bytes, n_volumes)
        return
    with igzip.open(path, "rb") as stream:
        _skip(stream, proxy.offset, path)
        for t in range(n_volumes):
            # read() hands over its bytes object: wrapping it avoids readinto's extra copy
            yield np.frombuffer(_read_volume(stream, n_bytes, path, t, n_volumes), proxy.dtype)
        _read(stream, 1, path, n_volumes, n_volumes)  # reach the gzip trailer: CRC checked


def _mapped_volumes(path: Path, proxy, n_bytes: int, n_volumes: int) -> Iterator[np.ndarray]:
    """Volumes of an uncompressed file as views of its memory map (the page cache)."""
    if not n_bytes or not n_volumes:
        return
    stored = (path.stat().st_size - proxy.offset) // n_bytes
    if stored < n_volumes:
        raise DatasetError(
            f"BOLD {path} is truncated: volume {max(stored, 0)} of {n_volumes} ends early "
            "(header says more volumes than the file holds); re-create the file"
        )
    shape = (n_volumes, n_bytes // proxy.dtype.itemsize)
    volumes = np.memmap(path, dtype=proxy.dtype, mode="r", offset=proxy.offset, shape=shape)
    yield from np.asarray(volumes)  # plain ndarray views: no memmap bookkeeping per volume


def _read(stream, n_bytes: int, path, t: int, n_volumes: int) -> bytes:
    try:
        return stream.read(n_bytes)
    except _READ_ERRORS as err:
        raise _unreadable(path, t, n_volumes, err) from None


def _read_volume(stream, n_bytes: int, path, t: int, n_volumes: int) -> bytes:
    block = _read(stream, n_bytes, path, t, n_volumes)
    if len(block) == n_bytes:
        return block
    parts = [block]
    missing = n_bytes - len(block)
    while missing:
        more = _read(stream, missing, path, t, n_volumes)
        if not more:
            raise DatasetError(
                f"BOLD {path} is truncated: volume {t} of {n_volumes} ends early "
                "(header says more volumes than the file holds); re-create the file"
            )
        parts.append(more)
        missing -= len(more)
    return b"".join(parts)


def _skip(stream, n_bytes: int, path: Path) -> None:
    remaining = n_bytes
    while remaining:
        got = len(_read(stream, min(remaining, 1 << 20), path, 0, 0))
        if not got:
            raise DatasetError(f"BOLD {path} ends inside its header; re-create the file")
        remaining -= got


def scaling(img: nib.spatialimages.SpatialImage) -> tuple[float | None, float | None]:
    """(slope, inter) to apply, or (None, None) when the data is stored unscaled."""
    if not streamable(img):
        return None, None  # nibabel has scaled the volumes already
    slope, inter = img.dataobj.slope, img.dataobj.inter
    if (slope, inter) == (1.0, 0.0):
        return None, None
    return slope, inter
