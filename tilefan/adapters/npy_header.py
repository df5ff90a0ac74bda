"""The ``.npy`` header, read and written the same way by every blob store.

Reading only the header is what lets a store answer ``array_info`` and fetch a band of
rows without loading the array; every store turns a malformed header into the same
``InvalidBlobError``.
"""

from __future__ import annotations

import io
import math
import struct
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from tilefan.errors import InvalidBlobError

MAGIC = b"\x93NUMPY"


@dataclass(frozen=True)
class NpyHeader:
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    fortran: bool
    offset: int  # bytes before the first element

    @property
    def row_bytes(self) -> int:
        """Bytes of one step along the first axis (of a C-ordered array)."""
        return math.prod(self.shape[1:]) * self.dtype.itemsize

    @property
    def rows_readable(self) -> bool:
        """Whether a band of leading rows is one contiguous byte range."""
        return bool(self.shape) and not self.fortran and not self.dtype.hasobject


def header_length(head: bytes, label: str) -> int:
    """How many leading bytes the header takes (magic, version, length, dict), from
    the first 12 bytes or more.

    >>> header_length(npy_header((2, 3), np.dtype("<f8")), "x")
    128
    """
    if len(head) < 10 or not head.startswith(MAGIC):
        raise InvalidBlobError(label, "not a valid .npy file (the magic string is not correct)")
    if head[6] == 1:
        return 10 + int(struct.unpack("<H", head[8:10])[0])
    if len(head) < 12:
        raise InvalidBlobError(label, "not a valid .npy file (truncated header)")
    return 12 + int(struct.unpack("<I", head[8:12])[0])


def read_header(fp: IO[bytes], label: str) -> NpyHeader:
    """The header at the start of ``fp``, leaving ``fp`` at the first element."""
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
    except ValueError as exc:
        raise InvalidBlobError(label, f"not a valid .npy file ({exc})") from None
    return NpyHeader(tuple(shape), dtype, fortran, fp.tell())


def parse_header(head: bytes, label: str) -> NpyHeader:
    """The header of a ``.npy`` file from its leading bytes.

    >>> parse_header(npy_header((2, 3), np.dtype("<f8")), "x")
    NpyHeader(shape=(2, 3), dtype=dtype('float64'), fortran=False, offset=128)
    """
    return read_header(io.BytesIO(head), label)


def npy_header(shape: tuple[int, ...], dtype: np.dtype[Any]) -> bytes:
    """The header of a C-ordered array of ``shape`` and ``dtype`` (format 1.0 unless the
    header needs more than 64 KiB)."""
    buf = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)}
    try:
        np.lib.format.write_array_header_1_0(buf, header)
    except ValueError:
        buf = io.BytesIO()
        np.lib.format.write_array_header_2_0(buf, header)
    return buf.getvalue()


def to_npy(array: np.ndarray) -> bytes:
    """The whole ``.npy`` file of ``array``."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def from_npy(data: bytes, label: str) -> np.ndarray:
    """The array in a whole ``.npy`` file, with the header's errors for anything else
    (``np.load`` alone would open a zip archive)."""
    parse_header(data, label)
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        raise InvalidBlobError(label, f"not a valid .npy file ({exc})") from None
