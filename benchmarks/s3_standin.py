"""An S3 stand-in for benchmarks: a local HTTP object server with S3's latency and per-stream bandwidth.

Real S3 cannot be reached from here, and moto answers in microseconds from memory, so
neither shows what concurrent requests buy. This server speaks just enough of S3's REST
API for a boto3 client (path-style addressing) to GET objects, whole or by ``Range``, to
PUT them, to list and delete them (ListObjectsV2, DeleteObject(s)) and to upload them in
parts (create, UploadPart, complete, abort), and it holds
every request back the way one S3 connection does:

* ``latency_s`` before the first byte of every response (S3's first-byte latency);
* then the body, sent or received, at no more than ``stream_mb_s`` on that connection
  (one stream's bandwidth), paced in small chunks.

Connections are independent, as S3's are: N streams get N times the bandwidth, until this
machine's CPUs (which run the server and the client) become the limit. That is modelled,
not measured: real S3's latency and per-connection rate vary, and a function's network
caps the sum. ``serving`` runs the server in a process of its own, so its Python does not
compete with the client's for one interpreter lock (S3 runs elsewhere too); objects are
PUT over HTTP (one request, paced like a GET).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape, unescape

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_CHUNK = 256 << 10  # bytes written between pacing checks


class ObjectServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, latency_s: float, stream_mb_s: float) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.latency_s = latency_s
        self.stream_bytes_s = stream_mb_s * 1e6
        self.objects: dict[tuple[str, str], tuple[bytes | bytearray, str]] = {}
        self.uploads: dict[str, dict[int, bytes | bytearray]] = {}
        self.lock = threading.Lock()
        self.requests = 0

    def put(self, bucket: str, key: str, body: bytes | bytearray) -> str:
        etag = tag(body)
        with self.lock:
            self.objects[(bucket, key)] = (body, etag)
        return etag


def tag(body: bytes | bytearray) -> str:
    """An ETag for ``body``: a checksum the stand-in computes fast (S3's is an MD5), so
    the server's own work stays small next to the latency and bandwidth it models."""
    return f'"{zlib.crc32(body):08x}-{len(body)}"'


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
    # Headers and a small body leave in two writes: with Nagle's algorithm the second waits
    # for the client's delayed ACK (40 ms on Linux), a stall real S3 does not add.
    disable_nagle_algorithm = True
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
        bucket, key = self._target()
        if not key and "list-type" in self._query():
            self._list(bucket)
            return
        with self.server.lock:
            self.server.requests += 1
            found = self.server.objects.get((bucket, key))
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

    def _list(self, bucket: str) -> None:
        """ListObjectsV2: the keys under ``prefix`` in order, ``max-keys`` a page (1,000 at
        most, as S3), the continuation token being the page's last key."""
        query = self._query()
        prefix, after = query.get("prefix", ""), query.get("continuation-token") or query.get("start-after", "")
        limit = max(1, min(int(query.get("max-keys", "1000")), 1000))  # no Delimiter, no URL encoding
        with self.server.lock:
            self.server.requests += 1
            keys = sorted((k, len(body), etag) for (b, k), (body, etag) in self.server.objects.items()
                          if b == bucket and k.startswith(prefix) and k > after)
        time.sleep(self.server.latency_s)
        page, more = keys[:limit], len(keys) > limit
        contents = "".join(f"<Contents><Key>{escape(k)}</Key><Size>{size}</Size><ETag>{escape(etag)}</ETag>"
                           "<LastModified>2026-01-01T00:00:00.000Z</LastModified></Contents>"
                           for k, size, etag in page)
        token = f"<NextContinuationToken>{escape(page[-1][0])}</NextContinuationToken>" if more else ""
        self._reply(200, (f"<?xml version='1.0' encoding='UTF-8'?><ListBucketResult><Name>{escape(bucket)}</Name>"
                          f"<Prefix>{escape(prefix)}</Prefix><KeyCount>{len(page)}</KeyCount><MaxKeys>{limit}</MaxKeys>"
                          f"<IsTruncated>{'true' if more else 'false'}</IsTruncated>{contents}{token}"
                          "</ListBucketResult>").encode())

    def _paced(self, body: memoryview) -> None:
        started = time.perf_counter()
        for sent in range(0, len(body), _CHUNK):
            chunk = body[sent : sent + _CHUNK]
            # Each chunk leaves when the stream's rate says it has arrived in full.
            ahead = started + (sent + len(chunk)) / self.server.stream_bytes_s - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
            self.wfile.write(chunk)

    def _query(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.path).query, keep_blank_values=True).items()}

    def _body(self) -> bytearray:
        """The request body, taken in at one stream's rate after the first-byte latency."""
        with self.server.lock:
            self.server.requests += 1
        received = bytearray(int(self.headers.get("Content-Length", "0")))
        view = memoryview(received)
        time.sleep(self.server.latency_s)
        started, got = time.perf_counter(), 0
        while got < len(received):
            n = self.rfile.readinto(view[got : got + _CHUNK])
            if not n:
                break
            got += n
            ahead = started + got / self.server.stream_bytes_s - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
        return received if got == len(received) else received[:got]

    def _reply(self, status: int, body: bytes = b"", etag: str | None = None) -> None:
        self.send_response(status)
        if etag is not None:
            self.send_header("ETag", etag)
        if body:
            self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self) -> None:
        query, body = self._query(), self._body()
        if "uploadId" in query:
            with self.server.lock:
                parts = self.server.uploads.get(query["uploadId"])
                if parts is not None:
                    parts[int(query["partNumber"])] = body
            if parts is None:
                self._error(404, "NoSuchUpload")
                return
            self._reply(200, etag=tag(body))
            return
        bucket, key = self._target()
        self._reply(200, etag=self.server.put(bucket, key, body))

    def do_POST(self) -> None:
        query, body = self._query(), self._body()
        bucket, key = self._target()
        if "uploads" in query:
            upload = hashlib.md5(f"{bucket}/{key}/{time.perf_counter_ns()}".encode(),
                                 usedforsecurity=False).hexdigest()
            with self.server.lock:
                self.server.uploads[upload] = {}
            self._reply(200, (f"<InitiateMultipartUploadResult><Bucket>{bucket}</Bucket><Key>{key}</Key>"
                              f"<UploadId>{upload}</UploadId></InitiateMultipartUploadResult>").encode())
            return
        if "delete" in query:  # DeleteObjects, quiet: gone or never there, no error to report
            with self.server.lock:
                for gone in re.findall(rb"<Key>(.*?)</Key>", body, re.DOTALL):
                    self.server.objects.pop((bucket, unescape(gone.decode())), None)
            self._reply(200, b"<DeleteResult></DeleteResult>")
            return
        with self.server.lock:
            parts = self.server.uploads.pop(query.get("uploadId", ""), None)
        if parts is None:
            self._error(404, "NoSuchUpload")
            return
        numbers = [int(n) for n in re.findall(rb"<PartNumber>(\d+)</PartNumber>", body)]
        etag = self.server.put(bucket, key, b"".join(parts[n] for n in numbers))
        self._reply(200, (f"<CompleteMultipartUploadResult><Bucket>{bucket}</Bucket><Key>{key}</Key>"
                          f"<ETag>{etag}</ETag></CompleteMultipartUploadResult>").encode())

    def do_DELETE(self) -> None:
        self._body()
        query = self._query()
        with self.server.lock:
            if "uploadId" in query:  # AbortMultipartUpload
                self.server.uploads.pop(query["uploadId"], None)
            else:  # DeleteObject
                self.server.objects.pop(self._target(), None)
        self._reply(204)


@contextmanager
def serving(latency_s: float = 0.030, stream_mb_s: float = 80.0) -> Iterator[StandIn]:
    """A stand-in answering on a loopback port, in its own process, for the duration of the block."""
    root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.s3_standin", str(latency_s), str(stream_mb_s)], cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)}, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = process.stdout.readline().strip()
        if not port.isdigit():
            raise RuntimeError("the S3 stand-in did not start")
        yield StandIn(f"http://127.0.0.1:{port}")
    finally:
        process.terminate()
        process.wait()


if __name__ == "__main__":
    standin = ObjectServer(float(sys.argv[1]), float(sys.argv[2]))
    print(standin.server_address[1], flush=True)
    standin.serve_forever()
