"""``tilefan serve``'s HTTP front end: waitress serving the Chalice routes.

A small WSGI adapter hands each request to Chalice's ``LocalGateway`` (the same routes,
the same Lambda-shaped events as on AWS). waitress does the HTTP: a 1024-deep listen
backlog and a worker-thread pool (no resets under load), a timeout for idle clients, and
(``http.limits``) per-route body caps applied while reading (a larger Content-Length is
refused before the body is read; a chunked body is cut off when it passes the cap) and a
deadline for each whole request, so a client trickling bytes cannot hold a connection.

Chalice keeps the request being served on the app object (``app.current_request``, read
by the routes through their blueprint). ``LocalApp`` keeps it per thread instead, so the
worker threads dispatch concurrently: no lock is shared by the requests (everything else
Chalice builds per request). A plain ``Chalice`` app still works, serialized by a lock.

SIGTERM (and Ctrl-C) stop accepting, finish the requests in hand, then run ``on_stop``
(the scheduler's graceful stop: unfinished jobs stay resumable).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import signal
import threading
import urllib.parse
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

from chalice import Chalice
from chalice.app import Request
from chalice.config import Config as ChaliceConfig
from chalice.local import ForbiddenError, LocalGateway, LocalGatewayException

from tilefan.entrypoints.http.http_errors import error_bytes, error_headers
from tilefan.entrypoints.http.limits import FrontLimits, is_upload, limited_channel
from tilefan.errors import TooLargeError
from tilefan.pipeline.error_codec import http_error
from tilefan.service.body_caps import json_cap
from tilefan.settings import HttpLimits

MAX_UPLOAD_BYTES = HttpLimits().max_upload_bytes
MAX_JSON_BYTES = HttpLimits().max_body_bytes
UPLOAD_TIMEOUT_S = 600  # a 256 MiB upload at about 0.5 MB/s
# Request threads share one GIL and one SQLite write lock: past a few, more threads only
# queue on those (measured: 4 gave a lower POST tail than 8 or 2; BENCHMARKS.md).
HTTP_THREADS = 4
StartResponse = Callable[..., Any]


class LocalApp(Chalice):
    """A Chalice app whose current request (and Lambda context) belong to the calling thread.

    ``Chalice.__call__`` assigns both on the app before it builds a fresh per-request
    handler; with these properties each waitress thread sees only its own request."""

    def __init__(self, app_name: str) -> None:
        self._per_thread = threading.local()
        super().__init__(app_name=app_name)

    @property
    def current_request(self) -> Request | None:
        return getattr(self._per_thread, "request", None)

    @current_request.setter
    def current_request(self, request: Request | None) -> None:
        self._per_thread.request = request

    @property
    def lambda_context(self) -> Any:
        return getattr(self._per_thread, "context", None)

    @lambda_context.setter
    def lambda_context(self, context: Any) -> None:
        self._per_thread.context = context


class ChaliceWsgi:
    """A WSGI app over a Chalice app's routes."""

    def __init__(self, app: Chalice, *, max_json_bytes: int = MAX_JSON_BYTES) -> None:
        self.gateway = LocalGateway(app, ChaliceConfig.create(chalice_stage="local", app_name=app.app_name))
        self.json_cap = json_cap(max_json_bytes)
        # Only an app that keeps its current request per thread may be entered by two at once.
        self._lock: threading.Lock | contextlib.nullcontext[None] = (
            contextlib.nullcontext() if isinstance(app, LocalApp) else threading.Lock())

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        # Keep the path percent-encoded: decoded, a ";" would end it for the route matcher
        # (urlparse reads it as parameters), and /jobs/;x would answer as /jobs. Our IDs and
        # names are plain ASCII, so nothing that should match is changed.
        path = urllib.parse.quote((environ.get("PATH_INFO") or "/").encode("latin-1"), safe="/")
        query = environ.get("QUERY_STRING")
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                headers[key.replace("_", "-").lower()] = environ[key]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        # Only uploads may be big (waitress caps them); JSON bodies are refused by their
        # declared length, before a byte of the body is read.
        if not is_upload(method, path):
            try:
                self.json_cap.check(length)
            except TooLargeError as exc:
                status, error = http_error(exc)
                return _answer(start_response, status, error_headers(status), error_bytes(**error))
        body = environ["wsgi.input"].read(length) if length else b""
        try:
            with self._lock:
                response = self.gateway.handle_request(method, path + (f"?{query}" if query else ""), headers, body)
        except ForbiddenError:
            # Chalice's local gateway answers a path no route matches with API Gateway's bare
            # 403 "Missing Authentication Token"; say what it is, in the API's error shape.
            return _answer(start_response, 404, error_headers(404),
                           error_bytes("not_found", f"no route {method} {path}; see /openapi.json"))
        except LocalGatewayException as exc:
            return _answer(start_response, exc.CODE, dict(exc.headers), exc.body or b"")
        out = response.get("body") or b""
        if response.get("isBase64Encoded"):
            out = base64.b64decode(out)
        elif isinstance(out, str):
            out = out.encode()
        return _answer(start_response, int(response["statusCode"]), response.get("headers") or {}, out)


def _answer(start_response: StartResponse, status: int, headers: dict[str, Any], body: bytes) -> list[bytes]:
    reason = http.client.responses.get(status, "Unknown")
    pairs = [(k, str(v)) for k, v in headers.items() if k.lower() not in ("content-length", "connection")]
    start_response(f"{status} {reason}", [*pairs, ("Content-Length", str(len(body)))])
    return [body]


def serve(
    app: Chalice, host: str, port: int, *, threads: int = HTTP_THREADS, client_timeout_s: int = 30,
    upload_timeout_s: int = UPLOAD_TIMEOUT_S,
    max_upload_bytes: int = MAX_UPLOAD_BYTES, max_json_bytes: int = MAX_JSON_BYTES,
    on_ready: Callable[[], None] | None = None,
    on_stop: Callable[[], None] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then stop gracefully (``on_stop`` last).

    A request's headers and JSON body must arrive within ``client_timeout_s`` of its first
    byte, an upload's within ``upload_timeout_s``; a connection idle that long is closed."""
    from waitress.server import BaseWSGIServer, create_server

    sockets: dict[int, Any] = {}  # the socket map waitress fills: its listeners, then its channels
    server = create_server(
        ChaliceWsgi(app, max_json_bytes=max_json_bytes), map=sockets, host=host, port=port, threads=threads,
        backlog=1024, connection_limit=1000,
        max_request_body_size=max_upload_bytes, channel_timeout=client_timeout_s,
        cleanup_interval=max(1, client_timeout_s // 2), clear_untrusted_proxy_headers=True, ident="tilefan",
    )
    channel = limited_channel(FrontLimits(max_json_bytes, max_upload_bytes, client_timeout_s, upload_timeout_s))
    for listener in list(sockets.values()):
        if isinstance(listener, BaseWSGIServer):  # one per bound address ("localhost" may bind two)
            listener.channel_class = channel

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)  # waitress's loop catches it and shuts its task threads down

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        if on_ready:
            on_ready()
        server.run()
    except KeyboardInterrupt:
        server.task_dispatcher.shutdown()
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.close()
        if on_stop:
            on_stop()
