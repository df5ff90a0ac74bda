"""The caps on what a client may send in one body, checked by one function.

A JSON body (``POST /jobs``, ``POST /uploads``) is capped at ``TILEFAN_MAX_BODY_BYTES`` and
an upload's bytes at ``TILEFAN_MAX_UPLOAD_BYTES``. The HTTP front end refuses a declared
length over a cap before it reads the body, the routes refuse what they read, and the
upload service refuses a stored file over its cap; each asks the same ``BodyCap``, so the
refusal (a ``TooLargeError``, 413) names the limit and its setting the same way everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from tilefan.errors import TooLargeError


@dataclass(frozen=True)
class BodyCap:
    """At most ``max_bytes`` of one kind of body, raised by ``setting``."""

    max_bytes: int
    what: str
    setting: str

    def message(self) -> str:
        """
        >>> json_cap(10).message()
        'request bodies are capped at 10 bytes (setting TILEFAN_MAX_BODY_BYTES)'
        """
        return f"{self.what} are capped at {self.max_bytes} bytes (setting {self.setting})"

    def check(self, *sizes: int | None) -> None:
        """Refuse a body any of whose sizes (declared, read, stored) passes the cap; None is unknown.

        >>> upload_cap(10).check(None, 10)
        >>> upload_cap(10).check(11)
        Traceback (most recent call last):
        tilefan.errors.TooLargeError: uploads are capped at 10 bytes (setting TILEFAN_MAX_UPLOAD_BYTES)
        """
        if any(size is not None and size > self.max_bytes for size in sizes):
            raise TooLargeError(self.message())


def json_cap(max_bytes: int) -> BodyCap:
    return BodyCap(max_bytes, "request bodies", "TILEFAN_MAX_BODY_BYTES")


def upload_cap(max_bytes: int) -> BodyCap:
    return BodyCap(max_bytes, "uploads", "TILEFAN_MAX_UPLOAD_BYTES")
