"""Who the embedded server answers: requests naming its address, with its token when exposed.

``tilefan serve`` binds loopback by default. It then answers only requests whose Host
header names the bound address (``127.0.0.1:8000``, ``localhost:8000``), so a web page
cannot reach it through DNS rebinding. Bound to any other address it also requires a
token, as Jupyter does (a wildcard bind, 0.0.0.0, takes any Host but still the token):
generated once, kept in ``<home>/token`` with mode 0600, printed at start, and sent as
``Authorization: Bearer <token>`` (or ``?token=`` in a browser).

``check`` is called by the REST middleware (``rest_guard.guard``) before any route runs,
so whatever serves the routes enforces it. On AWS no policy is set: API Gateway's IAM
authorizer stands at the door instead.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


@dataclass(frozen=True)
class Access:
    hosts: frozenset[str] | None  # None: any Host (a wildcard bind, which the token guards)
    token: str | None


_access: Access | None = None


def set_access(access: Access | None) -> None:
    """Install the policy (``tilefan serve`` and tests); ``None`` checks nothing."""
    global _access
    _access = access


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


def check(headers: Any, query: Any) -> tuple[int, str, str] | None:
    """Why a request is refused (status, code, message), or None to let it through."""
    access = _access
    if access is None:
        return None
    host = str(headers.get("host") or "").lower()
    if access.hosts is not None and host not in access.hosts:
        return 403, "host_not_allowed", "this server answers only requests addressed to its own host and port"
    if access.token is None:
        return None
    sent = _bearer(str(headers.get("authorization") or "")) or str((query or {}).get("token") or "")
    if not sent or not hmac.compare_digest(sent.encode(), access.token.encode()):
        return 401, "unauthorized", "send the server's token as 'Authorization: Bearer <token>'"
    return None


def _bearer(value: str) -> str:
    scheme, _, credential = value.partition(" ")
    return credential.strip() if scheme.lower() == "bearer" else ""
