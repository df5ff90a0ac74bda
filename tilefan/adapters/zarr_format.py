"""Zarr's on-store format without the zarr library, for the S3 store that runs in Lambda.

zarr-python reaches S3 through fsspec/s3fs (aiobotocore, which pins its own botocore) or
obstore, neither of which belongs in a tile Lambda next to boto3. The part tilefan needs
is small: an array is a metadata document (v3 ``zarr.json``, v2 ``.zarray``) and one
object per chunk. This module parses both metadata versions, encodes the chunks tilefan
writes (v3, uncompressed little-endian, the ``bytes`` codec) and decodes the chunks it
reads when they are uncompressed or gzip/zlib-compressed (the codecs the standard library
has). Anything else (zstd, blosc, sharding, a transpose) is refused with a message that
says how to write the array instead. Tests read what this writes with zarr itself.
"""

from __future__ import annotations

import gzip
import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tilefan.domain.chunks import v2_chunk_key, v3_chunk_key
from tilefan.errors import InvalidBlobError

V3_METADATA = "zarr.json"
V2_METADATA = ".zarray"
_V3_NUMERIC = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
               "float16", "float32", "float64", "complex64", "complex128"}
_DECOMPRESS: dict[str, Callable[[bytes], bytes]] = {"gzip": gzip.decompress, "zlib": zlib.decompress}
_HINT = "tilefan reads those only on this machine (with zarr); for AWS write the array with no compressor or gzip"


@dataclass(frozen=True)
class ZarrLayout:
    """What a reader needs to find and decode an array's chunks."""

    shape: tuple[int, ...]
    dtype: np.dtype[Any] | None  # None: a data type tilefan cannot hold (strings, objects...)
    dtype_name: str
    chunks: tuple[int, ...]
    fill_value: Any
    version: int
    separator: str
    order: str = "C"
    compressor: str | None = None
    c_prefix: bool = False  # v3's default key encoding: c/i/j; v2's (and v3's "v2" encoding): i.j

    def chunk_key(self, index: Sequence[int]) -> str:
        return v3_chunk_key(index, self.separator) if self.c_prefix else v2_chunk_key(index, self.separator)

    def fill(self) -> np.ndarray:
        """A whole chunk of the fill value (what a chunk never written holds)."""
        assert self.dtype is not None
        return np.full(self.chunks, _number(self.fill_value), dtype=self.dtype)

    def decode(self, data: bytes, label: str) -> np.ndarray:
        """A stored chunk's bytes as a full chunk-shaped array."""
        assert self.dtype is not None
        if self.compressor is not None:
            try:
                data = _DECOMPRESS[self.compressor](data)
            except (OSError, zlib.error, EOFError):
                raise InvalidBlobError(label, f"a chunk is not valid {self.compressor} data") from None
        if len(data) != math.prod(self.chunks) * self.dtype.itemsize:
            raise InvalidBlobError(label, f"a chunk holds {len(data)} bytes, not the {self.chunks} its metadata says")
        return np.frombuffer(data, dtype=self.dtype).reshape(self.chunks, order=self.order)  # type: ignore[call-overload]


def v3_metadata(shape: Sequence[int], dtype: str, chunks: Sequence[int]) -> dict[str, Any]:
    """The ``zarr.json`` of an array tilefan writes: regular chunks, uncompressed little-endian.

    >>> doc = v3_metadata((10, 7), "float64", (4, 4))
    >>> doc["chunk_grid"]["configuration"]["chunk_shape"], doc["codecs"]
    ([4, 4], [{'name': 'bytes', 'configuration': {'endian': 'little'}}])
    """
    return {
        "zarr_format": 3, "node_type": "array", "shape": [int(n) for n in shape], "data_type": np.dtype(dtype).name,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [int(c) for c in chunks]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0.0, "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
        "attributes": {}, "storage_transformers": [],
    }


