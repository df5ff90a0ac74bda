"""In-memory blob and job stores: the pipeline's ports with no files, database or AWS.

For tests and single-process runs. Both are thread-safe; their contents live in one
process (a forked worker gets its own copy, so a process pool cannot share them).
"""

from __future__ import annotations

from tilefan.adapters.memory.blob_store import MemoryBlobStore
from tilefan.adapters.memory.job_store import MemoryJobStore
from tilefan.pipeline.ports import JobStore, Ports

__all__ = ["MemoryBlobStore", "MemoryJobStore", "memory_ports"]


def memory_ports(blobs: MemoryBlobStore | None = None, jobs: JobStore | None = None) -> Ports:
    """The in-memory adapter set's ports (new empty stores by default): it stores uploads
    itself, as ``tilefan serve`` does, and needs no claims (nothing outside it can write)."""
    blobs = MemoryBlobStore() if blobs is None else blobs
    return Ports(blobs, MemoryJobStore() if jobs is None else jobs, direct_put=blobs)
