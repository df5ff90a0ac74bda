"""Who a server answers: an access policy, handed to the REST guard by the composition root.

A policy is an object, never a module setting, so a server cannot forget to install one
and fail open: a blueprint built without a policy is given ``RefuseAll`` and refuses
every request. The composition roots choose:

* ``tilefan serve`` (``serve_access``): ``Access``. Bound to loopback (the default) it
  answers only requests whose Host header names the bound address (``127.0.0.1:8000``,
  ``localhost:8000``), so a web page cannot reach it through DNS rebinding. Bound to any
  other address it also requires a token, as Jupyter does (a wildcard bind, 0.0.0.0,
  takes any Host but still the token): generated once, kept in ``<home>/token`` with
  mode 0600, printed at start, and sent as ``Authorization: Bearer <token>`` (or
  ``?token=`` in a browser).
* AWS (``app.py``): ``AllowAll``, because API Gateway's IAM (or Cognito) authorizer
  stands at the door and admits a request before any route runs.

``check`` is called by the REST middleware (``http.guard.guarded_by``) before any route
runs, so whatever serves the routes enforces it.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: its HTTP status, error code and message."""

    status: int
    code: str
    message: str


class AccessPolicy(Protocol):
    def check(self, headers: Any, query: Any) -> Refusal | None:
        """Why a request is refused, or None to let it through."""


@dataclass(frozen=True)
class RefuseAll:
    """The policy of a server nobody chose one for: it answers no request."""

    def check(self, headers: Any, query: Any) -> Refusal | None:
        return Refusal(403, "forbidden", "this server has no access policy, so it answers no request")


@dataclass(frozen=True)
class AllowAll:
    """Admits every request: for a server whose gateway has already authenticated the caller
    (API Gateway's authorizer on AWS), or one only an in-process test client reaches."""

    def check(self, headers: Any, query: Any) -> Refusal | None:
        return None


# Policies hold no state, so one of each serves every app.
REFUSE_ALL = RefuseAll()
ALLOW_ALL = AllowAll()


@dataclass(frozen=True)
class Access:
    """``tilefan serve``'s policy: the Host header must name the server, and the token be sent."""

    hosts: frozenset[str] | None  # None: any Host (a wildcard bind, which the token guards)
    token: str | None

    def check(self, headers: Any, query: Any) -> Refusal | None:
        host = str(headers.get("host") or "").lower()
        if self.hosts is not None and host not in self.hosts:
            return Refusal(403, "host_not_allowed",
                           "this server answers only requests addressed to its own host and port")
        if self.token is None:
            return None
        sent = _bearer(str(headers.get("authorization") or "")) or str((query or {}).get("token") or "")
        if not sent or not hmac.compare_digest(sent.encode(), self.token.encode()):
            return Refusal(401, "unauthorized", "send the server's token as 'Authorization: Bearer <token>'")
        return None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve_access(home: Path, host: str, port: int) -> Access:
    """The policy for a server bound to ``host:port``: a token unless it is loopback."""
    if host in ("0.0.0.0", "::", ""):
        return Access(hosts=None, token=load_token(home))
    names = {f"[{host}]" if ":" in host else host}
    if is_loopback(host):
        names.update(LOOPBACK_NAMES)
    hosts = frozenset(f"{name}:{port}" for name in names) | (frozenset(names) if port == 80 else frozenset())
    return Access(hosts=hosts, token=None if is_loopback(host) else load_token(home))


def load_token(home: Path) -> str:
    """The server's token, made on first use; readable by its owner only."""
    path = home / "token"
    home.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fp:
        fp.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def _bearer(value: str) -> str:
    scheme, _, credential = value.partition(" ")
    return credential.strip() if scheme.lower() == "bearer" else ""
