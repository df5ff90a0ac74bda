"""Who is calling: the authenticated identity that owns the jobs a request creates and sees.

On AWS every route stands behind an API Gateway authorizer, which writes who it let in
into the request context, where no client can put anything:

* IAM (SigV4, the default): ``requestContext.identity.userArn``, the signer's ARN. For
  an assumed role that ARN names the session too
  (``arn:aws:sts::<account>:assumed-role/<role>/<session>``), so two sessions of one
  role are two owners.
* a Cognito user pool (``TILEFAN_COGNITO_USER_POOL_ARN``): the ID token's ``sub`` claim,
  in ``requestContext.authorizer.claims``; the owner is ``cognito:<sub>``.

Nothing a client sends in a header or a body names the owner. ``tilefan serve`` has one
principal per home (whoever it admits: loopback callers, or the holders of its token), so
its service answers ``LOCAL_OWNER`` whatever the context says (``JobService.owner_of``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def identity(context: Any) -> str | None:
    """The authenticated caller named in an API Gateway request context, or None."""
    if not isinstance(context, Mapping):
        return None
    authorizer = context.get("authorizer")
    claims = authorizer.get("claims") if isinstance(authorizer, Mapping) else None
    if isinstance(claims, Mapping) and isinstance(claims.get("sub"), str) and claims["sub"]:
        return f"cognito:{claims['sub']}"
    who = context.get("identity")
    arn = who.get("userArn") if isinstance(who, Mapping) else None
    return arn if isinstance(arn, str) and arn else None
