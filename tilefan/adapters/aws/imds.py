"""The EC2 instance metadata service, IMDSv2 only: a session token first, then reads with it.

Spot workers poll ``/latest/meta-data/spot/instance-action``: 404 while no interruption is
scheduled, a small JSON document (``{"action": "terminate", "time": "..."}``) once one is,
about two minutes ahead. The base URL is configurable (``TILEFAN_IMDS_URL``) so tests can
serve a fake endpoint. Only the standard library is used, with short timeouts: the service
is link-local and answers in milliseconds or not at all.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from tilefan.errors import MetadataError
from tilefan.pipeline.spot_ports import SpotNotice

DEFAULT_URL = "http://169.254.169.254"
TOKEN_PATH = "/latest/api/token"
SPOT_ACTION_PATH = "/latest/meta-data/spot/instance-action"
INSTANCE_ID_PATH = "/latest/meta-data/instance-id"
TOKEN_TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"

Opener = Callable[..., Any]




class Imds:
    def __init__(
        self, base_url: str = DEFAULT_URL, *, timeout_s: float = 1.0, token_ttl_s: int = 21_600,
        clock: Callable[[], float] = time.monotonic, opener: Opener = urllib.request.urlopen,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.token_ttl_s = token_ttl_s
        self.clock = clock
        self.opener = opener
        self._token: str | None = None
        self._token_expires = 0.0

    # ------------------------------------------------------------------ requests

    def _request(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        request = urllib.request.Request(self.base_url + path, method=method, headers=headers)
        try:
            with self.opener(request, timeout=self.timeout_s) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), b""
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise MetadataError(f"instance metadata at {self.base_url} unreachable: {exc}") from None

    def _session_token(self) -> str:
        # Renew well before the TTL so a read never races the expiry.
        if self._token is None or self.clock() >= self._token_expires:
            status, body = self._request("PUT", TOKEN_PATH, {TOKEN_TTL_HEADER: str(self.token_ttl_s)})
            if status != 200 or not body:
                raise MetadataError(f"instance metadata refused a session token (HTTP {status})")
            self._token = body.decode("ascii", "replace").strip()
            self._token_expires = self.clock() + 0.9 * self.token_ttl_s
        return self._token

    def _get(self, path: str) -> tuple[int, bytes]:
        status, body = self._request("GET", path, {TOKEN_HEADER: self._session_token()})
        if status == 401:  # the token expired or the service restarted: one fresh try
            self._token = None
            status, body = self._request("GET", path, {TOKEN_HEADER: self._session_token()})
        return status, body

    # ------------------------------------------------------------------ reads

    def spot_notice(self) -> SpotNotice | None:
        """The scheduled interruption, or None while there is none."""
        status, body = self._get(SPOT_ACTION_PATH)
        if status == 404:
            return None
        if status != 200:
            raise MetadataError(f"reading {SPOT_ACTION_PATH} failed (HTTP {status})")
        return parse_notice(body)

    def instance_id(self) -> str:
        status, body = self._get(INSTANCE_ID_PATH)
        if status != 200 or not body:
            raise MetadataError(f"reading {INSTANCE_ID_PATH} failed (HTTP {status})")
        return body.decode("ascii", "replace").strip()


def parse_notice(body: bytes) -> SpotNotice:
    """Any 200 answer is a notice, even one whose body cannot be read.

    >>> parse_notice(b'{"action": "terminate", "time": "2026-01-02T03:04:05Z"}')
    SpotNotice(action='terminate', time='2026-01-02T03:04:05Z')
    >>> parse_notice(b"garbage")
    SpotNotice(action='unknown', time='')
    """
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        return SpotNotice(action="unknown", time="")
    return SpotNotice(action=str(doc.get("action") or "unknown"), time=str(doc.get("time") or ""))
