"""The CLI's own paths: an output may not be one of the job's inputs.

The CLI runs as its user and names that user's files; this check stops it replacing an
input while the job reads it (the same path, a symlink to it, or a hard link).
"""

from __future__ import annotations

import os
from typing import Any

from tilefan.domain.chunks import chunked_ref


class PathError(Exception):
    """A flag whose path cannot be used; the CLI prints it and exits 2."""

    def __init__(self, flag: str, message: str) -> None:
        super().__init__(f"{flag}: {message}")
        self.flag = flag
        self.message = message


def refuse_output_over_input(raw: dict[str, Any], flag_of: dict[str, str]) -> None:
    """An output path may not be one of the job's own inputs (it would be read while replaced)."""
    for out_field in ("out", "field_out"):
        out = raw.get(out_field)
        if not out:
            continue
        for role in ("a", "b", "atoms"):
            source = raw.get(role)
            path = source.get("file") if isinstance(source, dict) else None
            if path and _same_file(out, _container(path)):
                flag = flag_of[out_field]
                raise PathError(flag, f"{out} is the job's input ({flag_of.get(role + '.file', role)}); "
                                        "choose another path")


def _container(path: str) -> str:
    """The file or directory an input lives in: a Zarr group's, or an HDF5 file's, for a member."""
    ref = chunked_ref(path)
    return ref.path if ref is not None else path


def _same_file(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links
    except OSError:
        return False
