"""A tile that outlives its job's failure leaves nothing of its output behind, on every
adapter set: its block may land after the job's cleanup or while it runs, and either way
no part or partial file is left (a stray part on S3 is storage nobody owns and nobody is
billed a reason for)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from tests.functional.pipeline_storage import Storage
from tests.helpers import ForwardingBlobs, normal_pair, start_job
from tilefan.domain.records import Status
from tilefan.pipeline.lifecycle import fail_job
from tilefan.pipeline.ports import BlobStore, Ports
from tilefan.pipeline.tile import TileOutcome, run_tile

ERROR = {"code": "tile_failed", "message": "another tile failed", "tile_id": 3}


def add_job(storage: Storage, ports: Ports) -> tuple[str, list[int]]:
    a, b = normal_pair(9, (40, 40), (40, 40))
    return start_job(ports, {"kind": "add", **storage.inputs(a, b), "tile": 20})


class LandsAfterTheCleanup(ForwardingBlobs):
    """This tile's block lands after the job failed and its cleanup had run (a PUT that
    passed the store's check before the cleanup and finished after it): the store holds
    the block, and the job is FAILED with nothing else left to drop."""

    def __init__(self, inner: BlobStore, ports: Ports) -> None:
        super().__init__(inner)
        self.ports = ports

    def write_region(self, key: str, job_id: str, region: Sequence[tuple[int, int]], block: np.ndarray) -> None:
        super().write_region(key, job_id, region, block)
        assert self.ports.jobs.transition(job_id, Status.FAILED, error=ERROR, timings={})


def test_a_block_that_lands_after_the_jobs_cleanup_is_dropped_by_its_tile(storage: Storage, ports: Ports) -> None:
    job_id, tiles = add_job(storage, ports)
    late = replace(ports, blobs=LandsAfterTheCleanup(ports.blobs, ports))
    assert run_tile(late, job_id, tiles[0]).outcome is TileOutcome.JOB_NOT_RUNNING
    assert ports.jobs.get_job(job_id).status is Status.FAILED
    assert storage.partials() == []


class BlockLandsDuringTheCleanup(ForwardingBlobs):
    """While the failed job's output is being dropped, another tile's block lands (the PUT
    finished after the cleanup listed the output's parts) and the tile goes to record it."""

    def __init__(self, inner: BlobStore, ports: Ports, job_id: str, tile_id: int) -> None:
        super().__init__(inner)
        self.ports, self.job_id, self.tile_id = ports, job_id, tile_id
        self.outcomes: list[TileOutcome] = []

    def discard_array(self, key: str, job_id: str) -> None:
        if not self.outcomes:
            self.outcomes.append(run_tile(self.ports, self.job_id, self.tile_id).outcome)
        super().discard_array(key, job_id)


def test_a_block_that_lands_during_the_cleanup_is_dropped(storage: Storage, ports: Ports) -> None:
    job_id, tiles = add_job(storage, ports)
    assert run_tile(ports, job_id, tiles[0]).outcome is TileOutcome.RECORDED  # recorded before the failure
    watched = BlockLandsDuringTheCleanup(ports.blobs, ports, job_id, tiles[1])
    assert fail_job(replace(ports, blobs=watched), job_id, ERROR)
    # The job turned FAILED before its cleanup: the late tile was refused, and dropped its block.
    assert watched.outcomes == [TileOutcome.JOB_NOT_RUNNING]
    assert ports.jobs.get_job(job_id).status is Status.FAILED
    assert storage.partials() == []
