"""In-memory blob and job stores: the pipeline's ports with no files, database or AWS.

For tests and single-process runs. Both are thread-safe; their contents live in one
process (a forked worker gets its own copy, so a process pool cannot share them).
"""

from tilefan.adapters.memory.blob_store import MemoryBlobStore
from tilefan.adapters.memory.job_store import MemoryJobStore

__all__ = ["MemoryBlobStore", "MemoryJobStore"]
