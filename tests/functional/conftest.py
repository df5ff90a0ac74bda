"""Fixtures for the AWS adapters under moto: fake credentials, one mocked account,
and the bucket and table the CloudFormation stack would own. And the pipeline's stores
on every backend in turn (``storage``, ``ports``).

Nothing here can reach AWS: the credentials are fake, and ``mock_aws`` intercepts every
botocore request before it leaves the process.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.functional.pipeline_storage import Storage
    from tilefan.pipeline.ports import Ports

REGION = "us-east-1"
BUCKET = "tilefan-test-store"
USER_BUCKET = "tilefan-test-user-inputs"  # stands for a user's own bucket (s3:// keys)
TABLE = "tilefan-test-jobs"


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and a region, so boto3 never looks for real ones."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def aws_session() -> Any:
    """One boto3 session for the whole run, with fake credentials of its own (the one the
    emulated stacks share).

    Clients come from it rather than from boto3's default session, which moto resets on
    every start: a fresh session re-reads botocore's endpoint and service files, about
    a tenth of a second per test.
    """
    from tests.functional.aws_stack import shared_session

    return shared_session()


@pytest.fixture
def mocked_aws(aws_credentials: None) -> Iterator[None]:
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture
def s3_client(mocked_aws: None, aws_session: Any) -> Any:
    """An S3 client with the store's bucket and a "user" bucket already created."""
    client = aws_session.client("s3")
    client.create_bucket(Bucket=BUCKET)
    client.create_bucket(Bucket=USER_BUCKET)
    return client


@pytest.fixture
def dynamodb_client(mocked_aws: None, aws_session: Any) -> Any:
    """A DynamoDB client with the jobs table created as the stack declares it."""
    from tilefan.adapters.aws.dynamo_table import create_table

    client = aws_session.client("dynamodb")
    create_table(client, TABLE)
    return client


# --------------------------------------------------------------------------- the pipeline's stores


@pytest.fixture(params=["embedded", "aws", "memory"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """Each backend's stores in turn, with a user's own files beside them."""
    # Imported here: the builders' module imports the names above.
    from tests.functional.pipeline_storage import storage_for

    return storage_for(request.param, request, tmp_path)


@pytest.fixture
def ports(storage: Storage) -> Ports:
    """The pipeline's ports over ``storage``."""
    return storage.ports


# The AWS stack in moto and a Chalice test client of the app over it, for the tests that go
# through the REST API on AWS (a module that needs another ``client`` defines its own).
@pytest.fixture
def stack() -> Iterator[Any]:
    from tests.functional.aws_stack import aws_stack

    with aws_stack() as s:
        yield s


@pytest.fixture
def client() -> Iterator[Any]:
    from tests.functional.aws_stack import aws_api
    from tests.functional.identity import ALICE, client_as

    with client_as(aws_api(), ALICE) as c:  # as API Gateway passes on a SigV4-signed request
        yield c
