"""The optional capabilities of a store: what only some backends can do, each a named ``Protocol``.

``tilefan.pipeline.ports.Ports`` has a field for each, which the function that builds an
adapter set fills with the store that offers it, or leaves None: part assembly, presigning
and sent uploads (S3); in-place outputs, output claims and local files (the embedded file
store); direct puts (the embedded and memory stores); outputs in memory (the Python API's
temporary home). Code asks the field, never the object.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tilefan.domain.assembly import PartLimits
from tilefan.domain.tiling import Region


@dataclass(frozen=True)
class OutputLayout:
    """An uncommitted output's shape and dtype, and the ``.npy`` header it will start with."""

    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    header: bytes


class PartAssembly(Protocol):
    """A blob store that keeps each tile's block as its own object and builds the output
    from them with one multipart upload (S3). ``tilefan.pipeline.assemble`` plans the parts
    and drives these calls; stores that write tiles into the output in place (the embedded
    file store, the memory store) do not implement this and commit with ``commit_array``.

    ``group`` names the object an upload builds: None for the output at ``key``, a number
    for one of the group objects a very large output is first built in.
    """

    def part_limits(self) -> PartLimits: ...

    def io_streams(self) -> int:
        """Requests the store keeps in flight for one read or write: the parts the reducer
        builds at once, too."""
        ...

    def output_layout(self, key: str, job_id: str) -> OutputLayout:
        """StoreError if the output was never created."""
        ...

    def stored_blocks(self, key: str, job_id: str) -> list[Region]:
        """The regions whose blocks are stored."""
        ...

    def read_block_rows(
        self, key: str, job_id: str, region: Region, rows: tuple[int, int], dtype: np.dtype[Any]
    ) -> np.ndarray:
        """Output rows ``rows`` (within ``region``'s) of the block stored for ``region``, in one read."""
        ...

    def start_upload(self, key: str, job_id: str, group: int | None) -> str: ...

    def upload_part(self, key: str, job_id: str, group: int | None, upload: str, number: int, data: bytes) -> str:
        """Send part ``number``; returns its receipt (the ETag)."""
        ...

    def copy_block_part(
        self, key: str, job_id: str, group: int | None, upload: str, number: int, region: Region,
        rows: tuple[int, int], dtype: np.dtype[Any],
    ) -> str:
        """Part ``number`` is output rows ``rows`` of the full-width block of ``region``, copied by the store."""
        ...

    def copy_group_part(
        self, key: str, job_id: str, upload: str, number: int, group: int, first: int, last: int
    ) -> str:
        """Part ``number`` of the output is bytes ``first``..``last`` of group object ``group``."""
        ...

    def complete_upload(self, key: str, job_id: str, group: int | None, upload: str, receipts: list[str]) -> None:
        ...

    def abort_upload(self, key: str, job_id: str, group: int | None, upload: str) -> None: ...

    def finish_output(self, key: str, job_id: str) -> str:
        """Drop the blocks once the output is complete at ``key``; returns where it is."""
        ...


class InPlaceOutputs(Protocol):
    """A blob store that builds some outputs in this process's memory (the Python API's
    temporary home): a matmul tile then has BLAS write its block straight into the output,
    with no block to copy over. Outputs elsewhere take ``write_region``: for a file, the
    block written with ``pwrite`` beats BLAS storing into a shared map of the file, whose
    first stores fault in the file's pages, band by band (BENCHMARKS.md)."""

    def output_region(self, key: str, job_id: str, region: Region) -> np.ndarray | None:
        """A writable view of ``region`` of job ``job_id``'s uncommitted output at ``key``
        (clipped to the output), if that output is in this process's memory: what is
        written into it is the region's content, as ``write_region`` of the same values
        would leave it. None for an output that is not (write it with ``write_region``)."""
        ...


class ZarrRegions(Protocol):
    """A store whose every read is a round trip (S3) lets a reader of a job's Zarr output
    fix the array's layout once: a verified field's points then cost a request each (a
    ranged GET of the point's chunk), not two."""

    def zarr_region_reader(self, key: str, job_id: str) -> Callable[[Region], np.ndarray]:
        """Reads regions of the job's Zarr output ``key`` while it is built, its metadata read now."""
        ...


class MemoryOutputs(Protocol):
    """A store that builds some outputs in this process's memory (the Python API's temporary
    home, ``adapters/embedded/held_arrays``). Such an output is only this process's: a job
    whose tiles run in forked pool workers must have its outputs built as files."""

    def would_hold(self, key: str, shape: tuple[int, ...], dtype: str) -> bool:
        """Whether an output this process creates at ``key`` would be built in memory."""
        ...

    def in_memory(self, job_id: str) -> bool:
        """Whether the job's outputs (all created by its plan step) are built in memory."""
        ...

    def to_files(self, job_id: str) -> None:
        """Build the job's outputs as files from now on, before any worker forks."""
        ...


class LocalFiles(Protocol):
    """A blob store whose objects are files on this machine (the embedded file store): the
    local doors copy or convert a job's array result from its file, whatever its size."""

    def path(self, key: str) -> Path:
        """The file that holds (or would hold) ``key``'s object."""
        ...


class SentUploads(Protocol):
    """What a store whose uploads a client sends straight to it (S3) offers the completion
    step: the object as stored now, its start read by that version only, and a record
    written only if none exists (``tilefan.service.uploads``)."""

    def upload_stamp(self, key: str) -> dict[str, Any]:
        """``{"etag", "version_id", "bytes"}`` of the object now at ``key``. Raises BlobNotFoundError."""
        ...

    def upload_header(self, key: str, etag: str) -> tuple[tuple[int, ...], str, int]:
        """Shape, dtype and data offset from the ``.npy`` header of the object with ``etag``."""
        ...

    def read_head(self, key: str, size: int, etag: str) -> bytes:
        """The first ``size`` bytes of the object with ``etag``."""
        ...

    def put_json_once(self, key: str, value: Any) -> bool:
        """Write ``value`` unless ``key`` exists; False if it did."""
        ...


class OutputClaims(Protocol):
    """One writer per user-named output path (the embedded file store: a lock file next to
    the output). ``tilefan.pipeline.output_claims`` decides; S3 outputs are under each job's
    own prefix and need no claim."""

    def claim_output(self, key: str, job_id: str) -> str | None:
        """Claim ``key`` for ``job_id`` atomically; None if claimed now, else the holder's id."""
        ...

    def take_output(self, key: str, job_id: str) -> None:
        """Take over a claim whose holder has ended."""
        ...


class DirectPut(Protocol):
    """A store the server writes an upload's bytes into itself (``tilefan serve``); on AWS
    a client posts them straight to S3 instead (``Presigning``, ``SentUploads``)."""

    def put_bytes(self, key: str, data: bytes) -> None: ...


class Presigning(Protocol):
    """URLs a client uses without the store's credentials (S3)."""

    def presign_post(self, key: str, expires_s: int, max_bytes: int) -> dict[str, Any]:
        """``{"url", "fields"}`` of a form that uploads at most ``max_bytes`` to ``key``."""
        ...

    def presign_get(self, key: str, expires_s: int) -> str:
        """A URL that downloads ``key``."""
        ...
