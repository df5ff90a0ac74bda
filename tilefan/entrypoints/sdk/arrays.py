"""The Python API's chunked inputs: a zarr array or an h5py dataset, named by where it is stored.

Such an input is passed to the job as a key (``X.zarr[:member]`` or ``file.h5:dataset``),
so each tile reads only its own block instead of the whole array being copied first.
The key's suffix says the format, so a store whose path does not end in ``.zarr`` (or
``.h5``) is named through a symbolic link that does. Arrays held in memory (a zarr
``MemoryStore``, say) return None: the caller copies them to a ``.npy`` file as any array.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tilefan.domain.chunks import HDF5, ZARR, chunked_ref


def chunked_source(value: Any, links: Path, stem: str) -> str | None:
    """The key a zarr array or h5py dataset on local storage is read through, or None."""
    zarr = sys.modules.get("zarr")  # only an imported zarr can have made ``value``
    if zarr is not None and isinstance(value, zarr.Array):
        if not isinstance(value.store, zarr.storage.LocalStore):
            return None  # in memory, or remote: copied like any array
        return _named(Path(value.store.root), ZARR, ".zarr", links, stem) + (f":{value.path}" if value.path else "")
    h5py = sys.modules.get("h5py")
    if h5py is not None and isinstance(value, h5py.Dataset):
        return _named(Path(value.file.filename), HDF5, ".h5", links, stem) + f":{value.name}"
    return None


def _named(path: Path, fmt: str, suffix: str, links: Path, stem: str) -> str:
    path = path.resolve()
    ref = chunked_ref(str(path) + (":x" if fmt == HDF5 else ""))
    if ref is not None and ref.format == fmt and ref.path == str(path):
        return str(path)
    links.mkdir(parents=True, exist_ok=True)
    link = links / f"{stem}{suffix}"
    link.unlink(missing_ok=True)
    link.symlink_to(path)
    return str(link)