def encode_chunk(block: np.ndarray, layout: ZarrLayout) -> bytes:
    """A tile's block as the chunk object it fills: padded to the chunk shape with the fill
    value (zarr stores edge chunks whole) and in the layout's byte order.

    >>> layout = parse_v3(v3_metadata((3,), "float32", (2,)), "x")
    >>> np.frombuffer(encode_chunk(np.array([5.0], dtype="float32"), layout), "<f4").tolist()
    [5.0, 0.0]
    """
    assert layout.dtype is not None
    if block.shape != layout.chunks:
        whole = layout.fill()
        whole[tuple(slice(0, n) for n in block.shape)] = block
        block = whole
    return np.ascontiguousarray(block, dtype=layout.dtype).tobytes()


def parse_v3(doc: Mapping[str, Any], label: str) -> ZarrLayout:
    """An array's layout from its ``zarr.json``; InvalidBlobError for what tilefan cannot read."""
    if doc.get("node_type") != "array":
        raise InvalidBlobError(label, "is a Zarr group, not an array; name an array in it as GROUP.zarr:member")
    grid = doc.get("chunk_grid") or {}
    if grid.get("name") != "regular":
        raise InvalidBlobError(label, f"has a {grid.get('name')!r} chunk grid; tilefan reads regular ones")
    encoding = doc.get("chunk_key_encoding") or {"name": "default"}
    name = encoding.get("name")
    separator = (encoding.get("configuration") or {}).get("separator", "/" if name == "default" else ".")
    raw_type = doc.get("data_type")
    dtype_name = raw_type if isinstance(raw_type, str) else str((raw_type or {}).get("name", raw_type))
    dtype = None
    compressor = None
    if dtype_name in _V3_NUMERIC:
        big = False
        for codec in doc.get("codecs") or []:
            cname = codec.get("name")
            config = codec.get("configuration") or {}
            if cname == "bytes":
                big = config.get("endian") == "big"
            elif cname in _DECOMPRESS and compressor is None:
                compressor = cname
            else:
                raise InvalidBlobError(label, f"its chunks use the {cname} codec; {_HINT}")
        dtype = np.dtype(dtype_name).newbyteorder(">" if big else "<")
    return ZarrLayout(
        shape=tuple(int(n) for n in doc["shape"]), dtype=dtype, dtype_name=dtype_name,
        chunks=tuple(int(c) for c in grid["configuration"]["chunk_shape"]), fill_value=doc.get("fill_value", 0),
        version=3, separator=separator, compressor=compressor, c_prefix=name == "default",
    )


def parse_v2(doc: Mapping[str, Any], label: str) -> ZarrLayout:
    """An array's layout from its ``.zarray``; InvalidBlobError for what tilefan cannot read."""
    raw = doc.get("dtype")
    if not isinstance(raw, str):
        raise InvalidBlobError(label, "has a structured dtype; tilefan reads float32 or float64 arrays")
    numpy_type = np.dtype(raw)
    numeric = numpy_type.kind in "biufc"
    compressor = None
    if numeric:
        if doc.get("filters"):
            ids = ", ".join(str(f.get("id")) for f in doc["filters"])
            raise InvalidBlobError(label, f"its chunks use the filters {ids}; {_HINT}")
        codec = doc.get("compressor")
        if codec is not None:
            compressor = codec.get("id")
            if compressor not in _DECOMPRESS:
                raise InvalidBlobError(label, f"its chunks are compressed with {compressor}; {_HINT}")
    return ZarrLayout(
        shape=tuple(int(n) for n in doc["shape"]), dtype=numpy_type if numeric else None,
        dtype_name=numpy_type.name, chunks=tuple(int(c) for c in doc["chunks"]),
        fill_value=doc.get("fill_value") or 0, version=2, separator=doc.get("dimension_separator", "."),
        order=doc.get("order", "C"), compressor=compressor,
    )


def _number(value: Any) -> Any:
    """A JSON fill value as a number (Zarr writes NaN and the infinities as strings).

    >>> _number("NaN") != _number("NaN"), _number("-Infinity"), _number(None), _number(2)
    (True, -inf, 0, 2)
    """
    if value is None:
        return 0
    if isinstance(value, str):
        return float(value.replace("Infinity", "inf")) if not value.startswith("0x") else \
            float(np.frombuffer(bytes.fromhex(value[2:]), ">f8" if len(value) > 10 else ">f4")[0])
    return value
