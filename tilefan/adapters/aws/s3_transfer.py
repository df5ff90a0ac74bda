"""A bounded pool of concurrent S3 requests, shared by everything one blob store reads or writes.

One S3 request stream is slow (latency to first byte, one connection's bandwidth), so the
S3 store splits big ranged reads and big uploads into parts (``tilefan.domain.transfer``)
and runs them here. The pool is the store's, not the call's: a reducer building sixteen
parts at once still has at most ``streams`` requests in flight, and the parts in flight
are what bounds the memory they take.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

import numpy as np

from tilefan.domain.transfer import PART_BYTES, byte_parts, read_part_bytes
from tilefan.errors import StoreError

T = TypeVar("T")
R = TypeVar("R")
# fetch(offset, buffer) fills the buffer with an object's bytes from ``offset`` on (one
# ranged GET) and returns how many it got and the object's ETag.
Fetch = Callable[[int, memoryview], tuple[int, str]]


class TransferPool:
    """Runs a store's part requests, at most ``streams`` at once, of ``part_bytes`` each."""

    def __init__(self, streams: int, part_bytes: int = PART_BYTES) -> None:
        if streams < 1 or part_bytes < 1:
            raise ValueError(f"streams and part_bytes must be at least 1, got {streams} and {part_bytes}")
        self.streams = streams
        self.part_bytes = part_bytes
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._inside = _PoolThread()

    def _executor(self) -> ThreadPoolExecutor:
        # Built on first use: a store that never moves a big object starts no threads.
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.streams, thread_name_prefix="tilefan-s3",
                                                initializer=self._mark_worker)
            return self._pool

    def _mark_worker(self) -> None:
        self._inside.worker = True

    def map(self, fn: Callable[[T], R], items: Sequence[T], limit: int | None = None) -> list[R]:
        """``fn`` over ``items``, results in order, at most ``limit`` (and ``streams``) of
        them in flight. The first failure stops the items not yet started, waits for those
        running (so the caller can clean up after them) and is raised."""
        window = min(self.streams, limit or self.streams)
        # A part request that itself splits (a single row over a part) runs its parts in
        # line: waiting on the pool from one of its own threads could wait forever.
        if window <= 1 or len(items) <= 1 or self._inside.worker:
            return [fn(item) for item in items]
        pool = self._executor()
        results: list[R | None] = [None] * len(items)
        pending: set[Future[None]] = set()

        def run(i: int, item: T) -> None:
            results[i] = fn(item)

        try:
            for i, item in enumerate(items):
                if len(pending) >= window:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    _raise_first(done)
                pending.add(pool.submit(run, i, item))
            done, pending = wait(pending)
            _raise_first(done)
        except BaseException:
            for future in pending:
                future.cancel()
            wait(pending)
            raise
        return results  # type: ignore[return-value]  # every slot was filled, or map raised

    def read(self, fetch: Fetch, first: int, last: int, label: str) -> memoryview:
        """Bytes ``first``..``last`` (fewer if the object ends sooner) by concurrent
        ``fetch(a, into)`` of a part each, straight into the result."""
        # Not zeroed (a bytearray would be): the pages are touched by the threads that fill
        # them while other parts are in flight, not one by one before the first request.
        out = np.empty(last - first + 1, dtype=np.uint8)
        short: list[int] = []  # where parts the object ended inside stopped
        etags: set[str] = set()

        def one(part: tuple[int, int]) -> None:
            # Disjoint slices of a buffer that never resizes: safe from many threads.
            got, etag = fetch(part[0], out[part[0] - first : part[1] - first + 1].data)
            if got < part[1] - part[0] + 1:
                short.append(part[0] + got)
            etags.add(etag)

        part = read_part_bytes(last - first + 1, self.streams, self.part_bytes)
        self.map(one, list(byte_parts(first, last, part)))
        if len(etags) > 1:
            # Parts of two versions would be a block nobody wrote; the tile's retry reads again.
            raise StoreError(f"{label} was replaced while it was being read")
        return (out[: min(short) - first] if short else out).data

    def upload(self, send: Callable[[int, bytes], str], body: bytes) -> list[str]:
        """``send(number, part)`` for each part of ``body``, concurrently; the receipts in order."""
        parts = list(enumerate(byte_parts(0, len(body) - 1, self.part_bytes), start=1))
        return self.map(lambda p: send(p[0], body[p[1][0] : p[1][1] + 1]), parts)


class _PoolThread(threading.local):
    """Whether the current thread is one of the pool's own."""

    worker = False


def _raise_first(done: set[Future[None]]) -> None:
    for future in done:
        error = future.exception()
        if error is not None:
            raise error
