"""An S3 stand-in for benchmarks: a local HTTP object server with S3's latency and per-stream bandwidth.

Real S3 cannot be reached from here, and moto answers in microseconds from memory, so
neither shows what concurrent requests buy. This server speaks just enough of S3's REST
API for a boto3 client (path-style addressing) to GET objects, whole or by ``Range``, and
to PUT them, and it holds every response back the way one S3 connection does:

* ``latency_s`` before the first byte of every response (S3's first-byte latency);
* then the body at no more than ``stream_mb_s`` on that connection (one stream's
  bandwidth), paced in small chunks.

Connections are independent, as S3's are: N streams get N times the bandwidth, until this
machine's CPUs (which run the server and the client) become the limit. That is modelled,
not measured: real S3's latency and per-connection rate vary, and a function's network
caps the sum. ``serving`` runs the server in a process of its own, so its Python does not
compete with the client's for one interpreter lock (S3 runs elsewhere too); objects are
PUT over HTTP (one request, paced like a GET).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import unquote, urlsplit

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_CHUNK = 256 << 10  # bytes written between pacing checks


class ObjectServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, latency_s: float, stream_mb_s: float) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.latency_s = latency_s
        self.stream_bytes_s = stream_mb_s * 1e6
        self.objects: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.lock = threading.Lock()
        self.requests = 0

    def put(self, bucket: str, key: str, body: bytes) -> str:
        etag = '"' + hashlib.md5(body, usedforsecurity=False).hexdigest() + '"'
        with self.lock:
            self.objects[(bucket, key)] = (body, etag)
        return etag


@dataclass(frozen=True)
class StandIn:
    """Where a running stand-in answers, and clients for it."""

    endpoint: str

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client for the stand-in: fake credentials, path-style addresses, no
        optional checksums (the stand-in reads plain bodies, not aws-chunked ones)."""
        import boto3
        from botocore.config import Config

        session = boto3.session.Session(aws_access_key_id="standin", aws_secret_access_key="standin",
                                        region_name="us-east-1")
        return session.client("s3", endpoint_url=self.endpoint, config=Config(
            s3={"addressing_style": "path"}, retries={"max_attempts": 1},
            request_checksum_calculation="when_required", response_checksum_validation="when_required", **config))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one connection per stream, as boto3 pools them
    server: ObjectServer

    def log_message(self, format: str, *args: Any) -> None:  # the base class names it format
        pass

    def _target(self) -> tuple[str, str]:
        path = unquote(urlsplit(self.path).path).lstrip("/")
        bucket, _, key = path.partition("/")
        return bucket, key

    def _error(self, status: int, code: str) -> None:
        body = f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>{code}</Message></Error>".encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.requests += 1
            found = self.server.objects.get(self._target())
        time.sleep(self.server.latency_s)  # to first byte
        if found is None:
            self._error(404, "NoSuchKey")
            return
        data, etag = found
        if self.headers.get("If-Match") not in (None, etag):
            self._error(412, "PreconditionFailed")
            return
        status, first, last = 200, 0, len(data) - 1
        wanted = self.headers.get("Range")
        if wanted:
            match = _RANGE.match(wanted)
            if match is None or int(match.group(1)) >= len(data):
                self._error(416, "InvalidRange")
                return
            status, first = 206, int(match.group(1))
            last = min(int(match.group(2)) if match.group(2) else last, last)
        self.send_response(status)
        self.send_header("Content-Length", str(last - first + 1))
        self.send_header("ETag", etag)
        self.send_header("Content-Type", "application/octet-stream")
        if status == 206:
            self.send_header("Content-Range", f"bytes {first}-{last}/{len(data)}")
        self.end_headers()
        self._paced(memoryview(data)[first : last + 1])

    def _paced(self, body: memoryview) -> None:
        started = time.perf_counter()
        for sent in range(0, len(body), _CHUNK):
            chunk = body[sent : sent + _CHUNK]
            # Each chunk leaves when the stream's rate says it has arrived in full.
            ahead = started + (sent + len(chunk)) / self.server.stream_bytes_s - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
            self.wfile.write(chunk)

    def do_PUT(self) -> None:
        with self.server.lock:
            self.server.requests += 1
        length = int(self.headers.get("Content-Length", "0"))
        received = bytearray()
        started = time.perf_counter()
        time.sleep(self.server.latency_s)
        while len(received) < length:
            received += self.rfile.read(min(_CHUNK, length - len(received)))
            ahead = started + len(received) / self.server.stream_bytes_s - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
        bucket, key = self._target()
        etag = self.server.put(bucket, key, bytes(received))
        self.send_response(200)
        self.send_header("ETag", etag)
        self.send_header("Content-Length", "0")
        self.end_headers()


def _serve(latency_s: float, stream_mb_s: float, port: Connection) -> None:
    server = ObjectServer(latency_s, stream_mb_s)
    port.send(server.server_address[1])
    server.serve_forever()


@contextmanager
def serving(latency_s: float = 0.030, stream_mb_s: float = 80.0) -> Iterator[StandIn]:
    """A stand-in answering on a loopback port, in its own process, for the duration of the block."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_serve, args=(latency_s, stream_mb_s, send), name="s3-standin", daemon=True)
    process.start()
    try:
        if not receive.poll(60):
            raise RuntimeError("the S3 stand-in did not start")
        yield StandIn(f"http://127.0.0.1:{receive.recv()}")
    finally:
        process.terminate()
        process.join()
