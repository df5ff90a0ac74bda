"""Who a request acts for: read from API Gateway's request context only, never from headers.

On an IAM stage the owner is the SigV4 signer's ARN, on a Cognito stage ``cognito:<sub>``;
a context without either has no identity, and the service then refuses to act (401),
unless it is the embedded backend, whose one principal owns everything.
"""

from __future__ import annotations

from typing import Any

import pytest

from tilefan.adapters.memory import memory_ports
from tilefan.domain.records import LOCAL_OWNER
from tilefan.domain.spec.parse import Limits
from tilefan.entrypoints.http.owner import identity
from tilefan.errors import UnauthenticatedError
from tilefan.pipeline.error_codec import http_error
from tilefan.service.jobs import JobService

ARN = "arn:aws:sts::123456789012:assumed-role/analyst/alice-session"


@pytest.mark.parametrize("context, expected", [
    ({"identity": {"sourceIp": "10.0.0.1", "userArn": ARN}}, ARN),
    ({"identity": {"userArn": None}, "authorizer": {"claims": {"sub": "4f1c-77", "email": "a@b.c"},
                                                    "principalId": "alice"}}, "cognito:4f1c-77"),
    ({"identity": {"sourceIp": "127.0.0.1"}}, None),  # chalice's local gateway: no authorizer ran
    ({"identity": {"userArn": ""}, "authorizer": {"claims": {"sub": ""}}}, None),
    ({"identity": "arn:aws:iam::1:user/x", "authorizer": ["claims"]}, None),
    (None, None),
])
def test_the_identity_is_the_authorizers(context: Any, expected: str | None) -> None:
    assert identity(context) == expected


def _service(principal: str | None) -> JobService:
    ports = memory_ports()  # never touched: owners are decided before any store is
    return JobService(ports, runner=None, limits=Limits(), principal=principal)  # type: ignore[arg-type]


def test_on_aws_the_identity_owns_and_without_one_the_request_is_refused_401() -> None:
    service = _service(None)
    assert service.owner_of(ARN) == ARN
    with pytest.raises(UnauthenticatedError) as refused:
        service.owner_of(None)
    assert http_error(refused.value)[0] == 401


def test_the_embedded_backend_has_one_principal_whatever_the_context_says() -> None:
    service = _service(LOCAL_OWNER)
    assert service.owner_of(None) == service.owner_of(ARN) == LOCAL_OWNER
