"""How many S3 requests a store keeps in flight is a setting: sized from the function's
memory (Lambda's ``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``), overridable, bounded, wired into the
S3 store, and followed by the planner's S3 rate per function."""

from __future__ import annotations

import boto3
import pytest

from tilefan import bootstrap, settings
from tilefan.domain.transfer import function_io_mb_s, io_streams
from tilefan.errors import InvalidSpecError

BASE = {"TILEFAN_BUCKET": "b", "TILEFAN_TABLE": "t"}


@pytest.mark.parametrize(("memory", "streams"), [(None, 16), ("10240", 16), ("5120", 8), ("3008", 8), ("512", 4)])
def test_the_streams_follow_the_function_s_memory(memory: str | None, streams: int) -> None:
    env = {**BASE, **({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": memory} if memory else {})}
    assert settings.parse_aws_settings(env).s3_streams == streams


def test_the_streams_can_be_set_and_the_planner_s_rate_follows_them() -> None:
    parsed = settings.parse_aws_settings({**BASE, "TILEFAN_S3_STREAMS": "2"})
    assert parsed.s3_streams == 2
    assert parsed.route_policy.lambda_io_mb_s == function_io_mb_s(2) == 120.0
    # Unset, the planner charges the tile function's rate, whatever the planner's own memory.
    planner = settings.parse_aws_settings({**BASE, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3008"})
    assert planner.route_policy.lambda_io_mb_s == settings.list_policy().lambda_io_mb_s \
        == function_io_mb_s(io_streams(10_240))


@pytest.mark.parametrize("raw", ["0", "65", "many"])
def test_a_bad_stream_count_names_the_variable(raw: str) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        settings.parse_aws_settings({**BASE, "TILEFAN_S3_STREAMS": raw})
    assert caught.value.field == "TILEFAN_S3_STREAMS"


def test_the_store_gets_the_streams_and_the_client_a_connection_for_each() -> None:
    parsed = settings.parse_aws_settings({**BASE, "TILEFAN_S3_STREAMS": "12"})
    # Building clients sends no request; the credentials are never used.
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    region_name="us-east-1")
    ports = bootstrap.build_aws_ports(parsed, session=session)
    from tilefan.adapters.aws.s3_store import S3BlobStore
    from tilefan.pipeline.assemble import REQUESTS_IN_FLIGHT

    assert isinstance(ports.blobs, S3BlobStore) and ports.blobs.io_streams() == 12
    assert ports.blobs.client.meta.config.max_pool_connections == REQUESTS_IN_FLIGHT + 12


def test_the_cost_model_counts_the_parts_the_store_uploads() -> None:
    from tilefan.domain.cost_model import S3_PART_BYTES
    from tilefan.domain.transfer import PART_BYTES

    # A partial over one part is a multipart upload of PART_BYTES parts, as the model charges.
    assert S3_PART_BYTES == PART_BYTES
