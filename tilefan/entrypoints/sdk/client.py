"""``tilefan.Client``: the REST API of a deployed stack or of a remote ``tilefan serve``.

Authentication: a ``token`` is sent in a header (``Authorization: Bearer …`` unless
``token_header`` says otherwise); an API Gateway URL (``*.amazonaws.com``) without a token
is signed with SigV4 from the usual AWS credential chain (botocore, the ``aws`` extra).
Redirects (a result served from a presigned S3 URL) are followed without our
credentials, which the presigned URL must not carry.

Back-pressure: a 429 or 503 is tried again, at most ``retries`` times, after the wait its
``Retry-After`` asks for (else an exponential backoff), capped at ``max_retry_wait_s`` and
stretched by a random quarter so a crowd of clients refused together does not come back
together. Those answers mean the request was not acted on, so repeating even a POST is safe.

>>> Client("http://127.0.0.1:8000").url
'http://127.0.0.1:8000'
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from tilefan.errors import JobNotFoundError, ReportedError, TilefanError

_API_GATEWAY = re.compile(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com$")
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
RETRY_STATUSES = (429, 503)  # "not now": the request was not acted on
_sleep = time.sleep  # the retry waits (a test replaces it to count them)


def retry_wait(retry_after: str | None, attempt: int, cap_s: float, now: float | None = None) -> float:
    """Seconds to wait before retry ``attempt`` (0 first): what ``Retry-After`` asks (seconds
    or an HTTP date), else 0.5 s doubling; at most ``cap_s``; then up to a quarter more, at random.

    >>> 5.0 <= retry_wait("5", 0, 60) <= 6.25
    True
    >>> 2.0 <= retry_wait(None, 2, 60) <= 2.5 and retry_wait("3600", 0, 30) <= 37.5
    True
    """
    wanted = 0.5 * 2**attempt
    if retry_after:
        text = retry_after.strip()
        if text.isdigit():
            wanted = float(text)
        else:
            try:
                when = email.utils.parsedate_to_datetime(text).timestamp()
                wanted = max(0.0, when - (time.time() if now is None else now))
            except (TypeError, ValueError):
                pass  # unreadable: keep the backoff
    base = min(wanted, cap_s)
    return base + random.uniform(0.0, base / 4)


class ApiError(TilefanError):
    """The API answered with an error body, or could not be reached."""

    code = "api_error"

    def __init__(self, status: int, body: dict[str, Any] | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = body or {}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # we follow redirects ourselves, without credentials


class Client:
    """Submit, watch, cancel and fetch jobs over HTTP."""

    def __init__(self, url: str, *, token: str | None = None, token_header: str = "Authorization",
                 region: str | None = None, timeout: float = 30.0, retries: int = 5,
                 max_retry_wait_s: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.token_header = token_header
        self.timeout = timeout
        self.retries = retries
        self.max_retry_wait_s = max_retry_wait_s
        host = urllib.parse.urlsplit(self.url).hostname or ""
        match = _API_GATEWAY.search(host)
        self.region = region or (match.group(1) if match else None)
        self.sigv4 = token is None and host.endswith(".amazonaws.com")
        self._opener = urllib.request.build_opener(_NoRedirect)

    # ------------------------------------------------------------------ transport

    def _headers(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> dict[str, str]:
        if self.token is not None:
            value = f"Bearer {self.token}" if self.token_header.lower() == "authorization" else self.token
            return {**headers, self.token_header: value}
        if not self.sigv4:
            return headers
        try:
            import botocore.session
            from botocore.auth import SigV4Auth
            from botocore.awsrequest import AWSRequest
        except ModuleNotFoundError:
            raise TilefanError("signing requests to AWS needs the aws extra: pip install 'tilefan[aws]'") from None
        session = botocore.session.Session()
        credentials = session.get_credentials()
        if credentials is None:
            raise TilefanError("no AWS credentials found (environment, ~/.aws or an instance role)")
        request = AWSRequest(method=method, url=url, data=body or b"", headers=headers)
        SigV4Auth(credentials, "execute-api", self.region or session.get_config_variable("region")).add_auth(request)
        return dict(request.headers.items())

    def _send(self, method: str, path: str, body: bytes | None = None,
              headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """One request, tried again after each 429 or 503 (see the module's docstring)."""
        for attempt in range(self.retries + 1):
            status, answer_headers, raw = self._send_once(method, path, body, headers)
            if status not in RETRY_STATUSES or attempt == self.retries:
                break
            retry_after = {k.lower(): v for k, v in answer_headers.items()}.get("retry-after")
            _sleep(retry_wait(retry_after, attempt, self.max_retry_wait_s))
        return status, answer_headers, raw

    def _send_once(self, method: str, path: str, body: bytes | None = None,
                   headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        url = path if path.startswith(("http://", "https://")) else self.url + path
        # A presigned URL elsewhere (S3) carries its own signature: never add ours.
        ours = url.startswith(self.url + "/")
        signed = self._headers(method, url, body, dict(headers or {})) if ours else dict(headers or {})
        request = urllib.request.Request(url, data=body, method=method, headers=signed)
        try:
            with self._opener.open(request, timeout=self.timeout) as resp:
                return resp.status, dict(resp.headers.items()), resp.read()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, dict(exc.headers.items()), exc.read()
        except (urllib.error.URLError, OSError) as exc:
            raise ApiError(0, None, f"cannot reach {self.url}: {getattr(exc, 'reason', exc)}") from None

    def _json(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        status, _, raw = self._send(method, path, data, {"Content-Type": "application/json"} if data else {})
        doc = json.loads(raw or b"null") if raw else None
        if status >= 400:
            err = (doc or {}).get("error") if isinstance(doc, dict) else None
            if status == 404 and err and err.get("code") == "job_not_found":
                raise JobNotFoundError(path.split("/")[2])
            if err:
                raise ReportedError(err.get("code", "api_error"), err.get("message", ""), err.get("field"))
            raise ApiError(status, doc if isinstance(doc, dict) else None, f"{method} {path}: HTTP {status}")
        return doc

    # ------------------------------------------------------------------ jobs

    def submit(self, spec: dict[str, Any]) -> dict[str, Any]:
        """POST /jobs; returns the accepted job record."""
        return dict(self._json("POST", "/jobs", spec))

    def get(self, job_id: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/jobs/{job_id}"))

    def list(self, limit: int = 20, cursor: str | None = None) -> dict[str, Any]:
        query = urllib.parse.urlencode({"limit": limit, **({"cursor": cursor} if cursor else {})})
        return dict(self._json("GET", f"/jobs?{query}"))

    def cancel(self, job_id: str) -> dict[str, Any]:
        return dict(self._json("DELETE", f"/jobs/{job_id}"))

    def report(self, job_id: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/jobs/{job_id}/report"))

    def wait(self, job_id: str, *, progress: bool = True, poll_s: float = 0.5,
             timeout: float | None = None) -> dict[str, Any]:
        """Poll until the job ends, drawing the same progress bar as a local run."""
        from tilefan.entrypoints.report.progress import JobProgress

        deadline = None if timeout is None else time.monotonic() + timeout
        doc = self.get(job_id)
        with JobProgress(doc["kind"], disable=not progress) as bar:
            while True:
                bar.update(doc)
                if doc["status"] in TERMINAL:
                    return doc
                if deadline is not None and time.monotonic() > deadline:
                    raise TilefanError(f"job {job_id} still {doc['status']} after {timeout} s")
                time.sleep(poll_s)
                doc = self.get(job_id)

    def result(self, job_id: str, out: str | os.PathLike[str]) -> Path:
        """GET /jobs/{id}/result into ``out``: the .npy bytes, or a redirect to them."""
        return self._download(job_id, "result", out)

    def field(self, job_id: str, out: str | os.PathLike[str], fmt: str | None = None) -> Path:
        """GET /jobs/{id}/field into ``out``: the .npy, or with ``fmt`` (dx, mrc) a map the server converts."""
        return self._download(job_id, "field" + (f"?format={fmt}" if fmt else ""), out)

    def _download(self, job_id: str, which: str, out: str | os.PathLike[str]) -> Path:
        # API Gateway and Chalice send binary bodies only to a request that accepts them.
        status, headers, raw = self._send("GET", f"/jobs/{job_id}/{which}",
                                          headers={"Accept": "application/octet-stream, */*"})
        location = {k.lower(): v for k, v in headers.items()}.get("location")
        if status in (301, 302, 303, 307, 308) and location:
            with urllib.request.urlopen(location, timeout=self.timeout) as resp:  # presigned: no credentials
                raw, status = resp.read(), resp.status
        if status >= 400:
            try:
                err = json.loads(raw).get("error") or {}
            except (ValueError, AttributeError):
                err = {}
            if not err:  # API Gateway and Chalice answer an unknown route with a bare 403
                raise ApiError(status, None, f"{self.url} serves no {which} download for job {job_id} "
                                             f"(GET /jobs/{job_id}/{which} answered HTTP {status})")
            if status == 404 and err.get("code") == "job_not_found":
                raise JobNotFoundError(job_id)
            raise ReportedError(err.get("code", "api_error"), err.get("message", f"HTTP {status}"), err.get("field"))
        path = Path(out)
        path.write_bytes(raw)
        return path

    def upload(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Upload a local .npy, .csv, .pqr or .xyz and complete it; returns what a spec names it by (``use_as``).

        The file goes where ``POST /uploads`` says: a PUT to the embedded server, or a form
        POST straight to S3; then ``POST /uploads/{id}/complete`` has the server check it.
        """
        name = Path(path).name
        ticket = self._json("POST", "/uploads", {"filename": name})
        data = Path(path).read_bytes()
        if ticket["method"] == "POST":
            body, content_type = form_body(ticket.get("fields") or {}, name, data)
            status, _, raw = self._send("POST", ticket["url"], body, {"Content-Type": content_type})
        else:
            status, _, raw = self._send("PUT", ticket["url"], data, {"Content-Type": "application/octet-stream"})
        if status >= 400:
            raise ApiError(status, None, f"upload of {name} failed: HTTP {status} {raw[:200]!r}")
        done = self._json("POST", ticket.get("complete") or f"/uploads/{ticket['upload_id']}/complete")
        return dict(done["use_as"])


def form_body(fields: dict[str, str], filename: str, data: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body for an S3 presigned POST: the policy's fields, then the
    file (S3 ignores any field after it).

    >>> body, kind = form_body({"key": "uploads/x/A.npy"}, "A.npy", b"\\x93NUMPY")
    >>> kind.startswith("multipart/form-data; boundary=") and body.count(b'name="key"') == 1
    True
    """
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                 "Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"
