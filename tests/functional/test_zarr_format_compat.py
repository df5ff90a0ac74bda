"""The S3 store's own Zarr reader against arrays zarr itself wrote, in every layout it accepts:
v2 and v3, C and F order, no compression, zlib and gzip, big-endian chunks, both chunk key
encodings, edge chunks, and chunks never written (the fill value). Local files stand in for
the objects (``tests/functional/test_zarr_s3.py`` runs the same reader on moto)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import pytest
import zarr
from zarr.codecs import BytesCodec, GzipCodec

from tilefan.adapters.zarr_format import encode_chunk, parse_v2, parse_v3, v3_metadata
from tilefan.domain.chunks import all_chunks, chunk_region

DATA = np.arange(7 * 9, dtype=np.float64).reshape(7, 9) / 7.0


def read_all(root: Path) -> np.ndarray:
    """The whole array, read the way the S3 store reads it: metadata, then chunk by chunk."""
    if (root / "zarr.json").exists():
        layout = parse_v3(json.loads((root / "zarr.json").read_text()), str(root))
    else:
        layout = parse_v2(json.loads((root / ".zarray").read_text()), str(root))
    assert layout.dtype is not None
    out = np.empty(layout.shape, dtype=layout.dtype.newbyteorder("="))  # native, as the store returns it
    for index in all_chunks(layout.shape, layout.chunks):
        path = root / layout.chunk_key(index)
        chunk = layout.decode(path.read_bytes(), str(root)) if path.exists() else layout.fill()
        region = chunk_region(index, layout.shape, layout.chunks)
        out[tuple(slice(a, b) for a, b in region)] = chunk[tuple(slice(0, b - a) for a, b in region)]
    return out


@pytest.mark.parametrize("options", [
    {"zarr_format": 2, "compressors": None},
    {"zarr_format": 2, "compressors": numcodecs.Zlib(level=3), "order": "F"},
    {"zarr_format": 2, "compressors": numcodecs.GZip(level=1), "chunk_key_encoding": {"name": "v2",
                                                                                      "separator": "/"}},
    {"compressors": None},
    {"compressors": GzipCodec(level=2)},
    {"compressors": None, "serializer": BytesCodec(endian="big")},
    {"compressors": None, "chunk_key_encoding": {"name": "v2", "separator": "."}},
    {"compressors": None, "chunk_key_encoding": {"name": "default", "separator": "."}},
], ids=["v2-raw", "v2-zlib-F", "v2-gzip-slash", "v3-raw", "v3-gzip", "v3-big-endian", "v3-v2-keys", "v3-dot-keys"])
def test_arrays_zarr_wrote_read_back_exactly(tmp_path: Path, options: dict[str, Any]) -> None:
    arr = zarr.create_array(store=str(tmp_path / "A.zarr"), shape=DATA.shape, chunks=(3, 4), dtype=DATA.dtype,
                            fill_value=-1.5, **options)
    arr[:5] = DATA[:5]  # the last row of chunks (rows 6..7) is never written: it reads as the fill value
    want = DATA.copy()
    want[5:] = -1.5  # row 5 is in a written chunk, filled by zarr
    got = read_all(tmp_path / "A.zarr")
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, want)


def test_what_tilefan_writes_zarr_reads(tmp_path: Path) -> None:
    root = tmp_path / "C.zarr"
    root.mkdir()
    doc = v3_metadata(DATA.shape, "float32", (4, 4))
    (root / "zarr.json").write_text(json.dumps(doc))
    layout = parse_v3(doc, "C.zarr")
    for index in all_chunks(DATA.shape, (4, 4)):
        region = chunk_region(index, DATA.shape, (4, 4))
        path = root / layout.chunk_key(index)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode_chunk(DATA[tuple(slice(a, b) for a, b in region)].astype(np.float32), layout))
    got = zarr.open_array(store=str(root), mode="r")
    assert got.dtype == np.float32 and got.chunks == (4, 4)
    np.testing.assert_array_equal(got[:], DATA.astype(np.float32))
