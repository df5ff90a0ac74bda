"""A column panel of a stored matrix on S3 (moto): read by whole rows in chunks of about one
part (concurrent ranged GETs), so a tile holds the panel and the chunks in flight, never
every full row; the planner charges every byte read."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from tests.functional.conftest import USER_BUCKET
from tests.helpers import npy_bytes
from tilefan.adapters.aws import s3_store
from tilefan.adapters.aws.s3_store import S3BlobStore


def ranged_gets(s3: Any) -> list[str]:
    """Record the Range of every GetObject the client sends, in order."""
    seen: list[str] = []
    def record(params: dict[str, Any], **_: Any) -> None:
        seen.append(params.get("Range", ""))

    s3.meta.events.register("provide-client-params.s3.GetObject", record)
    return seen


@pytest.mark.parametrize(("rows", "cols"), [((0, 96), (40, 56)), ((7, 90), (0, 3)), ((0, 96), (63, 64))])
def test_a_column_panel_comes_in_row_chunks_no_bigger_than_the_chunk(
    s3_client: Any, rows: tuple[int, int], cols: tuple[int, int],
) -> None:
    b = np.arange(96 * 64, dtype=np.float32).reshape(96, 64)
    s3_client.put_object(Bucket=USER_BUCKET, Key="B.npy", Body=npy_bytes(b))
    row_bytes = 64 * 4
    gets = ranged_gets(s3_client)
    # Parts of ten rows: a chunk a part.
    panel = S3BlobStore(s3_client, "unused", part_bytes=10 * row_bytes).read_rows(f"s3://{USER_BUCKET}/B.npy",
                                                                                  rows, cols)

    np.testing.assert_array_equal(panel, b[rows[0] : rows[1], cols[0] : cols[1]], strict=True)
    assert panel.flags.c_contiguous and panel.flags.writeable  # the panel itself, not a view of full rows
    header, *chunks = gets
    assert header == "bytes=0-4095"
    n_rows = rows[1] - rows[0]
    assert len(chunks) == -(-n_rows // 10)
    # Chunks go out concurrently, so in any order.
    spans = sorted(tuple(int(x) for x in r.removeprefix("bytes=").split("-")) for r in chunks)
    assert all(last - first + 1 <= 10 * row_bytes for first, last in spans)
    # Every byte of the rows is read, once: what the planner charges for the panel.
    assert sum(last - first + 1 for first, last in spans) == n_rows * row_bytes
    assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(spans))


def test_the_full_width_within_one_part_takes_one_ranged_get(
    s3_client: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    b = np.ones((96, 64), dtype=np.float64)
    s3_client.put_object(Bucket=USER_BUCKET, Key="B.npy", Body=npy_bytes(b))
    monkeypatch.setattr(s3_store, "PANEL_READ_CHUNK_BYTES", 64)
    gets = ranged_gets(s3_client)
    rows = S3BlobStore(s3_client, "unused").read_rows(f"s3://{USER_BUCKET}/B.npy", (0, 96))
    assert rows.shape == (96, 64) and len(gets) == 2  # the header, then all the rows at once
