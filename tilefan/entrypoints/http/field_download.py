"""An atoms job's field as a map viewers open, for ``GET /jobs/{id}/field?format=dx|mrc``.

The embedded server converts any field it has (a DX only up to its size limit). On AWS the
``.npy`` itself comes by a presigned redirect and streams; a map is converted in the API
function, whose answer is capped, so only maps up to ``REMOTE_MAP_BYTES`` come this way.
Bigger ones are converted by the client from the streamed ``.npy`` (``tilefan result JOB
--out F.mrc``), which is what the refusal says.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tilefan.domain.spec.parse import AtomsSpec
from tilefan.errors import InvalidSpecError, TooLargeError

FORMATS = ("npy", "dx", "mrc")
# Under Lambda's 6 MB response cap, with room for the headers and encoding.
REMOTE_MAP_BYTES = 5 << 20
# Bytes a map takes per grid point: MRC float32, DX text at 9 significant digits (upper bound).
_BYTES_PER_POINT = {"mrc": 4, "dx": 17}


def check_format(fmt: str | None) -> str:
    """The format asked for ("npy" when none), or InvalidSpecError naming the parameter."""
    fmt = (fmt or "npy").lower()
    if fmt == "ccp4":
        fmt = "mrc"
    if fmt not in FORMATS:
        raise InvalidSpecError("format", f"must be one of {', '.join(FORMATS)} (or ccp4), got {fmt!r}")
    return fmt


def map_of(spec: Any, fmt: str, read: Callable[[], Any], remote: bool) -> bytes:
    """The field of ``spec``'s job as ``fmt`` bytes; ``read()`` gives the field array."""
    from tilefan.adapters.maps import map_bytes

    if not isinstance(spec, AtomsSpec):
        raise InvalidSpecError("format", "only an atoms job's field has a map form")
    points = spec.grid[0] * spec.grid[1] * spec.grid[2]
    if remote and points * _BYTES_PER_POINT[fmt] > REMOTE_MAP_BYTES:
        raise TooLargeError(f"a {fmt} map of {points} points is over the {REMOTE_MAP_BYTES} bytes this API answers "
                            "with; download the .npy (no format) and convert it: tilefan result JOB --out F.mrc")
    return map_bytes(fmt, read(), spec.origin, spec.spacing)
