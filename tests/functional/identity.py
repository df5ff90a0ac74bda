"""Calling the app through chalice's test client as an authenticated AWS caller.

Chalice's local gateway (what ``chalice.test.Client`` drives) admits every request to a
route with an IAM authorizer without running it, and the events it builds carry only
``requestContext.identity.sourceIp``. Behind API Gateway, a request whose SigV4
signature checks out also carries the signer's ARN as ``requestContext.identity.userArn``
(the owner of the jobs it creates). ``signed_as`` makes a test client's gateway add that
ARN to every event it builds, which is what API Gateway does after checking a signature.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from chalice.test import Client

ALICE = "arn:aws:iam::123456789012:user/alice"
BOB = "arn:aws:iam::123456789012:user/bob"


def signed_as(client: Client, user_arn: str) -> Client:
    """``client``, its requests from now on authenticated as ``user_arn``."""
    converter = client.http._local_gateway.event_converter  # the gateway's event builder
    build = converter.create_lambda_event

    def with_identity(*args: Any, **kwargs: Any) -> Any:
        event = build(*args, **kwargs)
        event["requestContext"]["identity"]["userArn"] = user_arn
        return event

    converter.create_lambda_event = with_identity
    return client


@contextmanager
def client_as(app: Any, user_arn: str) -> Iterator[Client]:
    """A test client of ``app`` whose every request is ``user_arn``'s."""
    with Client(app) as c:
        yield signed_as(c, user_arn)
