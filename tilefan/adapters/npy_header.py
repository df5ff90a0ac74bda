"""The ``.npy`` header, read and written the same way by every blob store.

Reading only the header is what lets a store answer ``array_info`` and fetch a band of
rows without loading the array; every store turns a malformed header into the same
``InvalidBlobError``.

The header's dict is parsed here, not by NumPy: NumPy's reader uses ``ast.literal_eval``,
and on CPython 3.11 before 3.11.8 that raises ``SystemError: AST constructor recursion
depth mismatch`` when a thread switch lands inside the AST conversion (many server
threads reading headers at once hit it). The grammar of a header is tiny (a dict of
strings, bools, ints, tuples and lists), so a small tokenizer reads it without ``ast``.
"""

from __future__ import annotations

import io
import math
import os
import re
import struct
from dataclasses import dataclass
from typing import IO, Any, Literal

import numpy as np

from tilefan.errors import InvalidBlobError

MAGIC = b"\x93NUMPY"


@dataclass(frozen=True)
class NpyHeader:
    """What a ``.npy`` file's header says: shape, dtype, order, and where the data starts."""

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
    head = fp.read(12)
    length = header_length(head, label)
    if head[6] not in (1, 2, 3):
        raise InvalidBlobError(label, f"not a valid .npy file (unknown format version {head[6]})")
    prefix = 10 if head[6] == 1 else 12
    fp.seek(fp.tell() - len(head) + prefix)
    text_bytes = fp.read(length - prefix)
    if len(text_bytes) != length - prefix:
        raise InvalidBlobError(label, "not a valid .npy file (truncated header)")
    try:
        fields = _parse_dict(text_bytes.decode("utf-8" if head[6] == 3 else "latin1"))
        shape, fortran, descr = fields["shape"], fields["fortran_order"], fields["descr"]
        if not isinstance(fortran, bool) or not isinstance(shape, tuple) \
                or not all(isinstance(n, int) for n in shape):
            raise ValueError("the header's fields have the wrong types")
        # A structured dtype's descr is a list of (name, type[, shape]) tuples.
        dtype = np.lib.format.descr_to_dtype(descr)
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidBlobError(label, f"not a valid .npy file ({exc})") from None
    return NpyHeader(shape, dtype, fortran, length)


# The tokens of a header dict: punctuation (dict, tuple, list), a quoted string, True/False, an integer.
_TOKEN = re.compile(r"\s*(?:([{}()\[\],:])|'([^'\\]*)'|\"([^\"\\]*)\"|(True|False)|(\d+))")


def _parse_dict(text: str) -> dict[str, Any]:
    """``{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }`` → a dict.

    >>> _parse_dict("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }")
    {'descr': '<f8', 'fortran_order': False, 'shape': (2,)}
    """
    tokens: list[tuple[str, Any]] = []
    pos, end = 0, len(text.rstrip())
    while pos < end:
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ValueError(f"unexpected text in the header at {text[pos:pos + 20]!r}")
        punct, sq, dq, boolean, number = m.groups()
        if punct:
            tokens.append(("p", punct))
        elif sq is not None or dq is not None:
            tokens.append(("v", sq if sq is not None else dq))
        elif boolean:
            tokens.append(("v", boolean == "True"))
        else:
            tokens.append(("i", int(number)))
        pos = m.end()
    return _Reader(tokens).whole_dict()


class _Reader:
    def __init__(self, tokens: list[tuple[str, Any]]) -> None:
        self.tokens, self.i = tokens, 0

    def take(self) -> tuple[str, Any]:
        if self.i >= len(self.tokens):
            raise ValueError("the header ends early")
        self.i += 1
        return self.tokens[self.i - 1]

    def expect(self, punct: str) -> None:
        if self.take() != ("p", punct):
            raise ValueError(f"expected {punct!r} in the header")

    def whole_dict(self) -> dict[str, Any]:
        self.expect("{")
        out: dict[str, Any] = {}
        while self.tokens[self.i:self.i + 1] != [("p", "}")]:
            kind, key = self.take()
            if kind != "v" or not isinstance(key, str):
                raise ValueError("a header key is not a string")
            self.expect(":")
            out[key] = self.value()
            if self.tokens[self.i:self.i + 1] == [("p", ",")]:
                self.i += 1
        self.expect("}")
        if self.i != len(self.tokens):
            raise ValueError("text after the header dict")
        return out

    def value(self) -> Any:
        kind, tok = self.take()
        if kind in ("v", "i"):
            return tok
        close = {"(": ")", "[": "]"}.get(tok)
        if close is None:
            raise ValueError(f"unexpected {tok!r} in the header")
        items: list[Any] = []
        while self.tokens[self.i:self.i + 1] != [("p", close)]:
            items.append(self.value())
            if self.tokens[self.i:self.i + 1] == [("p", ",")]:
                self.i += 1
        self.expect(close)
        return tuple(items) if tok == "(" else items


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
    (``np.load`` alone would open a zip archive, and parse the header with ``ast``)."""
    header = parse_header(data, label)
    count = _element_count(header, len(data), label)
    flat = np.frombuffer(data, dtype=header.dtype, count=count, offset=header.offset)
    return flat.reshape(header.shape, order="F" if header.fortran else "C").copy()


def load_npy(path: str | os.PathLike[str], label: str, *, mmap: bool = False) -> np.ndarray:
    """The array in a ``.npy`` file (memory-mapped read-only if ``mmap``), read through
    this module's header parser rather than ``np.load``'s."""
    with open(path, "rb") as fp:
        return npy_from(fp, read_header(fp, label), label, mmap=mmap)


def npy_from(fp: IO[bytes], header: NpyHeader, label: str, *, mmap: bool = False) -> np.ndarray:
    """The array of the open ``.npy`` file ``fp`` whose header is ``header``."""
    count = _element_count(header, os.fstat(fp.fileno()).st_size, label)
    order: Literal["C", "F"] = "F" if header.fortran else "C"
    if mmap and count:
        return np.memmap(fp, dtype=header.dtype, mode="r", offset=header.offset, shape=header.shape, order=order)
    flat = np.fromfile(fp, dtype=header.dtype, count=count)
    return flat.reshape(header.shape, order=order)


def _element_count(header: NpyHeader, size: int, label: str) -> int:
    """The number of elements a file of ``size`` bytes holds under ``header``, refusing
    object arrays and a file shorter than its header says."""
    if header.dtype.hasobject:
        raise InvalidBlobError(label, "not a valid .npy file (object arrays are not accepted)")
    count = math.prod(header.shape)
    if size < header.offset + count * header.dtype.itemsize:
        raise InvalidBlobError(label, "not a valid .npy file (shorter than its header says)")
    return count
