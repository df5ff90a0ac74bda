"""``tilefan serve``'s limits on what a client may send, applied by waitress while it reads.

waitress has one body cap for every route and a timeout that any activity resets. Two
subclasses make them per request:

- ``LimitedParser`` learns the route from the request line: a JSON route's body is capped
  at the JSON cap (``TILEFAN_MAX_BODY_BYTES``) by waitress's own check, so a declared
  length over it is refused right after the headers, and a chunked body as soon as it
  passes the cap, without reading (or spooling to disk) the rest. Only uploads
  (``PUT /uploads/...``) may send up to the upload cap.
- Each request has a deadline from its first byte: headers and a JSON body must arrive
  within the client timeout, an upload within the upload timeout. A client trickling a
  byte at a time (which waitress's idle timeout never catches) gets a 408 and is
  disconnected; one that stops sending is still closed by the idle timeout.

Every error waitress answers itself (400, 408, 413, 431, 500, 501) has the API's error
shape, ``{"error": {"code", "message"}}``, and closes the connection.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.task import ErrorTask
from waitress.utilities import Error

from tilefan.entrypoints.http.http_errors import error_bytes
from tilefan.service.body_caps import json_cap, upload_cap

# waitress's errors by status, as the API's error codes.
CODES = {400: "invalid_request", 408: "request_timeout", 413: "body_too_large", 431: "headers_too_large",
         500: "internal_error", 501: "not_implemented"}


@dataclass(frozen=True)
class FrontLimits:
    max_json_bytes: int
    max_upload_bytes: int
    client_timeout_s: float
    upload_timeout_s: float


class RequestTimeout(Error):
    code = 408
    reason = "Request Timeout"


def is_upload(method: str, path: str) -> bool:
    """The only requests that may carry a big body: an upload's bytes."""
    return method == "PUT" and path.startswith("/uploads/")


class LimitedParser(HTTPRequestParser):
    """One request, with its route's body cap and a deadline from its first byte."""

    limits: FrontLimits  # set on the subclass ``limited_channel`` makes
    json_adj: Adjustments | None = None
    # waitress's own attributes, typed here for mypy (waitress ships no annotations)
    adj: Adjustments
    completed: bool
    headers_finished: bool
    command: str
    path: str

    def __init__(self, adj: Adjustments) -> None:
        super().__init__(adj)
        self.started = time.monotonic()
        self.deadline = self.started + self.limits.client_timeout_s
        self.upload = False

    def received(self, data: bytes) -> int:
        if not self.completed and time.monotonic() > self.deadline:
            if not self.headers_finished:
                self.parse_header(b"GET / HTTP/1.0\r\n")  # what the error answer needs (as waitress does for 431)
            self.error = RequestTimeout(f"the request did not arrive within {self._allowed_s():g} s of its first byte")
            self.completed = True
            return len(data)  # dropped: the connection closes after the answer
        return int(super().received(data))

    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        self.upload = is_upload(self.command, self.path)
        if self.upload:
            self.deadline = self.started + self.limits.upload_timeout_s
            return
        # waitress refuses a declared length at or over this limit right after these
        # headers, and a chunked body as soon as it reaches it, reading no more.
        if type(self).json_adj is None:
            json_adj = copy.copy(self.adj)
            json_adj.max_request_body_size = self.limits.max_json_bytes + 1
            type(self).json_adj = json_adj
        self.adj = type(self).json_adj

    def _allowed_s(self) -> float:
        return self.limits.upload_timeout_s if self.upload else self.limits.client_timeout_s


class JsonErrorTask(ErrorTask):
    """waitress's own error answers, in the API's error shape."""

    def execute(self) -> None:
        error = self.request.error
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        body = error_bytes(CODES.get(error.code, "invalid_request"), self._message(error))
        self.content_length = len(body)
        self.write(body)

    def _message(self, error: Any) -> str:
        if error.code != 413:
            return str(error.body)
        limits: FrontLimits = self.channel.parser_class.limits
        # waitress enforced the cap while reading; the words are the one BodyCap's.
        if getattr(self.request, "upload", False):
            return upload_cap(limits.max_upload_bytes).message()
        return json_cap(limits.max_json_bytes).message()


def limited_channel(limits: FrontLimits) -> type[HTTPChannel]:
    """A waitress channel class applying ``limits`` to every request it reads."""
    parser = type("Parser", (LimitedParser,), {"limits": limits, "json_adj": None})
    return type("LimitedChannel", (HTTPChannel,), {"parser_class": parser, "error_task_class": JsonErrorTask})
