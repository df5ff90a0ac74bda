"""The CLI's own paths: an output must be a file the user can write, and not one of the job's inputs.

The CLI runs as its user and names that user's files. These checks run before any compute:
an output that names a folder, or lies where the user cannot write, would otherwise fail
only at the very end, when the finished file is moved into place. And an output may not
replace an input while the job reads it (the same path, a symlink to it, or a hard link).
"""

from __future__ import annotations

import os
from typing import Any

from tilefan.domain.chunks import chunked_ref, is_zarr


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
def refuse_unwritable_output(raw: dict[str, Any], flag_of: dict[str, str]) -> None:
    """Each output path must name a file (not a folder) in a folder the user can write to
    (folders still missing are created when the job writes, so the nearest existing one counts)."""
    for out_field in ("out", "field_out"):
        out = raw.get(out_field)
        if not out:
            continue
        flag = flag_of[out_field]
        if os.path.isdir(out) and not is_zarr(out):  # a Zarr output is a folder, replaced whole
            raise PathError(flag, f"{out} is a folder; name the file to write, e.g. {os.path.join(out, 'out.npy')}")
        parent = os.path.dirname(os.path.abspath(out))
        while not os.path.lexists(parent):
            parent = os.path.dirname(parent)
        if not os.path.isdir(parent):
            raise PathError(flag, f"cannot write {out}: {parent} is a file, not a folder")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise PathError(flag, f"cannot write {out}: no permission to write in {parent}")


def _same_file(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links
    except OSError:
        return False
