"""Reading a tile's inputs through the blob store, and where a job's objects live."""

from __future__ import annotations

import numpy as np

from tilefan.domain.atoms import parse_csv, validate_table
from tilefan.domain.molecules import parse_pqr, parse_xyz
from tilefan.domain.randgen import random_region
from tilefan.domain.spec.parse import AtomsSpec, JobSpec, MatrixInput, RandomMatrix
from tilefan.domain.upload_keys import result_key
from tilefan.errors import InvalidBlobError, InvalidSpecError
from tilefan.pipeline.ports import BlobStore


def manifest_key(job_id: str) -> str:
    return f"jobs/{job_id}/manifest.json"


def items_key(job_id: str) -> str:
    """The tile list a Distributed Map reads with its ItemReader."""
    return f"jobs/{job_id}/items.json"


def atoms_key(job_id: str) -> str:
    return f"jobs/{job_id}/atoms.npy"


def output_key(job_id: str, spec: JobSpec) -> str | None:
    """Where the job's array output goes: the user's path, a default, or nowhere."""
    if isinstance(spec, AtomsSpec):
        return spec.field_out
    return spec.out or result_key(job_id)


def matrix_block(
    blobs: BlobStore, m: MatrixInput, rows: tuple[int, int], cols: tuple[int, int]
) -> np.ndarray:
    """Rows [r0:r1] and columns [c0:c1] of an input matrix, generated or read."""
    if isinstance(m, RandomMatrix):
        return random_region(m.seed, m.stream, m.dtype, rows, cols)
    whole_width = cols == (0, m.shape[1])
    return blobs.read_rows(m.file, rows, None if whole_width else cols)


# Text formats of an atoms table, by extension: each parser names the line (and column) at fault.
TEXT_ATOMS = {".csv": parse_csv, ".pqr": parse_pqr, ".xyz": parse_xyz, ".extxyz": parse_xyz}
ATOMS_SUFFIXES = (".npy", *TEXT_ATOMS)


def load_atoms_file(blobs: BlobStore, uri: str, field: str = "atoms.file") -> np.ndarray:
    """An atoms table from ``.npy``, ``.csv``, ``.pqr`` or extended ``.xyz``, validated (N×4, finite)."""
    suffix = "." + uri.rsplit(".", 1)[-1].lower() if "." in uri else ""
    parse = TEXT_ATOMS.get(suffix)
    if parse is not None:
        raw = blobs.read_bytes(uri)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidSpecError(field, f"{uri} is not UTF-8 text") from None
        return validate_table(parse(text, field), field, uri)
    if suffix != ".npy":
        raise InvalidBlobError(uri, f"atoms files must end in {', '.join(ATOMS_SUFFIXES)}")
    return validate_table(blobs.read_array(uri), field, uri)
