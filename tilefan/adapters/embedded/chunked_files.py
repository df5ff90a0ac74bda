"""Zarr and HDF5 arrays on this machine, through zarr and h5py (``pip install 'tilefan[formats]'``).

Inputs: a Zarr array (v2 or v3, any codec zarr reads) or an HDF5 dataset; a tile reads
only its block, so only the chunks it crosses are read and decoded.

Outputs (Zarr only): the array is created in a hidden ``.<name>.<job>.partial`` directory
next to the destination with the job's tiles as its chunks, so each tile writes exactly
one chunk (no two processes touch the same chunk file). Committing checks that every
chunk is there, then renames the directory into place: nothing is assembled, and a reader
never sees a half-written array.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tilefan.domain.chunks import HDF5, ChunkedRef, all_chunks, chunk_number, chunk_of, v3_chunk_key
from tilefan.domain.tiling import region_slices
from tilefan.errors import BlobNotFoundError, IncompleteJobError, InvalidBlobError, StoreError

INSTALL_HINT = "pip install 'tilefan[formats]'"


def _module(name: str, label: str, what: str) -> Any:
    try:
        return __import__(name)
    except ImportError:
        raise InvalidBlobError(label, f"{what} needs the {name} package: {INSTALL_HINT}") from None


def check_output(key: str, ref: ChunkedRef) -> None:
    """Refuse an output tilefan cannot write, before the job is recorded."""
    if ref.format == HDF5:
        raise InvalidBlobError(key, "HDF5 is read, not written; write the output as .zarr (chunked) or .npy")
    if ref.member:
        raise InvalidBlobError(key, "an output is a whole Zarr array: name it as PATH.zarr, without :member")
    _module("zarr", key, "writing Zarr")


@contextlib.contextmanager
def _opened(ref: ChunkedRef, path: Path, label: str) -> Iterator[Any]:
    """The array ``ref`` names, open for reading (an HDF5 file is closed afterwards)."""
    if ref.format == HDF5:
        h5py = _module("h5py", label, "reading HDF5")
        try:
            file = h5py.File(path, "r")
        except FileNotFoundError:
            raise BlobNotFoundError(label) from None
        except OSError:
            raise InvalidBlobError(label, "is not an HDF5 file") from None
        with file:
            yield _dataset(file, ref.member, label, h5py)
        return
    yield open_zarr(path, ref.member, label)


def _dataset(file: Any, member: str, label: str, h5py: Any) -> Any:
    node = file.get(member) if member else None
    if isinstance(node, h5py.Dataset):
        return node
    # Only an error walks the file (every tile opens the dataset; a file may hold thousands).
    names: list[str] = []
    file.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None)
    listing = ", ".join(names[:8]) + (" ..." if len(names) > 8 else "") if names else "none"
    if not member:
        raise InvalidBlobError(label, f"name the dataset as FILE.h5:DATASET (its datasets: {listing})")
    if node is None:
        raise InvalidBlobError(label, f"has no dataset {member!r} (its datasets: {listing})")
    raise InvalidBlobError(label, f"{member!r} is a group, not a dataset (its datasets: {listing})")


def open_zarr(path: Path, member: str, label: str, mode: str = "r") -> Any:
    zarr = _module("zarr", label, "reading Zarr")
    try:
        return zarr.open_array(store=str(path), path=member, mode=mode)
    except FileNotFoundError:
        raise BlobNotFoundError(label) from None
    except zarr.errors.NodeTypeValidationError:
        raise InvalidBlobError(label, "is a Zarr group, not an array; name an array in it as GROUP.zarr:member") \
            from None
    except (zarr.errors.BaseZarrError, ValueError, KeyError, TypeError) as exc:
        raise InvalidBlobError(label, f"is not a Zarr array ({exc})") from None


def array_info(ref: ChunkedRef, path: Path, label: str) -> tuple[tuple[int, ...], str]:
    with _opened(ref, path, label) as arr:
        return tuple(int(n) for n in arr.shape), _dtype_name(arr.dtype)


def _dtype_name(dtype: Any) -> str:
    try:
        return np.dtype(dtype).name
    except TypeError:
        return str(dtype)


def read_block(ref: ChunkedRef, path: Path, label: str, rows: tuple[int, int],
               cols: tuple[int, int] | None) -> np.ndarray:
    """Rows (and columns) of a 2-D input: only the chunks they cross are read."""
    with _opened(ref, path, label) as arr:
        index = (slice(*rows),) if cols is None else (slice(*rows), slice(*cols))
        return np.asarray(arr[index])


# ------------------------------------------------------------------ outputs (Zarr)


def create(partial: Path, shape: tuple[int, ...], dtype: str, chunks: Sequence[int] | None, label: str) -> None:
    zarr = _module("zarr", label, "writing Zarr")
    shutil.rmtree(partial, ignore_errors=True)  # a retried plan starts from nothing
    try:
        # Every chunk is written, zeros too: commit checks completeness by the chunks present.
        zarr.create_array(store=str(partial), shape=shape, chunks=tuple(chunks or shape), dtype=dtype,
                          fill_value=0, config={"write_empty_chunks": True})
    except OSError as exc:
        raise StoreError(f"cannot create output {label}: {exc.strerror}") from None


def write(partial: Path, label: str, region: Sequence[tuple[int, int]], block: np.ndarray) -> None:
    zarr = _module("zarr", label, "writing Zarr")
    # Opened inside the setting: an array takes its write_empty_chunks when opened.
    with zarr.config.set({"array.write_empty_chunks": True}):
        arr = open_zarr(partial, "", label, mode="r+")
        chunk_of(region, arr.shape, arr.chunks)  # a tile that straddles chunks is a planning bug
        arr[region_slices(tuple(region))] = block


def read(path: Path, label: str, region: Sequence[tuple[int, int]]) -> np.ndarray:
    return np.asarray(open_zarr(path, "", label)[region_slices(tuple(region))])


def commit(partial: Path, final: Path, label: str, job_id: str) -> str:
    """Check every chunk is stored, then rename the array into place."""
    if not partial.is_dir():
        raise StoreError(f"output {label} of job {job_id} was never created")
    arr = open_zarr(partial, "", label)
    missing = [chunk_number(index, arr.shape, arr.chunks) for index in all_chunks(arr.shape, arr.chunks)
               if not (partial / v3_chunk_key(index)).is_file()]
    if missing:
        raise IncompleteJobError(job_id, missing, f"recorded done but no chunk of {label} stored")
    # A directory cannot replace a non-empty one in one rename: move the old one aside first.
    old = final.with_name(f".{final.name}.{job_id}.old")
    if final.exists() or final.is_symlink():
        os.replace(final, old)
    os.replace(partial, final)
    remove(old)
    return str(final.resolve())


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
