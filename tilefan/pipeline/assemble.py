"""Assemble an output from its tiles' stored blocks: one multipart upload, in parallel.

The parts come from ``tilefan.domain.assembly``: a run of rows of a full-width tile is
copied by the store itself (S3 UploadPartCopy: no byte passes through the reducer); other
rows are built in memory from one ranged read per tile they cross. Parts go out from a
bounded thread pool; at most ``builds`` built parts (each at most
``PartLimits.build_cap_bytes``) are in memory at once, by default as many as the store
keeps requests in flight (``PartAssembly.io_streams``). An output of more parts than one
upload takes (10,000 on S3) is built as group objects first, then copied together.

Before any part is sent, every tile's block must be stored: a missing one fails the
reduce, naming the tile. Any failure aborts the uploads it started, so the output's key
holds the complete output or nothing.
"""

from __future__ import annotations

import bisect
import contextlib
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import numpy as np

from tilefan.domain.assembly import BuildPart, CopyPart, Part, group_copies, groups, plan_parts
from tilefan.domain.tiling import Region
from tilefan.errors import IncompleteJobError, StoreError
from tilefan.pipeline.store_capabilities import OutputLayout, PartAssembly

# Parts in flight at once (docs/aws-scale.md). A copy costs the reducer no memory and
# waits on S3, so many go at once: 64 copies of about 0.1 s each stay under the 3,500
# writes a second S3 serves per prefix. Built parts are held in memory until sent, so at
# most the store's streams are built at a time: at the reduce Lambda's 10 GiB that is 16
# (tilefan.domain.transfer.io_streams), and 16 x 128 MiB (PartLimits.build_cap_bytes),
# held twice (the array and its bytes), is 4 GiB of it.
REQUESTS_IN_FLIGHT = 64

T = TypeVar("T")


def assemble_output(
    store: PartAssembly, key: str, job_id: str, tiles: Mapping[int, Region] | None = None,
    *, threads: int = REQUESTS_IN_FLIGHT, builds: int | None = None,
) -> str:
    """Build the output at ``key`` from its stored blocks and return where it is.

    ``tiles`` (tile id → region) names what must be stored; IncompleteJobError names the
    tiles whose block is not. Without it, cells no block holds commit as zeros, as in
    every blob store.
    """
    layout = store.output_layout(key, job_id)
    stored = store.stored_blocks(key, job_id)
    _check_complete(key, job_id, stored, tiles)
    limits = store.part_limits()
    parts = plan_parts(layout.shape, layout.dtype.itemsize, len(layout.header), stored, limits)
    rows_index = _RowIndex(stored)
    building = threading.BoundedSemaphore(builds or store.io_streams())
    open_uploads: dict[int | None, str] = {}

    def upload(pool: ThreadPoolExecutor, group: int | None, send: Callable[[str, int, T], str],
               items: Sequence[T]) -> None:
        upload_id = store.start_upload(key, job_id, group)
        open_uploads[group] = upload_id
        futures = [pool.submit(send, upload_id, n, item) for n, item in enumerate(items, start=1)]
        store.complete_upload(key, job_id, group, upload_id, list(_results(futures)))
        del open_uploads[group]

    try:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            runs = groups(parts, limits)
            for g, run in enumerate(runs):
                group = None if len(runs) == 1 else g

                def send_part(upload_id: str, n: int, part: Part, group: int | None = group) -> str:
                    if isinstance(part, CopyPart):
                        return store.copy_block_part(key, job_id, group, upload_id, n, part.region, part.rows,
                                                     layout.dtype)
                    with building:  # held until sent: the part is in memory until then
                        data = _build(store, key, job_id, part, layout, rows_index)
                        return store.upload_part(key, job_id, group, upload_id, n, data)

                upload(pool, group, send_part, run)
            if len(runs) > 1:
                def send_copy(upload_id: str, n: int, piece: tuple[int, int, int]) -> str:
                    return store.copy_group_part(key, job_id, upload_id, n, *piece)

                upload(pool, None, send_copy, group_copies([sum(p.size for p in run) for run in runs], limits))
    except BaseException:
        for group, upload_id in open_uploads.items():
            # If this fails too, the bucket's lifecycle rule aborts the upload after two days.
            with contextlib.suppress(StoreError):
                store.abort_upload(key, job_id, group, upload_id)
        raise
    return store.finish_output(key, job_id)


def _results(futures: Sequence[Future[str]]) -> Iterator[str]:
    """Each future's result in order; the first failure cancels those not yet started."""
    try:
        for future in futures:
            yield future.result()
    finally:
        for future in futures:
            future.cancel()


def _check_complete(key: str, job_id: str, stored: Sequence[Region], tiles: Mapping[int, Region] | None) -> None:
    if tiles is not None:
        have = set(stored)
        missing = sorted(t for t, region in tiles.items() if region not in have)
        if missing:
            raise IncompleteJobError(job_id, missing, f"recorded done but no block of {key} stored")


class _RowIndex:
    """The stored blocks by their span of rows, to find those a band of rows crosses."""

    def __init__(self, regions: Sequence[Region]) -> None:
        by_rows: dict[tuple[int, int], list[Region]] = defaultdict(list)
        for region in regions:
            by_rows[region[0]].append(region)
        self.spans = sorted(by_rows)
        self.by_rows = by_rows

    def crossing(self, rows: tuple[int, int]) -> Iterator[Region]:
        a, b = rows
        # Tile spans do not overlap, so only the span holding ``a`` starts before it.
        i = max(0, bisect.bisect_right(self.spans, (a, float("inf"))) - 1)
        for span in self.spans[i:]:
            if span[0] >= b:
                break
            if span[1] > a:
                yield from self.by_rows[span]


def _build(store: PartAssembly, key: str, job_id: str, part: BuildPart, layout: OutputLayout,
           rows_index: _RowIndex) -> bytes:
    a, b = part.rows
    # Zeros, not empty: cells no stored block covers commit as zeros (the store contract).
    band = np.zeros((b - a, *layout.shape[1:]), dtype=layout.dtype)
    for region in rows_index.crossing(part.rows):
        lo, hi = max(a, region[0][0]), min(b, region[0][1])
        block = store.read_block_rows(key, job_id, region, (lo, hi), layout.dtype)
        band[(slice(lo - a, hi - a), *(slice(s, e) for s, e in region[1:]))] = block
    data = band.tobytes()
    return layout.header + data if part.header else data
